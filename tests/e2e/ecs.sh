#!/usr/bin/env bash
# From `docker push` to a running container with the real AWS CLI: build a
# FROM-scratch busybox image, push it to Wharf, register a task definition,
# run it, wait with the CLI's own waiters (tasks-running, tasks-stopped,
# services-stable), read the logs (HTTP and `wharf task logs`), see a
# Docker Hub image and host networking refused, and the embedded container
# instance: listed with a filter, described, placement constraints, drained.
source "$(dirname "$0")/lib.sh"

ensure_packages busybox:busybox-static curl:curl jq:jq
ensure_aws_cli
start_dockerd
bin="${WHARF_BIN:-target/release/wharf}"
conf="$E2E_TMP/ecs.toml"
cat >"$conf" <<'TOML'
[[auth.rules]]
who = ["alice"]
repositories = ["*"]
actions = ["*"]
TOML
prepare_data ecs
data="$WHARF_DATA"
echo "alice-password" | "$bin" user add alice --config "$conf" --data-dir "$data" >/dev/null
keys=$("$bin" user keys create alice --config "$conf" --data-dir "$data")
key_of() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k { print $3 }'; }
start_wharf ecs --config "$conf"
registry="localhost:$WHARF_PORT"
export AWS_DEFAULT_REGION=us-east-1 AWS_PAGER="" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_ACCESS_KEY_ID="$(key_of "$keys" aws_access_key_id)" AWS_SECRET_ACCESS_KEY="$(key_of "$keys" aws_secret_access_key)"
ecs() { "${AWS_CLI[@]}" ecs --endpoint-url "http://127.0.0.1:$WHARF_PORT" --output json "$@"; }
fail() { log "FAIL: $*"; tail -20 "$E2E_TMP/ecs.log" >&2; exit 1; }
export DOCKER_CONFIG="$E2E_TMP/ecs-docker-config"
rm -rf "$DOCKER_CONFIG"

log "docker build and push"
ctx="$E2E_TMP/ecs-image"
rm -rf "$ctx" && mkdir -p "$ctx"
cp "$(command -v busybox)" "$ctx/busybox"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
ENTRYPOINT ["/bin/busybox"]
DOCKERFILE
image="$registry/apps/hello:1"
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null
echo "alice-password" | docker login -u alice --password-stdin "$registry" >/dev/null
docker push -q "$image" >/dev/null
docker rmi -f "$image" >/dev/null

log "a task from the pushed image"
def=$(ecs register-task-definition --family hello --network-mode none \
    --container-definitions "[{\"name\":\"main\",\"image\":\"$image\",\"memory\":32,\"command\":[\"sh\",\"-c\",\"sleep 8; echo hello from ecs\"]}]")
[ "$(jq -r .taskDefinition.revision <<<"$def")" = 1 ] || fail "register: $def"
# The CLI's tasks-running waiter polls every 6 s and fails on STOPPED: the
# task outlives one poll interval so the second poll still finds it running.
task=$(ecs run-task --task-definition hello | jq -r '.tasks[0].taskArn')
ecs wait tasks-running --tasks "$task" || fail "tasks-running"
ecs wait tasks-stopped --tasks "$task" || fail "tasks-stopped"
out=$(ecs describe-tasks --tasks "$task")
[ "$(jq -r '.tasks[0].stopCode' <<<"$out")" = EssentialContainerExited ] || fail "stop code: $out"
[ "$(jq -r '.tasks[0].containers[0].exitCode' <<<"$out")" = 0 ] || fail "exit code: $out"
digest=$(jq -r '.tasks[0].containers[0].imageDigest' <<<"$out")
[[ "$digest" == sha256:* ]] || fail "image digest: $out"
id="${task##*/}"
curl -sf -u alice:alice-password "http://127.0.0.1:$WHARF_PORT/ecs/tasks/$id/logs" | grep -q "hello from ecs" || fail "logs over HTTP"
"$bin" task logs "$id" --config "$conf" --data-dir "$data" | grep -q "hello from ecs" || fail "wharf task logs"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$WHARF_PORT/ecs/tasks/$id/logs")" = 401 ] || fail "logs without credentials"

log "a service, stable"
ecs register-task-definition --family web --network-mode none \
    --container-definitions "[{\"name\":\"main\",\"image\":\"$image\",\"memory\":32,\"stopTimeout\":2,\"command\":[\"sleep\",\"600\"]}]" >/dev/null
ecs create-service --service-name web --task-definition web --desired-count 2 >/dev/null
ecs wait services-stable --services web || fail "services-stable"
out=$(ecs describe-services --services web)
[ "$(jq -r '.services[0].runningCount' <<<"$out")" = 2 ] || fail "running count: $out"
"$bin" service ls --config "$conf" --data-dir "$data" | grep -q "web" || fail "wharf service ls"
ecs update-service --service web --desired-count 0 >/dev/null
ecs delete-service --service web >/dev/null
ecs wait services-inactive --services web || fail "services-inactive"

log "images from elsewhere are refused"
if out=$(ecs register-task-definition --family hub \
    --container-definitions '[{"name":"main","image":"busybox","memory":32}]' 2>&1); then
    fail "a Docker Hub image was accepted"
fi
grep -q "(ClientException)" <<<"$out" || fail "Docker Hub image: $out"

log "host networking is the operator's decision"
if out=$(ecs register-task-definition --family hostnet --network-mode host \
    --container-definitions "[{\"name\":\"main\",\"image\":\"$image\",\"memory\":32}]" 2>&1); then
    fail "networkMode host was accepted"
fi
grep -q "allow_host_network" <<<"$out" || fail "networkMode host: $out"

log "the embedded container instance"
instance=$(ecs list-container-instances --filter "attribute:ecs.os-type == linux" | jq -r '.containerInstanceArns[0]')
[[ "$instance" == arn:aws:ecs:*:container-instance/default/* ]] || fail "list-container-instances: $instance"
out=$(ecs describe-container-instances --container-instances "$instance")
[ "$(jq -r '.containerInstances[0].status' <<<"$out")" = ACTIVE ] || fail "describe: $out"
[ "$(jq -r '.containerInstances[0].agentConnected' <<<"$out")" = true ] || fail "agentConnected: $out"
[ "$(jq -r '.containerInstances[0].registeredResources[] | select(.name == "MEMORY") | .integerValue' <<<"$out")" -gt 0 ] \
    || fail "registered memory: $out"
out=$(ecs run-task --task-definition hello --placement-constraints 'type=memberOf,expression=attribute:ecs.os-type == windows')
[ "$(jq -r '.failures[0].reason' <<<"$out")" = "MemberOf placement constraint unsatisfied" ] || fail "memberOf: $out"
out=$(ecs run-task --task-definition hello --placement-constraints 'type=memberOf,expression=attribute:ecs.os-type == linux' \
    --placement-strategy type=binpack,field=memory)
task=$(jq -r '.tasks[0].taskArn' <<<"$out")
[ "$(jq -r '.tasks[0].containerInstanceArn' <<<"$out")" = "$instance" ] || fail "placed task: $out"
ecs wait tasks-stopped --tasks "$task" || fail "placed task stops"
out=$(ecs update-container-instances-state --container-instances "$instance" --status DRAINING)
[ "$(jq -r '.containerInstances[0].status' <<<"$out")" = DRAINING ] || fail "drain: $out"
if out=$(ecs run-task --task-definition hello 2>&1); then
    fail "a task was placed on a draining instance: $out"
fi
grep -q "No Container Instances" <<<"$out" || fail "run-task while draining: $out"
ecs update-container-instances-state --container-instances "$instance" --status ACTIVE >/dev/null
log "ok"
