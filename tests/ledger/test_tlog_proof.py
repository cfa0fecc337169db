"""The c2sp.org/tlog-proof@v1 text format: the spec's own example, a round trip, and the
malformed proofs the parser must refuse."""

from __future__ import annotations

import base64

import pytest

from app.ledger.tlog_proof import HEADER, TlogProof, TlogProofError, parse

# The example in c2sp.org/tlog-proof (its signatures are elided in the spec; the parser does
# not check the note, which the caller verifies under a key it trusts).
SPEC_EXAMPLE = """c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

\u2014 example.com/fancylog hI2DJw[...]1roloI=
"""

NOTE = "log.example\n3\n" + base64.b64encode(bytes(32)).decode() + "\n\n\u2014 log.example AAAA\n"
H = base64.b64encode(bytes(range(32))).decode()


def test_the_spec_example_parses_and_encodes_back_to_itself() -> None:
    proof = parse(SPEC_EXAMPLE)
    assert proof.index == 73894
    assert len(proof.hashes) == 5
    assert proof.extra == base64.b64decode("YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ")
    assert proof.checkpoint.startswith("example.com/fancylog\n109482\n")
    assert proof.encode() == SPEC_EXAMPLE


def test_a_proof_with_no_path_and_no_extra_round_trips() -> None:
    proof = TlogProof(0, (), NOTE)
    assert proof.encode() == f"{HEADER}\nindex 0\n\n{NOTE}"
    assert parse(proof.encode()) == proof


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (f"index 1\n{H}\n\n{NOTE}", "no header"),
        (f"{HEADER}\n{H}\n\n{NOTE}", "no index line"),
        (f"{HEADER}\nindex 01\n\n{NOTE}", "leading zero"),
        (f"{HEADER}\nindex -1\n\n{NOTE}", "negative index"),
        (f"{HEADER}\nindex  1\n\n{NOTE}", "two spaces"),
        (f"{HEADER}\nindex 1\n{H[:-2]}\n\n{NOTE}", "a hash not base64"),
        (f"{HEADER}\nindex 1\n{base64.b64encode(bytes(31)).decode()}\n\n{NOTE}", "31 bytes"),
        (f"{HEADER}\nindex 1\n{H}\n{NOTE}", "no empty line"),
        (f"{HEADER}\nindex 1\n" + f"{H}\n" * 65 + f"\n{NOTE}", "65 hashes"),
        (f"{HEADER}\nextra !!\nindex 1\n\n{NOTE}", "extra not base64"),
        (f"{HEADER}\nindex 1\n\n{NOTE[:-1]}", "checkpoint cut short"),
    ],
)
def test_a_malformed_proof_is_refused(text: str, why: str) -> None:
    with pytest.raises(TlogProofError):
        parse(text)
