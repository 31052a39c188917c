#!/usr/bin/env bash
# The whole test suite: unit and integration tests, the conformance runner and
# the end-to-end tests with docker and skopeo. One release build serves all.
# Installs what it needs (Debian packages) and starts a Docker daemon itself.
set -euo pipefail
cd "$(dirname "$0")/.."

source tests/e2e/lib.sh
ensure_packages curl:curl skopeo:skopeo busybox:busybox-static dockerd:docker.io

cargo build --release --locked
cargo test --release --locked

failed=()
for t in conformance skopeo docker; do
    echo "== e2e: $t"
    if ! bash "tests/e2e/$t.sh"; then failed+=("$t"); fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "e2e: ${#failed[@]} failed: ${failed[*]}"
    exit 1
fi
echo "e2e: all passed"
