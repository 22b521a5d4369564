"""The interactive docs render from the gateway alone: Debian's headless chromium, network off
(tests/browser_support.py: any request off loopback fails, so a page that needed a CDN stays blank).
"""

from __future__ import annotations

import asyncio
import json

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from browser_support import chromium
from partner_gateway.api.app import create_app
from partner_gateway.config import Settings
from partner_gateway.embedded_server import EmbeddedServer
from partner_gateway.runtime import Runtime
from support import BASE


def render(url: str) -> tuple[str, list[str], list[str]]:
    """The rendered page's API title, its operations' paths, and every URL the browser asked for."""
    driver = chromium(performance_log=True)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 30)
        title = wait.until(
            expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, ".swagger-ui .info .title"))
        )
        wait.until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".opblock-summary-path"))
        )
        paths = [element.text for element in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
        requested = []
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                requested.append(message["params"]["request"]["url"])
        return title.text, paths, requested
    finally:
        driver.quit()


async def test_the_docs_page_renders_with_the_network_off(settings: Settings, runtime: Runtime) -> None:
    app = create_app(settings, runtime)
    async with EmbeddedServer(app, name="gateway", start_timeout=10, stop_timeout=10) as port:
        origin = f"http://127.0.0.1:{port}"
        title, paths, requested = await asyncio.to_thread(render, f"{origin}{BASE}/docs")
    assert title.startswith("Partner Gateway API")
    assert f"{BASE}/sms/messages" in paths
    assert f"{BASE}/messages/history" in paths
    outside = [url for url in requested if not url.startswith((origin, "data:", "blob:"))]
    assert outside == []
    assert f"{origin}{BASE}/docs-assets/swagger-ui-bundle.js" in requested
