"""IG lead and auditor pages: sign-in, dashboard, disclosure history, subject access report."""

from __future__ import annotations

import csv
import dataclasses
import io
import secrets
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar, cast

from flask import (
    Blueprint,
    Response,
    abort,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from app.api.disclosures import csv_cell
from app.api.schemas import parse_day_or_timestamp, parse_whole_number
from app.errors import DomainError
from app.models import Organisation
from app.services.access.web_sessions import (
    WebIdentity,
    csrf_ok,
    resolve_session,
    sign_in,
    sign_out,
)
from app.services.consents import consents, subjects
from app.services.consents.subjects import InvalidNhsNumber, SubjectIdentifier
from app.services.decisions import dashboard, decisions
from app.services.log import witnesses
from app.services.notifications import obligations, webhooks
from app.vocabulary import PURPOSES
from app.web.charts import horizontal_bars, stacked_bars
from app.web.common import ledger, when, words

bp = Blueprint("ig", __name__, url_prefix="/ig")
SESSION_COOKIE = "cl_session"
LOGIN_CSRF_COOKIE = "cl_login_csrf"
PAGE_SIZE = 25
F = TypeVar("F", bound=Callable[..., Any])
# An NHS number is searched for only by POST: an address ends up in browser history, bookmarks,
# proxy and server logs, where a form's body does not. Refused in a page address rather than
# quietly used, so that no one comes to rely on such links.
NUMBER_IN_ADDRESS = (
    "An NHS number in a page address is not used, to keep it out of browser history and logs. "
    "Enter it in the form."
)
# The subject access report is about the person and may be handed to them or their
# representative: it speaks of "the person", where the patient page says "you".
PURPOSE_OF_THE_PERSON = {
    "referral": "Referral: passing the person's details to another service so it can help them",
    "case_conferencing": (
        "Case meetings: the services meeting to talk about how to support the person"
    ),
    "evaluation": "Evaluation: helping researchers judge whether the service works",
    "sms_contact": "Text messages: appointment reminders sent to the person's phone",
    "employer_contact": "Contact with the person's employer about their work",
}


def _set_cookie(resp: BaseResponse, name: str, value: str, max_age: int | None = None) -> None:
    resp.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="Strict",
        secure=request.is_secure or ledger().settings.secure_cookies,
        path="/ig",
    )


def signed_in(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        identity = resolve_session(ledger(), request.cookies.get(SESSION_COOKIE))
        if identity is None:
            return redirect(url_for("ig.sign_in_form", expired="1"))
        g.identity = identity
        if request.method == "POST" and not csrf_ok(
            identity.csrf_token, request.form.get("csrf_token")
        ):
            abort(400, "the form has expired; go back, reload the page and try again")
        return view(*args, **kwargs)

    return cast(F, wrapper)


def identity() -> WebIdentity:
    return cast(WebIdentity, g.identity)


def _page(template: str, **context: Any) -> str:
    who = identity()
    with ledger().db.read() as session:
        organisation = session.get(Organisation, who.principal.organisation_id)
    return render_template(
        template,
        who=who.principal,
        # What the pages show is limited to this organisation for an IG lead; they say so, by name.
        org_name=organisation.name if organisation else who.principal.organisation_id,
        csrf_token=who.csrf_token,
        **context,
    )


@bp.get("/")
def sign_in_form(error: str | None = None, status: int = 200) -> Response:
    if resolve_session(ledger(), request.cookies.get(SESSION_COOKIE)) is not None:
        return redirect(url_for("ig.dashboard_page"))  # type: ignore[return-value]
    token = secrets.token_urlsafe(24)
    expired = request.args.get("expired") == "1"
    resp = make_response(
        render_template("ig/sign_in.html", csrf_token=token, error=error, expired=expired),
        status,
    )
    _set_cookie(resp, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return resp


@bp.post("/sign-in")
def sign_in_submit() -> Response:
    if not csrf_ok(request.cookies.get(LOGIN_CSRF_COOKIE, ""), request.form.get("csrf_token")):
        return sign_in_form("The sign-in form expired. Please try again.", 400)
    token = request.form.get("token", "")
    try:
        signed = sign_in(ledger(), token)
    except DomainError:
        # One message whatever was wrong: no hint which tokens exist or what role they have.
        return sign_in_form(
            "That token was not accepted. Use an IG lead or auditor client's token.", 401
        )
    resp = redirect(url_for("ig.dashboard_page"))
    _set_cookie(resp, SESSION_COOKIE, signed.session_token)
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/ig")
    return resp  # type: ignore[return-value]


@bp.post("/sign-out")
@signed_in
def sign_out_submit() -> Response:
    sign_out(ledger(), request.cookies.get(SESSION_COOKIE))
    resp = redirect(url_for("ig.sign_in_form"))
    resp.delete_cookie(SESSION_COOKIE, path="/ig")
    return resp  # type: ignore[return-value]


@bp.get("/dashboard")
@signed_in
def dashboard_page() -> str:
    principal = identity().principal
    board = dashboard.build(ledger(), principal)
    # An IG lead sees its own organisation's deliveries; an auditor every organisation's.
    own = principal.organisation_id if principal.role == "ig_lead" else None
    # The charts are given the words the tables beside them show.
    by_day = {
        day: {words(purpose): n for purpose, n in row.items()}
        for day, row in board.by_day_and_purpose.items()
    }
    return _page(
        "ig/dashboard.html",
        board=board,
        webhook_troubles=webhooks.troubles(ledger(), own),
        witness_report=witnesses.report(ledger()),
        now=ledger().clock(),
        by_day_chart=stacked_bars(
            board.days,
            by_day,
            [words(p) for p in board.purposes],
            "Disclosures per day, by purpose",
        ),
        by_kind_chart=horizontal_bars(
            [(words(k), n) for k, n in board.by_recipient_kind], "Disclosures by kind of recipient"
        ),
        denial_chart=horizontal_bars(
            [(words(r), n) for r, n in board.denials_by_reason], "Denials by reason"
        ),
    )


def _organisations() -> list[Organisation]:
    with ledger().db.read() as session:
        return list(session.execute(select(Organisation).order_by(Organisation.name)).scalars())


FILTERS = ("nhs_number", "organisation", "purpose", "since", "until", "as_of")


def _parse_filters() -> tuple[decisions.DisclosureQuery, dict[str, str], list[tuple[str, str]]]:
    """The search form's filters, from the POSTed form or (with no NHS number) the address;
    errors are (field, message) so the page can link to them."""
    args = request.form if request.method == "POST" else request.args
    errors: list[tuple[str, str]] = []
    form = {k: args.get(k, "").strip() for k in FILTERS}
    subject = None
    if form["nhs_number"] and request.method != "POST":
        errors.append(("nhs_number", NUMBER_IN_ADDRESS))
        form["nhs_number"] = ""
    elif form["nhs_number"]:
        try:
            subject = SubjectIdentifier.nhs_number(form["nhs_number"])
        except InvalidNhsNumber as exc:
            errors.append(("nhs_number", f"NHS number {exc}"))
    if form["purpose"] and form["purpose"] not in PURPOSES:
        errors.append(("purpose", "Choose a purpose from the list"))
    dates: dict[str, datetime | None] = {}
    for key in ("since", "until"):
        dates[key] = None
        if form[key]:
            try:
                dates[key] = parse_day_or_timestamp(form[key])
            except ValueError as exc:
                label = "From" if key == "since" else "To"
                errors.append((key, f"{label} {exc}"))
    page = parse_whole_number(args.get("page", ""))
    page = 1 if page is None else max(1, min(100_000, page))
    with ledger().db.read() as session:
        size = ledger().log_store.size(session)
    as_of = size
    if form["as_of"]:
        # Only the page's own links carry as_of, so a value that is not a log position is a
        # broken link, not a typing slip: refuse it, as a form that expired is refused.
        pinned = parse_whole_number(form["as_of"])
        if pinned is None:
            abort(400, "as_of is not a position in the log")
        # A position past the end shows the log as it is now (and stays inside the column).
        as_of = min(pinned, size)
    form["as_of"] = str(as_of)
    query = decisions.DisclosureQuery(
        before_index=as_of,
        subject=subject,
        organisation=form["organisation"] or None,
        purpose=form["purpose"] or None,
        since=dates["since"],
        until=dates["until"],
        page=page,
        page_size=PAGE_SIZE,
    )
    return query, form, errors


PAGE_COLUMNS = ("When", "From", "To", "Purpose", "Categories", "Basis", "Log index")


def page_rows(items: list[dict[str, Any]], names: dict[str, str]) -> list[list[str]]:
    """The disclosure table's rows, as shown on the page and written to its CSV."""
    rows = []
    for d in items:
        basis = (d.get("basis") or "").replace("_", " ")
        if d.get("consents"):
            n = len(d["consents"])
            basis += f" ({n} consent{'' if n == 1 else 's'})"
        rows.append(
            [
                when(d["disclosed_at"]),
                names.get(d["from"], d["from"]),
                names.get(d["to"], d["to"]),
                d["purpose"].replace("_", " "),
                ", ".join(d["data_categories"]),
                basis,
                str(d["ledger_index"]),
            ]
        )
    return rows


def page_csv(items: list[dict[str, Any]], names: dict[str, str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(PAGE_COLUMNS)
    writer.writerows([[csv_cell(c) for c in row] for row in page_rows(items, names)])
    return out.getvalue()


@bp.route("/disclosures", methods=["GET", "POST"])
@signed_in
def disclosures_page() -> BaseResponse | tuple[str, int]:
    query, form, errors = _parse_filters()
    if request.method == "POST" and not form["nhs_number"] and not errors:
        # Nothing personal in the search: answer with its address, which can be bookmarked.
        filters: dict[str, Any] = {k: v for k, v in form.items() if v and k != "as_of"}
        return redirect(url_for("ig.disclosures_page", **filters), 303)
    result: dict[str, Any] = {"items": [], "total": 0, "page": 1, "page_size": PAGE_SIZE}
    pages = 1
    if not errors:
        result = decisions.list_disclosures(ledger(), identity().principal, query)
        pages = max(1, -(-int(result["total"]) // PAGE_SIZE))
        if query.page > pages:  # past the end: show the last page rather than nothing
            query = dataclasses.replace(query, page=pages)
            result = decisions.list_disclosures(ledger(), identity().principal, query)
    organisations = _organisations()
    names = {o.id: o.name for o in organisations}
    page = _page(
        "ig/disclosures.html",
        form=form,
        errors=errors,
        result=result,
        rows=page_rows(result["items"], names),
        columns=PAGE_COLUMNS,
        names=names,
        organisations=organisations,
        purposes=PURPOSES,
        pages=pages,
        query_args={k: v for k, v in form.items() if v},
        # Paging and the CSV carry the number in a form's body, as the search did.
        method="post" if form["nhs_number"] else "get",
    )
    return page, 400 if any(m == NUMBER_IN_ADDRESS for _, m in errors) else 200


@bp.route("/disclosures.csv", methods=["GET", "POST"])
@signed_in
def disclosures_csv() -> Response:
    query, _, errors = _parse_filters()
    if errors:
        abort(400, "; ".join(message for _, message in errors))
    result = decisions.list_disclosures(ledger(), identity().principal, query)
    names = {o.id: o.name for o in _organisations()}
    resp = make_response(page_csv(result["items"], names))
    resp.mimetype = "text/csv"
    resp.headers["Content-Disposition"] = (
        f'attachment; filename="disclosures-page-{query.page}.csv"'
    )
    return resp


@bp.get("/report")
@signed_in
def report_form() -> str | tuple[str, int]:
    """The search form. There is no link to one person's report: any address that opened it
    would name the person as surely as their NHS number (an encrypted or random stand-in is
    still a key to their report, kept in history and logs), so a report is asked for again."""
    if request.args.get("nhs_number"):
        return _page("ig/report.html", report=None, error=NUMBER_IN_ADDRESS), 400
    return _page("ig/report.html", report=None, error=None)


@bp.post("/report")
@signed_in
def report_page() -> str:
    raw = request.form.get("nhs_number", "").strip()
    if not raw:
        return _page("ig/report.html", report=None, error="Enter an NHS number")
    try:
        subject = SubjectIdentifier.nhs_number(raw)
    except InvalidNhsNumber as exc:
        return _page("ig/report.html", report=None, error=f"NHS number {exc}", entered=raw)
    principal = identity().principal
    led = ledger()
    with led.db.read() as session:
        # A person this service does not know gets the same empty report as one known only to
        # other organisations, by the same queries (under a reference nobody has), so neither
        # the report nor its timing tells who the service holds data about (issue 12).
        ref = subjects.resolve(led, session, subject, create=False) or subjects.NOBODY
        history = consents.history_for_ref(session, principal, ref)
        # Per disclosure: was its recipient told of a withdrawal, objection or erasure, and has
        # it acknowledged (the report shows only disclosures this client may see).
        told: dict[str, list[obligations.Told]] = {}
        for t in obligations.told_about(session, ref):
            for disclosure_id in t.disclosure_ids:
                told.setdefault(disclosure_id, []).append(t)
    shares: list[dict[str, Any]] = []
    page = 1
    while True:
        chunk = decisions.list_disclosures(
            led,
            principal,
            decisions.DisclosureQuery(subject_ref=ref, page=page, page_size=500),
        )
        shares.extend(chunk["items"])
        if page * 500 >= chunk["total"]:
            break
        page += 1
    names = {o.id: o.name for o in _organisations()}
    return _page(
        "ig/report.html",
        report={"history": history, "disclosures": shares, "generated": led.clock()},
        told=told,
        names=names,
        error=None,
        nhs_display=f"{subject.value[:3]} {subject.value[3:6]} {subject.value[6:]}",
    )
