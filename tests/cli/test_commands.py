"""The ``consent-ledger`` commands, run through Flask's CLI runner as a user would type them."""

from __future__ import annotations

import hashlib
import html
import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select

from app.models import ApiClient, LogEntry, Organisation
from app.services.access.clients import hash_token
from app.services.container import Ledger
from tests.helpers import BOTH, bearer, ig_sign_in, tamper


def _count(ledger: Ledger, model: type) -> int:
    with ledger.db.read() as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_init_creates_private_keys_once(runner: FlaskCliRunner, ledger: Ledger) -> None:
    ledger.settings.signing_key_path.unlink()
    ledger.settings.identifier_key_path.unlink()
    first = runner.invoke(args=["init"])
    assert first.exit_code == 0, first.output
    assert "Created the signing key" in first.output
    pem = ledger.settings.signing_key_path.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    for path in (ledger.settings.signing_key_path, ledger.settings.identifier_key_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(ledger.settings.identifier_key_path.read_bytes()) == 32
    second = runner.invoke(args=["init"])
    assert second.exit_code == 0
    assert "Kept the signing key" in second.output
    assert ledger.settings.signing_key_path.read_bytes() == pem


def test_init_refuses_an_origin_that_cannot_be_a_key_name(tmp_path: Path) -> None:
    from app import create_app

    app = create_app({"INSTANCE_PATH": str(tmp_path), "LOG_ORIGIN": "bad origin+x"})
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 1
    assert "not a valid log origin" in result.output


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_orgs_import_registers_each_organisation_as_a_log_entry(
    runner: FlaskCliRunner, ledger: Ledger, tmp_path: Path
) -> None:
    f = tmp_path / "orgs.json"
    f.write_text(
        json.dumps(
            [
                {
                    "id": "tt-york",
                    "name": "York Talking Therapies",
                    "kind": "health",
                    "funder": "nhs",
                    "ods_code": "X1Y2Z",
                },
                {"id": "whp-york", "name": "WHP York", "kind": "employment_dwp", "funder": "dwp"},
            ]
        )
    )
    result = runner.invoke(args=["orgs", "import", str(f)])
    assert result.exit_code == 0, result.output
    assert "registered tt-york (health) at log index 0" in result.output
    with ledger.db.read() as session:
        types = session.execute(select(LogEntry.entry_type)).scalars().all()
    assert types == ["organisation.registered"] * 2
    again = runner.invoke(args=["orgs", "import", str(f)])
    assert again.exit_code == 0
    assert "unchanged: tt-york, whp-york" in again.output
    assert _count(ledger, LogEntry) == 2


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (
            [{"id": "x-org", "name": "X", "kind": "hospital", "funder": "nhs"}],
            "record 1 (id 'x-org'): field 'kind': 'hospital' is not one of health",
        ),
        (
            [
                {"id": "a-org", "name": "A", "kind": "health", "funder": "nhs"},
                {"id": "a-org", "name": "A again", "kind": "health", "funder": "nhs"},
            ],
            "record 2 (id 'a-org'): field 'id': 'a-org' duplicates record 1",
        ),
        (
            [{"id": "b-org", "name": "B", "kind": "health"}],
            "record 1 (id 'b-org'): field 'funder' is missing",
        ),
        (
            [{"id": "c-org", "name": "C", "kind": "health", "funder": "nhs", "ods": "X"}],
            "record 1 (id 'c-org'): field 'ods' is not known",
        ),
        (
            [
                {
                    "id": "d-org",
                    "name": "D",
                    "kind": "health",
                    "funder": "nhs",
                    "ods_code": "bad code",
                }
            ],
            "field 'ods_code'",
        ),
        ({"id": "e-org"}, "must hold a list"),
        (
            [{"id": "f-org", "name": "   ", "kind": "health", "funder": "nhs"}],
            "record 1 (id 'f-org'): field 'name' must be a non-empty line of text",
        ),
        (
            [{"id": "g-org", "name": "G", "kind": "health", "funder": "nhs", "ods_code": "ABC\n"}],
            "field 'ods_code'",
        ),
        # Text shown on pages and in CSV: no bidirectional overrides, controls or invisible marks.
        *(
            (
                [{"id": "h-org", "name": f"Leeds {ch}TT", "kind": "health", "funder": "nhs"}],
                f"record 1 (id 'h-org'): field 'name' must not contain U+{ord(ch):04X}",
            )
            for ch in (
                "\u202e",  # right-to-left override
                "\u2066",  # left-to-right isolate
                "\u200f",  # right-to-left mark
                "\u061c",  # Arabic letter mark
                "\u0085",  # next line (a C1 control)
                "\u200b",  # zero width space (format)
                "\ufeff",  # byte order mark (format)
                "\u2028",  # line separator
                "\n",
            )
        ),
    ],
)
def test_a_bad_file_is_refused_whole(
    runner: FlaskCliRunner, ledger: Ledger, tmp_path: Path, records: object, expected: str
) -> None:
    good = {"id": "good-org", "name": "Good", "kind": "health", "funder": "nhs"}
    body = [good, *records] if isinstance(records, list) else records
    if isinstance(records, list):
        # the good record comes first, so record numbers shift by one
        expected = expected.replace("record 2", "record 3").replace("record 1", "record 2")
    f = tmp_path / "orgs.yaml"
    f.write_text(json.dumps(body))
    result = runner.invoke(args=["orgs", "import", str(f)])
    assert result.exit_code == 1
    assert "nothing was imported" in result.output
    assert expected in result.output
    assert _count(ledger, Organisation) == 0
    assert _count(ledger, LogEntry) == 0


def test_names_in_any_script_with_ordinary_punctuation_are_imported_as_given(
    runner: FlaskCliRunner, ledger: Ledger, tmp_path: Path
) -> None:
    names = [
        "Ysbyty Gwynedd \u2013 Bangor",
        "Caf\u00e9 Cymru\u00a0CIC",
        "\u0645\u0631\u0643\u0632 \u0644\u064a\u062f\u0632",
    ]
    f = tmp_path / "orgs.json"
    f.write_text(
        json.dumps(
            [
                {"id": f"org-{n}", "name": name, "kind": "health", "funder": "nhs"}
                for n, name in enumerate(names)
            ]
        )
    )
    result = runner.invoke(args=["orgs", "import", str(f)])
    assert result.exit_code == 0, result.output
    with ledger.db.read() as session:
        stored = session.execute(select(Organisation.name).order_by(Organisation.id)).scalars()
        assert list(stored) == names


def test_changing_a_registered_organisation_is_refused(
    runner: FlaskCliRunner, ledger: Ledger, orgs: list[str], tmp_path: Path
) -> None:
    before = _count(ledger, LogEntry)
    f = tmp_path / "orgs.yaml"
    f.write_text("- {id: tt-leeds, name: Leeds TT, kind: employer, funder: other}\n")
    result = runner.invoke(args=["orgs", "import", str(f)])
    assert result.exit_code == 1
    assert "already registered with different fields" in result.output
    assert _count(ledger, LogEntry) == before


def test_clients_create_prints_the_token_once_and_stores_only_its_hash(
    runner: FlaskCliRunner, ledger: Ledger, orgs: list[str]
) -> None:
    result = runner.invoke(
        args=["clients", "create", "--org", "tt-leeds", "--role", "ig_lead", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert set(out) == {"client_id", "token"}
    with ledger.db.read() as session:
        row = session.get(ApiClient, out["client_id"])
        entry = session.get(LogEntry, row.ledger_index)  # type: ignore[union-attr]
    assert row is not None
    assert row.token_hash == hash_token(out["token"])
    assert out["token"].encode() not in entry.leaf  # type: ignore[union-attr]
    secret = out["token"].split(".", 1)[1].encode()
    for path in ledger.settings.instance_path.iterdir():
        assert secret not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "nowhere", "--role", "ig_lead"], "organisation 'nowhere' is not registered"),
        (["--org", "tt-leeds", "--role", "superuser"], "Invalid value for '--role'"),
        (
            ["--org", "tt-leeds", "--role", "ig_lead", "--name", "IG \u202egnitirw"],
            "name must not contain U+202E",
        ),
        (
            ["--org", "tt-leeds", "--role", "ig_lead", "--name", "IG\x07lead"],
            "name must not contain U+0007",
        ),
    ],
)
def test_clients_create_refuses_bad_arguments(
    runner: FlaskCliRunner, orgs: list[str], args: list[str], message: str
) -> None:
    result = runner.invoke(args=["clients", "create", *args])
    assert result.exit_code != 0
    assert message in result.output


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_verify_passes_on_an_untouched_log(
    runner: FlaskCliRunner, orgs: list[str], make_token: object
) -> None:
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 0, result.output
    assert f"log verified: {len(orgs)} entries" in result.output


@pytest.mark.parametrize("backend", BOTH, indirect=True)
@pytest.mark.parametrize(
    ("sql", "params", "named"),
    [
        # a leaf edited, its recorded hash left alone
        ("UPDATE log_entries SET leaf = :v WHERE idx = 4", {"v": b'{"forged":1}'}, "entry 4"),
        # a leaf and its hash edited together, nodes left alone
        (
            "UPDATE log_entries SET leaf = :v, leaf_hash = :h WHERE idx = 5",
            {"v": b'{"forged":1}', "h": hashlib.sha256(b'\x00{"forged":1}').digest()},
            "entry 5",
        ),
        # a stored tree node edited: proofs would lie
        (
            "UPDATE log_nodes SET hash = :h WHERE level = 1 AND idx = 1",
            {"h": b"\1" * 32},
            "entry 3",
        ),
        # an entry deleted
        ("DELETE FROM log_entries WHERE idx = 6", {}, "entry 6"),
    ],
)
def test_verify_fails_naming_the_first_bad_entry(
    runner: FlaskCliRunner,
    ledger: Ledger,
    orgs: list[str],
    sql: str,
    params: dict[str, object],
    named: str,
) -> None:
    tamper(ledger, sql, **params)
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 1
    assert "log verification FAILED" in result.output
    assert named in result.output


def test_verify_against_another_key_fails(runner: FlaskCliRunner, orgs: list[str]) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from app.ledger.checkpoint import CheckpointSigner

    other = CheckpointSigner("localhost/consent-ledger", Ed25519PrivateKey.generate())
    result = runner.invoke(args=["verify", "--key", other.verifier_key()])
    assert result.exit_code == 1
    assert "no valid signature" in result.output


def test_verify_against_another_key_leaves_the_dashboard_as_it_was(
    runner: FlaskCliRunner, client: FlaskClient, orgs: list[str], make_token: Any
) -> None:
    # Only a check with the log's own key says anything about the log: a wrong --key (a
    # typo, a stale key, someone else's) must not mark a sound log "Failed" for the IG lead.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from app.ledger.checkpoint import CheckpointSigner

    ig_sign_in(client, make_token("tt-leeds", "ig_lead"))
    assert runner.invoke(args=["verify"]).exit_code == 0
    before = _last_verification(client)
    assert "Passed" in before

    other = CheckpointSigner("localhost/consent-ledger", Ed25519PrivateKey.generate())
    result = runner.invoke(args=["verify", "--key", other.verifier_key()])
    assert result.exit_code == 1
    assert "log verification FAILED" in result.output
    assert _last_verification(client) == before
    assert "not recorded" in result.output  # and the operator is told why not


@pytest.mark.parametrize(
    ("vkey", "says"),
    [
        ("localhost/consent-ledger", "three parts"),
        ("localhost/consent-ledger+ABCDEF12+AQ==", "8 lowercase hex"),
        ("localhost/consent-ledger+abcdef12+not base64", "not base64"),
        ("localhost/consent-ledger+abcdef12+" + "Ag" + "A" * 42, "algorithm byte is 0x02"),
    ],
)
def test_verify_with_a_malformed_key_says_what_is_wrong_with_it(
    runner: FlaskCliRunner, orgs: list[str], vkey: str, says: str
) -> None:
    result = runner.invoke(args=["verify", "--key", vkey])
    assert result.exit_code == 1
    assert "cannot load the verifier key: " in result.output
    assert says in result.output


def test_verify_with_the_logs_key_altered_names_the_key_id_mismatch(
    runner: FlaskCliRunner, ledger: Ledger, orgs: list[str]
) -> None:
    name, key_id, key = ledger.log_store.signer.verifier_key().split("+", 2)
    result = runner.invoke(args=["verify", "--key", f"{name}x+{key_id}+{key}"])
    assert result.exit_code == 1
    assert "key id mismatch" in result.output


def _last_verification(client: FlaskClient) -> str:
    page = client.get("/ig/dashboard")
    assert page.status_code == 200
    found = re.search(r"<dt>Last full verification</dt>\s*<dd>(.*?)</dd>", page.text, re.S)
    assert found, "the dashboard shows no last verification"
    return " ".join(found.group(1).split())


def test_verify_prints_progress_on_a_large_log(runner: FlaskCliRunner, ledger: Ledger) -> None:
    from datetime import UTC, datetime

    from app.services.log.log_store import make_entry

    now = datetime(2026, 1, 1, tzinfo=UTC)
    with ledger.db.write() as session:
        for start in range(0, 12_000, 3_000):
            ledger.log_store.append(
                session,
                [make_entry("bulk", now, {"n": i}) for i in range(start, start + 3000)],
                now,
            )
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 0, result.output
    assert "verified 5000/12000 entries" in result.output
    assert "log verified: 12000 entries" in result.output
    # the openings of committed leaves (none here), checked after the tree
    assert "opened 12000/12000 entries (100%)" in result.output
    # the second pass: decisions re-evaluated and projections rebuilt from the log
    assert "replayed 5000/12000 entries" in result.output
    assert "projections match the log" in result.output


def test_demo_is_repeatable(runner: FlaskCliRunner, ledger: Ledger) -> None:
    refused = runner.invoke(args=["demo"])
    assert refused.exit_code == 1
    assert "run `consent-ledger init` first" in refused.output
    assert runner.invoke(args=["init"]).exit_code == 0
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    entries = _count(ledger, LogEntry)
    second = runner.invoke(args=["demo"])
    assert second.exit_code == 0, second.output
    assert _count(ledger, LogEntry) == entries
    tokens_file = ledger.settings.instance_path / "demo-tokens.json"
    assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o600
    tokens = json.loads(tokens_file.read_text())
    # A client of every role for every demo organisation, each printable by demo-token.
    orgs = {t["organisation"] for t in tokens}
    assert len(orgs) == 9
    assert len(tokens) == 9 * 5
    for t in tokens[:: len(tokens) // 4]:
        printed = runner.invoke(args=["demo-token", t["organisation"], t["role"]])
        assert printed.output.strip() == t["token"]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_demo_makes_the_six_flows_through_the_service(
    runner: FlaskCliRunner, ledger: Ledger, client: Any
) -> None:
    assert runner.invoke(args=["init"]).exit_code == 0
    made = runner.invoke(args=["demo"])
    assert made.exit_code == 0, made.output
    for flow in range(1, 7):
        assert f"\n{flow}. " in made.output
    assert ": permit" in made.output
    assert ": deny" in made.output
    assert "confirmed the Jobcentre's consent (G6)" in made.output
    # The evaluator's erase obligation is acknowledged, with evidence.
    token = runner.invoke(args=["demo-token", "eval-northern-uni", "case_system"]).output
    done = client.get(
        "/v1/notifications",
        query_string={"state": "acknowledged"},
        headers=bearer(token.strip()),
    ).get_json()["items"]
    assert [(n["obligation"], n["acknowledgement"]["outcome"]) for n in done] == [
        ("cease_processing_and_erase", "erased")
    ]
    verified = runner.invoke(args=["verify"])
    assert verified.exit_code == 0, verified.output
    assert "decisions and 7 disclosures re-evaluated" in verified.output
    # A first look at the IG dashboard shows permits, denials, disclosures and the withdrawal
    # still to be noted, with no other command.
    ig = runner.invoke(args=["demo-token", "tt-leeds", "ig_lead"]).output.strip()
    ig_sign_in(client, ig)
    board = " ".join(
        html.unescape(re.sub(r"<[^>]+>", " ", client.get("/ig/dashboard").text)).split()
    )
    permitted = re.search(r"Permitted permit (\d+)", board)
    denied = re.search(r"Denied deny (\d+)", board)
    assert permitted, board
    assert denied, board
    assert int(permitted.group(1)) > 0
    assert int(denied.group(1)) > 0
    assert "No disclosures in this period" not in board
    assert "note withdrawal consent withdrawn" in board


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "dup.json",
            b'[{"id": "a-org", "id": "b-org", "name": "A", "kind": "health", "funder": "nhs"}]',
            "field 'id' appears twice",
        ),
        (
            "dup.yaml",
            b"- id: a-org\n  name: A\n  kind: health\n  kind: employer\n  funder: nhs\n",
            "field 'kind' appears twice in one record (line 4)",
        ),
        ("latin1.yaml", "- id: a-org\n  name: Caf\u00e9\n".encode("latin-1"), "not UTF-8"),
        ("broken.yaml", b"- id: [unclosed\n", "not valid YAML"),
    ],
)
def test_unreadable_files_are_refused_with_a_reason(
    runner: FlaskCliRunner,
    ledger: Ledger,
    tmp_path: Path,
    name: str,
    content: bytes,
    expected: str,
) -> None:
    f = tmp_path / name
    f.write_bytes(content)
    result = runner.invoke(args=["orgs", "import", str(f)])
    assert result.exit_code == 1
    assert expected in result.output
    assert "Traceback" not in result.output
    assert _count(ledger, LogEntry) == 0


def test_init_will_not_silently_start_a_new_log_identity(
    runner: FlaskCliRunner, ledger: Ledger, orgs: list[str]
) -> None:
    ledger.settings.signing_key_path.unlink()
    refused = runner.invoke(args=["init"])
    assert refused.exit_code == 1
    assert "the database holds 9 log entries" in refused.output
    assert "--new-identity" in refused.output
    assert not ledger.settings.signing_key_path.exists()
    allowed = runner.invoke(args=["init", "--new-identity"])
    assert allowed.exit_code == 0, allowed.output
    assert ledger.settings.signing_key_path.exists()


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_revoked_client_is_refused_at_once_and_the_revocation_is_logged(
    runner: FlaskCliRunner, ledger: Ledger, orgs: list[str], make_token: Any
) -> None:
    token = make_token("tt-leeds", "auditor")
    client_id = token.split(".", 1)[0]
    client = runner.app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/organisations", headers=auth).status_code == 200
    result = runner.invoke(args=["clients", "revoke", client_id])
    assert result.exit_code == 0, result.output
    assert client.get("/v1/organisations", headers=auth).status_code == 401
    again = runner.invoke(args=["clients", "revoke", client_id])
    assert again.exit_code == 1
    assert "was revoked" in again.output
    listed = runner.invoke(args=["clients", "list"])
    assert f"{client_id}" in listed.output
    assert "revoked (log" in listed.output
    assert token.split(".", 1)[1] not in listed.output
    with ledger.db.read() as session:
        last = session.execute(select(LogEntry).order_by(LogEntry.idx.desc())).scalars().first()
    assert last is not None
    assert last.entry_type == "client.revoked"
    assert runner.invoke(args=["rebuild", "--check"]).exit_code == 0


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_rotated_token_replaces_the_old_one_at_once_and_the_rotation_is_logged(
    runner: FlaskCliRunner, ledger: Ledger, orgs: list[str], make_token: Any
) -> None:
    old = make_token("tt-leeds", "auditor")
    client_id = old.split(".", 1)[0]
    client = runner.app.test_client()
    result = runner.invoke(args=["clients", "rotate", client_id, "--json"])
    assert result.exit_code == 0, result.output
    new = json.loads(result.output)["token"]
    assert new != old
    assert new.startswith(client_id + ".")
    assert client.get("/v1/organisations", headers=bearer(old)).status_code == 401
    assert client.get("/v1/organisations", headers=bearer(new)).status_code == 200
    with ledger.db.read() as session:
        last = session.execute(select(LogEntry).order_by(LogEntry.idx.desc())).scalars().first()
    assert last is not None
    assert last.entry_type == "client.token_rotated"
    assert new.split(".", 1)[1].encode() not in last.leaf
    assert old.split(".", 1)[1].encode() not in last.leaf
    assert runner.invoke(args=["rebuild", "--check"]).exit_code == 0
    # A revoked client cannot be given a new token.
    assert runner.invoke(args=["clients", "revoke", client_id]).exit_code == 0
    refused = runner.invoke(args=["clients", "rotate", client_id])
    assert refused.exit_code == 1
    assert "was revoked" in refused.output
