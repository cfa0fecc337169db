"""CDS Hooks bodies checked by an outside validator (``jsonschema``) against the schemas in
``cds_hooks/``, written from CDS Hooks 2.0.1 and LEAP-CDS's README (see its README.md).

Independent of ``app/`` on purpose: it is the outside reading of the spec the service is held to.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).parent / "cds_hooks"


@cache
def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def problems(name: str, body: Any) -> list[str]:
    """Every way ``body`` breaks schema ``name`` (``discovery``, ``request``, ``response``)."""
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in sorted(_validator(name).iter_errors(body), key=lambda e: list(e.absolute_path))
    ]


def check(name: str, body: Any) -> Any:
    """``body``, after asserting it is valid under schema ``name``."""
    found = problems(name, body)
    assert not found, f"not a valid CDS Hooks {name}: " + "; ".join(found)
    return body
