# Shared shell functions for the test and playground scripts: install and
# start the peers tend talks to, all on 127.0.0.1. Installs are cached under
# ~/.cache/tend so repeated runs start in seconds.
# Sourced, not executed.

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/tend"
MOTO_VERSION=5.2.5
MOTO_VENV="$CACHE_ROOT/moto-$MOTO_VERSION"

log() { printf '==> %s\n' "$*" >&2; }

# Starts Redis on 127.0.0.1:6379 unless one already answers there.
ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    return 0
  fi
  if ! command -v redis-server >/dev/null 2>&1; then
    log "installing redis-server (apt)"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
  fi
  log "starting redis-server on 127.0.0.1:6379 (no persistence)"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 50); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "redis-server did not answer on 127.0.0.1:6379"
  return 1
}

# Installs the moto AWS server into a cached virtualenv; exports MOTO_SERVER.
ensure_moto() {
  if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
    log "installing moto[server]==$MOTO_VERSION into $MOTO_VENV (about a minute)"
    rm -rf "$MOTO_VENV"
    mkdir -p "$CACHE_ROOT"
    python3 -m venv "$MOTO_VENV"
    "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  fi
  export MOTO_SERVER="$MOTO_VENV/bin/moto_server"
}

# Waits until something accepts TCP connections on 127.0.0.1:$1.
wait_for_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  log "nothing is listening on 127.0.0.1:$1"
  return 1
}

# Never let the AWS SDK or moto reach a real account or a metadata service.
use_dummy_aws() {
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
  export AWS_EC2_METADATA_DISABLED=true
  unset AWS_PROFILE AWS_SESSION_TOKEN
}

# Starts moto on a free loopback port; exports MOTO_ENDPOINT and MOTO_PID.
# The caller stops it with: kill "$MOTO_PID".
start_moto() {
  local port log
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  log="${1:-$CACHE_ROOT/moto.log}"
  "$MOTO_SERVER" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  MOTO_PID=$!
  wait_for_port "$port"
  export MOTO_ENDPOINT="http://127.0.0.1:$port" MOTO_PID
}
