"""The relay as a real OS process, killed with SIGKILL at random moments while a writer keeps
inserting into the same SQLite file, and restarted: every committed event still arrives, in
order per aggregate (duplicates allowed: that is what the inbox is for)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from eda_lab.outbox import OrderService, check_consistency, create_outbox

# The relay process: publishes to a JSON-lines file (a broker both processes can see), one
# os.write per message. A SIGKILL can still cut that write short: Linux copies a write into the
# page cache page by page and stops between pages once a fatal signal is pending, so a line that
# crosses a page boundary can end half-written. A restarted relay first drops such a torn last
# line, as a log drops a torn record when it recovers (its row was never marked: it is
# published again).
RELAY_PROCESS = """
import os, sys, time
from eda_lab import open_db
from eda_lab.outbox import make_relay

TAIL = 1 << 20   # more than one message line

class FileLog:
    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(self.fd).st_size
        tail = os.pread(self.fd, min(size, TAIL), max(0, size - TAIL))
        if tail and not tail.endswith(b"\\n"):  # a torn record: the last write was cut short
            os.ftruncate(self.fd, size - len(tail) + tail.rfind(b"\\n") + 1)
    def publish(self, topic, message):
        os.write(self.fd, (message.to_json() + "\\n").encode())

db_path, log_path, kind = sys.argv[1:4]
relay = make_relay(kind, open_db(db_path), FileLog(log_path), batch_size=25)
print("ready", flush=True)
while True:
    if relay.poll_once() == 0:
        time.sleep(0.002)
"""

KILLS = 5   # the writer keeps inserting until the relay was killed this many times


def start_relay(db_path, log_path, kind) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", RELAY_PROCESS, str(db_path),
                                str(log_path), kind], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    return process


def kill(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def backlog(service: OrderService, kind: str) -> int:
    db = service.db
    if kind == "polling":
        return db.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()[0]
    offset = db.execute("SELECT coalesce(max(position), 0) FROM relay_offsets").fetchone()[0]
    return db.execute("SELECT count(*) FROM outbox_log WHERE lsn > ?", (offset,)).fetchone()[0]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["polling", "log-tailing"])
def test_relay_killed_with_sigkill_and_restarted_delivers_every_event_in_order(tmp_path, kind):
    db_path, log_path = tmp_path / "orders.db", tmp_path / "broker.jsonl"
    service = OrderService(db=db_path)
    create_outbox(service.db, change_log=kind == "log-tailing")
    rng = random.Random(4)
    relay = start_relay(db_path, log_path, kind)
    kills = 0
    next_kill = time.monotonic() + rng.uniform(0.1, 0.6)
    try:
        while kills < KILLS:
            order_id = service.place_order()
            if rng.random() < 0.5:  # a later event of a recent order: its order must hold
                target = f"order-{rng.randint(max(1, int(order_id[6:]) - 5), int(order_id[6:]))}"
                service.record_event(target, "OrderConfirmed")
            if time.monotonic() >= next_kill:
                kill(relay)
                kills += 1
                relay = start_relay(db_path, log_path, kind)
                next_kill = time.monotonic() + rng.uniform(0.1, 0.6)
        drain_by = time.monotonic() + 20
        while backlog(service, kind) and time.monotonic() < drain_by:
            time.sleep(0.05)
    finally:
        kill(relay)

    text = log_path.read_text()
    complete = text[:text.rfind("\n") + 1]  # a torn last line (the final kill) is no record
    received = [json.loads(line) for line in complete.splitlines()]
    events = [(m["id"], m["key"], int(m["headers"]["version"])) for m in received]
    first_seen, applied = set(), []
    for ref in events:  # what a consumer with an inbox would apply
        if ref[0] not in first_seen:
            first_seen.add(ref[0])
            applied.append(ref)
    report = check_consistency(service.truth(), events, applied)
    assert report.committed > 500
    assert report.lost == 0 and report.phantom == 0, report.lost_events[:5]
    assert report.order_violations == 0 and backlog(service, kind) == 0


@pytest.mark.parametrize("kind", ["polling", "log-tailing"])
def test_a_restarted_relay_drops_the_torn_line_its_killed_predecessor_left(tmp_path, kind):
    db_path, log_path = tmp_path / "orders.db", tmp_path / "broker.jsonl"
    service = OrderService(db=db_path)
    create_outbox(service.db, change_log=kind == "log-tailing")
    order_id = service.place_order()
    log_path.write_text('{"id": "earlier", "key": "order-0"}\n{"headers": {"aggre')
    relay = start_relay(db_path, log_path, kind)
    try:
        deadline = time.monotonic() + 10
        while backlog(service, kind) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        kill(relay)
    lines = log_path.read_text().splitlines()
    assert json.loads(lines[0])["id"] == "earlier"
    assert [json.loads(line)["key"] for line in lines[1:]] == [order_id]
