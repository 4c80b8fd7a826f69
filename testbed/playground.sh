#!/usr/bin/env bash
# Local playground: starts what tend needs on 127.0.0.1 (Redis if none is
# running, moto, the ECS fake with the sample clusters of
# testbed/playground.json), then runs `tend run` in the foreground.
# Ctrl-C stops tend and every peer this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
source testbed/lib.sh

port="${PLAYGROUND_PORT:-9464}"
state=.playground
mkdir -p "$state"

ensure_redis
ensure_moto
use_dummy_aws
log "building tend"
cargo build --quiet --bins
bin="${CARGO_TARGET_DIR:-target}/debug"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

start_moto "$state/moto.log"
pids+=("$MOTO_PID")

"$bin/tend-ecs-fake" --listen 127.0.0.1:0 --seed testbed/playground.json >"$state/ecs-fake.out" 2>"$state/ecs-fake.log" &
pids+=("$!")
for _ in $(seq 100); do
  ecs_url=$(sed -n 's/^listening on //p' "$state/ecs-fake.out" 2>/dev/null | head -n1)
  [ -n "$ecs_url" ] && break
  sleep 0.1
done
[ -n "${ecs_url:-}" ] || { log "the ECS fake did not start; see $state/ecs-fake.log"; exit 1; }

export AWS_ENDPOINT_URL="$MOTO_ENDPOINT" AWS_ENDPOINT_URL_ECS="$ecs_url"
export TEND_HTTP_LISTEN="127.0.0.1:$port" TEND_ECS_CAPACITY_INTERVAL="${TEND_ECS_CAPACITY_INTERVAL:-10s}"

cat <<TXT

tend playground
  ECS fake (sample clusters web, batch, serverless): $ecs_url
  moto (S3, SQS):                                    $MOTO_ENDPOINT
  Redis:                                             redis://127.0.0.1:6379

Look at:
  curl -s http://127.0.0.1:$port/metrics | grep ^tend_ecs
  curl -s http://127.0.0.1:$port/status
  curl -s http://127.0.0.1:$port/readyz
  $bin/tend capacity
  $bin/tend capacity --cluster web --cpu 1024 --memory 4096   # fits: exit 0
  $bin/tend capacity --cluster batch --memory 1024            # too fragmented: exit 1

Ctrl-C stops tend and the peers.

TXT
"$bin/tend" run &
tend_pid=$!
pids+=("$tend_pid")
# Forward a stop request to tend so it shuts down gracefully first.
trap 'kill -TERM "$tend_pid" 2>/dev/null || true' INT TERM
status=0
wait "$tend_pid" || status=$?
# A trapped signal interrupts the first wait; wait again for tend to exit.
if kill -0 "$tend_pid" 2>/dev/null; then wait "$tend_pid" || status=$?; fi
exit "$status"
