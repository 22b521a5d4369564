"""Jasmin 0.11.1 for the side-by-side benchmark: its own virtualenv, RabbitMQ vhost, Redis db, config dir.

- :func:`ensure_venv` installs ``jasmin==0.11.1`` into ``bench/.jasmin-venv`` once (git-ignored).
- :class:`Jasmin` owns one ``jasmind.py`` process: a vhost made with ``rabbitmqctl`` (deleted again),
  the first empty Redis db from 15 down (flushed again), a ``jasmin.cfg`` with free ports and every
  log, store and pid file in a temp folder, the process pinned with ``taskset``.
- :class:`JCli` drives the jCli telnet console (plain socket, waits for each prompt) to add the SMPP
  client connector, a group, a user and a default MT route, and start the connector.

Everything is bounded in time; a failure raises :class:`JasminError` with the tail of the logs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

JASMIN_VERSION = "0.11.1"
BENCH = Path(__file__).resolve().parent
VENV = BENCH / ".jasmin-venv"
INSTALL_TIMEOUT_SECONDS = 600
START_TIMEOUT_SECONDS = 60
JCLI_TIMEOUT_SECONDS = 20
RABBITMQCTL_TIMEOUT_SECONDS = 60
VHOST_PREFIX = "pgw-bench-jasmin-"


class JasminError(RuntimeError):
    pass


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- the virtualenv -------------------------------------------------------------------------------


def _venv_python() -> Path:
    return VENV / "bin" / "python"


def installed_version() -> str | None:
    """Jasmin's version in bench/.jasmin-venv, or None when it is not (fully) installed there."""
    if not (_venv_python().exists() and (VENV / "bin" / "jasmind.py").exists()):
        return None
    done = subprocess.run(
        [str(_venv_python()), "-c", "import importlib.metadata as m; print(m.version('jasmin'))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_venv() -> tuple[str, float]:
    """Install Jasmin into bench/.jasmin-venv unless it is there; returns (version, seconds spent)."""
    began = time.monotonic()
    version = installed_version()
    if version == JASMIN_VERSION:
        return version, time.monotonic() - began
    _log(f"installing jasmin=={JASMIN_VERSION} into {VENV} (once; about 20 s with a warm pip cache)")
    if VENV.exists():
        shutil.rmtree(VENV)
    # The base interpreter of the running venv: Jasmin must not share the gateway's packages.
    base = Path(getattr(sys, "_base_executable", sys.executable))
    steps = [
        [str(base), "-m", "venv", str(VENV)],
        [str(_venv_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         f"jasmin=={JASMIN_VERSION}"],
    ]  # fmt: skip
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired as error:
            raise JasminError(f"{' '.join(step)} took over {INSTALL_TIMEOUT_SECONDS} s") from error
        if done.returncode != 0:
            raise JasminError(f"{' '.join(step)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    version = installed_version()
    if version != JASMIN_VERSION:
        raise JasminError(f"jasmin {JASMIN_VERSION} is not importable in {VENV} after installing it")
    return version, time.monotonic() - began


def venv_versions() -> dict[str, str | None]:
    """Versions of the packages that make Jasmin's speed, from its venv."""
    code = (
        "import importlib.metadata as m, json, platform\n"
        "out = {'python': platform.python_version()}\n"
        "for p in ('jasmin', 'twisted', 'txamqp3', 'txredisapi', 'smpp.twisted3', 'smpp.pdu3'):\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: out[p] = None\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([str(_venv_python()), "-c", code], capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout) if done.returncode == 0 else {"jasmin": None}


# -- RabbitMQ and Redis ----------------------------------------------------------------------------


def rabbitmqctl(*args: str) -> str:
    exe = shutil.which("rabbitmqctl")
    if exe is None:
        raise JasminError("rabbitmqctl is not on PATH: Jasmin needs RabbitMQ on 127.0.0.1:5672")
    try:
        done = subprocess.run(
            [exe, *args], capture_output=True, text=True, timeout=RABBITMQCTL_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired as error:
        raise JasminError(
            f"rabbitmqctl {' '.join(args)} took over {RABBITMQCTL_TIMEOUT_SECONDS} s"
        ) from error
    if done.returncode != 0:
        raise JasminError(f"rabbitmqctl {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-1500:]}")
    return done.stdout


def redis_command(*args: str, db: int = 0, port: int = 6379, timeout: float = 5.0) -> object:
    """One command on a fresh connection (RESP by hand: no client library needed)."""

    def encode(parts: tuple[str, ...]) -> bytes:
        out = f"*{len(parts)}\r\n".encode()
        for part in parts:
            raw = part.encode()
            out += b"$%d\r\n%s\r\n" % (len(raw), raw)
        return out

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(encode(("SELECT", str(db))) + encode(args))
        data = b""
        while True:
            lines = data.split(b"\r\n", 2)
            if len(lines) == 3:
                if not lines[1].startswith(b"$") or lines[1] == b"$-1":
                    break
                if len(lines[2]) >= int(lines[1][1:]):  # a bulk string: wait for all of it
                    break
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    lines = data.split(b"\r\n", 2)
    if lines[0] != b"+OK" or len(lines) < 2:
        raise JasminError(f"redis SELECT {db} answered {data[:200]!r}")
    answer = lines[1]
    if answer.startswith(b"-"):
        raise JasminError(f"redis {' '.join(args)} answered {answer.decode(errors='replace')}")
    if answer.startswith(b":"):
        return int(answer[1:])
    if answer.startswith(b"$"):
        return lines[2][: int(answer[1:])].decode(errors="replace") if answer != b"$-1" else None
    return answer[1:].decode(errors="replace")


def service_versions() -> dict[str, str | None]:
    """RabbitMQ's and Redis's versions, for the report (None when they cannot be asked)."""
    out: dict[str, str | None] = {"rabbitmq": None, "redis": None}
    with contextlib.suppress(JasminError):
        out["rabbitmq"] = rabbitmqctl("version").strip() or None
    try:
        info = str(redis_command("INFO", "server"))
        out["redis"] = next(
            (ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("redis_version:")), None
        )
    except (OSError, JasminError):
        pass
    return out


def pick_redis_db() -> int:
    """The highest-numbered empty db (15 down to 1), so Jasmin's keys sit apart from anyone's."""
    try:
        for db in range(15, 0, -1):
            if redis_command("DBSIZE", db=db) == 0:
                return db
    except OSError as error:
        raise JasminError(f"Redis on 127.0.0.1:6379 is not reachable: {error}") from error
    raise JasminError("no empty Redis db among 1-15 for Jasmin")


# -- jCli ---------------------------------------------------------------------------------------------


class JCli:
    """A jCli telnet session: log in, send a line, wait for the prompt, return what came before it."""

    PROMPT = re.compile(rb"(jcli : |> )$")
    IAC = re.compile(rb"\xff[\xfb-\xfe].|\xff[\xf0-\xfa]")  # telnet negotiation, dropped

    def __init__(
        self, port: int, username: str, password: str, timeout: float = JCLI_TIMEOUT_SECONDS
    ) -> None:
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.transcript: list[str] = []
        # jCli draws its prompt once it knows the terminal size: offer NAWS and send 80x24 at once.
        self.sock.sendall(b"\xff\xfb\x1f\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0")
        self._expect(re.compile(rb"Username: $"))
        self._send(username)
        self._expect(re.compile(rb"Password: $"))
        self._send(password)
        self._expect(self.PROMPT)

    def _send(self, line: str) -> None:
        self.transcript.append(f">>> {line}")
        self.sock.sendall(line.encode() + b"\r\n")

    def _expect(self, pattern: re.Pattern[bytes]) -> str:
        deadline = time.monotonic() + self.timeout
        buffer = b""
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                raise JasminError(f"jCli closed the session; transcript:\n{self.text()}")
            buffer = self.IAC.sub(b"", buffer + chunk)
            if pattern.search(buffer):
                text = buffer.decode(errors="replace")
                self.transcript.append(text)
                return text
        self.transcript.append(buffer.decode(errors="replace"))
        raise JasminError(f"jCli gave no prompt within {self.timeout:.0f} s; transcript:\n{self.text()}")

    def command(self, line: str, *, must: str | None = None) -> str:
        self._send(line)
        out = self._expect(self.PROMPT)
        if must is not None and must not in out:
            raise JasminError(f"jCli {line!r}: expected {must!r}; transcript:\n{self.text()}")
        return out

    def add(self, command: str, settings: dict[str, str], must: str) -> None:
        """``smppccm -a`` and friends: one ``key value`` line each, then ``ok``."""
        self.command(command)
        for key, value in settings.items():
            out = self.command(f"{key} {value}")
            if "Unknown" in out or "Error" in out or "error" in out:
                raise JasminError(f"jCli {command} {key} {value}: {out.strip()}\n{self.text()}")
        self.command("ok", must=must)

    def text(self) -> str:
        return "\n".join(self.transcript)[-4000:]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send("quit")
        self.sock.close()


# -- the daemon ----------------------------------------------------------------------------------


@dataclass
class JasminPorts:
    http: int
    jcli: int
    router_pb: int
    cm_pb: int
    smpps: int
    smpps_pb: int
    interceptor: int


CONFIG = """\
# Written by bench/_jasmin.py for one benchmark run; every path is in a temp folder.
[smpp-server]
id = smpps_bench
bind = 127.0.0.1
port = {p.smpps}
billing_feature = False
log_file = {log}/default-smpps_bench.log
log_level = WARNING

[smpp-server-pb]
bind = 127.0.0.1
port = {p.smpps_pb}
log_file = {log}/smpp-server-pb.log
log_level = WARNING

[smpp-server-pb-client]
port = {p.smpps_pb}

[service-smppclient]
log_file = {log}/service-smppclient.log
log_level = WARNING

[client-management]
store_path = {store}
bind = 127.0.0.1
port = {p.cm_pb}
log_file = {log}/smppclient-manager.log
log_level = WARNING

[sm-listener]
log_file = {log}/messages.log
log_level = WARNING

[dlr]
# 0.11.1 never finds the map of a single-part message (jookies/jasmin#1236): no retries that would
# requeue the failed look-ups into the measured run 10 s later.
dlr_lookup_max_retries = 0
log_file = {log}/dlr.log
log_level = WARNING

[dlr-thrower]
http_timeout = 10
retry_delay = 5
max_retries = 1
log_file = {log}/dlr-thrower.log
log_level = WARNING

[deliversm-thrower]
log_file = {log}/deliversm-thrower.log
log_level = WARNING

[router]
store_path = {store}
bind = 127.0.0.1
port = {p.router_pb}
persistence_timer_secs = 3600
log_file = {log}/router.log
log_level = WARNING

[http-api]
bind = 127.0.0.1
port = {p.http}
billing_feature = False
access_log = None
log_file = {log}/http-api.log
log_level = WARNING

[jcli]
bind = 127.0.0.1
port = {p.jcli}
log_file = {log}/jcli.log
log_level = INFO

[interceptor-client]
port = {p.interceptor}

[amqp-broker]
host = 127.0.0.1
port = 5672
username = guest
password = guest
vhost = {vhost}
spec = {spec}
heartbeat = 0
connection_loss_retry = True
connection_failure_retry = True
connection_loss_retry_delay = 2
connection_failure_retry_delay = 2
log_file = {log}/amqp-client.log
log_level = WARNING

[redis-client]
host = 127.0.0.1
port = 6379
dbid = {redis_db}
poolsize = 10
log_file = {log}/redis-client.log
log_level = WARNING
"""


def remove_stale_vhosts() -> None:
    """Vhosts of earlier runs killed before they could clean up (their process is gone)."""
    for line in rabbitmqctl("list_vhosts", "--quiet").splitlines():
        name = line.strip()
        pid = name.removeprefix(VHOST_PREFIX)
        if name.startswith(VHOST_PREFIX) and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _log(f"deleting the stale RabbitMQ vhost {name}")
            rabbitmqctl("delete_vhost", name)


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.bind(("127.0.0.1", 0))
            sockets.append(probe)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _amqp_spec() -> Path:
    found = sorted(VENV.glob("lib/python*/site-packages/txamqp/specs/standard/amqp0-9-1.stripped.xml"))
    if not found:
        raise JasminError(f"txamqp's AMQP 0-9-1 spec is missing from {VENV}")
    return found[0]


class Jasmin:
    """One jasmind.py with DLR lookup and DLR thrower in-process (the gateway's `serve` is one process
    too). Use :meth:`start`, :meth:`configure`, then :meth:`stop` (always, from a ``finally``)."""

    JCLI_USER = "jcliadmin"
    JCLI_PASSWORD = "jclipwd"  # Jasmin's documented default jCli login, on loopback only

    def __init__(self, workdir: Path, cpu: int | None) -> None:
        self.workdir = workdir
        self.cpu = cpu
        self.vhost = f"{VHOST_PREFIX}{os.getpid()}"
        self.redis_db: int | None = None
        self.ports = JasminPorts(*_free_ports(7))
        self.log_dir = workdir / "log"
        self.process: subprocess.Popen[bytes] | None = None
        self._stdout_path = workdir / "jasmind.out"
        self._vhost_made = False

    # -- lifecycle --

    def start(self) -> None:
        for sub in ("log", "store", "etc"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        remove_stale_vhosts()
        rabbitmqctl("add_vhost", self.vhost)
        self._vhost_made = True
        rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        self.redis_db = pick_redis_db()
        config = self.workdir / "etc" / "jasmin.cfg"
        config.write_text(
            CONFIG.format(
                p=self.ports,
                log=self.log_dir,
                store=self.workdir / "store",
                vhost=self.vhost,
                spec=_amqp_spec(),
                redis_db=self.redis_db,
            )
        )
        # A clean environment: Jasmin reads SECTION_OPTION variables as overrides of its config.
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ") if k in os.environ}
        env |= {
            "ROOT_PATH": str(self.workdir),
            "CONFIG_PATH": str(self.workdir / "etc"),
            "LOG_PATH": str(self.log_dir),
            "STORE_PATH": str(self.workdir / "store"),
            "RESOURCE_PATH": str(_amqp_spec().parent),
            "PYTHONUNBUFFERED": "1",
        }
        command = [
            str(_venv_python()),
            str(VENV / "bin" / "jasmind.py"),
            "--config",
            str(config),
            "--enable-dlr-lookup",
            "--enable-dlr-thrower",
        ]
        if self.cpu is not None:
            command = ["taskset", "-c", str(self.cpu), *command]
        with self._stdout_path.open("wb") as out:
            self.process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Until the jCli and HTTP ports listen and the daemon logged its last service as started."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise JasminError(f"jasmind.py exited with {self.process.returncode}:\n{self.tail()}")
            out = self._stdout_path.read_text(errors="replace")
            if "Cannot" in out:
                raise JasminError(f"jasmind.py could not start a service:\n{self.tail()}")
            if "jCli Started." in out and all(_listening(p) for p in (self.ports.jcli, self.ports.http)):
                return
            time.sleep(0.2)
        raise JasminError(
            f"jasmind.py did not open jCli ({self.ports.jcli}) and HTTP ({self.ports.http}) "
            f"within {START_TIMEOUT_SECONDS} s:\n{self.tail()}"
        )

    def configure(
        self, *, smsc_port: int, system_id: str, password: str, user: str, user_password: str
    ) -> None:
        """The SMPP client connector `smsc` to the simulator, group and user `bench`, DefaultRoute, start."""
        jcli = JCli(self.ports.jcli, self.JCLI_USER, self.JCLI_PASSWORD)
        try:
            connector = {
                "cid": "smsc",
                "host": "127.0.0.1",
                "port": str(smsc_port),
                "username": system_id,
                "password": password,
                "bind": "transceiver",
                "submit_throughput": "0",  # 0 = no throttle (the default is 1 message/s)
                "con_fail_delay": "2",
                "con_loss_delay": "2",
                "requeue_delay": "5",
            }
            for attempt in range(3):  # seen once: "Failed adding connector" right after start-up
                try:
                    jcli.add("smppccm -a", connector, must="Successfully added")
                    break
                except JasminError:
                    if attempt == 2:
                        raise
                    _log("jCli: adding the connector failed, trying again in 1 s")
                    jcli.command("ko")
                    time.sleep(1)
            jcli.add("group -a", {"gid": "bench"}, must="Successfully added")
            jcli.add(
                "user -a",
                {"username": user, "password": user_password, "gid": "bench", "uid": user},
                must="Successfully added",
            )
            jcli.add(
                "mtrouter -a",
                {"type": "DefaultRoute", "connector": "smppc(smsc)", "rate": "0.00"},
                must="Successfully added",
            )
            jcli.command("smppccm -1 smsc", must="Successfully started")
            self.jcli_transcript = jcli.text()
        finally:
            jcli.close()

    def tail(self, chars: int = 3000) -> str:
        parts = []
        for path in [self._stdout_path, *sorted(self.log_dir.glob("*.log"))]:
            try:
                text = path.read_text(errors="replace").strip()
            except OSError:
                continue
            if text:
                parts.append(f"--- {path.name}\n{text[-chars:]}")
        return "\n".join(parts)[-3 * chars :] or "(no output)"

    def stop(self) -> None:
        """Stop the daemon (SIGTERM, then SIGKILL), delete the vhost, flush the Redis db. Never raises."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # only our own child, by its pid
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._vhost_made:
            try:
                rabbitmqctl("delete_vhost", self.vhost)
                self._vhost_made = False
            except JasminError as error:
                _log(f"could not delete the RabbitMQ vhost {self.vhost}: {error}")
        if self.redis_db is not None:
            try:
                redis_command("FLUSHDB", db=self.redis_db)
            except (OSError, JasminError) as error:
                _log(f"could not flush Redis db {self.redis_db}: {error}")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
