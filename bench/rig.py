"""The benchmark's moving parts: an object store, topics, producers, consumer processes, rows.

Everything talks to the real local broker and database; the consumer runs as it does in
production, ``python -m consumer run`` in its own process, configured by ``CLAZZIFY_*``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg2
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from tools.scrape import free_port, http_get, metric_value

ROOT = Path(__file__).resolve().parents[1]
OBJECT_STORE_HOST = "127.0.0.2"  # loopback, but not 127.0.0.1: the fetch SSRF guard allows it explicitly


# ------------------------------------------------------------------ object store
class ObjectStore:
    """Serves ``{path: bytes}`` over HTTP/1.1 keep-alive, the claim-check side of the corpus."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                body = store.objects.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args) -> None:  # type: ignore[no-untyped-def]
                pass

        ThreadingHTTPServer.daemon_threads = True
        self._server = ThreadingHTTPServer((OBJECT_STORE_HOST, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="objectstore", daemon=True)

    def url(self, path: str) -> str:
        return f"http://{OBJECT_STORE_HOST}:{self._server.server_address[1]}{path}"

    def __enter__(self) -> "ObjectStore":
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:  # type: ignore[no-untyped-def]
        self._server.shutdown()
        self._server.server_close()


# ------------------------------------------------------------------ Kafka
class Topics:
    """Creates uniquely named topics and deletes them all at the end."""

    def __init__(self, bootstrap: str) -> None:
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.created: list[str] = []

    def new(self, prefix: str, partitions: int) -> str:
        name = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
        futures = self.admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        futures[name].result(30)
        self.created += [name, f"{name}.dlq"]
        return name

    def delete_all(self) -> None:
        if not self.created:
            return
        futures = self.admin.delete_topics(self.created, operation_timeout=30)
        for future in futures.values():
            try:
                future.result(30)
            except Exception:  # noqa: BLE001 - a DLQ topic that was never auto-created
                pass
        self.created = []


Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


def produce(bootstrap: str, topic: str, records: Iterable[Record], rate_per_s: float | None = None) -> dict[str, int]:
    """Publish ``records`` (at ``rate_per_s``, or as fast as possible); returns key → record timestamp ms."""
    # Paced: not idempotent, and connected before the clock starts, so no record's timestamp
    # (taken at produce()) includes the producer's own start-up (metadata, producer id).
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2 if rate_per_s else 20,
                         "batch.size": 1_000_000, "enable.idempotence": not rate_per_s,
                         "queue.buffering.max.kbytes": 1_048_576, "queue.buffering.max.messages": 200_000,
                         "compression.type": "none"})
    producer.list_topics(topic, timeout=30)
    stamps: dict[str, int] = {}
    errors: list = []

    def delivered(err, msg) -> None:  # type: ignore[no-untyped-def]
        if err is not None:
            errors.append(err)
        else:
            stamps[msg.key().decode()] = msg.timestamp()[1]

    started = time.monotonic()
    for i, (key, value, headers) in enumerate(records):
        if rate_per_s:
            wait = started + i / rate_per_s - time.monotonic()
            while wait > 0:
                producer.poll(min(wait, 0.01))
                wait = started + i / rate_per_s - time.monotonic()
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=headers, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120) != 0 or errors:
        raise RuntimeError(f"produce failed: {errors[:3]}")
    return stamps


# ------------------------------------------------------------------ consumers
def metrics_text(port: int) -> str:
    return http_get(port, "/metrics")


metric = metric_value



@dataclass
class ConsumerProcess:
    """One ``python -m consumer run`` replica."""

    proc: subprocess.Popen
    port: int
    log_path: Path
    rss_samples: list[int] = field(default_factory=list)

    def metrics(self) -> str:
        return metrics_text(self.port)

    def assigned(self) -> int:
        try:
            return int(metric(self.metrics(), "clazzify_assigned_partitions"))
        except OSError:
            return -1

    def status(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak resident set) in bytes, from /proc."""
        out = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0]) * 1024
        return out

    def cpu_seconds(self) -> float:
        """User + system CPU time of the replica so far (all its threads)."""
        return _cpu_of(self.proc.pid)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def spawn_consumer(settings: dict[str, object], log_path: Path, cpus: set[int] | None = None) -> ConsumerProcess:
    """Start a replica; ``settings`` are Settings field names (→ CLAZZIFY_*); ``cpus`` pins it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAZZIFY_")}
    env.update({f"CLAZZIFY_{k.upper()}": str(v) for k, v in settings.items()})
    env.update(CLAZZIFY_METRICS_PORT=str(port), CLAZZIFY_METRICS_HOST="127.0.0.1", CLAZZIFY_LOG_FORMAT="text",
               PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    preexec: Callable[[], None] | None = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    log = open(log_path, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "consumer", "run"], env=env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, preexec_fn=preexec)
    replica = ConsumerProcess(proc, port, log_path)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"consumer exited with {proc.returncode}; see {log_path}")
        try:
            replica.metrics()
            return replica
        except OSError:
            if time.monotonic() > deadline:
                replica.stop()
                raise RuntimeError(f"consumer never answered on :{port}; see {log_path}")
            time.sleep(0.2)


def wait_assigned(replicas: list[ConsumerProcess], partitions: int, timeout: float = 90.0) -> None:
    """Until the group has settled: every replica owns some, and together all, partitions."""
    deadline = time.monotonic() + timeout
    while True:
        counts = [r.assigned() for r in replicas]
        if sum(counts) == partitions and all(c > 0 for c in counts):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"group did not settle: assigned={counts}")
        time.sleep(0.2)


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def services_cpu_seconds(services_dir: str) -> float:
    """CPU seconds so far of the local Kafka broker and PostgreSQL (with its backends) in ``services_dir``."""
    roots, parents = set(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents[int(entry.name)] = ppid
        if services_dir and services_dir in cmdline:
            roots.add(int(entry.name))
    pids = roots | {pid for pid, ppid in parents.items() if ppid in roots}
    return sum(_cpu_of(pid) for pid in pids)


# ------------------------------------------------------------------ database
class Rows:
    """Reads the consumer's rows from one schema."""

    def __init__(self, database_url: str, schema: str) -> None:
        self.schema = schema
        self.conn = psycopg2.connect(database_url)
        self.conn.autocommit = True

    def count(self, prefix: str) -> int:
        with self.conn.cursor() as cur:
            try:
                cur.execute(f'SELECT count(*) FROM "{self.schema}".image_classifications WHERE image_id LIKE %s',
                            (prefix + "%",))
            except psycopg2.errors.UndefinedTable:
                return 0
            return int(cur.fetchone()[0])

    def wait(self, prefix: str, n: int, timeout: float, replicas: list[ConsumerProcess] = ()) -> int:  # type: ignore[assignment]
        deadline = time.monotonic() + timeout
        while True:
            got = self.count(prefix)
            if got >= n or time.monotonic() > deadline:
                return got
            for r in replicas:
                if r.proc.poll() is not None:
                    raise RuntimeError(f"consumer died (rc={r.proc.returncode}); see {r.log_path}")
            time.sleep(0.2)

    def classified(self, prefix: str) -> dict[str, float]:
        """image_id → classified_at (epoch seconds)."""
        with self.conn.cursor() as cur:
            cur.execute(f'SELECT image_id, extract(epoch FROM classified_at) FROM "{self.schema}".image_classifications '
                        f"WHERE image_id LIKE %s", (prefix + "%",))
            return {image_id: float(at) for image_id, at in cur.fetchall()}

    def drop(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        self.conn.close()


def records_for(prefix: str, n: int, corpus: list, store: ObjectStore, start: int = 0) -> list[Record]:
    """``n`` events cycling the corpus: 12 MP photos by claim-check URL, 1600x1200 inline."""
    out: list[Record] = []
    for i in range(start, start + n):
        image = corpus[i % len(corpus)]
        image_id = f"{prefix}{i:07d}"
        if image.size[0] > 2000:  # megabytes: claim-check, as real uploads are (DESIGN.md, contract 1)
            doc = {"image_id": image_id, "url": store.url("/" + image.name), "uploaded_at": "2026-12-01T12:00:00Z"}
            out.append((image_id.encode(), json.dumps(doc).encode(), []))
        else:
            out.append((image_id.encode(), image.data, [("content-type", b"image/jpeg")]))
    return out
