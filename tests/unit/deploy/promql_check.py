"""Which metrics a PromQL expression names, and which ones the consumer exports.

Used by the deploy tests (dashboard, alert rules, HPA metric) against the metric families of
:class:`consumer.metrics.Metrics`, and reusable by an integration test against a live
``/metrics`` scrape::

    from tests.unit.deploy.promql_check import exported_names, metric_names_in, unknown_metrics

    exported = exported_names(scrape_text)          # or a CollectorRegistry
    assert metric_names_in('rate(clazzify_images_total[5m])') == {"clazzify_images_total"}
    assert unknown_metrics(deploy_expressions(), exported, STANDARD_METRICS | recorded_names()) == {}

The parser is PyPI's ``promql-parser``, installed in ``.venv-tools`` (``make ops-tools``), not
in the application's environment. Called from elsewhere, this module runs itself in that
environment as a subprocess (one per batch of expressions); run there, it parses directly.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
TOOLS_PYTHON = REPO / ".venv-tools" / "bin" / "python"

#: Metrics that are not the consumer's but that queries may name: Prometheus' own `up`, and
#: the kube-state-metrics series the dashboard uses for the autoscaler's desired replicas.
STANDARD_METRICS = frozenset({
    "up",
    "kube_deployment_spec_replicas",
    "kube_deployment_status_replicas",
})

#: Grafana's interval macros, replaced by a plain duration before parsing.
_GRAFANA_MACROS = re.compile(r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}")


class PromQLError(ValueError):
    """An expression that promql-parser rejects (the message carries the parser's)."""


def grafana_to_promql(expr: str) -> str:
    """A Grafana query as plain PromQL: `$__rate_interval` and friends become `5m`.

    Template variables inside label matchers (`namespace=~"$namespace"`) are strings to the
    parser and stay as they are.
    """
    return _GRAFANA_MACROS.sub("5m", expr)


def metric_names_in(expr: str) -> set[str]:
    """The metric names one expression selects (raises :class:`PromQLError` if it does not parse)."""
    return metric_names_in_many([expr])[expr]


def metric_names_in_many(exprs: Iterable[str]) -> dict[str, set[str]]:
    """:func:`metric_names_in` for many expressions at once (one subprocess, not one each)."""
    exprs = list(dict.fromkeys(exprs))
    try:
        import promql_parser  # noqa: F401  (present only in .venv-tools)
    except ImportError:
        raw = _in_tools_venv(exprs)
    else:
        raw = _parse_all(exprs)
    result: dict[str, set[str]] = {}
    errors = []
    for expr in exprs:
        outcome = raw[expr]
        if "error" in outcome:
            errors.append(f"{expr!r}: {outcome['error']}")
        else:
            result[expr] = set(outcome["names"])
    if errors:
        raise PromQLError("PromQL that does not parse:\n" + "\n".join(errors))
    return result


def exported_names(source: Any) -> set[str]:
    """Every series name a target exports: from a CollectorRegistry, or /metrics text.

    A family exports its name with the suffixes of its type (counter: ``_total``,
    ``_created``; histogram: ``_bucket``, ``_count``, ``_sum``, ``_created``; summary:
    ``_count``, ``_sum``; gauge and untyped: the bare name). Families are listed even when
    no label set has been observed yet, so a registry that never ran still names them all.
    """
    if isinstance(source, str):
        from prometheus_client.parser import text_string_to_metric_families

        families = list(text_string_to_metric_families(source))
    else:
        families = list(source.collect())
    names: set[str] = set()
    for family in families:
        names |= _family_series(family.name, family.type)
        names |= {sample.name for sample in family.samples}
    return names


def unknown_metrics(exprs: Iterable[str], exported: set[str],
                    allowed: Iterable[str] = STANDARD_METRICS) -> dict[str, set[str]]:
    """For each expression naming a metric outside `exported` | `allowed`: those names."""
    known = set(exported) | set(allowed)
    found = metric_names_in_many(exprs)
    return {expr: names - known for expr, names in found.items() if names - known}


def deploy_expressions() -> list[str]:
    """Every PromQL expression under deploy/: alert/recording rules, dashboard queries (Grafana
    macros replaced), the dashboard's variable query, the prometheus-adapter series query."""
    rules = _rule_documents()
    exprs = [r["expr"] for g in rules["clazzify-rules.yaml"]["groups"] for r in g["rules"]]
    exprs += [r["seriesQuery"] for r in rules["adapter-rules.yaml"]["rules"]["custom"]]
    board = json.loads((REPO / "deploy" / "grafana" / "clazzify-dashboard.json").read_text(encoding="utf-8"))
    exprs += [grafana_to_promql(t["expr"]) for p in board["panels"] for t in p.get("targets", [])]
    for var in board["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            m = re.fullmatch(r"label_values\((.+),\s*\w+\)", query["query"])
            if m:
                exprs.append(m.group(1))
    return exprs


def recorded_names() -> set[str]:
    """Series that the recording rules create (queries may use them like exported metrics)."""
    groups = _rule_documents()["clazzify-rules.yaml"]["groups"]
    return {r["record"] for g in groups for r in g["rules"] if "record" in r}


def _rule_documents() -> dict[str, Any]:
    folder = REPO / "deploy" / "prometheus"
    code = ("import json, sys, yaml; "
            "json.dump({p: yaml.safe_load(open(sys.argv[1] + '/' + p)) for p in sys.argv[2:]}, sys.stdout)")
    names = ["clazzify-rules.yaml", "adapter-rules.yaml"]
    try:
        import yaml
    except ImportError:
        if not TOOLS_PYTHON.exists():
            raise RuntimeError(f"{TOOLS_PYTHON} is missing: run `make -f mk/ops.mk ops-tools`") from None
        proc = subprocess.run([str(TOOLS_PYTHON), "-c", code, str(folder), *names], capture_output=True,
                              text=True, timeout=60, check=True)
        return json.loads(proc.stdout)
    return {n: yaml.safe_load((folder / n).read_text(encoding="utf-8")) for n in names}


def _family_series(name: str, kind: str) -> set[str]:
    if kind == "counter":
        base = name[: -len("_total")] if name.endswith("_total") else name
        return {base + "_total", base + "_created"}
    if kind in ("histogram", "gaugehistogram"):
        return {name + "_bucket", name + "_count", name + "_sum", name + "_created", name + "_gcount", name + "_gsum"}
    if kind == "summary":
        return {name, name + "_count", name + "_sum", name + "_created"}
    return {name}


# ------------------------------------------------------------------ the parsing side
def _parse_all(exprs: list[str]) -> dict[str, dict[str, Any]]:
    import promql_parser

    out: dict[str, dict[str, Any]] = {}
    for expr in exprs:
        try:
            ast = promql_parser.parse(expr)
        except Exception as exc:  # the parser raises plain ValueError/RuntimeError
            out[expr] = {"error": str(exc)}
            continue
        names: set[str] = set()
        problems: list[str] = []

        def visit(node: Any) -> None:
            if type(node).__name__ != "VectorSelector":
                return
            if node.name:
                names.add(node.name)
                return
            by_name = [m for m in node.matchers.matchers if m.name == "__name__"]
            if len(by_name) == 1 and by_name[0].op == promql_parser.MatchOp.Equal:
                names.add(by_name[0].value)
            else:
                problems.append(f"selector without a plain metric name: {node}")

        promql_parser.walk(ast, visit)
        out[expr] = {"error": "; ".join(problems)} if problems else {"names": sorted(names)}
    return out


def _in_tools_venv(exprs: list[str]) -> dict[str, dict[str, Any]]:
    if not TOOLS_PYTHON.exists():
        raise RuntimeError(f"{TOOLS_PYTHON} is missing: run `make -f mk/ops.mk ops-tools` "
                           "(promql-parser lives in the ops tools environment)")
    proc = subprocess.run([str(TOOLS_PYTHON), str(Path(__file__).resolve())], input=json.dumps(exprs),
                          capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"promql_check in .venv-tools failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


if __name__ == "__main__":
    # Inside .venv-tools: JSON list of expressions on stdin, {expr: {names|error}} on stdout.
    json.dump(_parse_all(json.load(sys.stdin)), sys.stdout)
