"""The consumer against the real broker and database (issue 2's "done when")."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

from consumer.deadletter import (H_MESSAGE, H_OFFSET, H_PARTITION, H_REASON, H_STAGE, H_TIMESTAMP, H_TOPIC)
from tests.support import harness as h
from tests.support.httpserver import ObjectStore


@pytest.fixture
def model(tmp_path):
    return h.model_file(tmp_path)


@pytest.fixture
def topic(new_topic):
    return new_topic(4)


@pytest.fixture
def dlq(new_topic):
    return new_topic(1, prefix="dlq")


def test_n_messages_over_four_partitions_give_n_rows_with_offline_scores(
        kafka_bootstrap, database_url, db_schema, topic, dlq, model):
    n = 120
    images = {f"img-{i}": h.jpeg(i) for i in range(n)}
    h.produce(kafka_bootstrap, topic, [h.inline(k, v) for k, v in images.items()])
    settings = h.settings_for(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq, max_batch_size=32)
    from consumer.store import Store
    Store(database_url, db_schema).migrate()
    with h.running_app(settings):
        got = h.wait_rows(database_url, db_schema, n)
        time.sleep(1.0)  # anything extra would show up now
        got = h.rows(database_url, db_schema)
    assert len(got) == n == len({r["image_id"] for r in got})
    assert {r["source_partition"] for r in got} == {0, 1, 2, 3}
    labels = ["food", "ambiance", "menu", "human"]
    for row in got:
        want = h.expected_scores(images[row["image_id"]], model)
        have = np.array([row["scores"][label] for label in labels])
        np.testing.assert_allclose(have, want, rtol=0, atol=1e-6)
        assert row["label"] == labels[int(np.argmax(want))]
        assert row["score"] == pytest.approx(float(want.max()), abs=1e-6)
        assert row["model_version"].startswith("test-") and row["source_topic"] == topic
        assert row["classified_at"] is not None


def test_url_and_inline_events_both_classified(kafka_bootstrap, database_url, db_schema, topic, dlq, model):
    with ObjectStore("127.0.0.2") as store:
        records = [h.claim_check(f"url-{i}", store.put(f"/u{i}.jpg", h.jpeg(100 + i)), restaurant=i)
                   for i in range(10)]
        records += [h.inline(f"inl-{i}", h.jpeg(200 + i)) for i in range(10)]
        h.produce(kafka_bootstrap, topic, records)
        settings = h.settings_for(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq)
        with h.running_app(settings) as running:
            got = h.wait_rows(database_url, db_schema, 20)
            status, body = running.get("/readyz")
    ids = {r["image_id"] for r in got}
    assert ids == {f"url-{i}" for i in range(10)} | {f"inl-{i}" for i in range(10)}
    url_row = next(r for r in got if r["image_id"] == "url-3")
    assert url_row["uploaded_at"].isoformat() == "2026-12-01T12:00:00+00:00"
    np.testing.assert_allclose([url_row["scores"][k] for k in ("food", "ambiance", "menu", "human")],
                               h.expected_scores(h.jpeg(103), model), atol=1e-6)
    assert status == 200 and '"ready": true' in body


def test_bad_inputs_dead_lettered_with_headers_while_batchmates_get_rows(
        kafka_bootstrap, database_url, db_schema, topic, dlq, model):
    good = h.jpeg(7)
    with ObjectStore("127.0.0.2") as store:
        missing_url = store.url("/missing.jpg")  # 404
        records = [h.inline("good-1", good), h.inline("corrupt", good[: len(good) // 3]),
                   ("text".encode(), b"this is not an image", [("content-type", b"image/jpeg")]),
                   h.claim_check("gone", missing_url), h.inline("good-2", h.jpeg(8))]
        h.produce(kafka_bootstrap, topic, records, partition=0)
        settings = h.settings_for(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq, max_batch_wait_ms=500)
        with h.running_app(settings) as running:
            got = h.wait_rows(database_url, db_schema, 2)
            letters = h.read_topic(kafka_bootstrap, dlq, 3)
            metrics = h.wait_for(lambda: (lambda t: t if h.metric_value(
                t, "clazzify_dead_letters_total") >= 3 else None)(running.get("/metrics")[1]), 30, what="dlq metrics")
    assert {r["image_id"] for r in got} == {"good-1", "good-2"}
    by_key = {m.key(): m for m in letters}
    assert set(by_key) == {b"corrupt", b"text", b"gone"}
    expected = {b"corrupt": ("decode", "corrupt_image"), b"text": ("decode", "not_an_image"),
                b"gone": ("fetch", "http_404")}
    for key, (stage, reason) in expected.items():
        msg = by_key[key]
        headers = {k: v for k, v in msg.headers()}
        assert headers[H_STAGE] == stage.encode() and headers[H_REASON] == reason.encode()
        assert headers[H_TOPIC] == topic.encode() and headers[H_PARTITION] == b"0"
        assert int(headers[H_OFFSET]) in range(5) and int(headers[H_TIMESTAMP]) > 0 and headers[H_MESSAGE]
        original = next(r for r in records if r[0] == key)
        assert msg.value() == original[1]  # produced unchanged
    assert h.metric_value(metrics, "clazzify_dead_letters_total", {"reason": "http_404"}) == 1
    assert h.metric_value(metrics, "clazzify_images_total", {"outcome": "dead_lettered"}) == 3
    assert h.metric_value(metrics, "clazzify_images_total", {"outcome": "classified"}) == 2


def test_thin_traffic_waits_at_most_max_batch_wait_and_backlog_fills_batches(
        kafka_bootstrap, database_url, db_schema, topic, dlq, model):
    settings = h.settings_for(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq,
                              max_batch_size=16, max_batch_wait_ms=300)
    # Backlog first: 160 records waiting before the consumer starts → full batches.
    h.produce(kafka_bootstrap, topic, [h.inline(f"b-{i}", h.jpeg(i)) for i in range(160)])
    with h.running_app(settings) as running:
        h.wait_rows(database_url, db_schema, 160)
        text = running.get("/metrics")[1]
        batches = h.metric_value(text, "clazzify_batch_size_count")
        images = h.metric_value(text, "clazzify_batch_size_sum")
        full = h.metric_value(text, "clazzify_batch_size_bucket", {"le": "16.0"}) - \
            h.metric_value(text, "clazzify_batch_size_bucket", {"le": "8.0"})
        assert images == 160
        assert full / batches >= 0.75, (batches, full)  # most batches are full under a backlog
        # Thin traffic: one record at a time, each row must appear within wait + processing.
        latencies = []
        for i in range(5):
            sent = time.monotonic()
            h.produce(kafka_bootstrap, topic, [h.inline(f"thin-{i}", h.jpeg(500 + i))])
            h.wait_for(lambda: any(r["image_id"] == f"thin-{i}" for r in h.rows(database_url, db_schema)), 10,
                       interval=0.02)
            latencies.append(time.monotonic() - sent)
        text = running.get("/metrics")[1]
    singles = h.metric_value(text, "clazzify_batch_size_bucket", {"le": "1.0"})
    assert singles >= 5  # each thin record went out alone, not held for a full batch
    assert max(latencies) < 0.3 + 1.5, latencies  # the 300 ms wait, plus poll, produce, inference, commit


def test_two_consumers_split_partitions_and_classify_each_image_once(
        kafka_bootstrap, database_url, db_schema, topic, dlq, model):
    n = 200
    settings = h.settings_for(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq, max_batch_size=16)
    with h.running_app(settings) as a, h.running_app(settings) as b:
        h.wait_for(lambda: a.app.tracker.partitions() and b.app.tracker.partitions()
                   and len(a.app.tracker.partitions()) + len(b.app.tracker.partitions()) == 4, 60,
                   what="both consumers assigned")
        pa, pb = set(a.app.tracker.partitions()), set(b.app.tracker.partitions())
        assert not pa & pb and len(pa | pb) == 4
        h.produce(kafka_bootstrap, topic, [h.inline(f"two-{i}", h.jpeg(i)) for i in range(n)])
        h.wait_rows(database_url, db_schema, n)
        time.sleep(1)
        ta, tb = a.get("/metrics")[1], b.get("/metrics")[1]
    got = h.rows(database_url, db_schema)
    assert len(got) == n
    done_a = h.metric_value(ta, "clazzify_images_total", {"outcome": "classified"})
    done_b = h.metric_value(tb, "clazzify_images_total", {"outcome": "classified"})
    assert done_a > 0 and done_b > 0 and done_a + done_b == n  # nobody classified an image twice


def test_sigterm_then_restart_resumes_from_committed_offsets(
        kafka_bootstrap, database_url, db_schema, topic, dlq, model, tmp_path):
    settings = h.settings_for(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq,
                              metrics_port=h.free_port())
    from consumer.store import Store
    Store(database_url, db_schema).migrate()
    h.produce(kafka_bootstrap, topic, [h.inline(f"s-{i}", h.jpeg(i)) for i in range(100)])
    proc = h.spawn(settings, tmp_path / "c1.log")
    try:
        h.wait_rows(database_url, db_schema, 100, timeout=120)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    first = {r["image_id"]: r["classified_at"] for r in h.rows(database_url, db_schema)}
    offsets = h.committed(kafka_bootstrap, settings.group_id, topic, 4)
    assert sum(offsets.values()) == 100  # every record committed before exit
    h.produce(kafka_bootstrap, topic, [h.inline(f"s2-{i}", h.jpeg(1000 + i)) for i in range(20)])
    proc = h.spawn(settings, tmp_path / "c2.log")
    try:
        h.wait_rows(database_url, db_schema, 120, timeout=120)
        time.sleep(2)
        metrics = h.http_get(settings.metrics_port, "/metrics")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    after = {r["image_id"]: r["classified_at"] for r in h.rows(database_url, db_schema)}
    assert len(after) == 120
    # Nothing committed was processed again: the first 100 rows were not touched.
    assert all(after[k] == v for k, v in first.items())
    # The restarted consumer classified exactly the 20 new records: nothing committed was redone.
    assert h.metric_value(metrics, "clazzify_images_total", {"outcome": "classified"}) == 20


def test_metrics_show_the_design_families_with_matching_values(
        kafka_bootstrap, database_url, db_schema, topic, dlq, model):
    n = 40
    h.produce(kafka_bootstrap, topic, [h.inline(f"m-{i}", h.jpeg(i)) for i in range(n)]
              + [h.inline("m-bad", b"definitely not a jpeg")])
    settings = h.settings_for(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq)
    with h.running_app(settings) as running:
        h.wait_rows(database_url, db_schema, n)
        # lag is sampled every few seconds: wait until it reports the drained partitions
        text = h.wait_for(lambda: (lambda t: t if 'clazzify_consumer_lag{' in t and h.metric_value(
            t, "clazzify_consumer_lag") == 0 and h.metric_value(t, "clazzify_offset_commits_total",
                                                                {"result": "ok"}) > 0 else None)(
            running.get("/metrics")[1]), 30, what="lag and commits in /metrics")
        ready = running.get("/readyz")
        live = running.get("/healthz")
    rows = h.rows(database_url, db_schema)
    by_label: dict[str, int] = {}
    for row in rows:
        by_label[row["label"]] = by_label.get(row["label"], 0) + 1
    for label, count in by_label.items():
        assert h.metric_value(text, "clazzify_images_total", {"outcome": "classified", "label": label}) == count
    assert h.metric_value(text, "clazzify_images_total", {"outcome": "dead_lettered"}) == 1
    assert h.metric_value(text, "clazzify_dead_letters_total", {"stage": "decode", "reason": "not_an_image"}) == 1
    assert h.metric_value(text, "clazzify_batch_size_sum") == n + 1
    assert h.metric_value(text, "clazzify_end_to_end_latency_seconds_count") == n + 1
    for stage in ("decode", "inference", "store", "commit", "deadletter"):
        assert h.metric_value(text, "clazzify_stage_seconds_count", {"stage": stage}) > 0, stage
    assert h.metric_value(text, "clazzify_in_flight_images") == 0
    assert h.metric_value(text, "clazzify_assigned_partitions") == 4
    assert h.metric_value(text, "clazzify_rebalances_total", {"kind": "assign"}) >= 1
    assert h.metric_value(text, "clazzify_backlog_seconds") == 0
    assert h.metric_value(text, "clazzify_model_info", {"labels": "food,ambiance,menu,human"}) == 1
    assert h.metric_value(text, "clazzify_ready") == 1
    assert h.metric_value(text, "process_resident_memory_bytes") > 0
    assert {f'partition="{p}"' for p in range(4)} <= {s for s in (f'partition="{p}"' for p in range(4)) if s in text}
    assert ready[0] == 200 and live[0] == 200


def test_every_metric_in_dashboards_and_alerts_is_in_a_live_scrape(
        kafka_bootstrap, database_url, db_schema, topic, dlq, model):
    from tests.unit.deploy.promql_check import (STANDARD_METRICS, deploy_expressions, exported_names,
                                                recorded_names, unknown_metrics)
    h.produce(kafka_bootstrap, topic, [h.inline(f"p-{i}", h.jpeg(i)) for i in range(8)])
    settings = h.settings_for(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq)
    with h.running_app(settings) as running:
        h.wait_rows(database_url, db_schema, 8)
        scrape = running.get("/metrics")[1]
    exported = exported_names(scrape)
    assert "clazzify_backlog_seconds" in exported and "clazzify_images_total" in exported
    expressions = deploy_expressions()
    assert len(expressions) >= 10
    assert not unknown_metrics(expressions, exported, STANDARD_METRICS | recorded_names())
