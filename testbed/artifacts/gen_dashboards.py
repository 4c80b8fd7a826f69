#!/usr/bin/env python3
"""Write tend's Grafana dashboards into dashboards/.

The dashboards are plain Grafana JSON (schemaVersion 39) so they import
through the UI, the HTTP API or a provisioning folder. This script is their
source: edit it and run it again. With --check, compare instead of writing
and exit 1 when a committed dashboard differs.

Every panel queries the data source chosen in the `datasource` variable.
"""
import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


class Layout:
    """Places panels left to right on Grafana's 24-column grid."""

    def __init__(self):
        self.x = 0
        self.y = 0
        self.row_height = 0
        self.next_id = 1

    def place(self, width, height):
        if self.x + width > 24:
            self.newline()
        pos = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.x += width
        self.row_height = max(self.row_height, height)
        return pos

    def newline(self):
        self.y += self.row_height
        self.x = 0
        self.row_height = 0

    def take_id(self):
        panel_id = self.next_id
        self.next_id += 1
        return panel_id


def targets(queries, instant=False):
    result = []
    for index, (expr, legend) in enumerate(queries):
        target = {
            "datasource": DATASOURCE,
            "expr": expr,
            "legendFormat": legend,
            "refId": chr(ord("A") + index),
        }
        if instant:
            target["instant"] = True
            target["range"] = False
        result.append(target)
    return result


def thresholds(steps):
    """Threshold steps from (value, color) pairs; the first value is None."""
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


def timeseries(layout, title, description, queries, unit="short", width=12, height=8,
               steps=None, stack=False, min_zero=True):
    defaults = {"unit": unit, "custom": {"fillOpacity": 10, "showPoints": "never"}}
    if min_zero:
        defaults["min"] = 0
    if stack:
        defaults["custom"]["stacking"] = {"group": "A", "mode": "normal"}
    if steps:
        defaults["thresholds"] = thresholds(steps)
        defaults["custom"]["thresholdsStyle"] = {"mode": "line"}
    return {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "gridPos": layout.place(width, height),
        "id": layout.take_id(),
        "options": {
            "legend": {"calcs": ["lastNotNull", "max"], "displayMode": "table",
                       "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": targets(queries),
        "title": title,
        "type": "timeseries",
    }


def stat(layout, title, description, queries, unit="short", width=6, height=5,
         steps=None, color_mode="background"):
    return {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": thresholds(steps or [(None, "green")]),
                "color": {"mode": "thresholds"},
            },
            "overrides": [],
        },
        "gridPos": layout.place(width, height),
        "id": layout.take_id(),
        "options": {
            "colorMode": color_mode,
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "value_and_name",
        },
        "targets": targets(queries, instant=True),
        "title": title,
        "type": "stat",
    }


def row(layout, title):
    layout.newline()
    panel = {
        "collapsed": False,
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": layout.y},
        "id": layout.take_id(),
        "panels": [],
        "title": title,
        "type": "row",
    }
    layout.y += 1
    return panel


def datasource_variable():
    return {
        "hide": 0,
        "label": "Data source",
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "type": "datasource",
    }


def query_variable(name, label, metric, label_name):
    definition = f"label_values({metric}, {label_name})"
    return {
        "allValue": ".*",
        "datasource": DATASOURCE,
        "hide": 0,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        "query": {"qryType": 1, "query": definition, "refId": f"{name}-values"},
        "refresh": 2,
        "sort": 1,
        "type": "query",
    }


def dashboard(uid, title, description, panels, variables):
    return {
        "annotations": {"list": []},
        "description": description,
        "editable": True,
        "graphTooltip": 1,
        "links": [{"asDropdown": True, "icon": "external link", "includeVars": True,
                   "keepTime": True, "tags": ["tend"], "targetBlank": False, "title": "tend",
                   "tooltip": "Other tend dashboards", "type": "dashboards"}],
        "panels": panels,
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["tend"],
        "templating": {"list": [datasource_variable(), *variables]},
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "",
        "title": title,
        "uid": uid,
        "version": 1,
    }


def overview():
    layout = Layout()
    panels = [
        row(layout, "Loop health"),
        stat(layout, "Targets up", "Scrape status of every tend target (1 up, 0 down).",
             [('up{job="tend"}', "{{instance}}")],
             steps=[(None, "red"), (1, "green")]),
        stat(layout, "Consecutive failures",
             "Failed passes in a row per loop. /readyz stays 503 for a loop that has never "
             "succeeded; TendLoopFailing fires at 3 for 5 minutes.",
             [("max by (loop) (tend_reconcile_consecutive_failures)", "{{loop}}")],
             width=9, steps=[(None, "green"), (1, "yellow"), (3, "red")]),
        stat(layout, "Since last success",
             "Time since each loop last finished a successful pass. Compare with the loop's "
             "interval: ecs-capacity 30s, scheduler rounds every second, instagram 5m by default.",
             [("time() - max by (loop) (tend_reconcile_last_success_timestamp_seconds)", "{{loop}}")],
             unit="s", width=9, steps=[(None, "green"), (600, "yellow"), (3600, "red")]),
        row(layout, "Passes"),
        timeseries(layout, "Passes by loop and result",
                   "Passes finished per second, split by success and error.",
                   [(f"sum by (loop, result) (rate(tend_reconcile_passes_total[{RATE}]))",
                     "{{loop}} {{result}}")], unit="ops"),
        timeseries(layout, "Error ratio", "Share of passes that failed, per loop.",
                   [(f'sum by (loop) (rate(tend_reconcile_passes_total{{result="error"}}[{RATE}]))'
                     f" / sum by (loop) (rate(tend_reconcile_passes_total[{RATE}]))", "{{loop}}")],
                   unit="percentunit"),
        timeseries(layout, "Consecutive failures over time",
                   "A rising line is a loop in backoff; it drops to 0 at the next success.",
                   [("max by (loop) (tend_reconcile_consecutive_failures)", "{{loop}}")],
                   steps=[(None, "green"), (3, "red")]),
        timeseries(layout, "Pass duration p50 and p90",
                   "Quantiles of pass durations from the histogram. A pass near its "
                   "pass_timeout is about to fail.",
                   [(f"histogram_quantile(0.5, sum by (loop, le) "
                     f"(rate(tend_reconcile_duration_seconds_bucket[{RATE}])))", "{{loop}} p50"),
                    (f"histogram_quantile(0.9, sum by (loop, le) "
                     f"(rate(tend_reconcile_duration_seconds_bucket[{RATE}])))", "{{loop}} p90")],
                   unit="s"),
        row(layout, "AWS"),
        timeseries(layout, "AWS requests by outcome",
                   "HTTP requests to AWS, retries included. throttled and server_error are "
                   "retried by the SDK (3 attempts) before a pass sees an error.",
                   [(f"sum by (service, outcome) (rate(tend_aws_requests_total[{RATE}]))",
                     "{{service}} {{outcome}}")], unit="reqps", width=24),
    ]
    return dashboard("tend-overview", "tend / Overview",
                     "Health of tend's reconcile loops: pass results, failures and AWS calls.",
                     panels, [])


def instagram():
    layout = Layout()
    panels = [
        row(layout, "Sync state"),
        stat(layout, "Items out of sync",
             "Items the last pass left out of sync, by kind. Non-zero for an hour fires "
             "TendInstagramDrift.",
             [("sum by (kind) (tend_instagram_drift_items)", "{{kind}}")],
             width=12, steps=[(None, "green"), (1, "yellow")]),
        stat(layout, "Token expires in",
             "Time left before the Instagram access token expires. Known only after tend has "
             "refreshed the token once; no value means unknown. TendInstagramTokenExpiring "
             "fires under 7 days.",
             [("max(tend_instagram_token_expiry_timestamp_seconds > 0) - time()", "token")],
             unit="s", width=12, steps=[(None, "red"), (604800, "yellow"), (2592000, "green")]),
        timeseries(layout, "Drift by kind",
                   "not_archived: no sidecar in S3. not_posted: no Ghost post. out_of_date: the "
                   "post's fingerprint differs from the media.",
                   [("sum by (kind) (tend_instagram_drift_items)", "{{kind}}")], width=24),
        row(layout, "Writes"),
        timeseries(layout, "Archived and posted per hour",
                   "Items archived in S3 and Ghost posts created and updated in the last hour.",
                   [("sum(increase(tend_instagram_archived_items_total[1h]))", "archived"),
                    ("sum(increase(tend_instagram_posts_created_total[1h]))", "posts created"),
                    ("sum(increase(tend_instagram_posts_updated_total[1h]))", "posts updated")]),
        timeseries(layout, "Archive throughput",
                   "Bytes streamed from the Instagram CDN into S3.",
                   [(f"sum(rate(tend_instagram_archived_bytes_total[{RATE}]))", "bytes")],
                   unit="Bps"),
        timeseries(layout, "Collisions and URL refreshes per hour",
                   "Ghost edit collisions resolved by reading again, and expired CDN URLs "
                   "replaced. Both are handled; a steady rise is worth a look.",
                   [("sum(increase(tend_instagram_post_collisions_total[1h]))", "collisions"),
                    ("sum(increase(tend_instagram_url_refreshes_total[1h]))", "URL refreshes")]),
        timeseries(layout, "Loop passes",
                   "Instagram passes per hour by result.",
                   [('sum by (result) (increase(tend_reconcile_passes_total{loop="instagram"}[1h]))',
                     "{{result}}")]),
        row(layout, "Graph API"),
        timeseries(layout, "API requests by endpoint and outcome",
                   "Graph API calls. token_invalid means the token was rejected (code 190).",
                   [(f"sum by (endpoint, outcome) (rate(tend_instagram_api_requests_total[{RATE}]))",
                     "{{endpoint}} {{outcome}}")], unit="reqps"),
        timeseries(layout, "API usage",
                   "Share of the app's rate limit used, from the X-App-Usage header. Meta "
                   "throttles at 100%.",
                   [("max by (kind) (tend_instagram_api_usage_percent)", "{{kind}}")],
                   unit="percent", steps=[(None, "green"), (80, "yellow"), (100, "red")]),
        timeseries(layout, "Throttled passes",
                   "Passes paused for 15 minutes because the API throttled tend, per hour.",
                   [("sum(increase(tend_instagram_throttled_total[1h]))", "throttled")],
                   width=24),
    ]
    return dashboard("tend-instagram", "tend / Instagram sync",
                     "Instagram to S3 archive and Ghost posts: drift, writes, token and API "
                     "limits.", panels, [])


def ecs_capacity():
    layout = Layout()
    cluster = 'cluster=~"$cluster"'
    panels = [
        row(layout, "Cache"),
        stat(layout, "Clusters cached", "Clusters in the capacity cache.",
             [("max(tend_ecs_clusters)", "clusters")], color_mode="none"),
        stat(layout, "Missing clusters",
             "Configured clusters that ECS reports as missing: a typo or a deleted cluster.",
             [("max(tend_ecs_missing_clusters)", "missing")],
             steps=[(None, "green"), (1, "red")]),
        stat(layout, "Oldest cache entry",
             "Age of the oldest selected cluster's observation. The scheduler refuses entries "
             "older than ecs_capacity.max_age (2m by default).",
             [(f"max(time() - tend_ecs_cluster_observed_timestamp_seconds{{{cluster}}})", "age")],
             unit="s", width=12, steps=[(None, "green"), (120, "yellow"), (300, "red")]),
        timeseries(layout, "Cache age by cluster",
                   "time() minus the observation time. It saws between 0 and the refresh "
                   "interval while the loop is healthy. TendCapacityCacheStale fires above 5m.",
                   [(f"time() - max by (cluster) (tend_ecs_cluster_observed_timestamp_seconds{{{cluster}}})",
                     "{{cluster}}")], unit="s", steps=[(None, "green"), (300, "red")], width=24),
        row(layout, "Free capacity"),
        timeseries(layout, "Free CPU",
                   "Remaining CPU units (1024 per vCPU) summed over schedulable instances.",
                   [(f"max by (cluster) (tend_ecs_cluster_free_cpu_units{{{cluster}}})", "{{cluster}}")]),
        timeseries(layout, "Largest free CPU on one instance",
                   "Most CPU units free on any single schedulable instance: no task larger than "
                   "this starts now.",
                   [(f"max by (cluster) (tend_ecs_cluster_largest_free_cpu_units{{{cluster}}})",
                     "{{cluster}}")]),
        timeseries(layout, "Free memory",
                   "Remaining memory summed over schedulable instances.",
                   [(f"max by (cluster) (tend_ecs_cluster_free_memory_bytes{{{cluster}}})", "{{cluster}}")],
                   unit="bytes"),
        timeseries(layout, "Largest free memory on one instance",
                   "Most memory free on any single schedulable instance. Far below free memory "
                   "divided by instances means fragmentation.",
                   [(f"max by (cluster) (tend_ecs_cluster_largest_free_memory_bytes{{{cluster}}})",
                     "{{cluster}}")], unit="bytes"),
        row(layout, "Instances"),
        timeseries(layout, "Schedulable instances",
                   "ACTIVE instances with a connected agent: the only ones counted as free room.",
                   [(f"max by (cluster) (tend_ecs_cluster_schedulable_instances{{{cluster}}})",
                     "{{cluster}}")]),
        timeseries(layout, "Registered instances by status",
                   "Every registered instance by ECS status; DRAINING instances take no new tasks.",
                   [(f"max by (cluster, status) (tend_ecs_cluster_instances{{{cluster}}}) > 0",
                     "{{cluster}} {{status}}")], stack=True),
        stat(layout, "Fargate-only clusters",
             "1 for a cluster that runs tasks but has no container instances: nothing to track, "
             "and the cluster is not full.",
             [(f"max by (cluster) (tend_ecs_cluster_fargate_only{{{cluster}}})", "{{cluster}}")],
             width=24, height=4, color_mode="none"),
        row(layout, "ECS API"),
        timeseries(layout, "ECS requests by operation and outcome",
                   "ECS calls of the capacity loop and the scheduler, retries included.",
                   [(f'sum by (operation, outcome) (rate(tend_aws_requests_total{{service="ECS"}}[{RATE}]))',
                     "{{operation}} {{outcome}}")], unit="reqps"),
        timeseries(layout, "Refresh duration p90",
                   "90th percentile of ecs-capacity pass durations; a pass is bounded by "
                   "ecs_capacity.pass_timeout (2m by default).",
                   [(f'histogram_quantile(0.9, sum by (le) (rate(tend_reconcile_duration_seconds_bucket{{loop="ecs-capacity"}}[{RATE}])))',
                     "p90")], unit="s"),
    ]
    variables = [query_variable("cluster", "Cluster",
                                "tend_ecs_cluster_observed_timestamp_seconds", "cluster")]
    return dashboard("tend-ecs-capacity", "tend / ECS capacity",
                     "The Redis capacity cache of ECS clusters: free and largest-fit CPU and "
                     "memory, instances, cache age and ECS calls.", panels, variables)


def scheduler():
    layout = Layout()
    queue = 'queue=~"$queue"'

    def wait_quantile(q):
        return (f"histogram_quantile({q}, sum by (queue, le) "
                f"(rate(tend_scheduler_wait_seconds_bucket{{{queue}}}[{RATE}])))")

    def latency_quantile(q):
        return (f"histogram_quantile({q}, sum by (le) "
                f"(rate(tend_scheduler_launch_latency_seconds_bucket[{RATE}])))")

    panels = [
        row(layout, "Queues"),
        timeseries(layout, "Queue depth",
                   "Visible messages per priority queue (SQS ApproximateNumberOfMessages, read "
                   "every 10 s).",
                   [(f"max by (queue) (tend_scheduler_queue_depth{{{queue}}})", "{{queue}}")]),
        timeseries(layout, "Held requests",
                   "Received requests waiting for room, kept invisible in SQS. Held high-priority "
                   "requests for 15 minutes fire TendSchedulerHighPriorityHeld.",
                   [(f"sum by (queue) (tend_scheduler_held_requests{{{queue}}})", "{{queue}}")]),
        timeseries(layout, "Placements",
                   "Tasks ECS accepted per second, per queue.",
                   [(f"sum by (queue) (rate(tend_scheduler_placements_total{{{queue}}}[{RATE}]))",
                     "{{queue}}")], unit="ops"),
        timeseries(layout, "Wait time p50, p90, p99",
                   "Time from enqueue (SQS SentTimestamp) to ECS accepting the task. Requests "
                   "still held are not in the histogram yet.",
                   [(wait_quantile(0.5), "{{queue}} p50"), (wait_quantile(0.9), "{{queue}} p90"),
                    (wait_quantile(0.99), "{{queue}} p99")], unit="s"),
        row(layout, "Problems"),
        stat(layout, "Priority inversions", "Must stay 0; any increase fires "
             "TendSchedulerPriorityInversion.",
             [("sum(increase(tend_scheduler_priority_inversions_total[$__range]))", "in range")],
             steps=[(None, "green"), (1, "red")]),
        stat(layout, "Tasks stuck provisioning",
             "Launched tasks not RUNNING after scheduler.stuck_after.",
             [("sum(tend_scheduler_tasks_stuck_provisioning)", "stuck")],
             steps=[(None, "green"), (1, "yellow")]),
        stat(layout, "Stopped before RUNNING",
             "Launched tasks that stopped without ever running, in the time range.",
             [("sum(increase(tend_scheduler_tasks_stopped_before_running_total[$__range]))",
               "in range")], steps=[(None, "green"), (1, "yellow")]),
        stat(layout, "Dead-lettered", "Requests moved to the dead-letter queue in the time range.",
             [("sum(increase(tend_scheduler_dead_lettered_total[$__range]))", "in range")],
             steps=[(None, "green"), (1, "yellow")]),
        timeseries(layout, "Dead-lettered by reason",
                   "invalid_request: the body failed validation. cannot_fit: larger than any "
                   "instance. unknown_cluster: not in the cache. launch_failed: ECS rejected it "
                   "scheduler.max_receives times.",
                   [(f"sum by (reason) (increase(tend_scheduler_dead_lettered_total[{RATE}]))",
                     "{{reason}}")], stack=True),
        timeseries(layout, "Capacity rejections by reason",
                   "RunTask capacity failures (RESOURCE:CPU, RESOURCE:MEMORY, AGENT): the cache "
                   "was behind. The request is retried at once and never counts as a failure.",
                   [(f"sum by (reason) (rate(tend_scheduler_rejections_total[{RATE}]))", "{{reason}}")],
                   unit="ops"),
        timeseries(layout, "Launch failures by reason",
                   "transient: throttling, server or network errors. rejected: ECS refused the "
                   "request itself (for example an unknown task definition).",
                   [(f"sum by (reason) (rate(tend_scheduler_launch_failures_total[{RATE}]))",
                     "{{reason}}")], unit="ops"),
        timeseries(layout, "Priority inversions over time",
                   "Lower-priority starts while a higher-priority request that fitted waited.",
                   [(f"sum(increase(tend_scheduler_priority_inversions_total[{RATE}]))", "inversions")]),
        row(layout, "Launches"),
        timeseries(layout, "Launch latency p50, p90, p99",
                   "Time from ECS accepting a task to the task reaching RUNNING: image pulls and "
                   "agent start-up.",
                   [(latency_quantile(0.5), "p50"), (latency_quantile(0.9), "p90"),
                    (latency_quantile(0.99), "p99")], unit="s"),
        timeseries(layout, "SQS requests by operation and outcome",
                   "SQS calls of the scheduler, retries included.",
                   [(f'sum by (operation, outcome) (rate(tend_aws_requests_total{{service="SQS"}}[{RATE}]))',
                     "{{operation}} {{outcome}}")], unit="reqps"),
    ]
    variables = [query_variable("queue", "Queue", "tend_scheduler_queue_depth", "queue")]
    return dashboard("tend-scheduler", "tend / Scheduler",
                     "The SQS priority scheduler: queues, held requests, placements, waits, "
                     "rejections, dead letters and launch latency.", panels, variables)


DASHBOARDS = {
    "overview.json": overview,
    "instagram.json": instagram,
    "ecs-capacity.json": ecs_capacity,
    "scheduler.json": scheduler,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    failed = False
    for name, build in DASHBOARDS.items():
        text = json.dumps(build(), indent=2) + "\n"
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                print(f"dashboards/{name} differs from testbed/artifacts/gen_dashboards.py; "
                      "run the script", file=sys.stderr)
                failed = True
        else:
            path.write_text(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
