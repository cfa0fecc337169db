"""Retention as policy: the ``retention`` section of the policy document, its validation, and
the instant before which a person's records must be kept (``Retention.kept_until``)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from app.policy import PolicyError, load_policy
from app.policy.model import Period, Retention
from app.services.decisions.policies import (
    DEFAULT_POLICY_FILE,
    parse_policy_file,
    policy_from_document,
)

DOC: dict[str, Any] = yaml.safe_load(DEFAULT_POLICY_FILE.read_text())
SHIPPED = parse_policy_file(DEFAULT_POLICY_FILE)
FIXTURES = Path(__file__).parents[1] / "ledger" / "fixtures"


def _edit(change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DOC)
    change(doc)
    return doc


def _period(purpose: str, value: Any) -> Any:
    return lambda d: d["retention"]["by_purpose"][purpose].update(period=value)


# -- the shipped defaults ----------------------------------------------------------------------


def test_the_shipped_policy_states_a_cited_period_for_every_purpose_and_for_no_purpose() -> None:
    retention = SHIPPED.retention
    assert retention is not None
    assert retention.rule == "R1"
    for article in ("5(1)(e)", "5(2)", "17(3)(b)", "17(3)(e)"):
        assert article in retention.source
    assert retention.explanation
    assert set(retention.by_purpose) == set(SHIPPED.purposes)
    for period in [*retention.by_purpose.values(), retention.no_purpose]:
        assert "Records Management Code of Practice" in period.source
        assert period.after(datetime(2026, 1, 1, tzinfo=UTC)) > datetime(2026, 1, 1, tzinfo=UTC)
    # An objection or opt-out binds shares for every purpose, so it is kept at least as long
    # as any record it could have restricted.
    start = datetime(2026, 12, 3, tzinfo=UTC)
    assert retention.no_purpose.after(start) >= max(
        p.after(start) for p in retention.by_purpose.values()
    )


def test_the_shipped_periods_are_those_the_yaml_states() -> None:
    retention = SHIPPED.retention
    assert retention is not None
    stated = {p: v["period"] for p, v in DOC["retention"]["by_purpose"].items()}
    assert {p: str(v) for p, v in retention.by_purpose.items()} == stated
    assert str(retention.no_purpose) == DOC["retention"]["no_purpose"]["period"]


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.pop("retention"), "retention: is required"),
        (lambda d: d.update(retention=["P8Y"]), "retention: must be a mapping"),
        (lambda d: d["retention"].update(forever=True), "retention.forever: is not a known field"),
        (lambda d: d["retention"].pop("rule"), "retention.rule: is required"),
        (lambda d: d["retention"].update(rule="G3"), "retention.rule: 'G3' is used twice"),
        (lambda d: d["retention"].update(rule="R 1!"), "retention.rule: 'R 1!' must be a short"),
        (lambda d: d["retention"].pop("explanation"), "retention.explanation: is required"),
        (lambda d: d["retention"].update(source=" "), "retention.source: must be non-empty text"),
        (lambda d: d["retention"].pop("by_purpose"), "retention.by_purpose: is required"),
        (
            lambda d: d["retention"]["by_purpose"].pop("evaluation"),
            "retention.by_purpose.evaluation: is required (every purpose the policy declares "
            "states its period)",
        ),
        (
            lambda d: d["retention"]["by_purpose"].update(
                marketing={"period": "P1Y", "source": "x"}
            ),
            "retention.by_purpose.marketing: 'marketing' is not a declared purpose",
        ),
        (
            lambda d: d["retention"]["by_purpose"].update(referral="P8Y"),
            "retention.by_purpose.referral: must be a mapping",
        ),
        (
            lambda d: d["retention"]["by_purpose"]["referral"].update(note="x"),
            "retention.by_purpose.referral.note: is not a known field",
        ),
        (
            lambda d: d["retention"]["by_purpose"]["referral"].pop("source"),
            "retention.by_purpose.referral.source: is required",
        ),
        (
            lambda d: d["retention"]["by_purpose"]["referral"].pop("period"),
            "retention.by_purpose.referral.period: is required",
        ),
        (lambda d: d["retention"].pop("no_purpose"), "retention.no_purpose: is required"),
        (
            lambda d: d["retention"]["no_purpose"].update(period="P0D"),
            "retention.no_purpose.period: 'P0D' must be longer than zero",
        ),
        (
            _period("referral", "P0Y0M"),
            "retention.by_purpose.referral.period: 'P0Y0M' must be longer than zero",
        ),
        (
            _period("referral", "-P1Y"),
            "retention.by_purpose.referral.period: '-P1Y' must not be negative",
        ),
        (
            _period("sms_contact", "P101Y"),
            "retention.by_purpose.sms_contact.period: 'P101Y' must be at most 100 years",
        ),
        (
            _period("sms_contact", "P1200M1D"),
            "retention.by_purpose.sms_contact.period: 'P1200M1D' must be at most 100 years",
        ),
    ]
    + [
        (
            _period("referral", bad),
            f"retention.by_purpose.referral.period: {bad!r} is not an ISO 8601 duration in "
            "whole years, months and days",
        )
        for bad in (
            "P8",
            "8Y",
            "P",
            "",
            "P1.5Y",
            "P1,5Y",
            "PT8H",
            "P1YT1H",
            "P2W",
            "P1D1Y",
            "p8y",
            " P8Y",
            "P8Y\n",
            "P\uff11Y",  # a full-width digit: ASCII digits only
            "P+1Y",
            8,
            True,
        )
    ],
)
def test_a_bad_retention_section_is_refused_naming_where(change: Any, expected: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(_edit(change), "candidate.yaml")
    assert any(expected in problem for problem in info.value.problems), info.value.problems


def test_every_retention_problem_is_reported_at_once() -> None:
    def faults(d: dict[str, Any]) -> None:
        d["retention"]["by_purpose"].pop("evaluation")
        d["retention"]["by_purpose"]["referral"]["period"] = "P0D"
        d["retention"]["no_purpose"]["period"] = "eight years"

    with pytest.raises(PolicyError) as info:
        load_policy(_edit(faults), "x")
    assert len(info.value.problems) == 3


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("P8Y", "P8Y"), ("P6M", "P6M"), ("P30D", "P30D"), ("P1Y6M", "P1Y6M"), ("P0Y18M", "P18M")],
)
def test_a_period_may_combine_years_months_and_days(text: str, canonical: str) -> None:
    policy = load_policy(_edit(_period("referral", text)))
    assert policy.retention is not None
    assert str(policy.retention.period_for("referral")) == canonical


def test_the_section_is_part_of_the_version() -> None:
    longer = load_policy(_edit(_period("sms_contact", "P9Y")))
    assert longer.version != SHIPPED.version


def test_policy_publish_refuses_a_policy_without_retention(runner: Any, tmp_path: Path) -> None:
    doc = _edit(lambda d: d.pop("retention"))
    path = tmp_path / "no-retention.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = runner.invoke(args=["policy", "publish", str(path)])
    assert result.exit_code == 1
    assert "retention: is required" in result.output


def test_a_policy_published_before_retention_still_loads_as_published() -> None:
    """Its version is the hash of the exact document, and decisions made under it are replayed
    under it: it loads unchanged, and states no retention (``None``)."""
    stored = [
        json.loads(line)
        for line in (FIXTURES / "log-04cc6fc.jsonl").read_text().splitlines()
        if '"type":"policy.published"' in line
    ]
    assert stored
    for entry in stored:
        document = entry["data"]["policy"]
        assert "retention" not in document
        policy = policy_from_document(entry["data"]["version"], document)
        assert policy.version == entry["data"]["version"]
        assert policy.retention is None


# -- kept_until --------------------------------------------------------------------------------


def _retention(**by_purpose: str) -> Retention:
    doc = _edit(
        lambda d: d["retention"].update(
            by_purpose={
                p: {"period": by_purpose.get(p, "P1D"), "source": "test"} for p in d["purposes"]
            },
            no_purpose={"period": by_purpose.get("none", "P1D"), "source": "test"},
        )
    )
    retention = load_policy(doc).retention
    assert retention is not None
    return retention


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("start", "period", "end"),
    [
        ("2024-02-29T10:15:00+00:00", "P1Y", "2025-02-28T10:15:00+00:00"),
        ("2024-02-29T10:15:00+00:00", "P4Y", "2028-02-29T10:15:00+00:00"),
        ("2024-01-31T00:00:00+00:00", "P1M", "2024-02-29T00:00:00+00:00"),
        ("2023-01-31T00:00:00+00:00", "P1M", "2023-02-28T00:00:00+00:00"),
        ("2024-03-31T23:59:59+00:00", "P6M", "2024-09-30T23:59:59+00:00"),
        ("2023-12-15T12:00:00+00:00", "P1M", "2024-01-15T12:00:00+00:00"),
        ("2023-11-30T12:00:00+00:00", "P3M", "2024-02-29T12:00:00+00:00"),
        ("2024-02-15T00:00:00+00:00", "P30D", "2024-03-16T00:00:00+00:00"),
        ("2023-02-15T00:00:00+00:00", "P30D", "2023-03-17T00:00:00+00:00"),
        # Years and months first, then days (ISO 8601 / XML Schema order).
        ("2024-01-31T00:00:00+00:00", "P1Y1M1D", "2025-03-01T00:00:00+00:00"),
        ("2026-12-03T09:00:00+00:00", "P18M", "2028-06-03T09:00:00+00:00"),
        ("2026-12-03T09:00:00+00:00", "P20Y", "2046-12-03T09:00:00+00:00"),
        # The zone is kept; the addition is calendar, not a count of seconds.
        ("2024-02-29T10:15:00+01:00", "P1Y", "2025-02-28T10:15:00+01:00"),
    ],
)
def test_periods_add_by_the_calendar(start: str, period: str, end: str) -> None:
    retention = _retention(referral=period)
    assert retention.period_for("referral").after(_t(start)) == _t(end)
    assert retention.kept_until({"referral": _t(start)}) == _t(end)


def test_kept_until_is_the_latest_over_the_purposes_and_records_without_one() -> None:
    retention = _retention(referral="P20Y", sms_contact="P8Y", none="P6M")
    t = _t("2020-06-01T00:00:00+00:00")
    assert retention.kept_until({"sms_contact": t}) == _t("2028-06-01T00:00:00+00:00")
    assert retention.kept_until({"sms_contact": t, "referral": t}) == _t(
        "2040-06-01T00:00:00+00:00"
    )
    # A later event under a shorter period can still be the one that binds.
    assert retention.kept_until({"referral": t, None: _t("2045-01-01T00:00:00+00:00")}) == _t(
        "2045-07-01T00:00:00+00:00"
    )
    assert retention.period_for(None) is retention.no_purpose


def test_a_purpose_the_policy_no_longer_declares_is_kept_for_its_longest_period() -> None:
    """Records made under an earlier policy version, for a purpose this one dropped, are never
    made erasable early by the change."""
    retention = _retention(referral="P20Y", sms_contact="P8Y", none="P6M")
    t = _t("2020-06-01T00:00:00+00:00")
    assert retention.kept_until({"job_club": t}) == _t("2040-06-01T00:00:00+00:00")


def test_kept_until_needs_at_least_one_last_event() -> None:
    assert SHIPPED.retention is not None
    with pytest.raises(ValueError, match="no last event"):
        SHIPPED.retention.kept_until({})


# Aware instants across the whole range a log can hold, in UTC and in other fixed zones.
zones = st.sampled_from([UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5))])
instants = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2200, 12, 31), timezones=zones
)
purposes = st.sampled_from([*SHIPPED.purposes, None])
periods = st.builds(
    lambda y, m, d: f"P{y}Y{m}M{d}D", st.integers(0, 30), st.integers(0, 40), st.integers(0, 400)
).filter(lambda p: p != "P0Y0M0D")
last_events = st.dictionaries(purposes, instants, min_size=1)
RETENTIONS = [
    SHIPPED.retention,
    _retention(referral="P1M", evaluation="P30D", none="P1Y"),
    _retention(referral="P1D", sms_contact="P100Y", none="P2M"),
]


@given(st.sampled_from(RETENTIONS), last_events)
def test_records_are_kept_past_every_last_event(retention: Retention, events: Any) -> None:
    until = retention.kept_until(events)
    assert all(until > t for t in events.values())
    assert until == max(retention.period_for(p).after(t) for p, t in events.items())


@given(
    st.sampled_from(RETENTIONS),
    last_events,
    purposes,
    st.timedeltas(timedelta(0), timedelta(days=50 * 366)),
)
def test_a_later_last_event_never_brings_kept_until_forward(
    retention: Retention, events: Any, purpose: str | None, later: timedelta
) -> None:
    """Monotonic in each last event, and a new event (a purpose not seen before) never shortens
    what is kept either."""
    before = retention.kept_until(events)
    moved = dict(events)
    moved[purpose] = moved.get(purpose, min(events.values())) + later
    assert retention.kept_until(moved) >= before


@given(periods, instants, instants)
def test_a_period_is_monotonic_and_always_moves_forward(
    text: str, a: datetime, b: datetime
) -> None:
    period = _retention(referral=text).period_for("referral")
    assert isinstance(period, Period)
    # Calendar addition is monotonic for instants written in one zone (the service writes UTC).
    early, late = sorted((a, b.astimezone(a.tzinfo)))
    assert period.after(early) > early
    assert period.after(early) <= period.after(late)
    assert period.after(a).tzinfo is a.tzinfo
