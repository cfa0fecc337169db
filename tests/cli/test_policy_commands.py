"""consent-ledger policy publish / test / replay, and init publishing the shipped policy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from flask.testing import FlaskClient, FlaskCliRunner

from app.policy import Policy
from app.services.container import Ledger
from app.services.decisions.policies import DEFAULT_POLICY_FILE
from tests.helpers import bearer, tamper
from tests.nhs import valid_nhs_numbers

NHS = valid_nhs_numbers(2, start=943_476_800)


def _current_version(client: FlaskClient, token: str) -> str:
    # A decision reports the version in force.
    body = {
        "subject": {"nhs_number": NHS[0]},
        "from": "tt-leeds",
        "to": "cmht-leeds-west",
        "purpose": "referral",
        "data_categories": ["identity"],
    }
    return str(
        client.post("/v1/decisions", json=body, headers=bearer(token)).get_json()["policy_version"]
    )


def _variant(tmp_path: Path, change: Any, name: str = "candidate.yaml") -> Path:
    doc = yaml.safe_load(DEFAULT_POLICY_FILE.read_text())
    change(doc)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_init_publishes_the_shipped_policy_once(runner: FlaskCliRunner, ledger: Ledger) -> None:
    first = runner.invoke(args=["init"])
    assert "Published the shipped policy" in first.output
    second = runner.invoke(args=["init"])
    assert "Published" not in second.output


def test_publish_a_new_version_binds_the_next_decision(
    runner: FlaskCliRunner,
    client: FlaskClient,
    policy: Policy,
    make_token: Callable[..., str],
    tmp_path: Path,
) -> None:
    token = make_token("tt-leeds", "case_system")
    assert _current_version(client, token) == policy.version
    candidate = _variant(tmp_path, lambda d: d.update(name="stricter"))
    result = runner.invoke(args=["policy", "publish", str(candidate)])
    assert result.exit_code == 0, result.output
    assert "published policy" in result.output
    new_version = _current_version(client, token)
    assert new_version != policy.version
    again = runner.invoke(args=["policy", "publish", str(candidate)])
    assert "already in force" in again.output


def test_a_malformed_policy_is_refused_and_the_old_one_stays(
    runner: FlaskCliRunner,
    client: FlaskClient,
    policy: Policy,
    make_token: Callable[..., str],
    ledger: Ledger,
    tmp_path: Path,
) -> None:
    token = make_token("tt-leeds", "case_system")
    size = client.get("/healthz").get_json()["log_size"]

    def break_it(doc: dict[str, Any]) -> None:
        doc["rules"][5]["ceiling"].append("shoe_size")

    result = runner.invoke(args=["policy", "publish", str(_variant(tmp_path, break_it))])
    assert result.exit_code == 1
    assert "candidate.yaml" in result.output
    assert "rules[5].ceiling[4]: 'shoe_size' is not a category or tier" in result.output
    assert "the policy in force is unchanged" in result.output
    assert client.get("/healthz").get_json()["log_size"] == size
    assert _current_version(client, token) == policy.version


def test_policy_test_runs_the_scenarios_and_fails_a_weaker_policy(
    runner: FlaskCliRunner, tmp_path: Path
) -> None:
    shipped = runner.invoke(args=["policy", "test"])
    assert shipped.exit_code == 0, shipped.output
    assert " passed, 0 failed" in shipped.output

    def drop_p12(doc: dict[str, Any]) -> None:
        doc["rules"] = [r for r in doc["rules"] if r["id"] != "P12"]

    weaker = runner.invoke(args=["policy", "test", str(_variant(tmp_path, drop_p12))])
    assert weaker.exit_code == 1
    assert "FAIL sms_contact.yaml" in weaker.output


def test_replay_reports_the_decisions_a_candidate_would_change(
    runner: FlaskCliRunner,
    client: FlaskClient,
    policy: Policy,
    make_token: Callable[..., str],
    tmp_path: Path,
) -> None:
    tt = make_token("tt-leeds", "case_system")
    client.post(
        "/v1/consents",
        headers=bearer(tt),
        json={
            "subject": {"nhs_number": NHS[1]},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity"],
            "form": "verbal",
        },
    )
    body = {
        "subject": {"nhs_number": NHS[1]},
        "from": "tt-leeds",
        "to": "ea-tt-leeds",
        "purpose": "referral",
        "data_categories": ["identity"],
    }
    permit = client.post("/v1/decisions", json=body, headers=bearer(tt)).get_json()
    assert permit["decision"] == "permit"
    _current_version(client, tt)  # an implied-consent decision that P2's change leaves alone

    def signed_referrals(doc: dict[str, Any]) -> None:
        next(r for r in doc["rules"] if r["id"] == "P2")["forms"] = "signed"

    result = runner.invoke(args=["policy", "replay", str(_variant(tmp_path, signed_referrals))])
    assert result.exit_code == 0, result.output
    assert "2 decisions replayed" in result.output
    assert "1 would change" in result.output
    assert permit["id"] in result.output
    assert "consent_not_signed" in result.output


def test_replay_names_an_entry_it_cannot_read_instead_of_failing(
    runner: FlaskCliRunner, ledger: Ledger, policy: Policy, tmp_path: Path
) -> None:
    """A signed entry whose payload is not as its type declares (here, a policy entry with a
    field missing, as a tampered database could hold) stops the replay with a message naming
    the entry and the field, exit 1, no traceback."""
    tamper(
        ledger,
        "UPDATE log_entries SET leaf = :leaf WHERE idx = 0",
        leaf=b'{"data":{"name":"x","version":"v"},"time":"2026-12-03T12:00:00.000000Z",'
        b'"type":"policy.published","v":1}',
    )
    result = runner.invoke(args=["policy", "replay", str(_variant(tmp_path, lambda doc: None))])
    assert result.exit_code == 1
    assert "entry 0" in result.output
    assert "policy" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
