"""The OpenAPI document is one tools can trust (issue 17): valid OpenAPI 3.1, every rule the
handlers enforce written in, one schema per enum, headers and problems as answered, and a client
generated from it by openapi-python-client that sends, looks up and pages.

The client generator runs from its own virtual environment, `.venv-openapi-client` (made by
scripts/bootstrap: its pinned typer would clash with the gateway's), offline, at test time.
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from openapi_spec_validator import validate

from partner_gateway.api.app import create_app
from partner_gateway.channels.registry import CHANNELS
from partner_gateway.config import Settings
from partner_gateway.runtime import Runtime
from support import BASE, Partner

GENERATOR = Path(__file__).parents[2] / ".venv-openapi-client" / "bin" / "openapi-python-client"


async def document_of(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get(f"{BASE}/openapi.json")
    assert answer.status_code == 200
    return dict(answer.json())


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def enums(value: Any, where: str = "") -> Iterator[tuple[str, list[Any]]]:
    if isinstance(value, dict):
        if "enum" in value:
            yield where, value["enum"]
        for key, item in value.items():
            yield from enums(item, f"{where}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from enums(item, f"{where}/{index}")


async def test_the_document_is_valid_openapi_3_1(client: httpx.AsyncClient) -> None:
    document = await document_of(client)
    assert document["openapi"].startswith("3.1")
    validate(document)  # openapi-spec-validator: raises on any violation of the 3.1 schema


async def test_every_rule_is_in_the_schemas(client: httpx.AsyncClient) -> None:
    document = await document_of(client)
    schemas = document["components"]["schemas"]
    for entry in CHANNELS:
        props = schemas[entry.request_type.__name__]["properties"]
        assert props["to"]["pattern"] == r"^\+[1-9][0-9]{6,14}$"
        [reference, _null] = props["reference"]["oneOf"]
        assert (reference["minLength"], reference["maxLength"]) == (1, 64)
        [validity, _null] = props["validitySeconds"]["oneOf"]
        assert (validity["minimum"], validity["maximum"], validity["default"]) == (
            entry.validity.minimum,
            entry.validity.maximum,
            entry.validity.default,
        )
    whatsapp_text = schemas["WhatsAppSendRequest"]["properties"]["text"]["oneOf"][0]
    assert (whatsapp_text["minLength"], whatsapp_text["maxLength"]) == (1, 4096)
    parameters = schemas["WhatsAppTemplate"]["properties"]["parameters"]
    assert parameters["maxItems"] == 100
    assert parameters["items"]["maxLength"] == 1024
    ids = schemas["StatusQuery"]["properties"]["ids"]
    assert (ids["minItems"], ids["maxItems"], ids["items"]["minLength"]) == (1, 10_000, 1)
    for name in ("createdAt", "updatedAt"):
        assert schemas["DeliveryStatusResponse"]["properties"][name]["format"] == "date-time"
    history = {
        p["name"]: p["schema"] for p in document["paths"][f"{BASE}/messages/history"]["get"]["parameters"]
    }
    assert history["limit"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    assert [s["format"] for s in history["startDate"]["oneOf"]] == ["date-time", "date"]


async def test_one_schema_per_enum(client: httpx.AsyncClient) -> None:
    document = await document_of(client)
    found = list(enums(document))
    channel_enums = [where for where, values in found if set(values) >= {"SMS", "RCS", "WHATSAPP"}]
    assert channel_enums == ["/components/schemas/Channel"]
    encoding_enums = [where for where, values in found if "GSM7" in values]
    assert encoding_enums == ["/components/schemas/Encoding"]
    # (a callback event's state, PENDING/DELIVERED/GIVEN_UP, is an enum of its own)
    status_enums = [where for where, values in found if {"SENT", "DELIVERED", "EXPIRED"} <= set(values)]
    assert status_enums == ["/components/schemas/DeliveryStatus"]


async def test_headers_and_problems_are_declared(client: httpx.AsyncClient) -> None:
    document = await document_of(client)
    for path, method, operation in operations(document):
        if not path.startswith(BASE) or path.endswith("openapi.json"):
            continue
        responses = operation["responses"]
        assert {"401", "429", "500", "503"} <= set(responses), (method, path)
        for status in ("429", "500", "503"):
            assert "Retry-After" in responses[status]["headers"], (method, path, status)
        assert "WWW-Authenticate" in responses["401"]["headers"]
        if "requestBody" in operation:
            assert {"400", "413", "415"} <= set(responses), (method, path)
    send = document["paths"][f"{BASE}/sms/messages"]["post"]["responses"]["202"]["headers"]
    assert {"Location", "Idempotent-Replayed"} <= set(send)
    assert "Link" in document["paths"][f"{BASE}/messages/history"]["get"]["responses"]["200"]["headers"]


def example(document: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    content = document["paths"][path][method]["responses"][str(status)]["content"]["application/problem+json"]
    [only] = content["examples"].values()
    return dict(only["value"])


async def test_problem_examples_are_real_answers(client: httpx.AsyncClient, partner: Partner) -> None:
    document = await document_of(client)
    sms = f"{BASE}/sms/messages"
    real = {
        401: await client.post(sms, json={"to": "+4915112345678", "text": "x"}),
        400: await client.get(f"{BASE}/messages/status/msg_x?channel=FAX", headers=partner.headers),
        404: await client.get(
            f"{BASE}/messages/status/msg_01JDX3Q7T0Z5K9R3B2M8N4P6W1?channel=SMS", headers=partner.headers
        ),
        415: await client.post(sms, content=b"{}", headers={**partner.headers, "Content-Type": "text/plain"}),
    }
    for status, answer in real.items():
        path, method = (
            (sms, "post")
            if status in (401, 415)
            else (f"{BASE}/messages/status/{{customerMessageId}}", "get")
        )
        assert answer.status_code == status
        shown = example(document, path, method, status)
        body = answer.json()
        body.pop("requestId")  # every answer's own (observability/context.py)
        assert (shown["type"], shown["title"], shown["status"]) == (
            body["type"],
            body["title"],
            body["status"],
        )
        if status in (400, 401, 404):
            assert shown == body, status  # the same words exactly
    assert example(document, sms, "post", 415)["detail"] == real[415].json()["detail"]


def generate(tmp_path: Path, document: str) -> ModuleType:
    assert GENERATOR.exists(), "openapi-python-client is missing: run scripts/bootstrap"
    spec = tmp_path / "openapi.json"
    spec.write_text(document)
    name = f"pgw_client_{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(spec),
            "--output-path",
            str(tmp_path / name),
            "--meta",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))


async def test_a_generated_client_sends_looks_up_and_pages(
    tmp_path: Path, settings: Settings, runtime: Runtime, partner: Partner
) -> None:
    app = create_app(settings, runtime)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as http:
        document = (await http.get(f"{BASE}/openapi.json")).text
    package = await asyncio.to_thread(generate, tmp_path, document)
    name = package.__name__
    client_module = importlib.import_module(f"{name}.client")
    send_sms = importlib.import_module(f"{name}.api.send.send_sms")
    get_status = importlib.import_module(f"{name}.api.status.get_message_status")
    get_history = importlib.import_module(f"{name}.api.history.get_message_history")
    models = importlib.import_module(f"{name}.models")
    client = client_module.AuthenticatedClient(
        base_url="http://gateway.test",
        token=partner.api_key,
        httpx_args={"transport": httpx.ASGITransport(app=app)},
    )
    sent = []
    for n in range(3):
        answer = await send_sms.asyncio_detailed(
            client=client,
            body=models.SmsSendRequest(to="+4915112345678", text=f"Hello {n}", reference=f"r-{n}"),
        )
        assert answer.status_code == 202, answer.content
        assert isinstance(answer.parsed, models.DeliveryStatusResponse)
        assert answer.parsed.delivery_status == models.DeliveryStatus.UNKNOWN
        assert answer.headers["location"].endswith(f"{answer.parsed.customer_message_id}?channel=SMS")
        sent.append(answer.parsed.customer_message_id)
    looked_up = await get_status.asyncio(sent[0], client=client, channel=models.Channel.SMS)
    assert isinstance(looked_up, models.DeliveryStatusResponse)
    assert (looked_up.customer_message_id, looked_up.reference, looked_up.encoding) == (
        sent[0],
        "r-0",
        models.Encoding.GSM7,
    )
    missing = await get_status.asyncio(
        "msg_01JDX3Q7T0Z5K9R3B2M8N4P6W1", client=client, channel=models.Channel.SMS
    )
    assert isinstance(missing, models.Problem)
    assert missing.status == 404
    paged: list[str] = []
    cursor: Any = None
    for _ in range(5):
        kwargs = {"cursor": cursor} if cursor else {}
        page = await get_history.asyncio(client=client, limit=2, channel=models.Channel.SMS, **kwargs)
        assert isinstance(page, models.HistoryPage), page
        paged += [item.customer_message_id for item in page.items]
        cursor = page.next_cursor
        if not cursor:
            break
    assert paged == list(reversed(sent))  # newest first, every message once
