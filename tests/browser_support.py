"""Debian's headless chromium under selenium, with the network off (importable as
`browser_support`): the docs page's test and the console's browser tests.

Every request that is not to the loopback address goes to a proxy that does not exist, so a page
that needed a CDN would stay blank. It needs /usr/bin/chromium and chromedriver (scripts/bootstrap
installs them) and the selenium package (the dev extra).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def chromium(*, width: int = 1280, height: int = 900, performance_log: bool = False) -> webdriver.Chrome:
    """A started headless chromium; the caller quits it."""
    assert CHROMIUM.exists(), "Debian's chromium is missing: run scripts/bootstrap"
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        # Network off: everything but the loopback address goes to a closed port.
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=127.0.0.1",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(argument)
    if performance_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    return driver
