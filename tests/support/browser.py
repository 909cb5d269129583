"""A real headless Chromium (Debian's `chromium` and `chromium-driver`), driven by selenium.

The driver is named explicitly, so selenium never tries to download one, and everything Chromium would
fetch by itself is off: tests run without a network.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

__all__ = ["CHROMEDRIVER", "CHROMIUM", "chromium", "click_and_wait"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)


@contextlib.contextmanager
def chromium() -> Iterator[WebDriver]:
    """A fresh browser with a profile of its own, gone afterwards. Fails (never skips) without Chromium:
    CI installs it, so a missing one is a broken machine, not a reason to test less."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: the browser tests need Debian's Chromium. Install it with "
            "`apt-get update && apt-get install -y chromium chromium-driver` (`make test` does so).",
            pytrace=False,
        )
    with tempfile.TemporaryDirectory(prefix="mightycall-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def click_and_wait(driver: WebDriver, element: WebElement, timeout_s: float = 10) -> None:
    """Click something that loads another page, and wait until that page replaced this one."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, timeout_s).until(expected_conditions.staleness_of(page))
