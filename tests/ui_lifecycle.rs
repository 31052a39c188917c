//! The console's honest deletes, size sort and lifecycle page over real
//! HTTP: the bytes a delete says it frees are exactly what garbage
//! collection then removes; largest-first pages are stable; the lifecycle
//! preview lists exactly what the ECR API's preview lists and applying it
//! expires those images; a viewer with pull only sees no forms and a forged
//! POST changes nothing; tag immutability set here holds on `/v2/`.

#![allow(clippy::unwrap_used, reason = "test helpers abort the test on failure")]
#![allow(clippy::expect_used, reason = "test helpers abort the test on failure")]
#![allow(clippy::panic, reason = "test helpers abort the test on failure")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::browser::{Browser, Page, capture};
use common::{OCI_INDEX, OCI_MANIFEST, TestServer, image_manifest, sha256};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wharf::auth::{ConfigUser, Rule, hash_password};
use wharf::config::Config;
use wharf::registry::{GcPolicy, Listing, Order};

const ALICE: (&str, &str) = ("alice", "alice-secret");
const BOB: (&str, &str) = ("bob", "bob-secret-1");

/// Alice may do anything; Bob may only pull `team/*`.
fn secured(c: &mut Config) {
    c.auth.users = [ALICE, BOB]
        .map(|(name, pw)| ConfigUser {
            name: name.into(),
            password_hash: hash_password(pw).unwrap(),
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
            repositories: vec!["team/*".into()],
            actions: vec!["pull".into()],
            catalog: false,
        },
    ];
}

/// A pushed image: its manifest's digest and the byte sizes of its parts.
struct Pushed {
    digest: String,
    manifest: u64,
    config: u64,
    layers: Vec<u64>,
}

/// Pushes a config and `layers` as an image under `reference` (a tag or
/// the manifest's own digest, with `None`), with `auth` when given.
async fn push(
    s: &TestServer,
    repo: &str,
    reference: Option<&str>,
    seed: &str,
    layers: &[&[u8]],
    auth: Option<(&str, &str)>,
) -> Pushed {
    let with = |r: reqwest::RequestBuilder| match auth {
        Some((u, p)) => r.basic_auth(u, Some(p)),
        None => r,
    };
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#).into_bytes();
    let mut blobs: Vec<&[u8]> = vec![&config];
    blobs.extend_from_slice(layers);
    for blob in blobs {
        let url = s.url(&format!(
            "/v2/{repo}/blobs/uploads/?digest={}",
            sha256(blob)
        ));
        let r = with(s.http.post(url))
            .body(blob.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let manifest = image_manifest(&config, layers);
    let digest = sha256(&manifest);
    let reference = reference.unwrap_or(&digest);
    let r = with(
        s.http
            .put(s.url(&format!("/v2/{repo}/manifests/{reference}"))),
    )
    .header("content-type", OCI_MANIFEST)
    .body(manifest.clone())
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    Pushed {
        digest,
        manifest: manifest.len() as u64,
        config: config.len() as u64,
        layers: layers.iter().map(|l| l.len() as u64).collect(),
    }
}

async fn collect(s: &TestServer, untagged: bool) -> u64 {
    let policy = GcPolicy {
        grace: Duration::ZERO,
        untagged_after: untagged.then_some(Duration::ZERO),
        orphan_referrers: true,
        upload_idle: Duration::from_secs(3600),
    };
    s.registry
        .collect_garbage(&policy, false, &|_| {})
        .await
        .unwrap();
    s.registry.blob_totals().await.unwrap().1
}

/// The stored size of every repository equals what `wharf du` computes,
/// and the console shows it.
async fn sizes_agree(s: &TestServer) {
    let usage = s.registry.usage().await.unwrap();
    let stored = s
        .registry
        .browse_repositories(Listing {
            contains: None,
            order: Order::Largest,
            after: None,
            limit: 1000,
        })
        .await
        .unwrap();
    let stored: BTreeMap<String, u64> = stored
        .iter()
        .map(|k| (k.name.to_string(), k.logical_bytes))
        .collect();
    let computed: BTreeMap<String, u64> = usage
        .iter()
        .map(|u| (u.repo.to_string(), u.logical_bytes))
        .collect();
    assert_eq!(stored, computed);
    for u in usage {
        let page = Browser::new(s)
            .get(&format!("/ui/?sort=size&q={}", u.repo))
            .await;
        assert_eq!(page.status, 200);
        let shown = capture(
            &page.body,
            &format!(
                r#"href="/ui/r/{}">[^<]*</a></td><td class="num">[0-9]+</td><td class="num">([^<]+)</td>"#,
                u.repo
            ),
        );
        assert_eq!(
            shown,
            vec![wharf::ui::layout::size(u.logical_bytes)],
            "{}",
            u.repo
        );
    }
}

#[tokio::test]
async fn deletes_say_exactly_what_the_next_collection_reclaims() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let shared: &[u8] = b"a layer both repositories use";
    let own: &[u8] = b"a layer only team/app uses, longer than the other";
    let app = push(&s, "team/app", Some("v1"), "app", &[shared, own], None).await;
    let r = s
        .put_manifest(
            "team/app",
            "v2",
            OCI_MANIFEST,
            &image_manifest(
                format!(
                    r#"{{"architecture":"amd64","os":"linux","seed":"{}"}}"#,
                    "app"
                )
                .as_bytes(),
                &[shared, own],
            ),
        )
        .await;
    assert_eq!(r.status(), 201);
    push(&s, "other/lib", Some("latest"), "lib", &[shared], None).await;
    let only_app = app.manifest + app.config + app.layers[1];
    let mut browser = Browser::new(&s);

    // v1 keeps a sibling tag: untagging frees nothing, and the page says so.
    let confirm = browser.get("/ui/r/team/app/-/delete/v1").await;
    assert_eq!(confirm.status, 200);
    let untag = confirm.from("untag-reclaim");
    assert!(untag.contains("Frees nothing"), "{untag}");
    assert!(confirm.from("shared-tags").contains("<code>v2</code>"));
    // Deleting the manifest frees its config, its own layer and itself; the
    // layer other/lib uses stays.
    assert_eq!(
        confirm.bytes("reclaim"),
        Some(0),
        "the untag's figure comes first"
    );
    let delete = confirm.from("delete-reclaim");
    assert!(
        delete.contains(&format!(r#"data-bytes="{only_app}""#)),
        "{delete}"
    );
    assert!(delete.contains("reclaimable after the next garbage collection"));

    // Once v2 is gone, untagging v1 leaves an untagged manifest: only a
    // collection that sweeps untagged manifests frees it.
    let done = browser
        .submit(
            "/ui/r/team/app/-/delete/v2",
            "/ui/r/team/app/-/delete/v2",
            &[("what", "untag")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let confirm = browser.get("/ui/r/team/app/-/delete/v1").await;
    let untag = confirm.from("untag-reclaim");
    assert!(
        untag.contains(r#"class="reclaim" data-bytes="0""#),
        "{untag}"
    );
    assert!(
        untag.contains(&format!(
            r#"class="reclaim-untagged" data-bytes="{only_app}""#
        )),
        "{untag}"
    );

    // Delete, collect: the registry's blob bytes drop by exactly that.
    let before = collect(&s, false).await;
    let done = browser
        .submit(
            "/ui/r/team/app/-/delete/v1",
            &format!("/ui/r/team/app/-/delete/{}", app.digest),
            &[("what", "manifest")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let after = collect(&s, false).await;
    assert_eq!(before - after, only_app);
    sizes_agree(&s).await;

    // An index: deleting it frees itself at once, and the child only it
    // lists once untagged manifests are swept; a tagged child stays.
    let lone = push(
        &s,
        "team/multi",
        None,
        "lone",
        &[b"the lone child's own layer"],
        None,
    )
    .await;
    let tagged = push(&s, "team/multi", Some("c2"), "tagged", &[shared], None).await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": lone.digest, "size": lone.manifest, "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": tagged.digest, "size": tagged.manifest, "platform": {"architecture": "arm64", "os": "linux"}},
        ],
    }))
    .unwrap();
    assert_eq!(
        s.put_manifest("team/multi", "multi", OCI_INDEX, &index)
            .await
            .status(),
        201
    );
    let confirm = browser.get("/ui/r/team/multi/-/delete/multi").await;
    let delete = confirm.from("delete-reclaim");
    let with_child = index.len() as u64 + lone.manifest + lone.config + lone.layers[0];
    assert!(
        delete.contains(&format!(r#"class="reclaim" data-bytes="{}""#, index.len())),
        "{delete}"
    );
    assert!(
        delete.contains(&format!(
            r#"class="reclaim-untagged" data-bytes="{with_child}""#
        )),
        "{delete}"
    );
    let before = collect(&s, true).await;
    let done = browser
        .submit(
            "/ui/r/team/multi/-/delete/multi",
            "/ui/r/team/multi/-/delete/multi",
            &[("what", "manifest")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let after = collect(&s, true).await;
    assert_eq!(before - after, with_child);
    sizes_agree(&s).await;
}

#[tokio::test]
async fn repositories_sort_by_size_in_stable_pages() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    // Two pairs of equal size (ties go by name, descending), and a layer
    // shared by two repositories (counted in each).
    let shared = vec![b's'; 700];
    for (repo, n) in [
        ("a/one", 100),
        ("b/two", 900),
        ("c/three", 100),
        ("d/four", 500),
        ("e/five", 900),
        ("f/six", 0),
        ("g/seven", 300),
    ] {
        let layer = vec![b'x'; n + 1];
        let layers: Vec<&[u8]> = if repo == "f/six" {
            vec![&shared]
        } else {
            vec![&layer]
        };
        // Same seed length: equal layers give equal sizes.
        push(
            &s,
            repo,
            Some("latest"),
            &repo.replace('/', "-").chars().take(3).collect::<String>(),
            &layers,
            None,
        )
        .await;
    }
    push(&s, "h/eight", Some("latest"), "h-e", &[&shared], None).await;
    let usage = s.registry.usage().await.unwrap();
    let mut expected: Vec<(u64, String)> = usage
        .iter()
        .map(|u| (u.logical_bytes, u.repo.to_string()))
        .collect();
    expected.sort();
    expected.reverse();
    let expected: Vec<String> = expected.into_iter().map(|(_, n)| n).collect();
    let mut browser = Browser::new(&s);
    let mut seen = Vec::new();
    let mut path = "/ui/?sort=size&n=3".to_string();
    for _ in 0..10 {
        let page = browser.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        seen.extend(capture(&page.body, r#"<td><a href="/ui/r/([^"]+)">"#));
        match capture(&page.body, r#"<a rel="next" href="([^"]+)">"#).first() {
            Some(next) => path = next.clone(),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    sizes_agree(&s).await;
}

async fn ecr(s: &TestServer, operation: &str, body: Value) -> Value {
    let r = s
        .http
        .post(s.url("/"))
        .header(
            "x-amz-target",
            format!("AmazonEC2ContainerRegistry_V20150921.{operation}"),
        )
        .header("content-type", "application/x-amz-json-1.1")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{operation}: {body}");
    body
}

fn policy_text() -> String {
    serde_json::to_string_pretty(&json!({"rules": [
        {"rulePriority": 1, "description": "keep two releases",
         "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 2},
         "action": {"type": "expire"}},
        {"rulePriority": 2, "description": "untagged go",
         "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
         "action": {"type": "expire"}},
    ]}))
    .unwrap()
}

/// (digest, rule) pairs a lifecycle page's preview table lists, from `id` on.
fn previewed(page: &Page, id: &str) -> BTreeSet<(String, String)> {
    let row =
        regex_lite::Regex::new(r#"(?s)<tr data-digest="([^"]+)">.*?<td class="num">([0-9]+)</td>"#)
            .unwrap();
    let table = page.from(id);
    let table = &table[..table.find("</table>").unwrap_or(table.len())];
    row.captures_iter(table)
        .map(|c| (c[1].to_string(), c[2].to_string()))
        .collect()
}

#[tokio::test]
async fn the_lifecycle_preview_is_the_apis_and_applying_expires_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let mut pushed = Vec::new();
    for i in 1..=5 {
        let layer = format!("release {i}").into_bytes();
        pushed.push(
            push(
                &s,
                "team/app",
                Some(&format!("v{i}")),
                &format!("r{i}"),
                &[&layer],
                None,
            )
            .await,
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for i in 1..=3 {
        push(
            &s,
            "team/app",
            None,
            &format!("u{i}"),
            &[format!("untagged {i}").as_bytes()],
            None,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    push(&s, "team/app", Some("dev"), "dev", &[b"dev"], None).await;
    let page_path = "/ui/r/team/app/-/lifecycle";
    let mut browser = Browser::new(&s);
    let tags = browser.get("/ui/r/team/app").await;
    assert!(
        tags.body.contains(&format!(r#"href="{page_path}""#)),
        "the tags page links the lifecycle page"
    );
    let page = browser.get(page_path).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("no lifecycle policy"));
    assert!(page.body.contains("<textarea"), "open mode may edit");

    // A draft preview stores nothing.
    let draft = browser
        .submit(
            page_path,
            page_path,
            &[
                ("source", "json"),
                ("what", "preview"),
                ("policy", &policy_text()),
            ],
        )
        .await;
    assert_eq!(draft.status, 200, "{}", draft.body);
    assert!(draft.body.contains("not saved"));
    assert!(
        browser
            .get(page_path)
            .await
            .body
            .contains("no lifecycle policy")
    );

    // Saved as JSON; the page's preview equals the API's.
    let saved = browser
        .submit(
            page_path,
            page_path,
            &[
                ("source", "json"),
                ("what", "save"),
                ("policy", &policy_text()),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let page = browser.get(page_path).await;
    let ours = previewed(&page, "preview");
    assert_eq!(
        ours,
        previewed(&draft, "draft-preview"),
        "the draft previewed what the policy does"
    );
    ecr(
        &s,
        "StartLifecyclePolicyPreview",
        json!({"repositoryName": "team/app"}),
    )
    .await;
    let api = ecr(
        &s,
        "GetLifecyclePolicyPreview",
        json!({"repositoryName": "team/app"}),
    )
    .await;
    let theirs: BTreeSet<(String, String)> = api["previewResults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["imageDigest"].as_str().unwrap().to_string(),
                r["appliedRulePriority"].to_string(),
            )
        })
        .collect();
    assert_eq!(ours, theirs);
    // v1..v3 beyond the newest two releases, and two of three untagged.
    assert_eq!(theirs.len(), 5, "{api}");
    for p in &pushed[..3] {
        assert!(ours.contains(&(p.digest.clone(), "1".into())));
    }

    // A policy from the form's rule rows is stored as the same rules.
    let form = browser
        .submit(
            page_path,
            page_path,
            &[
                ("source", "form"),
                ("what", "save"),
                ("r0.priority", "1"),
                ("r0.description", "keep two releases"),
                ("r0.status", "tagged"),
                ("r0.prefixes", "v"),
                ("r0.patterns", ""),
                ("r0.count_type", "imageCountMoreThan"),
                ("r0.count_number", "2"),
                ("r1.priority", "2"),
                ("r1.description", "untagged go"),
                ("r1.status", "untagged"),
                ("r1.prefixes", ""),
                ("r1.patterns", ""),
                ("r1.count_type", "imageCountMoreThan"),
                ("r1.count_number", "1"),
                ("r2.priority", ""),
                ("r2.status", "tagged"),
                ("r2.count_type", "imageCountMoreThan"),
            ],
        )
        .await;
    assert_eq!(form.status, StatusCode::SEE_OTHER, "{}", form.body);
    let stored = ecr(
        &s,
        "GetLifecyclePolicy",
        json!({"repositoryName": "team/app"}),
    )
    .await;
    let stored: Value =
        serde_json::from_str(stored["lifecyclePolicyText"].as_str().unwrap()).unwrap();
    let wanted: Value = serde_json::from_str(&policy_text()).unwrap();
    assert_eq!(stored, wanted);
    // An invalid policy is refused with the reason, beside the form.
    let bad = browser
        .submit(
            page_path,
            page_path,
            &[
                ("source", "json"),
                ("what", "save"),
                ("policy", r#"{"rules": []}"#),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("policy-problem"), "{}", bad.body);

    // Apply: a confirmation listing the same images, then they expire.
    let confirm = browser
        .submit(page_path, page_path, &[("what", "apply")])
        .await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert_eq!(previewed(&confirm, "preview"), theirs);
    let applied = browser
        .submit(page_path, page_path, &[("what", "apply-confirm")])
        .await;
    assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.body);
    assert_eq!(
        applied.location(),
        format!("{page_path}?done=applied&expired=5")
    );
    for (digest, _) in &theirs {
        let r = s
            .http
            .head(s.url(&format!("/v2/team/app/manifests/{digest}")))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{digest} expired");
    }
    for p in &pushed[3..] {
        let r = s
            .http
            .head(s.url(&format!("/v2/team/app/manifests/{}", p.digest)))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{} kept", p.digest);
    }
    let page = browser
        .get(&format!("{page_path}?done=applied&expired=5"))
        .await;
    assert!(page.body.contains("5 image(s) expired"));
    // The run is in the audit log (written in the background), under "Past runs".
    let mut history = String::new();
    for _ in 0..50 {
        history = browser.get(page_path).await.body;
        if history.contains("lifecycle.run") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        history.contains("lifecycle.run") && history.contains("images=5 "),
        "{history}"
    );
    assert!(
        page.body.contains("preview-empty"),
        "nothing more to expire"
    );

    // Deleted: the API agrees.
    let deleted = browser
        .submit(page_path, page_path, &[("what", "delete-policy")])
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    let r = s
        .http
        .post(s.url("/"))
        .header(
            "x-amz-target",
            "AmazonEC2ContainerRegistry_V20150921.GetLifecyclePolicy",
        )
        .header("content-type", "application/x-amz-json-1.1")
        .body(json!({"repositoryName": "team/app"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn pull_only_sees_no_forms_and_forged_posts_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    push(&s, "team/app", Some("v1"), "one", &[b"one"], Some(ALICE)).await;
    let page_path = "/ui/r/team/app/-/lifecycle";
    let mut alice = Browser::new(&s);
    alice.sign_in(ALICE).await;
    let saved = alice
        .submit(
            page_path,
            page_path,
            &[
                ("source", "json"),
                ("what", "save"),
                ("policy", &policy_text()),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let mine = alice.get(page_path).await;
    for form in [
        "policy-form",
        "policy-json",
        r#"value="apply""#,
        r#"value="delete-policy""#,
        r#"value="mutability""#,
    ] {
        assert!(mine.body.contains(form), "Alice is offered {form}");
    }

    let mut bob = Browser::new(&s);
    bob.sign_in(BOB).await;
    let page = bob.get(page_path).await;
    assert_eq!(page.status, 200, "pull sees the page");
    assert!(page.body.contains("keep two releases"), "and the policy");
    assert!(
        !page.body.contains(&format!(r#"action="{page_path}""#)),
        "but no form: {}",
        page.body
    );
    assert!(!page.body.contains("<textarea"));
    let csrf = page.csrf(); // the sign-out form's
    let before = s
        .registry
        .lifecycle_policy(&"team/app".parse().unwrap())
        .await
        .unwrap()
        .text;
    for form in [
        vec![
            ("what", "save"),
            ("source", "json"),
            (
                "policy",
                r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            ),
        ],
        vec![("what", "delete-policy")],
        vec![("what", "apply-confirm")],
        vec![("what", "mutability"), ("mutability", "IMMUTABLE")],
    ] {
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend(form.clone());
        let r = bob.post(page_path, &fields).await;
        assert_eq!(r.status, 403, "{form:?}: {}", r.body);
    }
    // A repository Bob may not pull does not exist for him.
    push(
        &s,
        "private/app",
        Some("v1"),
        "private",
        &[b"p"],
        Some(ALICE),
    )
    .await;
    assert_eq!(bob.get("/ui/r/private/app/-/lifecycle").await.status, 404);

    // Without the CSRF token, even Alice changes nothing.
    for form in [
        vec![("what", "delete-policy")],
        vec![("what", "mutability"), ("mutability", "IMMUTABLE")],
    ] {
        let r = alice.post(page_path, &form).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains("Form expired"));
    }
    let repo = "team/app".parse().unwrap();
    assert_eq!(
        s.registry.lifecycle_policy(&repo).await.unwrap().text,
        before
    );
    assert_eq!(
        s.registry.repository(&repo).await.unwrap().tag_mutability,
        "MUTABLE"
    );
    assert_eq!(s.registry.images(&repo).await.unwrap().len(), 1);
}

#[tokio::test]
async fn immutable_tags_set_here_hold_on_v2() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    push(&s, "team/app", Some("v1"), "one", &[b"one"], None).await;
    let page_path = "/ui/r/team/app/-/lifecycle";
    let mut browser = Browser::new(&s);
    let r = browser
        .submit(
            page_path,
            page_path,
            &[("what", "mutability"), ("mutability", "IMMUTABLE")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = browser.get(page_path).await;
    assert!(
        page.from("mutability")
            .starts_with(r#"id="mutability">Tags are <strong>IMMUTABLE</strong>"#),
        "{}",
        page.body
    );
    let api = ecr(
        &s,
        "DescribeRepositories",
        json!({"repositoryNames": ["team/app"]}),
    )
    .await;
    assert_eq!(api["repositories"][0]["imageTagMutability"], "IMMUTABLE");
    // Re-pushing v1 with other content is refused; a new tag is not.
    let config = br#"{"architecture":"amd64","os":"linux","seed":"two"}"#;
    s.push_blob("team/app", config).await;
    s.push_blob("team/app", b"two").await;
    let other = image_manifest(config, &[b"two"]);
    let refused = s.put_manifest("team/app", "v1", OCI_MANIFEST, &other).await;
    assert!(refused.status().is_client_error(), "{}", refused.status());
    assert_eq!(
        s.put_manifest("team/app", "v2", OCI_MANIFEST, &other)
            .await
            .status(),
        201
    );
    // And back.
    let r = browser
        .submit(
            page_path,
            page_path,
            &[("what", "mutability"), ("mutability", "MUTABLE")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        s.put_manifest("team/app", "v1", OCI_MANIFEST, &other)
            .await
            .status(),
        201
    );
}
