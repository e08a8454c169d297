"""``make demo``: publish a few dozen real and generated photos, classify them, print the rows.

Needs the local services running (``make services``; ``make demo`` does it) and
their endpoints in the environment (``.services/env``). Steps:

1. write the demo model (``tools/testmodel.py``: a tiny mean-colour classifier,
   labels food/ambiance/menu/human — a stand-in until a trained model is exported);
2. migrate the schema and create the topics;
3. publish photos shipped with scikit-image (inline bytes) and generated ones
   (served by a local HTTP object store, as claim-check URL events), plus one
   corrupt upload to show the dead-letter path;
4. start ``python -m consumer`` in the background, wait until every image is
   classified or dead-lettered, print the rows as a table and where /metrics is.

    python -m tools.demo [--count 36]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import psycopg2
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from PIL import Image

from tools import testmodel

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".services"


def _photos(count: int) -> list[tuple[str, bytes]]:
    """Real photographs from scikit-image's bundled data, then generated scenes."""
    out: list[tuple[str, bytes]] = []
    try:
        from skimage import data as skdata
        for name in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
                     "motorcycle_left", "retina", "camera", "page", "text", "coins", "moon", "horse"):
            try:
                arr = getattr(skdata, name)()
            except Exception:  # noqa: BLE001 - some need an optional download: skip those
                continue
            if arr.dtype != np.uint8:
                arr = (arr.astype(np.float64) / max(arr.max(), 1) * 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(arr).convert("RGB").save(buf, "JPEG", quality=90)
            out.append((f"skimage-{name}", buf.getvalue()))
    except ImportError:
        pass
    rng = np.random.default_rng(2026)
    while len(out) < count:
        i = len(out)
        base = rng.integers(0, 256, 3)
        arr = np.clip(base + rng.normal(0, 25, (480, 640, 3)) + np.linspace(-40, 40, 640)[None, :, None],
                      0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr, "RGB").save(buf, "JPEG", quality=88)
        out.append((f"generated-{i:03d}", buf.getvalue()))
    return out[:count]


def _table(rows: list[tuple]) -> str:
    header = ("image_id", "label", "score", "partition", "offset", "model_version")
    cells = [header] + [(r[0], r[1], f"{r[2]:.3f}", str(r[3]), str(r[4]), r[5]) for r in rows]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(header))]
    lines = ["  ".join(str(c[i]).ljust(widths[i]) for i in range(len(header))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=36, help="images to publish (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for all rows")
    parser.add_argument("--metrics-port", type=int, default=9100, help="port for the consumer's /metrics")
    args = parser.parse_args(argv)
    bootstrap = os.environ.get("CLAZZIFY_KAFKA_BOOTSTRAP")
    db_url = os.environ.get("CLAZZIFY_DATABASE_URL")
    if not bootstrap or not db_url:
        print("CLAZZIFY_KAFKA_BOOTSTRAP / CLAZZIFY_DATABASE_URL not set: run `make services` and "
              "`. .services/env` first (or simply `make demo`).", file=sys.stderr)
        return 2
    run_id = time.strftime("%H%M%S")
    topic, dlq = "image-uploaded", "image-uploaded.dlq"
    model_path = ROOT / "models" / "demo.onnx"
    model_path.parent.mkdir(exist_ok=True)
    onnx.save(testmodel.build(version="demo-mean-colour-v1"), model_path)

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for name, parts in ((topic, 4), (dlq, 1)):
        futures = admin.create_topics([NewTopic(name, parts, 1)])
        try:
            futures[name].result(30)
        except Exception as exc:  # noqa: BLE001 - already exists on a second run
            if "already exists" not in str(exc).lower():
                raise
    env = {**os.environ, "CLAZZIFY_MODEL_PATH": str(model_path), "CLAZZIFY_INPUT_TOPIC": topic,
           "CLAZZIFY_DLQ_TOPIC": dlq, "CLAZZIFY_GROUP_ID": "clazzify-demo",
           "CLAZZIFY_METRICS_PORT": str(args.metrics_port), "CLAZZIFY_METRICS_HOST": "127.0.0.1",
           "CLAZZIFY_FETCH_ALLOWED_NETWORKS": "127.0.0.2/32", "CLAZZIFY_LOG_FORMAT": "text",
           "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "consumer", "migrate"], env=env, check=True, cwd=ROOT)

    from tests.support.httpserver import ObjectStore  # a local object store for claim-check URLs
    photos = _photos(args.count)
    store = ObjectStore("127.0.0.2").__enter__()
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    ids = []
    for i, (name, data) in enumerate(photos):
        image_id = f"{run_id}-{name}"
        ids.append(image_id)
        if i % 3 == 2:
            url = store.put(f"/uploads/{image_id}.jpg", data)
            producer.produce(topic, key=image_id, value=json.dumps(
                {"image_id": image_id, "url": url, "uploaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ")}))
        else:
            producer.produce(topic, key=image_id, value=data, headers=[("content-type", "image/jpeg")])
    bad_id = f"{run_id}-corrupt-upload"
    producer.produce(topic, key=bad_id, value=photos[0][1][:500], headers=[("content-type", "image/jpeg")])
    producer.flush(30)
    print(f"published {len(ids)} images (+1 corrupt) to {topic}")

    log = open(STATE / "demo-consumer.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "consumer", "run"], env=env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    (STATE / "demo-consumer.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + args.timeout
    rows: list[tuple] = []
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"the consumer exited with {proc.returncode}; see {STATE / 'demo-consumer.log'}", file=sys.stderr)
            return 1
        with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
            cur.execute("SELECT image_id, label, score, source_partition, source_offset, model_version "
                        "FROM image_classifications WHERE image_id = ANY(%s) ORDER BY image_id", (ids,))
            rows = cur.fetchall()
        if len(rows) == len(ids):
            break
        time.sleep(0.5)
    print(_table(rows))
    print(f"\n{len(rows)}/{len(ids)} images classified; the corrupt upload went to {dlq} "
          f"(see clazzify_dead_letters_total).")
    print(f"metrics:   http://127.0.0.1:{args.metrics_port}/metrics   (also /healthz, /readyz)")
    print(f"consumer:  pid {proc.pid}, log {STATE / 'demo-consumer.log'}")
    print("stop with: make demo-stop   (stops the consumer and the local Kafka and PostgreSQL)")
    store.__exit__(None, None, None)
    if len(rows) != len(ids):
        os.kill(proc.pid, signal.SIGTERM)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
