"""What a person sees on the IG and patient pages (issue 15, item 7), without a browser."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient, FlaskCliRunner

from app.policy import Policy
from app.services.container import Ledger
from tests.helpers import bearer, form_token, ig_sign_in
from tests.nhs import valid_nhs_numbers

NHS = valid_nhs_numbers(4, start=943_478_000)
TT = "Leeds NHS Talking Therapies (example)"


def _text(html: str) -> str:
    """What a reader sees: the page's text without markup, its spaces run together."""
    html = re.sub(r"<(script|style|title)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def _main(html: str) -> str:
    found = re.search(r"<main[^>]*>(.*)</main>", html, flags=re.S)
    assert found
    return found.group(1)


def _consent(client: FlaskClient, token: str, nhs: str, **fields: Any) -> dict[str, Any]:
    body = {
        "subject": {"nhs_number": nhs},
        "purpose": "referral",
        "recipients": ["ea-tt-leeds"],
        "data_categories": ["identity", "service_status"],
        "form": "verbal",
        **fields,
    }
    resp = client.post("/v1/consents", headers=bearer(token), json=body)
    assert resp.status_code == 201, resp.get_json()
    return dict(resp.get_json())


def _share(client: FlaskClient, token: str, nhs: str) -> None:
    """A referral consent to ea-tt-leeds, a permit under it and one disclosure."""
    _consent(client, token, nhs)
    decision = client.post(
        "/v1/decisions",
        headers=bearer(token),
        json={
            "subject": {"nhs_number": nhs},
            "from": "tt-leeds",
            "to": "ea-tt-leeds",
            "purpose": "referral",
            "data_categories": ["identity"],
        },
    ).get_json()
    assert decision["decision"] == "permit", decision
    made = client.post(
        "/v1/disclosures",
        headers=bearer(token),
        json={"decision_id": decision["id"], "data_categories": ["identity"]},
    )
    assert made.status_code == 201


def _link(client: FlaskClient, token: str, nhs: str) -> str:
    resp = client.post(
        "/v1/subjects/access-links", headers=bearer(token), json={"subject": {"nhs_number": nhs}}
    )
    assert resp.status_code == 201, resp.get_json()
    return "/p/" + str(resp.get_json()["url"]).rsplit("/p/", 1)[1]


# -- IG pages ----------------------------------------------------------------------------------


def test_an_nhs_number_is_searched_for_by_post_and_never_put_in_a_url(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    tt = make_token("tt-leeds", "case_system")
    _share(client, tt, NHS[0])
    _share(client, tt, NHS[1])
    ig_sign_in(client, make_token("tt-leeds", "ig_lead"))
    for path in ("/ig/disclosures", "/ig/report"):
        form = client.get(path).text
        assert re.search(r'<form method="post" action="' + path + '"', form), path

    csrf = form_token(client.get("/ig/disclosures").text)
    found = client.post("/ig/disclosures", data={"csrf_token": csrf, "nhs_number": NHS[0]})
    assert found.status_code == 200
    assert found.headers["Cache-Control"] == "no-store"
    assert "1 disclosure found" in _text(found.text)
    # The next page and the CSV are forms too: no link or form address carries the number.
    addresses = re.findall(r'(?:href|action)="([^"]*)"', found.text)
    assert addresses
    assert not [a for a in addresses if NHS[0] in a.replace("+", "").replace("%20", "")]
    exported = client.post(
        "/ig/disclosures.csv", data={"csrf_token": csrf, "nhs_number": NHS[0], "page": "1"}
    )
    assert exported.status_code == 200
    assert exported.headers["Cache-Control"] == "no-store"
    assert len(exported.text.strip().splitlines()) == 2  # the header and the one disclosure

    report = client.post("/ig/report", data={"csrf_token": csrf, "nhs_number": NHS[0]})
    assert report.status_code == 200
    assert report.headers["Cache-Control"] == "no-store"
    assert "Employment Advisers in Leeds Talking Therapies" in report.text

    # A number put in a link is not used (nor shown back): the person is told to use the form.
    for path in ("/ig/disclosures", "/ig/report", "/ig/disclosures.csv"):
        answer = client.get(f"{path}?nhs_number={NHS[0]}")
        assert answer.status_code == 400, path
        assert NHS[0] not in answer.text
        assert "<td" not in answer.text  # nothing found, nothing shown
    # Searching still needs the form's token.
    forged = client.post("/ig/report", data={"csrf_token": "forged", "nhs_number": NHS[0]})
    assert forged.status_code == 400
    assert "<td" not in forged.text


def test_filters_without_a_person_still_make_links(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    """Organisation, purpose and dates say nothing about a person: a search by them can still
    be bookmarked and paged through by links."""
    _share(client, make_token("tt-leeds", "case_system"), NHS[0])
    ig_sign_in(client, make_token("tt-leeds", "ig_lead"))
    csrf = form_token(client.get("/ig/disclosures").text)
    searched = client.post("/ig/disclosures", data={"csrf_token": csrf, "purpose": "referral"})
    assert searched.status_code == 303
    assert searched.headers["Location"] == "/ig/disclosures?purpose=referral"
    page = client.get(searched.headers["Location"])
    assert page.status_code == 200
    assert "1 disclosure found" in _text(page.text)
    assert '<form class="no-print" method="get" action="/ig/disclosures.csv">' in page.text


def _deny(client: FlaskClient, token: str, nhs: str) -> None:
    decision = client.post(
        "/v1/decisions",
        headers=bearer(token),
        json={
            "subject": {"nhs_number": nhs},
            "from": "tt-leeds",
            "to": "eval-northern-uni",
            "purpose": "evaluation",
            "data_categories": ["identity"],
        },
    ).get_json()
    assert decision["decision"] == "deny"


def test_the_dashboard_charts_use_the_words_of_the_tables(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    tt = make_token("tt-leeds", "case_system")
    _share(client, tt, NHS[0])
    _deny(client, tt, NHS[1])
    ig_sign_in(client, make_token("tt-leeds", "ig_lead"))
    html = client.get("/ig/dashboard").text
    charts = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(charts) == 3
    cells = {_text(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", html, flags=re.S)} | {
        _text(c) for c in re.findall(r"<caption>(.*?)</caption>", html, flags=re.S)
    }
    labels = [
        _text(t)
        for chart in charts
        for t in re.findall(r"<text[^>]*>(.*?)</text>", chart, flags=re.S)
        if not _text(t).isdigit()
    ]
    assert labels
    assert [label for label in labels if label not in cells] == []
    hovers = [
        _text(t)
        for chart in charts
        for t in re.findall(r"<rect[^>]*><title>(.*?)</title>", chart, flags=re.S)
    ]
    assert hovers  # "<day>, <purpose>: <n>", each word as in the table
    for hover in hovers:
        day, rest = hover.split(", ", 1)
        purpose = rest.rsplit(": ", 1)[0]
        assert day in cells, hover
        assert purpose in cells, hover


@pytest.mark.parametrize(
    ("role", "says"),
    [
        ("ig_lead", f"Only disclosures from or to {TT} are shown"),
        ("auditor", "Disclosures between every organisation are shown"),
    ],
)
def test_the_history_says_whose_disclosures_it_shows(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str], role: str, says: str
) -> None:
    ig_sign_in(client, make_token("tt-leeds", role))
    assert says in _text(client.get("/ig/disclosures").text)
    csrf = form_token(client.get("/ig/report").text)
    report = client.post("/ig/report", data={"csrf_token": csrf, "nhs_number": NHS[0]})
    in_report = {
        "ig_lead": f"Only records that involve {TT} are shown",
        "auditor": "Records of every organisation are shown",
    }
    assert in_report[role] in _text(report.text)


def test_the_subject_access_report_speaks_of_the_person(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    tt = make_token("tt-leeds", "case_system")
    _share(client, tt, NHS[0])
    _consent(
        client,
        tt,
        NHS[0],
        purpose="evaluation",
        recipients=["eval-northern-uni"],
        data_categories=["outcome_measures"],
        form="written",
        evidence_sha256="ab" * 32,
    )
    ig_sign_in(client, make_token("tt-leeds", "ig_lead"))
    csrf = form_token(client.get("/ig/report").text)
    report = _text(
        _main(client.post("/ig/report", data={"csrf_token": csrf, "nhs_number": NHS[0]}).text)
    )
    assert "Referral: passing the person's details to another service" in report
    assert "Evaluation:" in report
    assert re.findall(r"\b(?:you|your|yours)\b", report, flags=re.I) == []


@pytest.mark.parametrize(
    ("minutes", "says"),
    [(0, "(less than a minute ago)"), (1, "(1 minute ago)"), (2, "(2 minutes ago)")],
)
def test_the_dashboard_counts_in_plain_words(
    client: FlaskClient,
    policy: Policy,
    ledger: Ledger,
    make_token: Callable[..., str],
    minutes: int,
    says: str,
) -> None:
    ig_sign_in(client, make_token("tt-leeds", "ig_lead"))
    real = ledger.clock
    checkpoint_at = real()
    ledger.clock = lambda: checkpoint_at + timedelta(minutes=minutes, seconds=5)
    try:
        # The sign-in wrote nothing to the log, so the newest checkpoint is the policy's.
        text = _text(client.get("/ig/dashboard").text)
    finally:
        ledger.clock = real
    assert says in text


# -- patient page ------------------------------------------------------------------------------


def test_two_alike_agreements_can_be_told_apart(
    client: FlaskClient, policy: Policy, ledger: Ledger, make_token: Callable[..., str]
) -> None:
    tt = make_token("tt-leeds", "case_system")
    real = ledger.clock
    try:
        ledger.clock = lambda: datetime(2027, 1, 15, 9, 30, tzinfo=UTC)  # GMT
        first = _consent(client, tt, NHS[2], form="verbal")
        ledger.clock = lambda: datetime(2027, 7, 1, 12, 5, tzinfo=UTC)  # BST
        second = _consent(client, tt, NHS[2], form="written", evidence_sha256="ab" * 32)
        link = _link(client, make_token("tt-leeds", "patient_portal"), NHS[2])
        page = client.get(link).text
        confirms = [
            _text(_main(client.get(f"{link}/consents/{c['id']}/withdraw").text))
            for c in (first, second)
        ]
    finally:
        ledger.clock = real
    sections = [
        _text(s)
        for s in re.findall(r'<section class="card agreement".*?</section>', page, flags=re.S)
    ]
    assert len(sections) == 2
    said = [
        f"Recorded by {TT} on 15 January 2027, 09:30 GMT, by talking with you (verbal).",
        f"Recorded by {TT} on 1 July 2027, 13:05 BST, on a signed form (written).",
    ]
    for section, confirm, recorded in zip(sections, confirms, said, strict=True):
        assert recorded in section
        # The confirmation step names the one being withdrawn, in the same words.
        assert recorded in confirm


@pytest.mark.parametrize(
    ("purpose", "recipient", "categories", "destroy"),
    [
        ("evaluation", "eval-northern-uni", ["outcome_measures"], True),
        ("referral", "ea-tt-leeds", ["identity"], False),
    ],
)
def test_withdrawing_evaluation_consent_says_the_evaluator_must_destroy_what_it_holds(
    client: FlaskClient,
    policy: Policy,
    make_token: Callable[..., str],
    purpose: str,
    recipient: str,
    categories: list[str],
    destroy: bool,
) -> None:
    tt = make_token("tt-leeds", "case_system")
    consent = _consent(
        client, tt, NHS[3], purpose=purpose, recipients=[recipient], data_categories=categories
    )
    link = _link(client, make_token("tt-leeds", "patient_portal"), NHS[3])
    confirm = client.get(f"{link}/consents/{consent['id']}/withdraw").text
    says = "must destroy the information about you that it holds"
    assert (says in _text(confirm)) is destroy
    receipt = client.post(
        f"{link}/consents/{consent['id']}/withdraw", data={"csrf_token": form_token(confirm)}
    ).text
    assert "You have withdrawn your agreement" in receipt
    assert (says in _text(receipt)) is destroy


def test_the_receipt_says_how_to_check_it_and_the_check_it_gives_passes(
    client: FlaskClient,
    runner: FlaskCliRunner,
    policy: Policy,
    make_token: Callable[..., str],
    tmp_path: Path,
) -> None:
    link = _link(client, make_token("tt-leeds", "patient_portal"), NHS[3])
    csrf = form_token(client.get(f"{link}/object").text)
    page = client.post(f"{link}/object", data={"csrf_token": csrf}).text
    receipt = _text(page)
    assert "How to check this receipt" in receipt
    assert "/v1/log/key" in receipt
    # The command the page gives, run on the file the page offers, with the published key.
    command = re.search(
        r"consent-ledger (check-receipt) (receipt-\d+\.tlog-proof) --key KEY "
        r"--fingerprint ([0-9a-f]{64})",
        receipt,
    )
    assert command is not None, receipt
    download = re.search(r'href="([^"]+)" download', page)
    assert download is not None
    proof = tmp_path / command.group(2)
    proof.write_text(client.get(unescape(download.group(1))).text)
    vkey = client.get("/v1/log/key").text.strip()
    args = [command.group(1), str(proof), "--key", vkey, "--fingerprint", command.group(3)]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output


def test_an_objection_can_be_withdrawn_on_the_patient_page(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    portal = make_token("tt-leeds", "patient_portal")
    link = _link(client, portal, NHS[0])
    client.post(
        f"{link}/object", data={"csrf_token": form_token(client.get(f"{link}/object").text)}
    )
    home = client.get(link).text
    found = re.search(r'href="(' + link + r'/objections/(obj_[0-9a-f]+)/withdraw)"', home)
    assert found, "no way to withdraw the objection"
    confirm = client.get(found.group(1)).text
    assert "Withdraw your objection?" in confirm
    done = client.post(found.group(1), data={"csrf_token": form_token(confirm)})
    assert done.status_code == 200
    assert "Your objection is withdrawn" in done.text
    assert "How to check this receipt" in _text(done.text)
    seen = client.get(
        f"/v1/consents?nhs_number={NHS[0]}", headers=bearer(make_token("tt-leeds", "auditor"))
    ).get_json()
    assert seen["objections"][0]["status"] == "withdrawn"
    home = _text(client.get(link).text)
    assert "Object to sharing for my care" in home  # and the person can object again
    again = client.post(found.group(1), data={"csrf_token": form_token(confirm)})
    assert again.status_code == 409
    assert "already withdrawn" in _text(again.text)


def test_a_link_cannot_withdraw_someone_elses_objection(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    portal = make_token("tt-leeds", "patient_portal")
    theirs = _link(client, portal, NHS[1])
    client.post(
        f"{theirs}/object", data={"csrf_token": form_token(client.get(f"{theirs}/object").text)}
    )
    objection = re.search(r"/objections/(obj_[0-9a-f]+)/withdraw", client.get(theirs).text)
    assert objection
    mine = _link(client, portal, NHS[0])
    csrf = form_token(client.get(f"{mine}/object").text)
    path = f"{mine}/objections/{objection.group(1)}/withdraw"
    assert client.get(path).status_code == 404
    resp = client.post(path, data={"csrf_token": csrf})
    assert resp.status_code == 404
    assert "This link does not work" in resp.text
    seen = client.get(
        f"/v1/consents?nhs_number={NHS[1]}", headers=bearer(make_token("tt-leeds", "auditor"))
    ).get_json()
    assert seen["objections"][0]["status"] == "active"


def test_a_case_systems_link_offers_only_the_objections_its_organisation_recorded(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    _consent(client, make_token("tt-leeds", "case_system"), NHS[2])
    jcp = make_token("jcp-leeds-city", "case_system")
    objected = client.post(
        "/v1/objections",
        headers=bearer(jcp),
        json={"subject": {"nhs_number": NHS[2]}, "scope": "direct_care"},
    )
    assert objected.status_code == 201
    theirs = client.get(_link(client, jcp, NHS[2])).text
    assert "Withdraw your objection" in theirs
    others = client.get(_link(client, make_token("tt-leeds", "case_system"), NHS[2])).text
    assert "You have objected" in others
    assert "Withdraw your objection" not in others
    assert "ask Jobcentre Plus" not in others  # who recorded it is not told to another service


def test_withdrawing_a_national_data_opt_out_is_described_as_one(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    portal = make_token("tt-leeds", "patient_portal")
    opted = client.post(
        "/v1/objections",
        json={"subject": {"nhs_number": NHS[2]}, "scope": "national_data_opt_out"},
        headers=bearer(portal),
    ).get_json()
    link = _link(client, portal, NHS[2])
    confirm = _text(client.get(f"{link}/objections/{opted['id']}/withdraw").text)
    assert "national data opt-out" in confirm
    assert "research and planning" in confirm
    assert "for your care without asking you first" not in confirm
