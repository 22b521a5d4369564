"""What both clients hold: the gateway's address, the key, the retry and batching settings."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from typing import TypeVar

import httpx

from partner_gateway_sdk import _calls
from partner_gateway_sdk._retry import RetryPolicy
from partner_gateway_sdk._version import __version__
from partner_gateway_sdk.errors import UnexpectedResponseError

T = TypeVar("T")
# httpx refuses a URL longer than this, scheme and host included (httpx/_urlparse.py).
HTTPX_MAX_URL_LENGTH = 65_536
log = logging.getLogger("partner_gateway_sdk")

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 10.0
API_KEY_VARIABLE = "PARTNER_GATEWAY_API_KEY"
BASE_URL_VARIABLE = "PARTNER_GATEWAY_BASE_URL"


class BaseClient:
    def __init__(
        self,
        api_key: str | None,
        base_url: str | httpx.URL | None,
        *,
        timeout: float | httpx.Timeout,
        max_retries: int | None,
        retry: RetryPolicy | None,
        max_url_length: int,
        query_chunk_size: int,
        max_concurrency: int,
        headers: Mapping[str, str] | None,
    ) -> None:
        key = api_key or os.environ.get(API_KEY_VARIABLE)
        if not key:
            raise ValueError(f"an API key is needed: pass api_key or set {API_KEY_VARIABLE}")
        self.base_url = _calls.base_url_of(base_url or os.environ.get(BASE_URL_VARIABLE) or DEFAULT_BASE_URL)
        policy = retry or RetryPolicy()
        self.retry = policy if max_retries is None else dataclasses.replace(policy, max_retries=max_retries)
        if max_concurrency < 1:
            raise ValueError("max_concurrency is at least 1")
        if not 1 <= query_chunk_size <= _calls.MAX_QUERY_CHUNK:
            raise ValueError(f"query_chunk_size is 1 to {_calls.MAX_QUERY_CHUNK}")
        if max_url_length < 100:
            raise ValueError("max_url_length is at least 100 bytes")
        self._prefix = self.base_url.path.rstrip("/")
        self._url = str(self.base_url).rstrip("/")  # the API's root: every call's path goes after it
        # The bound is on the request target (what the gateway limits); the whole URL must also
        # stay within httpx's own limit, so a 65,535-byte target loses the origin's length.
        self.max_url_length = min(max_url_length, HTTPX_MAX_URL_LENGTH - (len(self._url) - len(self._prefix)))
        self.query_chunk_size = query_chunk_size
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self._headers = {
            "Authorization": f"Bearer {key}",
            "Accept": "application/json",
            "User-Agent": f"partner-gateway-sdk-python/{__version__}",
            **(headers or {}),
        }

    def _status_calls(self, ids: list[str], channel: str, method: str) -> list[_calls.Call]:
        return _calls.status_calls(
            ids,
            channel,
            prefix=self._prefix,
            method=method,
            max_url_length=self.max_url_length,
            chunk_size=self.query_chunk_size,
        )

    def _request_of(self, http: httpx.Client | httpx.AsyncClient, call: _calls.Call) -> httpx.Request:
        return http.build_request(
            call.method, self._url + call.path, json=call.json, headers={**self._headers, **call.headers}
        )

    @staticmethod
    def _log_retry(call: _calls.Call, retry: int, total: int, delay: float, reason: str) -> None:
        log.info(
            "%s %s: %s; retry %d of %d in %.2f s",
            call.method,
            call.path.partition("?")[0],
            reason,
            retry + 1,
            total,
            delay,
        )

    @staticmethod
    def _read(response: httpx.Response, parse: Callable[[httpx.Response], T]) -> T:
        """The answer as `parse` reads it; a success answer that is not the gateway's JSON (a
        proxy's page, a cut body) is UnexpectedResponseError, not a KeyError from deep inside."""
        try:
            return parse(response)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise UnexpectedResponseError(
                f"a {response.status_code} answer this SDK cannot read: {error!r}", response
            ) from error
