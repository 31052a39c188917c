# Helpers for the end-to-end tests: install what they need, start a Docker
# daemon and a Wharf. Sourced by the e2e scripts; every step is idempotent.

set -euo pipefail

E2E_TMP="${E2E_TMP:-/tmp/wharf-e2e}"
mkdir -p "$E2E_TMP"

log() { printf '[e2e] %s\n' "$*" >&2; }

# Missing tools fail under CI=true and skip (exit 0, with the reason) elsewhere.
skip_or_fail() {
    if [ "${CI:-}" = "true" ]; then
        log "FAIL: $*"
        exit 1
    fi
    log "SKIP: $*"
    exit 0
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

# ensure_packages CMD:PACKAGE ... installs the Debian package for each missing command.
ensure_packages() {
    local missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
        skip_or_fail "cannot install ${missing[*]}"
}

# Starts (or reuses) a Docker daemon with flags that work in unprivileged CI
# sandboxes; exports DOCKER_HOST.
start_dockerd() {
    ensure_packages dockerd:docker.io
    local dir="$E2E_TMP/docker"
    export DOCKER_HOST="unix://$dir/docker.sock"
    if docker info >/dev/null 2>&1; then return 0; fi
    mkdir -p "$dir"
    log "starting dockerd ($dir)"
    as_root dockerd --storage-driver vfs --iptables=false --ip6tables=false --bridge=none \
        --host "$DOCKER_HOST" --data-root "$dir/root" --exec-root "$dir/exec" \
        --pidfile "$dir/docker.pid" >"$dir/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return 0
        sleep 1
    done
    tail -20 "$dir/dockerd.log" >&2 || true
    skip_or_fail "dockerd did not start"
}

# free_port prints a free TCP port on loopback.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# prepare_data NAME: an empty data folder for NAME, in WHARF_DATA (to add
# users and keys before the server starts).
prepare_data() {
    WHARF_DATA="$E2E_TMP/$1-data"
    rm -rf "$WHARF_DATA"
}

# start_wharf NAME [ARGS...]: runs the release binary on a fresh port over
# NAME's data folder (a fresh one unless prepare_data NAME ran), with ARGS
# (e.g. --config); sets WHARF_PORT and WHARF_PID. Stopped by stop_wharf (or on exit).
start_wharf() {
    local name="$1"; shift
    local bin="${WHARF_BIN:-target/release/wharf}"
    [ -x "$bin" ] || { log "no $bin; run cargo build --release first"; exit 1; }
    [ "${WHARF_DATA:-}" = "$E2E_TMP/$name-data" ] || prepare_data "$name"
    WHARF_PORT="$(free_port)"
    "$bin" serve --listen "127.0.0.1:$WHARF_PORT" --data-dir "$WHARF_DATA" "$@" >"$E2E_TMP/$name.log" 2>&1 &
    WHARF_PID=$!
    trap stop_wharf EXIT
    # Any HTTP answer will do: with authentication on, /v2/ answers 401.
    for _ in $(seq 1 50); do
        curl -s -o /dev/null "http://127.0.0.1:$WHARF_PORT/v2/" && return 0
        sleep 0.1
    done
    cat "$E2E_TMP/$name.log" >&2
    log "wharf did not start"
    exit 1
}

stop_wharf() {
    if [ -n "${WHARF_PID:-}" ]; then
        kill "$WHARF_PID" 2>/dev/null || true
        wait "$WHARF_PID" 2>/dev/null || true
        WHARF_PID=""
    fi
}
