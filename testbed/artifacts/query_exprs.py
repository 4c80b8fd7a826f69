#!/usr/bin/env python3
"""Run every PromQL expression of the dashboards and alert rules against a
live Prometheus that scrapes tend.

Usage: query_exprs.py PROMETHEUS_URL REPO_ROOT

An expression fails when Prometheus rejects it (a parse or evaluation
error) or when it names a metric that has no series at all in Prometheus.
An expression that returns an empty vector because of a label filter or a
comparison passes, as long as its metric names exist. Also fails when a
loaded alerting rule reports an evaluation error. Prints one line per
failure and a summary line; exits 1 on any failure.
"""
import json
import pathlib
import re
import sys
import urllib.parse
import urllib.request

# Values for Grafana's variables: every cluster and queue, and the windows
# Grafana would choose for a 6 h range at the 2 s scrape interval used here.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "30s",
    "$__range": "1h",
    "$cluster": ".*",
    "$queue": ".*",
}
LABEL_VALUES = re.compile(r"^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*\w+\s*\)$")
# tend's metrics all start with tend_; up is the scrape status Prometheus
# adds to every target.
METRIC_NAME = re.compile(r"\b(tend_[a-z0-9_]+|up)\b")
QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


def get(base, path, **params):
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        return json.load(error)


def dashboard_expressions(root):
    for path in sorted((root / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard.get("panels", []):
            for target in panel.get("targets", []):
                yield f"{path.name} panel '{panel['title']}'", target["expr"]
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") != "query":
                continue
            query = variable["query"]["query"]
            match = LABEL_VALUES.match(query)
            if not match:
                yield f"{path.name} variable {variable['name']}", f"unsupported query: {query}"
                continue
            yield f"{path.name} variable {variable['name']}", match.group(1)


def rule_expressions(root):
    import yaml  # from the artifacts virtualenv

    rules = yaml.safe_load((root / "alerts" / "tend.rules.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield f"tend.rules.yaml {rule.get('alert') or rule.get('record')}", rule["expr"]


def substitute(expr):
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def main():
    base, root = sys.argv[1].rstrip("/"), pathlib.Path(sys.argv[2])
    names = set(get(base, "/api/v1/label/__name__/values")["data"])
    failures = 0
    checked = 0
    for where, expr in [*dashboard_expressions(root), *rule_expressions(root)]:
        checked += 1
        query = substitute(expr)
        reply = get(base, "/api/v1/query", query=query)
        if reply.get("status") != "success":
            print(f"FAIL {where}: {reply.get('errorType')}: {reply.get('error')}: {query}")
            failures += 1
            continue
        missing = sorted(set(METRIC_NAME.findall(QUOTED.sub('""', query))) - names)
        if missing:
            print(f"FAIL {where}: no series for {', '.join(missing)}")
            failures += 1
    for group in get(base, "/api/v1/rules")["data"]["groups"]:
        for rule in group["rules"]:
            if rule.get("health") not in ("ok", "unknown"):
                print(f"FAIL rule {rule['name']}: {rule.get('lastError')}")
                failures += 1
    print(f"queried {checked} expressions, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
