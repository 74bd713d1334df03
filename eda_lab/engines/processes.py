"""Server processes started, watched and stopped by their own pid, never by name.

Every engine of notebook 08 (PostgreSQL, Tansu, Redis) is a child process of the kernel or
of pytest. :class:`ServerProcess` keeps the :class:`subprocess.Popen`, so the pid it stops is
the one it started: ``pkill postgres`` would also stop a learner's own database.

Stopping is polite first, then firm: the server's own shutdown signal, a bounded wait, then
SIGKILL. The polite signal differs per server, which is why it is a setting: PostgreSQL's
SIGTERM is a "smart" shutdown that waits for every client to disconnect (forever, if the
kernel still holds a connection); SIGINT is its "fast" shutdown. Tansu's SIGTERM also waits
for open connections (about 5 s); it stops at once on SIGINT. Redis saves nothing here and
stops at once on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import _validate as check
from .errors import EngineUnavailable, PortInUse

START_TIMEOUT_S = 20.0    # a cold start on a busy 2-core machine takes well under a second
STOP_TIMEOUT_S = 10.0     # the polite signal's grace period before SIGKILL
HOST = "127.0.0.1"        # every server binds loopback only


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def check_port(port: int | None, argument: str = "port") -> int:
    """``port`` if it is free on 127.0.0.1 (a new free one for None); a clear error if not."""
    if port is None:
        return free_port()
    check.count(argument, port, minimum=1024, maximum=65535)   # None picks a free one
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as the servers do: a port whose last connections linger in TIME_WAIT is free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
            sock.listen()
        except OSError:
            raise PortInUse(f"{argument}={port} is already in use on {HOST}; pass another "
                            f"{argument}, or {argument}=None to pick a free one") from None
    return port


def port_open(port: int, host: str = HOST) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        socket.create_connection((host, port), timeout=0.2).close()
    except OSError:
        return False
    return True


class ServerProcess:
    """One server started from ``argv`` and stopped by its pid.

    ``ready()`` is asked every few ms after the start; the server counts as started when it
    answers True. Its output goes to ``log_path``, whose tail is quoted when it fails.
    ``user`` runs it as that (unprivileged) user: the pid held is still the server's own.
    """

    def __init__(self, name: str, argv: Sequence[str], *, log_path: Path,
                 ready: Callable[[], bool], stop_signal: int = signal.SIGTERM,
                 user: str | None = None, cwd: Path | None = None,
                 env: dict[str, str] | None = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.ready = ready
        self.stop_signal = stop_signal
        self.user = user
        self.cwd = cwd
        self.env = env
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> ServerProcess:
        """Start the server and wait until ``ready()``; a clear error quoting its log if not."""
        if self.running:
            return self
        log = open(self.log_path, "ab")
        try:
            # A new session: a Ctrl-C in the terminal (or an interrupted kernel) does not reach
            # the server; it is stopped by stop(), on purpose.
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                user=self.user, cwd=self.cwd, env=self.env, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                tail = self.log_tail()
                self.process = None
                if "in use" in tail.lower():
                    raise PortInUse(f"{self.name} could not bind its port: {tail}")
                raise EngineUnavailable(f"{self.name} exited while starting; its log says:\n{tail}")
            if self.ready():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise EngineUnavailable(f"{self.name} did not become ready within {timeout_s:g} s; "
                                        f"its log says:\n{self.log_tail()}")
            time.sleep(0.005)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """Stop the server by its pid: the polite signal, a bounded wait, then SIGKILL.

        Returns its exit code (None if it was not running). Safe to call twice."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            try:
                process.send_signal(self.stop_signal)
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout_s)
        return process.returncode

    def kill(self) -> None:
        """SIGKILL by pid, as a crash would (no shutdown work at all)."""
        if self.running:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def log_tail(self, lines: int = 12) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.strip().splitlines()[-lines:]) or "(empty log)"

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"ServerProcess({self.name!r}, {state})"
