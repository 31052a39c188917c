#!/usr/bin/env bash
# Two Wharf replicas on different ports sharing one S3 bucket (SeaweedFS) and
# one PostgreSQL database, both run with config/replica.toml, behind nginx with
# config/nginx-replicas.conf (round robin, no affinity): the conformance runner
# through the load balancer; a chunked upload started on A, continued on B and
# completed on A; two replicas racing for the same chunk of one session;
# manifests pushed to one and pulled (and moved) through the other; the same
# tag pushed through both at once; garbage collection and the task runner run
# by one replica, not both; PostgreSQL going away and coming back; then with
# users: a token from A works on B, and docker logs in, pushes and pulls
# through the load balancer.
source "$(dirname "$0")/lib.sh"

ensure_packages curl:curl jq:jq busybox:busybox-static nginx:nginx
start_dockerd
start_postgres
start_seaweedfs
bin="${WHARF_BIN:-target/release/wharf}"
port_a=$(free_port)
port_b=$(free_port)
port_lb=$(free_port)
while [ "$port_b" = "$port_a" ]; do port_b=$(free_port); done
while [ "$port_lb" = "$port_a" ] || [ "$port_lb" = "$port_b" ]; do port_lb=$(free_port); done
a="http://127.0.0.1:$port_a"
b="http://127.0.0.1:$port_b"
lb="http://127.0.0.1:$port_lb"

# The example configuration, with this machine's servers and secrets put in
# through the environment as an operator would.
conf="$E2E_TMP/replicas.toml"
cp config/replica.toml "$conf"
# One access-key secrets key for both replicas and the CLI, installed as an operator would.
secrets_key="$E2E_TMP/replicas-secrets-key"
(umask 077 && head -c 32 /dev/urandom | base64 >"$secrets_key")
export WHARF_AUTH_SECRETS_KEY="$secrets_key"
export WHARF_STORAGE_S3_BUCKET="$S3_BUCKET" WHARF_STORAGE_S3_PREFIX="replicas-$(date +%s)-$$" \
    WHARF_STORAGE_S3_ENDPOINT="$S3_ENDPOINT" WHARF_STORAGE_S3_ACCESS_KEY_ID="$S3_ACCESS_KEY" \
    WHARF_STORAGE_S3_SECRET_ACCESS_KEY="$S3_SECRET_KEY" WHARF_STORAGE_S3_TIMEOUT_SECONDS=10 \
    WHARF_DATABASE_URL="$(pg_database wharf_replicas)" WHARF_AUTH_TRUSTED_PROXIES=127.0.0.1 \
    WHARF_EXTERNAL_URL="http://localhost:$port_lb" WHARF_GC_INTERVAL_SECONDS=2

# nginx with the example load balancer configuration, plain HTTP on loopback.
nginx_dir="$E2E_TMP/nginx"
rm -rf "$nginx_dir" && mkdir -p "$nginx_dir/logs"
sed -e "s/10\.0\.0\.11:5000/127.0.0.1:$port_a/; s/10\.0\.0\.12:5000/127.0.0.1:$port_b/" \
    -e "s/listen 443 ssl http2;/listen 127.0.0.1:$port_lb;/; /ssl_certificate/d" \
    config/nginx-replicas.conf >"$nginx_dir/replicas.conf"
cat >"$nginx_dir/nginx.conf" <<NGINX
pid $nginx_dir/nginx.pid;
error_log $nginx_dir/logs/error.log;
events {}
http {
    access_log $nginx_dir/logs/access.log;
    client_body_temp_path $nginx_dir/body;
    proxy_temp_path $nginx_dir/proxy;
    include $nginx_dir/replicas.conf;
}
NGINX
nginx -p "$nginx_dir" -c "$nginx_dir/nginx.conf" || skip_or_fail "nginx did not start"
stop_nginx() { nginx -p "$nginx_dir" -c "$nginx_dir/nginx.conf" -s stop 2>/dev/null || true; }

pids=()
stop_replicas() {
    [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null && wait "${pids[@]}" 2>/dev/null
    pids=()
}
trap 'stop_replicas; stop_nginx' EXIT
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
start_both
sha() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
header() { tr -d '\r' | awk -F': ' -v h="$1" 'tolower($1) == h { print $2 }'; }
work="$E2E_TMP/replicas-work"
rm -rf "$work" && mkdir -p "$work"

log "conformance runner on S3 + PostgreSQL, through the load balancer (requests alternate replicas)"
OCI_ROOT_URL="$lb" OCI_NAMESPACE="conformance/main" OCI_CROSSMOUNT_NAMESPACE="conformance/cross" \
    python3 conformance/run.py >"$work/conformance.out" 2>&1 || { tail -20 "$work/conformance.out"; fail "conformance"; }
tail -1 "$work/conformance.out"
for r in a b; do
    grep -q '"/v2/conformance/main/blobs/uploads/' "$E2E_TMP/replica-$r.log" ||
        fail "the load balancer sent no upload to replica $r"
done

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

log "two replicas racing for the same chunk of one session: one wins, its bytes are the blob"
for i in 1 2 3 4 5; do
    head -c 4000000 /dev/urandom >"$work/race-x"
    head -c 4000000 /dev/urandom >"$work/race-y"
    loc=$(curl -s -D - -o /dev/null -X POST "$a/v2/shared/race/blobs/uploads/" | header location)
    [ -n "$loc" ] || fail "POST for the race"
    patch() { # BASE FILE
        curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Content-Type: application/octet-stream' \
            -H "Content-Range: 0-3999999" --data-binary @"$2" "$1$loc"
    }
    patch "$a" "$work/race-x" >"$work/race-x.code" &
    px=$!
    patch "$b" "$work/race-y" >"$work/race-y.code" &
    wait "$px" $!
    codes="$(cat "$work/race-x.code") $(cat "$work/race-y.code")"
    case "$codes" in
    "202 416") winner=race-x loser=race-y ;;
    "416 202") winner=race-y loser=race-x ;;
    *) fail "racing chunks answered $codes (want one 202, one 416)" ;;
    esac
    # Completed on A or B in turn: whichever replica completes must take the
    # winner's bytes, never what the losing request left in the bucket.
    base=$a; [ $((i % 2)) = 0 ] && base=$b
    sep='?'; [[ "$loc" == *\?* ]] && sep='&'
    code=$(curl -s -o "$work/out" -w '%{http_code}' -X PUT "$base$loc${sep}digest=$(sha "$work/$winner")")
    [ "$code" = 201 ] || fail "round $i: completing with the winning chunk's digest: $code $(cat "$work/out")"
    curl -sf "$a/v2/shared/race/blobs/$(sha "$work/$winner")" -o "$work/race-back" || fail "reading the winner"
    cmp -s "$work/$winner" "$work/race-back" || fail "round $i: the blob holds other bytes"
    code=$(curl -s -o /dev/null -w '%{http_code}' -I "$a/v2/shared/race/blobs/$(sha "$work/$loser")")
    [ "$code" = 404 ] || fail "round $i: the losing chunk became a blob ($code)"
done

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
gc_runs() { cat "$E2E_TMP"/replica-[ab].log | grep -c "garbage collected" || true; }
# Counted over this window only: the steps before it take longer on a busy machine.
before=$(gc_runs)
sleep 9
runs=$(($(gc_runs) - before))
# 9 s at a 2 s interval: four runs (five at most), not eight.
[ "$runs" -ge 2 ] && [ "$runs" -le 5 ] || fail "garbage collection ran $runs times"
leaders=$(grep -l "this replica runs the tasks" "$E2E_TMP"/replica-[ab].log | wc -l)
[ "$leaders" = 1 ] || fail "$leaders replicas run the tasks"

log "PostgreSQL goes away: 503 with Retry-After, then service resumes by itself"
stop_postgres
curl -s -D "$work/headers" -o "$work/body" "$b/v2/shared/app/manifests/v1"
expect_unavailable "a read without the database" "$work/headers" "$work/body" '.errors[0].code' UNAVAILABLE
[ "$(put "$a" m1 v2)" = 503 ] || fail "a push without the database"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$a/readyz")" = 503 ] || fail "/readyz without the database"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$a/healthz")" = 200 ] || fail "/healthz without the database"
# The ECR API (open mode: no signature needed) says so in its own shape.
curl -s -D "$work/headers" -o "$work/body" -X POST -H 'Content-Type: application/x-amz-json-1.1' \
    -H 'X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.DescribeRepositories' --data '{}' "$a/"
expect_unavailable "ECR without the database" "$work/headers" "$work/body" '.__type' ServerException
start_postgres
wait_ready "$a"
[ "$(put "$a" m1 v2)" = 201 ] || fail "a push once the database is back"
[ "$(tag_digest "$b" v2)" = "$d1" ] || fail "B after the outage"

log "with users: a token issued by A is accepted by B"
stop_replicas
cat >>"$conf" <<TOML
[[auth.rules]]
who = ["alice"]
repositories = ["*"]
actions = ["*"]
catalog = true
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

log "with users, PostgreSQL away: tokens already issued still read (503 from the registry), logins get 503"
stop_postgres
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$b/v2/shared/app/manifests/v1")
[ "$code" = 503 ] || fail "a Bearer read without the database: $code"
curl -s -D "$work/headers" -o "$work/body" -u bob:bob-password "$a/token?service=wharf&scope=repository:shared/app:pull"
expect_unavailable "/token without the database" "$work/headers" "$work/body" '.errors[0].code' UNAVAILABLE
start_postgres
wait_ready "$a"
code=$(curl -s -o /dev/null -w '%{http_code}' -u alice:alice-password "$a/token?service=wharf&scope=repository:shared/app:pull")
[ "$code" = 200 ] || fail "/token once the database is back: $code"

log "conformance runner with credentials through the load balancer"
OCI_ROOT_URL="$lb" OCI_NAMESPACE="shared/conformance" OCI_CROSSMOUNT_NAMESPACE="shared/conformance-cross" \
    OCI_USERNAME=alice OCI_PASSWORD=alice-password python3 conformance/run.py >"$work/conformance-auth.out" 2>&1 ||
    { tail -20 "$work/conformance-auth.out"; fail "conformance with credentials"; }
tail -1 "$work/conformance-auth.out"

log "docker logs in, pushes and pulls through the load balancer"
export DOCKER_CONFIG="$work/docker-config"
mkdir -p "$DOCKER_CONFIG"
ctx="$work/ctx"
mkdir -p "$ctx"
cp "$(command -v busybox)" "$ctx/busybox"
head -c 3000000 /dev/urandom >"$ctx/payload"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nCOPY payload /payload\nENTRYPOINT ["/bin/busybox", "echo", "through the load balancer"]\n' >"$ctx/Dockerfile"
image="localhost:$port_lb/shared/hello:v1"
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null
echo "alice-password" | docker login "localhost:$port_lb" -u alice --password-stdin >/dev/null || fail "docker login"
docker push "$image" >/dev/null || fail "docker push"
pushed=$(docker inspect --format '{{index .RepoDigests 0}}' "$image")
docker rmi "$image" >/dev/null
docker pull "$image" >/dev/null || fail "docker pull"
[ "$(docker inspect --format '{{index .RepoDigests 0}}' "$image")" = "$pushed" ] || fail "pulled another digest"
out=$(docker run --rm --network host "$image")
[ "$out" = "through the load balancer" ] || fail "the pulled image says: $out"
docker rmi "$image" >/dev/null
for r in a b; do
    grep -q '"/v2/shared/hello/blobs/uploads/' "$E2E_TMP/replica-$r.log" || fail "replica $r took no part in the push"
done
log "ok"
