#!/usr/bin/env bash
# Wharf on S3 (SeaweedFS): the conformance runner, docker push and (through
# presigned redirects) pull, blobs landing in the bucket, gc/fsck/du over it,
# and an outage of the S3 server in the middle of an upload: 503 with
# Retry-After, nothing half-written visible, and the retried upload succeeds
# once the server is back.
source "$(dirname "$0")/lib.sh"

ensure_packages curl:curl jq:jq busybox:busybox-static
start_dockerd
start_seaweedfs
prefix="e2e-$(date +%s)-$$"
conf="$E2E_TMP/s3.toml"
s3_config "$conf" "$prefix"
start_wharf s3 --config "$conf"
base="http://127.0.0.1:$WHARF_PORT"
fail() { log "FAIL: $*"; tail -20 "$E2E_TMP/s3.log" >&2; exit 1; }
s3() {
    AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" AWS_CONFIG_FILE=/dev/null \
        "${AWS_CLI[@]}" --region us-east-1 --endpoint-url "$S3_ENDPOINT" "$@"
}

log "conformance runner on S3"
OCI_ROOT_URL="$base" OCI_NAMESPACE="conformance/main" OCI_CROSSMOUNT_NAMESPACE="conformance/cross" \
    python3 conformance/run.py || fail "conformance on S3"
listing=$(s3 s3 ls "s3://$S3_BUCKET/$prefix/blobs/" --recursive) || fail "listing the bucket"
grep -q "/blobs/sha256/" <<<"$listing" || fail "no blobs in the bucket"

log "docker push to S3"
ctx="$E2E_TMP/s3-docker-ctx"
rm -rf "$ctx" && mkdir -p "$ctx"
cp "$(command -v busybox)" "$ctx/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT ["/bin/busybox", "echo"]\nCMD ["hello from s3"]\n' >"$ctx/Dockerfile"
image="localhost:$WHARF_PORT/s3/hello:v1"
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null
docker push "$image" >/dev/null || fail "docker push to S3"
docker rmi "$image" >/dev/null

log "garbage collection, fsck and du over the bucket"
bin="${WHARF_BIN:-target/release/wharf}"
"$bin" gc --config "$conf" --data-dir "$WHARF_DATA" >"$E2E_TMP/s3-gc.out" 2>&1 || fail "wharf gc: $(tail -3 "$E2E_TMP/s3-gc.out")"
"$bin" fsck --config "$conf" --data-dir "$WHARF_DATA" >"$E2E_TMP/s3-fsck.out" 2>&1 || fail "wharf fsck: $(tail -5 "$E2E_TMP/s3-fsck.out")"
du=$("$bin" du --config "$conf" --data-dir "$WHARF_DATA") || fail "wharf du"
grep -q "conformance/main" <<<"$du" || fail "wharf du: $du"
# Bytes put into the bucket behind Wharf's back: fsck lists them as an
# orphan, and garbage collection (past its grace) removes them from the bucket.
head -c 1000 /dev/urandom >"$E2E_TMP/s3-stray"
stray=$(sha256sum "$E2E_TMP/s3-stray" | cut -d' ' -f1)
key="$prefix/blobs/sha256/${stray:0:2}/$stray"
s3 s3 cp --quiet "$E2E_TMP/s3-stray" "s3://$S3_BUCKET/$key" || fail "stray upload"
"$bin" fsck --config "$conf" --data-dir "$WHARF_DATA" >"$E2E_TMP/s3-fsck.out" 2>&1 || fail "fsck: $(tail -3 "$E2E_TMP/s3-fsck.out")"
grep -q "^orphan.*$stray" "$E2E_TMP/s3-fsck.out" || fail "fsck output: $(tail -5 "$E2E_TMP/s3-fsck.out")"
WHARF_GC_GRACE_SECONDS=0 "$bin" gc --config "$conf" --data-dir "$WHARF_DATA" >"$E2E_TMP/s3-gc.out" 2>&1 || fail "wharf gc"
if s3 s3api head-object --bucket "$S3_BUCKET" --key "$key" >/dev/null 2>&1; then
    fail "gc left the stray object in the bucket"
fi

log "an S3 outage in the middle of a chunked upload"
work="$E2E_TMP/s3-work"
rm -rf "$work" && mkdir -p "$work"
head -c 3000000 /dev/urandom >"$work/blob"
head -c 1500000 "$work/blob" >"$work/part1"
tail -c +1500001 "$work/blob" >"$work/part2"
digest="sha256:$(sha256sum "$work/blob" | cut -d' ' -f1)"
echo "before the outage" >"$work/small"
small="sha256:$(sha256sum "$work/small" | cut -d' ' -f1)"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @"$work/small" \
    "$base/v2/outage/app/blobs/uploads/?digest=$small")
[ "$code" = 201 ] || fail "push before the outage: $code"

location=$(curl -s -D - -o /dev/null -X POST "$base/v2/outage/app/blobs/uploads/" | tr -d '\r' |
    awk -F': ' 'tolower($1) == "location" { print $2 }')
location=$(curl -s -D - -o /dev/null -X PATCH -H 'Content-Type: application/octet-stream' \
    -H "Content-Range: 0-1499999" --data-binary @"$work/part1" "$base$location" | tr -d '\r' |
    awk -F': ' 'tolower($1) == "location" { print $2 }')
[ -n "$location" ] || fail "first chunk"

stop_seaweedfs
# Sessions are staged in the bucket (any replica may continue them): the
# second chunk cannot be stored, and the client is told to retry.
curl -s -D "$work/headers" -o "$work/body" -X PATCH -H 'Content-Type: application/octet-stream' \
    -H "Content-Range: 1500000-2999999" --data-binary @"$work/part2" "$base$location"
expect_unavailable "a chunk during the outage" "$work/headers" "$work/body" '.errors[0].code' UNAVAILABLE
sep='?'; [[ "$location" == *\?* ]] && sep='&'
curl -s -D "$work/headers" -o "$work/body" -X PUT "$base$location${sep}digest=$digest"
expect_unavailable "completing during the outage" "$work/headers" "$work/body" '.errors[0].code' UNAVAILABLE
code=$(curl -s -o /dev/null -w '%{http_code}' -I "$base/v2/outage/app/blobs/$digest")
[ "$code" = 404 ] || fail "the unfinished blob is visible: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/v2/outage/app/blobs/$small")
[ "$code" = 503 ] || fail "reading during the outage: $code"
part1="sha256:$(sha256sum "$work/part1" | cut -d' ' -f1)"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @"$work/part1" \
    "$base/v2/outage/other/blobs/uploads/?digest=$part1")
[ "$code" = 503 ] || fail "monolithic push during the outage: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -I "$base/v2/outage/other/blobs/$part1")
[ "$code" = 404 ] || fail "the failed monolithic push is visible: $code"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")" = 503 ] || fail "/readyz during the outage"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/healthz")" = 200 ] || fail "/healthz during the outage"

start_seaweedfs
wait_ready "$base"
# The session kept its first chunk: the client resumes where it stood.
range=$(curl -s -D - -o /dev/null "$base$location" | tr -d '\r' | awk -F': ' 'tolower($1) == "range" { print $2 }')
[ "$range" = "0-1499999" ] || fail "the session after the outage: Range $range"
location=$(curl -s -D - -o /dev/null -X PATCH -H 'Content-Type: application/octet-stream' \
    -H "Content-Range: 1500000-2999999" --data-binary @"$work/part2" "$base$location" | tr -d '\r' |
    awk -F': ' 'tolower($1) == "location" { print $2 }')
[ -n "$location" ] || fail "retrying the second chunk after the outage"
sep='?'; [[ "$location" == *\?* ]] && sep='&'
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$base$location${sep}digest=$digest")
[ "$code" = 201 ] || fail "completing the upload after the outage: $code"
curl -sf "$base/v2/outage/app/blobs/$digest" -o "$work/back" || fail "reading it back"
cmp -s "$work/blob" "$work/back" || fail "the blob read back differs"
curl -sf "$base/v2/outage/app/blobs/$small" | cmp -s - "$work/small" || fail "the earlier blob"
stop_wharf

log "storage.redirect: blob GETs answer 307 to a presigned URL of the bucket"
s3_config "$conf" "$prefix"
sed -i 's/^backend = "s3"$/backend = "s3"\nredirect = true/' "$conf"
start_wharf s3 --config "$conf"
base="http://127.0.0.1:$WHARF_PORT"
out=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$base/v2/outage/app/blobs/$digest")
[[ "$out" == "307 $S3_ENDPOINT/"* ]] || fail "redirect: $out"
curl -sfL "$base/v2/outage/app/blobs/$digest" -o "$work/redirected" || fail "following the redirect"
cmp -s "$work/blob" "$work/redirected" || fail "the redirected blob differs"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/v2/outage/app/blobs/sha256:$(printf '%064d' 0)")
[ "$code" = 404 ] || fail "redirect of an unknown blob: $code"
# The Docker Engine follows the redirects to the bucket.
image="localhost:$WHARF_PORT/s3/hello:v1"
docker pull "$image" >/dev/null || fail "docker pull through redirects"
[ "$(docker run --rm --network host "$image")" = "hello from s3" ] || fail "docker run after the pull"
docker rmi "$image" >/dev/null
log "ok"
