#!/usr/bin/env bash
# Auth end to end: docker login/push/pull with users and an access token,
# denied pushes, anonymous pull where configured, skopeo --creds, and the
# conformance runner with credentials.
source "$(dirname "$0")/lib.sh"

ensure_packages busybox:busybox-static curl:curl skopeo:skopeo
start_dockerd
bin="${WHARF_BIN:-target/release/wharf}"
conf="$E2E_TMP/auth.toml"
cat >"$conf" <<'TOML'
[auth]
anonymous_pull = ["public/*"]

[[auth.rules]]
who = ["alice"]
repositories = ["*"]
actions = ["*"]
catalog = true

[[auth.rules]]
who = ["group:readers"]
repositories = ["*"]
actions = ["pull"]
TOML
prepare_data auth
data="$WHARF_DATA"
echo "alice-password" | "$bin" user add alice --config "$conf" --data-dir "$data" >/dev/null
echo "reader-password" | "$bin" user add reader --group readers --config "$conf" --data-dir "$data" >/dev/null
secret=$("$bin" token create --name ci --scope 'repository:robots/*:pull,push' --expires 1d --config "$conf" --data-dir "$data")

start_wharf auth --config "$conf"
registry="127.0.0.1:$WHARF_PORT"
export DOCKER_CONFIG="$E2E_TMP/docker-config"
rm -rf "$DOCKER_CONFIG" && mkdir -p "$DOCKER_CONFIG"

fail() { log "FAIL: $*"; tail -20 "$E2E_TMP/auth.log" >&2; exit 1; }

ctx="$E2E_TMP/auth-ctx"
rm -rf "$ctx" && mkdir -p "$ctx"
cp "$(command -v busybox)" "$ctx/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT ["/bin/busybox", "echo", "authenticated"]\n' >"$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$registry/team/app:v1" "$ctx" >/dev/null
docker tag "$registry/team/app:v1" "$registry/public/app:v1"
docker tag "$registry/team/app:v1" "$registry/robots/app:v1"

log "anonymous push is refused"
docker push "$registry/team/app:v1" >/dev/null 2>&1 && fail "anonymous push succeeded"

log "wrong password fails docker login"
echo "wrong" | docker login "$registry" -u alice --password-stdin >/dev/null 2>&1 && fail "login with a wrong password succeeded"

log "alice logs in and pushes"
echo "alice-password" | docker login "$registry" -u alice --password-stdin >/dev/null || fail "alice cannot log in"
docker push "$registry/team/app:v1" >/dev/null || fail "alice cannot push"
docker push "$registry/public/app:v1" >/dev/null || fail "alice cannot push to public/"

log "a pull-only user cannot push but can pull"
echo "reader-password" | docker login "$registry" -u reader --password-stdin >/dev/null || fail "reader cannot log in"
docker tag "$registry/team/app:v1" "$registry/team/app:v2"
docker push "$registry/team/app:v2" >/dev/null 2>&1 && fail "reader pushed"
docker rmi "$registry/team/app:v1" >/dev/null
docker pull "$registry/team/app:v1" >/dev/null || fail "reader cannot pull"
[ "$(docker run --rm --network host "$registry/team/app:v1")" = "authenticated" ] || fail "pulled image does not run"

log "anonymous pull works only where configured"
docker logout "$registry" >/dev/null
docker rmi "$registry/team/app:v1" "$registry/public/app:v1" >/dev/null
docker pull "$registry/public/app:v1" >/dev/null || fail "anonymous pull of public/ failed"
docker pull "$registry/team/app:v1" >/dev/null 2>&1 && fail "anonymous pull of team/ succeeded"

log "an access token works in docker login until it is revoked"
echo "$secret" | docker login "$registry" -u ci --password-stdin >/dev/null || fail "token login failed"
docker push "$registry/robots/app:v1" >/dev/null || fail "token push failed"
docker push "$registry/team/app:v2" >/dev/null 2>&1 && fail "token pushed outside its scope"
"$bin" token revoke ci --config "$conf" --data-dir "$data" >/dev/null
docker logout "$registry" >/dev/null
echo "$secret" | docker login "$registry" -u ci --password-stdin >/dev/null 2>&1 && fail "revoked token still logs in"

log "skopeo --creds round trip"
layout="$E2E_TMP/auth-oci"
rm -rf "$layout" "$layout-back"
index=$(python3 "$(dirname "$0")/make_oci_layout.py" "$layout" v1)
skopeo copy --all --preserve-digests --dest-tls-verify=false "oci:$layout:v1" "docker://$registry/team/multi:v1" >/dev/null 2>&1 &&
    fail "skopeo pushed without credentials"
skopeo copy --all --preserve-digests --dest-tls-verify=false --dest-creds alice:alice-password \
    "oci:$layout:v1" "docker://$registry/team/multi:v1" >/dev/null || fail "skopeo push with credentials"
skopeo copy --all --preserve-digests --src-tls-verify=false --src-creds reader:reader-password \
    "docker://$registry/team/multi:v1" "oci:$layout-back:v1" >/dev/null || fail "skopeo pull with credentials"
back=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$layout-back/index.json")
[ "$back" = "$index" ] || fail "skopeo round trip changed the digest"

log "conformance runner with credentials"
OCI_ROOT_URL="http://$registry" OCI_NAMESPACE="conformance/auth" OCI_CROSSMOUNT_NAMESPACE="conformance/auth-cross" \
    OCI_USERNAME=alice OCI_PASSWORD=alice-password python3 conformance/run.py | tail -1 | tee "$E2E_TMP/auth-conformance"
grep -q ' 0 failed' "$E2E_TMP/auth-conformance" || fail "conformance with credentials"
log "auth round trips ok"
