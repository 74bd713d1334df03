"""Notebooks 05-06: a business transaction across services as a sequence of local transactions.

Read in this order:

* :mod:`.definition`: the steps as data (compensatable, pivot, retriable) and their checks;
* :mod:`.log`: the saga log, written before every action;
* :mod:`.commands`: what both styles send the services (command ids, topics, the order check);
* :mod:`.participants`: the shop's services, idempotent, one local transaction per command;
* :mod:`.orchestrator`: the plain logic (start, on_reply, on_deadline, recover);
* :mod:`.runner`: the same logic scheduled on the clock, step by step or to completion;
* :mod:`.choreography`: the same saga with no orchestrator (notebook 06);
* :mod:`.checks`: completed or compensated, in reverse order, and the data agrees;
* :mod:`.stepper`: the model behind the Saga Orchestrator Stepper;
* :mod:`.charts`: the notebooks' charts.

Besides the broker's records, a saga run writes these trace kinds: ``saga`` (a transition
written to the saga log), ``handle`` (a participant ran a command as a local transaction),
``ignore`` (a duplicate or late message had no effect), ``lost`` (a reply that never
arrives), ``restart`` (a crashed service came back).
"""

from .charts import saga_boxes, saga_timeline
from .checks import saga_problems, shop_problems
from .choreography import (
    ChoreographyRunner,
    choreograph,
    orchestrator_knows,
    reply_types,
    run_saga,
    story,
    traffic,
    who_knows_whom,
)
from .definition import (
    COMPENSATABLE,
    PIVOT,
    RETRIABLE,
    SagaDefinition,
    SagaDefinitionError,
    SagaStep,
    create_order_saga,
    load_saga_definition,
)
from .log import SagaLog, SagaState, Transition, step_states
from .orchestrator import SagaOrchestrator
from .participants import (
    InventoryParticipant,
    OrderLocked,
    OrderParticipant,
    Participant,
    PaymentParticipant,
    Refused,
    ShippingParticipant,
    shop_participants,
)
from .runner import OrchestratorDown, SagaRunner
from .stepper import SagaStepperModel

__all__ = [
    "COMPENSATABLE", "PIVOT", "RETRIABLE", "ChoreographyRunner", "InventoryParticipant",
    "OrchestratorDown", "OrderLocked", "OrderParticipant", "Participant", "PaymentParticipant",
    "Refused", "SagaDefinition", "SagaDefinitionError", "SagaLog", "SagaOrchestrator",
    "SagaRunner", "SagaState", "SagaStep", "SagaStepperModel", "ShippingParticipant",
    "Transition", "choreograph", "create_order_saga", "load_saga_definition",
    "orchestrator_knows", "reply_types", "run_saga", "saga_boxes", "saga_problems",
    "saga_timeline", "shop_participants", "shop_problems", "step_states", "story", "traffic",
    "who_knows_whom",
]
