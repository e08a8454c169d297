from consumer.offsets import OffsetTracker

TP = ("t", 0)


def test_commits_only_contiguous_completed_prefix():
    tr = OffsetTracker()
    epoch = tr.assign(TP)
    for off in range(10, 15):
        tr.track(TP, epoch, off)
    assert tr.pending_commits() == {TP: 10}  # nothing done: position stays at the first
    tr.mark_committed(TP, 10)
    tr.complete(TP, epoch, 12)
    tr.complete(TP, epoch, 11)
    assert tr.pending_commits() == {}  # 10 still outstanding
    tr.complete(TP, epoch, 10)
    assert tr.pending_commits() == {TP: 13}
    tr.mark_committed(TP, 13)
    tr.complete(TP, epoch, 14)
    tr.complete(TP, epoch, 13)
    assert tr.pending_commits() == {TP: 15}
    assert tr.outstanding() == 0


def test_results_of_an_old_assignment_are_ignored():
    tr = OffsetTracker()
    old = tr.assign(TP)
    tr.track(TP, old, 5)
    tr.revoke(TP)
    new = tr.assign(TP)
    assert new != old
    tr.track(TP, new, 5)
    assert tr.complete(TP, old, 5) is False  # late result from before the rebalance
    assert tr.outstanding(TP) == 1
    assert tr.complete(TP, new, 5) is True
    assert tr.pending_commits() == {TP: 6}


def test_not_owned_partition_is_not_tracked_or_committed():
    tr = OffsetTracker()
    assert tr.track(("x", 1), 1, 3) is False
    assert tr.pending_commits() == {}


def test_pending_commits_filter_and_duplicates():
    tr = OffsetTracker()
    a, b = ("t", 0), ("t", 1)
    ea, eb = tr.assign(a), tr.assign(b)
    tr.track(a, ea, 0)
    tr.track(a, ea, 0)  # redelivered duplicate counts once
    tr.track(b, eb, 7)
    tr.complete(a, ea, 0)
    tr.complete(b, eb, 7)
    assert tr.pending_commits(only={b}) == {b: 8}
    assert tr.pending_commits() == {a: 1, b: 8}
