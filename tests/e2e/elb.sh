#!/usr/bin/env bash
# The load balancer's control plane with the real AWS CLI (`aws elbv2`, the
# Query protocol): target groups and their attributes, targets and their
# health, a load balancer with a listener, the errors the CLI reports (its
# exit code and the code on stderr), and a deployer refused what only the
# operator may do. No container runs: the runner (which the balancer comes
# with) points at a Docker socket that does not exist.
source "$(dirname "$0")/lib.sh"

ensure_packages curl:curl jq:jq
ensure_aws_cli
bin="${WHARF_BIN:-target/release/wharf}"
conf="$E2E_TMP/elb.toml"
cat >"$conf" <<'TOML'
[[auth.rules]]
who = ["olga"]
repositories = ["*"]
actions = ["*"]
[[auth.rules]]
who = ["dave"]
repositories = ["apps/*"]
actions = ["pull", "push"]
[runner]
docker_host = "/nonexistent/wharf-e2e/docker.sock"
TOML
prepare_data elb
data="$WHARF_DATA"
for user in olga dave; do
    echo "$user-password" | "$bin" user add "$user" --config "$conf" --data-dir "$data" >/dev/null
done
olga_keys=$("$bin" user keys create olga --config "$conf" --data-dir "$data")
dave_keys=$("$bin" user keys create dave --config "$conf" --data-dir "$data")
key_of() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k { print $3 }'; }
start_wharf elb --config "$conf"
export AWS_DEFAULT_REGION=us-east-1 AWS_PAGER="" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_ACCESS_KEY_ID="$(key_of "$olga_keys" aws_access_key_id)" AWS_SECRET_ACCESS_KEY="$(key_of "$olga_keys" aws_secret_access_key)"
elb() { "${AWS_CLI[@]}" elbv2 --endpoint-url "http://127.0.0.1:$WHARF_PORT" --output json "$@"; }
fail() { log "FAIL: $*"; tail -20 "$E2E_TMP/elb.log" >&2; exit 1; }
# refused STATUS: the CLI's exit status when the service said no (254 for
# CLI v2, 255 for v1, which PyPI's awscli is).
refused() { [ "$1" = 254 ] || [ "$1" = 255 ]; }
# expect_error CODE ARGS...: the CLI fails as refused and names CODE on stderr.
expect_error() {
    local code="$1" err status=0
    shift
    err=$(elb "$@" 2>&1 >/dev/null) || status=$?
    refused "$status" || fail "$* exited $status: $err"
    grep -q "($code)" <<<"$err" || fail "$*: expected $code: $err"
}

log "a target group, its attributes"
out=$(elb create-target-group --name web --protocol HTTP --port 80 --target-type ip --health-check-path /health)
tg=$(jq -r '.TargetGroups[0].TargetGroupArn' <<<"$out")
[[ "$tg" == arn:aws:elasticloadbalancing:us-east-1:*:targetgroup/web/* ]] || fail "create-target-group: $out"
[ "$(jq -c '.TargetGroups[0] | [.HealthCheckIntervalSeconds, .HealthCheckTimeoutSeconds, .HealthyThresholdCount, .UnhealthyThresholdCount, .Matcher.HttpCode, .HealthCheckPort, .HealthCheckPath]' <<<"$out")" = '[30,6,5,2,"200","traffic-port","/health"]' ] ||
    fail "defaults: $out"
again=$(elb create-target-group --name web --protocol HTTP --port 80 --target-type ip --health-check-path /health)
[ "$(jq -r '.TargetGroups[0].TargetGroupArn' <<<"$again")" = "$tg" ] || fail "idempotent create: $again"
expect_error DuplicateTargetGroupName create-target-group --name web --protocol HTTP --port 81 --target-type ip
expect_error ValidationError create-target-group --name=-web --protocol HTTP --port 80
expect_error ValidationError create-target-group --name slow --protocol HTTP --port 80 \
    --health-check-interval-seconds 10 --health-check-timeout-seconds 10
out=$(elb describe-target-groups --names web)
[ "$(jq -r '.TargetGroups | length' <<<"$out")" = 1 ] || fail "describe-target-groups: $out"
expect_error TargetGroupNotFound describe-target-groups --names nope
elb modify-target-group-attributes --target-group-arn "$tg" \
    --attributes Key=deregistration_delay.timeout_seconds,Value=30 Key=load_balancing.algorithm.type,Value=least_outstanding_requests >/dev/null
out=$(elb describe-target-group-attributes --target-group-arn "$tg")
[ "$(jq -c '[.Attributes[] | {(.Key): .Value}] | add' <<<"$out")" = \
    '{"deregistration_delay.timeout_seconds":"30","slow_start.duration_seconds":"0","load_balancing.algorithm.type":"least_outstanding_requests"}' ] ||
    fail "describe-target-group-attributes: $out"
expect_error ValidationError modify-target-group-attributes --target-group-arn "$tg" \
    --attributes Key=slow_start.duration_seconds,Value=10

log "targets and their health"
elb register-targets --target-group-arn "$tg" --targets Id=127.0.1.1,Port=8080 Id=127.0.1.2 >/dev/null
out=$(elb describe-target-health --target-group-arn "$tg")
# Loopback addresses nothing listens on: checks fail at once, and the targets stay initial.
[ "$(jq -c '[.TargetHealthDescriptions[] | [.Target.Id, .Target.Port, .TargetHealth.State]]' <<<"$out")" = \
    '[["127.0.1.1",8080,"initial"],["127.0.1.2",80,"initial"]]' ] ||
    fail "describe-target-health: $out"
jq -e '[.TargetHealthDescriptions[].TargetHealth.Reason] | all(. == "Elb.RegistrationInProgress" or . == "Elb.InitialHealthChecking")' <<<"$out" >/dev/null ||
    fail "initial reasons: $out"
out=$(elb describe-target-health --target-group-arn "$tg" --targets Id=127.0.1.9,Port=80)
[ "$(jq -c '[.TargetHealthDescriptions[].TargetHealth | .State, .Reason]' <<<"$out")" = '["unused","Target.NotRegistered"]' ] ||
    fail "unregistered target: $out"
expect_error InvalidTarget register-targets --target-group-arn "$tg" --targets Id=not-an-ip
elb deregister-targets --target-group-arn "$tg" --targets Id=127.0.1.2 Id=127.9.9.9 >/dev/null
out=$(elb describe-target-health --target-group-arn "$tg" --targets Id=127.0.1.2)
[ "$(jq -r '.TargetHealthDescriptions[0].TargetHealth.State' <<<"$out")" = draining ] || fail "draining: $out"

log "a load balancer and a listener"
out=$(elb create-load-balancer --name front --subnets subnet-1 subnet-2)
lb=$(jq -r '.LoadBalancers[0].LoadBalancerArn' <<<"$out")
[ "$(jq -r '.LoadBalancers[0].State.Code' <<<"$out")" = active ] || fail "create-load-balancer: $out"
[[ "$(jq -r '.LoadBalancers[0].DNSName' <<<"$out")" == front-*.us-east-1.elb.localhost ]] || fail "DNS name: $out"
port=$(free_port)
out=$(elb create-listener --load-balancer-arn "$lb" --protocol HTTP --port "$port" \
    --default-actions "Type=forward,TargetGroupArn=$tg")
listener=$(jq -r '.Listeners[0].ListenerArn' <<<"$out")
[[ "$listener" == *:listener/app/front/* ]] || fail "create-listener: $out"
expect_error DuplicateListener create-listener --load-balancer-arn "$lb" --protocol HTTP --port "$port" \
    --default-actions "Type=forward,TargetGroupArn=$tg"
nlb=$(elb create-load-balancer --name db --type network | jq -r '.LoadBalancers[0].LoadBalancerArn')
expect_error ValidationError create-listener --load-balancer-arn "$nlb" --protocol HTTP --port "$(free_port)" \
    --default-actions "Type=forward,TargetGroupArn=$tg"
out=$(elb describe-listeners --load-balancer-arn "$lb")
[ "$(jq -c '[.Listeners[] | [.ListenerArn, .Port, .Protocol, .DefaultActions[0].TargetGroupArn]]' <<<"$out")" = \
    "[[\"$listener\",$port,\"HTTP\",\"$tg\"]]" ] || fail "describe-listeners: $out"
out=$(elb describe-target-groups --load-balancer-arn "$lb")
[ "$(jq -r '.TargetGroups[0].LoadBalancerArns[0]' <<<"$out")" = "$lb" ] || fail "groups of the load balancer: $out"
expect_error ResourceInUse delete-target-group --target-group-arn "$tg"

log "a deployer describes, and is refused changes"
deployer() {
    AWS_ACCESS_KEY_ID="$(key_of "$dave_keys" aws_access_key_id)" \
        AWS_SECRET_ACCESS_KEY="$(key_of "$dave_keys" aws_secret_access_key)" elb "$@"
}
deployer describe-load-balancers >/dev/null || fail "a deployer describes load balancers"
status=0
err=$(deployer create-target-group --name mine --protocol HTTP --port 80 2>&1 >/dev/null) || status=$?
refused "$status" && grep -q "(AccessDenied)" <<<"$err" || fail "deployer create-target-group: $status $err"
status=0
err=$(AWS_SECRET_ACCESS_KEY=wrong elb describe-load-balancers 2>&1 >/dev/null) || status=$?
refused "$status" && grep -q "(SignatureDoesNotMatch)" <<<"$err" || fail "wrong secret: $status $err"

log "deleting"
elb delete-listener --listener-arn "$listener" >/dev/null
expect_error ListenerNotFound describe-listeners --listener-arns "$listener"
elb delete-load-balancer --load-balancer-arn "$lb" >/dev/null
elb delete-load-balancer --load-balancer-arn "$nlb" >/dev/null
[ "$(elb describe-load-balancers | jq -r '.LoadBalancers | length')" = 0 ] || fail "load balancers left"
elb delete-target-group --target-group-arn "$tg" >/dev/null
[ "$(elb describe-target-groups | jq -r '.TargetGroups | length')" = 0 ] || fail "target groups left"
log "elb: ok"
