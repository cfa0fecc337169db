"""A malformed policy is refused with the file, the place inside it and why; never half-loaded."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.policy import PolicyError, load_policy
from app.policy.loader import policy_version
from app.services.decisions.policies import DEFAULT_POLICY_FILE, parse_policy_file

DOC: dict[str, Any] = yaml.safe_load(DEFAULT_POLICY_FILE.read_text())


def _rule(doc: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in doc["rules"] if r["id"] == rule_id)


def _edit(change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DOC)
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: _rule(d, "P2")["ceiling"].append("T9"),
            "rules[5].ceiling[4]: no category is in tier T9",
        ),
        (lambda d: _rule(d, "P2")["ceiling"].append("shoe_size"), "is not a category or tier"),
        (lambda d: _rule(d, "P3").update(kind="maybe"), "rules[6].kind: 'maybe' is not one of"),
        (lambda d: _rule(d, "P3").pop("explanation"), "rules[6].explanation: is required"),
        (lambda d: _rule(d, "P3").pop("source"), "rules[6].source: is required"),
        (
            lambda d: _rule(d, "P4")["purposes"].append("marketing"),
            "rules[7].purposes[1]: 'marketing' is not a known purpose",
        ),
        (lambda d: _rule(d, "P6").update(to=["charity"]), "rules[9].to[0]: 'charity'"),
        (lambda d: _rule(d, "P7").update(id="P2"), "rules[10].id: 'P2' is used twice"),
        (lambda d: _rule(d, "P10").update(reason=None), "rules[13].reason: a deny rule needs"),
        (lambda d: _rule(d, "P12").update(surprise=1), "rules[15].surprise: is not a known field"),
        (lambda d: d.update(rules=[]), "rules: must be a non-empty list"),
        (lambda d: d.update(categories={"identity": "T99"}), "categories.identity: tier 'T99'"),
        (lambda d: d["global_rules"].pop(0), "global_rules: must state G0"),
        (lambda d: d.update(score=1.5), "(document).score: is not a known field"),
        (
            lambda d: _rule(d, "P11")["alternative_legal_basis"].update(legal_basis="hunch"),
            "alternative_legal_basis.legal_basis: 'hunch' is not a known legal basis",
        ),
    ],
)
def test_a_bad_policy_is_refused_naming_where(change: Any, expected: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(_edit(change), "candidate.yaml")
    message = str(info.value)
    assert message.startswith("candidate.yaml: ")
    assert expected in message


def test_every_problem_is_reported_at_once() -> None:
    def two_faults(d: dict[str, Any]) -> None:
        _rule(d, "P2")["ceiling"].append("T9")
        _rule(d, "P8")["purposes"] = ["gossip"]

    with pytest.raises(PolicyError) as info:
        load_policy(_edit(two_faults), "x")
    assert len(info.value.problems) == 2


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [unclosed\n")
    with pytest.raises(PolicyError, match=r"broken.yaml: \(file\): not valid YAML"):
        parse_policy_file(broken)
    kinds = tmp_path / "kinds.yaml"
    doc = copy.deepcopy(DOC)
    doc["organisation_kinds"] = [*doc["organisation_kinds"], "charity"]
    kinds.write_text(yaml.safe_dump(doc))
    with pytest.raises(PolicyError, match="organisation_kinds: must be exactly"):
        parse_policy_file(kinds)


def test_the_version_is_the_sha256_of_the_canonical_document() -> None:
    import hashlib

    import rfc8785

    policy = load_policy(copy.deepcopy(DOC))
    assert policy.version == hashlib.sha256(rfc8785.dumps(DOC)).hexdigest()
    assert policy.version == policy_version(DOC)
    # Key order and YAML layout do not change the version; content does.
    reordered = dict(reversed(list(copy.deepcopy(DOC).items())))
    assert load_policy(reordered).version == policy.version
    changed = _edit(lambda d: _rule(d, "P12").update(explanation="Different words."))
    assert load_policy(changed).version != policy.version
