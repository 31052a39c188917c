#!/usr/bin/env bash
# A cluster of three container instances on this machine, driven with the
# real AWS CLI: three Docker daemons, each in its own network namespace
# (reached over a veth pair, addresses from 192.0.2.0/24) so that tasks on
# different instances can bind the same port, each with a `wharf agent`
# (different availability zones and memory sizes). Checks placement
# (binpack, spread, distinctInstance, memberOf, failures), StartTask, a
# service spread over the instances, draining, and an agent killed and
# restarted (its service tasks replaced elsewhere, none left running twice);
# then a service behind the built-in load balancer (cluster_lb.sh).
source "$(dirname "$0")/lib.sh"

ensure_packages busybox:busybox-static curl:curl jq:jq ip:iproute2 nsenter:util-linux haproxy:haproxy wrk:wrk
ensure_aws_cli
start_dockerd
[ "$(id -u)" = 0 ] || skip_or_fail "network namespaces need root"
bin="${WHARF_BIN:-target/release/wharf}"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
root="$E2E_TMP/cluster"
fail() {
    log "FAIL: $*"
    tail -30 "$E2E_TMP/cluster.log" >&2 || true
    for i in 1 2 3; do tail -5 "$root/agent$i.log" >&2 || true; done
    exit 1
}

# Instance i: namespace wharf-ci-i, host side 192.0.2.(4i+1), namespace side 192.0.2.(4i+2).
host_ip() { echo "192.0.2.$((4 * $1 + 1))"; }
ns_ip() { echo "192.0.2.$((4 * $1 + 2))"; }
agent_pids=()
cleanup() {
    for pid in "${agent_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    stop_wharf
    for i in 1 2 3; do
        if [ -f "$root/d$i/docker.pid" ]; then
            kill "$(cat "$root/d$i/docker.pid")" 2>/dev/null || true
        fi
    done
    # dockerd takes a while to stop; its netns bind mounts must go before the folder.
    for _ in $(seq 1 20); do
        pgrep -f "dockerd.*$root" >/dev/null || break
        sleep 1
    done
    grep -o "$root/[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    for i in 1 2 3; do
        ip netns del "wharf-ci-$i" 2>/dev/null || true
        ip link del "wharf-h$i" 2>/dev/null || true
    done
}
trap cleanup EXIT

log "three network namespaces, each with a Docker daemon"
grep -o "$root/[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
rm -rf "$root" && mkdir -p "$root"
for i in 1 2 3; do
    ns="wharf-ci-$i"
    ip netns del "$ns" 2>/dev/null || true
    ip link del "wharf-h$i" 2>/dev/null || true
    ip netns add "$ns"
    ip link add "wharf-h$i" type veth peer name "wharf-n$i"
    ip link set "wharf-n$i" netns "$ns"
    ip addr add "$(host_ip "$i")/30" dev "wharf-h$i"
    ip link set "wharf-h$i" up
    ip netns exec "$ns" ip addr add "$(ns_ip "$i")/30" dev "wharf-n$i"
    ip netns exec "$ns" ip link set "wharf-n$i" up
    ip netns exec "$ns" ip link set lo up
    dir="$root/d$i"
    rm -rf "$dir" && mkdir -p "$dir"
    # The registry is reached over plain HTTP on the host side of the veth.
    # nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroup mounts.
    nsenter --net="/run/netns/$ns" dockerd --storage-driver vfs --iptables=false --ip6tables=false --bridge=none \
        --host "unix://$dir/docker.sock" --data-root "$dir/root" --exec-root "$dir/exec" \
        --pidfile "$dir/docker.pid" --insecure-registry 192.0.2.0/24 >"$dir/dockerd.log" 2>&1 &
done
for i in 1 2 3; do
    for _ in $(seq 1 60); do
        DOCKER_HOST="unix://$root/d$i/docker.sock" docker info >/dev/null 2>&1 && break
        sleep 1
    done
    DOCKER_HOST="unix://$root/d$i/docker.sock" docker info >/dev/null 2>&1 ||
        { tail -20 "$root/d$i/dockerd.log" >&2; skip_or_fail "dockerd $i did not start"; }
done

conf="$E2E_TMP/cluster.toml"
cat >"$conf" <<'TOML'
[[auth.rules]]
who = ["alice"]
repositories = ["*"]
actions = ["*"]

[runner]
# Every task runs on an agent's host, none on this server's own engine.
embedded_instance = false
docker_host = "unix:///nonexistent/docker.sock"
allow_host_network = true
poll_interval_ms = 500
agent_lost_seconds = 15

[balancer]
address = "127.0.0.1"
TOML
prepare_data cluster
data="$WHARF_DATA"
echo "alice-password" | "$bin" user add alice --config "$conf" --data-dir "$data" >/dev/null
keys=$("$bin" user keys create alice --config "$conf" --data-dir "$data")
key_of() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k { print $3 }'; }
export AWS_DEFAULT_REGION=us-east-1 AWS_PAGER="" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_ACCESS_KEY_ID="$(key_of "$keys" aws_access_key_id)" AWS_SECRET_ACCESS_KEY="$(key_of "$keys" aws_secret_access_key)"

# Listening on every address: the CLI and docker push use loopback, the agents' daemons the veths.
WHARF_PORT="$(free_port)"
"$bin" serve --listen "0.0.0.0:$WHARF_PORT" --data-dir "$data" --config "$conf" >"$E2E_TMP/cluster.log" 2>&1 &
WHARF_PID=$!
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$WHARF_PORT/v2/" && break; sleep 0.1; done
ecs() { "${AWS_CLI[@]}" ecs --endpoint-url "http://127.0.0.1:$WHARF_PORT" --output json "$@"; }

start_agent() {
    local i="$1" zone="$2" memory="$3" advertise=()
    # In the instance's namespace, as an agent runs on its host: the server
    # reaches the host's published ports at the address the agent connects
    # from, or the one it advertises (the third host, for the flag's sake).
    [ "$i" = 3 ] && advertise=(--advertise-address "$(ns_ip "$i")")
    nsenter --net="/run/netns/wharf-ci-$i" "$bin" agent --server "http://$(host_ip "$i"):$WHARF_PORT" --cluster default \
        --docker-host "unix://$root/d$i/docker.sock" --attribute "ecs.availability-zone=$zone" \
        --attribute "rack=r$i" --memory "$memory" --state-dir "$root/agent$i" --allow-host-network \
        "${advertise[@]}" >>"$root/agent$i.log" 2>&1 &
    agent_pids[$i]=$!
}
log "three agents join the default cluster"
start_agent 1 zone-a 512
start_agent 2 zone-b 1024
start_agent 3 zone-c 2048
connected() { ecs list-container-instances --filter "agentConnected == true" | jq '.containerInstanceArns | length'; }
for _ in $(seq 1 60); do [ "$(connected)" = 3 ] && break; sleep 1; done
[ "$(connected)" = 3 ] || fail "three connected instances, got $(connected)"
arn_of() { ecs list-container-instances --filter "attribute:ecs.availability-zone == $1" | jq -r '.containerInstanceArns[0]'; }
A=$(arn_of zone-a); B=$(arn_of zone-b); C=$(arn_of zone-c)
out=$(ecs describe-container-instances --container-instances "$A")
[ "$(jq -r '.containerInstances[0].registeredResources[] | select(.name=="MEMORY") | .integerValue' <<<"$out")" = 512 ] ||
    fail "registered memory: $out"
[ "$(jq -r '.containerInstances[0].agentConnected' <<<"$out")" = true ] || fail "agentConnected: $out"
[ "$(jq -r '.containerInstances[0].attributes[] | select(.name=="rack") | .value' <<<"$out")" = r1 ] || fail "custom attribute: $out"

log "docker build and push"
export DOCKER_CONFIG="$E2E_TMP/cluster-docker-config"
rm -rf "$DOCKER_CONFIG"
ctx="$E2E_TMP/cluster-image"
rm -rf "$ctx" && mkdir -p "$ctx"
cp "$(command -v busybox)" "$ctx/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT ["/bin/busybox"]\n' >"$ctx/Dockerfile"
image="localhost:$WHARF_PORT/apps/cluster:1"
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null
echo "alice-password" | docker login -u alice --password-stdin "localhost:$WHARF_PORT" >/dev/null
docker push -q "$image" >/dev/null

define() { # FAMILY MEMORY [extra container JSON]
    ecs register-task-definition --family "$1" --network-mode host \
        --container-definitions "[{\"name\":\"main\",\"image\":\"$image\",\"memory\":$2,\"stopTimeout\":2,\"command\":[\"sleep\",\"600\"]${3:-}}]" >/dev/null
}
define small 256
define huge 4096
define web 64 ',"portMappings":[{"containerPort":8080}],"command":["httpd","-f","-p","8080","-h","/"]'
instance_of() { ecs describe-tasks --tasks "$1" | jq -r '.tasks[0].containerInstanceArn'; }
# Stopped tasks hold their reservations until STOPPED, so each check starts from an empty cluster.
stop_all() {
    for t in "$@"; do ecs stop-task --task "$t" >/dev/null; done
    ecs wait tasks-stopped --tasks "$@" || fail "tasks stopped"
}

log "binpack on memory fills the fullest instance that fits"
t1=$(ecs run-task --task-definition small --placement-strategy type=binpack,field=memory | jq -r '.tasks[0].taskArn')
t2=$(ecs run-task --task-definition small --placement-strategy type=binpack,field=memory | jq -r '.tasks[0].taskArn')
t3=$(ecs run-task --task-definition small --placement-strategy type=binpack,field=memory | jq -r '.tasks[0].taskArn')
[ "$(instance_of "$t1")" = "$A" ] && [ "$(instance_of "$t2")" = "$A" ] || fail "binpack: the 512 MiB instance first"
[ "$(instance_of "$t3")" = "$B" ] || fail "binpack: then the 1024 MiB one, got $(instance_of "$t3")"
ecs wait tasks-running --tasks "$t1" "$t2" "$t3" || fail "binpacked tasks running"
[ "$(DOCKER_HOST="unix://$root/d1/docker.sock" docker ps -q --filter label=wharf.task="${t1##*/}" | wc -l)" = 1 ] ||
    fail "the task's container runs on instance 1's daemon"
stop_all "$t1" "$t2" "$t3"

log "spread over the zone attribute balances; distinctInstance never co-locates"
out=$(ecs run-task --task-definition small --count 3 --placement-strategy type=spread,field=attribute:ecs.availability-zone)
[ "$(jq '[.tasks[].containerInstanceArn] | unique | length' <<<"$out")" = 3 ] || fail "spread: $out"
stop_all $(jq -r '.tasks[].taskArn' <<<"$out")
out=$(ecs run-task --task-definition small --count 4 --placement-constraints type=distinctInstance)
[ "$(jq '[.tasks[].containerInstanceArn] | unique | length' <<<"$out")" = 3 ] || fail "distinctInstance: $out"
[ "$(jq -r '.failures[0].reason' <<<"$out")" = "DistinctInstance placement constraint unsatisfied" ] ||
    fail "distinctInstance failure: $out"
stop_all $(jq -r '.tasks[].taskArn' <<<"$out")

log "memberOf places only where the expression holds; what fits nowhere is a failure"
out=$(ecs run-task --task-definition small --count 2 \
    --placement-constraints 'type=memberOf,expression=attribute:ecs.availability-zone == zone-b')
[ "$(jq -r '[.tasks[].containerInstanceArn] | unique | .[]' <<<"$out")" = "$B" ] || fail "memberOf: $out"
stop_all $(jq -r '.tasks[].taskArn' <<<"$out")
out=$(ecs run-task --task-definition huge)
[ "$(jq -r '.failures[0].reason' <<<"$out")" = "RESOURCE:MEMORY" ] || fail "too big: $out"
out=$(ecs run-task --task-definition small --placement-constraints 'type=memberOf,expression=attribute:rack == r9')
[ "$(jq -r '.failures[0].reason' <<<"$out")" = "MemberOf placement constraint unsatisfied" ] || fail "no rack r9: $out"

log "the same port on two hosts, a conflict on one; StartTask"
w1=$(ecs start-task --task-definition web --container-instances "$A" | jq -r '.tasks[0].taskArn')
w2=$(ecs start-task --task-definition web --container-instances "$C" | jq -r '.tasks[0].taskArn')
ecs wait tasks-running --tasks "$w1" "$w2" || fail "web tasks running"
for i in 1 3; do
    ok=""
    # Any HTTP answer (busybox httpd has no index page: 404) shows the task listens there.
    for _ in $(seq 1 20); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$(ns_ip "$i"):8080/")" != 000 ] && ok=1 && break
        sleep 0.5
    done
    [ -n "$ok" ] || fail "port 8080 on instance $i"
done
out=$(ecs run-task --task-definition web --placement-constraints 'type=memberOf,expression=attribute:ecs.availability-zone == zone-a')
[ "$(jq -r '.failures[0].reason' <<<"$out")" = "RESOURCE:PORTS" ] || fail "port conflict: $out"
out=$(ecs start-task --task-definition web --container-instances "$A" "${A%/*}/0000")
[ "$(jq -r '[.failures[].reason] | sort | join(",")' <<<"$out")" = "MISSING,RESOURCE:PORTS" ] || fail "start-task failures: $out"
stop_all "$w1" "$w2"

running_on() { # INSTANCE_ARN: the service's tasks meant to run there
    ecs list-tasks --service-name spread --desired-status RUNNING | jq -r '.taskArns[]' |
        while read -r t; do instance_of "$t"; done | grep -c "^$1\$" || true
}
containers() { # I: the service's running containers on daemon I
    DOCKER_HOST="unix://$root/d$1/docker.sock" docker ps -q --filter label=wharf.cluster=default | wc -l
}

log "a service of 4 spreads over the three instances"
ecs create-service --service-name spread --task-definition small --desired-count 4 \
    --deployment-configuration minimumHealthyPercent=50,maximumPercent=200 >/dev/null
ecs wait services-stable --services spread || fail "services-stable"
counts="$(running_on "$A") $(running_on "$B") $(running_on "$C")"
[ "$(tr ' ' '\n' <<<"$counts" | sort | tr '\n' ' ')" = "1 1 2 " ] || fail "spread 4 over 3: $counts"
log "scale-in reads the strategy backwards: the instance with two gives one up"
ecs update-service --service spread --desired-count 3 >/dev/null
ecs wait services-stable --services spread || fail "stable at 3"
counts="$(running_on "$A") $(running_on "$B") $(running_on "$C")"
[ "$counts" = "1 1 1" ] || fail "scale-in from 4 to 3: $counts"
ecs update-service --service spread --desired-count 4 >/dev/null
ecs wait services-stable --services spread || fail "stable at 4 again"

log "draining an instance moves its tasks, never below minimumHealthyPercent"
busiest=$A; for x in "$B" "$C"; do [ "$(running_on "$x")" -gt "$(running_on "$busiest")" ] && busiest=$x; done
ecs update-container-instances-state --container-instances "$busiest" --status DRAINING >/dev/null
low=4
for _ in $(seq 1 60); do
    running=$(ecs describe-services --services spread | jq '.services[0].runningCount')
    [ "$running" -lt "$low" ] && low=$running
    [ "$(running_on "$busiest")" = 0 ] && [ "$running" = 4 ] && break
    sleep 1
done
[ "$(running_on "$busiest")" = 0 ] || fail "tasks still on the draining instance"
[ "$low" -ge 2 ] || fail "running count fell to $low during the drain (minimum 2)"
out=$(ecs describe-container-instances --container-instances "$busiest")
[ "$(jq -r '.containerInstances[0].status' <<<"$out")" = DRAINING ] || fail "status: $out"
ecs update-container-instances-state --container-instances "$busiest" --status ACTIVE >/dev/null

log "an agent killed: disconnected, its service tasks replaced elsewhere, none twice after it returns"
victim=""
for i in 1 2 3; do
    arn=$(arn_of "zone-$(printf '%s' abc | cut -c"$i")")
    if [ "$(running_on "$arn")" -gt 0 ]; then victim=$i; victim_arn=$arn; break; fi
done
[ -n "$victim" ] || fail "no instance runs a service task"
kill -9 "${agent_pids[$victim]}"
for _ in $(seq 1 40); do
    [ "$(ecs describe-container-instances --container-instances "$victim_arn" | jq -r '.containerInstances[0].agentConnected')" = false ] && break
    sleep 1
done
[ "$(ecs describe-container-instances --container-instances "$victim_arn" | jq -r '.containerInstances[0].agentConnected')" = false ] ||
    fail "the killed agent is still connected"
before=$(containers "$victim")
[ "$before" -gt 0 ] || fail "the victim's containers keep running while its agent is away"
# After agent_lost_seconds (15 s) the scheduler starts replacements on the others.
for _ in $(seq 1 90); do [ "$(running_on "$victim_arn")" = 0 ] && break; sleep 1; done
[ "$(running_on "$victim_arn")" = 0 ] || fail "the lost agent's tasks were not replaced"
ecs wait services-stable --services spread || fail "stable after replacement"
start_agent "$victim" "zone-$(printf '%s' abc | cut -c"$victim")" $((256 << victim))
for _ in $(seq 1 60); do [ "$(containers "$victim")" = 0 ] && break; sleep 1; done
[ "$(containers "$victim")" = 0 ] || fail "the returned agent's unwanted tasks still run"
total=$(( $(containers 1) + $(containers 2) + $(containers 3) ))
[ "$total" = 4 ] || fail "$total containers run for a service of 4"
[ "$(connected)" = 3 ] || fail "the agent reconnected as the same instance"
[ "$(ecs list-container-instances | jq '.containerInstanceArns | length')" = 3 ] ||
    fail "a restarted agent registers no new instance"

ecs update-service --service spread --desired-count 0 >/dev/null
ecs delete-service --service spread >/dev/null
source "$(dirname "$0")/cluster_lb.sh"
log "cluster: all checks passed"
