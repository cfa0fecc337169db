"""The public log as C2SP tlog-tiles (https://c2sp.org/tlog-tiles), under ``/log``.

``/log/checkpoint``, ``/log/tile/<L>/<N>[.p/<W>]`` and ``/log/tile/entries/<N>[.p/<W>]``: no
token, readable from any origin (CORS), so code we did not write (monitors, witnesses, a static
mirror) can follow the log. A plain Flask blueprint, not part of the v1 OpenAPI document: the
paths and bytes are the spec's, not ours. The cache headers are set here; ``app.headers`` keeps
them on these paths' successful responses and says ``no-store`` on everything else.
"""

from __future__ import annotations

from flask import Blueprint, Response

from app.api.common import ledger
from app.errors import FieldError, InvalidArgument
from app.ledger.tiles import TilePathError, parse_tile_path
from app.services.log import tiles

bp = Blueprint("tiles", __name__, url_prefix="/log")

# A full tile or bundle never changes once served: every hash in it covers entries that are
# all in a signed tree. A partial one does not change either, but the spec lets a log drop it
# once the full tile exists, so caches keep it only briefly. The checkpoint changes with every
# write: caches must ask again each time (the spec: "no longer than a few seconds").
FULL = "public, max-age=31536000, immutable"
PARTIAL = "public, max-age=60"
CHECKPOINT = "no-cache"


@bp.get("/checkpoint")
def checkpoint() -> Response:
    response = Response(tiles.checkpoint(ledger()), mimetype="text/plain")
    response.headers["Cache-Control"] = CHECKPOINT
    return response


@bp.get("/tile/<path:path>")
def tile(path: str) -> Response:
    try:
        wanted = parse_tile_path(path)
    except TilePathError as exc:
        raise InvalidArgument(
            f"not a tile path of c2sp.org/tlog-tiles: {exc}",
            errors=[FieldError(exc.part, exc.message, "path")],
        ) from None
    response = Response(tiles.read_tile(ledger(), wanted), mimetype="application/octet-stream")
    response.headers["Cache-Control"] = PARTIAL if wanted.is_partial else FULL
    return response
