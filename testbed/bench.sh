#!/usr/bin/env bash
# Runs the benchmarks against real Redis, moto and the ECS fake, in release
# mode. Results go to stdout as Markdown tables; BENCHMARKS.md records them.
set -euo pipefail
cd "$(dirname "$0")/.."
source testbed/lib.sh

ensure_redis
ensure_moto
use_dummy_aws
start_moto
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT

echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr); $(date -u +%Y-%m-%d)"
cargo bench --bench "${1:-ecs_capacity}"
