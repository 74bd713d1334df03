"""The CDC relay as an OS process of its own, so a test (or a notebook) can SIGKILL it.

``python -m eda_lab.engines.relay_process --dsn DSN --broker kafka --address HOST:PORT``
streams the outbox to the broker until SIGTERM (then it closes the replication connection and
exits) or SIGKILL (then it simply dies, and the slot keeps its last confirmed position).

:class:`RelayProcess` starts it, waits for its ``ready`` line, and stops or kills it by the
pid it started. A restarted relay waits a moment for the slot, which the server frees as soon
as it notices the dead connection.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading

from .. import _validate as check
from .errors import EngineUnavailable

KINDS = ("cdc", "polling")
READY = "ready"

# How the child starts: the relay needs a handful of eda_lab's modules (faults, messages,
# partitioning, engines), but ``import eda_lab`` runs the package's __init__, which loads the
# notebooks' whole toolkit (sqlite-utils, pandas: about a second). A relay restart is the
# very thing being measured, so the child registers the package without running its __init__
# and imports only what the relay uses.
# The engines import only the flat foundation modules they need (faults, messages,
# partitioning, _validate), never eda_lab.outbox (whose __init__ loads the notebooks' tools too);
# tests/test_engines_kills.py checks what the relay process loads.
REGISTER_PACKAGE = """\
import importlib.util, sys, types
spec = importlib.util.find_spec("eda_lab")
package = types.ModuleType("eda_lab")
package.__path__, package.__spec__ = list(spec.submodule_search_locations), spec
sys.modules["eda_lab"] = package
"""
_BOOTSTRAP = REGISTER_PACKAGE + """\
from eda_lab.engines.relay_process import main
sys.exit(main(sys.argv[1:]))
"""


def _broker(kind: str, address: str):
    if kind == "kafka":
        from .kafka import KafkaBroker

        return KafkaBroker(address)
    if kind == "redis":
        from .redis_streams import RedisStreamsBroker

        return RedisStreamsBroker(address)
    raise ValueError(f"broker must be 'kafka' or 'redis', got {kind!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--broker", required=True, choices=("kafka", "redis"))
    parser.add_argument("--address", required=True, help="Kafka bootstrap or Redis URL")
    parser.add_argument("--relay", default="cdc", choices=KINDS)
    parser.add_argument("--topic", default="orders")
    parser.add_argument("--slot", default="eda_lab_outbox")
    parser.add_argument("--batch-size", type=int, default=200)
    args = parser.parse_args(argv)

    broker = _broker(args.broker, args.address)
    if args.relay == "cdc":
        from .cdc_relay import CdcRelay

        relay = CdcRelay(args.dsn, broker, topic=args.topic, slot=args.slot,
                         batch_size=args.batch_size, slot_wait_s=10.0)
    else:
        from .polling_relay import PgPollingRelay

        relay = PgPollingRelay(args.dsn, broker, topic=args.topic, batch_size=args.batch_size)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(READY, flush=True)
    try:
        relay.run(stop)
    finally:
        relay.close()
    return 0


class RelayProcess:
    """One relay process, started and stopped (or killed) by its own pid."""

    def __init__(self, dsn: str, broker, *, relay: str = "cdc", topic: str = "orders",
                 slot: str = "eda_lab_outbox", batch_size: int = 200):
        check.one_of("relay", relay, KINDS)
        check.name("topic", topic)
        check.name("slot", slot)
        check.count("batch_size", batch_size)
        address = getattr(broker, "bootstrap", None) or getattr(broker, "url", None)
        if address is None:
            raise TypeError(f"broker must be a KafkaBroker or a RedisStreamsBroker, got {broker!r}")
        self.argv = [sys.executable, "-c", _BOOTSTRAP, "--dsn", dsn,
                     "--broker", broker.kind, "--address", address, "--relay", relay,
                     "--topic", topic, "--slot", slot, "--batch-size", str(batch_size)]
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.kills = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, timeout_s: float = 30.0) -> RelayProcess:
        """Start the relay and return once it streams (its ``ready`` line)."""
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        timer = threading.Timer(timeout_s, self.process.kill)
        timer.start()
        try:
            line = self.process.stdout.readline().strip()
        finally:
            timer.cancel()
        if line != READY:
            self.process.wait(timeout=10)
            error = self.process.stderr.read().strip().splitlines()
            raise EngineUnavailable("the relay process did not start: "
                                    + (error[-1] if error else f"exit code {self.process.returncode}"))
        self.starts += 1
        return self

    def kill(self) -> None:
        """SIGKILL, by pid: no shutdown code runs, as when the machine loses power."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.kills += 1

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (the relay closes its connection and exits), then SIGKILL if it hangs."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)

    def __repr__(self) -> str:
        return f"RelayProcess(pid={self.pid}, starts={self.starts}, kills={self.kills})"


if __name__ == "__main__":
    sys.exit(main())
