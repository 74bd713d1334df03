"""The notebooks' self-checks (eda_lab.exercises): "not yet" that says what is wrong, "correct"
for the solution, never an exception; and the solution cells stored without their outputs."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from eda_lab import Broker, Clock, ConsumerWorker, Outage, command, event
from eda_lab.exercises import nb00, nb01, nb02, nb03, nb04, nb05, nb06, nb07
from eda_lab.shop import DEFAULT_RATES

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def said(capsys, check, *args) -> str:
    check(*args)
    return capsys.readouterr().out.strip()


@pytest.mark.parametrize(("check", "args"), [
    (nb00.check_exercise_1, (None,)), (nb00.check_exercise_2, (None,)),
    (nb00.check_exercise_3, (None,)), (nb01.check_exercise_1, (None,)),
    (nb01.check_exercise_3, (None,)), (nb02.check_exercise_1, ([],)),
    (nb02.check_exercise_2, (None,)), (nb03.check_exercise_2, (None,)),
    (nb03.check_exercise_3, (None,)), (nb02.check_exercise_3, (lambda o, s: o, None)),
    (nb04.check_exercise_1, (None,)), (nb04.check_exercise_2, (["begin A", "commit A", "poll"],)),
    (nb04.check_exercise_3, (None,)), (nb05.check_exercise_1, (None,)),
    (nb05.check_exercise_2, (None,)), (nb05.check_exercise_3, (None,)),
    (nb06.check_exercise_1, (None,)), (nb06.check_exercise_2, (None,)),
    (nb06.check_exercise_3, (None,)), (nb07.check_exercise_1, (None,)),
    (nb07.check_exercise_2, (None,)), (nb07.check_exercise_3, (None,)),
    (nb07.check_exercise_4, (None,)),
])
def test_an_unanswered_exercise_says_not_yet_and_does_not_raise(capsys, check, args):
    assert said(capsys, check, *args).startswith("not yet: ")


def test_a_wrong_payload_key_is_named(capsys):
    wrong = event("PaymentAuthorized", "order-1", {"total": 24.0})
    assert "no 'amount' (it has 'total')" in said(capsys, nb00.check_exercise_1, wrong)
    assert "not a message" in said(capsys, nb00.check_exercise_1, {"amount": 24.0})
    right = command("AuthorizePayment", "order-1", {"amount": 24.0})
    assert said(capsys, nb00.check_exercise_2, right).startswith("correct")
    assert "reads like a fact" in said(capsys, nb00.check_exercise_2,
                                      command("PaymentAuthorized", "order-1", {"amount": 24.0}))


def test_a_handler_that_raises_shows_its_dead_letters_and_their_reasons(capsys):
    clock = Clock()
    broker = Broker(clock)
    broker.create_topic("orders", partitions=3)
    flagged: list = []
    ConsumerWorker(broker, "fraud", "orders",
                   lambda d: flagged.append(d.key) if d.payload["total"] > 50 else None)
    for number, total in [(1, 24.0), (2, 90.0), (3, 35.5), (4, 120.0)]:
        broker.publish("orders", event("OrderPlaced", f"order-{number}", {"total": total}))
    clock.run(until_ms=2_000)
    out = said(capsys, nb02.check_exercise_1, flagged, broker)
    assert out.startswith("not yet") and "AttributeError" in out and "'Delivery'" in out


def test_a_prediction_in_the_wrong_unit_is_refused_at_once(capsys):
    assert "outside 1-2,000" in said(capsys, nb01.check_exercise_3, 1e6)
    assert "must be a number" in said(capsys, nb01.check_exercise_3, "133")


def test_exercise_1_of_03_accepts_only_the_point_it_names(capsys):
    assert "also names" in said(capsys, nb03.check_exercise_1, {"broker.unavailable": [1, 2, 3]})
    assert said(capsys, nb03.check_exercise_1, {"order.after_commit": [1, 2, 3]}).startswith(
        "correct")


def test_04_checks_say_which_number_is_wrong_without_giving_it(capsys):
    assert "more than 3" in said(capsys, nb04.check_exercise_1, 3)
    assert said(capsys, nb04.check_exercise_1, 4).startswith("correct: 4 duplicate effects")
    two = ["begin A", "begin B", "commit B", "poll", "commit A", "poll"]
    assert "2 writer(s) (A, B); the task asks for 3" in said(capsys, nb04.check_exercise_2, two)
    one_skip = ["begin A", "begin B", "begin C", "commit C", "commit B", "poll", "commit A"]
    assert "skips 1 row(s) [1]" in said(capsys, nb04.check_exercise_2, one_skip)
    assert "comit" in said(capsys, nb04.check_exercise_2, ["comit A"])
    assert "processed twice" in said(capsys, nb04.check_exercise_3, 119)
    assert "a smaller window does too" in said(capsys, nb04.check_exercise_3, 121)
    assert "a week" in said(capsys, nb04.check_exercise_3, 10 ** 9)
    assert said(capsys, nb04.check_exercise_3, 120).startswith("correct")


def test_05_checks_name_the_wrong_step_target_or_point(capsys):
    assert "reserve_inventory was refused" in said(capsys, nb05.check_exercise_1,
                                                    ["reserve_inventory", "create_order"])
    assert "never ran" in said(capsys, nb05.check_exercise_1, ["authorize_payment"])
    assert "not steps of the saga" in said(capsys, nb05.check_exercise_1, ["create-order"])
    assert said(capsys, nb05.check_exercise_1, ["create_order"]).startswith("correct")
    assert "not before the pivot" in said(capsys, nb05.check_exercise_2,
                                           Outage("payment", 0, 150_000))
    short = said(capsys, nb05.check_exercise_2, Outage("inventory", 0, 60_000))
    assert short.startswith("not yet") and "ended completed" in short
    assert said(capsys, nb05.check_exercise_2, Outage("order", 0, 150_000)).startswith("correct")
    assert "never reached" in said(capsys, nb05.check_exercise_3, "saga.after_send")
    assert "each restart got further" in said(capsys, nb05.check_exercise_3, "saga.after_record")
    assert "a participant's" in said(capsys, nb05.check_exercise_3,
                                     "saga.participant_before_commit")
    assert said(capsys, nb05.check_exercise_3, "saga.before_record").startswith("correct")


def test_a_key_per_event_breaks_the_order_of_some_orders():
    seen = nb02.tracking_run(lambda order, step: f"{order}:{step}")
    assert nb02.out_of_order(seen)
    assert not nb02.out_of_order(nb02.tracking_run(lambda order, step: order))


def test_06_a_prediction_says_how_far_off_and_which_way(capsys):
    measured = nb06.p95_1()
    assert said(capsys, nb06.check_exercise_1, round(measured)).startswith("correct")
    assert "too low" in said(capsys, nb06.check_exercise_1, 300)       # the relay's wait alone
    assert "too high" in said(capsys, nb06.check_exercise_1, 800)
    assert "must be a number" in said(capsys, nb06.check_exercise_1, "400")
    assert "between 0 and 600,000" in said(capsys, nb06.check_exercise_1, 1e9)


def test_06_a_wrong_transaction_is_named_by_its_position(capsys):
    right = nb06.transactions_2()
    assert said(capsys, nb06.check_exercise_2, right).startswith("correct")
    wrong = [right[0], ("payment", "AuthorizePayment"), *right[2:]]
    assert "transaction 2 is not ('payment', 'AuthorizePayment')" in said(
        capsys, nb06.check_exercise_2, wrong)
    assert "the run made 3" in said(capsys, nb06.check_exercise_2, right[:2])
    assert "never happened" in said(capsys, nb06.check_exercise_2,
                                    [*right, ("inventory", "ReleaseInventory")])
    assert "item 1 is 'x'" in said(capsys, nb06.check_exercise_2, ["x"])


def test_06_an_outage_is_too_short_too_long_or_right(capsys):
    assert "too short" in said(capsys, nb06.check_exercise_3, 1_000)
    assert said(capsys, nb06.check_exercise_3, 1_600).startswith("correct")
    assert "too long" in said(capsys, nb06.check_exercise_3, 5_000)
    assert "between 0 and 600,000 ms" in said(capsys, nb06.check_exercise_3, 1e9)


def test_07_the_checks_name_what_broke_and_refuse_what_they_set_themselves(capsys):
    assert "duplicate effects still holds" in said(
        capsys, nb07.check_exercise_1, {"rates": {"relay": 0.02}, "inbox": True})
    assert said(capsys, nb07.check_exercise_1,
                {"rates": {"relay": 0.02, "consumer": 0.02}, "inbox": False}).startswith("correct")
    assert "names ['n_orders']" in said(capsys, nb07.check_exercise_1, {"n_orders": 5})
    assert "run_chaos refused answer_1" in said(capsys, nb07.check_exercise_1,
                                                {"rates": {"relays": 0.1}})
    assert "outbox is on" in said(capsys, nb07.check_exercise_2, {"rates": {"order": 0.02}})
    assert said(capsys, nb07.check_exercise_3, {"rates": {"order": 0.02}, "outbox": False,
                                                "dual_write": "publish_then_db"}).startswith(
        "correct")
    assert "no phantom" in said(capsys, nb07.check_exercise_3,
                                {"rates": {"order": 0.02}, "outbox": False})


def test_07_exercise_2_counts_lost_order_placed_only(capsys, monkeypatch):
    # the placeholder's family (the broker refusing the naive publish) is a valid answer
    out = said(capsys, nb07.check_exercise_2, {"rates": {"broker": 0.01}, "outbox": False})
    assert out.startswith("correct") and "OrderPlaced lost" in out

    # a participant that dies between its commit and its publish also loses an approval
    # (version 2) of a finished order: counted apart, and it does not make a valid answer fail
    # (notebook 07's section 5 storm, 100 orders with seed 5, has one)
    monkeypatch.setattr(nb07, "ORDERS", 100)
    monkeypatch.setattr(nb07, "SEED", 5)
    out = said(capsys, nb07.check_exercise_2, {"rates": DEFAULT_RATES, "outbox": False})
    assert out.startswith("correct") and "and 1 later event(s)" in out, out


def test_07_a_prediction_is_a_count_of_invariants(capsys):
    assert said(capsys, nb07.check_exercise_4, 0).startswith("correct")
    assert said(capsys, nb07.check_exercise_4, 2).startswith("not yet: you predicted 2; 0 broke")
    assert "from 0 to 6" in said(capsys, nb07.check_exercise_4, 7)


def solution_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"]
            if "solution" in c.get("metadata", {}).get("tags", [])]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_solutions_are_stored_hidden_and_without_their_outputs(path):
    for cell in solution_cells(path):
        assert "".join(cell["source"]).startswith("# Solution")
        assert cell["outputs"] == [], "run tools/strip_solutions.py (make notebooks does)"
        assert cell["metadata"]["jupyter"] == {"source_hidden": True, "outputs_hidden": True}


def test_every_notebook_keeps_its_solutions_tagged():
    for path in NOTEBOOKS:
        assert len(solution_cells(path)) >= 3, path.stem


def test_strip_solutions_clears_a_tagged_cell_and_nothing_else(tmp_path):
    notebook = {"cells": [
        {"cell_type": "code", "source": ["# Solution\n", "x = 1"], "metadata": {"tags": ["solution"]},
         "outputs": [{"output_type": "stream", "name": "stdout", "text": ["correct\n"]}],
         "execution_count": 3},
        {"cell_type": "code", "source": ["y = 2"], "metadata": {},
         "outputs": [{"output_type": "stream", "name": "stdout", "text": ["kept\n"]}],
         "execution_count": 4}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(notebook))
    subprocess.run([sys.executable, str(ROOT / "tools" / "strip_solutions.py"), str(path)],
                   check=True, capture_output=True)
    solution, other = json.loads(path.read_text())["cells"]
    assert solution["outputs"] == [] and solution["execution_count"] == 3   # it ran
    assert other["outputs"] and other["execution_count"] == 4


def _assigned(code: str) -> set[str]:
    names = set()
    for node in ast.parse(code).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else [])
        names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


@pytest.mark.parametrize("path", NOTEBOOKS,
                         ids=lambda p: p.stem)
def test_running_a_solution_leaves_the_learners_variables_alone(path):
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    learner = set().union(*(_assigned("".join(c["source"])) for c in cells
                            if "solution" not in c["metadata"].get("tags", [])))
    for cell in solution_cells(path):
        assert not _assigned("".join(cell["source"])) & learner, "".join(cell["source"])[:80]
