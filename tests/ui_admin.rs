//! The console's operator pages over real HTTP: the audit log records
//! pushes, deletes and sign-ins with their actor; everyone but operators
//! gets the not-found (or sign-in) answer on every page and every POST and
//! changes nothing; CSRF; access tokens shown once, working on `/v2/` and
//! stopped by revocation; garbage collection's dry run, run and history;
//! and pruning the audit log by age.

#![allow(clippy::unwrap_used, reason = "test helpers abort the test on failure")]
#![allow(clippy::expect_used, reason = "test helpers abort the test on failure")]

mod common;

use std::time::{Duration, Instant};

use common::browser::{Browser, capture};
use common::{OCI_MANIFEST, TestServer, audited, sha256};
use wharf::auth::{ConfigUser, Rule, hash_password};
use wharf::config::Config;
use wharf::storage::{AuditEntry, AuditQuery, AuditStore, CredentialStore, SqlMetadata};

const ALICE: (&str, &str) = ("alice", "alice-secret");
const BOB: (&str, &str) = ("bob", "bob-secret-1");

/// Alice may do anything (an operator); Bob may push and pull `team/*` only.
fn secured(c: &mut Config) {
    c.auth.users = [ALICE, BOB]
        .map(|(name, pw)| ConfigUser {
            name: name.into(),
            password_hash: hash_password(pw).unwrap(),
            groups: vec!["staff".into()],
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
            actions: vec!["pull".into(), "push".into(), "delete".into()],
            catalog: false,
        },
    ];
}

/// Pushes an image under `repo:tag` as `user` (HTTP Basic); returns the
/// manifest's digest.
async fn push_as(s: &TestServer, (user, password): (&str, &str), repo: &str, tag: &str) -> String {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{repo}{tag}"}}"#);
    let layer = format!("layer of {repo}:{tag}").into_bytes();
    for blob in [config.as_bytes(), &layer] {
        s.push_blob_as(repo, blob, (user, password)).await;
    }
    let manifest = common::image_manifest(config.as_bytes(), &[&layer]);
    let r = s
        .http
        .put(s.url(&format!("/v2/{repo}/manifests/{tag}")))
        .basic_auth(user, Some(password))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    sha256(&manifest)
}

async fn store(s: &TestServer) -> SqlMetadata {
    SqlMetadata::open(&s.database).await.unwrap()
}

#[tokio::test]
async fn pushes_deletes_and_sign_ins_are_in_the_audit_log_with_their_actor() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let db = store(&s).await;
    let digest = push_as(&s, BOB, "team/app", "v1").await;
    let r = s
        .http
        .delete(s.url("/v2/team/app/manifests/v1"))
        .basic_auth(BOB.0, Some(BOB.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let push = audited(&db, "push", |e| e.action == "push").await;
    assert_eq!(
        (
            push.actor.as_str(),
            push.repository.as_str(),
            push.target.as_str()
        ),
        ("bob", "team/app", "v1")
    );
    assert!(push.detail.contains(&digest), "{}", push.detail);
    let delete = audited(&db, "delete", |e| e.action == "delete").await;
    assert_eq!(
        (delete.actor.as_str(), delete.target.as_str()),
        ("bob", "v1")
    );

    // Sign-ins: the console's and the token endpoint's, failed ones with the address.
    let mut guesser = Browser::new(&s);
    for _ in 0..3 {
        let page = guesser.try_sign_in(("alice", "wrong")).await;
        assert_eq!(page.status, 401);
    }
    let mut alice = Browser::new(&s);
    assert_eq!(alice.try_sign_in(ALICE).await.status, 303);
    let r = s
        .http
        .get(s.url("/token?service=wharf&scope=repository:team/app:pull"))
        .basic_auth(BOB.0, Some(BOB.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let login = audited(&db, "console login", |e| {
        e.action == "login" && e.actor == "alice"
    })
    .await;
    assert!(
        login.detail.contains("via=console client=127.0.0.1"),
        "{}",
        login.detail
    );
    audited(&db, "token login", |e| {
        e.action == "login" && e.actor == "bob"
    })
    .await;
    let failed = audited(&db, "failed login", |e| e.action == "login.failed").await;
    assert_eq!(failed.actor, "alice");
    assert!(failed.detail.contains("client=127.0.0.1"));
    // Three failures from one address within a minute: one row.
    let rows = db
        .audit_entries(&AuditQuery {
            action: Some("login.failed".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);

    // A console delete is recorded as the signed-in user's.
    push_as(&s, BOB, "team/app", "v2").await;
    let confirm = alice.get("/ui/r/team/app/-/delete/v2").await;
    let done = alice
        .post(
            "/ui/r/team/app/-/delete/v2",
            &[("csrf", &confirm.csrf()), ("what", "untag")],
        )
        .await;
    assert_eq!(done.status, 303);
    audited(&db, "console delete", |e| {
        e.action == "delete" && e.actor == "alice" && e.target == "v2"
    })
    .await;

    // The console shows it all, newest first, filtered.
    let page = alice.get("/ui/admin/audit").await;
    assert_eq!(page.status, 200);
    for text in [
        "<code>push</code>",
        "<code>delete</code>",
        "<code>login.failed</code>",
    ] {
        assert!(page.body.contains(text), "{text}");
    }
    let pushes = alice
        .get("/ui/admin/audit?action=push&repository=team%2Fapp")
        .await;
    assert!(pushes.body.contains("<code>push</code>"));
    assert!(!pushes.body.contains("<code>login</code>"));
    let paged = alice.get("/ui/admin/audit?n=1").await;
    let older = capture(&paged.body, r#"rel="next" href="([^"]+)""#);
    assert_eq!(older.len(), 1, "a link to older entries");
    assert_eq!(alice.get(&older[0]).await.status, 200);
    assert_eq!(alice.get("/ui/admin/audit?before=nope").await.status, 400);
}

/// Every operator page and action, with a form that would change something.
const PAGES: [&str; 10] = [
    "/ui/admin",
    "/ui/admin/",
    "/ui/admin/storage",
    "/ui/admin/users",
    "/ui/admin/tokens",
    "/ui/admin/tokens/ci/revoke",
    "/ui/admin/keys/AKIAEXAMPLE/delete",
    "/ui/admin/audit",
    "/ui/admin/gc",
    "/ui/admin/nothing",
];
const POSTS: [(&str, &[(&str, &str)]); 4] = [
    (
        "/ui/admin/tokens",
        &[
            ("name", "sneaky"),
            ("scopes", "repository:*:*"),
            ("expires", "never"),
        ],
    ),
    ("/ui/admin/tokens/ci/revoke", &[]),
    ("/ui/admin/keys/AKIAEXAMPLE/delete", &[]),
    ("/ui/admin/gc", &[("what", "run")]),
];

#[tokio::test]
async fn only_operators_reach_the_admin_pages_and_nothing_changes_for_others() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), |c| {
        secured(c);
        c.auth.anonymous_pull = vec!["public/*".into()];
        c.gc.grace_seconds = 0;
    })
    .await;
    let db = store(&s).await;
    common::create_token(&db, "ci", &["repository:team/*:pull"]).await;
    // A dangling blob a run would remove.
    let dangling = s.push_blob_as("team/app", b"nobody uses me", ALICE).await;

    // A token with every scope signs in, but is no operator: it must not
    // mint credentials that outlive it.
    let root = common::create_token(&db, "root", &["repository:*:*"]).await;
    let mut token = Browser::new(&s);
    assert_eq!(token.try_sign_in(("root", root.as_str())).await.status, 303);
    let mut anonymous = Browser::new(&s);
    let mut bob = Browser::new(&s);
    assert_eq!(bob.try_sign_in(BOB).await.status, 303);
    let home = bob.get("/ui/").await;
    assert!(!home.body.contains("/ui/admin/"), "no Admin link for Bob");
    for browser in [&mut anonymous, &mut bob, &mut token] {
        let csrf = browser.csrf().await;
        for path in PAGES {
            let page = browser.get(path).await;
            assert_eq!(page.status, 404, "{path}");
            assert!(page.body.contains("nothing you may see"), "{path}");
        }
        for (path, fields) in POSTS {
            let mut form = vec![("csrf", csrf.as_str())];
            form.extend_from_slice(fields);
            let page = browser.post(path, &form).await;
            assert_eq!(page.status, 404, "POST {path}");
        }
    }
    // Nothing changed: the token is there, no other was made, the blob stays.
    let tokens = db.access_tokens().await.unwrap();
    let mut names: Vec<&str> = tokens.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["ci", "root"]);
    let r = s
        .http
        .head(s.url(&format!("/v2/team/app/blobs/{dangling}")))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Without anonymous pulls, the sign-in form is the answer instead.
    let dir2 = tempfile::tempdir().unwrap();
    let closed = TestServer::start_with(dir2.path(), secured).await;
    let mut visitor = Browser::new(&closed);
    for path in PAGES {
        let page = visitor.get(path).await;
        assert_eq!(page.status, 303, "{path}");
        assert!(page.location().starts_with("/ui/login?next="), "{path}");
    }
    let csrf = visitor.csrf().await;
    for (path, fields) in POSTS {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        let page = visitor.post(path, &form).await;
        assert_eq!(page.status, 303, "POST {path}");
        assert_eq!(page.location(), "/ui/login?next=%2Fui%2F");
    }

    // The operator sees the link and the pages.
    let mut alice = Browser::new(&s);
    assert_eq!(alice.try_sign_in(ALICE).await.status, 303);
    assert!(
        alice
            .get("/ui/")
            .await
            .body
            .contains(r#"href="/ui/admin/""#)
    );
    for path in [
        "/ui/admin/",
        "/ui/admin/storage",
        "/ui/admin/users",
        "/ui/admin/tokens",
        "/ui/admin/audit",
        "/ui/admin/gc",
    ] {
        assert_eq!(alice.get(path).await.status, 200, "{path}");
    }
    assert_eq!(alice.get("/ui/admin/nothing").await.status, 404);
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let mut alice = Browser::new(&s);
    assert_eq!(alice.try_sign_in(ALICE).await.status, 303);
    for (path, fields) in POSTS {
        let page = alice.post(path, fields).await;
        assert_eq!(page.status, 403, "POST {path}");
        assert!(page.body.contains("Form expired"));
        let mut wrong = vec![("csrf", "x".repeat(43))];
        wrong.extend(fields.iter().map(|(k, v)| (*k, v.to_string())));
        let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(alice.post(path, &wrong).await.status, 403, "POST {path}");
    }
    let db = store(&s).await;
    assert!(db.access_tokens().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_access_token_is_shown_once_works_on_v2_and_stops_when_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    push_as(&s, ALICE, "team/app", "v1").await;
    let mut alice = Browser::new(&s);
    assert_eq!(alice.try_sign_in(ALICE).await.status, 303);
    let form = alice.get("/ui/admin/tokens").await;
    let csrf = form.csrf();

    // Bounded and checked: too many scopes, a bad scope, a bad name.
    let many = "repository:team/app:pull\n".repeat(21);
    for (name, scopes) in [
        ("ci", many.as_str()),
        ("ci", "nonsense"),
        ("bad name", "repository:a:pull"),
    ] {
        let page = alice
            .post(
                "/ui/admin/tokens",
                &[
                    ("csrf", &csrf),
                    ("name", name),
                    ("scopes", scopes),
                    ("expires", "30d"),
                ],
            )
            .await;
        assert_eq!(page.status, 400, "{name} {scopes}");
    }

    let created = alice
        .post(
            "/ui/admin/tokens",
            &[
                ("csrf", &csrf),
                ("name", "ci"),
                ("scopes", "repository:team/*:pull"),
                ("expires", "30d"),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let secret = capture(&created.body, r#"<code>(wharf_[A-Za-z0-9_-]+)</code>"#)
        .into_iter()
        .next()
        .expect("the secret");
    assert!(created.body.contains("shown only this once"));
    // Never again: not on the list, and the list says what the token may do.
    let list = alice.get("/ui/admin/tokens").await;
    assert!(!list.body.contains(&secret));
    assert!(list.body.contains("repository:team/*:pull"));

    // docker login-style Basic auth on /v2/, within its scopes only.
    let tags = |secret: String, repo: &'static str| {
        let http = s.http.clone();
        let url = s.url(&format!("/v2/{repo}/tags/list"));
        async move {
            http.get(url)
                .basic_auth("ci", Some(secret))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(tags(secret.clone(), "team/app").await, 200);
    let push = s
        .http
        .post(s.url("/v2/team/app/blobs/uploads/"))
        .basic_auth("ci", Some(&secret))
        .send()
        .await
        .unwrap();
    assert!(
        push.status() == 401 || push.status() == 403,
        "{}",
        push.status()
    );

    // Revoke, behind a confirmation page.
    let confirm = alice.get("/ui/admin/tokens/ci/revoke").await;
    assert_eq!(confirm.status, 200);
    let done = alice
        .post("/ui/admin/tokens/ci/revoke", &[("csrf", &confirm.csrf())])
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(done.location(), "/ui/admin/tokens?done=revoked");
    assert_eq!(tags(secret, "team/app").await, 401);
    assert_eq!(alice.get("/ui/admin/tokens/ci/revoke").await.status, 404);

    let db = store(&s).await;
    let made = audited(&db, "token.create", |e| e.action == "token.create").await;
    assert_eq!((made.actor.as_str(), made.target.as_str()), ("alice", "ci"));
    assert!(made.detail.contains("repository:team/*:pull"));
    audited(&db, "token.revoke", |e| {
        e.action == "token.revoke" && e.actor == "alice"
    })
    .await;
}

#[tokio::test]
async fn garbage_collection_dry_run_lists_a_dangling_blob_and_the_run_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), |c| {
        secured(c);
        c.gc.grace_seconds = 0;
    })
    .await;
    push_as(&s, ALICE, "team/app", "v1").await;
    let payload = b"a layer whose manifest never came";
    let r = s
        .http
        .post(s.url(&format!(
            "/v2/team/app/blobs/uploads/?digest={}",
            sha256(payload)
        )))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .body(payload.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let dangling = sha256(payload);
    // Links are kept for the grace period; with none, wait past the instant.
    tokio::time::sleep(Duration::from_millis(20)).await;

    let mut alice = Browser::new(&s);
    assert_eq!(alice.try_sign_in(ALICE).await.status, 303);
    let gc = alice.get("/ui/admin/gc").await;
    assert!(gc.body.contains("No collections recorded yet."));
    let csrf = gc.csrf();
    let dry = alice
        .post("/ui/admin/gc", &[("csrf", &csrf), ("what", "dry_run")])
        .await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert!(dry.body.contains(&dangling), "{}", dry.body);
    assert!(dry.body.contains(&format!("{} bytes", payload.len())));
    let head = |digest: String| {
        let http = s.http.clone();
        let url = s.url(&format!("/v2/team/app/blobs/{digest}"));
        async move {
            http.head(url)
                .basic_auth(ALICE.0, Some(ALICE.1))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        head(dangling.clone()).await,
        200,
        "a dry run removes nothing"
    );

    let run = alice
        .post("/ui/admin/gc", &[("csrf", &csrf), ("what", "run")])
        .await;
    assert_eq!(run.status, 200, "{}", run.body);
    assert!(run.body.contains(&dangling));
    assert_eq!(head(dangling).await, 404);
    // The image still pulls.
    let r = s
        .http
        .get(s.url("/v2/team/app/manifests/v1"))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let db = store(&s).await;
    let entry = audited(&db, "gc.run", |e| e.action == "gc.run").await;
    assert_eq!(entry.actor, "alice");
    assert!(
        entry
            .detail
            .contains(&format!("blobs=1 bytes={}", payload.len())),
        "{}",
        entry.detail
    );
    audited(&db, "gc.dry_run", |e| e.action == "gc.dry_run").await;
    let history = alice.get("/ui/admin/gc").await;
    assert!(history.body.contains("<code>gc.run</code>"));
    assert!(history.body.contains("<code>gc.dry_run</code>"));
    assert_eq!(
        alice
            .post("/ui/admin/gc", &[("csrf", &csrf), ("what", "other")])
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn storage_and_users_pages_show_usage_and_access_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    push_as(&s, ALICE, "team/app", "v1").await;
    push_as(&s, ALICE, "team/web", "v1").await;
    let db = store(&s).await;
    let (key, _) = wharf::admin::create_access_key(
        &db,
        s.auth.login.secrets(),
        "bob",
        &["alice".into(), "bob".into()],
        wharf::admin::By::unrecorded(),
    )
    .await
    .unwrap();
    let mut alice = Browser::new(&s);
    assert_eq!(alice.try_sign_in(ALICE).await.status, 303);
    let storage = alice.get("/ui/admin/storage?sort=name").await;
    assert_eq!(storage.status, 200);
    let rows = capture(&storage.body, r#"<td><a href="/ui/r/([^"]+)">"#);
    assert_eq!(rows, ["team/app", "team/web"]);
    assert!(
        storage.body.contains("</strong> blob(s)"),
        "{}",
        storage.body
    );
    let first = alice.get("/ui/admin/storage?sort=name&n=1").await;
    assert_eq!(
        capture(&first.body, r#"<td><a href="/ui/r/([^"]+)">"#),
        ["team/app"]
    );
    assert!(first.body.contains("page=2"));
    assert_eq!(alice.get("/ui/admin/storage?sort=size").await.status, 400);

    let users = alice.get("/ui/admin/users").await;
    assert!(users.body.contains("<td>bob</td>"));
    assert!(users.body.contains(&key));
    let confirm = alice.get(&format!("/ui/admin/keys/{key}/delete")).await;
    assert_eq!(confirm.status, 200);
    let done = alice
        .post(
            &format!("/ui/admin/keys/{key}/delete"),
            &[("csrf", &confirm.csrf())],
        )
        .await;
    assert_eq!(done.status, 303);
    assert!(db.access_keys(None).await.unwrap().is_empty());
    let deleted = audited(&db, "access_key.delete", |e| {
        e.action == "access_key.delete"
    })
    .await;
    assert_eq!(
        (deleted.actor.as_str(), deleted.target.as_str()),
        ("alice", key.as_str())
    );
}

#[tokio::test]
async fn the_audit_log_forgets_entries_past_its_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::test_config(dir.path(), |_| {}).await;
    std::fs::create_dir_all(dir.path()).unwrap();
    let db = SqlMetadata::open(&config.database()).await.unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    for (age_days, target) in [(10, "old"), (0, "new")] {
        db.record_audit(&AuditEntry {
            at_ms: now - age_days * 86_400_000,
            actor: "wharf".into(),
            action: "gc.run".into(),
            target: target.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    // The writer prunes when it starts, then hourly.
    let _s = TestServer::start_with(dir.path(), |c| c.audit.retention_days = 7).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<String> = db
            .audit_entries(&AuditQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.entry.target)
            .collect();
        if left == ["new"] {
            break;
        }
        assert!(Instant::now() < deadline, "not pruned: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
