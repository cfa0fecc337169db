"""Whether the service may serve: decided once per process, at start-up, and fail-closed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from app.db import Database
from app.services.log.keys import KeyFileError
from app.services.log.log_store import LogInconsistent, LogStore
from app.services.log.published import (
    PublishedRecord,
    RollbackDetected,
    check_database_against_record,
)

logger = logging.getLogger("consent_ledger.health")


@dataclass(frozen=True)
class HealthState:
    ok: bool
    log_size: int
    reason: str | None = None
    # A database not reachable yet (PostgreSQL still starting) or an instance not initialised
    # is checked again on the next request; a log that contradicts its checkpoint stays
    # refused until a restart.
    final: bool = True

    @property
    def public_reason(self) -> str | None:
        """What anonymous callers are told: no paths, no internals. The ERROR log has the rest."""
        if self.ok:
            return None
        if not self.final:
            return (
                "the service is not initialised or its database is unreachable "
                "(run `consent-ledger init`)"
            )
        return "the log failed its consistency check; see the service's log"


def check_log(
    db: Database,
    load_store: Callable[[], LogStore],
    record: PublishedRecord,
    *,
    announce: bool = True,
) -> HealthState:
    """Check the stored tree against the newest signed checkpoint, and the database against
    the newest checkpoint this instance published; log a failure, and with ``announce`` a
    success too."""
    try:
        store = load_store()
        with db.read() as session:
            ring = store.keys(session).ring
        recorded = record.read(ring)  # before the snapshot: see the callee
        with db.read() as session:
            size = store.check_against_checkpoint(session)
            check_database_against_record(session, store, record, recorded, size)
    except (LogInconsistent, RollbackDetected) as exc:
        reason = str(exc)
    except KeyFileError as exc:
        logger.error("consent-ledger refuses to serve for now: %s", exc)
        return HealthState(ok=False, log_size=-1, reason=str(exc), final=False)
    except OSError as exc:
        # The published-checkpoint record cannot be read or written (owned by another user?).
        reason = f"the instance folder is not usable by this process: {exc}"
        logger.error("consent-ledger refuses to serve for now: %s", reason)
        return HealthState(ok=False, log_size=-1, reason=reason, final=False)
    except SQLAlchemyError as exc:
        reason = (
            f"the database is unreachable or not initialised ({type(exc).__name__}): "
            "run `consent-ledger init`"
        )
        logger.error("consent-ledger refuses to serve for now: %s", reason)
        return HealthState(ok=False, log_size=-1, reason=reason, final=False)
    else:
        if announce:
            logger.info(
                "log checked at start-up: %d entries agree with the newest checkpoint", size
            )
        return HealthState(ok=True, log_size=size)
    logger.error("consent-ledger refuses to serve: %s", reason)
    return HealthState(ok=False, log_size=-1, reason=reason)
