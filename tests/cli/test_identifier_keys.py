"""Identifier key rotation (issue 14, item 5): ``consent-ledger keys rotate-identifier`` adds a
key, lookups try it and then the older ones, ``--rekey`` moves every mapping that holds a sealed
identifier, and ``keys retire-identifier`` destroys an old key once nothing uses it. Nothing in
the log changes, and everyone is still found under the same ``subject_ref``."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select, update

from app import create_app, get_ledger
from app.models import Subject
from app.policy import Policy
from app.services.container import Ledger
from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers

RECORDER = "tt-leeds"
PEOPLE = valid_nhs_numbers(3)
LOCAL = {"local_system": RECORDER, "local_value": "RR8-0001234"}


def _consent(client: FlaskClient, token: str, subject: dict[str, Any], **headers: str) -> Any:
    resp = client.post(
        "/v1/consents",
        headers={**bearer(token), **headers},
        json={
            "subject": subject,
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity"],
            "form": "verbal",
        },
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _refs(client: FlaskClient, auditor: str) -> dict[str, set[str]]:
    """Each person's subject_ref as a lookup by NHS number or local identifier finds it."""
    queries = {nhs: {"nhs_number": nhs} for nhs in PEOPLE[:2]}
    queries["local"] = LOCAL
    out = {}
    for name, query in queries.items():
        resp = client.get("/v1/consents", query_string=query, headers=bearer(auditor))
        assert resp.status_code == 200
        out[name] = {c["subject_ref"] for c in resp.get_json()["consents"]}
    return out


def _log_state(client: FlaskClient) -> str:
    # The signed checkpoint body names the size and the root; its signature line varies.
    return client.get("/v1/log/checkpoint").get_data(as_text=True).split("\n\n")[0]


def _key_ids(ledger: Ledger) -> list[str | None]:
    with ledger.db.read() as session:
        keys = session.execute(select(Subject.key_id)).scalars()
        return sorted(keys, key=lambda k: (k is not None, k or ""))  # None first


def _ok(runner: FlaskCliRunner, *args: str) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _new_key_id(output: str) -> str:
    found = re.search(r"added identifier key ([0-9a-f]{16})", output)
    assert found, output
    return found.group(1)


@pytest.fixture
def people(
    client: FlaskClient, make_token: Callable[..., str], policy: Policy
) -> dict[str, set[str]]:
    """Two people named by NHS number and one by a local identifier, each with a consent."""
    recorder = make_token(RECORDER, "case_system")
    for nhs in PEOPLE[:2]:
        _consent(client, recorder, {"nhs_number": nhs})
    _consent(client, recorder, {"local_id": {"system": RECORDER, "value": LOCAL["local_value"]}})
    found = _refs(client, make_token(RECORDER, "auditor"))
    assert all(len(refs) == 1 for refs in found.values())
    return found


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_rotate_rekey_and_retire_change_nothing_in_the_log_and_everyone_is_still_found(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    ledger: Ledger,
    make_token: Callable[..., str],
    people: dict[str, set[str]],
) -> None:
    auditor = make_token(RECORDER, "auditor")
    before = _log_state(client)
    (old,) = set(_key_ids(ledger))
    assert old is not None
    assert re.fullmatch(r"[0-9a-f]{16}", old)

    rotated = _ok(runner, "keys", "rotate-identifier")
    new = _new_key_id(rotated)
    assert new != old
    key_file = ledger.settings.instance_path / "identifier-keys" / "2.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_bytes().hex() not in rotated  # a key is never printed
    # Lookups try the new key, then the old: everyone is found before any re-keying.
    assert _refs(client, auditor) == people

    rekeyed = _ok(runner, "keys", "rotate-identifier", "--rekey")
    assert "rekeyed 3/3" in rekeyed
    assert _key_ids(ledger) == [new, new, new]
    # Resumable: a second pass finds nothing left to move.
    assert "nothing to re-key" in _ok(runner, "keys", "rotate-identifier", "--rekey")

    retired = _ok(runner, "keys", "retire-identifier", old)
    assert f"retired identifier key {old}" in retired
    assert not ledger.settings.identifier_key_path.exists()
    listed = _ok(runner, "keys", "list")
    assert new in listed
    assert old not in listed

    assert _refs(client, auditor) == people
    assert _log_state(client) == before
    assert "log verified" in _ok(runner, "verify", "--quiet")
    assert "projections match the log" in _ok(runner, "rebuild", "--check")
    # init keeps the keys as they are: it does not bring back a retired identifier.key.
    assert "Kept the identifier keys (newest " + new in _ok(runner, "init")
    assert not ledger.settings.identifier_key_path.exists()
    # A new person is mapped under the new key.
    _consent(client, make_token(RECORDER, "case_system"), {"nhs_number": PEOPLE[2]})
    assert _key_ids(ledger) == [new] * 4


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_mapping_made_before_key_ids_moves_when_next_written_about(
    client: FlaskClient,
    runner: FlaskCliRunner,
    ledger: Ledger,
    make_token: Callable[..., str],
    people: dict[str, set[str]],
) -> None:
    # As rows made before this change: no key id and no sealed identifier.
    with ledger.db.write_engine.begin() as conn:
        conn.execute(update(Subject).values(key_id=None, sealed=None))
    (old,) = {k.key_id for k in ledger.identifier_keys.all}
    # Written about before any rotation, a person's row gets its key id and sealed identifier.
    recorder = make_token(RECORDER, "case_system")
    _consent(client, recorder, {"nhs_number": PEOPLE[0]})
    assert _key_ids(ledger) == [None, None, old]
    new = _new_key_id(_ok(runner, "keys", "rotate-identifier"))

    rekeyed = _ok(runner, "keys", "rotate-identifier", "--rekey")
    assert "rekeyed 1/1" in rekeyed
    assert "2 mappings made before key ids" in rekeyed
    assert "cannot be retired yet" in rekeyed
    refused = runner.invoke(args=["keys", "retire-identifier", old])
    assert refused.exit_code == 1
    assert "2 mappings still use it" in refused.output
    assert ledger.settings.identifier_key_path.exists()

    # A write about a person moves their row to the newest key in the same transaction.
    _consent(client, recorder, {"nhs_number": PEOPLE[1]})
    _consent(client, recorder, {"local_id": {"system": RECORDER, "value": LOCAL["local_value"]}})
    assert _key_ids(ledger) == [new, new, new]
    with ledger.db.read() as session:
        sealed = session.execute(
            select(func.count()).select_from(Subject).where(Subject.sealed.is_not(None))
        ).scalar_one()
    assert sealed == 3
    _ok(runner, "keys", "retire-identifier", old)
    assert _refs(client, make_token(RECORDER, "auditor")) == people


def test_a_running_service_picks_up_a_new_key_before_rekeying_moves_its_people(
    app: Flask,
    runner: FlaskCliRunner,
    instance_path: Path,
    database_url: str,
    make_token: Callable[..., str],
    people: dict[str, set[str]],
) -> None:
    """Another process (a worker started before the rotation) must not create a second
    mapping for a person whose row the re-keying pass moved under a key it had not loaded."""
    other = create_app(
        {"TESTING": True, "INSTANCE_PATH": str(instance_path), "DATABASE_URL": database_url}
    )
    worker = other.test_client()
    auditor, recorder = make_token(RECORDER, "auditor"), make_token(RECORDER, "case_system")
    assert _refs(worker, auditor) == people  # its keys are loaded now
    _ok(runner, "keys", "rotate-identifier")
    _ok(runner, "keys", "rotate-identifier", "--rekey")
    assert _refs(worker, auditor) == people
    _consent(worker, recorder, {"nhs_number": PEOPLE[0]})
    assert _refs(worker, auditor) == people
    with get_ledger(other).db.read() as session:
        assert session.execute(select(func.count()).select_from(Subject)).scalar_one() == 3
    get_ledger(other).db.dispose()


def test_a_retry_recorded_before_a_rotation_is_still_the_same_request(
    client: FlaskClient, runner: FlaskCliRunner, make_token: Callable[..., str], policy: Policy
) -> None:
    recorder = make_token(RECORDER, "case_system")
    subject = {"nhs_number": PEOPLE[0]}
    first = _consent(client, recorder, subject, **{"Idempotency-Key": "retry-1"})
    _ok(runner, "keys", "rotate-identifier")
    _ok(runner, "keys", "rotate-identifier", "--rekey")
    again = _consent(client, recorder, subject, **{"Idempotency-Key": "retry-1"})
    assert again == first


def test_retiring_is_refused_for_the_newest_key_and_an_unknown_id(
    runner: FlaskCliRunner, ledger: Ledger
) -> None:
    (only,) = ledger.identifier_keys.all
    newest = runner.invoke(args=["keys", "retire-identifier", only.key_id])
    assert newest.exit_code == 1
    assert "newest identifier key" in newest.output
    unknown = runner.invoke(args=["keys", "retire-identifier", "0123456789abcdef"])
    assert unknown.exit_code == 1
    assert "no identifier key 0123456789abcdef" in unknown.output
    assert ledger.settings.identifier_key_path.exists()


def test_a_backup_whose_mappings_use_a_retired_key_is_not_restored(
    runner: FlaskCliRunner, ledger: Ledger, people: dict[str, set[str]], tmp_path: Path
) -> None:
    """Backups hold the database, not the keys: a copy taken before a re-keying needs the key
    it was made under, so restoring it after that key was destroyed would lose everyone."""
    copy = tmp_path / "before-rotation.sqlite3"
    _ok(runner, "backup", str(copy))
    (old,) = {k.key_id for k in ledger.identifier_keys.all}
    _ok(runner, "keys", "rotate-identifier")
    _ok(runner, "keys", "rotate-identifier", "--rekey")
    _ok(runner, "keys", "retire-identifier", old)
    refused = runner.invoke(args=["restore", str(copy)])
    assert refused.exit_code == 1
    assert f"mappings are under key {old}, which this instance no longer holds" in refused.output
    assert _key_ids(ledger) == [ledger.identifier_keys.newest.key_id] * 3


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_service_without_the_key_its_mappings_are_under_refuses_to_serve_until_it_is_back(
    runner: FlaskCliRunner,
    instance_path: Path,
    database_url: str,
    make_token: Callable[..., str],
    people: dict[str, set[str]],
    tmp_path: Path,
) -> None:
    """As a host the new key was not copied to, or a database put back (pg_restore) from
    before a key was retired: it would not find those people and would map them afresh."""
    _ok(runner, "keys", "rotate-identifier")
    _ok(runner, "keys", "rotate-identifier", "--rekey")
    key_file = instance_path / "identifier-keys" / "2.key"
    kept = tmp_path / "2.key"
    key_file.rename(kept)
    host = create_app(
        {"TESTING": True, "INSTANCE_PATH": str(instance_path), "DATABASE_URL": database_url}
    )
    worker = host.test_client()
    assert worker.get("/healthz").status_code == 503
    recorder = make_token(RECORDER, "case_system")
    refused = worker.post(
        "/v1/consents",
        headers=bearer(recorder),
        json={
            "subject": {"nhs_number": PEOPLE[0]},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity"],
            "form": "verbal",
        },
    )
    assert refused.status_code == 503
    kept.rename(key_file)
    assert worker.get("/healthz").status_code == 200
    _consent(worker, recorder, {"nhs_number": PEOPLE[0]})
    with get_ledger(host).db.read() as session:
        assert session.execute(select(func.count()).select_from(Subject)).scalar_one() == 3
    get_ledger(host).db.dispose()


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_decision_finds_its_person_under_the_old_key_and_moves_them(
    client: FlaskClient,
    runner: FlaskCliRunner,
    ledger: Ledger,
    make_token: Callable[..., str],
    people: dict[str, set[str]],
) -> None:
    """The decision path resolves people through the batch prefetch (facts.want): it too tries
    every key, and the write moves the person it found under an older key."""
    new = _new_key_id(_ok(runner, "keys", "rotate-identifier"))
    decided = client.post(
        "/v1/decisions",
        headers=bearer(make_token(RECORDER, "case_system")),
        json={
            "subject": {"nhs_number": PEOPLE[0]},
            "from": RECORDER,
            "to": "ea-tt-leeds",
            "purpose": "referral",
            "data_categories": ["identity"],
        },
    )
    assert decided.status_code == 200, decided.get_json()
    assert decided.get_json()["decision"] == "permit"
    assert decided.get_json()["subject_ref"] in people[PEOPLE[0]]
    assert _key_ids(ledger).count(new) == 1


def test_a_patient_form_served_before_a_rotation_still_posts_until_its_key_is_retired(
    client: FlaskClient,
    runner: FlaskCliRunner,
    ledger: Ledger,
    make_token: Callable[..., str],
    people: dict[str, set[str]],
) -> None:
    recorder = make_token(RECORDER, "case_system")
    _consent(client, recorder, {"nhs_number": PEOPLE[0]})
    consents = client.get(
        "/v1/consents", query_string={"nhs_number": PEOPLE[0]}, headers=bearer(recorder)
    ).get_json()["consents"]
    url = client.post(
        "/v1/subjects/access-links",
        headers=bearer(recorder),
        json={"subject": {"nhs_number": PEOPLE[0]}},
    ).get_json()["url"]
    token = url.rsplit("/p/", 1)[1]
    forms = [f"/p/{token}/consents/{c['id']}/withdraw" for c in consents]

    def csrf(form: str) -> str:
        found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(form).text)
        assert found
        return found.group(1)

    before = csrf(forms[0])
    (old,) = {k.key_id for k in ledger.identifier_keys.all}
    _ok(runner, "keys", "rotate-identifier")
    assert csrf(forms[1]) != before  # pages now embed the new key's token
    posted = client.post(forms[0], data={"csrf_token": before})
    assert "You have withdrawn your agreement" in posted.text

    _ok(runner, "keys", "rotate-identifier", "--rekey")
    _ok(runner, "keys", "retire-identifier", old)
    assert client.post(forms[1], data={"csrf_token": before}).status_code == 400


def test_an_interrupted_rekeying_pass_resumes_where_it_stopped(
    runner: FlaskCliRunner, ledger: Ledger, people: dict[str, set[str]]
) -> None:
    from app.services.consents import identifier_keys

    new = _new_key_id(_ok(runner, "keys", "rotate-identifier"))

    class Stop(Exception):
        pass

    def stop_after_first_chunk(done: int, total: int) -> None:
        if done:
            raise Stop

    with pytest.raises(Stop):
        identifier_keys.rekey(ledger, stop_after_first_chunk, chunk=1)
    assert _key_ids(ledger).count(new) == 1  # the first chunk committed on its own
    rekeyed = _ok(runner, "keys", "rotate-identifier", "--rekey")
    assert "rekeyed 2/2" in rekeyed
    assert _key_ids(ledger) == [new, new, new]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_sealed_identifier_copied_onto_another_row_does_not_open(
    runner: FlaskCliRunner, ledger: Ledger, people: dict[str, set[str]]
) -> None:
    """The seal is bound to its row (key id and subject_ref): a DBA who swaps two rows' sealed
    identifiers cannot make the re-keying pass map one person to the other's subject_ref."""
    (first,) = people[PEOPLE[0]]
    (second,) = people[PEOPLE[1]]
    with ledger.db.write_engine.begin() as conn:
        sealed = {
            ref: seal for ref, seal in conn.execute(select(Subject.subject_ref, Subject.sealed))
        }
        for ref, other in ((first, second), (second, first)):
            conn.execute(
                update(Subject).where(Subject.subject_ref == ref).values(sealed=sealed[other])
            )
    (old,) = {k.key_id for k in ledger.identifier_keys.all}
    _ok(runner, "keys", "rotate-identifier")
    refused = runner.invoke(args=["keys", "rotate-identifier", "--rekey"])
    assert refused.exit_code == 1
    assert "does not open under key" in refused.output
    assert PEOPLE[0] not in refused.output
    assert old in _key_ids(ledger)
