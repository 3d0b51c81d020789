"""QueueOrder: `--queues` parsed, strict order, and smooth weighted round robin."""

from __future__ import annotations

from collections import Counter

import pytest

from domain.queue_order import MAX_WEIGHT, QueueOrder
from interfaces.cli import main


def turns(order: QueueOrder, count: int) -> list[str]:
    """The queues of the next `count` turns, one slot at a time."""
    dealt: list[str] = []
    for _ in range(count):
        ((name, _),) = [(name, n) for name, n in order.quotas(1) if n]
        dealt.append(name)
    return dealt


def test_names_alone_are_strict_order() -> None:
    order = QueueOrder.parse("a, b,c")
    assert (order.names, order.weights) == (["a", "b", "c"], None)
    assert order.quotas(5) == [("a", 5), ("b", 0), ("c", 0)]
    assert order.take_turn("a")
    assert not order.take_turn("b")
    assert order.quotas(1) == [("a", 1), ("b", 0), ("c", 0)]  # nothing moved on


def test_a_queue_without_a_weight_weighs_one() -> None:
    order = QueueOrder.parse("a=3,b")
    assert (order.names, order.weights) == (["a", "b"], [3, 1])
    assert str(order) == "a=3,b=1"


def test_one_queue_with_a_weight_is_just_that_queue() -> None:
    assert QueueOrder.parse("a=5").weights is None


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("", "'' is not a queue name or name=weight"),
        ("a,,b", "'' is not a queue name"),
        ("a=x", "'a=x' is not a queue name or name=weight"),
        ("a=-1", "'a=-1' is not"),
        ("a=3=4", "'a=3=4' is not"),
        ("a b", "'a b' is not"),
        ("a=0,b", "the weight of 'a' must be from 1 to 100"),
        (f"a={MAX_WEIGHT + 1}", "the weight of 'a' must be from 1 to 100"),
        ("a,b=2,a", "queue 'a' is named twice"),
    ],
)
def test_a_bad_spec_says_what_is_wrong(spec: str, complaint: str) -> None:
    with pytest.raises(ValueError, match="^" + complaint.replace("(", r"\(")):
        QueueOrder.parse(spec)


def test_turns_are_smooth_as_nginx_deals_them() -> None:
    # nginx's own example: weights 5, 1, 1 give a a b a c a a, not a a a a a b c.
    assert turns(QueueOrder.parse("a=5,b=1,c=1"), 7) == ["a", "a", "b", "a", "c", "a", "a"]
    assert turns(QueueOrder.parse("a=3,b=1"), 8) == ["a", "a", "b", "a"] * 2


def test_slots_split_as_the_weights_whatever_the_round_size() -> None:
    order = QueueOrder.parse("a=3,b=1")
    dealt: Counter[str] = Counter()
    for free in [1, 4, 7, 2, 10, 3, 1, 12] * 10:
        quotas = order.quotas(free)
        assert sum(n for _, n in quotas) == free
        dealt.update({name: n for name, n in quotas})
    assert dealt["a"] == 3 * dealt["b"]


def test_quotas_list_the_queue_whose_turn_comes_soonest_first() -> None:
    # After a, a the next turn is b's: slots a queue cannot fill go to b first.
    order = QueueOrder.parse("a=3,b=1")
    assert order.quotas(2) == [("b", 0), ("a", 2)]
    assert turns(order, 1) == ["b"]
    # With three queues, the turns go a, b, a, c, a: after a, b comes a, then c.
    order = QueueOrder.parse("a=3,b=1,c=1")
    assert order.quotas(2) == [("a", 1), ("c", 0), ("b", 1)]
    assert turns(order, 3) == ["a", "c", "a"]


def test_a_settle_claims_only_in_its_queues_turn() -> None:
    order = QueueOrder.parse("a=3,b=1")
    assert not order.take_turn("b")  # a's turn: b's slot goes back to the fetch loop
    assert order.take_turn("a")
    assert order.take_turn("a")
    assert not order.take_turn("a")
    assert order.take_turn("b")
    assert turns(order, 5) == ["a", "a", "a", "b", "a"]  # the cycle's last turn, the next


@pytest.mark.parametrize("spec", ["a=0", "a,a", "a=3,,b"])
def test_the_cli_refuses_a_bad_queue_spec(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "--queues", spec]) == 2
    assert "conveyor: invalid setting WORKER_QUEUES" in capsys.readouterr().err


def test_worker_queues_from_the_environment_are_checked_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKER_QUEUES", "a=1000")
    assert main(["worker"]) == 2
    assert "the weight of 'a' must be from 1 to 100" in capsys.readouterr().err
