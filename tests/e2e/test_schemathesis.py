"""schemathesis against the served OpenAPI document: no 5xx, no answer that breaks the document."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from e2e_support import Gateway
from support import BASE

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


def test_the_served_api_conforms_to_its_document(gateway: Gateway) -> None:
    schemathesis = Path(sys.executable).parent / "st"
    result = subprocess.run(
        [
            str(schemathesis), "run", f"{gateway.url}{BASE}/openapi.json",
            "--header", f"Authorization: Bearer {gateway.api_key}",
            "--checks", CHECKS,
            "--max-examples", "50",
            "--workers", "1",  # Python 3.11's ast module is not thread-safe under hypothesis
            "--seed", "20261127",
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout
