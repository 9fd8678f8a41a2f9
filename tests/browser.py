"""Open a report page in headless Chromium and say what a reader would see: images, errors, title."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# No background traffic: this machine's closed network refuses it, and Chromium logs each refusal.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1000")


@dataclass(frozen=True)
class Rendered:
    title: str
    images: list[dict]  # alt, complete, naturalWidth, naturalHeight, visible
    console_errors: list[str]
    tables: int


def require_browser() -> None:
    try:
        import selenium  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"selenium cannot be imported ({exc}); install the dev extra")
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip(f"{CHROMIUM} or {CHROMEDRIVER} is missing; install Debian's chromium and chromium-driver "
                    "(.ci/run does)")


def render(page: Path, profile: Path) -> Rendered:
    """Load `page` from disk, wait for it to finish, and read back every image's state and the console's errors."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.get(page.resolve().as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete,"
            " naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight,"
            " visible: i.getBoundingClientRect().width > 0 && i.getBoundingClientRect().height > 0}));")
        errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        tables = driver.execute_script("return document.querySelectorAll('table').length;")
        return Rendered(driver.title, images, errors, int(tables))
    finally:
        driver.quit()
