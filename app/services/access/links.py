"""Whether a patient's access link still opens their page: one rule, applied when a page is
served (``web_sessions.resolve_access_link``) and again, under the log-head lock, by every write
made through the link (:func:`check_link`).

The page reads the link before its write queues for the lock, and an erasure, a revocation of
the link or of its issuing client, or the link's expiry can commit in between. A write that
trusted that earlier read would log an entry under the reference of a person just erased (with
no mapping left, so no later erasure could reach it), or act through a link its issuer has just
ended. Kept apart from ``web_sessions`` so the consent use cases can call it (``web_sessions``
imports them).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import AccessLink, ApiClient
from app.services.access.clients import Principal

# The roles whose clients may issue links (and whose links still work).
LINK_ROLES = ("case_system", "patient_portal")


class DeadLink(NotFound):
    """The link no longer opens this person's record; the page answers as for any dead link."""


def link_open(link: AccessLink, issuer: ApiClient, now: datetime) -> bool:
    """Not expired (a revocation ends a link by setting its expiry to the time it was revoked),
    and issued by a client that is neither revoked nor rotated since (by log position, not the
    clock: the link was issued before the rotation) and may issue links."""
    return (
        now < link.expires_at
        and issuer.revoked_at is None
        and (issuer.rotated_index is None or link.ledger_index >= issuer.rotated_index)
        and issuer.role in LINK_ROLES
    )


_LINK_AND_ISSUER = select(AccessLink, ApiClient).join(
    ApiClient, ApiClient.id == AccessLink.created_by_client
)


def check_link(
    session: Session, principal: Principal, now: datetime, subject_ref: str | None
) -> None:
    """Inside a write's transaction: a person acting through a link (``principal.via_link``;
    its ``client_id`` is the link's id) may write only while the link is open and only about
    the person it was issued for, ``subject_ref``. ``None`` when the write names nothing that
    exists (a consent id not found): the link must still be open, and the write refuses the
    rest itself. Any other principal is not checked here. Raises :class:`DeadLink`."""
    if not principal.via_link:
        return
    row = session.execute(
        _LINK_AND_ISSUER.where(AccessLink.id == principal.client_id)
    ).one_or_none()
    if row is None or not link_open(*row, now):
        # Erased with its person, revoked, expired, or its issuer revoked or rotated.
        raise DeadLink("this access link has ended; nothing was changed")
    if subject_ref is not None and row[0].subject_ref != subject_ref:
        raise DeadLink("this access link does not open that record; nothing was changed")
