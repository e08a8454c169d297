"""The naive baseline: the original design, one message at a time, nothing overlapped.

poll one record → fetch its bytes (claim-check) or take them (inline) → a plain full
decode and resize with Pillow (no DCT-domain downscale) → ONNX Runtime with a batch of 1 →
one INSERT and one database COMMIT → one synchronous offset commit → next record.

Same model file, same rows, same broker and database as the real consumer, so the
ratio ``e2e / naive`` measures the design, not the setup.

    python -m bench.naive --bootstrap 127.0.0.1:9092 --topic t --database-url postgresql://... \\
        --model bench/out/model.onnx --schema bench_naive --seconds 30

Prints one JSON line: {"images": n, "seconds": s, "images_per_s": r}.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import urllib.request

import numpy as np
import onnxruntime as ort
import psycopg2
from confluent_kafka import Consumer
from PIL import Image

from consumer.events import parse_event

INSERT = """INSERT INTO {schema}.image_classifications
    (image_id, model_version, label, score, scores, source_topic, source_partition, source_offset,
     uploaded_at, classified_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (image_id, model_version) DO NOTHING"""


def run(args: argparse.Namespace) -> dict:
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    labels, version = json.loads(meta["labels"]), meta["model_version"]
    conn = psycopg2.connect(args.database_url)
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.subscribe([args.topic])
    done, first_at, last_at, cpu_at = 0, None, None, 0.0
    deadline = None
    try:
        while done < args.max_images:
            msg = consumer.poll(1.0)
            if deadline is not None and time.monotonic() > deadline:
                break
            if msg is None or msg.error() is not None:
                if first_at is not None and time.monotonic() - last_at > args.idle_s:
                    break
                continue
            if first_at is None:
                first_at, cpu_at = time.monotonic(), time.process_time()
                deadline = first_at + args.seconds
            event = parse_event(msg.key(), msg.value(), msg.headers(), max_image_bytes=20 * 1024 * 1024)
            if event.data is not None:
                data = event.data
            else:
                with urllib.request.urlopen(event.url, timeout=10) as response:
                    data = response.read()
            image = Image.open(io.BytesIO(data)).convert("RGB").resize((227, 227), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)[np.newaxis]
            (scores,) = session.run(["scores"], {"image": pixels})
            top = int(np.argmax(scores[0]))
            with conn.cursor() as cur:
                cur.execute(INSERT.format(schema=args.schema),
                            (event.image_id, version, labels[top], float(scores[0][top]),
                             json.dumps({k: float(v) for k, v in zip(labels, scores[0])}),
                             msg.topic(), msg.partition(), msg.offset(), event.uploaded_at))
            conn.commit()
            consumer.commit(message=msg, asynchronous=False)
            done += 1
            last_at = time.monotonic()
    finally:
        consumer.close()
        conn.close()
    elapsed = (last_at - first_at) if first_at is not None and last_at is not None else 0.0
    # The clock starts when the first record arrives, so the first image's work counts: n / elapsed.
    cpu = time.process_time() - cpu_at if first_at is not None else 0.0
    return {"images": done, "seconds": elapsed, "images_per_s": done / elapsed if elapsed else 0.0,
            "cpu_ms_per_image": 1000 * cpu / done if done else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.naive", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", default="bench-naive")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--schema", required=True, help="schema with image_classifications (migrated already)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--seconds", type=float, default=30.0, help="stop after this long (from the first record)")
    parser.add_argument("--max-images", type=int, default=10**9)
    parser.add_argument("--idle-s", type=float, default=5.0, help="stop when nothing arrived for this long")
    print(json.dumps(run(parser.parse_args(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
