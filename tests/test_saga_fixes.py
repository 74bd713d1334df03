"""Cases an outside test suite found, kept: a step with nothing to undo, saga ids that share a
prefix, a choreography that must carry the whole order, services that name no reply types."""

from __future__ import annotations

from saga_helpers import ORDER

from eda_lab import Broker, SagaRunner
from eda_lab.saga import (
    ChoreographyRunner,
    Participant,
    Refused,
    SagaDefinition,
    SagaStep,
    create_order_saga,
    shop_participants,
)


class Risk(Participant):
    """A check that changes nothing (FTGO's 'verify consumer'): no compensation, and no
    reply types of its own. It refuses an order flagged ``"blocked"``."""

    name = "risk"

    def command_handlers(self):
        return {"VerifyCustomer": self.verify}

    def verify(self, conn, command):
        if command.payload.get("flag") == "blocked":
            raise Refused("the customer is blocked")
        return "the customer may buy"

    def effect(self, saga_id, command_type):
        rows = [r for r in self.replies(saga_id) if r["command_type"] == command_type]
        return "done" if rows and rows[0]["outcome"] == "succeeded" else "none"


def with_risk_check() -> SagaDefinition:
    shop = create_order_saga()
    verify = SagaStep("verify_customer", "risk", "VerifyCustomer")
    return SagaDefinition("create_order_checked", (shop.steps[0], verify, *shop.steps[1:]),
                          participants=(*shop.participants, "risk"))


def services(broker):
    return {**shop_participants(broker), "risk": Risk(broker)}


def run(style, order, outcomes=None):
    broker = Broker()
    runner_class = SagaRunner if style == "orchestration" else ChoreographyRunner
    runner = runner_class(with_risk_check(), broker=broker, participants=services(broker),
                          outcomes=outcomes)
    saga_id = runner.start(order)
    runner.run()
    return runner, saga_id


def test_a_step_with_no_compensation_is_not_asked_to_be_undone():
    for style in ("orchestration", "choreography"):
        runner, saga_id = run(style, ORDER, outcomes={"AuthorizePayment": "fail"})
        assert runner.status(saga_id) == "compensated"
        assert runner.effects(saga_id)["verify_customer"] == "done"  # nothing to undo
        assert runner.problems(saga_id) == [], style


def test_the_choreography_carries_the_whole_order_as_the_orchestrator_does():
    blocked = {**ORDER, "flag": "blocked"}
    for style in ("orchestration", "choreography"):
        runner, saga_id = run(style, blocked)
        assert runner.status(saga_id) == "compensated", style
        assert runner.problems(saga_id) == []


def test_saga_ids_that_share_a_prefix_are_checked_apart():
    runner = SagaRunner()
    first = runner.start(ORDER, "shop:1")
    second = runner.start({**ORDER, "order_id": "order-2"}, "shop:1:retry")
    runner.run()
    assert [runner.status(first), runner.status(second)] == ["completed", "completed"]
    assert runner.problems(first) == [] and runner.problems(second) == []
    assert len(runner.participants["payment"].replies("shop:1")) == 1
