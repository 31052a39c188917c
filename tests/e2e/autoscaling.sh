#!/usr/bin/env bash
# Service auto scaling with the real AWS CLI (`aws application-autoscaling`)
# and real containers on the embedded engine: a service whose one task burns
# CPU (a busy loop in a task of 256 CPU units, so ~100 % of what it
# reserves), registered with min 1 and max 3 and a CPU target of 50, scales
# out to 3 and never beyond; deployed again with a task that idles, it
# scales back in to 1 once the deployment is done. Periods are shortened
# ([scaling] below) so this takes a minute or two, not half an hour.
source "$(dirname "$0")/lib.sh"

ensure_packages busybox:busybox-static curl:curl jq:jq
ensure_aws_cli
start_dockerd
bin="${WHARF_BIN:-target/release/wharf}"
conf="$E2E_TMP/autoscaling.toml"
cat >"$conf" <<'TOML'
[[auth.rules]]
who = ["alice"]
repositories = ["*"]
actions = ["*"]
[runner]
poll_interval_ms = 500
[scaling]
period_seconds = 3
scale_out_periods = 2
scale_in_periods = 3
sample_seconds = 1
TOML
prepare_data autoscaling
data="$WHARF_DATA"
echo "alice-password" | "$bin" user add alice --config "$conf" --data-dir "$data" >/dev/null
keys=$("$bin" user keys create alice --config "$conf" --data-dir "$data")
key_of() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k { print $3 }'; }
start_wharf autoscaling --config "$conf"
registry="localhost:$WHARF_PORT"
endpoint="http://127.0.0.1:$WHARF_PORT"
export AWS_DEFAULT_REGION=us-east-1 AWS_PAGER="" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_ACCESS_KEY_ID="$(key_of "$keys" aws_access_key_id)" AWS_SECRET_ACCESS_KEY="$(key_of "$keys" aws_secret_access_key)"
ecs() { "${AWS_CLI[@]}" ecs --endpoint-url "$endpoint" --output json "$@"; }
aas() { "${AWS_CLI[@]}" application-autoscaling --endpoint-url "$endpoint" --output json "$@"; }
fail() { log "FAIL: $*"; tail -20 "$E2E_TMP/autoscaling.log" >&2; cleanup; exit 1; }
desired() { ecs describe-services --services burn | jq -r '.services[0].desiredCount'; }
export DOCKER_CONFIG="$E2E_TMP/autoscaling-docker-config"
rm -rf "$DOCKER_CONFIG"
# The service goes to 0 and away whatever happens, so no busy loop outlives the test.
cleanup() {
    ecs update-service --service burn --desired-count 0 >/dev/null 2>&1 || true
    ecs delete-service --service burn --force >/dev/null 2>&1 || true
    ecs wait services-inactive --services burn >/dev/null 2>&1 || true
}

log "docker build and push"
ctx="$E2E_TMP/autoscaling-image"
rm -rf "$ctx" && mkdir -p "$ctx"
cp "$(command -v busybox)" "$ctx/busybox"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
ENTRYPOINT ["/bin/busybox"]
DOCKERFILE
image="$registry/apps/burn:1"
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null
echo "alice-password" | docker login -u alice --password-stdin "$registry" >/dev/null
docker push -q "$image" >/dev/null
docker rmi -f "$image" >/dev/null

log "a service whose task burns CPU"
ecs register-task-definition --family burn --network-mode none --cpu 256 \
    --container-definitions "[{\"name\":\"main\",\"image\":\"$image\",\"memory\":32,\"stopTimeout\":2,\"command\":[\"sh\",\"-c\",\"while :; do :; done\"]}]" >/dev/null
ecs create-service --service-name burn --task-definition burn:1 --desired-count 1 >/dev/null
ecs wait services-stable --services burn || fail "services-stable"

log "a scalable target and a CPU target tracking policy"
out=$(aas register-scalable-target --service-namespace ecs --resource-id service/default/burn \
    --scalable-dimension ecs:service:DesiredCount --min-capacity 1 --max-capacity 3)
[[ "$(jq -r .ScalableTargetARN <<<"$out")" == arn:aws:application-autoscaling:* ]] || fail "register: $out"
out=$(aas put-scaling-policy --service-namespace ecs --resource-id service/default/burn \
    --scalable-dimension ecs:service:DesiredCount --policy-name cpu50 --policy-type TargetTrackingScaling \
    --target-tracking-scaling-policy-configuration \
    '{"TargetValue":50,"PredefinedMetricSpecification":{"PredefinedMetricType":"ECSServiceAverageCPUUtilization"},"ScaleOutCooldown":5,"ScaleInCooldown":5}')
jq -e '.Alarms[0].AlarmName | startswith("TargetTracking-service/default/burn-AlarmHigh-")' <<<"$out" >/dev/null ||
    fail "put-scaling-policy: $out"
out=$(aas describe-scalable-targets --service-namespace ecs)
[ "$(jq -r '.ScalableTargets[0].MaxCapacity' <<<"$out")" = 3 ] || fail "describe-scalable-targets: $out"
if out=$(aas put-scaling-policy --service-namespace ecs --resource-id service/default/burn \
    --scalable-dimension ecs:service:DesiredCount --policy-name steps --policy-type StepScaling 2>&1); then
    fail "a StepScaling policy was accepted"
fi
grep -q "ValidationException" <<<"$out" || fail "StepScaling: $out"

log "scale out to the maximum, and no further"
reached=""
for _ in $(seq 1 90); do
    n=$(desired)
    [ "$n" -le 3 ] || fail "desired count $n above the maximum"
    if [ "$n" = 3 ]; then reached=1; break; fi
    sleep 2
done
[ -n "$reached" ] || fail "the service did not scale out to 3 (desired $(desired))"
metrics=$(curl -s "$endpoint/metrics")
grep -q '^wharf_service_cpu_utilization_percent{cluster="default",service="burn"}' <<<"$metrics" ||
    grep -q '^wharf_service_cpu_utilization_percent{service="burn",cluster="default"}' <<<"$metrics" ||
    fail "no CPU utilization in /metrics"
# A few more periods at full burn: still 3.
for _ in $(seq 1 5); do
    sleep 2
    n=$(desired)
    [ "$n" -le 3 ] || fail "desired count $n above the maximum"
done

log "an idle task: scale in to the minimum once the deployment is done"
ecs register-task-definition --family burn --network-mode none --cpu 256 \
    --container-definitions "[{\"name\":\"main\",\"image\":\"$image\",\"memory\":32,\"stopTimeout\":2,\"command\":[\"sleep\",\"600\"]}]" >/dev/null
ecs update-service --service burn --task-definition burn:2 >/dev/null
reached=""
for _ in $(seq 1 120); do
    n=$(desired)
    [ "$n" -le 3 ] || fail "desired count $n above the maximum"
    if [ "$n" = 1 ]; then reached=1; break; fi
    sleep 2
done
[ -n "$reached" ] || fail "the service did not scale in to 1 (desired $(desired))"

log "the activities"
out=$(aas describe-scaling-activities --service-namespace ecs --resource-id service/default/burn)
jq -r '.ScalingActivities[] | "\(.StatusCode)\t\(.Description)\t\(.Cause)"' <<<"$out" >&2
jq -e '[.ScalingActivities[] | select(.StatusCode == "Successful" and .Description == "Setting desired count to 3.")] | length > 0' \
    <<<"$out" >/dev/null || fail "no scale-out to 3 among the activities"
jq -e '[.ScalingActivities[] | select(.StatusCode == "Successful" and .Description == "Setting desired count to 1.")] | length > 0' \
    <<<"$out" >/dev/null || fail "no scale-in to 1 among the activities"
jq -e '.ScalingActivities[0].Cause | test("^monitor alarm TargetTracking-service/default/burn-AlarmLow-.* in state ALARM triggered policy cpu50$")' \
    <<<"$out" >/dev/null || fail "cause: $out"

aas deregister-scalable-target --service-namespace ecs --resource-id service/default/burn \
    --scalable-dimension ecs:service:DesiredCount >/dev/null || fail "deregister"
out=$(aas describe-scaling-policies --service-namespace ecs)
[ "$(jq '.ScalingPolicies | length' <<<"$out")" = 0 ] || fail "policies outlived their target: $out"
cleanup
log "ok"
