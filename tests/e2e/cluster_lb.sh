# Sourced by cluster.sh once its own checks pass: a service behind the
# built-in load balancer on the same three instances, driven with the real
# AWS CLI (`aws elbv2`, `aws ecs`) and loaded with wrk. Target group and
# listener; three tasks registered and healthy; requests reach all three;
# a rolling deployment under steady load with zero failed requests; a task
# whose health endpoint fails stops receiving traffic and is replaced; a TCP
# listener over instance targets registered by hand.

elbv2() { "${AWS_CLI[@]}" elbv2 --endpoint-url "http://127.0.0.1:$WHARF_PORT" --output json "$@"; }
healthy_targets() {
    elbv2 describe-target-health --target-group-arn "$tg" |
        jq '[.TargetHealthDescriptions[] | select(.TargetHealth.State == "healthy")] | length'
}
wait_healthy() { # N: wait until N targets are healthy
    for _ in $(seq 1 90); do [ "$(healthy_targets)" = "$1" ] && return 0; sleep 1; done
    fail "$1 healthy targets: $(elbv2 describe-target-health --target-group-arn "$tg")"
}
through_lb() { # N: the bodies of N requests through the listener, one per line ("-" for none)
    for _ in $(seq 1 "$1"); do
        body=$(curl -s --max-time 5 "http://127.0.0.1:$LB_PORT/")
        echo "${body:--}"
    done
}

log "load balancer: a target group, a load balancer and a listener"
tg=$(elbv2 create-target-group --name web --protocol HTTP --port 8080 --target-type instance \
    --health-check-path /health --health-check-interval-seconds 5 --health-check-timeout-seconds 2 \
    --healthy-threshold-count 2 --unhealthy-threshold-count 2 | jq -r '.TargetGroups[0].TargetGroupArn')
[ -n "$tg" ] && [ "$tg" != null ] || fail "create-target-group"
elbv2 modify-target-group-attributes --target-group-arn "$tg" \
    --attributes Key=deregistration_delay.timeout_seconds,Value=3 >/dev/null
lb=$(elbv2 create-load-balancer --name front --type application --subnets subnet-a |
    jq -r '.LoadBalancers[0].LoadBalancerArn')
LB_PORT=$(free_port)
elbv2 create-listener --load-balancer-arn "$lb" --protocol HTTP --port "$LB_PORT" \
    --default-actions "Type=forward,TargetGroupArn=$tg" >/dev/null

# Each task serves a random id of its own (with its revision) at / and "ok" at /health.
web_definition() { # REVISION_MARK
    local script="/bin/busybox mkdir -p /www && echo $1-\$(/bin/busybox head -c 6 /dev/urandom | /bin/busybox od -An -tx1 | /bin/busybox tr -d ' \\\\n') > /www/index.html && echo ok > /www/health && exec /bin/busybox httpd -f -p 8080 -h /www"
    ecs register-task-definition --family lbweb --network-mode host --container-definitions \
        "[{\"name\":\"main\",\"image\":\"$image\",\"memory\":64,\"stopTimeout\":2,\"portMappings\":[{\"containerPort\":8080}],\"command\":[\"sh\",\"-c\",\"$script\"]}]" >/dev/null
}
web_definition v1
web_definition v2

log "a service of three behind the target group: registered, healthy, all reached"
# Host networking binds 8080 on each host: a rolling deployment replaces one task at a time.
ecs create-service --service-name web --task-definition lbweb:1 --desired-count 3 \
    --deployment-configuration minimumHealthyPercent=66,maximumPercent=100 \
    --load-balancers "targetGroupArn=$tg,containerName=main,containerPort=8080" \
    --health-check-grace-period-seconds 10 --placement-constraints type=distinctInstance >/dev/null
wait_healthy 3
out=$(ecs describe-services --services web)
[ "$(jq -r '.services[0].loadBalancers[0].targetGroupArn' <<<"$out")" = "$tg" ] || fail "loadBalancers: $out"
ids=$(through_lb 30 | sort -u)
[ "$(grep -c '^v1-' <<<"$ids")" = 3 ] && [ "$(wc -l <<<"$ids")" = 3 ] || fail "requests reach all three tasks: $ids"

log "a rolling deployment under load: zero failed requests"
wrk_out="$E2E_TMP/cluster-wrk.txt"
# The load runs 50 s; the deployment must complete within it, 3 s after it starts.
wrk -t2 -c8 -d50s "http://127.0.0.1:$LB_PORT/" >"$wrk_out" 2>&1 &
wrk_pid=$!
sleep 3
started=$(date +%s)
ecs update-service --service web --task-definition lbweb:2 >/dev/null
done_at=""
for _ in $(seq 1 70); do
    out=$(ecs describe-services --services web)
    if [ "$(jq '.services[0].deployments | length' <<<"$out")" = 1 ] &&
        [ "$(jq -r '.services[0].deployments[0].rolloutState' <<<"$out")" = COMPLETED ] &&
        jq -r '.services[0].deployments[0].taskDefinition' <<<"$out" | grep -q 'lbweb:2$'; then
        done_at=$(($(date +%s) - started))
        break
    fi
    sleep 1
done
wait "$wrk_pid" || true
log "wrk through the listener during the deployment:"
cat "$wrk_out" >&2
[ -n "$done_at" ] || fail "the deployment did not complete: $(jq -c '.services[0].deployments' <<<"$out")"
[ "$done_at" -le 45 ] || fail "the deployment took ${done_at}s, longer than the load ran"
grep -q "requests in" "$wrk_out" || fail "wrk did not run"
! grep -q "Socket errors" "$wrk_out" || fail "connection errors during the deployment"
! grep -q "Non-2xx or 3xx responses" "$wrk_out" || fail "error responses during the deployment"
log "deployment of 3 tasks completed in ${done_at}s; $(awk '/requests in/ { print $1 }' "$wrk_out") requests through the listener, none failed"
ids=$(through_lb 30 | sort -u)
[ "$(grep -c '^v2-' <<<"$ids")" = 3 ] && [ "$(wc -l <<<"$ids")" = 3 ] || fail "traffic moved to the new tasks: $ids"

log "a task whose health endpoint fails: unhealthy, no traffic, replaced"
victim_task=$(ecs list-tasks --service-name web --desired-status RUNNING | jq -r '.taskArns[0]')
victim_instance=$(instance_of "$victim_task")
for i in 1 2 3; do [ "$(arn_of "zone-$(printf '%s' abc | cut -c"$i")")" = "$victim_instance" ] && victim_daemon=$i; done
victim_container=$(DOCKER_HOST="unix://$root/d$victim_daemon/docker.sock" docker ps -q --filter "label=wharf.task=${victim_task##*/}")
victim_id=$(DOCKER_HOST="unix://$root/d$victim_daemon/docker.sock" docker exec "$victim_container" /bin/busybox cat /www/index.html)
DOCKER_HOST="unix://$root/d$victim_daemon/docker.sock" docker exec "$victim_container" /bin/busybox rm /www/health
unhealthy=""
for _ in $(seq 1 40); do
    out=$(elbv2 describe-target-health --target-group-arn "$tg")
    if jq -e '.TargetHealthDescriptions[] | select(.TargetHealth.State == "unhealthy" or .TargetHealth.State == "draining")' <<<"$out" >/dev/null; then
        unhealthy=1
        break
    fi
    sleep 0.5
done
[ -n "$unhealthy" ] || fail "the failing target never turned unhealthy: $out"
! through_lb 30 | grep -qx "$victim_id" || fail "traffic still reaches the unhealthy task"
stopped=""
for _ in $(seq 1 60); do
    out=$(ecs describe-tasks --tasks "$victim_task")
    [ "$(jq -r '.tasks[0].lastStatus' <<<"$out")" = STOPPED ] && stopped=1 && break
    sleep 1
done
[ -n "$stopped" ] || fail "the unhealthy task was not stopped: $out"
jq -r '.tasks[0].stoppedReason' <<<"$out" | grep -q "ELB health checks" || fail "stoppedReason: $out"
wait_healthy 3
ids=$(through_lb 30 | sort -u)
[ "$(grep -c '^v2-' <<<"$ids")" = 3 ] && [ "$(wc -l <<<"$ids")" = 3 ] && ! grep -qx "$victim_id" <<<"$ids" ||
    fail "three serving tasks after the replacement: $(tr '\n' ' ' <<<"$ids")"

log "a TCP listener on a network load balancer, over instance targets registered by hand"
tcp_tg=$(elbv2 create-target-group --name web-tcp --protocol TCP --port 8080 --target-type instance \
    --health-check-interval-seconds 5 --health-check-timeout-seconds 2 --healthy-threshold-count 2 | jq -r '.TargetGroups[0].TargetGroupArn')
# The instances' ids, as DescribeContainerInstances names them; the port the tasks serve on.
ids_args=$(for arn in $A $B $C; do printf 'Id=%s,Port=8080 ' "${arn##*/}"; done)
# shellcheck disable=SC2086
elbv2 register-targets --target-group-arn "$tcp_tg" --targets $ids_args >/dev/null
nlb=$(elbv2 create-load-balancer --name front-tcp --type network --subnets subnet-a | jq -r '.LoadBalancers[0].LoadBalancerArn')
TCP_PORT=$(free_port)
elbv2 create-listener --load-balancer-arn "$nlb" --protocol TCP --port "$TCP_PORT" \
    --default-actions "Type=forward,TargetGroupArn=$tcp_tg" >/dev/null
tcp_healthy() {
    elbv2 describe-target-health --target-group-arn "$tcp_tg" |
        jq '[.TargetHealthDescriptions[] | select(.TargetHealth.State == "healthy")] | length'
}
for _ in $(seq 1 60); do [ "$(tcp_healthy)" = 3 ] && break; sleep 1; done
[ "$(tcp_healthy)" = 3 ] || fail "three healthy TCP targets: $(elbv2 describe-target-health --target-group-arn "$tcp_tg")"
tcp_ids=$(for _ in $(seq 1 30); do curl -s --max-time 5 "http://127.0.0.1:$TCP_PORT/"; done | sort -u)
[ "$(grep -c '^v2-' <<<"$tcp_ids")" = 3 ] || fail "the TCP listener reaches all three hosts: $(tr '\n' ' ' <<<"$tcp_ids")"
tcp_listener=$(elbv2 describe-listeners --load-balancer-arn "$nlb" | jq -r '.Listeners[0].ListenerArn')
elbv2 delete-listener --listener-arn "$tcp_listener" >/dev/null
elbv2 delete-load-balancer --load-balancer-arn "$nlb" >/dev/null
elbv2 delete-target-group --target-group-arn "$tcp_tg" >/dev/null

log "load balancer: cleanup"
ecs update-service --service web --desired-count 0 >/dev/null
ecs delete-service --service web >/dev/null
listener=$(elbv2 describe-listeners --load-balancer-arn "$lb" | jq -r '.Listeners[0].ListenerArn')
elbv2 delete-listener --listener-arn "$listener" >/dev/null
elbv2 delete-load-balancer --load-balancer-arn "$lb" >/dev/null
for _ in $(seq 1 30); do
    elbv2 delete-target-group --target-group-arn "$tg" >/dev/null 2>&1 && break
    sleep 1
done
log "load balancer: all checks passed"
