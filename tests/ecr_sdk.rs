//! The ECR API driven by the official AWS SDK for Rust, signed with
//! Wharf-issued access keys: every operation, its error cases and pagination.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers abort the test on failure"
)]

mod common;

use aws_sdk_ecr::Client;
use aws_sdk_ecr::config::retry::RetryConfig;
use aws_sdk_ecr::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ecr::error::ProvideErrorMetadata;
use aws_sdk_ecr::primitives::Blob;
use aws_sdk_ecr::types::{
    ImageIdentifier, ImageTagMutability, ImageTagMutabilityExclusionFilter,
    ImageTagMutabilityExclusionFilterType, ListImageReferrersFilter, ListImagesFilter,
    SubjectIdentifier, Tag, TagStatus,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{OCI_MANIFEST, TestServer, sha256};
use serde_json::json;
use wharf::auth::{ConfigUser, Rule, hash_password};
use wharf::config::Config;
use wharf::storage::SqlMetadata;

const USERS: [&str; 3] = ["alice", "bob", "carol"];

/// alice may do anything, bob may pull, carol has no rule at all.
fn secured(c: &mut Config) {
    c.auth.users = USERS
        .map(|name| ConfigUser {
            name: name.into(),
            password_hash: hash_password(&format!("{name}-password")).unwrap(),
            groups: vec![],
        })
        .to_vec();
    c.auth.rules = vec![
        Rule {
            who: vec!["alice".into()],
            repositories: vec!["*".into()],
            actions: vec!["*".into()],
            catalog: true,
        },
        Rule {
            who: vec!["bob".into()],
            repositories: vec!["*".into()],
            actions: vec!["pull".into()],
            catalog: false,
        },
    ];
}

struct Fixture {
    server: TestServer,
    _dir: tempfile::TempDir,
    alice: Client,
    bob: Client,
    carol: Client,
}

fn client(server: &TestServer, id: &str, secret: &str) -> Client {
    let config = aws_sdk_ecr::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(server.url(""))
        .credentials_provider(Credentials::new(id, secret, None, None, "wharf-test"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), secured).await;
    let store = SqlMetadata::open(&server.database).await.unwrap();
    let names: Vec<String> = USERS.map(String::from).to_vec();
    let mut clients = Vec::new();
    for user in USERS {
        let secrets = server.auth.login.secrets();
        let (id, secret) = wharf::admin::create_access_key(
            &store,
            secrets,
            user,
            &names,
            wharf::admin::By::unrecorded(),
        )
        .await
        .unwrap();
        clients.push(client(&server, &id, &secret));
    }
    let [alice, bob, carol] = clients.try_into().ok().unwrap();
    Fixture {
        server,
        _dir: dir,
        alice,
        bob,
        carol,
    }
}

/// The ECR exception name of a failed call.
fn code<T, E: ProvideErrorMetadata, R>(
    result: Result<T, aws_sdk_ecr::error::SdkError<E, R>>,
) -> String {
    match result {
        Ok(_) => panic!("the call succeeded"),
        Err(e) => e.code().unwrap_or("<none>").to_string(),
    }
}

/// The exception name and message of a failed call, as the AWS CLI prints them.
fn failure<T, E: ProvideErrorMetadata, R>(
    result: Result<T, aws_sdk_ecr::error::SdkError<E, R>>,
) -> (String, String) {
    match result {
        Ok(_) => panic!("the call succeeded"),
        Err(e) => (
            e.code().unwrap_or("<none>").to_string(),
            e.message().unwrap_or("<none>").to_string(),
        ),
    }
}

/// Uploads `data` as one layer through Initiate/UploadLayerPart/Complete.
async fn upload_layer(c: &Client, repo: &str, data: &[u8]) -> String {
    let upload = c
        .initiate_layer_upload()
        .repository_name(repo)
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let part_size = upload.part_size().unwrap() as usize;
    for (i, part) in data.chunks(part_size).enumerate() {
        let first = (i * part_size) as i64;
        let sent = c
            .upload_layer_part()
            .repository_name(repo)
            .upload_id(id)
            .part_first_byte(first)
            .part_last_byte(first + part.len() as i64 - 1)
            .layer_part_blob(Blob::new(part))
            .send()
            .await
            .unwrap();
        assert_eq!(
            sent.last_byte_received(),
            Some(first + part.len() as i64 - 1)
        );
    }
    let digest = sha256(data);
    let done = c
        .complete_layer_upload()
        .repository_name(repo)
        .upload_id(id)
        .layer_digests(&digest)
        .send()
        .await
        .unwrap();
    assert_eq!(done.layer_digest(), Some(digest.as_str()));
    digest
}

/// Uploads a config and a layer through the ECR API; returns an image manifest naming them.
async fn image(c: &Client, repo: &str, seed: &str) -> String {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
    let layer = format!("layer of {seed}");
    let config_digest = upload_layer(c, repo, config.as_bytes()).await;
    let layer_digest = upload_layer(c, repo, layer.as_bytes()).await;
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    })
    .to_string()
}

async fn put_image(c: &Client, repo: &str, manifest: &str, tag: &str) -> String {
    let out = c
        .put_image()
        .repository_name(repo)
        .image_manifest(manifest)
        .image_tag(tag)
        .send()
        .await
        .unwrap();
    out.image()
        .unwrap()
        .image_id()
        .unwrap()
        .image_digest()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn sdk_signs_and_wharf_checks_who_it_is() {
    let f = fixture().await;
    let stranger = client(&f.server, "AKIAUNKNOWN000000000", "secret");
    assert_eq!(
        code(stranger.describe_repositories().send().await),
        "UnrecognizedClientException"
    );
    let store = SqlMetadata::open(&f.server.database).await.unwrap();
    let secrets = f.server.auth.login.secrets();
    let (id, _) = wharf::admin::create_access_key(
        &store,
        secrets,
        "alice",
        &["alice".into()],
        wharf::admin::By::unrecorded(),
    )
    .await
    .unwrap();
    let forger = client(&f.server, &id, "not-the-secret");
    assert_eq!(
        code(forger.describe_repositories().send().await),
        "InvalidSignatureException"
    );
    assert_eq!(
        code(
            f.bob
                .create_repository()
                .repository_name("app")
                .send()
                .await
        ),
        "AccessDeniedException"
    );

    let registry = f.alice.describe_registry().send().await.unwrap();
    assert_eq!(registry.registry_id(), Some("000000000000"));

    // GetAuthorizationToken: base64 "AWS:<password>" that works on /v2/.
    f.alice
        .create_repository()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    let auth = f.bob.get_authorization_token().send().await.unwrap();
    let data = &auth.authorization_data()[0];
    let decoded = STANDARD
        .decode(data.authorization_token().unwrap())
        .unwrap();
    let (user, password) = std::str::from_utf8(&decoded)
        .unwrap()
        .split_once(':')
        .unwrap();
    assert_eq!(user, "AWS");
    assert!(data.expires_at().is_some());
    assert_eq!(data.proxy_endpoint(), Some(f.server.url("").as_str()));
    let r = f
        .server
        .http
        .get(f.server.url("/v2/app/tags/list"))
        .basic_auth("AWS", Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn repositories_settings_and_resource_tags() {
    let f = fixture().await;
    let created = f
        .alice
        .create_repository()
        .repository_name("team/app")
        .tags(Tag::builder().key("team").value("a").build().unwrap())
        .image_tag_mutability(ImageTagMutability::ImmutableWithExclusion)
        .image_tag_mutability_exclusion_filters(
            ImageTagMutabilityExclusionFilter::builder()
                .filter_type(ImageTagMutabilityExclusionFilterType::Wildcard)
                .filter("latest*")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let repo = created.repository().unwrap();
    let arn = repo.repository_arn().unwrap().to_string();
    assert_eq!(
        arn,
        "arn:aws:ecr:us-east-1:000000000000:repository/team/app"
    );
    assert_eq!(
        repo.repository_uri(),
        Some(format!("{}/team/app", f.server.addr).as_str())
    );
    assert_eq!(
        failure(
            f.alice
                .create_repository()
                .repository_name("team/app")
                .send()
                .await
        ),
        (
            "RepositoryAlreadyExistsException".into(),
            "The repository with name 'team/app' already exists in the registry".into()
        )
    );
    assert_eq!(
        code(
            f.alice
                .create_repository()
                .repository_name("Bad_Name")
                .send()
                .await
        ),
        "InvalidParameterException"
    );

    // Paged listing: 5 repositories, 2 per page.
    for name in ["r1", "r2", "r3", "r4"] {
        f.alice
            .create_repository()
            .repository_name(name)
            .send()
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = f
            .alice
            .describe_repositories()
            .max_results(2)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        assert!(page.repositories().len() <= 2);
        seen.extend(
            page.repositories()
                .iter()
                .map(|r| r.repository_name().unwrap().to_string()),
        );
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["r1", "r2", "r3", "r4", "team/app"]);
    assert_eq!(
        code(
            f.alice
                .describe_repositories()
                .repository_names("nope")
                .send()
                .await
        ),
        "RepositoryNotFoundException"
    );
    assert_eq!(
        code(
            f.alice
                .describe_repositories()
                .max_results(1001)
                .send()
                .await
        ),
        "InvalidParameterException"
    );

    // Resource tags.
    f.alice
        .tag_resource()
        .resource_arn(&arn)
        .tags(Tag::builder().key("env").value("prod").build().unwrap())
        .send()
        .await
        .unwrap();
    f.alice
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let tags = f
        .bob
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    let tags: Vec<(&str, &str)> = tags.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(tags, [("env", "prod")]);
    let mut too_many = f.alice.tag_resource().resource_arn(&arn);
    for i in 0..51 {
        too_many = too_many.tags(
            Tag::builder()
                .key(format!("k{i}"))
                .value("v")
                .build()
                .unwrap(),
        );
    }
    assert_eq!(code(too_many.send().await), "TooManyTagsException");

    // Mutability, enforced on PutImage.
    let manifest = image(&f.alice, "team/app", "one").await;
    put_image(&f.alice, "team/app", &manifest, "v1").await;
    let other = image(&f.alice, "team/app", "two").await;
    assert_eq!(
        code(
            f.alice
                .put_image()
                .repository_name("team/app")
                .image_manifest(&other)
                .image_tag("v1")
                .send()
                .await
        ),
        "ImageTagAlreadyExistsException"
    );
    // "latest*" is excluded from immutability.
    put_image(&f.alice, "team/app", &manifest, "latest").await;
    put_image(&f.alice, "team/app", &other, "latest").await;
    f.alice
        .put_image_tag_mutability()
        .repository_name("team/app")
        .image_tag_mutability(ImageTagMutability::Mutable)
        .send()
        .await
        .unwrap();
    put_image(&f.alice, "team/app", &other, "v1").await;

    assert_eq!(
        failure(
            f.alice
                .delete_repository()
                .repository_name("team/app")
                .send()
                .await
        ),
        (
            "RepositoryNotEmptyException".into(),
            "The repository with name 'team/app' cannot be deleted because it still contains images".into()
        )
    );
    f.alice
        .delete_repository()
        .repository_name("team/app")
        .force(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            f.alice
                .describe_repositories()
                .repository_names("team/app")
                .send()
                .await
        ),
        "RepositoryNotFoundException"
    );
}

#[tokio::test]
async fn images_are_listed_fetched_and_deleted() {
    let f = fixture().await;
    f.alice
        .create_repository()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    let mut digests = Vec::new();
    for i in 0..5 {
        let manifest = image(&f.alice, "app", &format!("image {i}")).await;
        digests.push(put_image(&f.alice, "app", &manifest, &format!("v{i}")).await);
    }
    let manifest = image(&f.alice, "app", "untagged").await;
    f.alice
        .put_image()
        .repository_name("app")
        .image_manifest(&manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            f.alice
                .put_image()
                .repository_name("app")
                .image_manifest(&manifest)
                .send()
                .await
        ),
        "ImageAlreadyExistsException"
    );
    assert_eq!(
        code(
            f.alice
                .put_image()
                .repository_name("app")
                .image_manifest(&manifest)
                .image_digest(sha256(b"something else"))
                .send()
                .await
        ),
        "ImageDigestDoesNotMatchException"
    );
    let missing_layer = manifest.replace(&sha256(b"layer of untagged"), &sha256(b"absent"));
    assert_eq!(
        code(
            f.alice
                .put_image()
                .repository_name("app")
                .image_manifest(&missing_layer)
                .send()
                .await
        ),
        "LayersNotFoundException"
    );

    // ListImages pages and filters.
    let mut ids = Vec::new();
    let mut token = None;
    loop {
        let page = f
            .bob
            .list_images()
            .repository_name("app")
            .max_results(4)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        ids.extend(page.image_ids().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(ids.len(), 6);
    let untagged = f
        .bob
        .list_images()
        .repository_name("app")
        .filter(
            ListImagesFilter::builder()
                .tag_status(TagStatus::Untagged)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(untagged.image_ids().len(), 1);

    // DescribeImages: details of one image.
    let described = f
        .bob
        .describe_images()
        .repository_name("app")
        .image_ids(ImageIdentifier::builder().image_tag("v2").build())
        .send()
        .await
        .unwrap();
    let detail = &described.image_details()[0];
    assert_eq!(detail.image_digest(), Some(digests[2].as_str()));
    assert_eq!(detail.image_tags(), ["v2"]);
    assert_eq!(detail.image_manifest_media_type(), Some(OCI_MANIFEST));
    assert!(detail.image_size_in_bytes().unwrap() > 0);
    assert!(detail.image_pushed_at().is_some());
    assert_eq!(
        code(
            f.bob
                .describe_images()
                .repository_name("app")
                .image_ids(ImageIdentifier::builder().image_tag("nope").build())
                .send()
                .await
        ),
        "ImageNotFoundException"
    );

    // BatchGetImage honours acceptedMediaTypes.
    let got = f
        .bob
        .batch_get_image()
        .repository_name("app")
        .image_ids(ImageIdentifier::builder().image_tag("v1").build())
        .image_ids(ImageIdentifier::builder().image_tag("nope").build())
        .send()
        .await
        .unwrap();
    assert_eq!(got.images().len(), 1);
    assert_eq!(
        got.failures()[0].failure_code().unwrap().as_str(),
        "ImageNotFound"
    );
    let refused = f
        .bob
        .batch_get_image()
        .repository_name("app")
        .image_ids(ImageIdentifier::builder().image_tag("v1").build())
        .accepted_media_types("application/vnd.docker.distribution.manifest.v2+json")
        .send()
        .await
        .unwrap();
    assert!(refused.images().is_empty());
    assert_eq!(refused.failures().len(), 1);

    // BatchDeleteImage: a tag, a digest, and failures; bob may not.
    assert_eq!(
        code(
            f.bob
                .batch_delete_image()
                .repository_name("app")
                .image_ids(ImageIdentifier::builder().image_tag("v0").build())
                .send()
                .await
        ),
        "AccessDeniedException"
    );
    let deleted = f
        .alice
        .batch_delete_image()
        .repository_name("app")
        .image_ids(ImageIdentifier::builder().image_tag("v0").build())
        .image_ids(ImageIdentifier::builder().image_digest(&digests[1]).build())
        .image_ids(ImageIdentifier::builder().image_tag("nope").build())
        .image_ids(ImageIdentifier::builder().image_digest("sha256:zz").build())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.image_ids().len(), 2);
    let codes: Vec<&str> = deleted
        .failures()
        .iter()
        .map(|f| f.failure_code().unwrap().as_str())
        .collect();
    assert_eq!(codes, ["ImageNotFound", "InvalidImageDigest"]);
    let left = f
        .bob
        .list_images()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    assert_eq!(left.image_ids().len(), 4);

    // An image an index lists is refused (the index must go first) and stays.
    let child = image(&f.alice, "app", "listed").await;
    let child_digest = put_image(&f.alice, "app", &child, "listed").await;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child_digest, "size": child.len()}],
    })
    .to_string();
    put_image(&f.alice, "app", &index, "multi").await;
    let refused = f
        .alice
        .batch_delete_image()
        .repository_name("app")
        .image_ids(
            ImageIdentifier::builder()
                .image_digest(&child_digest)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(refused.image_ids().is_empty());
    let codes: Vec<&str> = refused
        .failures()
        .iter()
        .map(|f| f.failure_code().unwrap().as_str())
        .collect();
    assert_eq!(codes, ["ImageReferencedByManifestList"]);
}

#[tokio::test]
async fn layers_upload_in_parts_and_download_by_url() {
    let f = fixture().await;
    let c = &f.alice;
    c.create_repository()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    // 12 MiB and a bit: parts of 10 MiB and the rest.
    let data: Vec<u8> = (0..12 * 1024 * 1024 + 333)
        .map(|i| (i % 251) as u8)
        .collect();
    let digest = upload_layer(c, "app", &data).await;
    let check = c
        .batch_check_layer_availability()
        .repository_name("app")
        .layer_digests(&digest)
        .layer_digests(sha256(b"absent"))
        .send()
        .await
        .unwrap();
    let availability: Vec<&str> = check
        .layers()
        .iter()
        .map(|l| l.layer_availability().unwrap().as_str())
        .collect();
    assert_eq!(availability, ["AVAILABLE", "UNAVAILABLE"]);
    assert_eq!(check.layers()[0].layer_size(), Some(data.len() as i64));

    // The download URL needs no other credential, and only reaches that blob.
    let url = f
        .bob
        .get_download_url_for_layer()
        .repository_name("app")
        .layer_digest(&digest)
        .send()
        .await
        .unwrap()
        .download_url()
        .unwrap()
        .to_string();
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    let other = upload_layer(c, "app", b"another layer").await;
    let r = reqwest::get(url.replace(&digest, &other)).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = reqwest::get(url.replace("download_token=", "download_token=x"))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        code(
            f.bob
                .get_download_url_for_layer()
                .repository_name("app")
                .layer_digest(sha256(b"absent"))
                .send()
                .await
        ),
        "LayersNotFoundException"
    );
    assert_eq!(
        code(
            f.bob
                .initiate_layer_upload()
                .repository_name("app")
                .send()
                .await
        ),
        "AccessDeniedException"
    );

    // Errors of the upload trio.
    let id = c
        .initiate_layer_upload()
        .repository_name("app")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    let part = |first: i64, bytes: Vec<u8>| {
        c.upload_layer_part()
            .repository_name("app")
            .upload_id(&id)
            .part_first_byte(first)
            .part_last_byte(first + bytes.len() as i64 - 1)
            .layer_part_blob(Blob::new(bytes))
            .send()
    };
    let complete = |digest: String| {
        c.complete_layer_upload()
            .repository_name("app")
            .upload_id(&id)
            .layer_digests(digest)
            .send()
    };
    assert_eq!(code(complete(sha256(b"")).await), "EmptyUploadException");
    assert_eq!(
        code(part(5, vec![1; 10]).await),
        "InvalidLayerPartException"
    );
    part(0, vec![1; 1024]).await.unwrap();
    // A 1 KiB part was not the last one: too small.
    assert_eq!(
        code(part(1024, vec![2; 10]).await),
        "LayerPartTooSmallException"
    );
    assert_eq!(
        code(complete(sha256(b"wrong")).await),
        "InvalidLayerException"
    );
    // A failed completion ends the upload, as ECR does.
    assert_eq!(
        code(part(1024, vec![2; 10]).await),
        "UploadNotFoundException"
    );
    assert_eq!(
        code(
            c.upload_layer_part()
                .repository_name("app")
                .upload_id("not-an-upload")
                .part_first_byte(0)
                .part_last_byte(0)
                .layer_part_blob(Blob::new(vec![0]))
                .send()
                .await
        ),
        "UploadNotFoundException"
    );
    // Completing a layer the repository has already.
    let again = c
        .initiate_layer_upload()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    let again_id = again.upload_id().unwrap();
    c.upload_layer_part()
        .repository_name("app")
        .upload_id(again_id)
        .part_first_byte(0)
        .part_last_byte(12)
        .layer_part_blob(Blob::new(b"another layer".to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            c.complete_layer_upload()
                .repository_name("app")
                .upload_id(again_id)
                .layer_digests(&other)
                .send()
                .await
        ),
        "LayerAlreadyExistsException"
    );
}

#[tokio::test]
async fn repository_policies_are_enforced_on_both_apis() {
    let f = fixture().await;
    f.alice
        .create_repository()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    let manifest = image(&f.alice, "app", "one").await;
    put_image(&f.alice, "app", &manifest, "v1").await;
    let pull = |user: &str| {
        f.server
            .http
            .get(f.server.url("/v2/app/manifests/v1"))
            .header("Accept", OCI_MANIFEST)
            .basic_auth(user, Some(format!("{user}-password")))
            .send()
    };
    assert_eq!(
        code(
            f.alice
                .get_repository_policy()
                .repository_name("app")
                .send()
                .await
        ),
        "RepositoryPolicyNotFoundException"
    );
    assert_eq!(pull("carol").await.unwrap().status(), 403);
    assert_eq!(
        code(
            f.carol
                .batch_get_image()
                .repository_name("app")
                .image_ids(ImageIdentifier::builder().image_tag("v1").build())
                .send()
                .await
        ),
        "AccessDeniedException"
    );

    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "carol pulls", "Effect": "Allow",
             "Principal": {"AWS": "arn:aws:iam::000000000000:user/carol"},
             "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]},
            {"Sid": "bob may not", "Effect": "Deny", "Principal": {"AWS": "bob"}, "Action": "ecr:*"},
        ]
    })
    .to_string();
    // Bad documents change nothing.
    for bad in [
        "{}".to_string(),
        policy.replace("ecr:*", "s3:GetObject"),
        policy.replace("\"Allow\"", "\"Perhaps\""),
    ] {
        assert_eq!(
            code(
                f.alice
                    .set_repository_policy()
                    .repository_name("app")
                    .policy_text(bad)
                    .send()
                    .await
            ),
            "InvalidParameterException"
        );
    }
    assert_eq!(
        code(
            f.alice
                .set_repository_policy()
                .repository_name("nope")
                .policy_text(&policy)
                .send()
                .await
        ),
        "RepositoryNotFoundException"
    );
    let set = f
        .alice
        .set_repository_policy()
        .repository_name("app")
        .policy_text(&policy)
        .send()
        .await
        .unwrap();
    assert_eq!(set.policy_text(), Some(policy.as_str()));

    // carol now pulls, through both APIs; she still may not push.
    let got = f
        .carol
        .batch_get_image()
        .repository_name("app")
        .image_ids(ImageIdentifier::builder().image_tag("v1").build())
        .send()
        .await
        .unwrap();
    assert_eq!(got.images().len(), 1);
    assert_eq!(pull("carol").await.unwrap().status(), 200);
    assert_eq!(
        code(
            f.carol
                .initiate_layer_upload()
                .repository_name("app")
                .send()
                .await
        ),
        "AccessDeniedException"
    );
    let r = f
        .server
        .http
        .post(f.server.url("/v2/app/blobs/uploads/"))
        .basic_auth("carol", Some("carol-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // bob, whom the rules let pull, is denied everywhere, tokens included.
    assert_eq!(pull("bob").await.unwrap().status(), 403);
    assert_eq!(
        code(f.bob.list_images().repository_name("app").send().await),
        "AccessDeniedException"
    );
    let token: serde_json::Value = f
        .server
        .http
        .get(
            f.server
                .url("/token?service=wharf&scope=repository:app:pull"),
        )
        .basic_auth("bob", Some("bob-password"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = f
        .server
        .http
        .get(f.server.url("/v2/app/manifests/v1"))
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // A policy that would lock its author out needs force.
    let lockout = json!({"Statement": {"Effect": "Deny", "Principal": "*", "Action": "ecr:SetRepositoryPolicy"}})
        .to_string();
    assert_eq!(
        code(
            f.alice
                .set_repository_policy()
                .repository_name("app")
                .policy_text(&lockout)
                .send()
                .await
        ),
        "InvalidParameterException"
    );
    let got = f
        .alice
        .get_repository_policy()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    assert_eq!(got.policy_text(), Some(policy.as_str()));

    let deleted = f
        .alice
        .delete_repository_policy()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.policy_text(), Some(policy.as_str()));
    assert_eq!(pull("bob").await.unwrap().status(), 200);
    assert_eq!(pull("carol").await.unwrap().status(), 403);
    assert_eq!(
        code(
            f.alice
                .delete_repository_policy()
                .repository_name("app")
                .send()
                .await
        ),
        "RepositoryPolicyNotFoundException"
    );
}

#[tokio::test]
async fn referrers_are_listed_by_artifact_type() {
    let f = fixture().await;
    let c = &f.alice;
    c.create_repository()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    let manifest = image(c, "app", "subject").await;
    let subject = put_image(c, "app", &manifest, "v1").await;
    let empty = upload_layer(c, "app", b"{}").await;
    for (i, artifact_type) in [
        "application/vnd.example.sbom",
        "application/vnd.example.sig",
        "application/vnd.example.sig",
    ]
    .iter()
    .enumerate()
    {
        let layer = upload_layer(c, "app", format!("artifact {i}").as_bytes()).await;
        let referrer = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": format!("artifact {i}").len()}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": manifest.len()},
        })
        .to_string();
        c.put_image()
            .repository_name("app")
            .image_manifest(referrer)
            .send()
            .await
            .unwrap();
    }
    let list = |types: &[&str], max: Option<i32>, token: Option<String>| {
        let mut filter = ListImageReferrersFilter::builder();
        for t in types {
            filter = filter.artifact_types(*t);
        }
        f.bob
            .list_image_referrers()
            .repository_name("app")
            .subject_id(
                SubjectIdentifier::builder()
                    .image_digest(&subject)
                    .build()
                    .unwrap(),
            )
            .filter(filter.build())
            .set_max_results(max)
            .set_next_token(token)
            .send()
    };
    let all = list(&[], None, None).await.unwrap();
    assert_eq!(all.referrers().len(), 3);
    let sigs = list(&["application/vnd.example.sig"], None, None)
        .await
        .unwrap();
    assert_eq!(sigs.referrers().len(), 2);
    assert!(
        sigs.referrers()
            .iter()
            .all(|r| r.artifact_type() == Some("application/vnd.example.sig"))
    );
    let first = list(&[], Some(2), None).await.unwrap();
    assert_eq!(first.referrers().len(), 2);
    let rest = list(&[], Some(2), first.next_token().map(str::to_string))
        .await
        .unwrap();
    assert_eq!(rest.referrers().len(), 1);
    assert!(rest.next_token().is_none());
    assert_eq!(
        code(list(&[], Some(51), None).await),
        "InvalidParameterException"
    );
}

#[tokio::test]
async fn lifecycle_policies_validate_preview_and_report() {
    let f = fixture().await;
    let c = &f.alice;
    c.create_repository()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    for i in 0..3 {
        let manifest = image(c, "app", &format!("image {i}")).await;
        put_image(c, "app", &manifest, &format!("build-{i}")).await;
    }
    let invalid = json!({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]}).to_string();
    let (name, message) = failure(
        c.put_lifecycle_policy()
            .repository_name("app")
            .lifecycle_policy_text(invalid)
            .send()
            .await,
    );
    assert_eq!(name, "InvalidParameterException");
    assert!(
        message.starts_with(
            "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: '"
        ),
        "{message}"
    );
    assert_eq!(
        failure(c.get_lifecycle_policy().repository_name("app").send().await),
        (
            "LifecyclePolicyNotFoundException".into(),
            "Lifecycle policy does not exist for the repository with name 'app'".into()
        )
    );
    assert_eq!(
        failure(
            c.get_lifecycle_policy_preview()
                .repository_name("app")
                .send()
                .await
        ),
        (
            "LifecyclePolicyPreviewNotFoundException".into(),
            "There is no lifecycle policy preview for the repository with name 'app'".into()
        )
    );
    let policy = json!({"rules": [{"rulePriority": 1, "description": "keep two builds", "selection": {"tagStatus": "tagged", "tagPrefixList": ["build-"], "countType": "imageCountMoreThan", "countNumber": 2}, "action": {"type": "expire"}}]}).to_string();
    c.put_lifecycle_policy()
        .repository_name("app")
        .lifecycle_policy_text(&policy)
        .send()
        .await
        .unwrap();
    c.start_lifecycle_policy_preview()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    let preview = c
        .get_lifecycle_policy_preview()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    assert_eq!(preview.status().unwrap().as_str(), "COMPLETE");
    let results = preview.preview_results();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].image_tags(), ["build-0"]);
    assert_eq!(results[0].applied_rule_priority(), Some(1));
    assert_eq!(
        preview.summary().unwrap().expiring_image_total_count(),
        Some(1)
    );
    let got = c
        .get_lifecycle_policy()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    assert_eq!(got.lifecycle_policy_text(), Some(policy.as_str()));
    c.delete_lifecycle_policy()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            c.delete_lifecycle_policy()
                .repository_name("app")
                .send()
                .await
        ),
        "LifecyclePolicyNotFoundException"
    );
}

/// Repository creation and deletion and policy changes are in the audit log,
/// with the caller as actor; a refused change is not.
#[tokio::test]
async fn repository_and_policy_changes_are_audited() {
    use wharf::storage::{AuditQuery, AuditStore};
    let f = fixture().await;
    let c = &f.alice;
    c.create_repository()
        .repository_name("audited")
        .send()
        .await
        .unwrap();
    let policy = json!({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5}, "action": {"type": "expire"}}]}).to_string();
    c.put_lifecycle_policy()
        .repository_name("audited")
        .lifecycle_policy_text(policy)
        .send()
        .await
        .unwrap();
    c.put_image_tag_mutability()
        .repository_name("audited")
        .image_tag_mutability(ImageTagMutability::Immutable)
        .send()
        .await
        .unwrap();
    let refused = f
        .carol
        .delete_repository()
        .repository_name("audited")
        .send()
        .await;
    assert!(refused.is_err());
    c.delete_repository()
        .repository_name("audited")
        .send()
        .await
        .unwrap();
    let store = SqlMetadata::open(&f.server.database).await.unwrap();
    let expected = [
        "repository.create",
        "policy.lifecycle",
        "policy.tag_mutability",
        "repository.delete",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut entries = store
            .audit_entries(&AuditQuery {
                repository: Some("audited".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        entries.reverse();
        let seen: Vec<(String, String)> = entries
            .into_iter()
            .map(|r| (r.entry.actor, r.entry.action))
            .collect();
        if seen.len() >= expected.len() {
            let want: Vec<(String, String)> = expected
                .iter()
                .map(|a| ("alice".to_string(), a.to_string()))
                .collect();
            assert_eq!(seen, want);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{seen:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
