"""Named dependencies the handlers receive (provided in api/app.py)."""

from __future__ import annotations

from litestar.di import NamedDependency

from partner_gateway.runtime import Runtime

RuntimeDep = NamedDependency[Runtime]
"""The process's runtime: settings, store, keys."""

CompanyId = NamedDependency[str]
"""The id of the company whose API key authenticated the request."""
