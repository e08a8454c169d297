"""A bad model or a bug in a stage must neither block partitions nor stall silently."""

from __future__ import annotations

import io

import numpy as np
import onnx
from PIL import Image

from consumer.deadletter import H_REASON, H_STAGE
from tests.support import harness as h
from tools import testmodel


def flat_jpeg(level: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((240, 320, 3), level, np.uint8), "RGB").save(buf, "JPEG", quality=95)
    return buf.getvalue()


def test_nan_scores_are_dead_lettered_not_stored(kafka_bootstrap, database_url, db_schema, new_topic, tmp_path):
    model = tmp_path / "poisoned.onnx"
    onnx.save(testmodel.build(poison=True), model)
    topic, dlq = new_topic(2), new_topic(1, prefix="dlq")
    records = [h.inline(f"dark-{i}", flat_jpeg(20 + i)) for i in range(3)]
    records += [h.inline(f"bright-{i}", flat_jpeg(200 + i)) for i in range(3)]
    h.produce(kafka_bootstrap, topic, records)
    settings = h.settings_for(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq)
    with h.running_app(settings):
        rows = h.wait_rows(database_url, db_schema, 3)
        letters = h.read_topic(kafka_bootstrap, dlq, 3)
    assert {r["image_id"] for r in rows} == {f"bright-{i}" for i in range(3)}
    assert all(np.isfinite(list(r["scores"].values())).all() for r in rows)
    assert sorted(m.key() for m in letters) == [f"dark-{i}".encode() for i in range(3)]
    for m in letters:
        headers = dict(m.headers())
        assert headers[H_STAGE] == b"inference" and headers[H_REASON] == b"non_finite_scores"


def test_a_crashed_stage_exits_non_zero_and_a_restart_loses_nothing(
        kafka_bootstrap, database_url, db_schema, new_topic, tmp_path):
    model = h.model_file(tmp_path)
    topic, dlq = new_topic(2), new_topic(1, prefix="dlq")
    h.produce(kafka_bootstrap, topic, [h.inline(f"c-{i}", h.jpeg(i)) for i in range(20)])
    settings = h.settings_for(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq)
    proc = h.spawn(settings, tmp_path / "bug.log", CLAZZIFY_FAULT_POINTS="before_upsert^")
    try:
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "bug.log").read_text()
    assert code == 1, log[-2000:]
    assert "stage_crashed" in log and "simulated bug" in log
    assert h.rows(database_url, db_schema) == []
    # nothing past the first record was committed (0 or none): every record will be read again
    assert all(offset <= 0 for offset in h.committed(kafka_bootstrap, settings.group_id, topic, 2).values())
    proc = h.spawn(settings, tmp_path / "ok.log")
    try:
        rows = h.wait_rows(database_url, db_schema, 20)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert len(rows) == 20
