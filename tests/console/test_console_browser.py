"""The console in Debian's headless chromium against a real `serve`: sign in, send, watch the
timeline go from SENT to DELIVERED without a reload, filter the log, change the callback settings;
a forged change from another origin's page refused; another company's message not reachable."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import httpx
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from browser_support import chromium
from e2e_support import Gateway
from support import BASE, cli, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def signed_in(browser: WebDriver, console_gateway: Gateway) -> WebDriver:
    browser.get(f"{console_gateway.url}/console/")
    assert browser.current_url.endswith("/console/sign-in")
    browser.find_element(By.ID, "api_key").send_keys(console_gateway.api_key)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(browser, 10).until(expected_conditions.url_contains("/console/messages"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Messages"
    cookies = browser.get_cookies()
    assert [cookie["name"] for cookie in cookies] == ["pgw_console"]
    assert cookies[0]["httpOnly"] is True
    assert cookies[0]["sameSite"] == "Strict"
    assert console_gateway.api_key not in json.dumps(cookies)
    stored = browser.execute_script(
        "return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie"
    )
    assert console_gateway.api_key not in stored
    assert "pgw_console" not in stored
    return browser


def send_from_the_form(browser: WebDriver, gateway: Gateway, channel: str, text: str) -> str:
    browser.get(f"{gateway.url}/console/send")
    Select(browser.find_element(By.ID, "channel")).select_by_value(channel)
    browser.find_element(By.ID, "to").send_keys("+4915112345678")
    browser.find_element(By.ID, "text").send_keys(text)
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    WebDriverWait(browser, 10).until(expected_conditions.url_contains(f"/console/messages/{channel}/msg_"))
    return browser.current_url.rsplit("/", 1)[1]


def test_the_timeline_goes_from_sent_to_delivered_live(
    signed_in: WebDriver, console_gateway: Gateway
) -> None:
    browser = signed_in
    message_id = send_from_the_form(browser, console_gateway, "SMS", "Watch me arrive")
    browser.execute_script("window.stillTheSamePage = true")
    status = (By.ID, "delivery-status")
    WebDriverWait(browser, 30).until(expected_conditions.text_to_be_present_in_element(status, "SENT"))
    WebDriverWait(browser, 40).until(expected_conditions.text_to_be_present_in_element(status, "DELIVERED"))
    assert browser.execute_script("return window.stillTheSamePage") is True  # polled, never reloaded
    timeline = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#timeline tr")]
    assert any("SENT" in row for row in timeline)
    assert "DELIVERED" in timeline[-1]
    assert browser.find_element(By.ID, "live").text == "This status is final."
    assert message_id in browser.find_element(By.TAG_NAME, "h1").text


def test_filter_the_log(signed_in: WebDriver, console_gateway: Gateway) -> None:
    browser = signed_in
    whatsapp_id = send_from_the_form(browser, console_gateway, "WHATSAPP", "A WhatsApp hello")
    browser.get(f"{console_gateway.url}/console/messages")
    Select(browser.find_element(By.ID, "channel")).select_by_value("WHATSAPP")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    WebDriverWait(browser, 10).until(expected_conditions.url_contains("channel=WHATSAPP"))
    rows = browser.find_elements(By.CSS_SELECTOR, "table.log tbody tr")
    assert [row.find_element(By.TAG_NAME, "a").text for row in rows] == [whatsapp_id]
    # keyboard: the first message link is reachable and opens its page
    link = rows[0].find_element(By.TAG_NAME, "a")
    link.send_keys("\n")
    WebDriverWait(browser, 10).until(
        expected_conditions.url_contains(f"/console/messages/WHATSAPP/{whatsapp_id}")
    )


def test_change_the_callback_settings(signed_in: WebDriver, console_gateway: Gateway) -> None:
    browser = signed_in
    browser.get(f"{console_gateway.url}/console/callbacks")
    field = browser.find_element(By.ID, "url")
    field.clear()
    field.send_keys("http://127.0.0.1:9/callbacks")
    field.submit()
    secret = WebDriverWait(browser, 10).until(
        expected_conditions.presence_of_element_located((By.ID, "new-secret"))
    )
    assert secret.text.startswith("whsec_")
    answer = httpx.get(f"{console_gateway.url}{BASE}/callbacks/settings", headers=console_gateway.headers)
    assert answer.json() == {"url": "http://127.0.0.1:9/callbacks", "secretSet": True}
    browser.get(f"{console_gateway.url}/console/callbacks")
    assert browser.find_elements(By.ID, "new-secret") == []  # shown once


class _ForgedPage(http.server.BaseHTTPRequestHandler):
    """Another origin's page (same site: 127.0.0.1, another port, so SameSite lets the cookie go)
    whose form posts to the console's key creation."""

    target = ""

    def do_GET(self) -> None:
        body = (
            f'<!doctype html><form id="forged" method="post" action="{self.target}">'
            '<input name="csrf_token" value="guessed"><input name="label" value="forged">'
            '<button id="go" type="submit">Win a prize</button></form>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_forged_change_is_refused(signed_in: WebDriver, console_gateway: Gateway) -> None:
    browser = signed_in
    handler = type("Forged", (_ForgedPage,), {"target": f"{console_gateway.url}/console/keys"})
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        browser.find_element(By.ID, "go").click()
        WebDriverWait(browser, 10).until(expected_conditions.url_contains("/console/keys"))
        assert '"status":403' in browser.page_source.replace(" ", "")
    finally:
        server.shutdown()
        server.server_close()
    # A script on the console's own page without the token: refused too
    browser.get(f"{console_gateway.url}/console/keys")
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/console/keys', {method: 'POST', body: new URLSearchParams({label: 'scripted'})})"
        ".then(r => done(r.status));"
    )
    assert status == 403
    listed = cli(console_gateway.env, "apikey", "list", "--company", console_gateway.company_id).stdout
    assert "forged" not in listed
    assert "scripted" not in listed


def test_another_companys_message_is_not_reachable(signed_in: WebDriver, console_gateway: Gateway) -> None:
    browser = signed_in
    other = json.loads(cli(console_gateway.env, "company", "create", "Other Ltd", "--json").stdout)
    sent = httpx.post(
        f"{console_gateway.url}{BASE}/sms/messages",
        headers={"Authorization": f"Bearer {other['apiKey']}"},
        json={"to": "+4915112345678", "text": "Not yours"},
    )
    assert sent.status_code == 202
    theirs = sent.json()["customerMessageId"]
    browser.get(f"{console_gateway.url}/console/messages/SMS/{theirs}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Not found"
    browser.get(f"{console_gateway.url}/console/messages")
    assert theirs not in browser.page_source


def test_the_stats_page_draws_its_charts(signed_in: WebDriver, console_gateway: Gateway) -> None:
    browser = signed_in
    browser.get(f"{console_gateway.url}/console/stats?bucket=hour")
    WebDriverWait(browser, 10).until(
        lambda driver: driver.execute_script("return typeof Chart !== 'undefined'")
    )
    assert browser.find_element(By.ID, "charts-unavailable").is_displayed() is False
    drawn = browser.execute_script("return Object.keys(Chart.instances).length")
    assert drawn == 3
