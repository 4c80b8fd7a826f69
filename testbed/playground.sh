#!/usr/bin/env bash
# Local playground: starts what tend needs on 127.0.0.1 (Redis if none is
# running, moto, the ECS fake with the sample clusters of
# testbed/playground.json, a real Ghost blog and the Instagram fake with a
# generated account), then runs `tend run` with every loop in the
# foreground. Ctrl-C stops tend and every peer this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
source testbed/lib.sh

port="${PLAYGROUND_PORT:-9464}"
# Logs and Ghost's data; set PLAYGROUND_STATE to run two playgrounds at once.
state="${PLAYGROUND_STATE:-.playground}"
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

# Instagram: the fake account with generated photos, videos and carousels.
"$bin/tend-instagram-fake" --listen 127.0.0.1:0 --token IGAAplayground >"$state/instagram-fake.out" 2>"$state/instagram-fake.log" &
pids+=("$!")
for _ in $(seq 100); do
  instagram_url=$(sed -n 's/^listening on //p' "$state/instagram-fake.out" 2>/dev/null | head -n1)
  [ -n "$instagram_url" ] && break
  sleep 0.1
done
[ -n "${instagram_url:-}" ] || { log "the Instagram fake did not start; see $state/instagram-fake.log"; exit 1; }
curl -sf -X POST "$instagram_url/_fake/generate" -H 'Content-Type: application/json' \
  -d '{"count": 12, "with_carousels": true, "with_videos": true}' >/dev/null

# Ghost: installed once into the cache (about 4 minutes), then started here.
log "starting Ghost (the first run installs it, about 4 minutes)"
testbed/ghost.sh install >&2
rm -rf "$state/ghost"
mkdir -p "$state/ghost"
ghost_env=$(testbed/ghost.sh start "$state/ghost")
eval "$ghost_env"
pids+=("$GHOST_PID")

# The archive bucket in moto (path-style request, dummy signature).
curl -sf -X PUT "$MOTO_ENDPOINT/tend-archive" \
  -H 'Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0' >/dev/null || true

# Its own Redis key prefix, emptied at start, so state left by an earlier
# run (a stale cache, a refreshed token of another fake) plays no part.
export TEND_REDIS_KEY_PREFIX="${TEND_REDIS_KEY_PREFIX:-tend-playground}"
redis-cli -h 127.0.0.1 -p 6379 --scan --pattern "$TEND_REDIS_KEY_PREFIX:*" | xargs -r redis-cli -h 127.0.0.1 -p 6379 del >/dev/null

export AWS_ENDPOINT_URL="$MOTO_ENDPOINT" AWS_ENDPOINT_URL_ECS="$ecs_url"
export TEND_AWS_S3_FORCE_PATH_STYLE=true
export TEND_INSTAGRAM_ENABLED=true TEND_INSTAGRAM_ACCESS_TOKEN=IGAAplayground
export TEND_INSTAGRAM_API_URL="$instagram_url" TEND_INSTAGRAM_CDN_HOSTS=127.0.0.1
export TEND_INSTAGRAM_BUCKET=tend-archive TEND_INSTAGRAM_GHOST_URL="$GHOST_URL"
export TEND_INSTAGRAM_GHOST_ADMIN_KEY="$GHOST_ADMIN_KEY" TEND_INSTAGRAM_INTERVAL=1m
export TEND_HTTP_LISTEN="127.0.0.1:$port" TEND_ECS_CAPACITY_INTERVAL="${TEND_ECS_CAPACITY_INTERVAL:-10s}"

# Scheduler: three priority queues and a dead-letter queue in moto, and a
# task definition in the ECS fake for the sample requests.
create_queue() {
  curl -sf -X POST "$MOTO_ENDPOINT/" \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0' \
    --data-urlencode "Action=CreateQueue" --data-urlencode "QueueName=$1" \
    | sed -n 's:.*<QueueUrl>\(.*\)</QueueUrl>.*:\1:p'
}
high=$(create_queue tasks-high)
normal=$(create_queue tasks-normal)
low=$(create_queue tasks-low)
dead=$(create_queue tasks-dead-letter)
curl -sf -X POST "$ecs_url/" -H 'X-Amz-Target: AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition' \
  -H 'Content-Type: application/x-amz-json-1.1' \
  -d '{"family":"report","containerDefinitions":[{"name":"main","image":"example/report:1","cpu":256,"memory":512}]}' >/dev/null
export TEND_SCHEDULER_ENABLED=true TEND_SCHEDULER_QUEUES="$high,$normal,$low" TEND_SCHEDULER_DEAD_LETTER_QUEUE="$dead"
for i in $(seq 1 6); do
  "$bin/tend" submit --queue tasks-low --cluster web --task-definition report --started-by "playground-low-$i" >/dev/null
done
for i in 1 2; do
  "$bin/tend" submit --queue tasks-high --cluster web --task-definition report --started-by "playground-high-$i" >/dev/null
done
# tend submit rejects an invalid request itself, so send one past it to
# show the dead-letter queue and its reason attribute.
curl -sf -X POST "$MOTO_ENDPOINT/" \
  -H 'Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0' \
  --data-urlencode "Action=SendMessage" --data-urlencode "QueueUrl=$normal" \
  --data-urlencode 'MessageBody={"cluster":"web","task_definition":"report","count":11}' >/dev/null

# Every setting above, for running tend commands by hand in another shell.
export -p | grep -E ' (AWS_[A-Z_]+|TEND_[A-Z_]+)=' >"$state/env.sh"

cat <<TXT

tend playground
  ECS fake (sample clusters web, batch, serverless): $ecs_url
  moto (S3, SQS):                                    $MOTO_ENDPOINT
  Redis:                                             redis://127.0.0.1:6379
  Instagram fake (12 generated media items):         $instagram_url
  Ghost blog (the posts tend publishes):             $GHOST_URL/

In another shell, first: source $state/env.sh   (the playground's settings)

Look at:
  curl -s http://127.0.0.1:$port/metrics | grep ^tend_ecs
  curl -s http://127.0.0.1:$port/status
  curl -s http://127.0.0.1:$port/readyz
  $bin/tend capacity
  $bin/tend capacity --cluster web --cpu 1024 --memory 4096   # fits: exit 0
  $bin/tend capacity --cluster batch --memory 1024            # too fragmented: exit 1
  $bin/tend submit --queue tasks-high --cluster web --task-definition report
  curl -s $ecs_url/_fake/tasks                              # tasks the scheduler started

Queues (highest priority first): tasks-high, tasks-normal, tasks-low; rejected
requests go to tasks-dead-letter with the reason. Nine sample requests are
queued; the one with count 11 is invalid and goes to tasks-dead-letter.

Open $GHOST_URL/ghost/ in a browser to see the Instagram posts in Ghost's
admin (the public site is private, so Ghost sends no webmentions). The owner login
is in ~/.cache/tend/ghost-6.65.0/snapshot/owner.json.

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
