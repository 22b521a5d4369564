"""The SDK's pure rules: when to retry and how long to wait, how ids are split, how answers and
problems are read (no server: the rules, case by case; the served gateway is in the other files)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from partner_gateway_sdk import (
    BadRequestError,
    Client,
    InternalServerError,
    RetryPolicy,
    ServerError,
    UnexpectedResponseError,
)
from partner_gateway_sdk._calls import date_param, status_calls, unique_ids
from partner_gateway_sdk.errors import error_from_response, parse_retry_after

CONNECT = httpx.ConnectError("refused")
READ = httpx.ReadTimeout("slow")


def answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


@pytest.mark.parametrize("retry", range(8))
def test_backoff_doubles_from_half_a_second_to_eight_less_a_quarter_of_jitter(retry: int) -> None:
    policy = RetryPolicy()
    ceiling = min(0.5 * 2**retry, 8.0)
    for _ in range(50):
        assert 0.75 * ceiling <= policy.backoff(retry) <= ceiling


@pytest.mark.parametrize(
    ("status", "repeatable", "retried"),
    [
        (429, True, True),
        (429, False, True),  # nothing of a refused request was kept: always safe
        (503, True, True),
        (503, False, False),  # it may have been acted on: only a repeatable call
        (500, True, True),
        (502, True, True),
        (504, True, True),
        (408, True, True),
        (409, True, True),
        (400, True, False),
        (401, True, False),
        (404, True, False),
        (413, True, False),
        (422, True, False),
    ],
)
def test_which_answers_are_tried_again(status: int, repeatable: bool, retried: bool) -> None:
    delay = RetryPolicy().after_response(0, answer(status), repeatable)
    assert (delay is not None) == retried


def test_retry_after_is_honoured_up_to_its_cap_and_the_retries_end() -> None:
    policy = RetryPolicy(max_retries=2, max_retry_after=30)
    assert policy.after_response(0, answer(429, **{"Retry-After": "3"}), True) == 3.0
    assert policy.after_response(1, answer(503, **{"Retry-After": "30"}), True) == 30.0
    assert (
        policy.after_response(0, answer(429, **{"Retry-After": "31"}), True) is None
    )  # past the cap: raised
    assert policy.after_response(2, answer(429, **{"Retry-After": "1"}), True) is None  # retries used up
    assert RetryPolicy(max_retries=0).after_response(0, answer(503), True) is None
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    delay = policy.after_response(0, answer(503, **{"Retry-After": when}), True)
    assert delay is not None
    assert 15 <= delay <= 20


def test_no_answer_is_tried_again_when_the_request_cannot_have_arrived_or_is_repeatable() -> None:
    policy = RetryPolicy()
    assert policy.after_error(0, CONNECT, repeatable=False) is not None
    assert policy.after_error(0, httpx.ConnectTimeout("slow"), repeatable=False) is not None
    assert policy.after_error(0, READ, repeatable=False) is None  # it may have arrived
    assert policy.after_error(0, READ, repeatable=True) is not None
    assert policy.after_error(0, httpx.RemoteProtocolError("cut"), repeatable=True) is not None
    assert policy.after_error(2, CONNECT, repeatable=True) is None


def test_a_policy_that_makes_no_sense_is_refused() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="initial_delay"):
        RetryPolicy(initial_delay=10, max_delay=1)


def test_retry_after_values() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None
    assert parse_retry_after(format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)) == 0.0


# -- splitting ids --------------------------------------------------------------------------

PREFIX = "/partner-gateway/v1"


def test_ids_are_trimmed_deduplicated_and_kept_in_order() -> None:
    assert unique_ids([" b", "a", "", "b", "  ", "c "]) == ["b", "a", "c"]


@given(
    ids=st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-%é,", min_size=1, max_size=40), max_size=300
    ),
    max_url_length=st.integers(min_value=200, max_value=5_000),
)
def test_url_sized_gets_hold_every_id_once_within_the_bound(ids: list[str], max_url_length: int) -> None:
    wanted = unique_ids(ids)
    calls = status_calls(
        wanted, "SMS", prefix=PREFIX, method="get", max_url_length=max_url_length, chunk_size=1000
    )
    seen: list[str] = []
    for call in calls:
        target = PREFIX + call.path
        assert len(target.encode()) <= max_url_length
        path, _, query = target.partition("?")
        assert path == PREFIX + "/messages/status"
        channel, ids_part = query.split("&")
        assert channel == "channel=SMS"
        seen.extend(unquote(item) for item in ids_part.removeprefix("ids=").split(","))
    assert seen == wanted  # in order, each once (commas inside an id are percent-encoded)
    if len(calls) > 1:  # no request could have taken the next one's first id
        for call, following in itertools.pairwise(calls):
            first = following.path.split("ids=")[1].split(",")[0]
            assert len((PREFIX + call.path + "," + first).encode()) > max_url_length


def test_the_choice_of_get_or_post() -> None:
    ids = [f"msg_{index:026d}" for index in range(1_200)]
    one = status_calls(ids[:10], "RCS", prefix=PREFIX, method="auto", max_url_length=8_000, chunk_size=1000)
    assert [call.method for call in one] == ["GET"]
    posts = status_calls(ids, "RCS", prefix=PREFIX, method="auto", max_url_length=8_000, chunk_size=500)
    assert [len(call.json["ids"]) for call in posts] == [500, 500, 200]
    assert all(call.json["channel"] == "RCS" for call in posts)
    assert status_calls([], "SMS", prefix=PREFIX, method="auto", max_url_length=8_000, chunk_size=10) == []
    with pytest.raises(ValueError, match="chunk_size"):
        status_calls(ids, "SMS", prefix=PREFIX, method="post", max_url_length=8_000, chunk_size=10_001)
    with pytest.raises(ValueError, match="method"):
        status_calls(ids, "SMS", prefix=PREFIX, method="put", max_url_length=8_000, chunk_size=10)
    with pytest.raises(ValueError, match="does not fit"):
        status_calls(["x" * 300], "SMS", prefix=PREFIX, method="get", max_url_length=200, chunk_size=10)


def test_history_bounds() -> None:
    assert date_param(date(2026, 11, 27), "start_date") == "2026-11-27"
    assert date_param(datetime(2026, 11, 27, 11, 15, tzinfo=UTC), "x") == "2026-11-27T11:15:00.000Z"
    from zoneinfo import ZoneInfo

    berlin = datetime(2026, 11, 27, 12, 15, 30, 123456, tzinfo=ZoneInfo("Europe/Berlin"))
    assert date_param(berlin, "x") == "2026-11-27T11:15:30.123Z"
    assert date_param("2026-11-27T10:00:00+01:00", "x") == "2026-11-27T10:00:00+01:00"
    with pytest.raises(ValueError, match="timezone"):
        date_param(datetime(2026, 11, 27), "start_date")  # naive: refused, not guessed


# -- reading answers ------------------------------------------------------------------------


def test_a_problem_document_becomes_its_typed_error() -> None:
    response = httpx.Response(
        400,
        headers={"Content-Type": "application/problem+json", "X-Request-Id": "abc"},
        json={
            "type": "https://partner-gateway.dev/problems/invalid-request",
            "title": "Bad Request",
            "status": 400,
            "detail": "2 problems",
            "requestId": "req-1",
            "errors": [
                {"field": "to", "message": "must be E.164"},
                {"field": "text", "message": "is required"},
            ],
        },
    )
    error = error_from_response(response)
    assert isinstance(error, BadRequestError)
    assert (error.status, error.problem, error.detail, error.request_id) == (
        400,
        "invalid-request",
        "2 problems",
        "req-1",
    )
    assert [(item.field, item.message) for item in error.errors] == [
        ("to", "must be E.164"),
        ("text", "is required"),
    ]
    assert str(error) == "400 Bad Request: 2 problems (to: must be E.164; text: is required) [request req-1]"


def test_an_answer_that_is_not_a_problem_still_becomes_an_error_by_its_status() -> None:
    page = httpx.Response(
        502, headers={"Content-Type": "text/html", "X-Request-Id": "edge-9"}, text="<h1>Bad gateway</h1>"
    )
    error = error_from_response(page)
    assert isinstance(error, ServerError)
    assert (error.status, error.type, error.title, error.request_id) == (
        502,
        "about:blank",
        "Bad Gateway",
        "edge-9",
    )
    assert error.body == "<h1>Bad gateway</h1>"
    assert isinstance(error_from_response(httpx.Response(500, json={"title": "x"})), InternalServerError)


def test_a_success_answer_that_is_not_the_gateway_s_is_an_unexpected_response() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>captive portal</html>")

    with (
        Client(
            "pgw_key",
            base_url="http://gateway.test",
            http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        ) as client,
        pytest.raises(UnexpectedResponseError) as raised,
    ):
        client.status("msg_1", "SMS")
    assert raised.value.status == 200


def test_the_base_url_may_name_the_api_path_or_only_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"url": None, "secretSet": False})

    for base in (
        "http://gw.test",
        "http://gw.test/",
        "http://gw.test/partner-gateway/v1",
        "http://gw.test/partner-gateway/v1/",
    ):
        with Client(
            "pgw_key", base_url=base, http_client=httpx.Client(transport=httpx.MockTransport(handler))
        ) as client:
            client.get_callback_settings()
    assert set(seen) == {"http://gw.test/partner-gateway/v1/callbacks/settings"}
    with pytest.raises(ValueError, match="absolute"):
        Client("pgw_key", base_url="gw.test")
    monkeypatch.delenv("PARTNER_GATEWAY_API_KEY", raising=False)
    with pytest.raises(ValueError, match="API key"):
        Client()
    monkeypatch.setenv("PARTNER_GATEWAY_API_KEY", "pgw_from_env")
    monkeypatch.setenv("PARTNER_GATEWAY_BASE_URL", "http://env.test")
    with Client(http_client=httpx.Client(transport=httpx.MockTransport(handler))) as client:
        client.get_callback_settings()
    assert seen[-1] == "http://env.test/partner-gateway/v1/callbacks/settings"


def test_the_longest_gets_stay_within_httpx_s_own_url_limit() -> None:
    """A 65,535-byte request target is the gateway's bound; httpx refuses URLs over 65,536 bytes
    with the scheme and host counted, so the SDK's bound gives way to it."""
    targets: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        targets.append(len(str(request.url)))
        return httpx.Response(200, json=[])

    ids = [f"msg_{index:026d}" for index in range(10_000)]
    http = httpx.Client(transport=httpx.MockTransport(handler))
    base = "http://a-rather-long-gateway-host-name.partner.example:8080"
    with Client("pgw_key", base_url=base, max_url_length=65_535, http_client=http) as client:
        assert client.statuses(ids, "SMS", method="get") == []
    assert len(targets) == 5
    assert max(targets) <= 65_536
    with pytest.raises(ValueError, match="max_url_length"):
        Client("pgw_key", max_url_length=10)


def test_the_sdk_stands_alone() -> None:
    """It imports nothing of the gateway: installed alone, it needs httpx only."""
    import subprocess
    import sys

    code = (
        "import sys, partner_gateway_sdk; "
        "assert not [name for name in sys.modules if name.split('.')[0] == 'partner_gateway'], sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_max_retries_overrides_the_policy_s_count_only() -> None:
    policy = RetryPolicy(max_retries=5, initial_delay=0.1, max_delay=1)
    with Client("pgw_key", retry=policy, max_retries=0) as client:
        assert client.retry == RetryPolicy(max_retries=0, initial_delay=0.1, max_delay=1)
    with Client("pgw_key") as default:
        assert default.retry == RetryPolicy(
            max_retries=2, initial_delay=0.5, max_delay=8.0, max_retry_after=60.0
        )
    for wrong in (0, 10_001):
        with pytest.raises(ValueError, match="query_chunk_size"):
            Client("pgw_key", query_chunk_size=wrong)
    with pytest.raises(ValueError, match="max_concurrency"):
        Client("pgw_key", max_concurrency=0)
