"""Helpers shared by the tests (importable as `support`: pytest puts tests/ on the path)."""

from __future__ import annotations

from dataclasses import dataclass

from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.companies import CompanyRepository

BASE = "/partner-gateway/v1"


@dataclass(frozen=True)
class Partner:
    company_id: str
    api_key: str
    api_key_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


async def make_partner(runtime: Runtime, name: str = "Acme") -> Partner:
    async with runtime.database.write() as connection:
        repository = CompanyRepository(connection)
        company = await repository.create(name, now_ms())
        issued = await repository.issue_key(company.id, now_ms())
    return Partner(company.id, issued.plain_key, issued.info.id)


