"""``python -m bench`` (``make bench``) — the consumer against what this machine can do, in one run.

Needs the local services (``make bench`` starts them and exports CLAZZIFY_KAFKA_BOOTSTRAP and
CLAZZIFY_DATABASE_URL). Measures, side by side:

(a) end-to-end throughput at saturation (one ``python -m consumer`` replica, default settings),
    latency record timestamp → row (p50/p99) at 100% and at 50% of that rate (paced producer);
(b) the machine's limits for the same work: decode-only, inference-only, upsert-only;
(c) the naive baseline (``bench/naive.py``);
(d) peak RSS of a replica facing a 100k-message backlog;
(e) throughput of 1..cores replicas in one group, each sized and pinned to one core.

Writes bench/results.json, bench/results.md and the table in BENCHMARKS.md.

    python -m bench                  # everything, ~4 minutes on 2 cores
    python -m bench --quick          # smaller runs, for trying changes
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import onnx

from bench import corpus as corpus_mod
from bench import limits, report, rig
from consumer import imaging
from consumer.settings import Settings
from consumer.store import Store
from tools import testmodel

OUT = Path(__file__).resolve().parent / "out"
MODEL_CONVS, MODEL_WIDTH = 5, 32


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def throughput(classified: dict[str, float], stamps: dict[str, int]) -> dict:
    """Images/s of a burst: all its images over first record timestamp → last row committed.

    Conservative by design: it includes filling the pipeline (the first batch's wait, fetch
    and decode) and emptying it, which a steady state would hide; with a few hundred images
    that is a few percent.
    """
    if not classified or not stamps:
        return {"images_per_s": float("nan"), "images": len(classified), "seconds": 0.0}
    start = min(stamps.values()) / 1000.0
    seconds = max(classified.values()) - start
    return {"images_per_s": len(classified) / seconds, "images": len(classified), "seconds": seconds}


def latencies(classified: dict[str, float], stamps: dict[str, int]) -> dict:
    pairs = sorted(((classified[k] - stamps[k] / 1000.0, k) for k in classified if k in stamps), reverse=True)
    values = [v for v, _ in pairs]
    start = min(stamps.values(), default=0) / 1000.0
    return {"p50_s": percentile(values, 50), "p99_s": percentile(values, 99), "max_s": max(values, default=float("nan")),
            "n": len(values),
            # The slowest few, with when they were produced: clustered in time means a stall.
            "slowest": [[k, round(stamps[k] / 1000.0 - start, 2), round(v, 3)] for v, k in pairs[:8]]}


def _stage_sums(text: str) -> dict[str, tuple[float, float]]:
    sums = {stage: (rig.metric(text, "clazzify_stage_seconds_count", {"stage": stage}),
                    rig.metric(text, "clazzify_stage_seconds_sum", {"stage": stage}))
            for stage in ("fetch", "decode", "inference", "store", "deadletter", "commit")}
    sums["batch"] = (rig.metric(text, "clazzify_batch_size_count"), rig.metric(text, "clazzify_batch_size_sum"))
    return sums


def stage_profile(after: str, before: str | None = None) -> dict[str, dict[str, float]]:
    """Per stage between two /metrics scrapes: observations, seconds, mean ms (clazzify_stage_seconds)."""
    a, b = _stage_sums(after), _stage_sums(before) if before else {}
    out: dict[str, dict[str, float]] = {}
    for stage, (count, total) in a.items():
        count -= b.get(stage, (0.0, 0.0))[0]
        total -= b.get(stage, (0.0, 0.0))[1]
        if count <= 0:
            continue
        if stage == "batch":
            out["batch_size_mean"] = {"value": round(total / count, 1), "batches": count}
        else:
            out[stage] = {"observations": count, "seconds": round(total, 3), "mean_ms": round(1000 * total / count, 2)}
    return out


def profile_summary(path: Path, top: int = 12) -> dict:
    """Collapsed py-spy stacks (on-CPU samples only) → CPU share per thread, top leaf frames per thread."""
    threads: dict[str, int] = {}
    leaves: dict[str, dict[str, int]] = {}
    total = 0
    if not path.exists():
        return {}
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        name = frames[0].split(": ", 1)[-1]  # "thread (tid): prepare_3"
        # Pool threads are named prepare_0..N: one bucket for all of them.
        name = "prepare (pool)" if name.startswith("prepare") else name
        leaf = frames[-1]
        leaf = leaf.split(" (")[0]
        threads[name] = threads.get(name, 0) + count
        leaves.setdefault(name, {})
        leaves[name][leaf] = leaves[name].get(leaf, 0) + count
        total += count
    return {"samples": total, "file": str(path.resolve().relative_to(OUT.parent.parent)),
            "threads": {t: round(c / total, 3) for t, c in sorted(threads.items(), key=lambda kv: -kv[1])},
            "top_leaf_frames": {t: [[f, round(c / total, 3)] for f, c in sorted(v.items(), key=lambda kv: -kv[1])[:top]]
                                for t, v in leaves.items()}}


def machine_info() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    import onnxruntime
    import PIL
    return {"cpu": model, "cores": os.cpu_count(), "memory_bytes": mem, "gpu": None,
            "python": sys.version.split()[0], "onnxruntime": onnxruntime.__version__, "pillow": PIL.__version__,
            "loadavg_start": list(os.getloadavg())}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.bootstrap = os.environ["CLAZZIFY_KAFKA_BOOTSTRAP"]
        self.database_url = os.environ["CLAZZIFY_DATABASE_URL"]
        self.cores = os.cpu_count() or 1
        self.defaults = Settings(kafka_bootstrap=self.bootstrap)
        self.topics = rig.Topics(self.bootstrap)
        self.schemas: list[rig.Rows] = []
        self.results: dict = {}
        OUT.mkdir(parents=True, exist_ok=True)
        for old_log in OUT.glob("consumer-*.log"):
            old_log.unlink()

    # ------------------------------------------------------------ helpers
    def new_schema(self, prefix: str) -> tuple[str, rig.Rows]:
        schema = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
        store = Store(self.database_url, schema)
        store.migrate()
        store.close()
        rows = rig.Rows(self.database_url, schema)
        self.schemas.append(rows)
        return schema, rows

    def consumer_settings(self, topic: str, schema: str, **overrides: object) -> dict[str, object]:
        values: dict[str, object] = dict(
            kafka_bootstrap=self.bootstrap, database_url=self.database_url, database_schema=schema,
            input_topic=topic, dlq_topic=f"{topic}.dlq", group_id=f"g-{topic}", model_path=self.model_path,
            fetch_allowed_networks=f"{rig.OBJECT_STORE_HOST}/32", drain_timeout_s=10, log_level="INFO")
        values.update(dict(kv.split("=", 1) for kv in self.args.set))
        values.update(overrides)
        return values

    def spawn(self, name: str, settings: dict[str, object], cpus: set[int] | None = None) -> rig.ConsumerProcess:
        return rig.spawn_consumer(settings, OUT / f"consumer-{name}.log", cpus)

    # ------------------------------------------------------------ phases
    def setup(self) -> None:
        self.corpus = corpus_mod.load(log=log)
        self.model_path = str(self.args.model or OUT / "model.onnx")
        if not self.args.model:
            onnx.save(testmodel.build(convs=MODEL_CONVS, width=MODEL_WIDTH), self.model_path)
        self.results["model"] = {
            "path": self.model_path,
            "what": (f"tools/testmodel.py build(convs={MODEL_CONVS}, width={MODEL_WIDTH}): an AlexNet-like "
                     "conv stack as compute load, standing in for a narrow AlexNet" if not self.args.model
                     else "given with --model")}
        self.results["corpus"] = corpus_mod.describe(self.corpus)
        self.results["machine"] = machine_info()
        self.results["inference_device"] = "cpu"
        self.results["settings"] = {k: getattr(self.defaults, k) for k in (
            "max_batch_size", "max_batch_wait_ms", "max_in_flight", "decode_workers", "intra_op_threads",
            "fetch_concurrency")}
        self.results["settings"]["effective_decode_workers"] = self.defaults.effective_decode_workers()
        if self.args.set:
            self.results["settings"]["overrides"] = list(self.args.set)

    def machine_limits(self, when: str) -> None:
        """Each stage alone; run before and after the end-to-end runs, so both see the same machine."""
        s = self.defaults
        blobs = [c.data for c in self.corpus]
        log(f"limits ({when}): decode on {s.effective_decode_workers()} threads, inference at batch "
            f"{s.max_batch_size}, upsert in batches of {s.max_batch_size}; {self.args.limit_s}s each")
        decode = limits.decode_limit(blobs, s.effective_decode_workers(), self.args.limit_s)
        pixels = np.stack([imaging.preprocess(b) for b in blobs[:16]])
        infer = limits.inference_limit(self.model_path, pixels, s.max_batch_size, s.intra_op_threads,
                                       self.args.limit_s)
        upsert = limits.upsert_limit(self.database_url, s.max_batch_size, self.args.limit_s * 0.6)
        self.results.setdefault("limits_runs", {})[when] = {"decode": decode, "inference": infer, "upsert": upsert}
        log(f"limits ({when}): decode {decode['images_per_s']:.1f}/s inference {infer['images_per_s']:.1f}/s "
            f"upsert {upsert['rows_per_s']:.0f}/s")

    def combine_limits(self) -> None:
        runs = list(self.results.get("limits_runs", {}).values())
        if not runs:
            return
        decode = statistics.mean(r["decode"]["images_per_s"] for r in runs)
        infer = statistics.mean(r["inference"]["images_per_s"] for r in runs)
        upsert = statistics.mean(r["upsert"]["rows_per_s"] for r in runs)
        combined = 1.0 / (1.0 / decode + 1.0 / infer + 1.0 / upsert)
        self.results.update(decode_limit_images_per_s=decode, inference_limit_images_per_s=infer,
                            upsert_limit_rows_per_s=upsert, machine_limit_images_per_s=combined,
                            limits={"rule": "cpu: 1 / (1/decode + 1/inference + 1/upsert); each limit is the mean "
                                            "of its runs before and after the end-to-end runs",
                                    "decode_threads": runs[0]["decode"]["threads"],
                                    "inference_batch_size": runs[0]["inference"]["batch_size"],
                                    "upsert_batch_size": runs[0]["upsert"]["batch_size"]})
        log(f"limits: decode {decode:.1f}/s inference {infer:.1f}/s upsert {upsert:.0f}/s → combined {combined:.1f}/s")
        cpu = statistics.mean(r["decode"]["cpu_ms_per_image"] + r["inference"]["cpu_ms_per_image"] for r in runs)
        self.results["limits"]["decode_plus_inference_cpu_ms_per_image"] = cpu
        e2e_cpu = (self.results.get("e2e") or {}).get("cpu_ms_per_image")
        if e2e_cpu:
            # The load-independent companion of e2e/limit: how much CPU the consumer spends per
            # image beyond decode + inference (Kafka, fetch, Python glue, store client).
            self.results["cpu_efficiency"] = cpu / e2e_cpu

    def naive(self, store: rig.ObjectStore) -> None:
        topic = self.topics.new("naive", 1)
        schema, rows = self.new_schema("naive")
        n = self.args.naive_images
        rig.produce(self.bootstrap, topic, rig.records_for("naive-", n, self.corpus, store))
        log(f"naive baseline: {n} images, at most {self.args.naive_s}s")
        out = subprocess.run([sys.executable, "-m", "bench.naive", "--bootstrap", self.bootstrap, "--topic", topic,
                              "--group", f"g-{topic}", "--database-url", self.database_url, "--schema", schema,
                              "--model", self.model_path, "--seconds", str(self.args.naive_s)],
                             capture_output=True, text=True, cwd=rig.ROOT, timeout=self.args.naive_s + 120,
                             env={**os.environ, "PYTHONPATH": str(rig.ROOT)})
        if out.returncode != 0:
            raise RuntimeError(f"naive baseline failed: {out.stderr[-2000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        self.results["naive_images_per_s"] = result["images_per_s"]
        self.results["naive"] = result
        log(f"naive: {result['images_per_s']:.2f} images/s ({result['images']} in {result['seconds']:.1f}s)")

    def saturation_and_latency(self, store: rig.ObjectStore) -> None:
        partitions = 4
        topic = self.topics.new("e2e", partitions)
        schema, rows = self.new_schema("e2e")
        replica = self.spawn("e2e", self.consumer_settings(topic, schema))
        try:
            rig.wait_assigned([replica], partitions)
            before = replica.metrics()
            cpu_before = replica.cpu_seconds()
            services_dir = os.path.realpath(os.environ.get("CLAZZIFY_SERVICES_DIR") or rig.ROOT / ".services")
            infra_before = (rig.services_cpu_seconds(services_dir), time.process_time())
            n = self.args.images
            log(f"saturation: burst of {n} images, one replica, default settings")
            profiler = self.start_profiler(replica) if self.args.profile else None
            stamps = rig.produce(self.bootstrap, topic, rig.records_for("sat-", n, self.corpus, store))
            got = rows.wait("sat-", n, timeout=600, replicas=[replica])
            if profiler is not None:
                self.results["profile_saturation"] = self.stop_profiler(profiler)
            classified = rows.classified("sat-")
            sat = throughput(classified, stamps)
            sat["latency_burst"] = latencies(classified, stamps)
            sat["rows"] = got
            sat["cpu_ms_per_image"] = 1000 * (replica.cpu_seconds() - cpu_before) / max(got, 1)
            # The work around the replica that shares these cores here (in production it runs elsewhere).
            sat["infrastructure_cpu_ms_per_image"] = {
                "kafka_and_postgres": 1000 * (rig.services_cpu_seconds(services_dir) - infra_before[0]) / max(got, 1),
                "bench_process": 1000 * (time.process_time() - infra_before[1]) / max(got, 1),
                "what": "broker + PostgreSQL (server and backends); the bench process: object store serving the "
                        "12 MP photos, the producer, row polling"}
            rate = sat["images_per_s"]
            self.results["e2e_images_per_s"] = rate
            self.results["e2e"] = sat
            self.results["stages_saturation"] = stage_profile(replica.metrics(), before)
            log(f"saturation: {rate:.1f} images/s over {sat['seconds']:.1f}s")
            offset = n
            for name, load in (("load100", 1.0), ("load50", 0.5)):
                seconds = self.args.paced_s
                count = max(20, int(rate * load * seconds))
                log(f"{name}: paced producer at {rate * load:.1f}/s for {seconds:.0f}s ({count} images)")
                prefix = f"{name}-"
                before = replica.metrics()
                stamps = rig.produce(self.bootstrap, topic,
                                     rig.records_for(prefix, count, self.corpus, store, start=offset),
                                     rate_per_s=rate * load)
                offset += count
                rows.wait(prefix, count, timeout=300, replicas=[replica])
                lat = latencies(rows.classified(prefix), stamps)
                lat["offered_images_per_s"] = rate * load
                lat["stages"] = stage_profile(replica.metrics(), before)
                self.results[f"latency_{name}"] = lat
                log(f"{name}: p50 {lat['p50_s']:.3f}s p99 {lat['p99_s']:.3f}s (n={lat['n']})")
            self.results["p50_latency_saturation_s"] = self.results["latency_load100"]["p50_s"]
            self.results["p99_latency_saturation_s"] = self.results["latency_load100"]["p99_s"]
            self.results["p99_latency_half_load_s"] = self.results["latency_load50"]["p99_s"]
            text = replica.metrics()
            self.results["metrics_e2e_latency_histogram_count"] = rig.metric(
                text, "clazzify_end_to_end_latency_seconds_count")
        finally:
            replica.stop()

    def start_profiler(self, replica: rig.ConsumerProcess) -> subprocess.Popen | None:
        """py-spy (sampling, non-blocking: it never pauses the replica) on the replica, until stopped."""
        py_spy = os.environ.get("PY_SPY") or shutil.which("py-spy")
        if not py_spy:
            log("--profile: py-spy not found (pip install py-spy, or set PY_SPY); skipping the profile")
            return None
        return subprocess.Popen([py_spy, "record", "--pid", str(replica.proc.pid), "--rate", "67",
                                 "--nonblocking", "--threads", "--format", "raw",
                                 "-o", str(OUT / "profile-saturation.txt")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop_profiler(self, profiler: subprocess.Popen) -> dict:
        import signal as signal_mod
        profiler.send_signal(signal_mod.SIGINT)
        profiler.wait(60)
        return profile_summary(OUT / "profile-saturation.txt")

    def scaling(self, store: rig.ObjectStore) -> None:
        partitions = 4
        scaling: dict[str, float] = {}
        detail = {}
        for replicas_n in range(1, self.cores + 1):
            topic = self.topics.new(f"scale{replicas_n}", partitions)
            schema, rows = self.new_schema(f"scale{replicas_n}")
            # One replica per core, sized to it (as a Kubernetes pod with cpu: 1 would be).
            replicas = [self.spawn(f"scale{replicas_n}-{i}",
                                   self.consumer_settings(topic, schema, decode_workers=1, intra_op_threads=1),
                                   cpus={i % self.cores}) for i in range(replicas_n)]
            try:
                rig.wait_assigned(replicas, partitions)
                cpu_before = sum(r.cpu_seconds() for r in replicas)
                n = self.args.scale_images * replicas_n
                log(f"scaling: {replicas_n} replica(s), one core each, burst of {n}")
                stamps = rig.produce(self.bootstrap, topic,
                                     rig.records_for(f"s{replicas_n}-", n, self.corpus, store))
                rows.wait(f"s{replicas_n}-", n, timeout=600, replicas=replicas)
                result = throughput(rows.classified(f"s{replicas_n}-"), stamps)
                result["cpu_ms_per_image"] = 1000 * (sum(r.cpu_seconds() for r in replicas) - cpu_before) / n
            finally:
                for r in replicas:
                    r.stop()
            scaling[str(replicas_n)] = result["images_per_s"]
            detail[str(replicas_n)] = result
            log(f"scaling: {replicas_n} replica(s) → {result['images_per_s']:.1f} images/s")
        self.results["scaling"] = scaling
        self.results["scaling_detail"] = {"replica": "decode_workers=1, intra_op_threads=1, pinned to one core",
                                          "runs": detail}

    def backlog_rss(self, store: rig.ObjectStore) -> None:
        partitions = 4
        topic = self.topics.new("backlog", partitions)
        schema, rows = self.new_schema("backlog")
        n = self.args.backlog
        log(f"backlog: publishing {n} claim-check events")
        # Small messages (claim-check URLs to the corpus), so the backlog is the record count.
        records = []
        for i in range(n):
            image = self.corpus[i % len(self.corpus)]
            doc = {"image_id": f"bl-{i:07d}", "url": store.url("/" + image.name),
                   "uploaded_at": "2026-12-01T12:00:00Z"}
            records.append((doc["image_id"].encode(), json.dumps(doc).encode(), []))
        rig.produce(self.bootstrap, topic, records)
        settings = self.consumer_settings(topic, schema)
        replica = self.spawn("backlog", settings)
        samples, in_flight_max, paused_seen = [], 0.0, False
        try:
            rig.wait_assigned([replica], partitions)
            started = time.monotonic()
            while time.monotonic() - started < self.args.backlog_s:
                status = replica.status()
                samples.append(status["VmRSS"])
                try:
                    text = replica.metrics()
                    in_flight_max = max(in_flight_max, rig.metric(text, "clazzify_in_flight_images"))
                    paused_seen = paused_seen or rig.metric(text, "clazzify_paused") > 0
                except OSError:
                    pass
                time.sleep(0.25)
            peak = replica.status()["VmHWM"]
            done = rows.count("bl-")
        finally:
            replica.stop()
        self.results["peak_rss_bytes_backlog"] = peak
        self.results["backlog"] = {"messages": n, "observed_s": self.args.backlog_s, "rows_done": done,
                                   "rss_last_bytes": samples[-1] if samples else None,
                                   "rss_median_bytes": int(statistics.median(samples)) if samples else None,
                                   "in_flight_max": in_flight_max, "max_in_flight": self.defaults.max_in_flight,
                                   "paused_by_backpressure": paused_seen}
        log(f"backlog: peak RSS {peak / 2**20:.0f} MiB, in-flight max {in_flight_max:.0f} "
            f"(cap {self.defaults.max_in_flight}), {done} rows in {self.args.backlog_s:.0f}s")

    def cleanup(self) -> None:
        self.topics.delete_all()
        for rows in self.schemas:
            try:
                rows.drop()
            except Exception:  # noqa: BLE001
                pass

    def run(self) -> dict:
        started = time.monotonic()
        self.setup()
        objects = {"/" + c.name: c.data for c in self.corpus}
        phases = self.args.only.split(",") if self.args.only else ["limits", "naive", "e2e", "scaling", "backlog"]
        try:
            with rig.ObjectStore(objects) as store:
                if "naive" in phases:
                    self.naive(store)
                if "limits" in phases:
                    self.machine_limits("before")
                if "e2e" in phases:
                    self.saturation_and_latency(store)
                if "limits" in phases:
                    self.machine_limits("after")
                if "scaling" in phases:
                    self.scaling(store)
                if "backlog" in phases:
                    self.backlog_rss(store)
                self.combine_limits()
        finally:
            self.cleanup()
        self.results["machine"]["loadavg_end"] = list(os.getloadavg())
        self.results["bench_seconds"] = time.monotonic() - started
        self.results["command"] = "make bench"
        self.results["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return self.results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="ONNX model to use (default: the conv-stack stand-in, written to bench/out)")
    parser.add_argument("--images", type=int, default=640, help="images in the saturation burst (default: 640)")
    parser.add_argument("--paced-s", type=float, default=20.0, help="seconds of each paced-latency run")
    parser.add_argument("--scale-images", type=int, default=320, help="images per replica in the scaling runs")
    parser.add_argument("--naive-images", type=int, default=200, help="events published for the naive baseline")
    parser.add_argument("--naive-s", type=float, default=25.0, help="seconds the naive baseline runs at most")
    parser.add_argument("--backlog", type=int, default=100_000, help="messages in the RSS backlog (default: 100000)")
    parser.add_argument("--backlog-s", type=float, default=30.0, help="seconds the backlog replica is watched")
    parser.add_argument("--limit-s", type=float, default=8.0, help="seconds of each machine-limit measurement")
    parser.add_argument("--only", default="", help="comma-separated phases: limits,naive,e2e,scaling,backlog")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a consumer setting for the end-to-end runs (repeatable), to compare knobs")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the replica during the saturation run (bench/out/profile-saturation.txt)")
    parser.add_argument("--quick", action="store_true", help="small runs for trying changes (not for the record)")
    parser.add_argument("--no-write", action="store_true", help="print results, do not update results/BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.images = 192 if args.images == parser.get_default("images") else args.images
        args.paced_s, args.scale_images, args.naive_images = 10.0, 96, 30
        args.naive_s, args.backlog, args.backlog_s, args.limit_s = 10.0, 20_000, 10.0, 4.0
    results = Bench(args).run()
    table = report.markdown(results)
    print(table)
    if not args.no_write and not args.only and not args.quick and not args.set:
        report.write(results, table)
        log("wrote bench/results.json, bench/results.md, BENCHMARKS.md")
    else:
        (OUT / "results.json").write_text(json.dumps(results, indent=1, default=str))
        log(f"wrote {OUT / 'results.json'} (partial or quick run: the record is not updated)")
    log(f"done in {results['bench_seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
