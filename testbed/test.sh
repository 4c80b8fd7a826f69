#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit tests and the
# integration tests against real Redis, the moto AWS server and the ECS fake.
set -euo pipefail
cd "$(dirname "$0")/.."
source testbed/lib.sh

ensure_redis
ensure_moto
use_dummy_aws
start_moto
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
log "moto listening at $MOTO_ENDPOINT"

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
log "cargo test"
cargo test --all-targets
