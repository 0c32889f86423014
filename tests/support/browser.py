"""A real browser for the console tests: PyPI `playwright` driving Debian's `chromium`.

Playwright's own browser download is never used (it would fetch from the internet): the system
binary is launched by path, headless, with everything that phones home switched off.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from tests.support.processes import missing_component

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's chromium under playwright; skips (fails under CI) when either is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_component("PyPI playwright not installed")
    if shutil.which(CHROMIUM) is None:
        missing_component(f"not installed: {CHROMIUM} (Debian package chromium)")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()
