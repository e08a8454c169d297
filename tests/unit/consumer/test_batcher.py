from consumer.batcher import Batcher


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_batch_closes_when_full():
    b = Batcher(3, 10.0, Clock())
    for i in range(7):
        b.add(i)
    assert b.take() == [0, 1, 2]
    assert b.take() == [3, 4, 5]
    assert b.take() == []  # one left, not due yet
    assert len(b) == 1


def test_batch_closes_after_wait_from_first_item():
    clock = Clock()
    b = Batcher(100, 0.5, clock)
    assert b.due_in() is None
    b.add("a")
    clock.t += 0.3
    b.add("b")
    assert b.take() == []
    assert abs(b.due_in() - 0.2) < 1e-9
    clock.t += 0.2
    assert b.take() == ["a", "b"]
    assert b.due_in() is None


def test_force_takes_partial_batch():
    b = Batcher(10, 60.0, Clock())
    b.add(1)
    assert b.take() == []
    assert b.take(force=True) == [1]


def test_remove_if_drops_matching_items():
    b = Batcher(10, 1.0, Clock())
    for i in range(6):
        b.add(i)
    assert b.remove_if(lambda x: x % 2 == 0) == [0, 2, 4]
    assert b.take(force=True) == [1, 3, 5]
