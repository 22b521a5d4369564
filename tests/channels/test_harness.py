"""The provider harness itself: its no-secret check sees every record of a test, whatever its phase."""

from __future__ import annotations

import logging

import httpx
import pytest

from channels.harness import RecordingSink, ScriptedPeer, assert_no_secret_logged, logged_lines

pytest_plugins = ("pytester",)
SECRET = "s3cret-Token-8841"


def test_a_secret_in_a_message_an_argument_or_a_traceback_is_caught(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("partner_gateway.test")
    log.info("token %s", SECRET)
    log.debug("%(count)d items", {"count": 3, "token": SECRET})  # an argument the message leaves out
    try:
        raise ValueError(SECRET)
    except ValueError:
        log.exception("failed")
    lines = logged_lines(caplog)
    assert len(lines) == 3
    assert all(SECRET in line for line in lines)
    with pytest.raises(AssertionError, match="a secret reached the log"):
        assert_no_secret_logged(caplog, [SECRET])
    assert_no_secret_logged(caplog, ["not logged", ""])  # an empty string is no secret


def test_the_module_fixture_fails_a_test_that_logged_a_secret(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        import logging
        import pytest
        from channels.harness import secrets_kept_out_of_logs

        @pytest.fixture(autouse=True)
        def no_secret_logged(caplog):
            yield from secrets_kept_out_of_logs(caplog, ["{SECRET}"])

        def test_leaks():
            logging.getLogger("x").debug("the token is {SECRET}")

        def test_keeps_quiet():
            logging.getLogger("x").debug("nothing to see")
        """
    )
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaks*", "*a secret reached the log*"])


async def test_the_sink_fails_while_told_to_then_records() -> None:
    sink = RecordingSink(failures=1)
    with pytest.raises(RuntimeError):
        await sink.record([])
    await sink.record([])
    sink.failing = True
    with pytest.raises(RuntimeError):
        await sink.record([])
    assert sink.reports == []


def test_a_scripted_peer_answers_in_turn_and_repeats_the_last() -> None:
    peer = ScriptedPeer([httpx.Response(500), httpx.Response(200)])
    request = httpx.Request("GET", "https://peer.test/")
    assert [peer(request).status_code for _ in range(3)] == [500, 200, 200]
    assert len(peer.requests) == 3
