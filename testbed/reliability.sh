#!/usr/bin/env bash
# Runs the reliability suites (faults on every peer, Redis outage, kill -9
# during writes, backfill and scheduling, secrets and hostile input) a given
# number of times and prints the figures each test measures. The same tests
# run once in testbed/test.sh; this script repeats them for the report in
# docs/reliability.md.
#
#   testbed/reliability.sh [ROUNDS]   (default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
source testbed/lib.sh

rounds=${1:-1}
ensure_redis
ensure_moto
use_dummy_aws
ghost_dir=$(mktemp -d)
output=$(mktemp)
trap 'kill ${MOTO_PID:-} ${GHOST_PID:-} 2>/dev/null || true; rm -rf "$ghost_dir" "$output"' EXIT
start_moto
testbed/ghost.sh install >&2
ghost_env=$(testbed/ghost.sh start "$ghost_dir")
eval "$ghost_env"

# Test names, as cargo test filters.
suites=(
  faults::
  scheduler_flow::redis_outage_blocks_launches_then_resumes
  crash::kill_during_writes_keeps_cache_consistent
  instagram::kills_during_backfill_leave_one_post_each
  scheduler_flow::kills_during_scheduling_lose_and_duplicate_nothing
  ecs_events::task_event_kept_when_instance_unreadable
  security::
  instagram::caption_markup_stays_text
  instagram::foreign_media_host_refused
)

cargo build --tests --quiet
for round in $(seq "$rounds"); do
  log "round $round of $rounds"
  started=$(date +%s)
  # One test at a time: the figures then come from an otherwise idle
  # machine, and the printed lines do not interleave.
  cargo test --quiet --test integration -- --nocapture --test-threads=1 "${suites[@]}" >"$output" 2>&1 || {
    cat "$output" >&2
    exit 1
  }
  grep -oE '(capacity|events|scheduler|instagram|redis outage|cache kill -9|instagram kill -9|scheduler kill -9|kill points seed): .*|test result: .*' "$output"
  log "round $round passed in $(($(date +%s) - started)) s"
done
