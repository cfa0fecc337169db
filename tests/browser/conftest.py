"""A real headless Chromium (Debian's package) driven by Playwright, against the real server.

Without Chromium or Playwright the browser tests are skipped, unless ``REQUIRE_BROWSER=1``
(as CI sets), which fails the run instead, and fails it if no browser test passed.
Screenshots of every page go to ``test-output/screenshots``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.server.conftest import Server, _run

CHROMIUM = os.environ.get("CONSENT_LEDGER_TEST_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("REQUIRE_BROWSER") == "1"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
# The probe-tested flags for this machine: no sandbox as root, no GPU, no background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[dev]')"
    if reason is None and not Path(CHROMIUM).exists():
        reason = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    if reason:
        if REQUIRE_BROWSER:
            pytest.fail(f"REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 900})
    tab = context.new_page()
    yield tab
    context.close()


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class Live:
    """The demo instance served by gunicorn, with its demo tokens and API helpers."""

    def __init__(self, server: Server, tokens: dict[str, str]) -> None:
        self.server = server
        self.url = server.url
        self.tokens = tokens

    def api(self, method: str, path: str, token: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method,
            self.url + path,
            timeout=10,
            headers={"Authorization": f"Bearer {self.tokens[token]}"},
            **kwargs,
        )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    instance = tmp_path_factory.mktemp("browser") / "instance"
    _run(instance, "init")
    _run(instance, "demo")
    tokens = {
        f"{t['role']}:{t['organisation']}": t["token"]
        for t in json.loads((instance / "demo-tokens.json").read_text())
    }
    server = Server(instance, workers=2)
    yield Live(server, tokens)
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _fresh_screenshots() -> None:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
