"""What the orchestrated and the choreographed saga say to the services, the same way.

Both styles send the participants the same commands: a command's id, the topics a service
reads and answers on, how often a refused step is tried, and the check that an order can
start a saga at all. They live here, so neither style depends on the other's module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _validate as check
from ..messages import freeze_json
from .log import FORWARD

MAX_ATTEMPTS = 3   # attempts of a refused retriable step or compensation, by default


def command_id(saga_id: str, step_name: str, direction: str, attempt: int) -> str:
    """The id of a saga command: the same on every resend, new for each refused attempt.

    Deterministic, so a participant recognises a command sent again after a timeout or a
    restart as the same command.
    """
    return f"{saga_id}:{step_name}:{'do' if direction == FORWARD else 'undo'}:{attempt}"


def commands_topic(participant: str) -> str:
    """The topic a participant reads its commands from."""
    return f"{participant}.commands"


def replies_topic(participant: str) -> str:
    """The topic a participant sends its replies to (the orchestrator reads it)."""
    return f"{participant}.replies"


def check_order(order: Mapping[str, Any], saga_id: str | None) -> str:
    """Refuse a saga request that cannot start, before anything is written; returns the order id.

    ``order`` is a JSON-ready dict with a non-empty ``order_id``; ``saga_id`` is a non-empty
    string, or None to let the runner number the saga. Orchestrated and choreographed sagas
    share this check.
    """
    if not isinstance(order, Mapping):
        raise TypeError(f"order must be a dict such as {{'order_id': 'order-1', ...}}, "
                        f"got {type(order).__name__}")
    order_id = order.get("order_id")
    if not isinstance(order_id, str) or not order_id:
        raise ValueError(f"order['order_id'] must be a non-empty string, got {order_id!r}")
    freeze_json(order, "order")  # refuse what cannot travel in a message
    # What the services read must have the right type: an amount "30" (text) would pass a
    # credit check that compares text with numbers. Values are the services' business: a
    # quantity of 0 is theirs to refuse, with a reason, in the saga.
    for field in ("customer", "sku"):
        if field in order and not isinstance(order[field], str):
            raise ValueError(f"order[{field!r}] must be a string, got {order[field]!r}")
    if "quantity" in order and (isinstance(order["quantity"], bool)
                                or not isinstance(order["quantity"], int)):
        raise ValueError(f"order['quantity'] must be a whole number, got {order['quantity']!r}")
    if "amount" in order:
        check.number("order['amount']", order["amount"])
    if saga_id is not None and (not isinstance(saga_id, str) or not saga_id):
        raise ValueError(f"saga_id must be a non-empty string or None, got {saga_id!r}")
    return order_id
