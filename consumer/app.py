"""The consumer service: wires Kafka, the pipeline, PostgreSQL and the HTTP port.

The main thread owns the Kafka consumer (it is not thread-safe) and runs the
loop: poll → parse → micro-batch → hand to the pipeline; collect finished
batches → mark their offsets done → commit each partition's contiguous
completed prefix synchronously, checking every partition's error.

Delivery (DESIGN.md): an offset is committed only after its row is committed in
PostgreSQL (or its dead letter acknowledged). On revoke: drop the partition's
un-started work, wait briefly for its in-flight work, commit what is done, then
release. On lost: drop without committing. Killed at any instant, a replica
loses nothing: uncommitted records are redelivered and the upsert makes that
harmless.

Example::

    >>> from consumer.settings import Settings
    >>> app = App(Settings(kafka_bootstrap="127.0.0.1:9092", model_path="models/model.onnx"))
    >>> app.start(); app.run()   # until SIGTERM / app.request_stop()
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, Message, TopicPartition

from consumer.batcher import Batcher
from consumer.deadletter import DeadLetterProducer
from consumer.errors import STAGE_COMMIT, FatalError, PermanentError
from consumer.events import Event, parse_event
from consumer.faults import Faults
from consumer.fetch import Fetcher, FetchPolicy, parse_networks
from consumer.http import HttpConfig, ServiceHttp
from consumer.inference import Model
from consumer.metrics import Metrics
from consumer.offsets import OffsetTracker
from consumer.pipeline import Completion, Item, Pipeline, PipelineConfig
from consumer.settings import Settings
from consumer.store import Store

logger = logging.getLogger(__name__)

LAG_INTERVAL_S = 5.0
REVOKE_WAIT_S = 10.0
LIVENESS_STALL_S = 120.0


class App:
    """One replica. ``start()`` connects everything; ``run()`` loops until stopped."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.faults = Faults(settings.fault_points)
        self.tracker = OffsetTracker()
        self.batcher: Batcher[Item] = Batcher(settings.max_batch_size, settings.max_batch_wait_ms / 1000.0)
        self._stop = threading.Event()
        self._sync_inbox: queue.Queue[Item] = queue.Queue()
        self._paused: set[tuple[str, int]] = set()
        self._sync_in_flight = 0
        self._heartbeat = time.monotonic()
        self._kafka_ok = False
        self._closing = False
        self._last_lag_at = 0.0
        self.consumer: Consumer | None = None
        self.model: Model | None = None
        self.pipeline: Pipeline | None = None
        self.http: ServiceHttp | None = None
        self.store: Store | None = None

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        s = self.settings
        self.http = ServiceHttp(
            HttpConfig(host=s.metrics_host, port=s.metrics_port, token=s.classify_token.get_secret_value(),
                       max_body_bytes=s.fetch_max_bytes, rate_per_s=s.classify_rate_per_s,
                       timeout_s=s.classify_timeout_s),
            self.metrics, live=self.is_live, ready=self.readiness, classify=self.classify)
        self.http.start()  # first, so probes answer (not ready) while we connect
        self.model = Model.load(s.model_path, s.providers, s.intra_op_threads)
        self.metrics.model_info.labels(self.model.version, str(s.model_path), ",".join(self.model.labels),
                                       str(self.model.input_size), self.model.provider).set(1)
        logger.info("model loaded version=%s labels=%s input_size=%d provider=%s", self.model.version,
                    self.model.labels, self.model.input_size, self.model.provider)
        self.store = Store(s.database_url.get_secret_value(), s.database_schema, auto_migrate=s.migrate_on_start)
        common = s.kafka_common_config()
        dlq = DeadLetterProducer(common, s.dlq_topic)
        fetcher = Fetcher(FetchPolicy(allowed_schemes=s.fetch_schemes, allowed_hosts=s.fetch_hosts,
                                      allowed_networks=parse_networks(s.fetch_allowed_networks),
                                      timeout_s=s.fetch_timeout_s, max_bytes=s.fetch_max_bytes,
                                      max_redirects=s.fetch_max_redirects), pool_size=s.fetch_concurrency)
        self.pipeline = Pipeline(self.model, self.store, dlq, fetcher, self.metrics, PipelineConfig(
            decode_workers=s.effective_decode_workers(), fetch_concurrency=s.fetch_concurrency,
            fetch_retries=s.fetch_retries, retry_initial_s=s.retry_initial_s, retry_max_s=s.retry_max_s,
            max_image_pixels=s.max_image_pixels), self.faults)
        self.pipeline.start()
        self.consumer = Consumer({
            **common,
            "group.id": s.group_id,
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": s.session_timeout_ms,
            "max.poll.interval.ms": s.max_poll_interval_ms,
            "heartbeat.interval.ms": max(1000, s.session_timeout_ms // 10),
            "queued.max.messages.kbytes": 65536,
            "fetch.max.bytes": 52428800,
            "error_cb": self._on_kafka_error,
        })
        self.consumer.subscribe([s.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        self._check_kafka()
        logger.info("subscribed topic=%s group=%s settings=%s", s.input_topic, s.group_id, s.redacted())

    def _check_kafka(self, timeout_s: float = 5.0) -> None:
        """A metadata round-trip: the broker answers (a replica with no partitions is still ready)."""
        assert self.consumer is not None
        try:
            self.consumer.list_topics(self.settings.input_topic, timeout=timeout_s)
            self._kafka_ok = True
        except KafkaException as exc:
            logger.warning("kafka metadata request failed: %s", exc)
            self._kafka_ok = False

    # ----------------------------------------------------------------- health
    def is_live(self) -> bool:
        if self.pipeline is not None and self.pipeline.failed is not None:
            return False
        return time.monotonic() - self._heartbeat < LIVENESS_STALL_S

    def readiness(self) -> dict[str, bool]:
        checks = {"model": self.model is not None, "kafka": self._kafka_ok,
                  "database": self.pipeline is not None and self.pipeline.store_ok}
        self.metrics.ready.set(1 if all(checks.values()) else 0)
        return checks

    def _on_kafka_error(self, err: KafkaError) -> None:
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE):
            if self._kafka_ok:
                logger.error("kafka unavailable: %s", err)
            self._kafka_ok = False
        else:
            logger.warning("kafka error: %s", err)

    # ------------------------------------------------------------- rebalance
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            self.tracker.assign((p.topic, p.partition))
        self._kafka_ok = True
        self.metrics.rebalances.labels("assign").inc()
        self.metrics.assigned_partitions.set(len(self.tracker.partitions()))
        logger.info("assigned %s", _names(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.faults.hit("on_revoke")
        revoked = {(p.topic, p.partition) for p in partitions}
        self.metrics.rebalances.labels("revoke").inc()
        # Not started yet: drop. They stay outstanding in the tracker, so the commit
        # below stops before the first of them and the next owner reads them again.
        dropped = self.batcher.remove_if(lambda i: i.reply is None and i.tp in revoked)

        def started_and_unfinished() -> int:
            return sum(self.tracker.outstanding(tp) for tp in revoked) - len(dropped)

        if not self._closing:
            deadline = time.monotonic() + min(REVOKE_WAIT_S, self.settings.drain_timeout_s)
            while started_and_unfinished() > 0 and time.monotonic() < deadline:
                self._collect(timeout=0.1)
        self._commit(only=revoked)
        for tp in revoked:
            self.tracker.revoke(tp)
            self._paused.discard(tp)
        self.metrics.assigned_partitions.set(len(self.tracker.partitions()))
        logger.info("revoked %s (dropped %d not started)", _names(partitions), len(dropped))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        lost = {(p.topic, p.partition) for p in partitions}
        self.metrics.rebalances.labels("lost").inc()
        self.batcher.remove_if(lambda i: i.reply is None and i.tp in lost)
        for tp in lost:
            self.tracker.revoke(tp)  # in-flight results for them will be ignored: not ours any more
            self._paused.discard(tp)
        self.metrics.assigned_partitions.set(len(self.tracker.partitions()))
        logger.warning("lost %s: dropped without committing", _names(partitions))

    # ------------------------------------------------------------------- loop
    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        assert self.consumer is not None and self.pipeline is not None
        try:
            while not self._stop.is_set():
                self._heartbeat = time.monotonic()
                self._step()
            self._drain()
        finally:
            self._close()

    def _step(self) -> None:
        assert self.consumer is not None and self.pipeline is not None
        if self.pipeline.failed is not None:
            # Exit non-zero (Kubernetes restarts the pod); uncommitted records are redelivered.
            raise FatalError("pipeline", "stage_crashed", repr(self.pipeline.failed))
        self._collect(timeout=0)
        self._commit()
        self._take_sync_requests()
        self._dispatch_ready()
        self._apply_backpressure()
        self._update_lag()
        due = self.batcher.due_in()
        timeout = 0.1 if due is None else min(0.1, max(due, 0.0))
        if timeout == 0.0 and not self.pipeline.can_accept():
            timeout = 0.05  # a batch is due but the pipeline is full: wait, don't spin (it costs the decoders CPU)
        if self._paused and set(self.tracker.partitions()) <= self._paused:
            # Serves callbacks and heartbeats. Paused partitions return no records, but one
            # fetched just before the pause still might: it must be tracked, never dropped.
            msg = self.consumer.poll(timeout)
            if msg is not None:
                self._accept(msg)
            return
        # consume() would block for the whole timeout unless a full batch has arrived (up to
        # 100 ms of latency per record at light load); poll() returns with the first record,
        # then consume(timeout=0) takes whatever else is already there.
        first = self.consumer.poll(timeout)
        if first is None:
            return
        self._accept(first)
        for msg in self.consumer.consume(num_messages=max(1, self.settings.max_batch_size - 1), timeout=0):
            self._accept(msg)

    def _accept(self, msg: Message) -> None:
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                logger.warning("consume error on %s[%s]: %s", msg.topic(), msg.partition(), err)
            if err.fatal():
                raise KafkaException(err)
            return
        self._kafka_ok = True
        tp = (msg.topic(), msg.partition())
        epoch = self.tracker.epoch(tp)
        if epoch is None:
            return  # a record of a partition we no longer own (raced a rebalance)
        _, ts = msg.timestamp()
        item = Item(topic=tp[0], partition=tp[1], offset=msg.offset(), epoch=epoch, timestamp_ms=max(ts, 0),
                    key=msg.key(), value=msg.value(), headers=list(msg.headers() or []))
        try:
            item.event = parse_event(item.key, item.value, item.headers,
                                     max_image_bytes=self.settings.fetch_max_bytes)
        except PermanentError as exc:
            item.error = exc
        self.tracker.track(tp, epoch, item.offset)
        assert self.pipeline is not None
        self.pipeline.start_preparing(item)  # decode while the batch forms
        self.batcher.add(item)

    def _dispatch_ready(self, force: bool = False) -> None:
        assert self.pipeline is not None
        while self.pipeline.can_accept():
            batch = self.batcher.take(force=force)
            if not batch:
                return
            self.metrics.batch_size.observe(len(batch))
            self.pipeline.submit(batch)

    def _collect(self, timeout: float) -> None:
        """Apply finished batches: their offsets become done (ignored if from an old assignment)."""
        assert self.pipeline is not None
        try:
            completion: Completion = self.pipeline.completions.get(timeout=timeout) if timeout else \
                self.pipeline.completions.get_nowait()
        except queue.Empty:
            return
        while True:
            for item in completion.items:
                if item.reply is not None:
                    self._sync_in_flight -= 1
                elif not self.tracker.complete(item.tp, item.epoch, item.offset):
                    logger.debug("ignoring late result for %s (partition no longer owned)", item.where())
            try:
                completion = self.pipeline.completions.get_nowait()
            except queue.Empty:
                break
        self.metrics.in_flight.set(self.tracker.outstanding() + self._sync_in_flight)

    def _commit(self, only: set[tuple[str, int]] | None = None) -> None:
        """Commit each partition's completed prefix synchronously; check every partition's error."""
        assert self.consumer is not None
        pending = self.tracker.pending_commits(only)
        if not pending:
            return
        offsets = [TopicPartition(t, p, pos) for (t, p), pos in pending.items()]
        started = time.perf_counter()
        try:
            result = self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # e.g. a zombie after its session expired: the broker refuses the stale generation.
            self.metrics.commits.labels("error").inc()
            logger.warning("offset commit refused: %s", exc)
            return
        self.metrics.stage_seconds.labels(STAGE_COMMIT).observe(time.perf_counter() - started)
        for tp in result or []:
            if tp.error is not None:
                self.metrics.commits.labels("error").inc()
                logger.warning("commit failed for %s[%d]@%d: %s", tp.topic, tp.partition, tp.offset, tp.error)
            else:
                self.metrics.commits.labels("ok").inc()
                self.tracker.mark_committed((tp.topic, tp.partition), tp.offset)

    def _apply_backpressure(self) -> None:
        """Pause every owned partition while too much is in flight; resume below half."""
        assert self.consumer is not None
        in_flight = self.tracker.outstanding()
        owned = set(self.tracker.partitions())
        if in_flight >= self.settings.max_in_flight:
            to_pause = owned - self._paused
            if to_pause:
                self.consumer.pause([TopicPartition(t, p) for t, p in to_pause])
                self._paused |= to_pause
        elif self._paused and in_flight <= self.settings.max_in_flight // 2:
            self.consumer.resume([TopicPartition(t, p) for t, p in self._paused & owned])
            self._paused.clear()
        self.metrics.paused.set(1 if self._paused else 0)

    def _update_lag(self) -> None:
        assert self.consumer is not None
        now = time.monotonic()
        if now - self._last_lag_at < LAG_INTERVAL_S:
            return
        self._last_lag_at = now
        if not self._kafka_ok:
            self._check_kafka(timeout_s=1.0)
        total = 0
        for topic, partition in self.tracker.partitions():
            try:
                _low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                                 timeout=1.0, cached=True)
            except KafkaException:
                continue
            if high is None or high < 0:
                continue
            position = self.tracker.position((topic, partition))
            if position is None:
                try:
                    committed = self.consumer.committed([TopicPartition(topic, partition)], timeout=1.0)
                except KafkaException:  # e.g. timed out on a busy broker: a gauge is not worth dying for
                    continue
                position = committed[0].offset if committed and committed[0].offset != OFFSET_INVALID else None
            lag = max(0, high - position) if position is not None and position >= 0 else high
            self.metrics.lag.labels(topic, str(partition)).set(lag)
            total += lag
        self.metrics.update_backlog(total)
        self.readiness()

    # --------------------------------------------------- synchronous requests
    def classify(self, data: bytes | None, url: str | None, timeout_s: float) -> dict[str, float]:
        """Classify one image now, through the same batcher and model (used by POST /v1/classify)."""
        if data is not None and len(data) == 0:
            raise PermanentError("parse", "empty", "empty body")
        future: Future = Future()
        item = Item(topic=None, partition=-1, offset=-1, epoch=0, timestamp_ms=0,
                    event=Event(image_id="sync", url=url, data=data), reply=future)
        self._sync_inbox.put(item)
        try:
            return future.result(timeout=timeout_s)
        except TimeoutError as exc:
            raise TimeoutError(f"no result within {timeout_s}s") from exc

    def _take_sync_requests(self) -> None:
        while True:
            try:
                item = self._sync_inbox.get_nowait()
            except queue.Empty:
                return
            self._sync_in_flight += 1
            self.batcher.add(item)

    # ---------------------------------------------------------------- shutdown
    def _drain(self) -> None:
        """SIGTERM: stop taking records, finish in-flight work within the drain timeout, commit."""
        assert self.consumer is not None and self.pipeline is not None
        logger.info("draining: in_flight=%d timeout=%.1fs", self.tracker.outstanding(),
                    self.settings.drain_timeout_s)
        owned = [TopicPartition(t, p) for t, p in self.tracker.partitions()]
        if owned:
            self.consumer.pause(owned)
        deadline = time.monotonic() + self.settings.drain_timeout_s
        while (self.tracker.outstanding() > 0 or self._sync_in_flight > 0) and time.monotonic() < deadline:
            self._dispatch_ready(force=True)
            self._collect(timeout=0.05)
            self._commit()
            msg = self.consumer.poll(0)
            if msg is not None:
                self._accept(msg)  # tracked, so no commit can pass it
        self._commit()
        left = self.tracker.outstanding()
        if left:
            logger.warning("drain timeout: %d records left uncommitted (they will be redelivered)", left)

    def _close(self) -> None:
        self._closing = True
        if self.pipeline is not None:
            self.pipeline.stop(abandon_after_s=1.0)
            self.pipeline.dlq.close()
        if self.consumer is not None:
            try:
                self.consumer.close()  # leaves the group; revoke callback commits what is done
            except (KafkaException, RuntimeError) as exc:
                logger.warning("error closing consumer: %s", exc)
        if self.store is not None:
            self.store.close()
        if self.http is not None:
            self.http.stop()
        logger.info("stopped")


def _names(partitions: list[TopicPartition]) -> str:
    return ",".join(f"{p.topic}[{p.partition}]" for p in partitions) or "-"
