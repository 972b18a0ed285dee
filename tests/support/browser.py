"""Headless Chromium through selenium (Debian's `chromium` and `chromium-driver`), for the station page tests."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.requirements import require_chromium


@contextmanager
def chromium(profile: Path, *arguments: str) -> Iterator[Any]:
    """A headless Chromium with its own profile folder; extra command-line `arguments` (e.g. resolver rules)."""
    binary, driver_binary = require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(binary)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                     "--window-size=1400,1000", f"--user-data-dir={profile}", *arguments):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(driver_binary)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@contextmanager
def unreachable(driver: Any, path: str) -> Iterator[None]:
    """Requests to `path` fail in the browser as if the station did not answer (the page's other requests go on)."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": [f"*{path}"]})
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
        driver.execute_cdp_cmd("Network.disable", {})
