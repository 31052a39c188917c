#!/usr/bin/env bash
# skopeo copy --all of a two-platform OCI index to Wharf and back; digests compared.
source "$(dirname "$0")/lib.sh"

ensure_packages skopeo:skopeo curl:curl
start_wharf skopeo
registry="127.0.0.1:$WHARF_PORT"

layout="$E2E_TMP/oci-src"
back="$E2E_TMP/oci-back"
rm -rf "$layout" "$back"
index_digest=$(python3 "$(dirname "$0")/make_oci_layout.py" "$layout" v1)
log "source index $index_digest"

skopeo copy --all --preserve-digests --dest-tls-verify=false "oci:$layout:v1" "docker://$registry/e2e/multi:v1" >/dev/null
remote=$(skopeo inspect --raw --tls-verify=false "docker://$registry/e2e/multi:v1" | sha256sum | cut -d' ' -f1)
[ "sha256:$remote" = "$index_digest" ] || { log "FAIL: remote index sha256:$remote != $index_digest"; exit 1; }

skopeo copy --all --preserve-digests --src-tls-verify=false "docker://$registry/e2e/multi:v1" "oci:$back:v1" >/dev/null
back_digest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$back/index.json")
[ "$back_digest" = "$index_digest" ] || { log "FAIL: copied back $back_digest != $index_digest"; exit 1; }
# Every platform's manifest and blobs came back byte for byte.
for f in "$layout"/blobs/sha256/*; do
    cmp -s "$f" "$back/blobs/sha256/$(basename "$f")" || { log "FAIL: blob $(basename "$f") differs"; exit 1; }
done
log "skopeo round trip ok ($index_digest)"
