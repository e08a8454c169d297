"""Dashboard and alert rules: every query parses and names only what the consumer exports."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client import generate_latest

from consumer.metrics import Metrics

from .promql_check import (STANDARD_METRICS, deploy_expressions, exported_names, grafana_to_promql,
                           metric_names_in_many, recorded_names, unknown_metrics)
from .tooling import REPO, TOOLS_PYTHON, one, run, tool, yaml_file

RULES = REPO / "deploy" / "prometheus" / "clazzify-rules.yaml"
DASHBOARD = REPO / "deploy" / "grafana" / "clazzify-dashboard.json"
RUNBOOK = REPO / "docs" / "runbook.md"

#: What issue 7 asks the alerts to cover, by the alert that covers it.
REQUIRED_ALERTS = {
    "ClazzifyBacklogGrowing": "backlog growing",
    "ClazzifyDeadLetterSpike": "dead-letter spike",
    "ClazzifyNoConsumerUp": "no consumer up",
    "ClazzifyE2ELatencyHigh": "e2e p99 high",
    "ClazzifyReadinessFlapping": "readiness flapping",
}
#: What the dashboard must show, by a series it must query.
REQUIRED_DASHBOARD_SERIES = {
    "clazzify_images_total", "clazzify_batch_size_bucket", "clazzify_stage_seconds_bucket",
    "clazzify_end_to_end_latency_seconds_bucket", "clazzify_consumer_lag", "clazzify_backlog_seconds",
    "clazzify_dead_letters_total", "clazzify_model_info", "process_cpu_seconds_total",
    "process_resident_memory_bytes", "kube_deployment_spec_replicas",
}


def _rules() -> list[dict[str, Any]]:
    return [r for g in yaml_file(RULES)[0]["groups"] for r in g["rules"]]


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _dashboard_exprs() -> list[str]:
    exprs = [grafana_to_promql(t["expr"]) for p in _dashboard()["panels"] for t in p.get("targets", [])]
    for var in _dashboard()["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            m = re.fullmatch(r"label_values\((.+),\s*\w+\)", query["query"])
            assert m, f"template variable {var['name']}: unexpected query {query['query']}"
            exprs.append(m.group(1))
    return exprs


def _exported() -> set[str]:
    return exported_names(Metrics().registry)


def _slugs(markdown: str) -> set[str]:
    """GitHub's heading anchors."""
    slugs = set()
    for heading in re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        slugs.add(slug)
    return slugs


def test_generated_files_are_fresh() -> None:
    proc = run([tool(TOOLS_PYTHON), REPO / "deploy" / "generate.py", "--check"])
    assert proc.returncode == 0, proc.stderr


def test_prometheus_rule_wraps_the_rules_file() -> None:
    docs = yaml_file(REPO / "deploy/k8s/components/monitoring/prometheusrule.yaml")
    assert docs[0]["spec"]["groups"] == yaml_file(RULES)[0]["groups"]
    assert one("prod", "PrometheusRule", "clazzify")["spec"]["groups"] == yaml_file(RULES)[0]["groups"]


def test_exported_names_agree_between_registry_and_scrape() -> None:
    registry = Metrics().registry
    from_text = exported_names(generate_latest(registry).decode())
    from_registry = exported_names(registry)
    # The text holds only families with samples; all of those the registry names too.
    assert from_text <= from_registry
    assert {"clazzify_images_total", "clazzify_batch_size_bucket", "clazzify_backlog_seconds"} <= from_registry


def test_every_alert_query_parses_and_names_exported_metrics() -> None:
    rules = _rules()
    recorded = {r["record"] for r in rules if "record" in r}
    unknown = unknown_metrics([r["expr"] for r in rules], _exported(), STANDARD_METRICS | recorded)
    assert not unknown, "metrics the consumer does not export:\n" + "\n".join(f"{v}: {k}" for k, v in unknown.items())
    for rule in rules:
        if "record" in rule:
            assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", rule["record"]), f"{rule['record']}: level:metric:operations"


def test_every_dashboard_query_parses_and_names_exported_metrics() -> None:
    exprs = _dashboard_exprs()
    unknown = unknown_metrics(exprs, _exported())
    assert not unknown, "metrics the consumer does not export:\n" + "\n".join(f"{v}: {k}" for k, v in unknown.items())
    named = set().union(*metric_names_in_many(exprs).values())
    missing = REQUIRED_DASHBOARD_SERIES - named
    assert not missing, f"the dashboard shows nothing of {sorted(missing)}"


def test_dashboard_shows_every_consumer_metric() -> None:
    named = set().union(*metric_names_in_many(_dashboard_exprs()).values())
    families = {f.name for f in Metrics().registry.collect() if f.name.startswith("clazzify_")}
    unseen = sorted(f for f in families if not any(n == f or n.startswith(f + "_") for n in named))
    assert not unseen, f"add a panel to deploy/generate.py for {unseen}"


def test_dashboard_is_well_formed() -> None:
    board = _dashboard()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    assert board["uid"] and board["title"]
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, f"{panel['title']} overflows the grid"
        if panel["type"] != "row":
            assert panel["targets"], f"{panel['title']} queries nothing"
            assert panel["datasource"]["uid"] == "${datasource}", "no hard-coded data source"
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables


def test_alerts_cover_the_issue_and_link_the_runbook() -> None:
    alerts = {r["alert"]: r for r in _rules() if "alert" in r}
    missing = set(REQUIRED_ALERTS) - set(alerts)
    assert not missing, f"missing alerts: {sorted(missing)}"
    anchors = _slugs(RUNBOOK.read_text(encoding="utf-8"))
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert "for" in rule, f"{name}: a `for` keeps one bad scrape from paging"
        for key in ("summary", "description", "runbook_url"):
            assert rule["annotations"].get(key), f"{name}: annotation {key}"
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor == name.lower(), f"{name}: runbook_url anchor should be #{name.lower()}"
        assert anchor in anchors, f"docs/runbook.md has no section '{name}' (#{anchor})"


def test_deploy_expressions_is_the_whole_set() -> None:
    """The helper an integration test uses against a live scrape sees every query checked here."""
    exprs = set(deploy_expressions())
    assert {r["expr"] for r in _rules()} <= exprs and set(_dashboard_exprs()) <= exprs
    assert recorded_names() == {r["record"] for r in _rules() if "record" in r}
    assert not unknown_metrics(exprs, _exported(), STANDARD_METRICS | recorded_names())


@pytest.mark.parametrize("bad", ["rate(clazzify_images_total[5m]", "clazzify_nope_total"])
def test_the_checker_catches_mistakes(bad: str) -> None:
    from .promql_check import PromQLError

    if bad.endswith("_total"):
        assert unknown_metrics([bad], _exported()) == {bad: {bad}}
    else:
        with pytest.raises(PromQLError):
            metric_names_in_many([bad])
