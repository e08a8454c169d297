"""results.json → the Markdown table (figures, goals, ratios) and BENCHMARKS.md's latest section."""

from __future__ import annotations

import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_JSON = ROOT / "bench" / "results.json"
RESULTS_MD = ROOT / "bench" / "results.md"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- bench:begin (written by make bench) -->", "<!-- bench:end -->"


def _f(value: object, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def goals(r: dict) -> list[tuple[str, str, str, bool | None]]:
    """(goal, measured, target, met) for each goal of issue 6 that this run measured."""
    out: list[tuple[str, str, str, bool | None]] = []
    e2e = r.get("e2e_images_per_s")
    limit = r.get("machine_limit_images_per_s")
    if e2e and limit:
        ratio = e2e / limit
        out.append(("e2e / machine limit", f"{ratio:.2f}", "≥ 0.85", ratio >= 0.85))
    eff = r.get("cpu_efficiency")
    if eff:
        out.append(("same, in CPU time (load-independent): (decode+inference) / e2e CPU per image",
                    f"{eff:.2f}", "≥ 0.85", eff >= 0.85))
    naive = r.get("naive_images_per_s")
    if e2e and naive:
        ratio = e2e / naive
        out.append(("e2e / naive", f"{ratio:.1f}×", "≥ 5×", ratio >= 5))
    p99 = r.get("p99_latency_half_load_s")
    if p99 is not None:
        out.append(("p99 latency at 50% load", f"{p99:.3f} s", "≤ 0.5 s", p99 <= 0.5))
    rss = r.get("peak_rss_bytes_backlog")
    if rss:
        out.append(("peak RSS, 100k backlog", f"{rss / 2**20:.0f} MiB", "≤ 1024 MiB", rss <= 2**30))
    scaling = r.get("scaling") or {}
    one = scaling.get("1")
    for n, rate in sorted(scaling.items(), key=lambda kv: int(kv[0])):
        if n != "1" and one:
            ratio = rate / (int(n) * one)
            out.append((f"{n} replicas / ({n} × one)", f"{ratio:.2f}", "≥ 0.90", ratio >= 0.9))
    return out


def markdown(r: dict) -> str:
    m = r.get("machine", {})
    lines = [
        f"Machine: {m.get('cores')} cores ({m.get('cpu') or 'unknown CPU'}), "
        f"{(m.get('memory_bytes') or 0) / 2**30:.0f} GiB, no GPU (inference_device: {r.get('inference_device')}); "
        f"load average at start {', '.join(f'{x:.1f}' for x in m.get('loadavg_start', []))}, "
        f"at end {', '.join(f'{x:.1f}' for x in m.get('loadavg_end', []))}. "
        f"Python {m.get('python')}, ONNX Runtime {m.get('onnxruntime')}, Pillow {m.get('pillow')}.",
        "",
        f"Model: {r.get('model', {}).get('what', '')}.",
    ]
    c = r.get("corpus", {})
    if c:
        sizes = ", ".join(f"{k}: {v['count']} × {v['mean_bytes'] / 1e6:.2f} MB mean" for k, v in c["sizes"].items())
        lines += ["", f"Corpus: {c['distinct_images']} distinct JPEGs q{c['jpeg_quality']} ({sizes}), {c['mix']}; "
                      "12 MP by claim-check URL (local HTTP object store), 1600x1200 inline."]
    s = r.get("settings", {})
    if s:
        lines += ["", "Consumer settings (defaults): " + ", ".join(f"{k}={v}" for k, v in s.items()) + "."]
    lines += ["", "| measure | value |", "|---|---|"]
    rows = [
        ("(a) e2e throughput at saturation, 1 replica", f"{_f(r.get('e2e_images_per_s'))} images/s"),
        ("(a) latency at saturation (paced at 100%) p50 / p99",
         f"{_f(r.get('p50_latency_saturation_s'), 3)} s / {_f(r.get('p99_latency_saturation_s'), 3)} s"),
        ("(a) latency at 50% load p50 / p99",
         f"{_f((r.get('latency_load50') or {}).get('p50_s'), 3)} s / {_f(r.get('p99_latency_half_load_s'), 3)} s"),
        ("(b) decode limit (all cores, same decoder)", f"{_f(r.get('decode_limit_images_per_s'))} images/s"),
        ("(b) inference limit (same model, batch "
         f"{(r.get('limits') or {}).get('inference_batch_size', '?')})",
         f"{_f(r.get('inference_limit_images_per_s'))} images/s"),
        ("(b) upsert limit (batches of the same size)", f"{_f(r.get('upsert_limit_rows_per_s'), 0)} rows/s"),
        ("(b) machine limit 1/Σ(1/limit)", f"{_f(r.get('machine_limit_images_per_s'))} images/s"),
        ("(b) CPU per image: decode + inference alone / e2e replica",
         f"{_f((r.get('limits') or {}).get('decode_plus_inference_cpu_ms_per_image'))} ms / "
         f"{_f((r.get('e2e') or {}).get('cpu_ms_per_image'))} ms"),
        ("(a) CPU per image around the replica on the same cores: Kafka + PostgreSQL / bench process",
         " / ".join(f"{_f(v)} ms" for k, v in ((r.get('e2e') or {}).get('infrastructure_cpu_ms_per_image') or {}).items()
                    if k != "what") or "–"),
        ("(c) naive baseline", f"{_f(r.get('naive_images_per_s'), 2)} images/s "
                               f"({_f((r.get('naive') or {}).get('cpu_ms_per_image'))} ms CPU per image)"),
        ("(d) peak RSS with a 100k backlog",
         f"{(r.get('peak_rss_bytes_backlog') or 0) / 2**20:.0f} MiB" if r.get("peak_rss_bytes_backlog") else "–"),
    ]
    runs = (r.get("scaling_detail") or {}).get("runs", {})
    for n, rate in sorted((r.get("scaling") or {}).items(), key=lambda kv: int(kv[0])):
        cpu = (runs.get(n) or {}).get("cpu_ms_per_image")
        rows.append((f"(e) {n} replica(s), one core each", f"{_f(rate)} images/s ({_f(cpu)} ms CPU per image)"))
    lines += [f"| {a} | {b} |" for a, b in rows]
    g = goals(r)
    if g:
        lines += ["", "| goal | measured | target | met |", "|---|---|---|---|"]
        lines += [f"| {a} | {b} | {c} | {'yes' if ok else 'NO'} |" for a, b, c, ok in g]
    stages = r.get("stages_saturation")
    if stages:
        parts = [f"{k} {v['mean_ms']} ms × {int(v['observations'])}" for k, v in stages.items() if "mean_ms" in v]
        lines += ["", "Where the time went at saturation (clazzify_stage_seconds, mean per observation): "
                  + "; ".join(parts) + (f"; mean batch {stages['batch_size_mean']['value']}"
                                        if "batch_size_mean" in stages else "") + "."]
    prof = r.get("profile_saturation")
    if prof and prof.get("samples"):
        shares = ", ".join(f"{t} {100 * v:.0f}%" for t, v in prof["threads"].items() if v >= 0.005)
        lines += ["", f"py-spy at saturation ({prof['samples']} on-CPU samples, `{prof['file']}`): threads {shares}."]
        for thread, frames in prof["top_leaf_frames"].items():
            top = [f"{name} {100 * share:.1f}%" for name, share in frames[:6] if share >= 0.005]
            if top:
                lines.append(f"- {thread}: " + ", ".join(top))
    if r.get("bench_seconds"):
        lines += ["", f"`make bench` took {r['bench_seconds'] / 60:.1f} min; finished {r.get('finished_at')}."]
    return "\n".join(lines) + "\n"


def write(results: dict, table: str) -> None:
    RESULTS_JSON.write_text(json.dumps(results, indent=1, default=str) + "\n")
    RESULTS_MD.write_text("# Latest `make bench`\n\n" + table)
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    BENCHMARKS_MD.write_text(f"{head}{BEGIN}\n{table}{END}{tail}")
