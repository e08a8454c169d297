"""The processing pipeline: prepare (fetch + decode) → inference → store, overlapped.

The Kafka consumer is not thread-safe, so it stays on the main thread (see
:mod:`consumer.app`); this module owns everything after a record is polled::

    main thread ──start_preparing(item), as each record is polled──►
                                   prepare pool (fetch with retries, decode; N threads)
    main thread ──submit(batch), when the batch closes──► q_infer
                                   │ futures, in batch order
                  q_infer (bounded)▼
                              inference thread (one ONNX session)
                  q_store (bounded)▼
                              store thread (one transaction per batch, then dead letters)
                                   │
    main thread ◄──completions─────┘  (marks offsets done, commits the prefix)

Each image carries its own result or its own error: one bad image never fails
its batch. Transient store/dead-letter failures are retried here with
backoff; the queues fill, the main thread sees in-flight grow and pauses
the partitions (backpressure), and readiness turns false.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from consumer import imaging
from consumer.deadletter import DeadLetter, DeadLetterProducer
from consumer.errors import (STAGE_DEADLETTER, STAGE_DECODE, STAGE_FETCH, STAGE_INFERENCE, STAGE_STORE,
                             ClazzifyError, PermanentError, TransientError)
from consumer.events import Event
from consumer.faults import Faults
from consumer.fetch import Fetcher
from consumer.inference import Model
from consumer.metrics import OUTCOME_CLASSIFIED, OUTCOME_DEAD_LETTERED, Metrics
from consumer.store import Row, Store

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Item:
    """One image on its way through the pipeline: a Kafka record, or a synchronous request."""

    topic: str | None
    partition: int
    offset: int
    epoch: int
    timestamp_ms: int
    key: bytes | None = None
    value: bytes | None = None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    event: Event | None = None
    error: ClazzifyError | None = None
    attempts: int = 1
    pixels: np.ndarray | None = None
    scores: np.ndarray | None = None
    prepared: Future | None = None
    reply: Future | None = None  # set for /v1/classify requests: no row, no offset

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic or "", self.partition)

    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}" if self.topic else "sync-request"


@dataclass
class Completion:
    """A finished batch, handed back to the main thread for offset bookkeeping."""

    items: list[Item]


@dataclass
class PipelineConfig:
    decode_workers: int = 2
    fetch_concurrency: int = 16
    fetch_retries: int = 4
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    max_image_pixels: int = imaging.DEFAULT_MAX_PIXELS
    queue_batches: int = 2


class Pipeline:
    """Owns the stage threads; created in ``App.start()``, never in ``__init__`` of the app."""

    def __init__(self, model: Model, store: Store, dlq: DeadLetterProducer, fetcher: Fetcher,
                 metrics: Metrics, config: PipelineConfig, faults: Faults | None = None) -> None:
        self.model = model
        self.store = store
        self.dlq = dlq
        self.fetcher = fetcher
        self.metrics = metrics
        self.config = config
        self.faults = faults or Faults("")
        self.completions: queue.Queue[Completion] = queue.Queue()
        self._q_infer: queue.Queue[list[Item] | None] = queue.Queue(maxsize=config.queue_batches)
        self._q_store: queue.Queue[list[Item] | None] = queue.Queue(maxsize=config.queue_batches)
        self._pool = ThreadPoolExecutor(max_workers=max(config.decode_workers, config.fetch_concurrency),
                                        thread_name_prefix="prepare")
        self._decode_slots = threading.BoundedSemaphore(config.decode_workers)
        self._abandon_at: float | None = None
        self.store_ok = True
        self.last_store_error = ""
        self.failed: BaseException | None = None  # set when a stage thread dies: the app exits
        self._threads = [threading.Thread(target=self._guarded, args=(self._inference_loop,), name="inference",
                                          daemon=True),
                         threading.Thread(target=self._guarded, args=(self._store_loop,), name="store",
                                          daemon=True)]

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _guarded(self, loop) -> None:  # type: ignore[no-untyped-def]
        """Run a stage loop; a bug that escapes it must stop the service, never stall it silently."""
        try:
            loop()
        except BaseException as exc:  # noqa: BLE001
            logger.exception("pipeline stage %s crashed", threading.current_thread().name)
            self.failed = exc

    def can_accept(self) -> bool:
        return not self._q_infer.full()

    def start_preparing(self, item: Item) -> None:
        """Fetch and decode ``item`` now, while its batch is still forming.

        Called as each record is polled, so decoding overlaps the batch's wait instead of
        starting when the batch closes: at light load a record's latency loses the batch
        wait's worth of decode, at saturation the decoders never idle between batches. The
        pool runs tasks in arrival order, so batches are ready in the order they close.
        Bounded by the caller's in-flight cap (partitions pause above it).
        """
        if item.prepared is None and item.error is None and item.event is not None:
            item.prepared = self._pool.submit(self._prepare, item)

    def submit(self, batch: list[Item]) -> None:
        """Hand ``batch`` to inference (non-blocking up to the queue bound); prepares what is not yet."""
        for item in batch:
            self.start_preparing(item)
        self._q_infer.put(batch)

    def stop(self, abandon_after_s: float) -> None:
        """Finish queued work, giving up on retries after ``abandon_after_s``; then stop threads."""
        self._abandon_at = time.monotonic() + abandon_after_s
        try:
            self._q_infer.put(None, timeout=abandon_after_s + 5)
        except queue.Full:
            logger.warning("pipeline did not drain; stopping anyway")
        for thread in self._threads:
            thread.join(timeout=abandon_after_s + 5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _abandoned(self) -> bool:
        return self._abandon_at is not None and time.monotonic() > self._abandon_at

    # -- prepare: fetch + decode (pool threads) --------------------------------
    def _prepare(self, item: Item) -> None:
        event = item.event
        assert event is not None
        try:
            data = event.data if event.data is not None else self._fetch(item, event.url or "")
            with self._decode_slots:
                started = time.perf_counter()  # decode time only, not the wait for a slot
                item.pixels = imaging.preprocess(data, self.model.input_size,
                                                 max_pixels=self.config.max_image_pixels)
                self.metrics.stage_seconds.labels(STAGE_DECODE).observe(time.perf_counter() - started)
        except imaging.ImageError as exc:
            item.error = PermanentError(STAGE_DECODE, exc.reason, str(exc)[:300])
        except ClazzifyError as exc:
            item.error = exc
        except Exception as exc:  # noqa: BLE001 - never let one image kill the batch
            logger.exception("unexpected error preparing %s image_id=%s", item.where(), event.image_id)
            item.error = PermanentError(STAGE_DECODE, "unexpected_error", f"{type(exc).__name__}: {exc}"[:300])

    def _fetch(self, item: Item, url: str) -> bytes:
        def count_retry(state) -> None:  # type: ignore[no-untyped-def]
            self.metrics.retries.labels(STAGE_FETCH).inc()
            item.attempts = state.attempt_number + 1
            logger.info("retrying fetch %s attempt=%d reason=%s", item.where(), item.attempts,
                        getattr(state.outcome.exception(), "reason", "?"))

        started = time.perf_counter()
        try:
            for attempt in Retrying(stop=stop_after_attempt(self.config.fetch_retries + 1),
                                    wait=wait_exponential_jitter(self.config.retry_initial_s, self.config.retry_max_s),
                                    retry=retry_if_exception_type(TransientError), reraise=True,
                                    before_sleep=count_retry):
                with attempt:
                    return self.fetcher.fetch(url)
        except TransientError as exc:
            # Bounded: a URL that stays broken is dead-lettered with its last reason.
            raise PermanentError(STAGE_FETCH, exc.reason,
                                 f"gave up after {item.attempts} attempts: {exc.detail}") from exc
        finally:
            self.metrics.stage_seconds.labels(STAGE_FETCH).observe(time.perf_counter() - started)
        raise AssertionError("unreachable")

    # -- inference (one thread) ---------------------------------------------------
    def _inference_loop(self) -> None:
        while True:
            batch = self._q_infer.get()
            if batch is None:
                self._q_store.put(None)
                return
            for item in batch:
                if item.prepared is not None:
                    item.prepared.result()  # _prepare never raises; errors land on the item
                    item.prepared = None
            ready = [i for i in batch if i.error is None and i.pixels is not None]
            if ready:
                started = time.perf_counter()
                self._infer(ready)
                self.metrics.stage_seconds.labels(STAGE_INFERENCE).observe(time.perf_counter() - started)
            for item in batch:
                item.pixels = None  # free the decoded image as soon as it is scored
            self._q_store.put(batch)

    def _infer(self, ready: list[Item]) -> None:
        try:
            scores = self.model.predict(np.stack([i.pixels for i in ready]))
            for item, row in zip(ready, scores):
                item.scores = row
        except Exception:  # noqa: BLE001
            logger.exception("batch inference failed; retrying images one by one")
            for item in ready:
                try:
                    item.scores = self.model.predict(item.pixels[np.newaxis])[0]  # type: ignore[index]
                except Exception as exc:  # noqa: BLE001
                    item.error = PermanentError(STAGE_INFERENCE, "inference_failed", str(exc)[:300])
        for item in ready:
            # NaN/inf can never be stored (jsonb has no NaN) and would block the partition forever.
            if item.scores is not None and not np.isfinite(item.scores).all():
                item.scores = None
                item.error = PermanentError(STAGE_INFERENCE, "non_finite_scores",
                                            "the model returned NaN or infinite scores")

    # -- store + dead letters (one thread) -------------------------------------------
    def _store_loop(self) -> None:
        while True:
            try:
                batch = self._q_store.get(timeout=5.0)
            except queue.Empty:
                self._health_check()
                continue
            if batch is None:
                return
            if self._write(batch):
                self.completions.put(Completion(batch))

    def _health_check(self) -> None:
        """While idle, notice a database outage so readiness tells the truth."""
        try:
            self.store.ping()
            self._set_store_ok(True)
        except ClazzifyError as exc:
            self._set_store_ok(False, exc)

    def _set_store_ok(self, ok: bool, exc: Exception | None = None) -> None:
        if ok and not self.store_ok:
            logger.info("database reachable again")
        if not ok and self.store_ok:
            logger.error("database unavailable: %s", exc)
        self.store_ok = ok
        self.last_store_error = "" if ok else str(exc)

    def _write(self, batch: list[Item]) -> bool:
        """Upsert rows, then dead letters; retry transient failures. False if abandoned."""
        now = datetime.now(timezone.utc)
        rows, letters, replies = [], [], []
        for item in batch:
            if item.reply is not None:
                replies.append(item)
            elif item.error is None and item.scores is not None:
                rows.append(self._row(item, now))
            else:
                letters.append(self._letter(item))
        delay = self.config.retry_initial_s
        while True:
            try:
                self.faults.hit("store")
                self.faults.hit("before_upsert")
                started = time.perf_counter()
                # classified_at is when the row is written, not when a retried write first failed.
                now = datetime.now(timezone.utc)
                rows = [dataclasses.replace(row, classified_at=now) for row in rows]
                self.store.upsert(rows)
                self.metrics.stage_seconds.labels(STAGE_STORE).observe(time.perf_counter() - started)
                self.faults.hit("after_db_commit")
                if letters:
                    started = time.perf_counter()
                    self.dlq.send(letters)
                    self.metrics.stage_seconds.labels(STAGE_DEADLETTER).observe(time.perf_counter() - started)
                self._set_store_ok(True)
                break
            except TransientError as exc:
                if exc.stage == STAGE_STORE:
                    self._set_store_ok(False, exc)
                self.metrics.retries.labels(exc.stage).inc()
                if self._abandoned():
                    logger.error("giving up on a batch of %d at shutdown: %s", len(batch), exc)
                    return False
                logger.warning("transient %s failure, retrying in %.1fs: %s", exc.stage, delay, exc)
                time.sleep(delay)
                delay = min(delay * 2, self.config.retry_max_s)
            except ClazzifyError as exc:  # e.g. schema missing: not the input's fault, keep retrying
                self._set_store_ok(False, exc)
                self.metrics.retries.labels(exc.stage).inc()
                if self._abandoned():
                    return False
                logger.error("store error, retrying in %.1fs: %s", delay, exc)
                time.sleep(delay)
                delay = min(delay * 2, self.config.retry_max_s)
        self._account(batch, rows, letters)
        for item in replies:
            self._reply(item)
        return True

    def _row(self, item: Item, now: datetime) -> Row:
        assert item.event is not None and item.scores is not None
        scores = {label: float(s) for label, s in zip(self.model.labels, item.scores)}
        top = int(np.argmax(item.scores))
        return Row(image_id=item.event.image_id, model_version=self.model.version,
                   label=self.model.labels[top], score=float(item.scores[top]), scores=scores,
                   source_topic=item.topic or "", source_partition=item.partition, source_offset=item.offset,
                   uploaded_at=item.event.uploaded_at, classified_at=now)

    @staticmethod
    def _letter(item: Item) -> DeadLetter:
        error = item.error or PermanentError(STAGE_INFERENCE, "no_result", "no scores and no error")
        return DeadLetter(key=item.key, value=item.value, headers=list(item.headers), topic=item.topic or "",
                          partition=item.partition, offset=item.offset, timestamp_ms=item.timestamp_ms,
                          stage=error.stage, reason=error.reason, message=error.detail or str(error),
                          attempts=item.attempts)

    def _account(self, batch: list[Item], rows: list[Row], letters: list[DeadLetter]) -> None:
        now_ms = time.time() * 1000.0
        for row in rows:
            self.metrics.images.labels(OUTCOME_CLASSIFIED, row.label).inc()
        for item in batch:
            if item.reply is None and item.timestamp_ms > 0:
                self.metrics.e2e_seconds.observe(max(0.0, (now_ms - item.timestamp_ms) / 1000.0))
        for letter in letters:
            self.metrics.images.labels(OUTCOME_DEAD_LETTERED, "").inc()
            self.metrics.dead_letters.labels(letter.stage, letter.reason).inc()
            logger.warning("dead-lettered %s[%d]@%d stage=%s reason=%s", letter.topic, letter.partition,
                           letter.offset, letter.stage, letter.reason)
        self.metrics.record_done(len(rows) + len(letters))

    def _reply(self, item: Item) -> None:
        assert item.reply is not None
        if item.error is not None:
            item.reply.set_exception(item.error)
        else:
            assert item.scores is not None
            item.reply.set_result({label: float(s) for label, s in zip(self.model.labels, item.scores)})
