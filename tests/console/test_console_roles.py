"""The console is served by every API process: `serve --role api` signs in and shows the pages
(the browser tests run against the embedded `serve`, role all)."""

from __future__ import annotations

import httpx
import pytest

from e2e_support import Gateway

pytestmark = pytest.mark.slow


def test_an_api_process_serves_the_console(api_role_gateway: Gateway) -> None:
    gateway = api_role_gateway
    with httpx.Client(base_url=gateway.url) as http:
        signed_in = http.post(
            "/console/sign-in", data={"api_key": gateway.api_key}, headers={"Origin": gateway.url}
        )
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/console/messages"
        page = http.get("/console/messages")
        assert page.status_code == 200
        assert "<h1>Messages</h1>" in page.text
        assert http.get("/console/vendor/chart.umd.min.js").status_code == 200
