#!/usr/bin/env bash
# Benchmark of the built-in load balancer (no Docker needed): wrk straight
# to one target, then through a listener over three, then a rolling
# replacement of all three targets under load (three new ones registered,
# the old ones deregistered, drained and killed), printing wrk's counts;
# any connection error or non-2xx answer during the replacement fails it.
#   cargo build --release && bash benches/balancer.sh
# BENCH_SECONDS (default 10) sets each measured run.
source "$(dirname "$0")/../tests/e2e/lib.sh"

ensure_packages busybox:busybox-static curl:curl jq:jq haproxy:haproxy wrk:wrk
ensure_aws_cli
seconds="${BENCH_SECONDS:-10}"
bin="${WHARF_BIN:-target/release/wharf}"
[ -x "$bin" ] || { log "no $bin; run cargo build --release first"; exit 1; }
root="$E2E_TMP/bench-balancer"
rm -rf "$root" && mkdir -p "$root"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    stop_wharf
}
trap cleanup EXIT
fail() { log "FAIL: $*"; tail -20 "$root/wharf.log" >&2 || true; exit 1; }

conf="$root/wharf.toml"
cat >"$conf" <<'TOML'
[[auth.rules]]
who = ["alice"]
repositories = ["*"]
actions = ["*"]

[runner]
embedded_instance = false
docker_host = "unix:///nonexistent/docker.sock"

[balancer]
address = "127.0.0.1"
TOML
data="$root/data"
echo "alice-password" | "$bin" user add alice --config "$conf" --data-dir "$data" >/dev/null
keys=$("$bin" user keys create alice --config "$conf" --data-dir "$data")
key_of() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k { print $3 }'; }
export AWS_DEFAULT_REGION=us-east-1 AWS_PAGER="" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_ACCESS_KEY_ID="$(key_of "$keys" aws_access_key_id)" AWS_SECRET_ACCESS_KEY="$(key_of "$keys" aws_secret_access_key)"
WHARF_PORT="$(free_port)"
"$bin" serve --listen "127.0.0.1:$WHARF_PORT" --data-dir "$data" --config "$conf" >"$root/wharf.log" 2>&1 &
WHARF_PID=$!
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$WHARF_PORT/v2/" && break; sleep 0.1; done
elbv2() { "${AWS_CLI[@]}" elbv2 --endpoint-url "http://127.0.0.1:$WHARF_PORT" --output json "$@"; }

declare -A port_of pid_of
serve() { # NAME: a busybox httpd answering NAME
    mkdir -p "$root/www-$1"
    echo "$1" >"$root/www-$1/index.html"
    port_of[$1]=$(free_port)
    busybox httpd -f -p "127.0.0.1:${port_of[$1]}" -h "$root/www-$1" &
    pid_of[$1]=$!
    pids+=("$!")
}
targets() { for n in "$@"; do printf 'Id=127.0.0.1,Port=%s ' "${port_of[$n]}"; done; }
healthy() { elbv2 describe-target-health --target-group-arn "$tg" | jq '[.TargetHealthDescriptions[] | select(.TargetHealth.State == "healthy")] | length'; }
registered() { elbv2 describe-target-health --target-group-arn "$tg" | jq '.TargetHealthDescriptions | length'; }
summary() { # WRK_OUTPUT: requests/s, average latency, errors
    local rps lat errors
    rps=$(awk '/Requests\/sec/ { print $2 }' "$1")
    lat=$(awk '$1 == "Latency" { print $2 }' "$1")
    errors=$(grep -E "Socket errors|Non-2xx" "$1" | tr '\n' ' ' || true)
    printf '%10s req/s  avg latency %8s  %s\n' "$rps" "$lat" "${errors:-no errors}"
}

for n in a1 a2 a3 b1 b2 b3; do serve "$n"; done
tg=$(elbv2 create-target-group --name bench --protocol HTTP --port 80 --target-type ip \
    --health-check-interval-seconds 5 --health-check-timeout-seconds 2 --healthy-threshold-count 2 |
    jq -r '.TargetGroups[0].TargetGroupArn')
elbv2 modify-target-group-attributes --target-group-arn "$tg" \
    --attributes Key=deregistration_delay.timeout_seconds,Value=3 >/dev/null
# shellcheck disable=SC2046
elbv2 register-targets --target-group-arn "$tg" --targets $(targets a1 a2 a3) >/dev/null
lb=$(elbv2 create-load-balancer --name bench --type application --subnets subnet-a | jq -r '.LoadBalancers[0].LoadBalancerArn')
lb_port=$(free_port)
elbv2 create-listener --load-balancer-arn "$lb" --protocol HTTP --port "$lb_port" \
    --default-actions "Type=forward,TargetGroupArn=$tg" >/dev/null
for _ in $(seq 1 60); do [ "$(healthy)" = 3 ] && break; sleep 0.5; done
[ "$(healthy)" = 3 ] || fail "three healthy targets"

log "wrk -t2 -c16 -d${seconds}s straight to one target"
wrk -t2 -c16 -d"${seconds}s" "http://127.0.0.1:${port_of[a1]}/" >"$root/direct.txt"
log "wrk -t2 -c16 -d${seconds}s through the listener (three targets)"
wrk -t2 -c16 -d"${seconds}s" "http://127.0.0.1:$lb_port/" >"$root/through.txt"

log "rolling replacement of all three targets under load"
wrk -t2 -c16 -d"$((seconds * 3))s" "http://127.0.0.1:$lb_port/" >"$root/rolling.txt" &
wrk_pid=$!
sleep 1
# shellcheck disable=SC2046
elbv2 register-targets --target-group-arn "$tg" --targets $(targets b1 b2 b3) >/dev/null
for _ in $(seq 1 60); do [ "$(healthy)" = 6 ] && break; sleep 0.5; done
# shellcheck disable=SC2046
elbv2 deregister-targets --target-group-arn "$tg" --targets $(targets a1 a2 a3) >/dev/null
for _ in $(seq 1 60); do [ "$(registered)" = 3 ] && break; sleep 0.5; done
[ "$(registered)" = 3 ] || fail "the old targets drained away"
for n in a1 a2 a3; do kill "${pid_of[$n]}"; done
wait "$wrk_pid"
answers=$(for _ in $(seq 1 12); do curl -s "http://127.0.0.1:$lb_port/"; done | sort -u | tr '\n' ' ')

echo
echo "load balancer benchmark ($(nproc) cores, HAProxy $(haproxy -v | awk 'NR == 1 { print $3 }'), busybox httpd targets)"
printf '  %-34s' "one target, straight:"; summary "$root/direct.txt"
printf '  %-34s' "three targets, through listener:"; summary "$root/through.txt"
printf '  %-34s' "rolling replacement under load:"; summary "$root/rolling.txt"
echo "  $(awk '/requests in/ { print $1 }' "$root/rolling.txt") requests during the replacement; answering after it: $answers"
! grep -qE "Socket errors|Non-2xx" "$root/rolling.txt" || fail "requests failed during the replacement"
[ "$answers" = "b1 b2 b3 " ] || fail "the new targets answer: $answers"
