"""eda_lab: the companion package of the event-driven architecture course.

Notebooks import what they need from here; each name below is explained in the notebook that
introduces it. Modules are layered: messages, trace, faults, clock -> broker, consumer, db,
inbox -> the patterns built from them (sync chain, outbox, saga) -> the whole shop.
"""

# The foundation (notebook 02): messages, the clock, the trace, faults, the broker.
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

# isort: split
# Synchronous failure (notebook 01): the call chain and its event-driven twin.
from .event_twin import EventDrivenTwin, TwinRun
from .sync_chain import (
    ServiceProfile,
    SyncChain,
    SyncRun,
    chain_availability,
    chain_latency_ms,
    load_services,
)

# isort: split
# Dual write and the transactional outbox (notebooks 03, 04).
from .checks import ConsistencyReport, check_consistency
from .order_consumer import OrderConsumer
from .order_pipeline import PIPELINES, OrderPipeline, try_every_crash_point
from .order_service import OrderService
from .outbox import create_outbox, enable_change_log, write_event
from .polling_gap import random_schedule, run_schedule, serialise, skip_rates
from .relay import LogTailingRelay, PollingRelay, make_relay

# isort: split
# Sagas (notebook 05): definitions, the saga log, the orchestrator, participants, the runner.
from .saga import (
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

# isort: split
# Trade-offs (notebook 06): agreement lag measured, choreography vs orchestration.
from .choreography import (
    ChoreographyRunner,
    choreograph,
    orchestrator_knows,
    run_saga,
    who_knows_whom,
)
from .consistency_lag import (
    agreement_rows,
    agreement_sweep,
    applied_times,
    broken_promises,
    committed_times,
    measure_agreement,
)

# isort: split
# The whole shop and the chaos lab (notebook 07).
from .chaos import DEFAULT_RATES, FAMILIES, ChaosReport, chaos_plan, run_chaos
from .shop import Shop

__all__ = [
    # the foundation (02)
    "Broker", "BrokerError", "BrokerUnavailable", "Clock", "CommitFailed", "Consumer",
    "ConsumerGroup", "ConsumerWorker", "Crash", "Delivery", "FaultPlan", "Message", "Outage",
    "Topic", "Trace", "TraceRecord", "UnknownTopic", "command", "crash_point",
    "dead_letter_topic", "event", "fault_points", "open_db", "partition_for", "seed_ids",
    "transaction",
    # synchronous failure (01)
    "EventDrivenTwin", "ServiceProfile", "SyncChain", "SyncRun", "TwinRun",
    "chain_availability", "chain_latency_ms", "load_services",
    # dual write and the transactional outbox (03, 04)
    "ConsistencyReport", "LogTailingRelay", "OrderConsumer", "OrderPipeline", "OrderService",
    "PIPELINES", "PollingRelay", "check_consistency", "create_outbox", "enable_change_log",
    "make_relay", "random_schedule", "run_schedule", "serialise", "skip_rates",
    "try_every_crash_point", "write_event",
    # sagas (05)
    "OrchestratorDown", "OrderLocked", "SagaDefinition", "SagaDefinitionError", "SagaLog",
    "SagaOrchestrator", "SagaRunner", "SagaStep", "SagaStepperModel", "create_order_saga",
    "load_saga_definition", "saga_problems", "shop_participants", "step_states",
    # trade-offs (06)
    "ChoreographyRunner", "agreement_rows", "agreement_sweep", "applied_times", "broken_promises",
    "choreograph", "committed_times", "measure_agreement", "orchestrator_knows", "run_saga",
    "who_knows_whom",
    # the whole shop and the chaos lab (07)
    "ChaosReport", "DEFAULT_RATES", "FAMILIES", "Shop", "chaos_plan", "run_chaos",
]
