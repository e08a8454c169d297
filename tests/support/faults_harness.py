"""Helpers for the fault, hostile-input and security tests (issue 5).

* :class:`Fleet` — consumer subprocesses of one group: start, kill -9, SIGSTOP/SIGCONT, restart,
  stop, each with its own metrics port and log file, and their peak memory (VmHWM).
* :func:`produce_tracked` — produce and learn each record's partition and offset.
* :func:`check_rows` — exactly one row per id, each from the newest record of that id, with the
  scores ONNX Runtime gives offline for the same bytes.
* :func:`write_figures` — a test's figures as JSON under ``bench/out/reliability/`` (RELIABILITY.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg2
from confluent_kafka import KafkaException, Producer

from consumer import imaging
from consumer.deadletter import H_REASON, H_STAGE
from consumer.settings import Settings
from tests.support import harness as h

FIGURES_DIR = h.ROOT / "bench" / "out" / "reliability"
LABELS = ["food", "ambiance", "menu", "human"]
# ONNX Runtime's float32 reductions differ by ~1e-6 between batch sizes on flat-colour images;
# a wrong image or a wrong label is off by orders of magnitude more.
SCORE_ATOL = 1e-5


# ----------------------------------------------------------------------------- processes
def peak_rss_bytes(pid: int) -> int:
    """VmHWM (peak resident set) of a live process, in bytes; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


@dataclass
class Member:
    """One consumer subprocess of a :class:`Fleet`."""

    name: str
    proc: subprocess.Popen
    port: int
    log: Path
    faults: str
    started_at: float = field(default_factory=time.monotonic)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def metrics(self) -> str:
        return h.http_get(self.port, "/metrics")

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return h.metric_value(self.metrics(), name, labels)

    def readyz(self) -> tuple[int, dict]:
        import urllib.error
        import urllib.request
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


class Fleet:
    """Consumer subprocesses sharing one :class:`Settings` (so one group), for kill -9 and signals."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.members: dict[str, Member] = {}
        self.kills = 0
        self.fault_deaths = 0  # deaths by a planted fault point (SIGKILL from inside)
        self.restarts = 0
        self.peak_rss = 0

    def start(self, name: str, faults: str = "", once: str = "", **env: str) -> Member:
        """Spawn ``name`` with fault spec ``faults``; ``once`` is added for this process only
        (e.g. ``before_upsert@1``: a certain death there; its restart gets ``faults`` alone)."""
        port = h.free_port()
        log = self.log_dir / f"{name}.log"
        spec = ",".join(s for s in (faults, once) if s)  # later entries win
        proc = h.spawn(self.settings, log, CLAZZIFY_METRICS_PORT=str(port), CLAZZIFY_FAULT_POINTS=spec, **env)
        member = Member(name, proc, port, log, faults)
        self.members[name] = member
        return member

    def wait_up(self, member: Member, timeout: float = 60) -> None:
        """Until its HTTP port answers (the model is loaded and Kafka is being joined)."""
        def up() -> bool:
            if not member.alive():
                raise RuntimeError(f"{member.name} exited rc={member.proc.returncode}:\n{tail(member.log)}")
            try:
                member.metrics()
                return True
            except OSError:
                return False
        h.wait_for(up, timeout, interval=0.2, what=f"{member.name} up")

    def note_peak(self, member: Member) -> None:
        self.peak_rss = max(self.peak_rss, peak_rss_bytes(member.proc.pid))

    def kill(self, name: str) -> None:
        member = self.members[name]
        self.note_peak(member)
        if member.alive():
            os.killpg(member.proc.pid, signal.SIGKILL)
            self.kills += 1
        member.proc.wait(timeout=30)

    def restart(self, name: str, once: str = "") -> Member:
        old = self.members[name]
        if old.alive():
            self.kill(name)
        self.restarts += 1
        return self.start(name, old.faults, once)

    def reap(self) -> list[str]:
        """Names of members that died on their own (a planted fault point); restart them."""
        dead = [name for name, m in self.members.items() if not m.alive()]
        for name in dead:
            if self.members[name].proc.returncode == -signal.SIGKILL:
                self.fault_deaths += 1
            else:
                raise RuntimeError(f"{name} exited rc={self.members[name].proc.returncode}:\n"
                                   f"{tail(self.members[name].log)}")
            self.restarts += 1
            self.start(name, self.members[name].faults)
        return dead

    def signal(self, name: str, sig: signal.Signals) -> None:
        os.killpg(self.members[name].proc.pid, sig)

    def stop(self, name: str, timeout: float = 60) -> int:
        member = self.members[name]
        self.note_peak(member)
        if member.alive():
            try:
                os.killpg(member.proc.pid, signal.SIGCONT)
                member.proc.send_signal(signal.SIGTERM)
                return member.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(member.proc.pid, signal.SIGKILL)
                member.proc.wait(timeout=30)
        return member.proc.returncode

    def stop_all(self) -> None:
        for name in list(self.members):
            self.stop(name)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


# ------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class Produced:
    key: str
    partition: int
    offset: int
    value: bytes


def produce_tracked(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes, list | None]],
                    partition: int | None = None) -> list[Produced]:
    """Produce (idempotent, acks=all) and return where each record landed, in produce order."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True,
                         "message.max.bytes": 20_000_000})
    landed: dict[int, Produced] = {}
    errors: list = []

    def on_delivery(i: int, value: bytes):  # type: ignore[no-untyped-def]
        def cb(err, msg) -> None:  # type: ignore[no-untyped-def]
            if err is not None:
                errors.append(err)
            else:
                key = msg.key().decode("utf-8", "replace") if msg.key() else ""
                landed[i] = Produced(key, msg.partition(), msg.offset(), value)
        return cb

    for i, (key, value, headers) in enumerate(records):
        kwargs = {"partition": partition} if partition is not None else {}
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=headers, on_delivery=on_delivery(i, value),
                                 **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(180) == 0 and not errors, errors
    return [landed[i] for i in range(len(records))]


class Trickle(threading.Thread):
    """Produces ``records`` spread evenly over ``seconds`` (live traffic while faults happen)."""

    def __init__(self, bootstrap: str, topic: str, records: list[tuple], seconds: float, chunks: int = 100) -> None:
        super().__init__(name="trickle", daemon=True)
        self.bootstrap, self.topic, self.records = bootstrap, topic, records
        self.seconds, self.chunks = seconds, chunks
        self.produced: list[Produced] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            size = max(1, -(-len(self.records) // self.chunks))
            started = time.monotonic()
            for n, start in enumerate(range(0, len(self.records), size)):
                self.produced += produce_tracked(self.bootstrap, self.topic, self.records[start:start + size])
                pause = started + (n + 1) * self.seconds / self.chunks - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc

    def finish(self, timeout: float = 300) -> list[Produced]:
        self.join(timeout)
        assert not self.is_alive(), "producer did not finish"
        if self.error is not None:
            raise self.error
        return self.produced


def newest_by_id(produced: list[Produced]) -> dict[str, Produced]:
    """id → its newest record (highest offset; ids keep their partition because the key is the id)."""
    newest: dict[str, Produced] = {}
    for p in produced:
        if p.key not in newest or p.offset > newest[p.key].offset:
            newest[p.key] = p
    return newest


def offline_scores(images: dict[str, bytes], model_path: Path, batch: int = 128) -> dict[str, np.ndarray]:
    """id → scores from ONNX Runtime on THE preprocessing of the same bytes (one session, batched)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    ids = list(images)
    out: dict[str, np.ndarray] = {}
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        pixels = np.stack([imaging.preprocess(images[i]) for i in chunk])
        for i, row in zip(chunk, session.run(["scores"], {"image": pixels})[0]):
            out[i] = row
    return out


def check_rows(got: list[dict], newest: dict[str, Produced], expected: dict[str, np.ndarray],
               topic: str) -> dict[str, int]:
    """Exactly one row per id, from the newest record of that id, with the expected scores.

    Returns counts for the figures (rows, duplicates, lost, stale, wrong_scores); asserts they are 0.
    """
    ids = [r["image_id"] for r in got]
    dupes = sum(c - 1 for c in Counter(ids).values() if c > 1)
    lost = sorted(set(newest) - set(ids))
    extra = sorted(set(ids) - set(newest))
    stale, wrong = [], []
    for row in got:
        want = newest.get(row["image_id"])
        if want is None:
            continue
        if (row["source_topic"], row["source_partition"], row["source_offset"]) != (topic, want.partition, want.offset):
            stale.append((row["image_id"], row["source_partition"], row["source_offset"], want.offset))
        have = np.array([row["scores"][label] for label in LABELS])
        if not np.allclose(have, expected[row["image_id"]], rtol=0, atol=SCORE_ATOL) or \
                row["label"] != LABELS[int(np.argmax(expected[row["image_id"]]))]:
            wrong.append(row["image_id"])
    counts = {"rows": len(got), "distinct_ids": len(set(ids)), "duplicates": dupes, "lost": len(lost),
              "unexpected": len(extra), "stale_rows": len(stale), "wrong_scores": len(wrong)}
    assert dupes == 0 and not extra, counts
    assert not lost, (counts, lost[:10])
    assert not stale, (counts, stale[:10])
    assert not wrong, (counts, wrong[:10])
    return counts


def dead_letters_by_reason(messages: list) -> dict[str, int]:
    reasons: Counter = Counter()
    for msg in messages:
        headers = dict(msg.headers() or [])
        reasons[f"{headers[H_STAGE].decode()}/{headers[H_REASON].decode()}"] += 1
    return dict(sorted(reasons.items()))


# The services are shared with other test sessions that may restart them for a moment: the
# observers below retry, so a blip fails a check only if it outlasts the retries.
def committed(bootstrap: str, group: str, topic: str, partitions: int, attempts: int = 6) -> dict[int, int]:
    """The group's committed offsets (harness.committed, retried while the broker is busy)."""
    for attempt in range(attempts):
        try:
            return h.committed(bootstrap, group, topic, partitions)
        except KafkaException:
            if attempt == attempts - 1:
                raise
            time.sleep(1.0)
    raise AssertionError("unreachable")


def rows(database_url: str, schema: str, attempts: int = 60) -> list[dict]:
    """harness.rows, retried while PostgreSQL is (re)starting."""
    for attempt in range(attempts):
        try:
            return h.rows(database_url, schema)
        except psycopg2.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(1.0)
    raise AssertionError("unreachable")


def wait_rows(database_url: str, schema: str, n: int, timeout: float = 120) -> list[dict]:
    return h.wait_for(lambda: (lambda r: r if len(r) >= n else None)(rows(database_url, schema)), timeout,
                      what=f"{n} rows")


def committed_total(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    return sum(max(o, 0) for o in committed(bootstrap, group, topic, partitions).values())


def write_figures(name: str, figures: dict) -> Path:
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    path = FIGURES_DIR / f"{name}.json"
    figures = {"test": name, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures}
    path.write_text(json.dumps(figures, indent=2, sort_keys=True, default=str) + "\n")
    return path


def fault_settings(kafka_bootstrap: str, database_url: str, schema: str, topic: str, model: Path,
                   **overrides) -> Settings:
    """Settings tuned for fault tests: quick rebalances, small batches, one thread per stage."""
    values = dict(session_timeout_ms=6000, max_batch_size=32, max_batch_wait_ms=100, intra_op_threads=1,
                  decode_workers=1, fetch_concurrency=4, retry_initial_s=0.2, retry_max_s=2.0,
                  drain_timeout_s=5, log_format="text")
    values.update(overrides)
    return h.settings_for(kafka_bootstrap, database_url, schema, topic, model, **values)
