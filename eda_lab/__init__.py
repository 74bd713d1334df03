"""eda_lab: the companion package of the event-driven architecture course.

The foundation sits here, flat, one concept per module (notebook 02 teaches most of it):
``messages``, ``clock``, ``trace``, ``faults``, ``partitioning``, ``broker``, ``consumer``,
``db``, ``inbox``, ``orders``, ``stats``, ``charts``. Each course idea is a package built on
it, whose ``__init__`` gives its reading order:

* :mod:`eda_lab.sync` (notebook 01): the synchronous call chain and its event-driven twin;
* :mod:`eda_lab.outbox` (03-04): the dual write, the transactional outbox, relays, inboxes;
* :mod:`eda_lab.saga` (05-06): sagas, orchestrated and choreographed;
* :mod:`eda_lab.shop` (06-07): the whole shop, its agreement lag and the chaos lab;
* :mod:`eda_lab.engines` (08): the same outbox, relays and inbox on PostgreSQL, a
  Kafka-protocol broker and Redis Streams (the ``engines`` extra);
* :mod:`eda_lab.widgets`: the interactive pieces, one module each.

``sync`` and ``outbox`` do not import each other; ``saga`` builds on ``outbox`` (the
orchestrator and the participants speak through their own outboxes); ``shop`` composes them;
``engines`` builds on ``outbox``; the widgets sit on top. Here: the foundation's names, and one
entry point per simulated package. ``engines`` has none here: it needs the drivers of its
extra, and ``import eda_lab`` imports none of them (notebook 08 imports from
``eda_lab.engines``).
"""

from .broker import Broker, BrokerError, BrokerUnavailable, Delivery
from .clock import Clock
from .consumer import ConsumerWorker
from .db import open_db, transaction
from .faults import Crash, FaultPlan, Outage, crash_point, fault_points
from .inbox import Inbox
from .messages import Message, command, event, seed_ids
from .partitioning import partition_for
from .trace import Trace

# isort: split
# One entry point per package: notebooks import the rest from the package itself.
from .outbox import OrderPipeline
from .saga import SagaRunner
from .shop import Shop
from .sync import SyncChain

__all__ = [
    # the foundation
    "Broker", "BrokerError", "BrokerUnavailable", "Clock", "ConsumerWorker", "Crash",
    "Delivery", "FaultPlan", "Inbox", "Message", "Outage", "Trace", "command", "crash_point",
    "event", "fault_points", "open_db", "partition_for", "seed_ids", "transaction",
    # one entry point per package
    "OrderPipeline", "SagaRunner", "Shop", "SyncChain",
]
