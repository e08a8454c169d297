"""Faults against the real broker and database (issue 5, "Faults"): nothing lost, nothing duplicated.

Every test drives consumer subprocesses (``python -m consumer run``) through a fault while
records arrive, then proves the end state from the outside:

* exactly one row per image id, and it comes from that id's *newest* record (topic, partition,
  offset), with the scores ONNX Runtime gives offline for the same bytes;
* the dead-letter topic holds only the planted bad inputs;
* the group's committed offsets cover every record and never point past an unwritten row.

Each test writes its figures to ``bench/out/reliability/<test>.json`` (RELIABILITY.md).
"""

from __future__ import annotations

import random
import signal
import threading
import time

import pytest

from tests.support import faults_harness as fh
from tests.support import harness as h


@pytest.fixture
def model(tmp_path):
    return h.model_file(tmp_path)


def tiny(seed: int) -> bytes:
    """A 64x64 JPEG: cheap to decode, distinct per seed."""
    return h.jpeg(seed, size=(64, 64), quality=80)


def planted_bad(i: int) -> bytes:
    return tiny(900_000 + i)[:300]  # a truncated JPEG: dead-lettered as decode/corrupt_image


def fault_log_counts(fleet: fh.Fleet) -> dict[str, int]:
    counts = {point: 0 for point in ("before_upsert", "after_db_commit", "on_revoke")}
    for member in fleet.members.values():
        text = member.log.read_text(errors="replace") if member.log.exists() else ""
        for point in counts:
            counts[point] += text.count(f"fault injection: SIGKILL at {point}")
    return counts


def wait_committed(bootstrap: str, group: str, topic: str, partitions: int, total: int, timeout: float) -> None:
    h.wait_for(lambda: fh.committed_total(bootstrap, group, topic, partitions) >= total, timeout, interval=1.0,
               what=f"{total} offsets committed")


# ---------------------------------------------------------------------------------- 1
@pytest.mark.slow
def test_kill_minus_nine_and_planted_faults_lose_nothing(kafka_bootstrap, database_url, db_schema, new_topic,
                                                         model, tmp_path):
    """≥5,000 records over 6 partitions, 3 replicas; ≥10 random kill -9 plus planted kills."""
    n_good, n_bad, partitions, produce_s = 5000, 20, 6, 45.0
    rng = random.Random(5)
    topic, dlq = new_topic(partitions), new_topic(1, prefix="dlq")
    images = {f"k-{i}": tiny(i) for i in range(n_good)}
    bad = {f"bad-{i}": planted_bad(i) for i in range(n_bad)}
    records = [h.inline(k, v) for k, v in images.items()] + [h.inline(k, v) for k, v in bad.items()]
    rng.shuffle(records)
    expected: dict = {}
    scorer = threading.Thread(target=lambda: expected.update(fh.offline_scores(images, model)), daemon=True)

    settings = fh.fault_settings(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq,
                                 max_batch_size=32)
    faults = "before_upsert@0.01,after_db_commit@0.01,on_revoke@0.1"
    # Besides the random chances, some restarts carry a certain death at one point. The one armed
    # with on_revoke@1 is later sent SIGTERM: it dies inside its revoke callback, mid-rebalance.
    planted_once = {1: "before_upsert@1", 4: "after_db_commit@1", 5: "on_revoke@1"}
    fleet = fh.Fleet(settings, tmp_path)
    started = time.monotonic()
    try:
        for name in ("c0", "c1", "c2"):
            fleet.start(name, faults)
        for member in list(fleet.members.values()):
            fleet.wait_up(member)
        trickle = fh.Trickle(kafka_bootstrap, topic, records, produce_s)
        trickle.start()
        scorer.start()
        deadline = time.monotonic() + produce_s + 30
        round_, armed, pending = 0, None, set()  # pending: restarted with a certain death ahead
        while fleet.kills < 10 and time.monotonic() < deadline:
            time.sleep(rng.uniform(2.0, 4.0))
            pending -= set(fleet.reap())
            if round_ == 8 and armed is not None and fleet.members[armed].alive():
                member = fleet.members[armed]
                # Only a replica that owns partitions has anything to revoke when it leaves.
                h.wait_for(lambda: not member.alive() or _assigned(member) > 0, 40, what="armed replica assigned")
                if member.alive():
                    fleet.signal(armed, signal.SIGTERM)  # leaving the group: revoke → planted SIGKILL
                member.proc.wait(timeout=60)
                pending -= set(fleet.reap())
                armed = None
            candidates = sorted(set(fleet.members) - pending - {armed})
            if not candidates:
                round_ += 1
                continue
            victim = rng.choice(candidates)
            fleet.kill(victim)
            once = planted_once.get(round_, "")
            fleet.restart(victim, once)
            if once.startswith("on_revoke"):
                armed = victim
            elif once:
                pending.add(victim)
            round_ += 1
        assert fleet.kills >= 10
        produced = trickle.finish()
        # Let the group settle: keep restarting replicas that a planted fault kills.
        settle_deadline = time.monotonic() + 240
        while time.monotonic() < settle_deadline:
            fleet.reap()
            if len(fh.rows(database_url, db_schema)) >= n_good and \
                    fh.committed_total(kafka_bootstrap, settings.group_id, topic, partitions) >= len(records):
                break
            time.sleep(1.0)
        wait_committed(kafka_bootstrap, settings.group_id, topic, partitions, len(records), 5)
        for member in fleet.members.values():
            fleet.note_peak(member)
    finally:
        fleet.stop_all()
    elapsed = time.monotonic() - started
    got = fh.rows(database_url, db_schema)
    letters = h.read_topic(kafka_bootstrap, dlq, n_bad, timeout=30)
    scorer.join(120)
    newest = fh.newest_by_id([p for p in produced if p.key in images])
    counts = fh.check_rows(got, newest, expected, topic)
    dlq_keys = [m.key().decode() for m in letters]
    assert set(dlq_keys) == set(bad), sorted(set(dlq_keys) ^ set(bad))  # only the planted bad inputs
    planted = fault_log_counts(fleet)
    assert all(planted.values()), planted  # every planted point really killed a replica
    fh.write_figures("crash", {
        **counts, "messages": len(records), "good": n_good, "planted_bad": n_bad, "partitions": partitions,
        "replicas": 3, "kill_minus_nine": fleet.kills, "planted_fault_deaths": fleet.fault_deaths,
        "planted_by_point": planted, "restarts": fleet.restarts, "dead_letters": len(letters),
        "dead_letters_distinct": len(set(dlq_keys)),
        "dead_letters_by_reason": fh.dead_letters_by_reason(letters),
        "peak_rss_mib": round(fleet.peak_rss / 2**20, 1), "seconds": round(elapsed, 1)})


# ---------------------------------------------------------------------------------- 2
@pytest.mark.slow
def test_postgres_outage_turns_not_ready_commits_nothing_unwritten_and_loses_nothing(
        kafka_bootstrap, database_url, db_schema, new_topic, model, tmp_path, pg_control):
    n, partitions, outage_s = 1200, 4, 30.0
    topic, dlq = new_topic(partitions), new_topic(1, prefix="dlq")
    images = {f"p-{i}": tiny(10_000 + i) for i in range(n)}
    settings = fh.fault_settings(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq,
                                 session_timeout_ms=15000)
    fleet = fh.Fleet(settings, tmp_path)
    member = fleet.start("c0")
    samples: list[int] = []
    started = time.monotonic()
    try:
        fleet.wait_up(member)
        trickle = fh.Trickle(kafka_bootstrap, topic, [h.inline(k, v) for k, v in images.items()], 36.0)
        trickle.start()
        h.wait_for(lambda: len(fh.rows(database_url, db_schema)) >= 150, 60, what="rows before the outage")
        stopped_at = time.monotonic()
        pg_control.stop()
        # Not ready, with the database named as the failing check.
        status, body = h.wait_for(lambda: (lambda r: r if r[0] == 503 else None)(member.readyz()), 30,
                                  what="/readyz 503")
        assert body["checks"]["database"] is False and body["checks"]["kafka"] is True, body
        while time.monotonic() - stopped_at < outage_s:
            samples.append(fh.committed_total(kafka_bootstrap, settings.group_id, topic, partitions))
            assert member.alive(), fh.tail(member.log)
            time.sleep(2.0)
        readyz_during = member.readyz()
        # Freeze the consumer while the database comes back, so the rows it had written before
        # the outage can be read before it writes again.
        fleet.signal("c0", signal.SIGSTOP)
        try:
            pg_control.start()
            outage = time.monotonic() - stopped_at
            committed_at_restart = fh.committed(kafka_bootstrap, settings.group_id, topic, partitions)
            written = {(r["source_partition"], r["source_offset"]) for r in fh.rows(database_url, db_schema)}
        finally:
            fleet.signal("c0", signal.SIGCONT)
        produced = trickle.finish()
        fh.wait_rows(database_url, db_schema, n, timeout=120)
        wait_committed(kafka_bootstrap, settings.group_id, topic, partitions, n, 60)
        h.wait_for(lambda: member.readyz()[0] == 200, 30, what="/readyz 200 again")
        metrics = member.metrics()
        assert member.alive()
        fleet.note_peak(member)
    finally:
        fleet.stop_all()
    # No offset was committed for a result that was not in the database.
    by_partition: dict[int, set[int]] = {}
    for p in produced:
        by_partition.setdefault(p.partition, set()).add(p.offset)
    unwritten_committed = [(p, o) for p, pos in committed_at_restart.items()
                           for o in by_partition.get(p, ()) if o < pos and (p, o) not in written]
    assert not unwritten_committed, unwritten_committed[:10]
    assert max(samples) <= sum(max(o, 0) for o in committed_at_restart.values())
    assert readyz_during[0] == 503
    letters = h.read_topic(kafka_bootstrap, dlq, 0, timeout=3)
    assert letters == []  # a database outage is transient: nothing dead-lettered
    counts = fh.check_rows(fh.rows(database_url, db_schema), fh.newest_by_id(produced),
                           fh.offline_scores(images, model), topic)
    store_retries = h.metric_value(metrics, "clazzify_retries_total", {"stage": "store"})
    assert store_retries > 0
    fh.write_figures("postgres_outage", {
        **counts, "messages": n, "outage_seconds": round(outage, 1), "rows_before_restart": len(written),
        "committed_during_outage_max": max(samples), "committed_at_restart": sum(committed_at_restart.values()),
        "unwritten_but_committed": len(unwritten_committed), "readyz_during_outage": readyz_during,
        "store_retries": store_retries, "dead_letters": len(letters),
        "peak_rss_mib": round(fleet.peak_rss / 2**20, 1), "seconds": round(time.monotonic() - started, 1)})


# ---------------------------------------------------------------------------------- 3
@pytest.mark.slow
def test_broker_restart_mid_run_reconnects_and_loses_nothing(
        kafka_bootstrap, database_url, db_schema, new_topic, model, tmp_path, kafka_control):
    n, partitions = 1000, 4
    topic, dlq = new_topic(partitions), new_topic(1, prefix="dlq")
    images = {f"b-{i}": tiny(20_000 + i) for i in range(n)}
    bad = {f"bad-{i}": planted_bad(100 + i) for i in range(10)}  # dead letters produced across the restart
    records = [h.inline(k, v) for k, v in images.items()]
    for i, (k, v) in enumerate(bad.items()):
        records.insert(100 * (i + 1), h.inline(k, v))
    settings = fh.fault_settings(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq)
    fleet = fh.Fleet(settings, tmp_path)
    started = time.monotonic()
    try:
        for name in ("c0", "c1"):
            fleet.start(name)
        for member in fleet.members.values():
            fleet.wait_up(member)
        trickle = fh.Trickle(kafka_bootstrap, topic, records, 20.0)
        trickle.start()
        h.wait_for(lambda: len(fh.rows(database_url, db_schema)) >= 200, 60, what="rows before the restart")
        rows_before = len(fh.rows(database_url, db_schema))
        restart_started = time.monotonic()
        kafka_control.restart()
        restart_s = time.monotonic() - restart_started
        produced = trickle.finish()
        fh.wait_rows(database_url, db_schema, n, timeout=180)
        wait_committed(kafka_bootstrap, settings.group_id, topic, partitions, len(records), 90)
        for member in fleet.members.values():
            assert member.alive(), fh.tail(member.log)
            h.wait_for(lambda: member.readyz()[0] == 200, 30, what=f"{member.name} ready again")
            fleet.note_peak(member)
    finally:
        fleet.stop_all()
    letters = h.read_topic(kafka_bootstrap, dlq, len(bad), timeout=30)
    assert {m.key().decode() for m in letters} == set(bad)
    counts = fh.check_rows(fh.rows(database_url, db_schema), fh.newest_by_id([p for p in produced if p.key in images]),
                           fh.offline_scores(images, model), topic)
    fh.write_figures("broker_restart", {
        **counts, "messages": len(records), "replicas": 2, "rows_before_restart": rows_before,
        "broker_restart_seconds": round(restart_s, 1), "dead_letters": len(letters),
        "dead_letters_by_reason": fh.dead_letters_by_reason(letters),
        "peak_rss_mib": round(fleet.peak_rss / 2**20, 1), "seconds": round(time.monotonic() - started, 1)})


# ---------------------------------------------------------------------------------- 4
def versioned(prefix: str, n: int, seed: int) -> dict[str, bytes]:
    return {f"{prefix}-{i}": tiny(seed + i) for i in range(n)}


@pytest.mark.slow
def test_members_join_and_leave_mid_run_lose_and_duplicate_nothing(
        kafka_bootstrap, database_url, db_schema, new_topic, model, tmp_path):
    """Each id is produced twice (v1, then v2 of another colour): the row must end as v2."""
    n, partitions = 800, 6
    topic, dlq = new_topic(partitions), new_topic(1, prefix="dlq")
    v1, v2 = versioned("r", n, 30_000), versioned("r", n, 40_000)
    records = [h.inline(k, v) for k, v in v1.items()] + [h.inline(k, v) for k, v in v2.items()]
    settings = fh.fault_settings(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq)
    fleet = fh.Fleet(settings, tmp_path)
    started = time.monotonic()
    events = []
    try:
        fleet.wait_up(fleet.start("c0"))
        trickle = fh.Trickle(kafka_bootstrap, topic, records, 36.0)
        trickle.start()
        for at, action, name in [(5, "join", "c1"), (10, "join", "c2"), (16, "leave", "c0"),
                                 (22, "leave", "c1"), (27, "join", "c0"), (32, "join", "c3")]:
            time.sleep(max(0.0, started + at - time.monotonic()))
            if action == "join":
                fleet.start(name)
            else:
                assert fleet.stop(name) == 0, fh.tail(fleet.members[name].log)
            events.append(f"t+{at}s {action} {name}")
        produced = trickle.finish()
        newest = fh.newest_by_id(produced)
        h.wait_for(lambda: {(r["source_partition"], r["source_offset"]) for r in fh.rows(database_url, db_schema)}
                   == {(p.partition, p.offset) for p in newest.values()}, 120, interval=1.0,
                   what="every row at its v2 record")
        wait_committed(kafka_bootstrap, settings.group_id, topic, partitions, len(records), 60)
        totals = {"classified": 0.0, "revoke": 0.0, "assign": 0.0, "lost": 0.0}
        for member in fleet.members.values():
            if member.alive():
                text = member.metrics()
                totals["classified"] += h.metric_value(text, "clazzify_images_total", {"outcome": "classified"})
                for kind in ("revoke", "assign", "lost"):
                    totals[kind] += h.metric_value(text, "clazzify_rebalances_total", {"kind": kind})
                fleet.note_peak(member)
    finally:
        fleet.stop_all()
    letters = h.read_topic(kafka_bootstrap, dlq, 0, timeout=3)
    assert letters == []
    counts = fh.check_rows(fh.rows(database_url, db_schema), newest, fh.offline_scores(v2, model), topic)
    fh.write_figures("rebalance_join_leave", {
        **counts, "messages": len(records), "ids": n, "versions_per_id": 2, "membership_changes": events,
        "rebalance_callbacks_on_survivors": totals, "dead_letters": len(letters),
        "peak_rss_mib": round(fleet.peak_rss / 2**20, 1), "seconds": round(time.monotonic() - started, 1)})


@pytest.mark.slow
def test_processing_slower_than_max_poll_interval_loses_and_overwrites_nothing(
        kafka_bootstrap, database_url, db_schema, new_topic, model, tmp_path):
    """Each batch takes 7 s in the store stage while max.poll.interval.ms is 6 s.

    The main loop keeps polling while the pipeline is slow, so the replica is NOT evicted for
    exceeding max.poll.interval.ms; its backlog waits in the pipeline. When a second replica joins,
    the slow one gets a revoke: it waits up to the drain timeout for the revoked partitions'
    in-flight work, commits only their completed prefix and releases them. Its late results for
    those partitions are then ignored by the offset tracker (older assignment epoch) and their
    rows are refused by the upsert guard wherever the new owner already wrote a newer record.
    """
    n, partitions, delay_s, poll_ms = 64, 4, 7, 6000
    topic, dlq = new_topic(partitions), new_topic(1, prefix="dlq")
    v1, v2 = versioned("s", n, 50_000), versioned("s", n, 60_000)
    settings = fh.fault_settings(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq,
                                 max_poll_interval_ms=poll_ms, session_timeout_ms=6000, max_batch_size=16,
                                 drain_timeout_s=5)
    fleet = fh.Fleet(settings, tmp_path)
    started = time.monotonic()
    try:
        slow = fleet.start("slow", f"store={delay_s}")
        fleet.wait_up(slow)
        h.wait_for(lambda: _assigned(slow) == partitions, 60, what="slow assigned")
        produced = fh.produce_tracked(kafka_bootstrap, topic, [h.inline(k, v) for k, v in v1.items()])
        # A store batch longer than max.poll.interval.ms goes by: still a member, nothing lost.
        h.wait_for(lambda: slow.metric("clazzify_images_total", {"outcome": "classified"}) > 0, 30,
                   what="first slow batch")
        time.sleep(1.0)
        slow_text = slow.metrics()
        lost_while_slow = h.metric_value(slow_text, "clazzify_rebalances_total", {"kind": "lost"})
        classified_by_slow_alone = h.metric_value(slow_text, "clazzify_images_total", {"outcome": "classified"})
        in_flight_at_join = h.metric_value(slow_text, "clazzify_in_flight_images")
        assert slow.alive() and lost_while_slow == 0 and _assigned(slow) == partitions
        assert in_flight_at_join > 0
        fast = fleet.start("fast")
        h.wait_for(lambda: fast.alive() and _assigned(fast) > 0, 90, what="fast replica assigned")
        produced += fh.produce_tracked(kafka_bootstrap, topic, [h.inline(k, v) for k, v in v2.items()])
        newest = fh.newest_by_id(produced)
        want = {(p.partition, p.offset) for p in newest.values()}
        h.wait_for(lambda: {(r["source_partition"], r["source_offset"]) for r in fh.rows(database_url, db_schema)}
                   == want, 240, interval=1.0, what="every row at its v2 record")
        wait_committed(kafka_bootstrap, settings.group_id, topic, partitions, 2 * n, 120)
        time.sleep(delay_s + 1)  # one more slow batch: a late v1 result must not overwrite v2
        slow_text, fast_text = slow.metrics(), fast.metrics()
        for member in (slow, fast):
            fleet.note_peak(member)
    finally:
        fleet.stop_all()
    counts = fh.check_rows(fh.rows(database_url, db_schema), newest, fh.offline_scores(v2, model), topic)
    classified = {name: h.metric_value(text, "clazzify_images_total", {"outcome": "classified"})
                  for name, text in (("slow", slow_text), ("fast", fast_text))}
    rebalances = {kind: h.metric_value(slow_text, "clazzify_rebalances_total", {"kind": kind})
                  for kind in ("assign", "revoke", "lost")}
    assert h.read_topic(kafka_bootstrap, dlq, 0, timeout=3) == []
    fh.write_figures("slow_processing", {
        **counts, "messages": 2 * n, "store_delay_s": delay_s, "max_poll_interval_ms": poll_ms,
        "lost_while_slow": lost_while_slow, "classified_by_slow_before_join": classified_by_slow_alone,
        "slow_in_flight_at_join": in_flight_at_join,
        "classified": classified, "results_written_more_than_once": sum(classified.values()) - 2 * n,
        "slow_rebalances": rebalances,
        "slow_commit_errors": h.metric_value(slow_text, "clazzify_offset_commits_total", {"result": "error"}),
        "peak_rss_mib": round(fleet.peak_rss / 2**20, 1), "seconds": round(time.monotonic() - started, 1)})


def _assigned(member: fh.Member) -> float:
    try:
        return member.metric("clazzify_assigned_partitions")
    except OSError:
        return 0.0


# ---------------------------------------------------------------------------------- 5
@pytest.mark.slow
def test_zombie_after_sigstop_neither_overwrites_newer_rows_nor_commits(
        kafka_bootstrap, database_url, db_schema, new_topic, model, tmp_path):
    n, partitions, session_ms = 80, 4, 6000
    topic, dlq = new_topic(partitions), new_topic(1, prefix="dlq")
    # v1 and v2 of each id have different colours, so different scores.
    v1 = {f"z-{i}": h.jpeg(70_000 + i, size=(64, 64)) for i in range(n)}
    v2 = {f"z-{i}": h.jpeg(80_000 + i, size=(64, 64)) for i in range(n)}
    settings = fh.fault_settings(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq,
                                 session_timeout_ms=session_ms, max_batch_size=8)
    fleet = fh.Fleet(settings, tmp_path)
    started = time.monotonic()
    try:
        zombie = fleet.start("zombie", "store=3")  # slow store: holds results when frozen
        other = fleet.start("other")
        for member in (zombie, other):
            fleet.wait_up(member)
        h.wait_for(lambda: _assigned(zombie) > 0 and _assigned(other) > 0
                   and _assigned(zombie) + _assigned(other) == partitions, 60, what="both assigned")
        zombie_partitions = _assigned(zombie)
        produced = fh.produce_tracked(kafka_bootstrap, topic, [h.inline(k, v) for k, v in v1.items()])
        h.wait_for(lambda: zombie.metric("clazzify_in_flight_images") > 0, 30, interval=0.1,
                   what="zombie has work in flight")
        time.sleep(1.0)  # its first batch is now inside the slow store stage
        before = zombie.metrics()
        classified_before = h.metric_value(before, "clazzify_images_total", {"outcome": "classified"})
        fleet.signal("zombie", signal.SIGSTOP)
        frozen_at = time.monotonic()
        h.wait_for(lambda: _assigned(other) == partitions, 60, what="the group moved on")
        takeover_s = time.monotonic() - frozen_at
        # Newer records for the same ids, after the takeover: the other replica writes them.
        produced += fh.produce_tracked(kafka_bootstrap, topic, [h.inline(k, v) for k, v in v2.items()])
        newest = fh.newest_by_id(produced)
        want = {(p.partition, p.offset) for p in newest.values()}
        h.wait_for(lambda: {(r["source_partition"], r["source_offset"])
                            for r in fh.rows(database_url, db_schema)} == want, 60, what="rows at v2")
        wait_committed(kafka_bootstrap, settings.group_id, topic, partitions, 2 * n, 30)
        committed_before = fh.committed(kafka_bootstrap, settings.group_id, topic, partitions)
        frozen_s = time.monotonic() - frozen_at
        fleet.signal("zombie", signal.SIGCONT)
        # The zombie wakes with v1 results in hand: it writes them (refused by the upsert guard)
        # and tries to commit (refused: its generation is gone). Watch the committed offsets.
        regressions = []
        deadline = time.monotonic() + 15
        late_results = 0.0
        while time.monotonic() < deadline:
            now = fh.committed(kafka_bootstrap, settings.group_id, topic, partitions)
            regressions += [(p, committed_before[p], o) for p, o in now.items() if o < committed_before[p]]
            try:
                late_results = zombie.metric("clazzify_images_total", {"outcome": "classified"}) - classified_before
            except OSError:
                pass
            if late_results > 0 and time.monotonic() > deadline - 8:
                break
            time.sleep(0.5)
        after = zombie.metrics()
        other_text = other.metrics()
        for member in (zombie, other):
            fleet.note_peak(member)
        rows_after = {(r["source_partition"], r["source_offset"]) for r in fh.rows(database_url, db_schema)}
        committed_after = fh.committed(kafka_bootstrap, settings.group_id, topic, partitions)
    finally:
        fleet.stop_all()
    assert not regressions, regressions
    assert committed_after == committed_before
    assert rows_after == want
    assert late_results > 0, "the zombie never woke up with results (test did not exercise the race)"
    counts = fh.check_rows(fh.rows(database_url, db_schema), newest, fh.offline_scores(v2, model), topic)
    zombie_rebalances = {kind: h.metric_value(after, "clazzify_rebalances_total", {"kind": kind})
                         for kind in ("assign", "revoke", "lost")}
    fh.write_figures("zombie", {
        **counts, "messages": 2 * n, "session_timeout_ms": session_ms, "zombie_partitions": zombie_partitions,
        "frozen_seconds": round(frozen_s, 1), "takeover_seconds": round(takeover_s, 1),
        "zombie_late_results_written_and_refused": late_results,
        "zombie_commit_errors": h.metric_value(after, "clazzify_offset_commits_total", {"result": "error"}),
        "zombie_rebalances": zombie_rebalances, "committed_regressions": len(regressions),
        "other_classified": h.metric_value(other_text, "clazzify_images_total", {"outcome": "classified"}),
        "peak_rss_mib": round(fleet.peak_rss / 2**20, 1), "seconds": round(time.monotonic() - started, 1)})
