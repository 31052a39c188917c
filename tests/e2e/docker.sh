#!/usr/bin/env bash
# docker build (FROM scratch) -> push -> rmi -> pull -> run, against a fresh Wharf.
source "$(dirname "$0")/lib.sh"

ensure_packages busybox:busybox-static curl:curl
start_dockerd
start_wharf docker
registry="127.0.0.1:$WHARF_PORT"

ctx="$E2E_TMP/docker-ctx"
rm -rf "$ctx" && mkdir -p "$ctx"
cp "$(command -v busybox)" "$ctx/busybox"
file "$ctx/busybox" 2>/dev/null | grep -q 'statically linked' || ldd "$ctx/busybox" 2>&1 | grep -q 'not a dynamic' ||
    { log "busybox is not static"; exit 1; }
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
ENTRYPOINT ["/bin/busybox", "echo"]
CMD ["hello from wharf"]
DOCKERFILE

image="$registry/e2e/hello:v1"
log "building $image"
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null
log "pushing"
docker push "$image" >"$E2E_TMP/push.log"
pushed_digest=$(grep -o 'sha256:[0-9a-f]\{64\}' "$E2E_TMP/push.log" | tail -1)
docker rmi "$image" >/dev/null
log "pulling"
docker pull "$image" >/dev/null
out=$(docker run --rm --network host "$image")
[ "$out" = "hello from wharf" ] || { log "FAIL: run printed '$out'"; exit 1; }
pulled_digest=$(docker inspect --format '{{index .RepoDigests 0}}' "$image")
[ "${pulled_digest##*@}" = "$pushed_digest" ] || { log "FAIL: digest $pulled_digest != $pushed_digest"; exit 1; }
tags=$(curl -fsS "http://$registry/v2/e2e/hello/tags/list")
[ "$tags" = '{"name":"e2e/hello","tags":["v1"]}' ] || { log "FAIL: tags $tags"; exit 1; }
docker rmi "$image" >/dev/null
log "docker round trip ok ($pushed_digest)"
