"""Operator commands and the synchronous endpoint, against the real broker and database."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from consumer.deadletter import H_REASON
from consumer.operate import H_REDRIVE_COUNT
from tests.support import harness as h
from tests.support.httpserver import ObjectStore


@pytest.fixture
def model(tmp_path):
    return h.model_file(tmp_path)


def cli(settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "consumer", *args], env=h.env_for(settings), cwd=h.ROOT,
                          capture_output=True, text=True, timeout=120)


def test_replay_resets_offsets_to_a_time_and_refuses_while_consumers_run(
        kafka_bootstrap, database_url, db_schema, new_topic, model):
    topic, dlq = new_topic(2), new_topic(1, prefix="dlq")
    settings = h.settings_for(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq)
    h.produce(kafka_bootstrap, topic, [h.inline(f"old-{i}", h.jpeg(i)) for i in range(10)])
    time.sleep(1.5)
    cut = int(time.time() * 1000)
    time.sleep(0.5)
    h.produce(kafka_bootstrap, topic, [h.inline(f"new-{i}", h.jpeg(50 + i)) for i in range(6)])
    with h.running_app(settings):
        h.wait_rows(database_url, db_schema, 16)
        refused = cli(settings, "replay", "--from", str(cut))
    assert refused.returncode == 3 and "live member" in refused.stdout
    before = h.committed(kafka_bootstrap, settings.group_id, topic, 2)
    assert sum(before.values()) == 16
    dry = cli(settings, "replay", "--from", str(cut), "--dry-run")
    assert dry.returncode == 0 and "dry run" in dry.stdout
    assert h.committed(kafka_bootstrap, settings.group_id, topic, 2) == before
    done = cli(settings, "replay", "--from", str(cut))
    assert done.returncode == 0, done.stdout + done.stderr
    after = h.committed(kafka_bootstrap, settings.group_id, topic, 2)
    assert sum(after.values()) == 10  # back to the first record at/after the cut: the 6 new ones again
    with h.running_app(settings) as running:
        h.wait_for(lambda: h.metric_value(running.get("/metrics")[1], "clazzify_images_total",
                                          {"outcome": "classified"}) >= 6, 60, what="replayed records")
        time.sleep(1)
        text = running.get("/metrics")[1]
    assert h.metric_value(text, "clazzify_images_total", {"outcome": "classified"}) == 6
    assert len(h.rows(database_url, db_schema)) == 16  # replay changed nothing in the table


def test_redrive_republishes_dead_letters_filtered_by_reason(
        kafka_bootstrap, database_url, db_schema, new_topic, model):
    topic, dlq = new_topic(2), new_topic(1, prefix="dlq")
    with ObjectStore("127.0.0.2") as store:
        flaky = store.status("/flaky.jpg", 404)  # 404 now; the object appears later
        records = [h.claim_check("late-object", flaky), h.inline("broken", b"not an image at all"),
                   h.inline("fine", h.jpeg(3))]
        h.produce(kafka_bootstrap, topic, records)
        settings = h.settings_for(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq)
        with h.running_app(settings) as running:
            h.wait_rows(database_url, db_schema, 1)
            letters = h.read_topic(kafka_bootstrap, dlq, 2)
            assert sorted(dict(m.headers())[H_REASON] for m in letters) == [b"http_404", b"not_an_image"]
            store.put("/flaky.jpg", h.jpeg(77))  # the object store caught up
            dry = cli(settings, "redrive", "--reason", "http_404", "--dry-run")
            assert dry.returncode == 0 and "would redrive 1 " in dry.stdout, dry.stdout + dry.stderr
            out = cli(settings, "redrive", "--reason", "http_404")
            assert out.returncode == 0 and "redrove 1 " in out.stdout, out.stdout + out.stderr
            got = h.wait_rows(database_url, db_schema, 2)
            again = cli(settings, "redrive", "--reason", "http_404")  # progress is remembered
            assert "redrove 0 " in again.stdout
            time.sleep(1)
            text = running.get("/metrics")[1]
    assert {r["image_id"] for r in got} == {"fine", "late-object"}
    row = next(r for r in got if r["image_id"] == "late-object")
    np.testing.assert_allclose([row["scores"][k] for k in ("food", "ambiance", "menu", "human")],
                               h.expected_scores(h.jpeg(77), model), atol=1e-6)
    inputs = h.read_topic(kafka_bootstrap, topic, 4)
    redriven = [m for m in inputs if m.key() == b"late-object" and dict(m.headers() or []).get(H_REDRIVE_COUNT)]
    assert len(redriven) == 1 and dict(redriven[0].headers())[H_REDRIVE_COUNT] == b"1"
    assert H_REASON not in dict(redriven[0].headers())
    assert h.metric_value(text, "clazzify_dead_letters_total") == 2  # "broken" was not redriven


def _post(port: int, body: bytes, content_type: str, token: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/classify", data=body, method="POST",
                                 headers={"Content-Type": content_type,
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_sync_classify_endpoint(kafka_bootstrap, database_url, db_schema, new_topic, model):
    topic, dlq = new_topic(1), new_topic(1, prefix="dlq")
    settings = h.settings_for(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq,
                              classify_token="s3cret-token", classify_rate_per_s=5, fetch_max_bytes=500_000)
    image = h.jpeg(11)
    with ObjectStore("127.0.0.2") as store, h.running_app(settings) as running:
        port = running.port
        code, body = _post(port, image, "image/jpeg", "s3cret-token")
        assert code == 200
        want = h.expected_scores(image, model)
        np.testing.assert_allclose([body["scores"][k] for k in ("food", "ambiance", "menu", "human")], want,
                                   atol=1e-6)
        assert body["label"] == ["food", "ambiance", "menu", "human"][int(np.argmax(want))]
        url = store.put("/x.jpg", image)
        code, body = _post(port, json.dumps({"url": url}).encode(), "application/json", "s3cret-token")
        assert code == 200 and body["scores"]["food"] == pytest.approx(float(want[0]), abs=1e-6)
        assert _post(port, image, "image/jpeg")[0] == 401
        assert _post(port, image, "image/jpeg", "wrong")[0] == 401
        code, body = _post(port, b"garbage", "image/jpeg", "s3cret-token")
        assert code == 422 and body["error"] == "not_an_image"
        code, body = _post(port, json.dumps({"url": "http://169.254.169.254/"}).encode(), "application/json",
                           "s3cret-token")
        assert code == 422 and body["error"] == "forbidden_address"
        assert _post(port, b"x" * 600_000, "image/jpeg", "s3cret-token")[0] == 413
        time.sleep(1.5)  # refill the bucket, then a burst of 12 at once: 5/s with a burst of 5
        with ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(lambda _: _post(port, image, "image/jpeg", "s3cret-token")[0], range(12)))
        assert codes.count(429) >= 4 and codes.count(200) >= 4, codes
    assert h.rows(database_url, db_schema) == []  # synchronous answers write no rows
