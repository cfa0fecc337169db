"""What a consent can never carry under the policy in force (issue 15 item 5): the warnings of
its receipt and what the patient page shows. The analysis is the policy's (``app.policy.reach``);
this looks up the parties' kinds and the policy in the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from app.errors import LogUnavailable
from app.policy import Party
from app.policy.reach import Reach, reach
from app.services import organisations
from app.services.decisions import policies


def reach_of(
    session: Session,
    purpose: str,
    recorded_by: str,
    recipients: Sequence[str],
    categories: Sequence[str],
) -> Reach | None:
    """What ``categories`` can and can never reach each of ``recipients`` under a consent for
    ``purpose`` recorded by ``recorded_by``; None when the policy in force does not know the
    purpose, a category or an organisation any more (a consent read back from before a policy
    change or an organisation's removal), which decides nothing about it; None too before any
    policy is published (a consent is recorded whatever the policy: it only warns)."""
    try:
        policy = policies.current_policy(session)
    except LogUnavailable:
        return None
    kinds = organisations.registered_kinds(session, [recorded_by, *recipients])
    if (
        purpose not in policy.purposes
        or any(c not in policy.categories for c in categories)
        or any(org not in kinds for org in (recorded_by, *recipients))
    ):
        return None
    return reach(
        policy,
        purpose,
        Party(recorded_by, kinds[recorded_by]),
        [Party(org, kinds[org]) for org in recipients],
        categories,
    )


def shares_by_consent(
    session: Session, consents: Sequence[Mapping[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """For each consent view (``consent_view``), one row per recipient it names: the listed
    categories it can receive (``can``) and what it never can (``never``: ``category`` and
    ``rule``; a category of None means nothing at all). A consent the policy in force cannot
    judge keeps its listing, unmarked."""
    shown: dict[str, list[dict[str, Any]]] = {}
    for c in consents:
        found = reach_of(
            session, c["purpose"], c["recorded_by"], c["recipients"], c["data_categories"]
        )
        shown[c["id"]] = [
            {
                "recipient": recipient,
                "can": list(dict(found.can)[recipient] if found else c["data_categories"]),
                "never": [
                    {"category": b.category, "rule": b.rule}
                    for b in (found.blocked_for(recipient) if found else ())
                ],
            }
            for recipient in c["recipients"]
        ]
    return shown
