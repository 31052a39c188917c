#!/usr/bin/env bash
# The ECR-compatible API driven by the real AWS CLI (--endpoint-url), SigV4
# with keys from `wharf user keys create`, and docker login with the password
# from get-authorization-token.
source "$(dirname "$0")/lib.sh"

ensure_packages busybox:busybox-static curl:curl jq:jq
ensure_aws_cli
start_dockerd
bin="${WHARF_BIN:-target/release/wharf}"
conf="$E2E_TMP/ecr.toml"
cat >"$conf" <<'TOML'
[ecr]
create_on_push = false

[[auth.rules]]
who = ["alice"]
repositories = ["*"]
actions = ["*"]

[[auth.rules]]
who = ["bob"]
repositories = ["*"]
actions = ["pull"]
TOML
prepare_data ecr
data="$WHARF_DATA"
echo "alice-password" | "$bin" user add alice --config "$conf" --data-dir "$data" >/dev/null
echo "bob-password-1" | "$bin" user add bob --config "$conf" --data-dir "$data" >/dev/null
keys=$("$bin" user keys create alice --config "$conf" --data-dir "$data")
bob_keys=$("$bin" user keys create bob --config "$conf" --data-dir "$data")
key_of() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k { print $3 }'; }

start_wharf ecr --config "$conf"
registry="127.0.0.1:$WHARF_PORT"
export AWS_DEFAULT_REGION=us-east-1 AWS_PAGER="" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_ACCESS_KEY_ID="$(key_of "$keys" aws_access_key_id)" AWS_SECRET_ACCESS_KEY="$(key_of "$keys" aws_secret_access_key)"
ecr() { "${AWS_CLI[@]}" ecr --endpoint-url "http://$registry" --output json "$@"; }
fail() { log "FAIL: $*"; tail -20 "$E2E_TMP/ecr.log" >&2; exit 1; }
# expect_error EXCEPTION COMMAND...: the command fails with that exception name.
expect_error() {
    local want="$1"; shift
    local out
    if out=$("$@" 2>&1); then fail "$* succeeded, expected $want"; fi
    grep -q "($want)" <<<"$out" || fail "$*: expected $want, got: $out"
}

log "create-repository, with tags and tag immutability settings"
out=$(ecr create-repository --repository-name team/app --tags Key=owner,Value=alice)
[ "$(jq -r .repository.repositoryUri <<<"$out")" = "$registry/team/app" ] || fail "repositoryUri: $out"
[ "$(jq -r .repository.repositoryArn <<<"$out")" = "arn:aws:ecr:us-east-1:000000000000:repository/team/app" ] || fail "ARN: $out"
ecr create-repository --repository-name team/locked --image-tag-mutability IMMUTABLE_WITH_EXCLUSION \
    --image-tag-mutability-exclusion-filters filterType=WILDCARD,filter='latest*' >/dev/null || fail "create with exclusion filters"
expect_error RepositoryAlreadyExistsException ecr create-repository --repository-name team/app
expect_error InvalidParameterException ecr create-repository --repository-name 'Bad_Name'
expect_error InvalidParameterException ecr create-repository --repository-name team/x --image-tag-mutability IMMUTABLE_WITH_EXCLUSION

log "describe-repositories by name and paginated"
for i in 1 2 3 4 5; do ecr create-repository --repository-name "page/r$i" >/dev/null; done
names=$(ecr describe-repositories --query 'repositories[].repositoryName' --output text)
for want in team/app team/locked page/r1 page/r5; do grep -qw "$want" <<<"$names" || fail "describe lacks $want: $names"; done
first=$(ecr describe-repositories --max-items 2 --page-size 2)
[ "$(jq '.repositories | length' <<<"$first")" = 2 ] || fail "page size: $first"
token=$(jq -r .NextToken <<<"$first")
[ -n "$token" ] && [ "$token" != null ] || fail "no NextToken: $first"
second=$(ecr describe-repositories --max-items 2 --page-size 2 --starting-token "$token" --query 'repositories[].repositoryName' --output text)
grep -q "$(jq -r '.repositories[1].repositoryName' <<<"$first")" <<<"$second" && fail "pages overlap"
[ "$(ecr describe-repositories --repository-names team/locked --query 'repositories[0].imageTagMutabilityExclusionFilters[0].filter' --output text)" = "latest*" ] ||
    fail "exclusion filter not kept"
expect_error RepositoryNotFoundException ecr describe-repositories --repository-names team/none

log "signatures: unknown key, wrong secret, pull-only user"
AWS_ACCESS_KEY_ID=AKIAUNKNOWNKEY000000 expect_error UnrecognizedClientException ecr describe-repositories
AWS_SECRET_ACCESS_KEY=wrong expect_error InvalidSignatureException ecr describe-repositories
AWS_DEFAULT_REGION=eu-west-1 expect_error InvalidSignatureException ecr describe-repositories
AWS_ACCESS_KEY_ID="$(key_of "$bob_keys" aws_access_key_id)" AWS_SECRET_ACCESS_KEY="$(key_of "$bob_keys" aws_secret_access_key)" \
    expect_error AccessDeniedException ecr create-repository --repository-name bob/app

log "docker login with get-authorization-token, push, delete-repository"
password=$(ecr get-authorization-token --query 'authorizationData[0].authorizationToken' --output text | base64 -d | cut -d: -f2-)
export DOCKER_CONFIG="$E2E_TMP/ecr-docker-config"
rm -rf "$DOCKER_CONFIG" && mkdir -p "$DOCKER_CONFIG"
echo "$password" | docker login "$registry" -u AWS --password-stdin >/dev/null || fail "docker login -u AWS"
ctx="$E2E_TMP/ecr-ctx"
rm -rf "$ctx" && mkdir -p "$ctx"
cp "$(command -v busybox)" "$ctx/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\n' >"$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$registry/team/app:v1" "$ctx" >/dev/null
docker push "$registry/team/app:v1" >/dev/null || fail "push after ECR login"
echo "not-a-token" | docker login "$registry" -u AWS --password-stdin >/dev/null 2>&1 && fail "login with a forged AWS password"

log "list-images, describe-images, batch-get-image"
digest=$(ecr list-images --repository-name team/app --query 'imageIds[?imageTag==`v1`].imageDigest' --output text)
[[ "$digest" == sha256:* ]] || fail "list-images: $digest"
details=$(ecr describe-images --repository-name team/app --image-ids imageTag=v1)
[ "$(jq -r '.imageDetails[0].imageDigest' <<<"$details")" = "$digest" ] || fail "describe-images digest: $details"
[ "$(jq -r '.imageDetails[0].imageTags[0]' <<<"$details")" = v1 ] || fail "describe-images tags: $details"
[ "$(jq -r '.imageDetails[0].imageSizeInBytes' <<<"$details")" -gt 100000 ] || fail "describe-images size: $details"
expect_error ImageNotFoundException ecr describe-images --repository-name team/app --image-ids imageTag=nope
manifest=$(ecr batch-get-image --repository-name team/app --image-ids imageTag=v1 --query 'images[0].imageManifest' --output text)
[ "sha256:$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)" = "$digest" ] || fail "batch-get-image manifest bytes"
code=$(ecr batch-get-image --repository-name team/app --image-ids imageTag=v1 \
    --accepted-media-types application/vnd.oci.image.index.v1+json --query 'failures[0].failureCode' --output text)
[ "$code" = UnsupportedImageType ] || fail "acceptedMediaTypes: $code"

log "tag immutability is enforced on docker push"
ecr put-image-tag-mutability --repository-name team/app --image-tag-mutability IMMUTABLE >/dev/null || fail "put-image-tag-mutability"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nCOPY Dockerfile /Dockerfile\n' >"$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$registry/team/app:v1" "$ctx" >/dev/null
docker push "$registry/team/app:v1" >/dev/null 2>&1 && fail "an immutable tag was overwritten"
[ "$(ecr describe-images --repository-name team/app --image-ids imageTag=v1 --query 'imageDetails[0].imageDigest' --output text)" = "$digest" ] ||
    fail "the immutable tag moved"
docker tag "$registry/team/app:v1" "$registry/team/app:v2"
docker push "$registry/team/app:v2" >/dev/null || fail "a new tag in an immutable repository"
ecr put-image-tag-mutability --repository-name team/app --image-tag-mutability MUTABLE >/dev/null

log "put-image, batch-check-layer-availability"
config_digest=$(jq -r '.config.digest' <<<"$manifest")
out=$(ecr put-image --repository-name team/app --image-tag copy --image-manifest "$manifest")
[ "$(jq -r .image.imageId.imageDigest <<<"$out")" = "$digest" ] || fail "put-image: $out"
expect_error ImageAlreadyExistsException ecr put-image --repository-name team/app --image-tag copy --image-manifest "$manifest"
expect_error ImageDigestDoesNotMatchException ecr put-image --repository-name team/app --image-tag other \
    --image-digest sha256:0000000000000000000000000000000000000000000000000000000000000000 --image-manifest "$manifest"
broken=$(jq -c '.layers[0].digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"' <<<"$manifest")
expect_error LayersNotFoundException ecr put-image --repository-name team/app --image-tag broken --image-manifest "$broken"
layers=$(ecr batch-check-layer-availability --repository-name team/app \
    --layer-digests "$config_digest" sha256:1111111111111111111111111111111111111111111111111111111111111111)
[ "$(jq -r '.layers[0].layerAvailability' <<<"$layers")" = AVAILABLE ] || fail "layer availability: $layers"
[ "$(jq -r '.layers[1].layerAvailability' <<<"$layers")" = UNAVAILABLE ] || fail "layer availability: $layers"
ecr batch-delete-image --repository-name team/app --image-ids imageTag=copy >/dev/null

log "resource tags"
arn="arn:aws:ecr:us-east-1:000000000000:repository/team/app"
ecr tag-resource --resource-arn "$arn" --tags Key=team,Value=core Key=owner,Value=bob >/dev/null || fail "tag-resource"
ecr untag-resource --resource-arn "$arn" --tag-keys team >/dev/null || fail "untag-resource"
[ "$(ecr list-tags-for-resource --resource-arn "$arn" --query 'tags[].[Key,Value]' --output text)" = "$(printf 'owner\tbob')" ] ||
    fail "list-tags-for-resource: $(ecr list-tags-for-resource --resource-arn "$arn")"
expect_error InvalidParameterException ecr list-tags-for-resource --resource-arn arn:aws:ecr:us-east-1:123456789012:repository/team/app

log "with create_on_push = false, pushes need an existing repository"
status=$(curl -s -o /dev/null -w '%{http_code}' -u alice:alice-password -X POST "http://$registry/v2/team/new/blobs/uploads/")
[ "$status" = 404 ] || fail "upload to a missing repository answered $status"
ecr create-repository --repository-name team/new >/dev/null
status=$(curl -s -o /dev/null -w '%{http_code}' -u alice:alice-password -X POST "http://$registry/v2/team/new/blobs/uploads/")
[ "$status" = 202 ] || fail "upload after create-repository answered $status"

log "lifecycle policies: validation, preview, run"
ecr create-repository --repository-name team/life >/dev/null
for i in 1 2 3 4 5; do
    printf '%s' "$i" >"$ctx/version"
    printf 'FROM scratch\nCOPY version /version\n' >"$ctx/Dockerfile"
    tag="v$i"
    [ "$i" = 5 ] && tag=v4 # pushing over v4 leaves the first v4 untagged
    DOCKER_BUILDKIT=0 docker build -q -t "$registry/team/life:$tag" "$ctx" >/dev/null
    docker push "$registry/team/life:$tag" >/dev/null || fail "push team/life:$tag"
    sleep 1 # distinct push times
done
invalid='{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}}]}'
expect_error InvalidParameterException ecr put-lifecycle-policy --repository-name team/life --lifecycle-policy-text "$invalid"
expect_error LifecyclePolicyNotFoundException ecr get-lifecycle-policy --repository-name team/life
policy='{"rules":[{"rulePriority":1,"description":"keep two v tags","selection":{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}},{"rulePriority":2,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":10},"action":{"type":"expire"}}]}'
ecr put-lifecycle-policy --repository-name team/life --lifecycle-policy-text "$policy" >/dev/null || fail "put-lifecycle-policy"
expect_error LifecyclePolicyPreviewNotFoundException ecr get-lifecycle-policy-preview --repository-name team/life
ecr start-lifecycle-policy-preview --repository-name team/life >/dev/null || fail "start-lifecycle-policy-preview"
preview=$(ecr get-lifecycle-policy-preview --repository-name team/life)
[ "$(jq -r .status <<<"$preview")" = COMPLETE ] || fail "preview status: $preview"
[ "$(jq -r .summary.expiringImageTotalCount <<<"$preview")" = 2 ] || fail "preview count: $preview"
[ "$(jq -r '[.previewResults[].imageTags[0]] | sort | join(",")' <<<"$preview")" = "v1,v2" ] || fail "preview images: $preview"
[ "$(jq -r '[.previewResults[].appliedRulePriority] | unique | join(",")' <<<"$preview")" = 1 ] || fail "preview rules: $preview"
"$bin" lifecycle run --dry-run team/life --config "$conf" --data-dir "$data" | tail -1 | grep -q '^2 image(s) would expire$' || fail "lifecycle dry run"
[ "$(ecr list-images --repository-name team/life --query 'length(imageIds)')" = 5 ] || fail "a dry run changed something"
"$bin" lifecycle run team/life --config "$conf" --data-dir "$data" | tail -1 | grep -q '^2 image(s) expired$' || fail "lifecycle run"
[ "$(ecr list-images --repository-name team/life --filter tagStatus=TAGGED --query 'imageIds[].imageTag' --output text | tr '\t' '\n' | sort | tr '\n' ' ')" = "v3 v4 " ] ||
    fail "after the run: $(ecr list-images --repository-name team/life)"
[ "$(ecr list-images --repository-name team/life --filter tagStatus=UNTAGGED --query 'length(imageIds)')" = 1 ] || fail "the untagged image went"
[ "$(ecr get-lifecycle-policy --repository-name team/life --query 'lastEvaluatedAt != null')" = true ] || fail "lastEvaluatedAt"
sleep 3 # the server caches tag resolutions for 2 s; the run was another process
docker rmi "$registry/team/life:v4" >/dev/null 2>&1 || true
docker pull "$registry/team/life:v1" >/dev/null 2>&1 && fail "an expired image is still pullable"
docker pull "$registry/team/life:v3" >/dev/null || fail "a kept image is not pullable"
ecr delete-lifecycle-policy --repository-name team/life >/dev/null || fail "delete-lifecycle-policy"

log "repository policies: enforced on docker pull and on the ECR API"
bob_env=(env AWS_ACCESS_KEY_ID="$(key_of "$bob_keys" aws_access_key_id)" AWS_SECRET_ACCESS_KEY="$(key_of "$bob_keys" aws_secret_access_key)")
expect_error RepositoryPolicyNotFoundException ecr get-repository-policy --repository-name team/app
deny_bob='{"Version":"2012-10-17","Statement":[{"Sid":"no bob","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::000000000000:user/bob"},"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}'
expect_error InvalidParameterException ecr set-repository-policy --repository-name team/app --policy-text '{"Statement":[]}'
ecr set-repository-policy --repository-name team/app --policy-text "$deny_bob" >/dev/null || fail "set-repository-policy"
[ "$(ecr get-repository-policy --repository-name team/app --query policyText --output text)" = "$deny_bob" ] || fail "get-repository-policy"
bob_docker="$E2E_TMP/ecr-bob-docker"
rm -rf "$bob_docker" && mkdir -p "$bob_docker"
echo "bob-password-1" | DOCKER_CONFIG="$bob_docker" docker login "$registry" -u bob --password-stdin >/dev/null || fail "docker login bob"
docker rmi "$registry/team/app:v1" >/dev/null
DOCKER_CONFIG="$bob_docker" docker pull "$registry/team/app:v1" >/dev/null 2>&1 && fail "a policy Deny did not stop docker pull"
"${bob_env[@]}" "${AWS_CLI[@]}" ecr --endpoint-url "http://$registry" batch-get-image --repository-name team/app --image-ids imageTag=v1 >"$E2E_TMP/ecr-bob.out" 2>&1 &&
    fail "a policy Deny did not stop batch-get-image"
grep -q AccessDeniedException "$E2E_TMP/ecr-bob.out" || fail "batch-get-image under Deny: $(cat "$E2E_TMP/ecr-bob.out")"
ecr delete-repository-policy --repository-name team/app >/dev/null || fail "delete-repository-policy"
DOCKER_CONFIG="$bob_docker" docker pull "$registry/team/app:v1" >/dev/null || fail "docker pull after the policy went"

log "layer uploads in parts, download URLs, referrers, describe-registry"
head -c 6000000 /dev/urandom >"$E2E_TMP/layer.bin"
split -b 5242880 -d "$E2E_TMP/layer.bin" "$E2E_TMP/layer.part."
upload_id=$(ecr initiate-layer-upload --repository-name team/app --query uploadId --output text)
offset=0
for part in "$E2E_TMP"/layer.part.*; do
    size=$(stat -c %s "$part")
    last=$(ecr upload-layer-part --repository-name team/app --upload-id "$upload_id" --part-first-byte "$offset" \
        --part-last-byte $((offset + size - 1)) --layer-part-blob "fileb://$part" --query lastByteReceived --output text)
    offset=$((offset + size))
    [ "$last" = $((offset - 1)) ] || fail "upload-layer-part answered lastByteReceived $last"
done
layer_digest="sha256:$(sha256sum "$E2E_TMP/layer.bin" | cut -d' ' -f1)"
expect_error InvalidLayerException ecr complete-layer-upload --repository-name team/app --upload-id "$upload_id" \
    --layer-digests sha256:2222222222222222222222222222222222222222222222222222222222222222
upload_id=$(ecr initiate-layer-upload --repository-name team/app --query uploadId --output text)
ecr upload-layer-part --repository-name team/app --upload-id "$upload_id" --part-first-byte 0 \
    --part-last-byte $((offset - 1)) --layer-part-blob "fileb://$E2E_TMP/layer.bin" >/dev/null || fail "one-part upload"
[ "$(ecr complete-layer-upload --repository-name team/app --upload-id "$upload_id" --layer-digests "$layer_digest" --query layerDigest --output text)" = "$layer_digest" ] ||
    fail "complete-layer-upload"
url=$(ecr get-download-url-for-layer --repository-name team/app --layer-digest "$layer_digest" --query downloadUrl --output text)
[ "$(curl -sf "$url" | sha256sum | cut -d' ' -f1)" = "${layer_digest#sha256:}" ] || fail "download URL content"
[ "$(curl -s -o /dev/null -w '%{http_code}' "${url%%\?*}")" = 401 ] || fail "the blob URL without its token was served"
expect_error LayersNotFoundException ecr get-download-url-for-layer --repository-name team/app \
    --layer-digest sha256:1111111111111111111111111111111111111111111111111111111111111111
[ "$(ecr list-image-referrers --repository-name team/app --subject-id imageDigest="$digest" --query 'length(referrers)')" = 0 ] ||
    fail "list-image-referrers of an image without referrers"
[ "$(ecr describe-registry --query registryId --output text)" = 000000000000 ] || fail "describe-registry"

log "batch-delete-image by tag and by digest"
out=$(ecr batch-delete-image --repository-name team/app --image-ids imageTag=v2 imageTag=nope)
[ "$(jq -r '.imageIds[0].imageTag' <<<"$out")" = v2 ] || fail "batch-delete by tag: $out"
[ "$(jq -r '.failures[0].failureCode' <<<"$out")" = ImageNotFound ] || fail "batch-delete failure code: $out"
[ "$(ecr list-images --repository-name team/app --query 'length(imageIds)')" = 1 ] || fail "the untagged image should be gone"
expect_error RepositoryNotEmptyException ecr delete-repository --repository-name team/app
ecr delete-repository --repository-name team/app --force >/dev/null || fail "delete --force"
expect_error RepositoryNotFoundException ecr describe-repositories --repository-names team/app
docker rmi "$registry/team/app:v1" >/dev/null
docker pull "$registry/team/app:v1" >/dev/null 2>&1 && fail "image still pullable after its repository was deleted"
log "ecr round trips ok"
