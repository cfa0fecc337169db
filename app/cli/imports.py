"""``import FILE --as CLIENT_ID``: historical consents (paper, spreadsheets) brought in as one
write, every one or none, as ``POST /fhir/r4`` does with a transaction Bundle (issue 17 item 2).

The file is that Bundle (JSON), or a CSV with the documented header (README, "Importing
consents"); either way each consent is checked by v1's schema and recorded by the service that
``POST /v1/consents`` uses. It records as an existing case-system client of the organisation
whose records these are (``--as``): the log names that client and its organisation as the
recorder, as if its case system had sent them, and the organisation's own rules (a local
identifier's system must be its own) apply.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import click
import marshmallow as ma
from flask.cli import with_appcontext

from app.api import schemas
from app.api.common import flatten
from app.api.fhir import consent_input, in_fhir_terms, transaction_entries
from app.cli.common import _fail, _ledger
from app.errors import DomainError, InvalidRequest
from app.fhir import intake
from app.redaction import redact
from app.services.access import clients
from app.services.consents import consents
from app.services.consents.consents import ConsentInput

# The documented header, in this order (research note section 6): one row is one consent.
COLUMNS = (
    "nhs_number",
    "local_system",
    "local_value",
    "purpose",
    "recipients",
    "data_categories",
    "form",
    "evidence_sha256",
    "given_at",
    "valid_from",
    "expires_at",
)
LISTS = ("recipients", "data_categories")
# Whose role may record consents: as POST /v1/consents.
WRITER = "case_system"
PROGRESS_EVERY = 100


def _progress(done: int, total: int) -> None:
    if done % PROGRESS_EVERY == 0 or done == total:
        click.echo(f"read {done} of {total}", err=True)


def _row_body(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as v1's JSON body: empty cells are absent, lists are ``;``-separated."""
    body: dict[str, Any] = {}
    if row["nhs_number"]:
        body["subject"] = {"nhs_number": row["nhs_number"]}
    if row["local_system"] or row["local_value"]:
        local = {"system": row["local_system"], "value": row["local_value"]}
        body.setdefault("subject", {})["local_id"] = local
    for name in COLUMNS[3:]:
        value = row[name].strip()
        if name in LISTS:
            body[name] = [v.strip() for v in value.split(";") if v.strip()]
        elif value:
            body[name] = value
    return body


def _column(field: str) -> str:
    """The CSV column a v1 field path came from."""
    if field.startswith("subject.local_id"):
        return "local_value" if field.endswith("value") else "local_system"
    if field.startswith("subject"):
        return "nhs_number"
    return field.split(".")[0]


def _where(n: int) -> str:
    return f"row {n + 1} (line {n + 2})"


def _csv_inputs(text: str) -> tuple[list[ConsentInput | None], list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        _fail(f"the first line must be the header {','.join(COLUMNS)}")
    rows = list(reader)
    inputs: list[ConsentInput | None] = []
    faults: list[str] = []
    for n, row in enumerate(rows):
        if None in row or any(v is None for v in row.values()):
            faults.append(f"{_where(n)}: must have exactly {len(COLUMNS)} columns")
            inputs.append(None)
            continue
        try:
            inputs.append(ConsentInput(**schemas.ConsentImportSchema().load(_row_body(row))))
        except ma.ValidationError as exc:
            inputs.append(None)
            faults += [f"{_where(n)}, column {_column(f)}: {m}" for f, m in flatten(exc.messages)]
        _progress(n + 1, len(rows))
    return inputs, faults


def _bundle_inputs(
    text: str,
) -> tuple[list[ConsentInput | None], list[str], list[intake.Intake]]:
    try:
        bundle = json.loads(text)
    except ValueError as exc:
        _fail(f"the file is neither the CSV header nor JSON: {exc}")
    try:
        # Any size: the HTTP cap is for the body limit, and the README promises any size here.
        resources = transaction_entries(bundle, max_entries=None)
    except DomainError as exc:
        _fail("; ".join(f"{e.field}: {e.message}" for e in exc.errors) or exc.detail)
    inputs: list[ConsentInput | None] = []
    taken: list[intake.Intake] = []
    faults: list[str] = []
    for n, resource in enumerate(resources):
        inp, one, errors = consent_input(resource, f"Bundle.entry[{n}]", historical=True)
        inputs.append(inp)
        taken.append(one)
        faults += [f"{e.field}: {e.message}" for e in errors]
        _progress(n + 1, len(resources))
    return inputs, faults, taken


def _service_faults(exc: InvalidRequest, taken: list[intake.Intake] | None) -> list[str]:
    if taken is not None:
        return [f"{e.field}: {e.message}" for e in in_fhir_terms(exc, taken).errors]
    out = []
    for e in exc.errors:
        n, _, name = e.field.partition(".")
        out.append(f"{_where(int(n))}, column {_column(name)}: {e.message}")
    return out


def _text(file: Path) -> str:
    """The file as text: UTF-8, perhaps after the byte order mark Excel writes. Anything else
    (Excel's "CSV" is cp1252 on Windows) is refused, naming the first line that is not, rather
    than guessing an encoding and recording names or codes garbled."""
    data = file.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        _fail(
            f'the file must be UTF-8 (line {line} is not): save it as "CSV UTF-8" '
            "(or convert it, e.g. iconv -f cp1252 -t utf-8)"
        )


@click.command("import")
@with_appcontext
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--as",
    "client_id",
    required=True,
    help="the case-system client (cl_...) of the organisation whose records these are; the "
    "log names it and its organisation as the recorder",
)
def import_command(file: Path, client_id: str) -> None:
    """Import historical consents: a FHIR R4 transaction Bundle (JSON, as POST /fhir/r4) or a
    CSV with the header nhs_number,local_system,local_value,purpose,recipients,
    data_categories,form,evidence_sha256,given_at,valid_from,expires_at. Every consent is
    recorded, in one transaction, or none; each fault is named by its row and column (or
    Bundle entry). Progress goes to standard error."""
    ledger = _ledger()
    try:
        principal = clients.acting_as(ledger, client_id)
    except DomainError as exc:
        _fail(exc.detail)
    if principal.role != WRITER:
        _fail(f"--as must be a client with role {WRITER}; {client_id} has role {principal.role}")
    text = _text(file)
    taken: list[intake.Intake] | None = None
    if text.lstrip().startswith("{"):
        inputs, faults, taken = _bundle_inputs(text)
    else:
        inputs, faults = _csv_inputs(text)
    if not inputs:
        _fail("the file holds no consents")
    click.echo(f"checking and recording {len(inputs)} consents in one transaction", err=True)
    try:
        result = consents.import_consents(ledger, principal, inputs, None)
    except InvalidRequest as exc:
        faults += _service_faults(exc, taken) or [exc.detail]
    if faults:
        for line in faults:
            click.echo(redact(line), err=True)
        _fail(f"{len(faults)} faults; nothing was recorded")
    views = result.body["consents"]
    first, last = views[0]["history"][0]["ledger_index"], views[-1]["history"][0]["ledger_index"]
    click.echo(
        f"imported {len(views)} consents as {client_id} ({principal.organisation_id}): "
        f"log entries {first} to {last}"
    )
