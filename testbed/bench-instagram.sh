#!/usr/bin/env bash
# Benchmarks the instagram loop with the release binary against the
# Instagram fake, moto's S3 and a real Ghost, all on 127.0.0.1:
#   1. backfill of N generated media items (default 1000): time and rate;
#   2. a second pass with nothing changed: Instagram calls, CDN downloads
#      and writes (the summary's archived / created / updated counts);
#   3. peak RSS of a pass that archives one 1 GiB video.
# Usage: testbed/bench-instagram.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
source testbed/lib.sh

items="${1:-1000}"
ensure_redis
ensure_moto
use_dummy_aws
work=$(mktemp -d)
trap 'kill ${MOTO_PID:-} ${GHOST_PID:-} ${FAKE_PID:-} 2>/dev/null || true; rm -rf "$work"' EXIT
start_moto "$work/moto.log"
testbed/ghost.sh install >&2
ghost_env=$(testbed/ghost.sh start "$work/ghost")
eval "$ghost_env"
log "building release binaries"
cargo build --release --quiet --bins
bin="${CARGO_TARGET_DIR:-target}/release"

start_fake() {
  "$bin/tend-instagram-fake" --listen 127.0.0.1:0 --token IGAAbench --calls-per-hour 100000 >"$work/fake.out" 2>/dev/null &
  FAKE_PID=$!
  for _ in $(seq 100); do
    fake_url=$(sed -n 's/^listening on //p' "$work/fake.out" 2>/dev/null | head -n1)
    [ -n "$fake_url" ] && return 0
    sleep 0.1
  done
  return 1
}

# Runs one pass; prints its summary, and "wall_seconds max_rss_kib" last.
pass() {
  /usr/bin/time -f '%e %M' -o "$work/time" "$bin/tend" reconcile instagram --once >"$work/summary" 2>"$work/tend.log" || {
    tail -5 "$work/tend.log" >&2
    return 1
  }
  cat "$work/time"
}

configure() {
  curl -sf -X PUT "$MOTO_ENDPOINT/$1" \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0' >/dev/null
  export AWS_ENDPOINT_URL="$MOTO_ENDPOINT" TEND_AWS_S3_FORCE_PATH_STYLE=true TEND_ECS_CAPACITY_ENABLED=false
  export TEND_INSTAGRAM_ENABLED=true TEND_INSTAGRAM_ACCESS_TOKEN=IGAAbench TEND_INSTAGRAM_API_URL="$fake_url"
  export TEND_INSTAGRAM_CDN_HOSTS=127.0.0.1 TEND_INSTAGRAM_BUCKET="$1" TEND_INSTAGRAM_GHOST_URL="$GHOST_URL"
  export TEND_INSTAGRAM_GHOST_ADMIN_KEY="$GHOST_ADMIN_KEY" TEND_INSTAGRAM_INTERNAL_TAG="#bench-$1"
  export TEND_INSTAGRAM_PAGE_SIZE=100 TEND_REDIS_KEY_PREFIX="bench-$1" TEND_LOG_LEVEL=warn
}

echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr); $(date -u +%Y-%m-%d)"
start_fake
curl -sf -X POST "$fake_url/_fake/generate" -H 'Content-Type: application/json' \
  -d "{\"count\": $items, \"with_carousels\": true, \"with_videos\": true}" >/dev/null
configure "bench-backfill-$$"
# A public base URL keeps the backfill to archive + post (no Ghost uploads).
export TEND_INSTAGRAM_PUBLIC_BASE_URL="http://127.0.0.1:9/archive"

echo
echo "## Backfill of $items items"
read -r seconds rss < <(pass | tail -n1)
echo "wall ${seconds} s, $(python3 -c "print(round($items / $seconds, 1))") items/s, peak RSS $((rss / 1024)) MiB"
sed -n 's/^  //p' "$work/summary" | grep -E "^(synced|archived|posts created):"

echo
echo "## Pass with nothing changed over $items synced items"
curl -sf -X POST "$fake_url/_fake/calls/reset" >/dev/null
"$bin/tend" reconcile instagram --once 2>/dev/null | sed -n 's/^  //p' | grep -E "^(pass|synced|archived|posts created|posts updated):"
echo "Instagram calls: $(curl -sf "$fake_url/_fake/calls")"
kill "$FAKE_PID"

echo
echo "## Peak RSS archiving one 1 GiB video"
start_fake
curl -sf -X POST "$fake_url/_fake/media" -H 'Content-Type: application/json' \
  -d '[{"id": "bigvideo1", "media_type": "VIDEO", "caption": "one gibibyte", "timestamp": "2024-01-01T00:00:00+0000", "size_bytes": 1073741824}]' >/dev/null
configure "bench-video-$$"
read -r seconds rss < <(pass | tail -n1)
echo "public archive URL: wall ${seconds} s, peak RSS $((rss / 1024)) MiB"
unset TEND_INSTAGRAM_PUBLIC_BASE_URL
configure "bench-video-ghost-$$"
read -r seconds rss < <(pass | tail -n1)
echo "uploaded to Ghost as well: wall ${seconds} s, peak RSS $((rss / 1024)) MiB"
