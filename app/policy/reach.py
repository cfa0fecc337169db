"""What a consent can never carry: the shares its listing asks for that no rule could permit.

``reach(policy, purpose, recorder, recipients, categories)`` answers, for a consent as it is
captured, which of its recipients no rule of the policy could ever let receive anything for its
purpose, and which (recipient, category) pairs no rule could ever permit, each with the rule
that says so. "Ever" means whatever consents the person gives (of any form, confirmed or not),
whatever objections they make or withdraw, whatever an s251-style alternative basis asserts,
and at any time: only the policy and the parties' kinds decide it, so it is known at capture.

The parties that can share under a consent are the organisation that recorded it and the
organisations it names (G4; ``engine._apply_consent_rule``), so a share to a named recipient
is looked for from each of them, the recipient itself included (an organisation to itself,
``sms_contact``).

A legal requirement or safeguarding (G1, G2: the rules of kind ``legal_basis``) is left out:
it permits without any consent, so it says nothing about what a consent can authorise, and a
court order would otherwise make every listing "possible". Pure, like the engine: no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.policy.engine import rule_applies
from app.policy.model import LegalBasis, Party, Policy, Request, Rule

# The rule named when no rule covers a route at all (deny by default).
NO_RULE = "G0"
# The rule named when a route is open but a category is above every ceiling on it.
CEILING = "G7"


@dataclass(frozen=True)
class Blocked:
    """A share a consent lists that can never happen: one category to one recipient, or
    (``category`` None) anything at all to that recipient."""

    recipient: str
    category: str | None
    rule: str
    message: str

    def as_json(self) -> dict[str, str | None]:
        return {
            "recipient": self.recipient,
            "category": self.category,
            "rule": self.rule,
            "message": self.message,
        }


@dataclass(frozen=True)
class Reach:
    # Per named recipient, in the consent's order: the listed categories some rule could let
    # it receive (in the consent's order).
    can: tuple[tuple[str, tuple[str, ...]], ...]
    blocked: tuple[Blocked, ...]

    def blocked_for(self, recipient: str) -> tuple[Blocked, ...]:
        return tuple(b for b in self.blocked if b.recipient == recipient)


def routine_legal_bases(policy: Policy) -> tuple[str | None, ...]:
    """The legal bases a routine request may assert (``None``: none): those no ``legal_basis``
    rule takes, such as s251 support, the alternative to an evaluation consent."""
    taken = {b for r in policy.rules if r.kind == "legal_basis" for b in r.legal_bases}
    return (None, *(b for b in policy.legal_bases if b not in taken))


def _route(
    policy: Policy, sender: Party, recipient: Party, purpose: str
) -> tuple[list[Rule], str | None]:
    """The rules that could permit something from ``sender`` to ``recipient`` for ``purpose``
    under some routine request, or none and the rule that closes every such request."""
    permitting: list[Rule] = []
    closed_by: str | None = None
    for basis in routine_legal_bases(policy):
        request = Request(
            sender, recipient, purpose, (), None if basis is None else LegalBasis(basis, "")
        )
        applicable = [r for r in policy.rules if rule_applies(r, request)]
        denies = [r for r in applicable if r.kind == "deny"]
        if denies:
            # Deny overrides permit: nothing passes this request (engine, purpose_denies).
            closed_by = closed_by or denies[0].id
        elif not applicable:
            closed_by = closed_by or NO_RULE
        else:
            permitting += [r for r in applicable if r.kind in ("implied", "consent")]
    return permitting, None if permitting else closed_by


def reach(
    policy: Policy,
    purpose: str,
    recorder: Party,
    recipients: Sequence[Party],
    categories: Sequence[str],
) -> Reach:
    """What a consent for ``purpose``, recorded by ``recorder``, naming ``recipients`` and
    listing ``categories`` can never carry (module docstring), and what it can."""
    senders = list({p.id: p for p in (recorder, *recipients)}.values())
    can: list[tuple[str, tuple[str, ...]]] = []
    blocked: list[Blocked] = []
    for recipient in recipients:
        permitting: list[Rule] = []
        closed_by: list[str] = []
        for sender in senders:
            rules, closing = _route(policy, sender, recipient, purpose)
            permitting += rules
            if closing is not None:
                closed_by.append(closing)
        if not permitting:
            # The recorder's own route first; a deny rule says more than "no rule".
            rule = next((r for r in closed_by if r != NO_RULE), NO_RULE)
            blocked.append(
                Blocked(recipient.id, None, rule, _route_message(policy, rule, recipient, purpose))
            )
            can.append((recipient.id, ()))
            continue
        ceiling = frozenset().union(*(r.ceiling for r in permitting))
        can.append((recipient.id, tuple(c for c in categories if c in ceiling)))
        for category in categories:
            if category not in ceiling:
                blocked.append(
                    Blocked(
                        recipient.id,
                        category,
                        CEILING,
                        _ceiling_message(policy, category, recipient, purpose, permitting),
                    )
                )
    return Reach(tuple(can), tuple(blocked))


def _cites(policy: Policy, rule_id: str) -> str:
    for rule in policy.rules:
        if rule.id == rule_id:
            return rule.cites()
    g = policy.global_rule(rule_id)
    return f"{g.id}: {g.explanation} ({g.source})"


def _route_message(policy: Policy, rule: str, recipient: Party, purpose: str) -> str:
    why = "no rule of the policy covers this route" if rule == NO_RULE else f"{rule} refuses it"
    return (
        f"Nothing can ever be shared with {recipient.id} ({recipient.kind}) for {purpose} "
        f"under this consent: {why}. {_cites(policy, rule)}"
    )


def _ceiling_message(
    policy: Policy, category: str, recipient: Party, purpose: str, permitting: list[Rule]
) -> str:
    ids = sorted({r.id for r in permitting})
    ceiling = frozenset().union(*(r.ceiling for r in permitting))
    allowed = [c for c in policy.categories if c in ceiling]
    return (
        f"{category} can never be shared with {recipient.id} ({recipient.kind}) for {purpose}, "
        f"even with consent: the most it may receive under {', '.join(ids)} is "
        f"{', '.join(allowed)}. {_cites(policy, CEILING)}"
    )
