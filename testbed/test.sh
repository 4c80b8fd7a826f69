#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit tests and the
# integration tests against real Redis, the moto AWS server, a real Ghost
# and the project's ECS and Instagram fakes.
set -euo pipefail
cd "$(dirname "$0")/.."
source testbed/lib.sh

ensure_redis
ensure_moto
use_dummy_aws
ghost_dir=$(mktemp -d)
trap 'kill ${MOTO_PID:-} ${GHOST_PID:-} 2>/dev/null || true; rm -rf "$ghost_dir"' EXIT
start_moto
log "moto listening at $MOTO_ENDPOINT"
log "Ghost (installed once into the cache, about 4 minutes)"
testbed/ghost.sh install >&2
# Two steps, so a failed start stops the script (eval of nothing succeeds).
ghost_env=$(testbed/ghost.sh start "$ghost_dir")
eval "$ghost_env"
log "Ghost listening at $GHOST_URL"

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
log "cargo test"
cargo test --lib --bins --tests
log "operations artefacts: dashboards, alerts, manifests, Dockerfile, live metrics"
testbed/check-artifacts.sh
