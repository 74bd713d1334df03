"""eda_lab: the companion package of the event-driven architecture course.

Notebooks import what they need from here; each name below is explained in the notebook that
introduces it. Modules are layered: messages, trace, faults, clock -> broker, consumer, db ->
the patterns built from them.
"""

from .broker import (
    Broker,
    BrokerError,
    BrokerUnavailable,
    CommitFailed,
    Consumer,
    ConsumerGroup,
    Delivery,
    Topic,
    UnknownTopic,
)
from .clock import Clock
from .consumer import ConsumerWorker, dead_letter_topic
from .db import open_db, transaction
from .faults import Crash, FaultPlan, Outage, crash_point, fault_points
from .messages import Message, command, event, seed_ids
from .partitioning import partition_for
from .trace import Trace, TraceRecord

__all__ = [
    "Broker", "BrokerError", "BrokerUnavailable", "Clock", "CommitFailed", "Consumer",
    "ConsumerGroup", "ConsumerWorker", "Crash", "Delivery", "FaultPlan", "Message", "Outage",
    "Topic", "Trace", "TraceRecord", "UnknownTopic", "command", "crash_point",
    "dead_letter_topic", "event", "fault_points", "open_db", "partition_for", "seed_ids",
    "transaction",
]

# -- sagas (notebook 05): definitions, saga log, orchestrator, participants, runner --------------
from .saga import (  # noqa: E402
    OrchestratorDown,
    OrderLocked,
    SagaDefinition,
    SagaDefinitionError,
    SagaLog,
    SagaOrchestrator,
    SagaRunner,
    SagaStep,
    SagaStepperModel,
    create_order_saga,
    load_saga_definition,
    saga_problems,
    shop_participants,
    step_states,
)

__all__ += [
    "OrchestratorDown", "OrderLocked", "SagaDefinition", "SagaDefinitionError", "SagaLog",
    "SagaOrchestrator", "SagaRunner", "SagaStep", "SagaStepperModel", "create_order_saga",
    "load_saga_definition", "saga_problems", "shop_participants", "step_states",
]
