"""A real webhook receiver for the tests: an HTTP server on 127.0.0.1 in a thread that keeps
every request it gets and answers each with the next status of a script (then the last one
again). ``hold_at`` makes the n-th request (from 1) wait, unanswered, until ``release()``:
the crash test kills the server while a delivery is in flight."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    status: int
    answered: bool  # the answer was sent while the sender was waiting for it


class Receiver:
    def __init__(self, statuses: Sequence[int] = (200,), hold_at: int | None = None) -> None:
        self.statuses = list(statuses)
        self.hold_at = hold_at
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.holding = threading.Event()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    n = len(receiver.requests) + 1
                    held = n == receiver.hold_at
                    status = receiver.statuses[min(n - 1, len(receiver.statuses) - 1)]
                    # Recorded before answering, in arrival order; a held request's answer
                    # comes after its sender is gone, so it does not count as answered.
                    receiver.requests.append(
                        Received(
                            self.headers.get("webhook-id", ""),
                            dict(self.headers.items()),
                            body,
                            status,
                            answered=not held,
                        )
                    )
                if held:
                    receiver.holding.set()
                    receiver._release.wait(60)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def release(self) -> None:
        self._release.set()

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.requests)

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.release()
            self.server.shutdown()
            self.server.server_close()
