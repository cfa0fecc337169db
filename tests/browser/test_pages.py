"""The IG lead and patient pages in a real headless Chromium, against the real server."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Live, screenshot
from tests.nhs import valid_nhs_numbers

NHS = valid_nhs_numbers(3, start=943_476_600)


def _spaced(nhs: str) -> str:
    return f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"


@pytest.fixture(scope="module")
def shared(live: Live) -> dict[str, Any]:
    """A person referred from therapy to the employment adviser, with one disclosure made, and
    a second person seen by the Jobcentre (so the filters have something to leave out)."""
    made = {}
    for nhs, sender, recipient in (
        (NHS[0], "tt-leeds", "ea-tt-leeds"),
        (NHS[1], "tt-leeds", "cmht-leeds-west"),
    ):
        consent = live.api(
            "POST",
            "/v1/consents",
            f"case_system:{sender}",
            json={
                "subject": {"nhs_number": nhs},
                "purpose": "referral",
                "recipients": [recipient],
                "data_categories": ["identity", "service_status"],
                "form": "written",
                "evidence_sha256": "ab" * 32,
            },
        ).json()
        decision = live.api(
            "POST",
            "/v1/decisions",
            f"case_system:{sender}",
            json={
                "subject": {"nhs_number": nhs},
                "from": sender,
                "to": recipient,
                "purpose": "referral",
                "data_categories": ["identity", "service_status"],
            },
        ).json()
        assert decision["decision"] == "permit", decision
        disclosure = live.api(
            "POST",
            "/v1/disclosures",
            f"case_system:{sender}",
            json={"decision_id": decision["id"], "data_categories": ["identity", "service_status"]},
        )
        assert disclosure.status_code == 201
        made[nhs] = {"consent": consent, "decision": decision}
    return made


def sign_in(page: Any, live: Live, role: str = "ig_lead:tt-leeds") -> None:
    page.goto(live.url + "/ig/")
    page.get_by_label("Client token").fill(live.tokens[role])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ig/dashboard")


def search(page: Any, section: str, nhs: str, button: str) -> None:
    """Open an IG page from the menu and search it for one person, as a person would."""
    page.get_by_role("link", name=section).click()
    page.get_by_label("NHS number").fill(nhs)
    page.get_by_role("button", name=button).click()


def test_ig_sign_in_dashboard_and_sign_out(page: Any, live: Live, shared: dict[str, Any]) -> None:
    page.goto(live.url + "/ig/")
    screenshot(page, "01-ig-sign-in")
    page.get_by_label("Client token").fill(
        "cl_0000000000000000.not-a-real-token-at-all-xxxxxxxxxxx"
    )
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text().startswith("There is a problem")
    # A case system's token is not an IG lead's.
    page.get_by_label("Client token").fill(live.tokens["case_system:tt-leeds"])
    page.get_by_role("button", name="Sign in").click()
    assert "not accepted" in page.get_by_role("alert").inner_text()

    sign_in(page, live)
    assert page.get_by_role("heading", name="Dashboard", level=1).is_visible()
    assert page.locator("svg.chart").count() >= 2
    assert "localhost/consent-ledger+" in page.content()
    cookie = next(c for c in page.context.cookies() if c["name"] == "cl_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    screenshot(page, "02-ig-dashboard")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/ig/")
    page.goto(live.url + "/ig/dashboard")
    assert page.get_by_role("heading", name="Sign in").is_visible()


def test_a_form_without_its_csrf_token_is_refused(page: Any, live: Live) -> None:
    sign_in(page, live)
    resp = page.request.post(live.url + "/ig/sign-out", form={"csrf_token": "forged"})
    assert resp.status == 400
    page.goto(live.url + "/ig/dashboard")
    assert page.get_by_role("heading", name="Dashboard", level=1).is_visible()


def test_filtered_history_and_its_csv(page: Any, live: Live, shared: dict[str, Any]) -> None:
    sign_in(page, live)
    page.get_by_role("link", name="Disclosure history").click()
    page.get_by_label("NHS number").fill(_spaced(NHS[0]))
    page.get_by_label("Purpose").select_option("referral")
    page.get_by_role("button", name="Search").click()
    status = page.get_by_role("status").inner_text()
    assert status.startswith("1 disclosure found")
    rows = page.locator("table tbody tr")
    assert rows.count() == 1
    assert "Employment Advisers in Leeds Talking Therapies" in rows.first.inner_text()
    screenshot(page, "03-ig-disclosure-history")

    shown = [[cell.strip() for cell in row.locator("td").all_inner_texts()] for row in rows.all()]
    headers = [h.strip() for h in page.locator("table thead th").all_inner_texts()]
    assert NHS[0] not in page.url  # the search was POSTed
    with page.expect_download() as info:
        page.get_by_role("button", name="Download this page as CSV").click()
    text = Path(info.value.path()).read_text()
    exported = list(csv.reader(io.StringIO(text)))
    # Exactly what is shown: the same columns, the same rows, the same words.
    assert exported[0] == headers
    assert exported[1:] == shown
    assert NHS[0] not in text


def test_subject_access_report(page: Any, live: Live, shared: dict[str, Any]) -> None:
    sign_in(page, live)
    page.get_by_role("link", name="Subject access report").click()
    page.get_by_label("NHS number").fill(NHS[0])
    page.get_by_role("button", name="Show report").click()
    body = page.locator("main").inner_text()
    assert "Referral: passing the person's details" in body
    assert NHS[0] not in page.url
    assert "Who received this person's data" in body
    assert "Employment Advisers in Leeds Talking Therapies" in body
    page.emulate_media(media="print")
    screenshot(page, "04-ig-subject-access-report")
    page.emulate_media(media="screen")


def _access_link(live: Live, nhs: str, days: int = 7) -> str:
    resp = live.api(
        "POST",
        "/v1/subjects/access-links",
        "patient_portal:tt-leeds",
        json={"subject": {"nhs_number": nhs}, "expires_in_days": days},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["url"])


def test_a_patient_withdraws_through_an_access_link(
    page: Any, live: Live, shared: dict[str, Any]
) -> None:
    url = _access_link(live, NHS[1])
    page.goto(url)
    assert page.get_by_role("heading", name="Your data sharing choices", level=1).is_visible()
    assert "Leeds West Community Mental Health Team" in page.locator("main").inner_text()
    screenshot(page, "05-patient-page")

    page.get_by_role("link", name="Withdraw this agreement").first.click()
    assert page.get_by_role("heading", name="Withdraw your agreement?").is_visible()
    screenshot(page, "06-patient-confirm-withdrawal")
    page.get_by_role("button", name="Yes, withdraw my agreement").click()
    assert page.get_by_role("heading", name="You have withdrawn your agreement").is_visible()
    receipt = page.locator("pre.receipt").inner_text()
    assert receipt.startswith("localhost/consent-ledger\n")
    assert "Leeds West Community Mental Health Team" in page.locator("main").inner_text()
    screenshot(page, "07-patient-receipt")

    seen = live.api(
        "GET", "/v1/consents", "case_system:tt-leeds", params={"nhs_number": NHS[1]}
    ).json()
    assert seen["consents"][0]["status"] == "withdrawn"
    assert seen["consents"][0]["history"][-1]["event"] == "withdrawn"


def test_a_patient_withdrawal_makes_the_api_decision_a_deny(
    page: Any, live: Live, shared: dict[str, Any]
) -> None:
    url = _access_link(live, NHS[0])
    page.goto(url)
    page.get_by_role("link", name="Withdraw this agreement").first.click()
    page.get_by_role("button", name="Yes, withdraw my agreement").click()
    assert page.get_by_role("heading", name="You have withdrawn your agreement").is_visible()
    decision = live.api(
        "POST",
        "/v1/decisions",
        "case_system:tt-leeds",
        json={
            "subject": {"nhs_number": NHS[0]},
            "from": "tt-leeds",
            "to": "ea-tt-leeds",
            "purpose": "referral",
            "data_categories": ["identity"],
        },
    ).json()
    assert decision["decision"] == "deny"
    assert decision["denied_categories"][0]["reason"] == "consent_withdrawn"


def test_a_patient_objects_to_direct_care_sharing(page: Any, live: Live) -> None:
    page.goto(_access_link(live, NHS[2]))
    page.get_by_role("link", name="Object to sharing for my care").click()
    screenshot(page, "09-patient-confirm-objection")
    page.get_by_role("button", name="Yes, I object").click()
    assert page.get_by_role("heading", name="Your objection is recorded").is_visible()
    screenshot(page, "10-patient-objection-receipt")
    decision = live.api(
        "POST",
        "/v1/decisions",
        "case_system:tt-leeds",
        json={
            "subject": {"nhs_number": NHS[2]},
            "from": "tt-leeds",
            "to": "cmht-leeds-west",
            "purpose": "referral",
            "data_categories": ["identity"],
        },
    ).json()
    assert decision["decision"] == "deny"
    assert decision["denied_categories"][0]["reason"] == "objection_direct_care"


def test_a_case_systems_link_shows_only_its_organisations_part(page: Any, live: Live) -> None:
    """A Jobcentre work coach's link (its organisation only recorded an objection) does not
    show or offer to withdraw the therapy service's consent; the person's portal link does."""
    nhs = valid_nhs_numbers(1, start=943_476_700)[0]
    subject = {"nhs_number": nhs}
    given = live.api(
        "POST",
        "/v1/consents",
        "case_system:tt-leeds",
        json={
            "subject": subject,
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity"],
            "form": "verbal",
        },
    )
    assert given.status_code == 201, given.text
    objected = live.api(
        "POST",
        "/v1/objections",
        "case_system:jcp-leeds-city",
        json={"subject": subject, "scope": "direct_care"},
    )
    assert objected.status_code == 201, objected.text
    made = live.api(
        "POST", "/v1/subjects/access-links", "case_system:jcp-leeds-city", json={"subject": subject}
    )
    assert made.status_code == 201, made.text

    page.goto(made.json()["url"])
    main = page.locator("main").inner_text()
    assert "given to you by Jobcentre Plus Leeds City (example)" in main
    assert "It shows only what Jobcentre Plus Leeds City (example) can see" in main
    assert "Talking Therapies" not in main
    assert page.get_by_role("link", name="Withdraw this agreement").count() == 0
    assert page.get_by_text("You have objected").is_visible()
    screenshot(page, "11-patient-page-case-system-link")

    page.goto(_access_link(live, nhs))
    main = page.locator("main").inner_text()
    assert "It shows your whole record" in main
    assert page.get_by_role("link", name="Withdraw this agreement").count() == 1


def test_expired_and_tampered_links_show_a_clear_page(page: Any, live: Live) -> None:
    url = _access_link(live, NHS[2])
    tampered = url[:-3] + ("aaa" if not url.endswith("aaa") else "bbb")
    response = page.goto(tampered)
    assert response.status == 404
    assert page.get_by_role("heading", name="This link does not work").is_visible()
    screenshot(page, "08-patient-link-not-working")
    text = page.content()
    assert "Traceback" not in text
    assert NHS[2] not in text

    db = Path(live.server.log.parent / "consent-ledger.sqlite3")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE access_links SET expires_at = '2020-01-01 00:00:00.000000'")
    response = page.goto(url)
    assert response.status == 404
    assert page.locator("main").inner_text() == page.locator("main").inner_text()
    assert "This link does not work" in page.locator("main").inner_text()


def test_pages_work_from_the_keyboard_with_visible_focus(page: Any, live: Live) -> None:
    page.goto(live.url + "/ig/")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to main content"
    outline = page.evaluate("getComputedStyle(document.activeElement).backgroundColor")
    assert outline == "rgb(255, 235, 59)"  # the yellow focus colour
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "token"
    page.keyboard.type(live.tokens["auditor:tt-leeds"])
    page.keyboard.press("Enter")
    page.wait_for_url("**/ig/dashboard")
    assert "every organisation" in page.locator("main").inner_text()


CONTRAST_SCRIPT = (Path(__file__).parent / "contrast.js").read_text()


def test_every_page_passes_wcag_aa_contrast(page: Any, live: Live, shared: dict[str, Any]) -> None:
    pages = []
    page.goto(live.url + "/ig/")
    pages.append(("sign in", page.evaluate(CONTRAST_SCRIPT)))
    sign_in(page, live, "auditor:tt-leeds")
    pages.append(("dashboard", page.evaluate(CONTRAST_SCRIPT)))
    search(page, "Disclosure history", NHS[0], "Search")
    pages.append(("history", page.evaluate(CONTRAST_SCRIPT)))
    search(page, "Subject access report", NHS[0], "Show report")
    pages.append(("report", page.evaluate(CONTRAST_SCRIPT)))
    url = _access_link(live, NHS[0])
    page.goto(url)
    pages.append(("patient", page.evaluate(CONTRAST_SCRIPT)))
    page.goto(url + "/object")
    pages.append(("confirm", page.evaluate(CONTRAST_SCRIPT)))
    page.goto(live.url + "/p/not-a-link")
    pages.append(("invalid link", page.evaluate(CONTRAST_SCRIPT)))
    failures = [(name, f) for name, found in pages for f in found]
    assert not failures, failures


# -- 390 px wide (a small phone) ------------------------------------------------------------------

NARROW = {"width": 390, "height": 844}
# What does not fit: the page's width, every label, heading, cell, button and tag whose text is
# wider than its box, a value squeezed into a sliver beside its name, and every chart label
# outside its chart.
FIT_SCRIPT = """() => {
  const clipped = [];
  const boxes = 'label, th, td, dt, dd, button, .button, .tag, h1, h2, h3, caption, .brand, nav a';
  for (const el of document.querySelectorAll(boxes)) {
    if (el.scrollWidth > el.clientWidth + 1) {
      clipped.push(el.tagName + ': ' + el.textContent.trim().slice(0, 60));
    }
  }
  for (const el of document.querySelectorAll('dd')) {
    if (el.clientWidth < 120) clipped.push('squeezed: ' + el.textContent.trim().slice(0, 60));
  }
  for (const t of document.querySelectorAll('svg text')) {
    const box = t.getBBox();
    const view = t.ownerSVGElement.viewBox.baseVal;
    if (box.x < view.x - 0.5 || box.x + box.width > view.x + view.width + 0.5) {
      clipped.push('chart label: ' + t.textContent);
    }
  }
  return {width: document.documentElement.scrollWidth, clipped: clipped};
}"""


def _fits(page: Any, name: str) -> None:
    screenshot(page, f"narrow-{name}")
    found = page.evaluate(FIT_SCRIPT)
    assert found["width"] <= NARROW["width"], (name, found)
    assert found["clipped"] == [], (name, found)


def test_every_page_fits_a_390_px_screen(browser: Any, live: Live) -> None:
    nhs = valid_nhs_numbers(1, start=943_476_800)[0]
    subject = {"nhs_number": nhs}
    for purpose, recipient, categories in (
        ("referral", "ea-tt-leeds", ["identity", "service_status"]),
        ("evaluation", "eval-northern-uni", ["outcome_measures"]),
    ):
        given = live.api(
            "POST",
            "/v1/consents",
            "case_system:tt-leeds",
            json={
                "subject": subject,
                "purpose": purpose,
                "recipients": [recipient],
                "data_categories": categories,
                "form": "written",
                "evidence_sha256": "cd" * 32,
            },
        )
        assert given.status_code == 201, given.text
        decision = live.api(
            "POST",
            "/v1/decisions",
            "case_system:tt-leeds",
            json={
                "subject": subject,
                "from": "tt-leeds",
                "to": recipient,
                "purpose": purpose,
                "data_categories": categories,
            },
        ).json()
        assert decision["decision"] == "permit", decision
        shared = live.api(
            "POST",
            "/v1/disclosures",
            "case_system:tt-leeds",
            json={"decision_id": decision["id"], "data_categories": categories},
        )
        assert shared.status_code == 201, shared.text

    context = browser.new_context(viewport=NARROW, is_mobile=True, device_scale_factor=2)
    page = context.new_page()
    try:
        page.goto(live.url + "/ig/")
        _fits(page, "ig-sign-in")
        sign_in(page, live, "auditor:tt-leeds")
        _fits(page, "ig-dashboard")
        search(page, "Disclosure history", nhs, "Search")
        assert page.get_by_role("status").inner_text().startswith("2 disclosures found")
        assert nhs not in page.url
        _fits(page, "ig-disclosure-history")
        search(page, "Subject access report", nhs, "Show report")
        assert nhs not in page.url
        _fits(page, "ig-subject-access-report")

        url = _access_link(live, nhs)
        page.goto(url)
        _fits(page, "patient-page")
        page.get_by_role("link", name="Withdraw this agreement").last.click()
        assert "must destroy the information about you" in page.locator("main").inner_text()
        _fits(page, "patient-confirm-withdrawal")
        page.get_by_role("button", name="Yes, withdraw my agreement").click()
        _fits(page, "patient-receipt")
        page.goto(url + "/object")
        _fits(page, "patient-confirm-objection")
        page.get_by_role("button", name="Yes, I object").click()
        _fits(page, "patient-objection-receipt")
        page.goto(url)
        page.get_by_role("link", name="Withdraw your objection").click()
        _fits(page, "patient-confirm-objection-withdrawal")
        page.get_by_role("button", name="Yes, withdraw my objection").click()
        assert page.get_by_role("heading", name="Your objection is withdrawn").is_visible()
        _fits(page, "patient-objection-withdrawal-receipt")
        page.goto(live.url + "/p/not-a-link")
        _fits(page, "patient-link-not-working")
    finally:
        context.close()
