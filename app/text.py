"""Text that people later read: free text (organisation and client names on pages, in CSV and
in the log; identifiers sent to the API) must be one line of visible characters; and words of
ours put into sentences must read right (:func:`with_article`).

Bidirectional controls (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C) make text display
in an order other than the one stored, so a name can pass for another ("Trojan Source",
CVE-2021-42574); other format characters (zero-width space, byte-order mark) and controls hide
or break text. Every such check calls :func:`line_problem`, so the rule is the same everywhere.
"""

from __future__ import annotations

import unicodedata

BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)
# Among the characters str.isprintable() refuses, spaces other than U+0020 (Zs: a no-break
# space pasted from a document) are visible and harmless; the rest are not text to show:
# controls (Cc), format characters (Cf), surrogates (Cs), private-use (Co), unassigned (Cn)
# and line or paragraph separators (Zl, Zp).
_VISIBLE_SPACE = "Zs"


def line_problem(text: str) -> str | None:
    """Why ``text`` is not one line of visible text (``must not contain U+202E ...``), or None."""
    if text.isprintable():  # the usual case, in C
        return None
    for ch in text:
        if ch.isprintable() or unicodedata.category(ch) == _VISIBLE_SPACE:
            continue
        kind = (
            "a bidirectional text control"
            if ch in BIDI_CONTROLS
            else "a control or invisible formatting character"
        )
        return f"must not contain U+{ord(ch):04X} ({kind})"
    return None


_VOWELS = frozenset("aeiouAEIOU")


def with_article(word: str) -> str:
    """``word`` after the indefinite article it is said with: "a written", "an electronic".

    Decided by the first letter, which is right for every word this service puts after an
    article (consent forms, organisation kinds, client roles, entry types: the table in
    tests/test_text.py lists them); "dwp" starts with a consonant sound as with a letter.
    """
    return f"{'an' if word[:1] in _VOWELS else 'a'} {word}"
