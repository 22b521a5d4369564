"""A real `partner-gateway serve` process on a free port, as a partner would reach it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e_support import Gateway, serving


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, postgres_url: str | None) -> Iterator[Gateway]:
    with serving(tmp_path_factory.mktemp("gateway"), postgres_url) as running:
        yield running
