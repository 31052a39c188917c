#!/usr/bin/env bash
# Two Wharf replicas on different ports sharing one S3 bucket (SeaweedFS) and
# one PostgreSQL database, with no affinity between them: the conformance
# runner on S3 + PostgreSQL; a chunked upload started on A, continued on B and
# completed on A; manifests pushed to one and pulled (and moved) through the
# other; the same tag pushed through both at once; garbage collection and the
# task runner run by one replica, not both; PostgreSQL going away and coming
# back; then with users: a token from A works on B, docker pushes to A and
# pulls from B.
source "$(dirname "$0")/lib.sh"

ensure_packages curl:curl jq:jq busybox:busybox-static
start_dockerd
start_postgres
start_seaweedfs
bin="${WHARF_BIN:-target/release/wharf}"
db=$(pg_database wharf_replicas)
conf="$E2E_TMP/replicas.toml"
s3_config "$conf" "replicas-$(date +%s)-$$"
cat >>"$conf" <<TOML
[database]
url = "$db"
[gc]
interval_seconds = 2
TOML

pids=()
stop_replicas() {
    [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null && wait "${pids[@]}" 2>/dev/null
    pids=()
}
trap stop_replicas EXIT
fail() {
    log "FAIL: $*"
    for r in a b; do tail -10 "$E2E_TMP/replica-$r.log" >&2 || true; done
    exit 1
}
# start_replica NAME PORT: one replica, with a data folder of its own.
start_replica() {
    "$bin" serve --listen "127.0.0.1:$2" --data-dir "$E2E_TMP/replica-$1-data" --config "$conf" \
        >"$E2E_TMP/replica-$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "http://127.0.0.1:$2/v2/" && return 0
        sleep 0.1
    done
    fail "replica $1 did not start"
}
start_both() {
    start_replica a "$port_a"
    start_replica b "$port_b"
}
port_a=$(free_port)
port_b=$(free_port)
while [ "$port_b" = "$port_a" ]; do port_b=$(free_port); done
a="http://127.0.0.1:$port_a"
b="http://127.0.0.1:$port_b"
start_both
sha() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
header() { tr -d '\r' | awk -F': ' -v h="$1" 'tolower($1) == h { print $2 }'; }
work="$E2E_TMP/replicas-work"
rm -rf "$work" && mkdir -p "$work"

log "conformance runner on S3 + PostgreSQL"
OCI_ROOT_URL="$a" OCI_NAMESPACE="conformance/main" OCI_CROSSMOUNT_NAMESPACE="conformance/cross" \
    python3 conformance/run.py >"$work/conformance.out" 2>&1 || { tail -20 "$work/conformance.out"; fail "conformance"; }
tail -1 "$work/conformance.out"

log "a chunked upload: started on A, continued on B, completed on A"
head -c 7000000 /dev/urandom >"$work/blob"
head -c 3000000 "$work/blob" >"$work/c1"
dd if="$work/blob" of="$work/c2" bs=1000000 skip=3 count=3 status=none
tail -c +6000001 "$work/blob" >"$work/c3"
digest=$(sha "$work/blob")
loc=$(curl -s -D - -o /dev/null -X POST "$a/v2/shared/app/blobs/uploads/" | header location)
[ -n "$loc" ] || fail "POST on A"
loc=$(curl -s -D - -o /dev/null -X PATCH -H 'Content-Type: application/octet-stream' \
    -H "Content-Range: 0-2999999" --data-binary @"$work/c1" "$a$loc" | header location)
[ -n "$loc" ] || fail "first chunk on A"
range=$(curl -s -D - -o /dev/null "$b$loc" | header range)
[ "$range" = "0-2999999" ] || fail "B sees the session at $range"
loc=$(curl -s -D - -o /dev/null -X PATCH -H 'Content-Type: application/octet-stream' \
    -H "Content-Range: 3000000-5999999" --data-binary @"$work/c2" "$b$loc" | header location)
[ -n "$loc" ] || fail "second chunk on B"
sep='?'; [[ "$loc" == *\?* ]] && sep='&'
code=$(curl -s -o "$work/out" -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' \
    --data-binary @"$work/c3" "$a$loc${sep}digest=$digest")
[ "$code" = 201 ] || fail "completing on A: $code $(cat "$work/out")"
curl -sf "$b/v2/shared/app/blobs/$digest" -o "$work/back" || fail "reading it from B"
cmp -s "$work/blob" "$work/back" || fail "B serves other bytes"

log "a manifest pushed to A is pulled from B; a tag moved on B is seen on A at once"
echo '{"architecture":"amd64","os":"linux"}' >"$work/config1"
echo '{"architecture":"arm64","os":"linux"}' >"$work/config2"
for f in config1 config2; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @"$work/$f" \
        "$a/v2/shared/app/blobs/uploads/?digest=$(sha "$work/$f")")
    [ "$code" = 201 ] || fail "pushing $f: $code"
done
manifest() { # CONFIG FILE: an image manifest of the shared layer and CONFIG
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":7000000}]}' \
        "$(sha "$work/$1")" "$(stat -c %s "$work/$1")" "$digest" >"$work/$2"
}
manifest config1 m1
manifest config2 m2
d1=$(sha "$work/m1")
d2=$(sha "$work/m2")
put() { # BASE FILE TAG
    curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary @"$work/$2" "$1/v2/shared/app/manifests/$3"
}
tag_digest() { curl -s -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$1/v2/shared/app/manifests/$2" | header docker-content-digest; }
[ "$(put "$a" m1 v1)" = 201 ] || fail "manifest push to A"
[ "$(tag_digest "$b" v1)" = "$d1" ] || fail "B does not serve v1"
[ "$(tag_digest "$a" v1)" = "$d1" ] || fail "A does not serve v1"
[ "$(put "$b" m2 v1)" = 201 ] || fail "moving v1 on B"
[ "$(tag_digest "$a" v1)" = "$d2" ] || fail "A still resolves v1 to the old manifest"

log "the same tag pushed through both replicas at once, 20 times"
for i in $(seq 1 20); do
    put "$a" m1 race >"$work/race-a-$i" &
    ra=$!
    put "$b" m2 race >"$work/race-b-$i" &
    wait "$ra" $!
    grep -q 201 "$work/race-a-$i" && grep -q 201 "$work/race-b-$i" || fail "a racing push failed"
    ra=$(tag_digest "$a" race)
    rb=$(tag_digest "$b" race)
    [ "$ra" = "$rb" ] || fail "the replicas disagree on race: $ra / $rb"
    [ "$ra" = "$d1" ] || [ "$ra" = "$d2" ] || fail "race points at $ra"
done
for d in "$d1" "$d2"; do
    [ "$(tag_digest "$b" "$d")" = "$d" ] || fail "manifest $d lost"
done
tags=$(curl -s "$b/v2/shared/app/tags/list" | jq -c '.tags')
[ "$tags" = '["race","v1"]' ] || fail "tags: $tags"

log "garbage collection runs once per interval across both replicas; one runs the tasks"
sleep 9
runs=$(cat "$E2E_TMP"/replica-[ab].log | grep -c "garbage collected" || true)
# 9 s at a 2 s interval: four runs (five at most), not eight.
[ "$runs" -ge 2 ] && [ "$runs" -le 5 ] || fail "garbage collection ran $runs times"
leaders=$(grep -l "this replica runs the tasks" "$E2E_TMP"/replica-[ab].log | wc -l)
[ "$leaders" = 1 ] || fail "$leaders replicas run the tasks"

log "PostgreSQL goes away: 503 with Retry-After, then service resumes by itself"
stop_postgres
curl -s -D "$work/headers" -o "$work/body" "$b/v2/shared/app/manifests/v1"
grep -q "^HTTP/1.1 503" "$work/headers" || fail "a read without the database: $(head -1 "$work/headers")"
grep -qi "^retry-after:" "$work/headers" || fail "no Retry-After"
[ "$(jq -r '.errors[0].code' "$work/body")" = UNAVAILABLE ] || fail "error body: $(cat "$work/body")"
[ "$(put "$a" m1 v2)" = 503 ] || fail "a push without the database"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$a/readyz")" = 503 ] || fail "/readyz without the database"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$a/healthz")" = 200 ] || fail "/healthz without the database"
start_postgres
for _ in $(seq 1 30); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$a/readyz")" = 200 ] && break
    sleep 1
done
[ "$(put "$a" m1 v2)" = 201 ] || fail "a push once the database is back"
[ "$(tag_digest "$b" v2)" = "$d1" ] || fail "B after the outage"

log "with users: a token issued by A is accepted by B"
stop_replicas
cat >>"$conf" <<TOML
[[auth.rules]]
who = ["alice"]
repositories = ["shared/*"]
actions = ["*"]
TOML
echo "alice-password" | "$bin" user add alice --config "$conf" --data-dir "$E2E_TMP/replica-a-data" >/dev/null ||
    fail "wharf user add"
start_both
[ "$(curl -s -o /dev/null -w '%{http_code}' "$b/v2/shared/app/manifests/v1")" = 401 ] || fail "B without credentials"
token=$(curl -sf -u alice:alice-password "$a/token?service=wharf&scope=repository:shared/app:pull" | jq -r .token)
[ -n "$token" ] && [ "$token" != null ] || fail "no token from A"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$b/v2/shared/app/manifests/v1")
[ "$code" = 200 ] || fail "A's token on B: $code"

log "docker pushes through A and pulls through B"
export DOCKER_CONFIG="$work/docker-config"
mkdir -p "$DOCKER_CONFIG"
ctx="$work/ctx"
mkdir -p "$ctx"
cp "$(command -v busybox)" "$ctx/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT ["/bin/busybox", "echo", "from replica a"]\n' >"$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "localhost:$port_a/shared/hello:v1" "$ctx" >/dev/null
for port in "$port_a" "$port_b"; do
    echo "alice-password" | docker login "localhost:$port" -u alice --password-stdin >/dev/null || fail "docker login $port"
done
docker push "localhost:$port_a/shared/hello:v1" >/dev/null || fail "docker push to A"
docker rmi "localhost:$port_a/shared/hello:v1" >/dev/null
docker pull "localhost:$port_b/shared/hello:v1" >/dev/null || fail "docker pull from B"
out=$(docker run --rm --network host "localhost:$port_b/shared/hello:v1")
[ "$out" = "from replica a" ] || fail "the image pulled from B says: $out"
docker rmi "localhost:$port_b/shared/hello:v1" >/dev/null
log "ok"
