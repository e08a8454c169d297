"""Generate the files under deploy/ that are derived from others.

* ``deploy/grafana/clazzify-dashboard.json``: the Grafana dashboard, written here as Python
  so every query sits beside its panel and reads as a list.
* ``deploy/k8s/components/monitoring/prometheusrule.yaml``: the Prometheus Operator wrapper
  around ``deploy/prometheus/clazzify-rules.yaml`` (the rules' one source).

Runs in the ops tools environment (it needs PyYAML)::

    .venv-tools/bin/python deploy/generate.py           # rewrite the generated files
    .venv-tools/bin/python deploy/generate.py --check   # exit 1 if one is stale (tests)

``make -f mk/ops.mk ops-generate`` does the first.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
RULES = DEPLOY / "prometheus" / "clazzify-rules.yaml"
PROMETHEUS_RULE = DEPLOY / "k8s" / "components" / "monitoring" / "prometheusrule.yaml"
DASHBOARD = DEPLOY / "grafana" / "clazzify-dashboard.json"

DS = {"type": "prometheus", "uid": "${datasource}"}
# Every series selector of the dashboard: the clazzify scrape job, the chosen namespace(s).
SEL = 'job="clazzify", namespace=~"$namespace"'


# --------------------------------------------------------------------------- dashboard
def _target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict[str, Any]:
    target = {"datasource": DS, "expr": expr, "legendFormat": legend or "__auto", "refId": ref}
    if instant:
        target["instant"] = True
        target["range"] = False
    return target


def _targets(*pairs: tuple[str, str], instant: bool = False) -> list[dict[str, Any]]:
    return [_target(expr, legend, chr(ord("A") + i), instant) for i, (expr, legend) in enumerate(pairs)]


class _Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping rows."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.x = 0
        self.y = 0
        self.row_h = 0

    def _place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title: str) -> None:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append({"id": len(self.panels) + 1, "type": "row", "title": title, "collapsed": False,
                            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": []})
        self.y += 1

    def add(self, kind: str, title: str, targets: list[dict[str, Any]], *, unit: str = "short",
            w: int = 12, h: int = 8, description: str = "", stack: bool = False,
            options: dict[str, Any] | None = None) -> None:
        defaults: dict[str, Any] = {"unit": unit}
        if kind == "timeseries":
            defaults["custom"] = {"drawStyle": "line", "fillOpacity": 20 if stack else 0,
                                  "lineWidth": 1, "showPoints": "never",
                                  "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
        panel = {
            "id": len(self.panels) + 1,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": self._place(w, h),
            "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options or ({"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                    "tooltip": {"mode": "multi", "sort": "desc"}} if kind == "timeseries" else {}),
        }
        self.panels.append(panel)


def _quantile(q: float, metric: str, by: str = "") -> str:
    group = f"{by}, le" if by else "le"
    return (f"histogram_quantile({q}, sum by ({group}) "
            f"(rate({metric}_bucket{{{SEL}}}[$__rate_interval])))")


def dashboard() -> dict[str, Any]:
    """The clazzify dashboard: one row per question an operator asks."""
    L = _Layout()
    stat = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value", "graphMode": "area", "textMode": "auto"}

    L.row("Overview")
    L.add("stat", "Classified / s", _targets(
        (f'sum(rate(clazzify_images_total{{{SEL}, outcome="classified"}}[$__rate_interval]))', "classified")),
        unit="reqps", w=4, h=4, options=stat)
    L.add("stat", "Dead-lettered share", _targets(
        (f"sum(rate(clazzify_dead_letters_total{{{SEL}}}[$__rate_interval])) / "
         f"clamp_min(sum(rate(clazzify_images_total{{{SEL}}}[$__rate_interval])), 1e-9)", "dead-lettered")),
        unit="percentunit", w=4, h=4, options=stat)
    L.add("stat", "Time to drain (slowest replica)", _targets(
        (f"max(clazzify_backlog_seconds{{{SEL}}})", "backlog")), unit="s", w=4, h=4, options=stat)
    L.add("stat", "End-to-end p99", _targets(
        (_quantile(0.99, "clazzify_end_to_end_latency_seconds"), "p99")), unit="s", w=4, h=4, options=stat)
    L.add("stat", "Ready replicas", _targets(
        (f"sum(clazzify_ready{{{SEL}}})", "ready")), unit="short", w=4, h=4, options=stat)
    L.add("table", "Model being served", _targets(
        (f"count by (version, provider, input_size, labels) (clazzify_model_info{{{SEL}}})", "{{version}}"),
        instant=True), w=4, h=4,
        description="clazzify_model_info: version, execution provider and labels of the loaded model; "
                    "the value counts the replicas serving it (two rows during a rollout).")

    L.row("Throughput")
    L.add("timeseries", "Images / s by outcome", _targets(
        (f"sum by (outcome) (rate(clazzify_images_total{{{SEL}}}[$__rate_interval]))", "{{outcome}}")),
        unit="reqps", stack=True)
    L.add("timeseries", "Classified images / s by top label", _targets(
        (f'sum by (label) (rate(clazzify_images_total{{{SEL}, outcome="classified"}}[$__rate_interval]))',
         "{{label}}")), unit="reqps", stack=True)

    L.row("Latency")
    L.add("timeseries", "Stage latency per batch (p50, p99)", _targets(
        (_quantile(0.5, "clazzify_stage_seconds", "stage"), "{{stage}} p50"),
        (_quantile(0.99, "clazzify_stage_seconds", "stage"), "{{stage}} p99")),
        unit="s", w=8,
        description="Stages: fetch, decode, inference, store, deadletter, commit.")
    L.add("timeseries", "End-to-end latency (record timestamp to committed row)", _targets(
        (_quantile(0.5, "clazzify_end_to_end_latency_seconds"), "p50"),
        (_quantile(0.95, "clazzify_end_to_end_latency_seconds"), "p95"),
        (_quantile(0.99, "clazzify_end_to_end_latency_seconds"), "p99")), unit="s", w=8)
    L.add("timeseries", "Batch size", _targets(
        (_quantile(0.5, "clazzify_batch_size"), "p50"),
        (_quantile(0.95, "clazzify_batch_size"), "p95"),
        (f"sum(rate(clazzify_batch_size_sum{{{SEL}}}[$__rate_interval])) / "
         f"clamp_min(sum(rate(clazzify_batch_size_count{{{SEL}}}[$__rate_interval])), 1e-9)", "mean")),
        unit="short", w=8,
        description="Images per micro-batch sent to the model: small batches at low load are the "
                    "time policy (CLAZZIFY_MAX_BATCH_WAIT_MS) at work.")

    L.row("Backlog")
    L.add("timeseries", "Consumer lag per partition", _targets(
        (f"sum by (topic, partition) (clazzify_consumer_lag{{{SEL}}})", "{{topic}}[{{partition}}]")),
        unit="short", stack=True)
    L.add("timeseries", "Time to drain per replica", _targets(
        (f"clazzify_backlog_seconds{{{SEL}}}", "{{pod}}")), unit="s",
        description="clazzify_backlog_seconds: the replica's lag divided by its recent throughput. "
                    "The HPA alternative scales on its per-pod average (target: capacity.yaml).")
    L.add("timeseries", "Assigned partitions per replica", _targets(
        (f"clazzify_assigned_partitions{{{SEL}}}", "{{pod}}")), unit="short", w=8)
    L.add("timeseries", "In-flight images per replica", _targets(
        (f"clazzify_in_flight_images{{{SEL}}}", "{{pod}}")), unit="short", w=8)
    L.add("timeseries", "Paused replicas", _targets(
        (f"sum(clazzify_paused{{{SEL}}})", "paused")), unit="short", w=8,
        description="Partitions paused for backpressure or while a transient failure is retried.")

    L.row("Failures")
    L.add("timeseries", "Dead letters / s by stage and reason", _targets(
        (f"sum by (stage, reason) (rate(clazzify_dead_letters_total{{{SEL}}}[$__rate_interval]))",
         "{{stage}}: {{reason}}")), unit="reqps", stack=True)
    L.add("timeseries", "Retries / s by stage", _targets(
        (f"sum by (stage) (rate(clazzify_retries_total{{{SEL}}}[$__rate_interval]))", "{{stage}}")),
        unit="reqps", stack=True)
    L.add("timeseries", "Rebalances by kind", _targets(
        (f"sum by (kind) (increase(clazzify_rebalances_total{{{SEL}}}[$__rate_interval]))", "{{kind}}")),
        unit="short", w=8)
    L.add("timeseries", "Offset commits / s by result", _targets(
        (f"sum by (result) (rate(clazzify_offset_commits_total{{{SEL}}}[$__rate_interval]))", "{{result}}")),
        unit="reqps", w=8)
    L.add("timeseries", "HTTP requests / s by path and code", _targets(
        (f"sum by (path, code) (rate(clazzify_http_requests_total{{{SEL}}}[$__rate_interval]))",
         "{{path}} {{code}}")), unit="reqps", w=8)

    L.row("Replicas and resources")
    L.add("timeseries", "Replicas", _targets(
        (f'kube_deployment_spec_replicas{{namespace=~"$namespace", deployment="clazzify"}}', "desired"),
        (f"count(up{{{SEL}}} == 1)", "up"),
        (f"sum(clazzify_ready{{{SEL}}})", "ready")), unit="short", w=8,
        description="desired comes from kube-state-metrics (the autoscaler's decision).")
    L.add("timeseries", "CPU per replica (cores)", _targets(
        (f"rate(process_cpu_seconds_total{{{SEL}}}[$__rate_interval])", "{{pod}}")), unit="short", w=8)
    L.add("timeseries", "Resident memory per replica", _targets(
        (f"process_resident_memory_bytes{{{SEL}}}", "{{pod}}")), unit="bytes", w=8)

    return {
        "__inputs": [],
        "annotations": {"list": []},
        "description": "clazzify: Kafka -> ONNX Runtime -> PostgreSQL image classification. "
                       "Runbook: docs/runbook.md.",
        "editable": True,
        "graphTooltip": 1,
        "links": [],
        "panels": L.panels,
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["clazzify", "kafka", "inference"],
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0, "refresh": 1},
            {"name": "namespace", "label": "Namespace", "type": "query", "datasource": DS,
             "definition": 'label_values(clazzify_ready{job="clazzify"}, namespace)',
             "query": {"query": 'label_values(clazzify_ready{job="clazzify"}, namespace)', "refId": "ns"},
             "includeAll": True, "multi": True, "current": {}, "hide": 0, "refresh": 2, "sort": 1},
        ]},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": "clazzify",
        "uid": "clazzify-overview",
        "version": 1,
    }


# ------------------------------------------------------------------- PrometheusRule
class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks, so the generated file reads like the source."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def prometheus_rule() -> str:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    obj = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "clazzify", "labels": {"release": "prometheus"}},
        "spec": {"groups": groups},
    }
    header = ("# GENERATED by deploy/generate.py from deploy/prometheus/clazzify-rules.yaml: edit that\n"
              "# file, then run `make -f mk/ops.mk ops-generate`. The label `release` must match your\n"
              "# Prometheus' ruleSelector (kube-prometheus-stack: the Helm release name).\n")
    return header + yaml.dump(obj, Dumper=_Dumper, sort_keys=False, width=100)


def outputs() -> dict[Path, str]:
    return {
        DASHBOARD: json.dumps(dashboard(), indent=2) + "\n",
        PROMETHEUS_RULE: prometheus_rule(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(path.relative_to(DEPLOY.parent))
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(DEPLOY.parent)}")
    if stale:
        print("stale generated files (run `make -f mk/ops.mk ops-generate`): "
              + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
