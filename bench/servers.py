"""The processes under load: the gateway (any role) and the raw ASGI ceiling, each pinned to a CPU.

Each is a child process of this script in its own session, its output in a log file in the run's
temp folder; it is stopped by its own pid (SIGINT, then SIGKILL), never by name.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from common import BenchError, gateway_executable, http_get

READY_TIMEOUT_SECONDS = 60.0
IDLE_TIMEOUT_SECONDS = 120.0
IDLE_ANSWER_SECONDS = 0.02  # /health this fast, twice in a row: nothing queued ahead of it
STOP_TIMEOUT_SECONDS = 15.0
RAW_ASGI = Path(__file__).resolve().parent / "raw_asgi.py"


class ServerProcess:
    """One pinned child process with a log file."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], cwd: Path, cpu: int | None
    ) -> None:
        self.name = name
        self.log_path = cwd / f"{name}.log"
        if cpu is not None:
            command = ["taskset", "-c", str(cpu), *command]
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_http_ready(self, port: int, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Return once GET /health on `port` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                status, _ = http_get(port, "/health", None, timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise BenchError(f"{self.name} did not answer /health within {timeout:.0f} s:\n{self.tail()}")

    def wait_idle(self, port: int, timeout: float = IDLE_TIMEOUT_SECONDS) -> float:
        """Wait until the server has worked off what the last load left queued; the seconds waited.

        wrk stops sending at the end of a run, but requests already read keep the server busy (64
        queries of 5,000 ids are seconds of work), and the next figure must not pay for them.
        """
        began = time.monotonic()
        fast = 0
        while fast < 2:
            if time.monotonic() - began > timeout:
                raise BenchError(f"{self.name} still busy {timeout:.0f} s after the load stopped")
            self.check_alive()
            start = time.monotonic()
            http_get(port, "/health", None, timeout=timeout)
            fast = fast + 1 if time.monotonic() - start < IDLE_ANSWER_SECONDS else 0
            time.sleep(0.01)
        return time.monotonic() - began

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")

    def tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # only our own child, by its pid
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()


class GatewayServer(ServerProcess):
    """`partner-gateway serve --role ROLE`; positional arguments as lookups.py's old `Server`."""

    def __init__(
        self,
        env: dict[str, str],
        cwd: Path,
        port: int,
        cpu: int | None,
        role: str = "all",
        name: str | None = None,
    ) -> None:
        self.port = port
        super().__init__(
            name or f"gateway-{role}", [gateway_executable(), "serve", "--role", role], env, cwd, cpu
        )

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        self.wait_http_ready(self.port, timeout)


Server = GatewayServer  # lookups.py's name, kept for scripts that import it


def raw_asgi_server(
    cwd: Path, port: int, cpu: int | None, env: dict[str, str], server: str = "uvicorn"
) -> ServerProcess:
    """bench/raw_asgi.py: a static JSON on the gateway's own settings of `server` (uvicorn or
    granian): the HTTP ceiling of a figure served by it."""
    command = [sys.executable, str(RAW_ASGI), "--port", str(port), "--server", server]
    return ServerProcess(f"raw-asgi-{server}", command, env, cwd, cpu)
