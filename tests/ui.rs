//! The web console over real HTTP: security headers and assets, sign-in and
//! CSRF, authorization (a repository one may not pull leaves no trace),
//! keyset paging stable across pages, the image page's facts and exact pull
//! commands, deletes that end where the `/v2/` API's end, and the page
//! budget with 10,000 tags.

#![allow(clippy::unwrap_used, reason = "test helpers abort the test on failure")]
#![allow(clippy::expect_used, reason = "test helpers abort the test on failure")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::browser::{Browser, Page, capture};
use common::{OCI_INDEX, OCI_MANIFEST, TestServer, sha256};
use reqwest::StatusCode;
use reqwest::header::SET_COOKIE;
use wharf::auth::{ConfigUser, Rule, hash_password};
use wharf::config::Config;
use wharf::oci::{Reference, RepoName, Tag};

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

/// Pushes a config (with a run config) and a layer, and an image manifest
/// under `tag`; returns the manifest's digest.
async fn push_image(s: &TestServer, repo: &str, tag: &str, seed: &str) -> String {
    let (config, layer, manifest) = image(seed);
    s.push_blob(repo, &config).await;
    s.push_blob(repo, &layer).await;
    let r = s.put_manifest(repo, tag, OCI_MANIFEST, &manifest).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    sha256(&manifest)
}

/// The config (with a run config and a build history), layer and manifest
/// of the image `seed` names; the same seed gives the same bytes.
fn image(seed: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": [format!("SEED={seed}")], "Cmd": ["/bin/app", "--serve"],
                   "WorkingDir": "/srv", "ExposedPorts": {"8080/tcp": {}},
                   "Labels": {"org.opencontainers.image.title": "app"}},
        "history": [{"created_by": "ENV SEED", "empty_layer": true},
                    {"created_by": format!("COPY app-{seed} /bin/app")}],
    }))
    .unwrap();
    let layer = format!("layer for {seed}").into_bytes();
    let manifest = common::image_manifest(&config, &[&layer]);
    (config, layer, manifest)
}

/// Pushes an image as `repo:latest` with Alice's credentials (HTTP Basic).
async fn push_as_alice(s: &TestServer, repo: &str) {
    let basic = |r: reqwest::RequestBuilder| r.basic_auth(ALICE.0, Some(ALICE.1));
    let (config, layer, manifest) = image(repo);
    for blob in [&config, &layer] {
        let r = basic(s.http.post(s.url(&format!(
            "/v2/{repo}/blobs/uploads/?digest={}",
            sha256(blob)
        ))))
        .body(blob.clone())
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = basic(s.http.put(s.url(&format!("/v2/{repo}/manifests/latest"))))
        .header("content-type", OCI_MANIFEST)
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

async fn v2_tags(s: &TestServer, repo: &str) -> Vec<String> {
    let r = s
        .http
        .get(s.url(&format!("/v2/{repo}/tags/list")))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    let mut tags: Vec<String> = body["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    tags.sort();
    tags
}

async fn v2_manifest_status(s: &TestServer, repo: &str, reference: &str) -> u16 {
    s.http
        .head(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Tags (or digests) a tags page lists, in order.
fn listed(page: &Page) -> Vec<String> {
    capture(&page.body, r#"<td><a href="/ui/r/[^"]+/-/image/([^"]+)">"#)
}

fn next_link(page: &Page) -> Option<String> {
    capture(&page.body, r#"<a rel="next" href="([^"]+)">"#)
        .into_iter()
        .next()
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_assets_are_cached() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let mut browser = Browser::new(&s);
    let home = browser.get("/ui/").await;
    assert_eq!(home.status, 200);
    let csp = home.headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert_eq!(home.headers["x-frame-options"], "DENY");
    assert_eq!(home.headers["referrer-policy"], "same-origin");
    assert_eq!(home.headers["x-content-type-options"], "nosniff");
    assert_eq!(home.headers["cache-control"], "no-store");
    let cookie = home.headers[SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("wharf_csrf="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/ui"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    // Nothing inline: every script has a source, no style attribute or element.
    assert!(!home.body.contains("style="), "{}", home.body);
    assert!(!home.body.contains("<style"), "{}", home.body);
    assert_eq!(
        capture(&home.body, r"<script([^>]*)>").len(),
        capture(
            &home.body,
            r#"<script( src="/ui/static/[0-9a-f]{16}/app.js" defer)>"#
        )
        .len()
    );
    for asset in capture(&home.body, r#"(?:href|src)="(/ui/static/[^"]+)""#) {
        let r = browser.get(&asset).await;
        assert_eq!(r.status, 200, "{asset}");
        assert_eq!(
            r.headers["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(r.headers.contains_key("content-security-policy"));
    }
    let stale = browser.get("/ui/static/0000000000000000/app.css").await;
    assert_eq!(stale.status, 404);
    // Outside /ui/ nothing of the console applies (no cookie, no page headers).
    for path in ["/favicon.ico", "/v2/"] {
        let r = Browser::new(&s).get(path).await;
        assert!(!r.headers.contains_key(SET_COOKIE), "{path}");
        assert!(!r.headers.contains_key("content-security-policy"), "{path}");
    }
    // Unknown console paths are the console's 404, with its headers.
    let missing = browser.get("/ui/nothing/here").await;
    assert_eq!(missing.status, 404);
    assert!(missing.headers.contains_key("content-security-policy"));
}

#[tokio::test]
async fn sign_in_sets_a_strict_session_and_every_post_needs_its_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let mut browser = Browser::new(&s);

    // Without a session, pages send the browser to the form and back.
    let home = browser.get("/ui/r/team/app?sort=name").await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(
        home.location(),
        "/ui/login?next=%2Fui%2Fr%2Fteam%2Fapp%3Fsort%3Dname"
    );
    let form = browser.get(home.location()).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains(r#"value="/ui/r/team/app?sort=name""#));
    let csrf = form.csrf();

    // No token, a wrong token, or another site's request: refused, and no session.
    for token in ["", "forged"] {
        let r = browser
            .post(
                "/ui/login",
                &[
                    ("csrf", token),
                    ("username", ALICE.0),
                    ("password", ALICE.1),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{token:?}");
        assert!(!browser.cookies.contains_key("wharf_session"));
    }
    let cross_site = browser
        .http
        .post(s.url("/ui/login"))
        .header("cookie", browser.cookie_header())
        .header("sec-fetch-site", "cross-site")
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", ALICE.0),
            ("password", ALICE.1),
        ]);
    assert_eq!(browser.read(cross_site).await.status, StatusCode::FORBIDDEN);

    // A wrong password says so, on the form.
    let wrong = browser
        .post(
            "/ui/login",
            &[("csrf", &csrf), ("username", ALICE.0), ("password", "nope")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Wrong user name or password"));

    // `next` must be a console path: anything else lands on /ui/.
    let signed = browser
        .post(
            "/ui/login",
            &[
                ("csrf", &csrf),
                ("username", ALICE.0),
                ("password", ALICE.1),
                ("next", "//evil.example/ui/"),
            ],
        )
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER);
    assert_eq!(signed.location(), "/ui/");
    let session = signed
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("wharf_session="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(!session.contains("Secure"), "plain HTTP: {session}");
    // The CSRF secret is replaced at sign-in: the one from before is worth nothing.
    assert_ne!(browser.cookies["wharf_csrf"], csrf);

    let home = browser.get("/ui/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Signed in as <strong>alice</strong>"));

    // The session is bound to this browser's CSRF secret: with another, it is no session.
    let mut other = Browser::new(&s);
    other.get("/ui/login").await;
    other.cookies.insert(
        "wharf_session".into(),
        browser.cookies["wharf_session"].clone(),
    );
    assert_eq!(other.get("/ui/").await.status, StatusCode::SEE_OTHER);

    // Signing out needs the token too; then the cookies are gone.
    let refused = browser.post("/ui/logout", &[("csrf", "forged")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(browser.get("/ui/").await.status, 200);
    let token = browser.get("/ui/").await.csrf();
    let out = browser.post("/ui/logout", &[("csrf", &token)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(!browser.cookies.contains_key("wharf_session"));
    assert_eq!(browser.get("/ui/").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn another_site_cannot_sign_a_user_out_and_assets_set_no_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    let mut alice = Browser::new(&s);
    alice.sign_in(ALICE).await;
    let csrf = alice.cookies["wharf_csrf"].clone();

    // Requests from another site arrive without the Strict session cookie
    // (and, but for top-level GETs, without the Lax CSRF one): none of them
    // may hand the browser a new CSRF secret, which would end its session.
    let cross = |method: reqwest::Method, path: &str| {
        alice
            .http
            .request(method, s.url(path))
            .header("sec-fetch-site", "cross-site")
    };
    for (method, path, mode) in [
        (reqwest::Method::GET, "/ui/", "no-cors"),
        (reqwest::Method::GET, "/ui/login", "cors"),
        (reqwest::Method::GET, "/ui/r/team/app", "no-cors"),
        (reqwest::Method::POST, "/ui/logout", "navigate"),
        (reqwest::Method::POST, "/ui/login", "navigate"),
    ] {
        let r = cross(method.clone(), path)
            .header("sec-fetch-mode", mode)
            .send()
            .await
            .unwrap();
        assert!(
            r.headers().get(SET_COOKIE).is_none(),
            "{method} {path}: {:?}",
            r.headers()
        );
    }
    // A link followed from another site carries the Lax CSRF cookie only:
    // the page looks signed out, and the secret is kept.
    let r = cross(reqwest::Method::GET, "/ui/")
        .header("sec-fetch-mode", "navigate")
        .header("cookie", format!("wharf_csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get(SET_COOKIE).is_none(), "{:?}", r.headers());
    // The session is untouched.
    let home = alice.get("/ui/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Signed in as <strong>alice</strong>"));
    assert_eq!(alice.cookies["wharf_csrf"], csrf);

    // A browser's first visit, same origin, is given a secret; the public,
    // immutable assets never set one.
    let first = s.http.get(s.url("/ui/login")).send().await.unwrap();
    let cookie = first.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.starts_with("wharf_csrf="), "{cookie}");
    let body = first.text().await.unwrap();
    let assets = capture(&body, r#"(?:href|src)="(/ui/static/[^"]+)""#);
    assert!(!assets.is_empty());
    for asset in assets {
        let r = s.http.get(s.url(&asset)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        assert!(r.headers().get(SET_COOKIE).is_none(), "{asset}");
    }

    // Sign-in never sends the browser out of the console by dot segments.
    let mut bob = Browser::new(&s);
    let form = bob.get("/ui/login").await;
    let csrf = form.csrf();
    let done = bob
        .post(
            "/ui/login",
            &[
                ("csrf", &csrf),
                ("username", BOB.0),
                ("password", BOB.1),
                ("next", "/ui/../v2/_catalog"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/ui/");
}

#[tokio::test]
async fn a_repository_one_may_not_pull_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    // Alice pushes (HTTP Basic), to a repository Bob may pull and one he may not.
    for repo in ["team/app", "secret/db"] {
        push_as_alice(&s, repo).await;
    }

    let mut bob = Browser::new(&s);
    bob.sign_in(BOB).await;
    let home = bob.get("/ui/").await;
    assert!(home.body.contains("team/app"));
    assert!(!home.body.contains("secret"), "{}", home.body);
    let searched = bob.get("/ui/?q=secret").await;
    assert!(!searched.body.contains("secret/db"));

    // Every page of the hidden repository is the page of one that does not exist.
    for (hidden, missing) in [
        ("/ui/r/secret/db", "/ui/r/secret/nothing"),
        (
            "/ui/r/secret/db/-/image/latest",
            "/ui/r/secret/nothing/-/image/latest",
        ),
        (
            "/ui/r/secret/db/-/delete/latest",
            "/ui/r/secret/nothing/-/delete/latest",
        ),
    ] {
        let (a, b) = (bob.get(hidden).await, bob.get(missing).await);
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{hidden}");
        assert_eq!((a.status, &a.body), (b.status, &b.body), "{hidden}");
    }

    // Bob may pull team/app but not delete there: no delete offered, none done.
    let tags = bob.get("/ui/r/team/app").await;
    assert_eq!(listed(&tags), ["latest"]);
    assert!(!tags.body.contains("/-/delete/"));
    let image = bob.get("/ui/r/team/app/-/image/latest").await;
    assert_eq!(image.status, 200);
    assert!(!image.body.contains("/-/delete/"));
    assert_eq!(
        bob.get("/ui/r/team/app/-/delete/latest").await.status,
        StatusCode::FORBIDDEN
    );
    let csrf = image.csrf();
    let refused = bob
        .post(
            "/ui/r/team/app/-/delete/latest",
            &[("csrf", &csrf), ("what", "manifest")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = bob
        .post(
            "/ui/r/secret/db/-/delete/latest",
            &[("csrf", &csrf), ("what", "manifest")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);

    // Alice sees both and is offered deletes.
    let mut alice = Browser::new(&s);
    alice.sign_in(ALICE).await;
    let home = alice.get("/ui/").await;
    assert!(home.body.contains("secret/db") && home.body.contains("team/app"));
    assert!(
        alice
            .get("/ui/r/secret/db")
            .await
            .body
            .contains("/-/delete/latest")
    );
}

/// Every link of a page, `&` undone.
fn links(page: &Page) -> Vec<String> {
    capture(&page.body, r#"href="([^"]+)""#)
}

#[tokio::test]
async fn repository_pages_never_name_a_hidden_repository_whatever_the_parameters() {
    let dir = tempfile::tempdir().unwrap();
    // Fifty repositories Bob may not pull, sorting before and after the one
    // he may, all matching the search; pushed in open mode, then secured.
    let open = TestServer::start(dir.path()).await;
    for i in 0..25 {
        open.push_image(&format!("hidden/app-{i:02}"), "latest", &format!("h{i}"))
            .await;
    }
    open.push_image("team/app", "latest", "team").await;
    for i in 0..25 {
        open.push_image(&format!("zhidden/app-{i:02}"), "latest", &format!("z{i}"))
            .await;
    }
    open.stop().await;
    let s = TestServer::start_with(dir.path(), secured).await;
    let mut bob = Browser::new(&s);
    bob.sign_in(BOB).await;

    let mut afters = vec![String::new(), "0~hidden/app-03".into(), "0~team/app".into()];
    afters.push(format!("{}~zhidden/app-00", i64::MAX));
    afters.push(format!("{}~team/app", i64::MAX));
    for n in [1, 2, 3, 50, 200] {
        for sort in ["name", "pushed"] {
            for q in ["", "app", "hidden", "a"] {
                for after in &afters {
                    let mut path = format!(
                        "/ui/?n={n}&sort={sort}&q={q}&after={}",
                        after.replace('/', "%2F")
                    );
                    // Follow "Next page" to the end.
                    for _ in 0..60 {
                        let page = bob.get(&path).await;
                        assert_eq!(page.status, 200, "{path}");
                        let body = page.body.replace(&after.replace('/', "%2F"), "");
                        let body = body.replace(after.as_str(), "");
                        assert!(!body.contains("hidden/"), "{path}: {}", page.body);
                        assert!(!body.contains("hidden%2F"), "{path}: {}", page.body);
                        for link in links(&page) {
                            let named = link.contains("hidden/") || link.contains("hidden%2F");
                            assert!(!named, "{path}: {link}");
                        }
                        match next_link(&page) {
                            Some(next) => path = next,
                            None => break,
                        }
                    }
                }
            }
        }
    }
    // Bob's one repository alone, found past the hidden ones whatever the
    // order, with its tag count: no "Next page", which would tell of others.
    for sort in ["name", "pushed"] {
        let page = bob.get(&format!("/ui/?n=1&q=app&sort={sort}")).await;
        let repos = capture(&page.body, r#"<td><a href="/ui/r/([^"]+)">"#);
        assert_eq!(repos, ["team/app"], "{}", page.body);
        assert!(
            page.body.contains(r#"<td class="num">1</td>"#),
            "{}",
            page.body
        );
        assert_eq!(next_link(&page), None, "{}", page.body);
    }
    // Alice sees all 51, in pages whose rows each carry their own summary.
    let mut alice = Browser::new(&s);
    alice.sign_in(ALICE).await;
    let mut path = "/ui/?n=20&q=app".to_string();
    let mut seen = Vec::new();
    loop {
        let page = alice.get(&path).await;
        seen.extend(capture(&page.body, r#"<td><a href="/ui/r/([^"]+)">"#));
        assert_eq!(
            capture(&page.body, r#"<td class="num">(1)</td>"#).len(),
            capture(&page.body, r#"<td><a href="/ui/r/([^"]+)">"#).len()
        );
        match next_link(&page) {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(seen.len(), 51, "{seen:?}");
    assert!(seen.is_sorted());
}

#[tokio::test]
async fn tag_pages_are_stable_across_pages_in_both_orders() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let digest = push_image(&s, "team/app", "seed", "a").await;
    let (_, _, manifest) = image("a");
    assert_eq!(sha256(&manifest), digest);
    // Many tags share a millisecond: ties are broken by name, never repeated or skipped.
    let mut expected: BTreeSet<String> = ["seed".to_string()].into();
    for n in 0..120 {
        let tag = format!("v{n:03}");
        let r = s
            .put_manifest("team/app", &tag, OCI_MANIFEST, &manifest)
            .await;
        assert_eq!(r.status(), 201);
        expected.insert(tag);
    }
    let mut browser = Browser::new(&s);
    for sort in ["pushed", "name"] {
        let mut seen = Vec::new();
        let mut path = Some(format!("/ui/r/team/app?sort={sort}&n=25"));
        let mut pages = 0;
        while let Some(p) = path {
            let page = browser.get(&p).await;
            assert_eq!(page.status, 200, "{p}");
            let rows = listed(&page);
            assert!(rows.len() <= 25);
            seen.extend(rows);
            path = next_link(&page);
            pages += 1;
        }
        assert_eq!(pages, 5, "{sort}");
        let distinct: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(distinct.len(), seen.len(), "{sort}: a row repeated");
        assert_eq!(distinct, expected, "{sort}");
        if sort == "name" {
            let mut sorted = seen.clone();
            sorted.sort();
            assert_eq!(seen, sorted);
        } else {
            // The newest tag first: the tags were pushed after "seed".
            assert_eq!(seen.last().map(String::as_str), Some("seed"));
        }
    }
    // The server-side filter.
    let filtered = browser.get("/ui/r/team/app?q=V11&sort=name").await;
    assert_eq!(
        listed(&filtered),
        (110..120).map(|n| format!("v{n}")).collect::<Vec<_>>()
    );
    // Bounded parameters.
    for bad in ["n=0", "n=100000", "sort=size", "after=nonsense"] {
        let r = browser.get(&format!("/ui/r/team/app?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    // Repositories page, both orders.
    push_image(&s, "alpha/one", "x", "b").await;
    let names = browser.get("/ui/?sort=name").await;
    assert_eq!(
        capture(&names.body, r#"<td><a href="/ui/r/([^"]+)">"#),
        ["alpha/one", "team/app"]
    );
    // Sizes as `wharf du` counts them (config, layer and manifest of each image).
    let usage = s.registry.usage().await.unwrap();
    for u in &usage {
        let shown = capture(
            &names.body,
            &format!(
                r#"href="/ui/r/{}">[^<]*</a></td><td class="num">\d+</td><td class="num">([^<]+)</td>"#,
                u.repo
            ),
        );
        assert_eq!(shown.len(), 1, "{}", names.body);
        let bytes = u.logical_bytes as f64;
        let expected = if bytes < 1024.0 {
            format!("{} B", u.logical_bytes)
        } else {
            format!("{:.1} KiB", bytes / 1024.0)
        };
        assert_eq!(shown[0], expected, "{}", u.repo);
    }
    let newest = browser.get("/ui/?sort=pushed&n=1").await;
    assert_eq!(
        capture(&newest.body, r#"<td><a href="/ui/r/([^"]+)">"#),
        ["alpha/one"]
    );
    let second = browser.get(&next_link(&newest).unwrap()).await;
    assert_eq!(
        capture(&second.body, r#"<td><a href="/ui/r/([^"]+)">"#),
        ["team/app"]
    );
}

/// An index of two platforms, a referrer (with `subject`, tagged) and an
/// untagged manifest; returns (index digest, child digests, referrer digest).
async fn push_index_and_referrer(s: &TestServer, repo: &str) -> (String, Vec<String>, String) {
    let amd = push_image(s, repo, "amd64-only", "amd").await;
    let arm = push_image(s, repo, "arm64-only", "arm").await;
    let size = |d: &str| d.len(); // sizes are not checked by the registry for children
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd, "size": size(&amd), "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": arm, "size": size(&arm), "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ],
    }))
    .unwrap();
    let r = s.put_manifest(repo, "multi", OCI_INDEX, &index).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let index_digest = sha256(&index);
    // A signature-like referrer: an empty config, artifactType, subject.
    let empty = b"{}";
    s.push_blob(repo, empty).await;
    let signature = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(empty), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(empty), "size": 2}],
        "subject": {"mediaType": OCI_INDEX, "digest": index_digest, "size": index.len()},
    }))
    .unwrap();
    let r = s
        .put_manifest(repo, "sig-tag", OCI_MANIFEST, &signature)
        .await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    (index_digest, vec![amd, arm], sha256(&signature))
}

#[tokio::test]
async fn the_image_page_shows_platforms_config_referrers_and_exact_pull_commands() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let (index, children, signature) = push_index_and_referrer(&s, "team/app").await;
    let untagged = push_image(&s, "team/app", "temporary", "u").await;
    let r = s
        .http
        .delete(s.url("/v2/team/app/manifests/temporary"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    let mut browser = Browser::new(&s);
    let tags = browser.get("/ui/r/team/app").await;
    // The referrer's tag is not a tag row; the untagged manifest is behind its filter.
    assert_eq!(listed(&tags), ["multi", "arm64-only", "amd64-only"]);
    assert!(tags.body.contains(r#"<span class="badge platform">linux/amd64</span> <span class="badge platform">linux/arm64/v8</span>"#), "{}", tags.body);
    let untagged_page = browser.get("/ui/r/team/app?show=untagged").await;
    assert_eq!(listed(&untagged_page), [untagged]);

    let host = format!("127.0.0.1:{}", s.addr.port());
    let page = browser.get("/ui/r/team/app/-/image/multi").await;
    assert_eq!(page.status, 200);
    let body = &page.body;
    assert!(body.contains(&index));
    assert!(body.contains("linux/amd64") && body.contains("linux/arm64/v8"));
    for child in &children {
        assert!(body.contains(&format!("docker pull {host}/team/app@{child}")));
    }
    for command in [
        format!("docker pull {host}/team/app:multi"),
        format!("docker pull {host}/team/app@{index}"),
        format!("podman pull --tls-verify=false {host}/team/app:multi"),
        format!(
            "skopeo copy --all --src-tls-verify=false docker://{host}/team/app@{index} oci:app"
        ),
        format!("oras pull --plain-http {host}/team/app@{index}"),
        format!("crane pull --insecure {host}/team/app@{index} app.tar"),
    ] {
        assert!(
            body.contains(&format!("<code>{command}</code>")),
            "{command}\n{body}"
        );
        assert!(
            body.contains(&format!(r#"data-copy="{command}""#)),
            "{command}"
        );
    }
    // The runner's task definition, pinned by digest, for the AWS CLI.
    assert!(
        body.contains(&format!(
            "<code>aws ecs register-task-definition --endpoint-url http://{host} --family app \\\n"
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "&quot;image&quot;:&quot;{host}/team/app@{index}&quot;"
        )),
        "{body}"
    );
    // Unique bytes: the index alone (its children are tagged, so not its own).
    assert!(body.contains("Unique bytes"), "{body}");
    assert!(body.contains("in 1 blob(s)"), "{body}");
    // The referrer, under its artifact type.
    assert!(body.contains("application/vnd.dev.cosign.artifact.sig.v1+json"));
    assert!(body.contains(&format!("/ui/r/team/app/-/image/{signature}")));

    // An image: its config summary and layers.
    let image = browser.get("/ui/r/team/app/-/image/amd64-only").await;
    for shown in [
        "SEED=amd",
        "[&quot;/bin/app&quot;,&quot;--serve&quot;]",
        "/srv",
        "8080/tcp",
        "org.opencontainers.image.title=app",
        "Layers",
        "<code title=\"COPY app-amd /bin/app\">COPY app-amd /bin/app</code>",
    ] {
        assert!(image.body.contains(shown), "{shown}\n{}", image.body);
    }
    assert!(image.body.contains(&index), "listed by its index");
    // Viewing is no pull.
    let images = s
        .registry
        .images(&"team/app".parse().unwrap())
        .await
        .unwrap();
    assert!(images.iter().all(|i| i.last_pulled_at_ms.is_none()));

    // With an external URL, commands name that host, without plain-HTTP flags.
    drop(browser);
    s.stop().await;
    let s = TestServer::start_with(dir.path(), |c| {
        c.external_url = "https://registry.example.com/".into();
    })
    .await;
    let mut browser = Browser::new(&s);
    let page = browser.get("/ui/r/team/app/-/image/multi").await;
    assert!(page.body.contains(&format!(
        "<code>podman pull registry.example.com/team/app@{index}</code>"
    )));
    assert!(
        page.body
            .contains("<code>docker pull registry.example.com/team/app:multi</code>")
    );
}

#[tokio::test]
async fn a_manifest_with_many_tags_lists_the_first_hundred_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let manifest = s.push_image("team/many", "t000", "many").await;
    for i in 1..105 {
        let r = s
            .put_manifest("team/many", &format!("t{i:03}"), OCI_MANIFEST, &manifest)
            .await;
        assert_eq!(r.status(), 201);
    }
    let mut browser = Browser::new(&s);
    let image = browser.get("/ui/r/team/many/-/image/t000").await;
    assert_eq!(image.status, 200);
    let badges = capture(&image.body, r#"<span class="badge">(t\d+)</span>"#);
    assert_eq!(badges.len(), 100, "{}", image.body);
    assert!(image.body.contains("+5 more"), "{}", image.body);
    let delete = browser.get("/ui/r/team/many/-/delete/t000").await;
    assert_eq!(delete.status, 200);
    // The tag being deleted, then the first hundred of the 104 others.
    let shared = capture(&delete.body, r#"<li><code>(t\d+)</code></li>"#);
    assert_eq!(shared.len(), 101, "{}", delete.body);
    assert!(delete.body.contains("+4 more"), "{}", delete.body);
}

#[tokio::test]
async fn referrers_whose_subject_is_missing_are_listed_on_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    // The subject is pushed after its referrers, as the spec allows.
    let (config, layer, subject) = image("later");
    let empty = b"{}";
    s.push_blob("team/app", empty).await;
    let referrer = |kind: &str| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": kind,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(empty), "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(empty), "size": 2}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": sha256(&subject), "size": subject.len()},
        }))
        .unwrap()
    };
    let (signature, sbom) = (
        referrer("application/x-sig"),
        referrer("application/x-sbom"),
    );
    let r = s
        .put_manifest("team/app", "sig", OCI_MANIFEST, &signature)
        .await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let r = s
        .put_manifest("team/app", &sha256(&sbom), OCI_MANIFEST, &sbom)
        .await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);

    let mut browser = Browser::new(&s);
    let tags = browser.get("/ui/r/team/app").await;
    assert_eq!(listed(&tags), ["sig"], "{}", tags.body);
    let untagged = browser.get("/ui/r/team/app?show=untagged").await;
    assert_eq!(listed(&untagged), [sha256(&sbom)], "{}", untagged.body);

    // Once the subject is there, they are listed under it, as referrers.
    s.push_blob("team/app", &config).await;
    s.push_blob("team/app", &layer).await;
    let r = s
        .put_manifest("team/app", "1.0", OCI_MANIFEST, &subject)
        .await;
    assert_eq!(r.status(), 201);
    let tags = browser.get("/ui/r/team/app").await;
    assert_eq!(listed(&tags), ["1.0"], "{}", tags.body);
    let untagged = browser.get("/ui/r/team/app?show=untagged").await;
    assert!(listed(&untagged).is_empty(), "{}", untagged.body);
    let page = browser.get("/ui/r/team/app/-/image/1.0").await;
    assert!(page.body.contains("application/x-sig") && page.body.contains("application/x-sbom"));
}

#[tokio::test]
async fn console_deletes_end_where_the_api_deletes_end() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    // The same content in two repositories: one changed by the console, one by /v2/.
    let mut digests = Vec::new();
    for repo in ["ui/app", "api/app"] {
        let shared = push_image(&s, repo, "v1", "same").await;
        let r = s
            .put_manifest(repo, "v1-alias", OCI_MANIFEST, &image("same").2)
            .await;
        assert_eq!(r.status(), 201);
        push_image(&s, repo, "v2", "other").await;
        digests.push(shared);
    }
    let shared = &digests[0];
    let mut browser = Browser::new(&s);

    // Untag: the confirmation names the other tag sharing the digest.
    let confirm = browser.get("/ui/r/ui/app/-/delete/v1").await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Untag v1"));
    assert!(
        confirm.body.contains("<li><code>v1-alias</code></li>"),
        "{}",
        confirm.body
    );
    let csrf = confirm.csrf();
    let done = browser
        .post(
            "/ui/r/ui/app/-/delete/v1",
            &[("csrf", &csrf), ("what", "untag")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), "/ui/r/ui/app?done=untagged");
    assert!(
        browser
            .get(done.location())
            .await
            .body
            .contains("The tag was removed")
    );
    let r = s
        .http
        .delete(s.url("/v2/api/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(v2_tags(&s, "ui/app").await, v2_tags(&s, "api/app").await);
    assert_eq!(v2_tags(&s, "ui/app").await, ["v1-alias", "v2"]);
    assert_eq!(v2_manifest_status(&s, "ui/app", shared).await, 200);

    // Without the token, nothing happens.
    let refused = browser
        .post("/ui/r/ui/app/-/delete/v1-alias", &[("what", "manifest")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(v2_tags(&s, "ui/app").await, ["v1-alias", "v2"]);

    // Delete the manifest, reached by its remaining tag.
    let confirm = browser.get("/ui/r/ui/app/-/delete/v1-alias").await;
    assert!(
        confirm
            .body
            .contains(&format!("/ui/r/ui/app/-/delete/{shared}"))
    );
    let done = browser
        .post(
            &format!("/ui/r/ui/app/-/delete/{shared}"),
            &[("csrf", &csrf), ("what", "manifest")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let r = s
        .http
        .delete(s.url(&format!("/v2/api/app/manifests/{}", digests[1])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(v2_tags(&s, "ui/app").await, v2_tags(&s, "api/app").await);
    assert_eq!(v2_tags(&s, "ui/app").await, ["v2"]);
    assert_eq!(v2_manifest_status(&s, "ui/app", shared).await, 404);
    // Deleting again: the manifest is gone, as for the API.
    let again = browser
        .post(
            &format!("/ui/r/ui/app/-/delete/{shared}"),
            &[("csrf", &csrf), ("what", "manifest")],
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    // Untagging by digest is no action.
    let bad = browser
        .post(
            &format!("/ui/r/api/app/-/delete/{}", digests[1]),
            &[("csrf", &csrf), ("what", "untag")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_first_page_of_ten_thousand_tags_renders_within_budget() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let repo: RepoName = "big/app".parse().unwrap();
    // 100 images of 100 tags each, pushed through the registry service (the
    // /v2/ handlers call the same function) to keep seeding quick.
    push_image(&s, "big/app", "seed", "seed").await;
    for image in 0..100 {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","n":{image}}}"#).into_bytes();
        s.push_blob("big/app", &config).await;
        let manifest = common::image_manifest(&config, &[b"layer for seed"]);
        let tags: Vec<Tag> = (0..100)
            .map(|t| format!("t{image:03}-{t:03}").parse().unwrap())
            .collect();
        s.registry
            .put_manifest(
                &repo,
                &Reference::Tag(tags[0].clone()),
                &tags[1..],
                Some(OCI_MANIFEST),
                manifest.into(),
            )
            .await
            .unwrap();
    }
    let mut browser = Browser::new(&s);
    let first = browser.get("/ui/r/big/app").await;
    assert_eq!(listed(&first).len(), 50);
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let page = browser.get("/ui/r/big/app").await;
        best = best.min(started.elapsed());
        assert_eq!(page.status, 200);
    }
    // The issue's budget; a debug build meets it too (about 7 ms here).
    let budget = Duration::from_millis(100);
    eprintln!("first page of 10,001 tags: {best:?}");
    assert!(best < budget, "{best:?}");
    // The last page by name, reached by cursor, is as quick.
    let started = Instant::now();
    let last = browser
        .get("/ui/r/big/app?sort=name&after=0~t099-000")
        .await;
    assert!(started.elapsed() < budget * 2);
    assert_eq!(listed(&last).len(), 50);
}

/// Webhook events received, for the delete-event test.
#[derive(Clone, Default)]
struct Hook(std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>);

async fn hook(axum::extract::State(hook): axum::extract::State<Hook>, body: String) -> StatusCode {
    let envelope: serde_json::Value = serde_json::from_str(&body).unwrap();
    let events = envelope["events"].as_array().unwrap().iter().cloned();
    hook.0.lock().unwrap().extend(events);
    StatusCode::OK
}

#[tokio::test]
async fn console_deletes_send_the_webhook_events_the_api_sends() {
    let received = Hook::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), |c| {
        c.notifications.endpoints = vec![wharf::notifications::Endpoint {
            name: "deletes".into(),
            url,
            headers: BTreeMap::new(),
            actions: vec!["delete".into()],
        }];
    })
    .await;
    let mut digests = BTreeMap::new();
    for repo in ["ui/app", "api/app"] {
        push_image(&s, repo, "v1", "same").await;
        digests.insert(repo, push_image(&s, repo, "v2", "other").await);
    }
    // The console: untag v1, delete v2's manifest; the API: the same.
    let mut browser = Browser::new(&s);
    let csrf = browser.get("/ui/r/ui/app/-/delete/v1").await.csrf();
    let r = browser
        .post(
            "/ui/r/ui/app/-/delete/v1",
            &[("csrf", &csrf), ("what", "untag")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = browser
        .post(
            "/ui/r/ui/app/-/delete/v2",
            &[("csrf", &csrf), ("what", "manifest")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    for reference in ["v1", digests["api/app"].as_str()] {
        let r = s
            .http
            .delete(s.url(&format!("/v2/api/app/manifests/{reference}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let mut events = Vec::new();
    for _ in 0..200 {
        events = received.0.lock().unwrap().clone();
        if events.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let of = |repo: &str| -> Vec<(String, String, String)> {
        events
            .iter()
            .filter(|e| e["target"]["repository"] == repo)
            .map(|e| {
                let field = |k: &str| e["target"][k].as_str().unwrap_or("").to_string();
                (
                    e["action"].as_str().unwrap().to_string(),
                    field("tag"),
                    field("digest"),
                )
            })
            .collect()
    };
    assert_eq!(of("ui/app").len(), 2, "{events:?}");
    assert_eq!(of("ui/app"), of("api/app"));
    assert_eq!(
        of("ui/app")[0],
        ("delete".into(), "v1".into(), String::new())
    );
}

#[tokio::test]
async fn under_tls_the_console_cookies_are_secure() {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let s = TestServer::start_with(dir.path(), move |c| {
        secured(c);
        c.tls.cert = cert;
        c.tls.key = key;
    })
    .await;
    let mut browser = Browser {
        http: reqwest::Client::builder()
            .tls_certs_only([
                reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap(),
            ])
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: format!("https://localhost:{}", s.addr.port()),
        cookies: BTreeMap::new(),
    };
    let form = browser.get("/ui/login").await;
    let csrf_cookie = form.headers[SET_COOKIE].to_str().unwrap().to_string();
    assert!(csrf_cookie.contains("; Secure"), "{csrf_cookie}");
    // `__Host-`: no sibling subdomain or plain-HTTP page can plant a secret.
    assert!(
        csrf_cookie.starts_with("__Host-wharf_csrf="),
        "{csrf_cookie}"
    );
    assert!(csrf_cookie.contains("; Path=/;"), "{csrf_cookie}");
    let signed = browser
        .post(
            "/ui/login",
            &[
                ("csrf", &form.csrf()),
                ("username", ALICE.0),
                ("password", ALICE.1),
            ],
        )
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER);
    let cookies: Vec<&str> = signed
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for cookie in cookies {
        assert!(
            cookie.contains("; Secure") && cookie.contains("HttpOnly"),
            "{cookie}"
        );
        assert!(cookie.starts_with("__Host-wharf_"), "{cookie}");
    }
    let home = browser.get("/ui/").await;
    assert_eq!(home.status, 200);
    // The commands name the HTTPS host, without plain-HTTP flags.
    push_tls_image(&browser).await;
    let image = browser.get("/ui/r/team/app/-/image/v1").await;
    let host = format!("localhost:{}", s.addr.port());
    assert!(
        image
            .body
            .contains(&format!("<code>oras pull {host}/team/app@")),
        "{}",
        image.body
    );
}

/// Pushes one image as alice over the TLS client of `browser`.
async fn push_tls_image(browser: &Browser) {
    let (config, layer, manifest) = image("tls");
    for blob in [&config, &layer] {
        let r = browser
            .http
            .post(format!(
                "{}/v2/team/app/blobs/uploads/?digest={}",
                browser.base,
                sha256(blob)
            ))
            .basic_auth(ALICE.0, Some(ALICE.1))
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = browser
        .http
        .put(format!("{}/v2/team/app/manifests/v1", browser.base))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .header("content-type", OCI_MANIFEST)
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn anonymous_visitors_stored_users_and_access_tokens_see_what_they_may_pull() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), |c| {
        secured(c);
        c.auth.anonymous_pull = vec!["public/*".into()];
        c.auth.rules.push(Rule {
            who: vec!["carol".into()],
            repositories: vec!["team/*".into()],
            actions: vec!["pull".into()],
            catalog: false,
        });
    })
    .await;
    for repo in ["public/site", "team/app"] {
        push_as_alice(&s, repo).await;
    }
    // Not signed in: what anonymous pulls may pull, and a way to sign in.
    let mut visitor = Browser::new(&s);
    let home = visitor.get("/ui/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains(r#"href="/ui/r/public/site""#));
    assert!(!home.body.contains("team/app"));
    assert!(home.body.contains(r#"<a href="/ui/login">Sign in</a>"#));
    assert_eq!(visitor.get("/ui/r/team/app").await.status, 404);
    assert_eq!(visitor.get("/ui/r/public/site").await.status, 200);

    // A stored user (`wharf user add`): a new password ends the session at once.
    let store = wharf::storage::SqlMetadata::open(&s.database)
        .await
        .unwrap();
    wharf::admin::add_user(
        &store,
        "carol",
        "carol-password-1",
        vec![],
        wharf::admin::By::unrecorded(),
    )
    .await
    .unwrap();
    let mut carol = Browser::new(&s);
    carol.sign_in(("carol", "carol-password-1")).await;
    assert_eq!(carol.get("/ui/r/team/app").await.status, 200);
    wharf::admin::set_password(
        &store,
        "carol",
        "carol-password-2",
        wharf::admin::By::unrecorded(),
    )
    .await
    .unwrap();
    let after = carol.get("/ui/").await;
    assert!(!after.body.contains("Signed in as"), "{}", after.body);
    assert_eq!(carol.get("/ui/r/team/app").await.status, 404);

    // An access token signs in too, limited to its scopes, until revoked.
    let secret = common::create_token(&store, "ci", &["repository:team/*:pull"]).await;
    let mut robot = Browser::new(&s);
    robot.sign_in(("robot", &secret)).await;
    let home = robot.get("/ui/").await;
    assert!(home.body.contains("Signed in as <strong>token:ci</strong>"));
    assert!(home.body.contains(r#"href="/ui/r/team/app""#));
    assert!(
        !robot
            .get("/ui/r/team/app")
            .await
            .body
            .contains("/-/delete/")
    );
    wharf::admin::revoke_token(&store, "ci", wharf::admin::By::unrecorded())
        .await
        .unwrap();
    assert!(!robot.get("/ui/").await.body.contains("Signed in as"));
    assert_eq!(robot.get("/ui/r/team/app").await.status, 404);
}

#[tokio::test]
async fn repository_policies_widen_and_narrow_what_the_console_shows_as_on_v2() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), secured).await;
    for repo in ["team/app", "team/web", "secret/db"] {
        push_as_alice(&s, repo).await;
    }
    let policy = |effect: &str| {
        serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Effect": effect, "Principal": {"AWS": "bob"},
             "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]}]})
        .to_string()
    };
    let policies = &s.auth.repository_policies;
    policies
        .set(&"team/web".parse().unwrap(), Some(&policy("Deny")))
        .await
        .unwrap();
    policies
        .set(&"secret/db".parse().unwrap(), Some(&policy("Allow")))
        .await
        .unwrap();
    let mut bob = Browser::new(&s);
    bob.sign_in(BOB).await;
    let home = bob.get("/ui/?sort=name").await;
    let listed = capture(&home.body, r#"<td><a href="/ui/r/([^"]+)">"#);
    assert_eq!(listed, ["secret/db", "team/app"]);
    // The console and /v2/ agree, repository by repository.
    for (repo, visible) in [("team/app", true), ("team/web", false), ("secret/db", true)] {
        let page = bob.get(&format!("/ui/r/{repo}")).await;
        assert_eq!(page.status == 200, visible, "{repo}: {}", page.status);
        let pull = s
            .http
            .get(s.url(&format!("/v2/{repo}/manifests/latest")))
            .basic_auth(BOB.0, Some(BOB.1))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(
            pull.status() == 200,
            visible,
            "{repo}: /v2/ {}",
            pull.status()
        );
    }
}
