"""What this machine can do for each stage alone, with the consumer's own code and settings.

* decode: ``consumer.imaging.preprocess`` (the one preprocessing, DCT-domain downscale) on
  all cores, one thread per core (the decoders release the GIL), over the corpus mix;
* inference: the same ONNX model through ``consumer.inference.Model`` (same session options),
  batches of the consumer's ``max_batch_size`` of real decoded pixels;
* upsert: ``consumer.store.Store.upsert`` (the consumer's statement), batches of
  ``max_batch_size`` fresh rows, one transaction each, into a scratch schema.

Each runs for a fixed wall time after a warm-up and reports items per second.
"""

from __future__ import annotations

import itertools
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import numpy as np

from consumer import imaging
from consumer.inference import Model
from consumer.store import Row, Store


def _timed(step, seconds: float, warmup: int = 1) -> tuple[int, float, float]:  # type: ignore[no-untyped-def]
    """Call ``step()`` (returns items done) until ``seconds`` pass; returns (items, elapsed, cpu seconds).

    CPU seconds are this process's, all threads: unlike wall time they barely move when
    other work shares the machine, so they make a steadier yardstick on a busy host.
    """
    for _ in range(warmup):
        step()
    done, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        done += step()
    return done, time.perf_counter() - started, time.process_time() - cpu


def decode_limit(blobs: list[bytes], workers: int, seconds: float = 8.0) -> dict:
    """Images/s of the consumer's preprocessing on ``workers`` threads, cycling the corpus."""
    stream = itertools.cycle(blobs)
    chunk = [next(stream) for _ in range(len(blobs))]  # one pass over the mix per step

    with ThreadPoolExecutor(max_workers=workers) as pool:
        def step() -> int:
            list(pool.map(imaging.preprocess, chunk))
            return len(chunk)
        done, elapsed, cpu = _timed(step, seconds)
    return {"images_per_s": done / elapsed, "images": done, "seconds": elapsed, "threads": workers,
            "cpu_ms_per_image": 1000 * cpu / done}


def inference_limit(model_path: str, pixels: np.ndarray, batch_size: int, intra_op_threads: int,
                    seconds: float = 8.0) -> dict:
    """Images/s of the model alone at ``batch_size`` (the consumer's session options)."""
    model = Model.load(model_path, "CPUExecutionProvider", intra_op_threads)
    reps = int(np.ceil(batch_size / len(pixels)))
    batch = np.ascontiguousarray(np.concatenate([pixels] * reps)[:batch_size])

    def step() -> int:
        model.predict(batch)
        return batch_size
    done, elapsed, cpu = _timed(step, seconds)
    return {"images_per_s": done / elapsed, "images": done, "seconds": elapsed, "batch_size": batch_size,
            "provider": model.provider, "cpu_ms_per_image": 1000 * cpu / done}


def upsert_limit(database_url: str, batch_size: int, seconds: float = 5.0) -> dict:
    """Rows/s of the consumer's upsert, batches of ``batch_size`` new rows, in a scratch schema."""
    schema = f"bench_up_{uuid.uuid4().hex[:8]}"
    store = Store(database_url, schema)
    store.migrate()
    labels = ["food", "ambiance", "menu", "human"]
    counter = itertools.count()

    def step() -> int:
        now = datetime.now(timezone.utc)
        rows = []
        for _ in range(batch_size):
            n = next(counter)
            scores = {label: 0.25 for label in labels}
            rows.append(Row(image_id=f"img-{n}", model_version="bench", label="food", score=0.25,
                            scores=scores, source_topic="bench", source_partition=n % 4, source_offset=n,
                            uploaded_at=now, classified_at=now))
        store.upsert(rows)
        return batch_size
    try:
        done, elapsed, _cpu = _timed(step, seconds)
    finally:
        store._run(lambda cur: cur.execute(f'DROP SCHEMA "{schema}" CASCADE'))
        store.close()
    return {"rows_per_s": done / elapsed, "rows": done, "seconds": elapsed, "batch_size": batch_size}
