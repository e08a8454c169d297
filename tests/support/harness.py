"""Helpers shared by the integration tests: images, producing, running consumers, reading rows."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg2
from confluent_kafka import Consumer, Producer, TopicPartition
from PIL import Image

from consumer import imaging
from consumer.app import App
from consumer.metrics import Metrics
from consumer.settings import Settings
from tools import testmodel
from tools.scrape import free_port, http_get, metric_value  # noqa: F401 - re-exported for tests

ROOT = Path(__file__).resolve().parents[2]


def jpeg(seed: int, size: tuple[int, int] = (320, 240), quality: int = 90) -> bytes:
    """A deterministic photo-like JPEG whose mean colour depends on ``seed``."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 256, 3)
    grad = np.linspace(0, 60, w)[None, :, None]
    noise = rng.integers(0, 50, (h, w, 3))
    arr = np.clip(base[None, None, :] * 0.8 + grad + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def model_file(tmp_dir: Path, **kw) -> Path:
    path = tmp_dir / "model.onnx"
    import onnx
    onnx.save(testmodel.build(**kw), path)
    return path


def settings_for(kafka_bootstrap: str, database_url: str, schema: str, topic: str, model: Path,
                 **overrides) -> Settings:
    values = dict(kafka_bootstrap=kafka_bootstrap, database_url=database_url, database_schema=schema,
                  input_topic=topic, dlq_topic=f"{topic}.dlq", group_id=f"g-{uuid.uuid4().hex[:8]}",
                  model_path=model, metrics_port=0, metrics_host="127.0.0.1",
                  fetch_allowed_networks="127.0.0.2/32", max_batch_wait_ms=100, retry_initial_s=0.2,
                  session_timeout_ms=10000, drain_timeout_s=10)
    values.update(overrides)
    return Settings.model_validate(values)


def env_for(settings: Settings) -> dict[str, str]:
    """The settings as CLAZZIFY_* variables, for a consumer in a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAZZIFY_")}
    for name, value in settings:
        raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[f"CLAZZIFY_{name.upper()}"] = str(raw)
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes, list | None]],
            partition: int | None = None) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "message.max.bytes": 20_000_000,
                         "enable.idempotence": True})
    errors: list = []
    for key, value, headers in records:
        kwargs = {"partition": partition} if partition is not None else {}
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=headers,
                                 on_delivery=lambda err, _m: err and errors.append(err), **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0 and not errors, errors


def inline(image_id: str, data: bytes) -> tuple[bytes, bytes, list]:
    return image_id.encode(), data, [("content-type", b"image/jpeg")]


def claim_check(image_id: str, url: str, **extra) -> tuple[bytes, bytes, list]:
    doc = {"image_id": image_id, "url": url, "uploaded_at": "2026-12-01T12:00:00Z", **extra}
    return image_id.encode(), json.dumps(doc).encode(), []


def expected_scores(data: bytes, model_path: Path) -> np.ndarray:
    """What ONNX Runtime says offline for the same bytes, through the same preprocessing."""
    import onnxruntime as ort
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    pixels = imaging.preprocess(data)[np.newaxis]
    return session.run(["scores"], {"image": pixels})[0][0]


def rows(database_url: str, schema: str) -> list[dict]:
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(f'SELECT image_id, model_version, label, score, scores, source_topic, source_partition, '
                        f'source_offset, uploaded_at, classified_at FROM "{schema}".image_classifications')
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]
    except psycopg2.errors.UndefinedTable:
        return []
    finally:
        conn.close()


def wait_for(predicate, timeout: float, interval: float = 0.25, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_rows(database_url: str, schema: str, n: int, timeout: float = 120) -> list[dict]:
    return wait_for(lambda: (lambda r: r if len(r) >= n else None)(rows(database_url, schema)), timeout,
                    what=f"{n} rows")


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list:
    """All records of ``topic`` from the beginning (at least ``expected`` of them)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(out) < expected:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                out.append(msg)
        # a little longer, to catch records beyond what was expected
        end = time.monotonic() + 2
        while time.monotonic() < end:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                out.append(msg)
    finally:
        consumer.close()
    return out


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


@dataclass
class RunningApp:
    app: App
    thread: threading.Thread

    @property
    def port(self) -> int:
        assert self.app.http is not None
        return self.app.http.port

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


@contextmanager
def running_app(settings: Settings) -> Iterator[RunningApp]:
    """A consumer in this process (its own metrics registry), stopped gracefully at the end."""
    app = App(settings, Metrics())
    app.start()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            app.run()
        except BaseException as exc:  # noqa: BLE001 - surface in the test
            errors.append(exc)

    thread = threading.Thread(target=target, name="app", daemon=True)
    thread.start()
    try:
        yield RunningApp(app, thread)
    finally:
        app.request_stop()
        thread.join(timeout=60)
    assert not thread.is_alive(), "consumer did not stop"
    assert not errors, errors


def spawn(settings: Settings, log_path: Path, **env_overrides: str) -> subprocess.Popen:
    """A consumer as a separate process (`python -m consumer`), for signals and kill -9."""
    env = env_for(settings)
    env.update(env_overrides)
    log = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "consumer", "run"], env=env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


