"""Self-checks of notebook 00's exercises."""

from __future__ import annotations

from ..messages import event, is_past_tense
from ._common import not_a_message, payload_problem, verdict

ORDER, AMOUNT = "order-1", 24.0


def check_exercise_1(answer) -> None:
    """The event that says the payment for order-1 was authorized, for 24.0."""
    problem = not_a_message(answer, "event(type, key, payload)")
    if problem:
        return verdict(False, problem)
    if answer.kind != "event":
        return verdict(False, f"it is a {answer.kind}; a fact is made with event(...)")
    if answer.type != "PaymentAuthorized":
        return verdict(False, f"type is {answer.type!r}: name the fact that the payment was "
                              "authorized, in the past tense")
    if answer.key != ORDER:
        return verdict(False, f"key is {answer.key!r}: the event is about the order {ORDER!r}")
    problem = payload_problem(answer, "amount", AMOUNT)
    if problem:
        return verdict(False, problem)
    return verdict(True, f"{answer.type} for {answer.key}, amount {AMOUNT}")


def check_exercise_2(answer) -> None:
    """The command that asks the payment service to authorize the payment of order-1."""
    problem = not_a_message(answer, "command(type, key, payload)")
    if problem:
        return verdict(False, problem)
    if answer.kind != "command":
        return verdict(False, f"it is an {answer.kind}: a request to act is made with command(...)")
    if is_past_tense(answer.type):
        return verdict(False, f"{answer.type!r} reads like a fact; a command is imperative "
                              "(a verb first)")
    if "payment" not in answer.type.lower():
        return verdict(False, f"{answer.type!r} does not say what to act on: the payment")
    if answer.key != ORDER:
        return verdict(False, f"key is {answer.key!r}: the command is about the order {ORDER!r}")
    problem = payload_problem(answer, "amount", AMOUNT)
    if problem:
        return verdict(False, problem)
    return verdict(True, f"{answer.type} is a command for {answer.key}: one receiver, who may "
                         "refuse")


def check_exercise_3(prediction) -> None:
    """Predicted: does event() accept a fact named like a command ('ShipOrder')?"""
    if not isinstance(prediction, bool):
        return verdict(False, "set prediction to True (accepted) or False (refused)")
    try:
        event("ShipOrder", ORDER, {})
        accepted, said = True, ""
    except ValueError as error:
        accepted, said = False, str(error)
    what = f"event() refused it, saying: {said}" if said else "event() accepted it"
    if prediction != accepted:
        return verdict(False, f"you predicted {'accepted' if prediction else 'refused'}, but "
                              f"{what}")
    return verdict(True, what)
