"""The patient page: what the person has agreed to, who has received their data, and a way to
withdraw or object that is as easy as giving consent was (UK GDPR Art 7(3))."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, make_response, render_template, request
from sqlalchemy import select

from app.errors import DomainError
from app.models import Organisation
from app.services.access.links import DeadLink
from app.services.access.web_sessions import (
    WHOLE_RECORD,
    PatientAccess,
    patient_csrf_ok,
    patient_csrf_token,
    resolve_access_link,
)
from app.services.consents import capture, consents
from app.services.decisions import decisions, policies
from app.services.log import receipts
from app.services.notifications import obligations
from app.web.common import ledger

bp = Blueprint("patient", __name__, url_prefix="/p")

PURPOSE_TEXT = {
    "referral": "Referral: passing your details to another service so it can help you",
    "case_conferencing": "Case meetings: the services meeting to talk about how to support you",
    "evaluation": "Evaluation: helping researchers judge whether the service works",
    "sms_contact": "Text messages: appointment reminders sent to your phone",
    "employer_contact": "Contact with your employer about your work",
}
CATEGORY_TEXT = {
    "identity": "your name, date of birth and NHS number",
    "contact_details": "your address, phone number and email",
    "service_status": "whether you were referred, started, attended or finished",
    "employment_status": "whether you are in work, off sick or out of work",
    "work_needs": "what makes work hard for you and changes agreed at work",
    "condition": "your health condition",
    "outcome_measures": "your questionnaire scores (such as PHQ-9 and GAD-7)",
    "clinical_notes": "notes from your therapy or care",
}

# Why an agreement can never be used for something it lists (app.policy.reach), in plain
# words: a category above what the recipient may ever receive (G7), a route a rule refuses,
# and a route no rule covers (G0).
NEVER_TEXT = {
    "category": "The rules never let this kind of organisation receive it, even if you agree.",
    "refused": "The rules never allow this sharing, even if you agree.",
    "G0": "No rule allows sharing with this organisation for this, even if you agree.",
}

# How the agreement was given, so that two agreements alike in every other way can be told apart.
FORM_TEXT = {
    "verbal": "by talking with you (verbal)",
    "written": "on a signed form (written)",
    "electronic": "online or by another electronic means (electronic)",
}
# The G5 obligation under which a recipient must destroy what it holds when the agreement ends.
ERASE = "cease_processing_and_erase"


PLAIN_ERRORS = {
    "already-withdrawn": "You had already withdrawn this agreement. Nothing else was changed.",
    "already-objected": "You have already objected to sharing for your care.",
    "forbidden": (
        "This link cannot withdraw this agreement, because the service that gave you the link "
        "did not record it. Ask the service that recorded it, or use your patient portal."
    ),
}
GENERIC_ERROR = (
    "Something stopped this from going through, so nothing was changed. Please try again later."
)
SHOWN_DISCLOSURES = 500


OBJECTION_ERRORS = {
    **PLAIN_ERRORS,
    "already-withdrawn": "You had already withdrawn this objection. Nothing else was changed.",
    "forbidden": (
        "This link cannot withdraw this objection, because the service that gave you the link "
        "did not record it. Ask the service that recorded it, or use your patient portal."
    ),
}


def _problem(
    access: PatientAccess, token: str, exc: DomainError, errors: dict[str, str] = PLAIN_ERRORS
) -> Response:
    if isinstance(exc, DeadLink):
        # The link ended (or its person was erased) after this request read it: the same page
        # as for any link that does not work, saying nothing of why.
        abort(404)
    message = errors.get(exc.slug, GENERIC_ERROR)
    return make_response(
        _render("patient/problem.html", access, token, message=message), exc.status
    )


def _access(token: str) -> PatientAccess:
    access = resolve_access_link(ledger(), token)
    if access is None:
        abort(404)
    return access


def _names() -> dict[str, str]:
    with ledger().db.read() as session:
        return {o.id: o.name for o in session.execute(select(Organisation)).scalars()}


def _check_csrf(access: PatientAccess) -> None:
    if not patient_csrf_ok(ledger(), access.link.id, request.form.get("csrf_token")):
        abort(400)


def _render(template: str, access: PatientAccess, token: str, **context: Any) -> str:
    return render_template(
        template,
        token=token,
        names=_names(),
        csrf_token=patient_csrf_token(ledger(), access.link.id),
        expires_at=access.link.expires_at,
        whole_record=access.view == WHOLE_RECORD,
        issuer=access.issuer_name,
        FORM_TEXT=FORM_TEXT,
        # Where a receipt's reader asks for the proofs that check it.
        service_url=request.url_root.rstrip("/"),
        **context,
    )


@bp.get("/<token>")
def home(token: str) -> str:
    access = _access(token)
    led = ledger()
    with led.db.read() as session:
        history = consents.history_for_ref(session, access.principal, access.link.subject_ref)
        reach = capture.shares_by_consent(session, history["consents"])
        # Who was told of each withdrawal or objection the page shows, and who confirmed.
        shown = {c["id"] for c in history["consents"]} | {o["id"] for o in history["objections"]}
        told: dict[str, list[obligations.Told]] = {}
        for t in obligations.told_about(session, access.link.subject_ref):
            about = t.consent_id or t.objection_id
            if about is not None and about in shown:
                told.setdefault(about, []).append(t)
    shares = decisions.list_disclosures(
        led,
        access.principal,
        decisions.DisclosureQuery(subject_ref=access.link.subject_ref, page_size=SHOWN_DISCLOSURES),
    )
    objected = any(
        o["scope"] == "direct_care" and o["status"] == "active" for o in history["objections"]
    )
    return _render(
        "patient/home.html",
        access,
        token,
        history=history,
        withdrawable={
            c["id"]
            for c in history["consents"]
            if consents.may_withdraw(access.principal, c["recorded_by"])
        },
        disclosures=shares["items"],
        total_disclosures=shares["total"],
        objected=objected,
        reach=reach,
        never_text=NEVER_TEXT,
        told=told,
        withdrawable_objections={
            o["id"]
            for o in history["objections"]
            if o["status"] == "active"
            and o["recorded_by"] is not None
            and consents.may_act_for_recorder(access.principal, o["recorded_by"])
        },
    )


def _consent_of(access: PatientAccess, consent_id: str) -> dict[str, Any]:
    """One of this person's consents that the link shows, with whether ending it obliges its
    recipients to destroy what they hold (G5, the policy in force)."""
    with ledger().db.read() as session:
        history = consents.history_for_ref(session, access.principal, access.link.subject_ref)
        for consent in history["consents"]:
            if consent["id"] == consent_id:
                withdrawal = policies.current_policy(session).withdrawal
                return {
                    **consent,
                    "must_erase": withdrawal.obligation_for(consent["purpose"]) == ERASE,
                }
    abort(404)


def _objection_of(access: PatientAccess, objection_id: str) -> dict[str, Any]:
    """One of this person's objections (an id that is not theirs is a page that does not exist)."""
    with ledger().db.read() as session:
        history = consents.history_for_ref(session, access.principal, access.link.subject_ref)
    for objection in history["objections"]:
        if objection["id"] == objection_id:
            return dict(objection)
    abort(404)


@bp.get("/<token>/consents/<consent_id>/withdraw")
def confirm_withdrawal(token: str, consent_id: str) -> Response | str:
    access = _access(token)
    consent = _consent_of(access, consent_id)
    if consent["status"] != "active":
        return _render(
            "patient/problem.html", access, token, message=PLAIN_ERRORS["already-withdrawn"]
        )
    if not consents.may_withdraw(access.principal, consent["recorded_by"]):
        return make_response(
            _render("patient/problem.html", access, token, message=PLAIN_ERRORS["forbidden"]), 403
        )
    return _render("patient/confirm_withdraw.html", access, token, consent=consent)


@bp.post("/<token>/consents/<consent_id>/withdraw")
def withdraw(token: str, consent_id: str) -> Response | str:
    access = _access(token)
    _check_csrf(access)
    consent = _consent_of(access, consent_id)
    try:
        result = consents.withdraw_consent(
            ledger(), access.principal, consent_id, "person_withdrew", None
        )
    except DomainError as exc:
        return _problem(access, token, exc)
    return _render(
        "patient/receipt.html",
        access,
        token,
        what="withdrawal",
        consent=consent,
        receipt=result.body["ledger"],
        notify=result.body.get("notify", []),
    )


@bp.get("/<token>/object")
def confirm_objection(token: str) -> str:
    access = _access(token)
    return _render("patient/confirm_object.html", access, token)


@bp.post("/<token>/object")
def object_to_sharing(token: str) -> Response | str:
    access = _access(token)
    _check_csrf(access)
    led = ledger()
    try:
        result = consents.record_objection_for_ref(
            led, access.principal, access.link.subject_ref, "direct_care", None
        )
    except DomainError as exc:
        return _problem(access, token, exc)
    return _render(
        "patient/receipt.html",
        access,
        token,
        what="objection",
        consent=None,
        receipt=result.body["ledger"],
        notify=[],
    )


@bp.get("/<token>/objections/<objection_id>/withdraw")
def confirm_objection_withdrawal(token: str, objection_id: str) -> Response | str:
    access = _access(token)
    objection = _objection_of(access, objection_id)
    if objection["status"] != "active":
        return _render(
            "patient/problem.html", access, token, message=OBJECTION_ERRORS["already-withdrawn"]
        )
    if objection["recorded_by"] is None or not consents.may_act_for_recorder(
        access.principal, objection["recorded_by"]
    ):
        return make_response(
            _render("patient/problem.html", access, token, message=OBJECTION_ERRORS["forbidden"]),
            403,
        )
    return _render("patient/confirm_withdraw_objection.html", access, token, objection=objection)


@bp.post("/<token>/objections/<objection_id>/withdraw")
def withdraw_objection(token: str, objection_id: str) -> Response | str:
    access = _access(token)
    _check_csrf(access)
    _objection_of(access, objection_id)
    try:
        result = consents.withdraw_objection(ledger(), access.principal, objection_id, None)
    except DomainError as exc:
        return _problem(access, token, exc, OBJECTION_ERRORS)
    return _render(
        "patient/receipt.html",
        access,
        token,
        what="objection withdrawal",
        consent=None,
        receipt=result.body["ledger"],
        notify=[],
    )


@bp.get("/<token>/receipts/<int:index>.tlog-proof")
def receipt_proof(token: str, index: int) -> Response:
    """The receipt as an offline proof (c2sp.org/tlog-proof) at the checkpoint the receipt
    page showed (``size``), to keep: it holds hashes and the signed checkpoint, nothing
    personal."""
    _access(token)
    size = request.args.get("size", type=int)
    try:
        text = receipts.tlog_proof(ledger(), index, size)
    except DomainError:
        # A page link, not an API: a size or index that is not there is a page not found.
        abort(404)
    return Response(text, mimetype="text/plain", headers=receipts.download_headers(index))


@bp.errorhandler(400)
def form_expired(_: Exception) -> tuple[str, int]:
    return render_template("patient/form_expired.html"), 400
