"""Prometheus metrics (contract 5 of DESIGN.md): ``clazzify_`` prefix, base units.

All metrics live in one :class:`Metrics` object with its own registry, so two
consumers in one process (tests) never collide and ``/metrics`` shows exactly
one service's families.
"""

from __future__ import annotations

import time
from collections import deque
from threading import Lock

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Seconds: from a few ms (one stage, one small batch) to minutes (a backlog).
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)

#: outcome label values of clazzify_images_total
OUTCOME_CLASSIFIED = "classified"
OUTCOME_DEAD_LETTERED = "dead_lettered"


class Metrics:
    """The consumer's metric families. Names are a public contract (dashboards, alerts, HPA)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.images = Counter("clazzify_images_total", "Images finished, by outcome and top label.",
                              ["outcome", "label"], registry=r)
        self.batch_size = Histogram("clazzify_batch_size", "Images per micro-batch sent to the model.",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.stage_seconds = Histogram("clazzify_stage_seconds", "Wall time of one pipeline stage for one batch.",
                                       ["stage"], buckets=STAGE_BUCKETS, registry=r)
        self.e2e_seconds = Histogram("clazzify_end_to_end_latency_seconds",
                                     "From the record's Kafka timestamp to its row committed in PostgreSQL.",
                                     buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("clazzify_in_flight_images", "Images polled but not yet committed.", registry=r)
        self.lag = Gauge("clazzify_consumer_lag", "Messages behind the partition's high watermark (assigned partitions).",
                         ["topic", "partition"], registry=r)
        self.backlog_seconds = Gauge("clazzify_backlog_seconds",
                                     "Time to drain this replica's lag at its recent throughput (lag / images per second).",
                                     registry=r)
        self.dead_letters = Counter("clazzify_dead_letters_total", "Inputs sent to the dead-letter topic, by stage and reason.",
                                    ["stage", "reason"], registry=r)
        self.retries = Counter("clazzify_retries_total", "Transient failures retried, by stage.", ["stage"], registry=r)
        self.rebalances = Counter("clazzify_rebalances_total", "Partition assignment changes, by kind.",
                                  ["kind"], registry=r)
        self.commits = Counter("clazzify_offset_commits_total", "Offset commits, by result.", ["result"], registry=r)
        self.assigned_partitions = Gauge("clazzify_assigned_partitions", "Partitions assigned to this replica.", registry=r)
        self.paused = Gauge("clazzify_paused", "1 while partitions are paused (backpressure or a transient failure).", registry=r)
        self.ready = Gauge("clazzify_ready", "1 when Kafka, PostgreSQL and the model are all up.", registry=r)
        self.model_info = Gauge("clazzify_model_info", "The model being served (value 1).",
                                ["version", "path", "labels", "input_size", "provider"], registry=r)
        self.http_requests = Counter("clazzify_http_requests_total", "HTTP requests served, by path and status code.",
                                     ["path", "code"], registry=r)
        # Process CPU/memory for the dashboard: the default process collector, in our registry.
        from prometheus_client import ProcessCollector
        ProcessCollector(registry=r)
        self._throughput = ThroughputWindow()

    def record_done(self, count: int) -> None:
        self._throughput.add(count)

    def update_backlog(self, total_lag: int) -> None:
        rate = self._throughput.rate()
        if total_lag <= 0:
            self.backlog_seconds.set(0)
        elif rate > 0:
            self.backlog_seconds.set(total_lag / rate)
        else:
            # Lag but nothing finished recently: report the whole window as a lower bound
            # would hide a stall, so report "infinite" as a large finite number.
            self.backlog_seconds.set(float(total_lag) * 3600.0)


class ThroughputWindow:
    """Images finished per second over a sliding window (default 60 s)."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self._events: deque[tuple[float, int]] = deque()
        self._lock = Lock()
        self._started = time.monotonic()

    def add(self, count: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._events.append((now, count))
            self._trim(now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            total = sum(c for _, c in self._events)
            span = min(self.window_s, max(now - self._started, 1e-9))
        return total / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._events and self._events[0][0] < now - self.window_s:
            self._events.popleft()
