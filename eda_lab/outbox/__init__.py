"""Notebooks 03-04: the dual-write problem, and the transactional outbox that solves it.

Read in this order:

* :mod:`.dual_write`: the two naive orders of writes (database then broker, or the other way
  round), and what each loses;
* :mod:`.table`: the outbox table, and ``commit_with_outbox``: the change and its event in
  one local transaction (the whole pattern);
* :mod:`.order_service`: the order service, ``place_order`` written each of the three ways;
* :mod:`.relay`: the polling and the log-tailing relay (read, publish, mark);
* :mod:`.relay_instances`: two relays on one outbox: duplicates, reordering, a leader lease;
* :mod:`.order_consumer`: a downstream service applying events through an inbox;
* :mod:`.checks`: lost, phantom, duplicate and out-of-order events, counted;
* :mod:`.write_path`: all of it wired once, with the default timings;
* :mod:`.pipeline`: the experiments of notebooks 03-04 on the write path;
* :mod:`.polling_gap`: why a relay that reads by id can skip a row for good;
* :mod:`.charts`: the notebooks' charts.
"""

from .charts import lag_chart, loss_chart, skip_chart, variant_bars
from .checks import ConsistencyReport, check_consistency
from .dual_write import db_then_publish, publish_then_db
from .order_consumer import OrderConsumer
from .order_service import OrderService
from .pipeline import PIPELINES, OrderPipeline, lag_sweep, loss_sweep, try_every_crash_point
from .polling_gap import random_schedule, run_schedule, serialise, skip_rates
from .relay import LogTailingRelay, PollingRelay, make_relay
from .relay_instances import run_relay_instances
from .table import (
    commit_with_outbox,
    create_outbox,
    enable_change_log,
    outbox_rows,
    relay_query_plan,
    write_event,
)
from .write_path import SHOP_TIMINGS, TIMINGS, WritePath

__all__ = [
    "PIPELINES", "SHOP_TIMINGS", "TIMINGS", "ConsistencyReport", "LogTailingRelay",
    "OrderConsumer", "OrderPipeline", "OrderService", "PollingRelay", "WritePath",
    "check_consistency", "commit_with_outbox", "create_outbox", "db_then_publish",
    "enable_change_log", "lag_chart", "lag_sweep", "loss_chart", "loss_sweep", "make_relay",
    "outbox_rows", "publish_then_db", "random_schedule", "relay_query_plan",
    "run_relay_instances", "run_schedule",
    "serialise", "skip_chart", "skip_rates", "try_every_crash_point", "variant_bars",
    "write_event",
]
