#!/usr/bin/env bash
# The web console in a real browser: Debian's chromium, headless, driven by
# Playwright for Python (tests/e2e/ui.py) against the release binary with
# users made by `wharf user add`, with an axe-core (npm) accessibility scan,
# and a service of the task runner on a Docker daemon for its pages.
# Screenshots of the main pages, light and dark, are saved under
# target/ui-screenshots/.
source "$(dirname "$0")/lib.sh"

ensure_packages chromium:chromium curl:curl busybox:busybox-static jq:jq
ensure_playwright
ensure_axe
ensure_aws_cli
start_dockerd
chromium=$(command -v chromium) || skip_or_fail "chromium is not on PATH after installing it"
bin="${WHARF_BIN:-target/release/wharf}"
conf="$E2E_TMP/ui.toml"
cat >"$conf" <<'TOML'
[[auth.rules]]
who = ["alice"]
repositories = ["*"]
actions = ["*"]
catalog = true

[[auth.rules]]
who = ["bob"]
repositories = ["team/*"]
actions = ["pull"]
TOML
prepare_data ui
echo "alice-password" | "$bin" user add alice --config "$conf" --data-dir "$WHARF_DATA" >/dev/null
echo "bob-password" | "$bin" user add bob --config "$conf" --data-dir "$WHARF_DATA" >/dev/null
keys=$("$bin" user keys create alice --config "$conf" --data-dir "$WHARF_DATA")
start_wharf ui --config "$conf"

# A running service for the runner pages: a FROM-scratch busybox image
# pushed by docker, one task that logs and stays up.
key_of() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k { print $3 }'; }
export AWS_DEFAULT_REGION=us-east-1 AWS_PAGER="" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_ACCESS_KEY_ID="$(key_of "$keys" aws_access_key_id)" AWS_SECRET_ACCESS_KEY="$(key_of "$keys" aws_secret_access_key)"
ecs() { "${AWS_CLI[@]}" ecs --endpoint-url "http://127.0.0.1:$WHARF_PORT" --output json "$@"; }
export DOCKER_CONFIG="$E2E_TMP/ui-docker-config"
rm -rf "$DOCKER_CONFIG"
ctx="$E2E_TMP/ui-image"
rm -rf "$ctx" && mkdir -p "$ctx"
cp "$(command -v busybox)" "$ctx/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT ["/bin/busybox"]\n' >"$ctx/Dockerfile"
image="localhost:$WHARF_PORT/apps/hello:1"
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null 2>&1
echo "alice-password" | docker login -u alice --password-stdin "localhost:$WHARF_PORT" >/dev/null
docker push -q "$image" >/dev/null
docker rmi -f "$image" >/dev/null
ecs register-task-definition --family hello --network-mode none --container-definitions \
    "[{\"name\":\"main\",\"image\":\"$image\",\"memory\":32,\"stopTimeout\":2,\"command\":[\"sh\",\"-c\",\"echo hello from the console; i=0; while sleep 1; do i=\$((i+1)); echo tick \$i; done\"]}]" >/dev/null
remove_service() {
    ecs update-service --service hello --desired-count 0 >/dev/null || true
    ecs delete-service --service hello >/dev/null || true
}
ecs create-service --service-name hello --task-definition hello --desired-count 1 >/dev/null
ecs wait services-stable --services hello || { tail -20 "$E2E_TMP/ui.log" >&2; log "FAIL: the service did not become stable"; exit 1; }

out="target/ui-screenshots"
rm -rf "$out"
if ! "$PLAYWRIGHT_PYTHON" "$(dirname "$0")/ui.py" --base "http://127.0.0.1:$WHARF_PORT" \
    --out "$out" --chromium "$chromium" --axe "$AXE_JS" --aws "${AWS_CLI[*]}"; then
    tail -20 "$E2E_TMP/ui.log" >&2
    remove_service
    log "FAIL: the console in chromium"
    exit 1
fi
remove_service
log "console ok in $("$chromium" --version 2>/dev/null | head -1); screenshots in $out"
