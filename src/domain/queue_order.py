"""QueueOrder: which of a worker's queues its free slots go to, in strict order or by weight."""

from __future__ import annotations

import re

MAX_WEIGHT = 100
_ENTRY = re.compile(r"(?P<name>[^=\s]+)(?:=(?P<weight>\d+))?")


class QueueOrder:
    """The queues a worker serves, as `--queues` names them.

    Strict (`a,b`): every free slot goes to the first queue; a later queue gets only the
    slots the earlier ones cannot fill with ready tasks. Weighted (`a=3,b=1`; a queue
    without a weight weighs 1): turns go to the queues by smooth weighted round robin (as
    nginx balances its upstreams), so with every queue busy the starts split as the weights
    do, spread out rather than in runs. A turn a queue cannot use (nothing ready) goes to
    the queue whose turn comes next, and is not owed back later.
    """

    def __init__(self, names: list[str], weights: list[int] | None = None) -> None:
        self.names = names
        self.weights = weights
        self._current = [0] * len(names)

    @classmethod
    def parse(cls, spec: str) -> QueueOrder:
        """`a,b` or `a=3,b=1`; ValueError saying what is wrong with `spec`."""
        names: list[str] = []
        weights: list[int] = []
        weighted = False
        for entry in (part.strip() for part in spec.split(",")):
            match = _ENTRY.fullmatch(entry)
            if match is None:
                raise ValueError(f"{entry!r} is not a queue name or name=weight")
            name, weight = match["name"], match["weight"]
            if name in names:
                raise ValueError(f"queue {name!r} is named twice")
            if weight is not None and not 1 <= int(weight) <= MAX_WEIGHT:
                raise ValueError(f"the weight of {name!r} must be from 1 to {MAX_WEIGHT}")
            weighted = weighted or weight is not None
            names.append(name)
            weights.append(int(weight or 1))
        return cls(names, weights if weighted and len(names) > 1 else None)

    def __str__(self) -> str:
        if self.weights is None:
            return ",".join(self.names)
        return ",".join(f"{n}={w}" for n, w in zip(self.names, self.weights, strict=True))

    def quotas(self, free: int) -> list[tuple[str, int]]:
        """The next `free` turns, as slots per queue, the queue whose turn comes soonest
        first: a claim fills each quota, then gives what a queue could not fill to the
        others in this order."""
        if self.weights is None:
            return [(name, free if i == 0 else 0) for i, name in enumerate(self.names)]
        counts = [0] * len(self.names)
        for _ in range(free):
            counts[self._turn()] += 1
        soonest = sorted(range(len(self.names)), key=self._priority, reverse=True)
        return [(self.names[i], counts[i]) for i in soonest]

    def take_turn(self, queue: str) -> bool:
        """Whether the next turn is `queue`'s; if so, it is taken."""
        if self.weights is None:
            return queue == self.names[0]
        if self.names[self._next()] != queue:
            return False
        self._turn()
        return True

    def _priority(self, i: int) -> tuple[int, int]:
        assert self.weights is not None
        return (self._current[i] + self.weights[i], -i)  # ties: the first listed

    def _next(self) -> int:
        return max(range(len(self.names)), key=self._priority)

    def _turn(self) -> int:
        assert self.weights is not None
        chosen = self._next()
        for i, weight in enumerate(self.weights):
            self._current[i] += weight
        self._current[chosen] -= sum(self.weights)
        return chosen
