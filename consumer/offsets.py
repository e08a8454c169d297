"""Which offsets are safe to commit: the contiguous completed prefix of each partition.

Records finish out of order (a 503 retried, a batch split across stages), but
Kafka stores one position per partition, meaning "everything before this is
done". So a partition's committable position is the smallest offset still
outstanding, or one past the highest seen when nothing is outstanding.

Each assignment of a partition gets a fresh *epoch*: results that come back
for an older epoch (the partition was revoked, maybe re-assigned since) are
ignored, so a late result can never move a position it no longer owns.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

TopicPartitionKey = tuple[str, int]
_epochs = itertools.count(1)


@dataclass
class PartitionOffsets:
    """Outstanding offsets of one assigned partition."""

    epoch: int
    _heap: list[int] = field(default_factory=list)
    _outstanding: set[int] = field(default_factory=set)
    highest_seen: int = -1
    committed: int | None = None  # last position committed (next offset to read)

    def track(self, offset: int) -> None:
        if offset in self._outstanding:
            return
        self._outstanding.add(offset)
        heapq.heappush(self._heap, offset)
        self.highest_seen = max(self.highest_seen, offset)

    def complete(self, offset: int) -> None:
        self._outstanding.discard(offset)
        while self._heap and self._heap[0] not in self._outstanding:
            heapq.heappop(self._heap)

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)

    def position(self) -> int | None:
        """The offset to commit: everything below it is done. None if nothing seen."""
        if self._heap:
            return self._heap[0]
        if self.highest_seen >= 0:
            return self.highest_seen + 1
        return None

    def pending_commit(self) -> int | None:
        """The position if it moved past the last commit, else None."""
        pos = self.position()
        if pos is None or (self.committed is not None and pos <= self.committed):
            return None
        return pos


class OffsetTracker:
    """Per-partition bookkeeping for all partitions this replica owns."""

    def __init__(self) -> None:
        self._parts: dict[TopicPartitionKey, PartitionOffsets] = {}

    def assign(self, tp: TopicPartitionKey) -> int:
        """Start owning ``tp``; returns its new epoch."""
        state = PartitionOffsets(epoch=next(_epochs))
        self._parts[tp] = state
        return state.epoch

    def revoke(self, tp: TopicPartitionKey) -> None:
        self._parts.pop(tp, None)

    def owns(self, tp: TopicPartitionKey, epoch: int) -> bool:
        state = self._parts.get(tp)
        return state is not None and state.epoch == epoch

    def epoch(self, tp: TopicPartitionKey) -> int | None:
        state = self._parts.get(tp)
        return state.epoch if state else None

    def track(self, tp: TopicPartitionKey, epoch: int, offset: int) -> bool:
        state = self._parts.get(tp)
        if state is None or state.epoch != epoch:
            return False
        state.track(offset)
        return True

    def complete(self, tp: TopicPartitionKey, epoch: int, offset: int) -> bool:
        """Mark done; False (ignored) when the result belongs to an older assignment."""
        state = self._parts.get(tp)
        if state is None or state.epoch != epoch:
            return False
        state.complete(offset)
        return True

    def pending_commits(self, only: set[TopicPartitionKey] | None = None) -> dict[TopicPartitionKey, int]:
        """Positions that advanced since their last commit."""
        result = {}
        for tp, state in self._parts.items():
            if only is not None and tp not in only:
                continue
            pos = state.pending_commit()
            if pos is not None:
                result[tp] = pos
        return result

    def mark_committed(self, tp: TopicPartitionKey, position: int) -> None:
        state = self._parts.get(tp)
        if state is not None:
            state.committed = max(position, state.committed or 0)

    def outstanding(self, tp: TopicPartitionKey | None = None) -> int:
        if tp is not None:
            state = self._parts.get(tp)
            return state.outstanding if state else 0
        return sum(s.outstanding for s in self._parts.values())

    def position(self, tp: TopicPartitionKey) -> int | None:
        state = self._parts.get(tp)
        return state.position() if state else None

    def partitions(self) -> list[TopicPartitionKey]:
        return list(self._parts)
