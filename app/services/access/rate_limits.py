"""Per-client limits on writes and on decisions, counted with the ``limits`` library.

Every authenticated POST counts against its client: ``POST /v1/decisions`` and a CDS Hooks
consult in the decisions bucket (a list once for each decision it asks for), every other POST
(consents, withdrawals, objections, disclosures, access links) in the writes bucket. A client
over its limit gets 429 with ``Retry-After`` and nothing is recorded.

The counters live in ``CONSENT_LEDGER_RATE_LIMIT_STORAGE`` (a ``limits`` storage URI). The
default, ``memory://``, counts in each worker process alone, so with W workers a client can
reach up to W times its limit; give all workers one shared store (``redis://...``, with the
``limits[redis]`` extra) where the limit must hold exactly.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.errors import RateLimited

# A CDS Hooks consult is a decision too, counted in the same bucket.
DECISION_ENDPOINTS = frozenset({"decisions.decide", "cds_hooks.consult"})
OFF = ("", "0", "off", "none")


def parse_limit(text: str, setting: str) -> RateLimitItem | None:
    """``"600/minute"``, ``"20 per second"``...; ``off`` for no limit. Refused loudly at start."""
    if text.strip().lower() in OFF:
        return None
    try:
        return parse(text)
    except ValueError:
        raise ValueError(
            f"{setting}={text!r} is not a rate limit: write it like '600/minute' or 'off'"
        ) from None


class RateLimits:
    def __init__(
        self, writes: RateLimitItem | None, decisions: RateLimitItem | None, storage_uri: str
    ) -> None:
        self._items = {"writes": writes, "decisions": decisions}
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def hit(self, client_id: str, endpoint: str, cost: int = 1) -> None:
        """Count one request, as ``cost`` writes or decisions (a list of decisions counts each);
        raise :class:`RateLimited` if that would take the client over its limit, counting
        nothing."""
        bucket = "decisions" if endpoint in DECISION_ENDPOINTS else "writes"
        item = self._items[bucket]
        if item is None or self._limiter.hit(item, bucket, client_id, cost=cost):
            return
        if cost > item.amount:
            # No wait would let it through: say so rather than send the caller to retry.
            raise RateLimited(
                f"this request asks for {cost} {bucket}, more than this client's whole limit "
                f"of {item}; nothing was recorded; send fewer at a time",
                math.ceil(item.get_expiry()),
            )
        reset_at = self._limiter.get_window_stats(item, bucket, client_id).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimited(
            f"this client has reached its limit of {item} for {bucket}; "
            f"nothing was recorded; retry after {retry_after} s",
            retry_after,
        )
