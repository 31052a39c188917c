#!/usr/bin/env bash
# Our conformance runner (conformance/run.py) against a freshly started Wharf.
source "$(dirname "$0")/lib.sh"

ensure_packages curl:curl
start_wharf conformance
OCI_ROOT_URL="http://127.0.0.1:$WHARF_PORT" OCI_NAMESPACE="conformance/main" \
    OCI_CROSSMOUNT_NAMESPACE="conformance/cross" python3 conformance/run.py
