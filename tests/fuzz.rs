//! Property-based fuzzing of everything that parses untrusted input: `/v2/`
//! routes, repository names, tags and digests, manifests, IAM repository
//! policies, lifecycle policies, the SigV4 `Authorization` header and its
//! canonical request, and ECS task definitions; then the same kinds of input
//! over the real router (`/v2/`, `POST /` and the `/ui/` console). Every property asserts no
//! panic and a spec-shaped answer, and where one exists a round trip.
//!
//! Generators are structure-aware (near-valid digests, JSON documents with
//! the right fields holding right-ish or wrong values) so the cases get past
//! the first JSON error. `PROPTEST_CASES` sets the number of cases of every
//! property (each has a default sized for CI); each property writes how many
//! cases ran and how they ended to stderr, past the test harness's capture.
//! Under `WHARF_TEST_POSTGRES` the HTTP properties run on PostgreSQL, which
//! refuses some strings SQLite keeps.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code aborts the test on failure"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::io::Write as _;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use http::{Method, Request, StatusCode};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use wharf::auth::Scope;
use wharf::auth::iam::{Decision, RepositoryPolicy};
use wharf::auth::policy::Principal;
use wharf::aws::sigv4::{SigError, parse_authorization};
use wharf::config::Config;
use wharf::oci::api::Route;
use wharf::oci::manifest::{self, Kind, ManifestError};
use wharf::oci::{Algorithm, Digest, Reference, RepoName, Tag};
use wharf::registry::lifecycle::{Candidate, LifecyclePolicy};

// ---------------------------------------------------------------------------
// The harness: bounded runs, counted and described.

/// Cases of a property: `PROPTEST_CASES`, else the property's default.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How the cases of one property ended, by outcome label.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<String, u32>>);

impl Tally {
    fn note(&self, outcome: impl Into<String>) {
        *self.0.lock().unwrap().entry(outcome.into()).or_default() += 1;
    }
}

/// Runs `test` on `default_cases` (or `PROPTEST_CASES`) inputs from
/// `strategy`; reports the count, the outcomes and the time.
fn check<S>(
    name: &str,
    default_cases: u32,
    strategy: S,
    test: impl Fn(S::Value, &Tally) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let config = ProptestConfig {
        cases: cases(default_cases),
        // Found cases become regression tests in the code, not files.
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let ran = AtomicU32::new(0);
    let tally = Tally::default();
    let start = Instant::now();
    let result = TestRunner::new(config).run(&strategy, |value| {
        ran.fetch_add(1, Ordering::Relaxed);
        test(value, &tally)
    });
    let outcomes: Vec<String> = tally
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let line = format!(
        "fuzz {name}: {} cases in {:.1} s ({})\n",
        ran.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
        outcomes.join(", ")
    );
    // Past the harness's capture, so CI logs show the counts.
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

// ---------------------------------------------------------------------------
// Generators shared by the properties.

/// Strings that break parsers: separators, escapes, controls, non-ASCII, long runs.
fn weird() -> BoxedStrategy<String> {
    prop_oneof![
        3 => any::<String>(),
        3 => "[ -~]{0,24}",
        2 => select(vec![
            "", ".", "..", "/", "//", ":", "@", "*", "%", "%2F", "%2f", "%00", "%zz", "\0", " ",
            "\t", "\u{202e}", "ä", "😀", "a/../b", "..%2F", "\\", "\"", "'", "{", "}", ";", ",",
            "=", "+", "?", "#", "~", "-", "_", "__", "___", "-a", "a-", "A", "null", "true",
            "\u{feff}", "\r\n",
        ])
        .prop_map(String::from),
        1 => (select(vec!["a", "/", "*", ":", "-", "0"]), 64usize..400)
            .prop_map(|(s, n)| s.repeat(n)),
    ]
    .boxed()
}

/// JSON numbers at the edges of every integer type, and some that are not integers.
fn json_number() -> BoxedStrategy<Value> {
    prop_oneof![
        (-3i64..300).prop_map(Value::from),
        select(vec![
            json!(0),
            json!(-1),
            json!(i32::MAX),
            json!(i32::MIN),
            json!(i64::from(i32::MAX) + 1),
            json!(u32::MAX),
            json!(i64::MAX),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(1.5),
            json!(-0.0),
            json!(1e300),
            json!(2.0),
        ]),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
    ]
    .boxed()
}

fn json_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        json_number(),
        weird().prop_map(Value::from),
    ]
    .boxed()
}

/// Any JSON value, nested a few levels.
fn json_any() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..5).prop_map(Value::Array),
                btree_map(weird(), inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A field that mostly holds a value of the right shape, sometimes any JSON,
/// sometimes nothing.
fn field(typed: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        16 => typed.prop_map(Some),
        1 => json_any().prop_map(Some),
        2 => Just(None),
    ]
    .boxed()
}

/// A JSON object from its fields (absent ones left out), sometimes with an unknown key.
fn object(fields: Vec<(&'static str, BoxedStrategy<Option<Value>>)>) -> BoxedStrategy<Value> {
    let (names, values): (Vec<&'static str>, Vec<_>) = fields.into_iter().unzip();
    let extra = prop_oneof![
        9 => Just(None),
        1 => (weird(), json_any()).prop_map(Some),
    ];
    (values, extra)
        .prop_map(move |(values, extra)| {
            let mut object = serde_json::Map::new();
            for (name, value) in names.iter().zip(values) {
                if let Some(value) = value {
                    object.insert((*name).to_string(), value);
                }
            }
            if let Some((k, v)) = extra {
                object.insert(k, v);
            }
            Value::Object(object)
        })
        .boxed()
}

fn strings_of(items: Vec<&'static str>) -> BoxedStrategy<Value> {
    select(items).prop_map(Value::from).boxed()
}

/// Document text: serialized JSON, sometimes damaged (cut, a byte changed).
fn text_of(doc: BoxedStrategy<Value>) -> BoxedStrategy<String> {
    prop_oneof![
        8 => doc.clone().prop_map(|v| v.to_string()),
        1 => (doc, any::<prop::sample::Index>(), weird()).prop_map(|(v, at, junk)| {
            let mut text = v.to_string();
            let mut cut = at.index(text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.insert_str(cut, &junk);
            text
        }),
        1 => weird(),
    ]
    .boxed()
}

/// One change to a JSON document, at the node an index picks.
#[derive(Debug, Clone)]
enum Mutation {
    /// A value of the node's own type: a number for a number, a string for a string.
    Tweak(Value, String),
    Remove,
    Replace(Value),
    AddKey(String, Value),
    Duplicate,
}

fn mutation() -> BoxedStrategy<Mutation> {
    prop_oneof![
        4 => (json_number(), prop_oneof![weird(), "[ -~]{0,8}"]).prop_map(|(n, s)| Mutation::Tweak(n, s)),
        2 => Just(Mutation::Remove),
        4 => prop_oneof![json_leaf(), json_any(), json_number()].prop_map(Mutation::Replace),
        1 => (weird(), json_leaf()).prop_map(|(k, v)| Mutation::AddKey(k, v)),
        1 => Just(Mutation::Duplicate),
    ]
    .boxed()
}

/// JSON pointers of every node of `doc`, the root first.
fn pointers(doc: &Value, at: String, out: &mut Vec<String>) {
    match doc {
        Value::Object(map) => {
            out.push(at.clone());
            for (k, v) in map {
                let k = k.replace('~', "~0").replace('/', "~1");
                pointers(v, format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            out.push(at.clone());
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => out.push(at),
    }
}

fn apply(doc: &mut Value, at: prop::sample::Index, m: Mutation) {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    let path = all[at.index(all.len())].clone();
    let (parent, last) = match path.rsplit_once('/') {
        Some((parent, last)) => (
            parent.to_string(),
            last.replace("~1", "/").replace("~0", "~"),
        ),
        None => (String::new(), String::new()),
    };
    match m {
        Mutation::Tweak(number, string) => match doc.pointer_mut(&path) {
            Some(node @ Value::Number(_)) => *node = number,
            Some(node @ Value::String(_)) => *node = Value::String(string),
            Some(Value::Bool(b)) => *b = !*b,
            Some(Value::Array(items)) => items.clear(),
            _ => {}
        },
        Mutation::Replace(v) => {
            if let Some(node) = doc.pointer_mut(&path) {
                *node = v;
            }
        }
        Mutation::AddKey(k, v) => match doc.pointer_mut(&path) {
            Some(Value::Object(map)) => {
                map.insert(k, v);
            }
            Some(Value::Array(items)) => items.push(v),
            _ => {}
        },
        Mutation::Remove | Mutation::Duplicate if path.is_empty() => {}
        Mutation::Remove => match doc.pointer_mut(&parent) {
            Some(Value::Object(map)) => {
                map.remove(&last);
            }
            Some(Value::Array(items)) => {
                if let Ok(i) = last.parse::<usize>() {
                    items.remove(i);
                }
            }
            _ => {}
        },
        Mutation::Duplicate => {
            if let Some(Value::Array(items)) = doc.pointer_mut(&parent)
                && let Ok(i) = last.parse::<usize>()
            {
                let copy = items[i].clone();
                items.push(copy);
            }
        }
    }
}

/// Valid documents, and the same with one to three changes anywhere in them:
/// the changes meet the checks that sit behind a successful parse.
fn mutated(valid: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![
        1 => valid.clone(),
        3 => (valid, vec((any::<prop::sample::Index>(), mutation()), 1..4)).prop_map(|(mut doc, changes)| {
            for (at, m) in changes {
                apply(&mut doc, at, m);
            }
            doc
        }),
    ]
    .boxed()
}

const SEED_REPO: &str = "fuzz/seed";
const ZERO: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn hex_string(alphabet: &'static str, len: std::ops::Range<usize>) -> BoxedStrategy<String> {
    let chars: Vec<char> = alphabet.chars().collect();
    vec(select(chars), len)
        .prop_map(|c| c.into_iter().collect())
        .boxed()
}

/// Valid digests of random content, or the registry's seeded ones.
fn valid_digest() -> BoxedStrategy<String> {
    prop_oneof![
        (any::<bool>(), vec(any::<u8>(), 0..16)).prop_map(|(long, bytes)| {
            let alg = if long {
                Algorithm::Sha512
            } else {
                Algorithm::Sha256
            };
            Digest::compute(alg, &bytes).to_string()
        }),
        Just(common::sha256(SEED_BLOB)),
        Just(common::sha256(SEED_CONFIG)),
        Just(common::sha256(&common::image_manifest(
            SEED_CONFIG,
            &[SEED_BLOB]
        ))),
        Just(ZERO.to_string()),
    ]
    .boxed()
}

/// Digest-like strings: right and wrong algorithms, separators and encodings.
fn near_digest() -> BoxedStrategy<String> {
    let alg = prop_oneof![
        4 => select(vec!["sha256", "sha512"]).prop_map(String::from),
        1 => select(vec![
            "", "SHA256", "Sha256", "sha384", "md5", "sha256+b64u", "a.b_c-d", "+x", "x+",
            "sha256 ", "blake3", "sha 256",
        ]).prop_map(String::from),
        1 => "[a-z0-9+._-]{1,8}",
    ];
    let sep = prop_oneof![8 => Just(":"), 1 => select(vec!["", "::", "=", ": ", "%3A"])];
    let len = prop_oneof![
        select(vec![0usize, 1, 63, 64, 65, 127, 128, 129]),
        0usize..140,
    ];
    let encoded = (
        len,
        prop_oneof![
            6 => Just("0123456789abcdef"),
            1 => Just("0123456789abcdefABCDEF"),
            1 => Just("0123456789abcdefg-_.~=+/ "),
        ],
    )
        .prop_flat_map(|(n, alphabet)| hex_string(alphabet, n..n + 1));
    prop_oneof![
        3 => valid_digest(),
        6 => (alg, sep, encoded).prop_map(|(a, s, e)| format!("{a}{s}{e}")),
        1 => weird(),
    ]
    .boxed()
}

/// One `[a-z0-9]+` run.
fn alnum_run() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-z0-9]{1,6}",
        1 => select(vec!["blobs", "manifests", "tags", "list", "uploads", "referrers", "v2"]).prop_map(String::from),
    ]
    .boxed()
}

/// One path component of the spec's grammar: runs joined by `.`, `_`, `__` or dashes.
fn name_component() -> BoxedStrategy<String> {
    (
        alnum_run(),
        vec(
            (select(vec![".", "_", "__", "-", "--", "---"]), alnum_run()),
            0..3,
        ),
    )
        .prop_map(|(first, rest)| {
            let mut s = first;
            for (sep, run) in rest {
                s.push_str(sep);
                s.push_str(&run);
            }
            s
        })
        .boxed()
}

/// A repository name built from the grammar (valid unless over 255 bytes).
fn grammar_name() -> BoxedStrategy<String> {
    prop_oneof![
        8 => vec(name_component(), 1..4).prop_map(|c| c.join("/")),
        1 => Just(SEED_REPO.to_string()),
        1 => (name_component(), 60usize..70).prop_map(|(c, n)| vec![c; n].join("/")),
    ]
    .boxed()
}

/// A grammar name with one character changed, inserted or removed.
fn near_name() -> BoxedStrategy<String> {
    prop_oneof![
        3 => grammar_name(),
        3 => (grammar_name(), any::<prop::sample::Index>(), weird(), 0usize..3).prop_map(|(n, at, junk, op)| {
            let chars: Vec<char> = n.chars().collect();
            let i = at.index(chars.len());
            let mut out: String = chars[..i].iter().collect();
            match op {
                0 => out.push_str(&junk),
                1 => {}
                _ => out.push(junk.chars().next().unwrap_or('A')),
            }
            let skip = usize::from(op != 0);
            out.extend(chars.iter().skip(i + skip));
            out
        }),
        1 => weird(),
    ]
    .boxed()
}

/// Tags: valid ones of every length class, and near misses.
fn near_tag() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,20}",
        1 => "[a-zA-Z0-9_][a-zA-Z0-9._-]{126,128}",
        1 => Just("seed".to_string()),
        1 => Just(".INVALID_MANIFEST_NAME".to_string()),
        2 => "[a-zA-Z0-9._:@/+ -]{0,12}",
        1 => weird(),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// Names, tags, digests and routes.

/// The spec's repository-name grammar, written apart from Wharf's parser:
/// components of alphanumeric runs, each pair joined by `.`, `_`, `__` or dashes.
fn name_oracle(s: &str) -> bool {
    fn component(c: &str) -> bool {
        let mut runs = Vec::new();
        let mut current = String::new();
        let mut alnum = None;
        for ch in c.chars() {
            let a = ch.is_ascii_lowercase() || ch.is_ascii_digit();
            if alnum.is_some_and(|prev| prev != a) {
                runs.push((alnum == Some(true), std::mem::take(&mut current)));
            }
            alnum = Some(a);
            current.push(ch);
        }
        if let Some(a) = alnum {
            runs.push((a, current));
        }
        !runs.is_empty()
            && runs.first().is_some_and(|r| r.0)
            && runs.last().is_some_and(|r| r.0)
            && runs.iter().all(|(a, run)| {
                *a || run == "." || run == "_" || run == "__" || run.chars().all(|c| c == '-')
            })
    }
    s.len() <= 255 && s.split('/').all(component)
}

fn tag_oracle(s: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = s.chars();
    chars.next().is_some_and(word)
        && s.len() <= 128
        && chars.all(|c| word(c) || c == '.' || c == '-')
}

fn digest_oracle(s: &str) -> bool {
    let ok = |hex: &str, len: usize| {
        hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    match s.split_once(':') {
        Some(("sha256", hex)) => ok(hex, 64),
        Some(("sha512", hex)) => ok(hex, 128),
        _ => false,
    }
}

#[test]
fn names_tags_and_digests() {
    let input = prop_oneof![
        near_name().prop_map(|s| ("name", s)),
        near_tag().prop_map(|s| ("tag", s)),
        near_digest().prop_map(|s| ("digest", s)),
    ];
    check("names_tags_digests", 20_000, input, |(kind, s), tally| {
        let (parsed, expected, shown) = match kind {
            "name" => {
                let r = RepoName::from_str(&s);
                let shown = r.as_ref().map(|n| n.to_string()).ok();
                (r.is_ok(), name_oracle(&s), shown)
            }
            "tag" => {
                let r = Tag::from_str(&s);
                let shown = r.as_ref().map(|t| t.to_string()).ok();
                (r.is_ok(), tag_oracle(&s), shown)
            }
            _ => {
                let r = Digest::from_str(&s);
                // JSON documents carry digests through serde: the same verdict.
                let via_serde = serde_json::from_value::<Digest>(json!(s));
                prop_assert_eq!(r.is_ok(), via_serde.is_ok(), "serde and FromStr disagree");
                let shown = r.as_ref().map(|d| d.to_string()).ok();
                if let Ok(d) = &r {
                    let len = match d.algorithm() {
                        Algorithm::Sha256 => 64,
                        Algorithm::Sha512 => 128,
                    };
                    prop_assert_eq!(d.hex().len(), len);
                }
                (r.is_ok(), digest_oracle(&s), shown)
            }
        };
        prop_assert_eq!(
            parsed,
            expected,
            "{} {:?}: parser and grammar disagree",
            kind,
            s
        );
        if let Some(shown) = shown {
            prop_assert_eq!(&shown, &s, "display does not round-trip");
        }
        tally.note(format!("{kind} {}", if parsed { "ok" } else { "refused" }));
        Ok(())
    });
}

/// A `/v2/` path as a client might send it, with what the parser should make of it.
#[derive(Debug, Clone)]
enum PathShape {
    Base,
    Catalog,
    Tags(String),
    Manifest(String, String),
    Blob(String, String),
    Uploads(String, bool),
    Upload(String, String),
    Referrers(String, String),
    Raw(Vec<String>),
}

impl PathShape {
    fn render(&self) -> String {
        match self {
            PathShape::Base => String::new(),
            PathShape::Catalog => "_catalog".into(),
            PathShape::Tags(n) => format!("{n}/tags/list"),
            PathShape::Manifest(n, r) => format!("{n}/manifests/{r}"),
            PathShape::Blob(n, d) => format!("{n}/blobs/{d}"),
            PathShape::Uploads(n, slash) => {
                format!("{n}/blobs/uploads{}", if *slash { "/" } else { "" })
            }
            PathShape::Upload(n, id) => format!("{n}/blobs/uploads/{id}"),
            PathShape::Referrers(n, d) => format!("{n}/referrers/{d}"),
            PathShape::Raw(segments) => segments.join("/"),
        }
    }
}

fn upload_id() -> BoxedStrategy<String> {
    prop_oneof![
        3 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).simple().to_string()),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).urn().to_string()),
        2 => weird(),
    ]
    .boxed()
}

fn path_shape() -> BoxedStrategy<PathShape> {
    let keyword = select(vec![
        "blobs",
        "manifests",
        "tags",
        "list",
        "uploads",
        "referrers",
        "_catalog",
        "",
        "v2",
    ])
    .prop_map(String::from);
    prop_oneof![
        1 => Just(PathShape::Base),
        1 => Just(PathShape::Catalog),
        2 => near_name().prop_map(PathShape::Tags),
        4 => (near_name(), prop_oneof![near_tag(), near_digest()]).prop_map(|(n, r)| PathShape::Manifest(n, r)),
        3 => (near_name(), near_digest()).prop_map(|(n, d)| PathShape::Blob(n, d)),
        2 => (near_name(), any::<bool>()).prop_map(|(n, s)| PathShape::Uploads(n, s)),
        2 => (near_name(), upload_id()).prop_map(|(n, id)| PathShape::Upload(n, id)),
        2 => (near_name(), near_digest()).prop_map(|(n, d)| PathShape::Referrers(n, d)),
        2 => vec(prop_oneof![keyword, near_name(), near_digest()], 0..6).prop_map(PathShape::Raw),
    ]
    .boxed()
}

/// The path of a parsed route, for the round trip.
fn route_path(route: &Route) -> String {
    match route {
        Route::Base => String::new(),
        Route::Catalog => "_catalog".into(),
        Route::Tags(n) => format!("{n}/tags/list"),
        Route::Manifest(n, r) => format!("{n}/manifests/{r}"),
        // Any reference that is neither a digest nor a valid tag.
        Route::InvalidTag(n) => format!("{n}/manifests/.INVALID_MANIFEST_NAME"),
        Route::Blob(n, d) => format!("{n}/blobs/{d}"),
        Route::Uploads(n) => format!("{n}/blobs/uploads/"),
        Route::Upload(n, id) => format!("{n}/blobs/uploads/{id}"),
        Route::Referrers(n, d) => format!("{n}/referrers/{d}"),
    }
}

/// Every code the `/v2/` API may answer with, and its status.
const OCI_CODES: [(&str, u16); 24] = [
    ("BLOB_UNKNOWN", 404),
    ("BLOB_UPLOAD_INVALID", 400),
    ("BLOB_UPLOAD_INVALID", 416),
    ("BLOB_UPLOAD_UNKNOWN", 404),
    ("DIGEST_INVALID", 400),
    ("MANIFEST_BLOB_UNKNOWN", 400),
    ("MANIFEST_INVALID", 400),
    ("MANIFEST_UNKNOWN", 404),
    ("NAME_INVALID", 400),
    ("NAME_UNKNOWN", 404),
    ("SIZE_INVALID", 400),
    ("SIZE_INVALID", 413),
    ("UNAUTHORIZED", 401),
    ("DENIED", 403),
    ("DENIED", 405),
    ("UNSUPPORTED", 400),
    ("UNSUPPORTED", 405),
    ("UNSUPPORTED", 415),
    ("TOOMANYREQUESTS", 429),
    ("RANGE_INVALID", 416),
    ("NOT_FOUND", 404),
    ("TAG_INVALID", 400),
    ("CONTENT_RANGE_INVALID", 416),
    ("UNAVAILABLE", 503),
];

#[test]
fn v2_routes() {
    check("v2_routes", 20_000, path_shape(), |shape, tally| {
        let path = shape.render();
        let parsed = Route::parse(&path);
        // What the shape says, where the path is not ambiguous.
        let clean = |s: &str| !s.contains('/');
        let keyword = |s: &str| matches!(s, "uploads" | "list" | "");
        let name_ok = |n: &str| name_oracle(n);
        match (&shape, &parsed) {
            (PathShape::Base, r) => prop_assert_eq!(r.as_ref().ok(), Some(&Route::Base)),
            (PathShape::Catalog, r) => prop_assert_eq!(r.as_ref().ok(), Some(&Route::Catalog)),
            (PathShape::Tags(n), r) if clean_name(n) => match r {
                Ok(Route::Tags(got)) => prop_assert_eq!(got.as_str(), n.as_str()),
                Ok(other) => prop_assert!(false, "parsed as {:?}", other),
                Err(e) => {
                    prop_assert!(!name_ok(n), "valid name refused: {:?}", e);
                    prop_assert_eq!(e.code.wire().0, "NAME_INVALID");
                }
            },
            (PathShape::Manifest(n, reference), r) if clean(reference) && clean_name(n) => {
                let valid_ref = if reference.contains(':') {
                    digest_oracle(reference)
                } else {
                    tag_oracle(reference)
                };
                match r {
                    Ok(Route::InvalidTag(got)) => {
                        // A tag that cannot exist: routed, to answer as unknown
                        // (reads) or invalid (a push).
                        prop_assert!(name_ok(n) && !valid_ref && !reference.contains(':'));
                        prop_assert_eq!(got.as_str(), n.as_str());
                    }
                    Ok(Route::Manifest(got, gr)) => {
                        prop_assert!(name_ok(n) && valid_ref);
                        prop_assert_eq!(got.as_str(), n.as_str());
                        prop_assert_eq!(&gr.to_string(), reference);
                        let is_digest = matches!(gr, Reference::Digest(_));
                        prop_assert_eq!(is_digest, reference.contains(':'));
                    }
                    Ok(other) => prop_assert!(false, "parsed as {:?}", other),
                    Err(e) => {
                        prop_assert!(!(name_ok(n) && valid_ref), "refused: {:?}", e);
                        let code = e.code.wire().0;
                        if !name_ok(n) {
                            prop_assert_eq!(code, "NAME_INVALID");
                        } else {
                            prop_assert!(reference.contains(':'), "invalid tag refused: {}", code);
                            prop_assert_eq!(code, "DIGEST_INVALID");
                        }
                    }
                }
            }
            (PathShape::Blob(n, d) | PathShape::Referrers(n, d), r)
                if clean(d) && !keyword(d) && clean_name(n) =>
            {
                match r {
                    Ok(Route::Blob(got, gd) | Route::Referrers(got, gd)) => {
                        prop_assert!(name_ok(n) && digest_oracle(d));
                        prop_assert_eq!(got.as_str(), n.as_str());
                        prop_assert_eq!(&gd.to_string(), d);
                    }
                    Ok(other) => prop_assert!(false, "parsed as {:?}", other),
                    Err(e) => {
                        prop_assert!(!(name_ok(n) && digest_oracle(d)), "refused: {:?}", e);
                        let want = if name_ok(n) {
                            "DIGEST_INVALID"
                        } else {
                            "NAME_INVALID"
                        };
                        prop_assert_eq!(e.code.wire().0, want);
                    }
                }
            }
            (PathShape::Uploads(n, _), r) if clean_name(n) => match r {
                Ok(Route::Uploads(got)) => prop_assert_eq!(got.as_str(), n.as_str()),
                Ok(other) => prop_assert!(false, "parsed as {:?}", other),
                Err(e) => {
                    prop_assert!(!name_ok(n));
                    prop_assert_eq!(e.code.wire().0, "NAME_INVALID");
                }
            },
            (PathShape::Upload(n, id), r) if clean(id) && !id.is_empty() && clean_name(n) => {
                let uuid = uuid::Uuid::parse_str(id).ok();
                match r {
                    Ok(Route::Upload(got, gid)) => {
                        prop_assert!(name_ok(n));
                        prop_assert_eq!(got.as_str(), n.as_str());
                        prop_assert_eq!(Some(*gid), uuid);
                    }
                    Ok(other) => prop_assert!(false, "parsed as {:?}", other),
                    Err(e) => {
                        let want = if !name_ok(n) {
                            "NAME_INVALID"
                        } else {
                            prop_assert!(uuid.is_none(), "valid upload id refused");
                            "BLOB_UPLOAD_UNKNOWN"
                        };
                        prop_assert_eq!(e.code.wire().0, want);
                    }
                }
            }
            _ => {}
        }
        match &parsed {
            Ok(route) => {
                // The route's own path parses back to it.
                let again = Route::parse(&route_path(route));
                prop_assert_eq!(again.as_ref().ok(), Some(route));
                tally.note(format!("ok {}", route.kind()));
            }
            Err(e) => {
                let (code, status) = e.code.wire();
                prop_assert!(
                    OCI_CODES.contains(&(code, status.as_u16())) && status.is_client_error(),
                    "{} {}",
                    code,
                    status
                );
                tally.note(code);
            }
        }
        Ok(())
    });
}

/// A name that stays one name inside a path: no slash-free junk that makes
/// its own segments look like endpoint keywords.
fn clean_name(n: &str) -> bool {
    !n.split('/').any(|s| {
        matches!(
            s,
            "" | "blobs" | "manifests" | "tags" | "list" | "uploads" | "referrers"
        )
    })
}

// ---------------------------------------------------------------------------
// Manifests.

const SEED_BLOB: &[u8] = b"seed layer";
const SEED_CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux"}"#;

fn media_type() -> BoxedStrategy<Value> {
    strings_of(vec![
        manifest::OCI_MANIFEST,
        manifest::OCI_INDEX,
        manifest::DOCKER_MANIFEST,
        manifest::DOCKER_MANIFEST_LIST,
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/json",
        "",
        "APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON",
    ])
}

fn descriptor() -> BoxedStrategy<Value> {
    object(vec![
        ("mediaType", field(media_type())),
        (
            "digest",
            field(prop_oneof![3 => valid_digest(), 1 => near_digest()].prop_map(Value::from)),
        ),
        (
            "size",
            field(prop_oneof![3 => (0i64..1 << 40).prop_map(Value::from), 1 => json_number()]),
        ),
        (
            "artifactType",
            field(prop_oneof![media_type(), weird().prop_map(Value::from)]),
        ),
        (
            "annotations",
            field(btree_map(weird(), weird(), 0..3).prop_map(|m| json!(m))),
        ),
        ("urls", field(vec(weird(), 0..2).prop_map(|u| json!(u)))),
        (
            "platform",
            field(Just(json!({"architecture": "amd64", "os": "linux"}))),
        ),
    ])
}

fn manifest_doc() -> BoxedStrategy<Value> {
    let schema = prop_oneof![
        6 => Just(json!(2)),
        1 => select(vec![json!(1), json!("2"), json!(2.0), json!(3), json!(null)]),
    ];
    object(vec![
        ("schemaVersion", field(schema)),
        ("mediaType", field(media_type())),
        ("artifactType", field(media_type())),
        ("config", field(descriptor())),
        (
            "layers",
            field(vec(descriptor(), 0..4).prop_map(Value::Array)),
        ),
        (
            "manifests",
            field(vec(descriptor(), 0..4).prop_map(Value::Array)),
        ),
        ("subject", field(descriptor())),
        (
            "annotations",
            field(btree_map(weird(), weird(), 0..3).prop_map(|m| json!(m))),
        ),
    ])
}

/// A manifest that must be accepted, with the blobs and children it names.
#[derive(Debug, Clone)]
struct ValidManifest {
    content_type: Option<String>,
    body: Vec<u8>,
    blobs: Vec<String>,
    children: Vec<String>,
}

fn valid_manifest() -> BoxedStrategy<ValidManifest> {
    let layer = (
        select(vec![
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.nondistributable.v1.tar",
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        ]),
        valid_digest(),
        0u64..1 << 40,
    );
    let image = (
        select(vec![manifest::OCI_MANIFEST, manifest::DOCKER_MANIFEST]),
        any::<bool>(),
        valid_digest(),
        vec(layer, 0..4),
    )
        .prop_map(|(mt, in_header, config, layers)| {
            let doc = json!({
                "schemaVersion": 2,
                "mediaType": mt,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
                "layers": layers.iter().map(|(m, d, s)| json!({"mediaType": m, "digest": d, "size": s})).collect::<Vec<_>>(),
            });
            let mut blobs = vec![config];
            blobs.extend(
                layers
                    .iter()
                    .filter(|(m, _, _)| m.ends_with("+gzip") && !m.contains("foreign"))
                    .map(|(_, d, _)| d.clone()),
            );
            ValidManifest {
                content_type: in_header.then(|| format!("{mt}; charset=utf-8")),
                body: serde_json::to_vec(&doc).unwrap(),
                blobs,
                children: vec![],
            }
        });
    let index = (
        select(vec![manifest::OCI_INDEX, manifest::DOCKER_MANIFEST_LIST]),
        any::<bool>(),
        vec(valid_digest(), 0..4),
    )
        .prop_map(|(mt, in_header, children)| {
            let doc = json!({
                "schemaVersion": 2,
                "mediaType": mt,
                "manifests": children.iter().map(|d| json!({"mediaType": manifest::OCI_MANIFEST, "digest": d, "size": 7})).collect::<Vec<_>>(),
            });
            ValidManifest {
                content_type: in_header.then(|| mt.to_string()),
                body: serde_json::to_vec(&doc).unwrap(),
                blobs: vec![],
                children,
            }
        });
    prop_oneof![image, index].boxed()
}

/// Manifest bodies: random documents, valid ones changed here and there, and bytes.
fn any_manifest() -> BoxedStrategy<(Option<String>, Vec<u8>)> {
    let valid = valid_manifest().prop_map(|m| serde_json::from_slice::<Value>(&m.body).unwrap());
    let content_type = prop_oneof![2 => Just(None), 1 => manifest_content_type()];
    prop_oneof![
        3 => (content_type.clone(), text_of(manifest_doc())),
        4 => (content_type, text_of(mutated(valid.boxed()))),
        1 => (manifest_content_type(), vec(any::<u8>(), 0..64).prop_map(|b| String::from_utf8_lossy(&b).into_owned())),
    ]
    .prop_map(|(ct, text)| (ct, text.into_bytes()))
    .boxed()
}

fn manifest_content_type() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        2 => Just(None),
        4 => media_type().prop_map(|v| v.as_str().map(String::from)),
        1 => media_type().prop_map(|v| v.as_str().map(|m| format!("{m} ; charset=utf-8"))),
        1 => weird().prop_map(Some),
    ]
    .boxed()
}

#[test]
fn manifests() {
    check(
        "manifests",
        10_000,
        any_manifest(),
        |(content_type, body), tally| {
            match manifest::parse(content_type.as_deref(), &body) {
                Ok(m) => {
                    prop_assert!(manifest::SUPPORTED.contains(&m.media_type.as_str()));
                    let index = [manifest::OCI_INDEX, manifest::DOCKER_MANIFEST_LIST]
                        .contains(&m.media_type.as_str());
                    prop_assert_eq!(m.kind == Kind::Index, index);
                    match m.kind {
                        Kind::Image => prop_assert!(!m.blobs.is_empty() && m.children.is_empty()),
                        Kind::Index => prop_assert!(m.blobs.is_empty()),
                    }
                    tally.note(format!("ok {:?}", m.kind));
                }
                Err(e) => {
                    let what = match e {
                        ManifestError::Schema1 => "schema1",
                        ManifestError::UnsupportedMediaType(_) => "unsupported media type",
                        ManifestError::MediaTypeMismatch { .. } => "media type mismatch",
                        ManifestError::Invalid(_) => "invalid",
                    };
                    tally.note(what);
                }
            }
            Ok(())
        },
    );
    check("manifests_valid", 3_000, valid_manifest(), |m, tally| {
        let parsed = manifest::parse(m.content_type.as_deref(), &m.body);
        let parsed = parsed.map_err(|e| TestCaseError::fail(format!("refused: {e}")))?;
        let blobs: Vec<String> = parsed.blobs.iter().map(Digest::to_string).collect();
        let children: Vec<String> = parsed.children.iter().map(Digest::to_string).collect();
        prop_assert_eq!(blobs, m.blobs);
        prop_assert_eq!(children, m.children);
        tally.note(format!("ok {:?}", parsed.kind));
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// IAM repository policies.

const ACCOUNT: &str = "000000000000";

fn principal_name() -> BoxedStrategy<Value> {
    strings_of(vec![
        "*",
        ACCOUNT,
        "arn:aws:iam::000000000000:root",
        "arn:aws:iam::000000000000:user/alice",
        "arn:aws:iam::000000000000:user/path/to/bob",
        "arn:aws:iam::000000000000:user/",
        "arn:aws:iam::000000000000:role/x",
        "arn:aws:iam::123456789012:user/alice",
        "arn:aws:iam::",
        "arn:aws:iam::000000000000",
        "alice",
        "bob",
        "",
        "a:b",
    ])
}

fn iam_action() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => strings_of(vec![
            "ecr:*", "*", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:Put*",
            "ECR:PUTIMAGE", "ecr:BatchDeleteImage", "ecr:*Layer*", "ecr:", "s3:GetObject",
            "ecr:**", "ecr:?", "",
        ]),
        1 => weird().prop_map(|w| Value::from(format!("ecr:{w}"))),
    ]
    .boxed()
}

fn one_or_many(item: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![
        2 => item.clone(),
        2 => vec(item, 0..4).prop_map(Value::Array),
    ]
    .boxed()
}

fn iam_statement() -> BoxedStrategy<Value> {
    let principal = prop_oneof![
        3 => Just(json!("*")),
        4 => one_or_many(principal_name()).prop_map(|p| json!({ "AWS": p })),
        1 => one_or_many(principal_name()).prop_map(|p| json!({ "Service": p })),
        1 => select(vec![json!({}), json!({"Alien": "x"}), json!({"AWS": []}), json!({"AWS": [1]}), json!("alice")]),
    ];
    let statement = object(vec![
        ("Sid", field(weird().prop_map(Value::from))),
        (
            "Effect",
            field(strings_of(vec!["Allow", "Deny", "Deny", "allow", ""])),
        ),
        ("Principal", field(principal)),
        ("Action", field(one_or_many(iam_action()))),
        (
            "Resource",
            field(strings_of(vec![
                "*",
                "arn:aws:ecr:us-east-1:000000000000:repository/x",
            ])),
        ),
    ]);
    prop_oneof![
        9 => statement,
        1 => (select(vec!["Condition", "NotAction", "NotPrincipal", "NotResource"]), json_any())
            .prop_map(|(k, v)| json!({"Effect": "Allow", "Principal": "*", "Action": "ecr:*", k: v})),
    ]
    .boxed()
}

const VALID_PRINCIPALS: [&str; 9] = [
    "*",
    ACCOUNT,
    "arn:aws:iam::000000000000:root",
    "arn:aws:iam::000000000000:user/alice",
    "arn:aws:iam::000000000000:user/path/to/bob",
    "arn:aws:iam::123456789012:user/alice",
    "arn:aws:iam::000000000000:role/alice",
    "alice",
    "bob",
];

const VALID_ACTIONS: [&str; 8] = [
    "ecr:*",
    "*",
    "ecr:BatchGetImage",
    "ecr:Put*",
    "ECR:PUTIMAGE",
    "ecr:BatchDeleteImage",
    "ecr:*Layer*",
    "ecr:*Image",
];

/// A document ECR accepts.
fn valid_iam() -> BoxedStrategy<Value> {
    let principal = prop_oneof![
        1 => Just(json!("*")),
        3 => vec(select(VALID_PRINCIPALS.to_vec()), 1..3).prop_map(|p| json!({ "AWS": p })),
        1 => select(VALID_PRINCIPALS.to_vec()).prop_map(|p| json!({ "AWS": p })),
    ];
    let statement = (
        select(vec!["Allow", "Deny"]),
        principal,
        vec(select(VALID_ACTIONS.to_vec()), 1..3),
        any::<bool>(),
    )
        .prop_map(|(effect, principal, actions, sid)| {
            let mut s = json!({"Effect": effect, "Principal": principal, "Action": actions});
            if sid {
                s["Sid"] = json!("s");
            }
            s
        });
    (vec(statement, 1..4), any::<bool>())
        .prop_map(|(statements, version)| {
            let mut doc = json!({ "Statement": statements });
            if version {
                doc["Version"] = json!("2012-10-17");
            }
            doc
        })
        .boxed()
}

/// What a valid document decides for user `name` and `action`, from IAM's
/// rules: an explicit Deny wins, else an Allow, else silence.
fn iam_oracle(doc: &Value, name: &str, action: &str) -> Decision {
    fn glob(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
            Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
        }
    }
    let names_user = |p: &str| {
        p == "*"
            || p == ACCOUNT
            || p == "arn:aws:iam::000000000000:root"
            || p == name
            || (p.starts_with("arn:aws:iam::000000000000:user/")
                && p.ends_with(&format!("/{name}")))
    };
    let applies = |s: &Value| {
        let principal = match &s["Principal"] {
            Value::String(star) => star == "*",
            Value::Object(kinds) => match &kinds["AWS"] {
                Value::String(p) => names_user(p),
                Value::Array(ps) => ps.iter().any(|p| names_user(p.as_str().unwrap())),
                _ => false,
            },
            _ => false,
        };
        let actions = s["Action"].as_array().unwrap();
        principal
            && actions.iter().any(|a| {
                let a = a.as_str().unwrap().to_ascii_lowercase();
                glob(a.as_bytes(), action.to_ascii_lowercase().as_bytes())
            })
    };
    let statements = doc["Statement"].as_array().unwrap();
    if statements
        .iter()
        .any(|s| s["Effect"] == "Deny" && applies(s))
    {
        Decision::Deny
    } else if statements
        .iter()
        .any(|s| s["Effect"] == "Allow" && applies(s))
    {
        Decision::Allow
    } else {
        Decision::Silent
    }
}

fn iam_document() -> BoxedStrategy<Value> {
    prop_oneof![
        2 => random_iam_document(),
        3 => mutated(valid_iam()),
    ]
    .boxed()
}

fn random_iam_document() -> BoxedStrategy<Value> {
    object(vec![
        (
            "Version",
            field(strings_of(vec![
                "2012-10-17",
                "2008-10-17",
                "2020-01-01",
                "",
            ])),
        ),
        ("Id", field(weird().prop_map(Value::from))),
        (
            "Statement",
            field(prop_oneof![
                iam_statement(),
                vec(iam_statement(), 0..4).prop_map(Value::Array),
            ]),
        ),
    ])
}

fn principals() -> Vec<Principal> {
    vec![
        Principal::Anonymous,
        Principal::Token {
            name: "ci".into(),
            scopes: vec![],
        },
        Principal::User {
            name: "alice".into(),
            groups: vec![],
        },
        Principal::User {
            name: "bob".into(),
            groups: vec!["alice".into()],
        },
    ]
}

const ECR_ACTIONS: [&str; 6] = [
    "ecr:BatchGetImage",
    "ecr:PutImage",
    "ecr:BatchDeleteImage",
    "ecr:SetRepositoryPolicy",
    "ecr:UploadLayerPart",
    "ecr:DescribeImages",
];

#[test]
fn iam_policies() {
    let text = prop_oneof![
        9 => text_of(iam_document()),
        // Past ECR's length limit.
        1 => iam_document().prop_map(|mut d| {
            if let Some(d) = d.as_object_mut() {
                d.insert("Id".into(), json!("x".repeat(10_240)));
            }
            d.to_string()
        }),
    ];
    check("iam_policies", 10_000, text, |text, tally| {
        let policy = match RepositoryPolicy::parse(&text, ACCOUNT) {
            Ok(p) => p,
            Err(e) => {
                prop_assert!(
                    e.to_string()
                        .starts_with("Invalid repository policy provided"),
                    "{}",
                    e
                );
                tally.note("refused");
                return Ok(());
            }
        };
        prop_assert!(text.chars().count() <= 10_240);
        for who in principals() {
            for action in ECR_ACTIONS {
                let decision = policy.decide(&who, action);
                // A policy can take from anonymous callers and access tokens, never give.
                if matches!(who, Principal::Anonymous | Principal::Token { .. }) {
                    prop_assert_ne!(decision, Decision::Allow, "{:?} {}", who, action);
                    prop_assert!(!policy.permits(&who, action, false));
                }
            }
            for action in ["pull", "push", "delete"] {
                if matches!(who, Principal::Anonymous | Principal::Token { .. }) {
                    prop_assert!(!policy.permits_registry_action(&who, action, false));
                }
            }
        }
        // Adding a Deny of everything to everyone refuses every action to everyone.
        let mut doc: Value = serde_json::from_str(&text).unwrap();
        let deny_all = json!({"Effect": "Deny", "Principal": "*", "Action": "*"});
        doc["Statement"] = match doc["Statement"].take() {
            Value::Array(mut items) => {
                items.push(deny_all);
                Value::Array(items)
            }
            one => json!([one, deny_all]),
        };
        if let Ok(denying) = RepositoryPolicy::parse(&doc.to_string(), ACCOUNT) {
            for who in principals() {
                for action in ECR_ACTIONS {
                    prop_assert_eq!(denying.decide(&who, action), Decision::Deny);
                    prop_assert!(!denying.permits(&who, action, true));
                }
            }
        }
        tally.note("accepted");
        Ok(())
    });
    check("iam_decisions", 5_000, valid_iam(), |doc, tally| {
        let policy = RepositoryPolicy::parse(&doc.to_string(), ACCOUNT)
            .map_err(|e| TestCaseError::fail(format!("refused a valid policy: {e}")))?;
        for name in ["alice", "bob", "carol"] {
            let user = Principal::User {
                name: name.into(),
                groups: vec![],
            };
            for action in ECR_ACTIONS {
                let want = iam_oracle(&doc, name, action);
                prop_assert_eq!(policy.decide(&user, action), want, "{} {}", name, action);
                tally.note(format!("{want:?}"));
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Lifecycle policies.

const DAY_MS: i64 = 24 * 3600 * 1000;
const NOW_MS: i64 = 1_750_000_000_000;

fn count_number() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => (1i64..40).prop_map(Value::from),
        1 => select(vec![
            json!(0), json!(-1), json!(i32::MAX), json!(i64::MAX), json!(u64::MAX),
            json!(106_751_991_167_i64), json!(1e3), json!("5"),
        ]),
        1 => any::<i64>().prop_map(Value::from),
    ]
    .boxed()
}

fn selection() -> BoxedStrategy<Value> {
    let list = |items: Vec<&'static str>| vec(select(items), 0..3).prop_map(|l| json!(l));
    object(vec![
        (
            "tagStatus",
            field(strings_of(vec!["tagged", "untagged", "any", "TAGGED", ""])),
        ),
        (
            "tagPrefixList",
            field(list(vec!["prod", "v1", "", "dev-", "😀"])),
        ),
        (
            "tagPatternList",
            field(list(vec![
                "prod*",
                "*-stable",
                "*",
                "*a*b*c*d*",
                "*a*b*c*d*e*",
                "v?",
            ])),
        ),
        (
            "countType",
            field(strings_of(vec![
                "imageCountMoreThan",
                "sinceImagePushed",
                "sinceImagePulled",
                "sinceImageCreated",
            ])),
        ),
        (
            "countUnit",
            field(strings_of(vec!["days", "hours", "DAYS"])),
        ),
        ("countNumber", field(count_number())),
    ])
}

fn lifecycle_rule() -> BoxedStrategy<Value> {
    object(vec![
        (
            "rulePriority",
            field(prop_oneof![
                4 => (1i64..6).prop_map(Value::from),
                1 => json_number(),
            ]),
        ),
        ("description", field(weird().prop_map(Value::from))),
        ("selection", field(selection())),
        (
            "action",
            field(
                strings_of(vec!["expire", "expire", "EXPIRE", "delete"])
                    .prop_map(|t| json!({ "type": t })),
            ),
        ),
    ])
}

/// Policy text, mostly padded to ECR's minimum length so validation goes past it.
fn lifecycle_text(doc: BoxedStrategy<Value>) -> BoxedStrategy<String> {
    (text_of(doc), prop::bool::weighted(0.9))
        .prop_map(|(mut text, pad)| {
            while pad && text.len() < 100 {
                text.push(' ');
            }
            text
        })
        .boxed()
}

fn lifecycle_document() -> BoxedStrategy<Value> {
    prop_oneof![
        2 => random_lifecycle_document(),
        3 => mutated(valid_lifecycle()),
    ]
    .boxed()
}

fn random_lifecycle_document() -> BoxedStrategy<Value> {
    object(vec![(
        "rules",
        field(vec(lifecycle_rule(), 0..4).prop_map(Value::Array)),
    )])
}

/// A policy that must be accepted: distinct priorities, one list per tagged
/// rule, at most one untagged rule and an `any` rule last.
fn valid_lifecycle() -> BoxedStrategy<Value> {
    let count = prop_oneof![
        Just(("imageCountMoreThan", None)),
        Just(("sinceImagePushed", Some("days"))),
        Just(("sinceImagePulled", Some("days"))),
    ];
    let number = prop_oneof![
        6 => 1i64..20,
        1 => select(vec![i64::from(i32::MAX), 106_751_991_167, 106_751_991_168, i64::MAX]),
    ];
    let rule = (
        0usize..3,
        any::<bool>(),
        vec(
            select(vec!["prod", "v1", "dev-", "*-stable", "prod*", "*"]),
            1..3,
        ),
        count,
        number,
    );
    (vec(rule, 1..4), any::<bool>())
        .prop_map(|(rules, with_any)| {
            let mut untagged = false;
            let mut out = Vec::new();
            for (i, (kind, prefix, list, (count_type, unit), number)) in rules.into_iter().enumerate() {
                let mut selection = json!({"countType": count_type, "countNumber": number});
                if let Some(unit) = unit {
                    selection["countUnit"] = json!(unit);
                }
                if kind == 1 && !untagged {
                    untagged = true;
                    selection["tagStatus"] = json!("untagged");
                } else if prefix {
                    selection["tagStatus"] = json!("tagged");
                    let prefixes: Vec<String> = list.iter().map(|p| p.replace('*', "")).collect();
                    selection["tagPrefixList"] = json!(prefixes);
                } else {
                    selection["tagStatus"] = json!("tagged");
                    selection["tagPatternList"] = json!(list);
                }
                out.push(json!({"rulePriority": (i + 1) * 10, "selection": selection, "action": {"type": "expire"}}));
            }
            if with_any {
                out.push(json!({"rulePriority": 1000, "selection": {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30}, "action": {"type": "expire"}}));
            }
            json!({ "rules": out })
        })
        .boxed()
}

fn candidates() -> BoxedStrategy<Vec<Candidate>> {
    let tags = vec(
        select(vec![
            "prod-1",
            "prod-2",
            "v1-stable",
            "latest",
            "dev-3",
            "x",
        ]),
        0..3,
    );
    vec(
        (
            tags,
            0i64..60 * DAY_MS,
            proptest::option::of(0i64..60 * DAY_MS),
            any::<bool>(),
        ),
        0..8,
    )
    .prop_map(|images| {
        images
            .into_iter()
            .enumerate()
            .map(|(i, (tags, age, pulled_age, pinned))| Candidate {
                digest: Digest::compute(Algorithm::Sha256, &i.to_le_bytes()),
                tags: tags.into_iter().map(String::from).collect(),
                pushed_at_ms: NOW_MS - age,
                pulled_at_ms: pulled_age.map(|a| NOW_MS - a),
                pinned: pinned && i % 3 == 0,
            })
            .collect()
    })
    .boxed()
}

/// Whether a rule's selection takes an image, written from ECR's documentation.
fn selects(selection: &Value, image: &Candidate) -> bool {
    let all = |key: &str, test: &dyn Fn(&str, &str) -> bool| {
        selection[key].as_array().is_none_or(|list| {
            list.iter()
                .all(|p| image.tags.iter().any(|t| test(p.as_str().unwrap_or(""), t)))
        })
    };
    match selection["tagStatus"].as_str() {
        Some("untagged") => image.tags.is_empty(),
        Some("any") => true,
        _ => {
            !image.tags.is_empty()
                && all("tagPrefixList", &|p, t| t.starts_with(p))
                && all("tagPatternList", &|p, t| wharf::glob::glob_match(p, t))
        }
    }
}

#[test]
fn lifecycle_policies() {
    check(
        "lifecycle_policies",
        10_000,
        lifecycle_text(lifecycle_document()),
        |text, tally| {
            match LifecyclePolicy::parse(&text) {
                Ok(p) => {
                    prop_assert!(!p.rules.is_empty());
                    tally.note("accepted");
                }
                Err(e) => {
                    // A reason; the ECR adapter words it as ECR does (pinned in ecr_sdk).
                    prop_assert!(!e.to_string().trim().is_empty());
                    tally.note("refused");
                }
            }
            Ok(())
        },
    );
    check(
        "lifecycle_evaluation",
        5_000,
        (valid_lifecycle(), candidates()),
        |(doc, images), tally| {
            let mut text = doc.to_string();
            while text.len() < 100 {
                text.push(' ');
            }
            let policy = LifecyclePolicy::parse(&text)
                .map_err(|e| TestCaseError::fail(format!("refused a valid policy: {e}")))?;
            let expiries = policy.evaluate(&images, NOW_MS);
            let mut seen = BTreeSet::new();
            for expiry in &expiries {
                prop_assert!(seen.insert(expiry.digest.to_string()), "expired twice");
                let image = images.iter().find(|i| i.digest == expiry.digest);
                let image = image.ok_or_else(|| TestCaseError::fail("not a candidate"))?;
                prop_assert!(!image.pinned, "a pinned image expired");
                let rule = doc["rules"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["rulePriority"] == expiry.rule_priority)
                    .ok_or_else(|| TestCaseError::fail("expired by no rule"))?;
                let s = &rule["selection"];
                prop_assert!(
                    selects(s, image),
                    "expired by a rule that does not select it"
                );
                let n = s["countNumber"].as_i64().unwrap();
                // Exact arithmetic: a count of days no clock reaches keeps everything.
                let cutoff = i128::from(NOW_MS) - i128::from(n) * i128::from(DAY_MS);
                match s["countType"].as_str().unwrap() {
                    "sinceImagePushed" => prop_assert!(
                        i128::from(image.pushed_at_ms) < cutoff,
                        "expired an image younger than {} days",
                        n
                    ),
                    "sinceImagePulled" => prop_assert!(
                        i128::from(image.pulled_at_ms.unwrap_or(image.pushed_at_ms)) < cutoff,
                        "expired an image pulled within {} days",
                        n
                    ),
                    _ => {
                        let selected = images.iter().filter(|i| selects(s, i)).count();
                        prop_assert!(
                            i128::try_from(selected).unwrap() > i128::from(n),
                            "expired while no more than {} images were selected",
                            n
                        );
                    }
                }
            }
            tally.note(if expiries.is_empty() {
                "nothing expired"
            } else {
                "some expired"
            });
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// SigV4 Authorization headers.

fn authorization() -> BoxedStrategy<String> {
    let component = prop_oneof![
        4 => "[A-Za-z0-9-]{1,12}",
        1 => weird(),
    ];
    let count = prop_oneof![4 => Just(4usize), 1 => 2usize..7];
    let scope = count
        .prop_flat_map(move |n| vec(component.clone(), n..n + 1))
        .prop_map(|mut parts| {
            parts.push("aws4_request".into());
            parts.join("/")
        });
    let credential = prop_oneof![
        5 => scope,
        1 => Just("AKID/20250101/us-east-1/ecr/aws4_request".to_string()),
        1 => weird(),
    ];
    let headers = prop_oneof![
        4 => vec(select(vec!["host", "x-amz-date", "x-amz-target", "content-type", "x-amz-content-sha256", "", "HOST"]), 0..6)
            .prop_map(|h| h.join(";")),
        1 => weird(),
    ];
    let signature = prop_oneof![3 => "[0-9a-f]{64}", 1 => weird()];
    let junk = prop_oneof!["[A-Za-z]{1,8}=[ -~]{0,8}", weird()];
    // The three parts in any order, now and then one missing or one extra.
    let parts = (
        credential.prop_map(|c| format!("Credential={c}")),
        headers.prop_map(|h| format!("SignedHeaders={h}")),
        signature.prop_map(|s| format!("Signature={s}")),
        prop_oneof![6 => Just(None), 1 => (0usize..3).prop_map(Some)],
        vec(junk, 0..2),
    )
        .prop_flat_map(|(c, h, s, drop, extra)| {
            let mut parts = vec![c, h, s];
            if let Some(i) = drop {
                parts.remove(i);
            }
            parts.extend(extra);
            Just(parts).prop_shuffle()
        });
    let algorithm = prop_oneof![
        8 => Just("AWS4-HMAC-SHA256 "),
        1 => select(vec!["AWS4-HMAC-SHA256", "aws4-hmac-sha256 ", "AWS4-HMAC-SHA512 ", "Bearer ", ""]),
    ];
    (algorithm, parts, select(vec![", ", ",", " , ", ",,"]))
        .prop_map(|(a, parts, sep)| format!("{a}{}", parts.join(sep)))
        .boxed()
}

#[test]
fn sigv4_authorization_header() {
    check(
        "sigv4_authorization",
        20_000,
        authorization(),
        |value, tally| {
            match parse_authorization(&value) {
                Ok(c) => {
                    prop_assert!(value.starts_with("AWS4-HMAC-SHA256 "));
                    let scope = format!(
                        "{}/{}/{}/{}/aws4_request",
                        c.access_key_id, c.date, c.region, c.service
                    );
                    let parts = [
                        format!("Credential={scope}"),
                        format!("Signature={}", c.signature),
                        format!("SignedHeaders={}", c.signed_headers.join(";")),
                    ];
                    for part in parts {
                        prop_assert!(value.contains(&part), "{} not in {:?}", part, value);
                    }
                    tally.note("parsed");
                }
                Err(SigError::Incomplete(_)) => tally.note("incomplete"),
                Err(SigError::Invalid(_)) => tally.note("invalid"),
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// Over the real router.

/// A Wharf with seeded content: repository `fuzz/seed` with a blob, a config
/// and a manifest tagged `seed`, and an ECR repository `fuzz`.
struct App {
    _dir: tempfile::TempDir,
    router: Router,
    config: Config,
    runtime: tokio::runtime::Runtime,
    /// An open upload session of `fuzz/seed`.
    upload: String,
    clients: AtomicU32,
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl App {
    fn start(tweak: impl FnOnce(&mut Config)) -> App {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = runtime.block_on(common::test_config(dir.path(), |c| {
            // Nothing here starts a container; a socket that is not there makes sure.
            c.runner.docker_host = format!("unix://{}/no-docker.sock", dir.path().display());
            c.gc.interval_seconds = 0;
            tweak(c);
        }));
        // No background work: nothing here waits for a schedule or a webhook.
        let (state, _background) = runtime
            .block_on(wharf::server::AppState::open(&config))
            .unwrap();
        let mut app = App {
            _dir: dir,
            router: wharf::server::build_router(state),
            config,
            runtime,
            upload: String::new(),
            clients: AtomicU32::new(1),
        };
        app.seed();
        app
    }

    fn seed(&mut self) {
        if self.config.auth.users.is_empty() {
            for repo in ["fuzz", SEED_REPO] {
                let a = self.aws(
                    "AmazonEC2ContainerRegistry_V20150921.CreateRepository",
                    json!({"repositoryName": repo}),
                );
                assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
            }
            for blob in [SEED_BLOB, SEED_CONFIG] {
                let path = format!(
                    "/v2/{SEED_REPO}/blobs/uploads/?digest={}",
                    common::sha256(blob)
                );
                let a = self.call(request(Method::POST, &path, &[], blob.to_vec()));
                assert_eq!(a.status, 201);
            }
            let manifest = common::image_manifest(SEED_CONFIG, &[SEED_BLOB]);
            let path = format!("/v2/{SEED_REPO}/manifests/seed");
            let ct = [("content-type", common::OCI_MANIFEST)];
            let a = self.call(request(Method::PUT, &path, &ct, manifest));
            assert_eq!(a.status, 201);
            self.upload = self.new_upload().unwrap();
        }
    }

    fn call(&self, mut request: Request<Body>) -> Answer {
        // Each request from its own loopback address, as from many clients:
        // the login throttle keys on the address too.
        let n = self.clients.fetch_add(1, Ordering::Relaxed);
        let [_, a, b, c] = n.to_be_bytes();
        let peer = std::net::SocketAddr::from(([127, a, b, c.max(1)], 40_000));
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(wharf::tls::Peer(peer)));
        self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.unwrap();
            let (parts, body) = response.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            Answer {
                status: parts.status,
                headers: parts.headers,
                body: body.to_vec(),
            }
        })
    }

    /// A new upload session of `fuzz/seed`, when the server is open.
    fn new_upload(&self) -> Option<String> {
        let a = self.call(request(
            Method::POST,
            &format!("/v2/{SEED_REPO}/blobs/uploads/"),
            &[],
            vec![],
        ));
        let location = a.headers.get("location")?.to_str().ok()?;
        Some(location.rsplit('/').next()?.split('?').next()?.to_string())
    }

    /// An unsigned AWS JSON 1.1 call.
    fn aws(&self, target: &str, body: Value) -> Answer {
        let headers = [
            ("x-amz-target", target),
            ("content-type", "application/x-amz-json-1.1"),
        ];
        self.call(request(
            Method::POST,
            "/",
            &headers,
            body.to_string().into_bytes(),
        ))
    }

    fn image(&self, reference: &str) -> String {
        format!("localhost:{}/{reference}", self.config.listen.port())
    }
}

fn request(method: Method, uri: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.header("content-length", body.len())
        .body(Body::from(body))
        .unwrap()
}

/// A request the `/v2/` fuzzing sends.
#[derive(Debug, Clone)]
struct V2Request {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn v2_request() -> BoxedStrategy<V2Request> {
    let method = prop_oneof![
        3 => Just(Method::GET),
        2 => Just(Method::HEAD),
        3 => Just(Method::PUT),
        2 => Just(Method::POST),
        2 => Just(Method::PATCH),
        2 => Just(Method::DELETE),
        1 => select(vec![Method::OPTIONS, Method::TRACE, Method::from_bytes(b"BREW").unwrap()]),
    ];
    // Paths that name the seeded content reach the deepest code.
    let seeded = prop_oneof![
        Just(PathShape::Manifest(SEED_REPO.into(), "seed".into())),
        Just(PathShape::Blob(SEED_REPO.into(), common::sha256(SEED_BLOB))),
        Just(PathShape::Uploads(SEED_REPO.into(), true)),
        near_digest().prop_map(|d| PathShape::Manifest(SEED_REPO.into(), d)),
        Just(PathShape::Tags(SEED_REPO.into())),
        Just(PathShape::Referrers(
            SEED_REPO.into(),
            common::sha256(SEED_BLOB)
        )),
        near_tag().prop_map(|t| PathShape::Manifest(SEED_REPO.into(), t)),
        Just(PathShape::Upload(SEED_REPO.into(), "SESSION".into())),
    ];
    let path = prop_oneof![3 => seeded, 2 => path_shape()].prop_map(|s| s.render());
    let query_key = select(vec![
        "digest",
        "mount",
        "from",
        "n",
        "last",
        "artifactType",
        "tag",
        "ns",
        "_state",
        "",
    ])
    .prop_map(String::from);
    let query_value = prop_oneof![
        near_digest(),
        select(vec![
            "0",
            "1",
            "-1",
            "18446744073709551616",
            "100000",
            "fuzz/seed",
            "seed"
        ])
        .prop_map(String::from),
        weird(),
    ];
    let header = prop_oneof![
        manifest_content_type().prop_map(|v| ("content-type".to_string(), v.unwrap_or_default())),
        select(vec![
            "0-9",
            "0-0",
            "10-5",
            "bytes 0-9/10",
            "0-18446744073709551615",
            "18446744073709551615-0",
            "5-",
            "-",
            "",
            "0-9223372036854775807",
        ])
        .prop_map(|v| ("content-range".to_string(), v.to_string())),
        select(vec![
            "bytes=0-",
            "bytes=0-0",
            "bytes=5-2",
            "bytes=-0",
            "bytes=-5",
            "bytes=0-18446744073709551615",
            "bytes=18446744073709551615-",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=",
            "bytes=-18446744073709551615",
        ])
        .prop_map(|v| ("range".to_string(), v.to_string())),
        authorization_header().prop_map(|v| ("authorization".to_string(), v)),
        prop_oneof![
            media_type().prop_map(|m| m.as_str().unwrap_or("").to_string()),
            weird()
        ]
        .prop_map(|v| ("accept".to_string(), v)),
        select(vec!["1.2.3.4", "", "garbage, ::1", "127.0.0.1, 10.0.0.1"])
            .prop_map(|v| ("x-forwarded-for".to_string(), v.to_string())),
        weird().prop_map(|v| ("host".to_string(), v)),
    ];
    let body = prop_oneof![
        3 => Just(Vec::new()),
        3 => any_manifest().prop_map(|(_, body)| body),
        2 => valid_manifest().prop_map(|m| m.body),
        1 => Just(SEED_BLOB.to_vec()),
        1 => vec(any::<u8>(), 0..64),
    ];
    let any_request = (
        method,
        path,
        vec((query_key, query_value), 0..3),
        vec(header, 0..4),
        body,
    )
        .prop_map(|(method, path, query, headers, body)| V2Request {
            method,
            path,
            query,
            headers,
            body,
        });
    // Manifest pushes to the seeded repository, whose blobs valid manifests often name.
    let push = (
        prop_oneof![near_tag(), valid_digest()],
        prop_oneof![
            2 => valid_manifest().prop_map(|m| (m.content_type, m.body)),
            1 => any_manifest(),
        ],
    )
        .prop_map(|(reference, (content_type, body))| V2Request {
            method: Method::PUT,
            path: format!("{SEED_REPO}/manifests/{reference}"),
            query: vec![],
            headers: content_type
                .map(|c| vec![("content-type".to_string(), c)])
                .unwrap_or_default(),
            body,
        });
    // Chunks to a new upload session (NEW), with ranges right and wrong.
    let chunk = (
        prop_oneof![3 => Just(Method::PATCH), 1 => Just(Method::PUT)],
        vec(any::<u8>(), 0..8),
        select(vec![
            "exact", "long", "short", "late", "max", "reversed", "none",
        ]),
        any::<bool>(),
    )
        .prop_map(|(method, body, range, good_digest)| {
            let n = body.len() as u64;
            let range = match range {
                "exact" => Some(format!("0-{}", n.saturating_sub(1))),
                "long" => Some(format!("0-{n}")),
                "short" => Some(format!("0-{}", n.saturating_sub(2))),
                "late" => Some(format!("1-{n}")),
                "max" => Some(format!("0-{}", u64::MAX)),
                "reversed" => Some("5-2".to_string()),
                _ => None,
            };
            let digest = if good_digest {
                common::sha256(&body)
            } else {
                ZERO.to_string()
            };
            V2Request {
                query: if method == Method::PUT {
                    vec![("digest".to_string(), digest)]
                } else {
                    vec![]
                },
                method,
                path: format!("{SEED_REPO}/blobs/uploads/NEW"),
                headers: range
                    .map(|r| vec![("content-range".to_string(), r)])
                    .unwrap_or_default(),
                body,
            }
        });
    prop_oneof![8 => any_request, 2 => push, 1 => chunk].boxed()
}

/// `/v2/` answers: below 500, and every error the spec's JSON with a known code.
fn v2_property(app: &App, mut r: V2Request, tally: &Tally) -> Result<(), TestCaseError> {
    r.path = r.path.replace("SESSION", &app.upload);
    if r.path.ends_with("/NEW") {
        let Some(id) = app.new_upload() else {
            tally.note("no session");
            return Ok(());
        };
        r.path = r.path.replace("NEW", &id);
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&r.query)
        .finish();
    let uri = format!(
        "/v2/{}{}{query}",
        r.path,
        if query.is_empty() { "" } else { "?" }
    );
    let Ok(uri) = http::Uri::try_from(uri.as_str()) else {
        // Not a request target a client can send.
        tally.note("unsendable");
        return Ok(());
    };
    let mut builder = Request::builder().method(r.method.clone()).uri(uri);
    for (k, v) in &r.headers {
        let Ok(v) = http::HeaderValue::from_str(v) else {
            continue;
        };
        builder = builder.header(k.as_str(), v);
    }
    let request = builder
        .header("content-length", r.body.len())
        .body(Body::from(r.body.clone()))
        .unwrap();
    let answer = app.call(request);
    let status = answer.status;
    prop_assert!(
        status.as_u16() < 500,
        "{} {}: {}",
        status,
        r.path,
        String::from_utf8_lossy(&answer.body)
    );
    // A partial answer is as long as it says, and its range says the same.
    if status == StatusCode::PARTIAL_CONTENT {
        let header = |name: &str| {
            answer
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        prop_assert_eq!(header("content-length"), answer.body.len().to_string());
        let range = header("content-range")
            .strip_prefix("bytes ")
            .and_then(|r| r.split_once('/'));
        let bounds = range.and_then(|(r, _)| r.split_once('-'));
        let bounds =
            bounds.and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
        prop_assert_eq!(
            bounds.map(|(a, b)| b - a + 1),
            Some(answer.body.len() as u64)
        );
    }
    // An accepted chunk is exactly as long as its Content-Range says.
    let range = r.headers.iter().find(|(k, _)| k == "content-range");
    if let Some((_, range)) = range
        && r.method == Method::PATCH
        && status == StatusCode::ACCEPTED
        && let Some((a, b)) = range.split_once('-')
        && let (Ok(a), Ok(b)) = (a.parse::<u128>(), b.parse::<u128>())
    {
        prop_assert_eq!(
            b + 1 - a.min(b + 1),
            r.body.len() as u128,
            "accepted {} for {} bytes",
            range,
            r.body.len()
        );
    }
    if status.is_client_error() && r.method != Method::HEAD {
        let body: Value = serde_json::from_slice(&answer.body).map_err(|e| {
            TestCaseError::fail(format!(
                "{status}: not JSON ({e}): {}",
                String::from_utf8_lossy(&answer.body)
            ))
        })?;
        let code = body["errors"][0]["code"].as_str().unwrap_or_default();
        prop_assert!(
            body["errors"][0]["message"].is_string(),
            "no message: {}",
            body
        );
        prop_assert!(
            OCI_CODES.contains(&(code, status.as_u16())),
            "{} with {}",
            status,
            code
        );
        if status == StatusCode::UNAUTHORIZED {
            prop_assert!(answer.headers.contains_key("www-authenticate"));
        }
        tally.note(format!("{} {code}", status.as_u16()));
    } else {
        tally.note(status.as_u16().to_string());
    }
    Ok(())
}

#[test]
fn v2_over_http() {
    let app = App::start(|_| {});
    check("v2_http_open", 3_000, v2_request(), |r, tally| {
        v2_property(&app, r, tally)
    });
    // With users configured every request must authenticate: garbage
    // credentials meet the authentication code.
    let app = App::start(|c| {
        c.auth.users = vec![wharf::auth::ConfigUser {
            name: "alice".into(),
            password_hash: wharf::auth::hash_password("alice-password").unwrap(),
            groups: vec![],
        }];
    });
    check("v2_http_enforced", 400, v2_request(), |r, tally| {
        v2_property(&app, r, tally)
    });
}

/// `Authorization` values: Basic credentials of strangers, of `AWS` with
/// token-like passwords, of access-token-like secrets, and of alice (right
/// and wrong), plus malformed ones.
fn authorization_header() -> BoxedStrategy<String> {
    use base64::Engine as _;
    let user = prop_oneof![
        // Fresh names, so the login throttle (per user) rarely waits.
        6 => "[a-z]{6,12}",
        2 => Just("AWS".to_string()),
        1 => Just("alice".to_string()),
        1 => weird(),
    ];
    let password = prop_oneof![
        2 => weird(),
        2 => "wharf_[a-z0-9_]{0,24}",
        2 => select(vec!["eyJhbGciOiJub25lIn0.e30.", "a.b.c", "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.AAAA"]).prop_map(String::from),
        1 => Just("alice-password".to_string()),
    ];
    prop_oneof![
        4 => (user, password).prop_map(|(u, p)| {
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
        }),
        2 => select(vec![
            "Basic", "Basic !!!", "Basic Og", "basic YTpi", "Bearer", "Bearer x.y.z", "Digest x",
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=00",
        ])
        .prop_map(String::from),
        1 => "Bearer [A-Za-z0-9._-]{0,40}",
    ]
    .boxed()
}

/// Token scopes as clients write them, and near misses.
fn near_scope() -> BoxedStrategy<String> {
    prop_oneof![
        3 => (
            select(vec!["repository", "registry", "repository(plugin)", ""]),
            prop_oneof![near_name(), Just("localhost:5000/fuzz/seed".to_string()), Just("catalog".to_string())],
            vec(select(vec!["pull", "push", "delete", "*", "", "PULL"]), 0..3),
        )
            .prop_map(|(kind, name, actions)| format!("{kind}:{name}:{}", actions.join(","))),
        1 => weird(),
    ]
    .boxed()
}

#[test]
fn token_scopes() {
    check("token_scopes", 10_000, near_scope(), |s, tally| {
        match Scope::from_str(&s) {
            Ok(scope) => {
                // What the parser keeps parses back to the same scope.
                let again = Scope::from_str(&scope.to_string()).ok();
                prop_assert_eq!(again.as_ref(), Some(&scope));
                prop_assert!(!scope.kind.contains(':'));
                tally.note("parsed");
            }
            Err(_) => tally.note("refused"),
        }
        Ok(())
    });
}

/// A request to `/token` or one of the small endpoints beside the APIs.
fn other_request() -> BoxedStrategy<V2Request> {
    let scope_pairs = vec(
        prop_oneof![
            3 => near_scope().prop_map(|s| ("scope".to_string(), s)),
            1 => (select(vec!["service", "account", "offline_token", "client_id", "tail", "container"]), prop_oneof![weird(), Just("wharf".to_string()), Just("true".to_string())])
                .prop_map(|(k, v)| (k.to_string(), v)),
        ],
        0..4,
    );
    let auth = prop_oneof![2 => Just(None), 1 => authorization_header().prop_map(Some)];
    let get = (
        select(vec![
            "/token",
            "/token",
            "/healthz",
            "/readyz",
            "/metrics",
            "/ecs/tasks/TASK/logs",
        ]),
        prop_oneof![weird(), "[a-f0-9-]{1,36}"],
        scope_pairs,
        auth.clone(),
    )
        .prop_map(|(path, task, query, auth)| V2Request {
            method: Method::GET,
            path: path.replace("TASK", &task),
            query,
            headers: auth
                .map(|a| vec![("authorization".to_string(), a)])
                .unwrap_or_default(),
            body: vec![],
        });
    let grant = prop_oneof![
        6 => select(vec!["password", "refresh_token"]).prop_map(|g| Some(g.to_string())),
        1 => weird().prop_map(Some),
        1 => Just(None),
    ];
    let fields = btree_map(
        select(vec![
            "service",
            "scope",
            "access_type",
            "username",
            "password",
            "refresh_token",
            "client_id",
            "",
        ]),
        prop_oneof![
            select(vec![
                "wharf",
                "offline",
                "alice",
                "alice-password",
                "a.b.c",
                "eyJhbGciOiJub25lIn0.e30."
            ])
            .prop_map(String::from),
            near_scope(),
            "[a-z]{6,12}",
            weird(),
        ],
        0..5,
    );
    let form = (grant, fields).prop_map(|(grant, fields)| {
        let mut pairs: Vec<(String, String)> = grant
            .map(|g| ("grant_type".to_string(), g))
            .into_iter()
            .collect();
        pairs.extend(fields.into_iter().map(|(k, v)| (k.to_string(), v)));
        pairs
    });
    let post = (
        form,
        prop_oneof![
            4 => Just("application/x-www-form-urlencoded"),
            1 => select(vec!["application/json", "", "multipart/form-data"]),
        ],
        auth,
    )
        .prop_map(|(fields, content_type, auth)| {
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields)
                .finish();
            let mut headers = vec![("content-type".to_string(), content_type.to_string())];
            headers.extend(auth.map(|a| ("authorization".to_string(), a)));
            V2Request {
                method: Method::POST,
                path: "/token".into(),
                query: vec![],
                headers,
                body: body.into_bytes(),
            }
        });
    prop_oneof![get, post].boxed()
}

fn other_property(app: &App, r: V2Request, tally: &Tally) -> Result<(), TestCaseError> {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&r.query)
        .finish();
    let uri = format!(
        "{}{}{query}",
        r.path,
        if query.is_empty() { "" } else { "?" }
    );
    let Ok(uri) = http::Uri::try_from(uri.as_str()) else {
        tally.note("unsendable");
        return Ok(());
    };
    let mut builder = Request::builder().method(r.method.clone()).uri(uri);
    for (k, v) in &r.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let answer = app.call(builder.body(Body::from(r.body.clone())).unwrap());
    let status = answer.status;
    let text = String::from_utf8_lossy(&answer.body);
    prop_assert!(status.as_u16() < 500, "{} {}: {}", status, r.path, text);
    let endpoint = if r.path.starts_with("/ecs/") {
        "/ecs/tasks/_/logs"
    } else {
        r.path.as_str()
    };
    if r.path == "/token" {
        let body: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| TestCaseError::fail(format!("{status}: not JSON ({e}): {text}")))?;
        if status.is_success() {
            prop_assert!(body["token"].is_string(), "{}", body);
        } else {
            let code = body["errors"][0]["code"].as_str().unwrap_or_default();
            prop_assert!(
                OCI_CODES.contains(&(code, status.as_u16())),
                "{} {}",
                status,
                body
            );
        }
    }
    tally.note(format!("{endpoint} {}", status.as_u16()));
    Ok(())
}

/// A request to the web console: paths near its routes (repository pages
/// with near-valid names and references), list parameters, cookies and
/// forms, valid-looking or not.
fn console_request() -> BoxedStrategy<V2Request> {
    let repo = prop_oneof![
        2 => Just(SEED_REPO.to_string()),
        1 => Just("fuzz".to_string()),
        3 => near_name(),
        1 => weird(),
    ];
    let reference = prop_oneof![
        2 => Just("seed".to_string()),
        3 => near_tag(),
        3 => near_digest(),
        1 => weird(),
    ];
    let kind = select(vec!["image", "delete", "other", ""]);
    let path = prop_oneof![
        1 => select(vec!["/ui", "/ui/", "/ui/login", "/ui/logout"]).prop_map(String::from),
        2 => repo.clone().prop_map(|r| format!("/ui/r/{r}")),
        4 => (repo, kind, reference).prop_map(|(r, k, x)| format!("/ui/r/{r}/-/{k}/{x}")),
        1 => weird().prop_map(|w| format!("/ui/{w}")),
        1 => ("[0-9a-f]{16}", select(vec!["app.css", "app.js", "icon.svg", "x"]))
            .prop_map(|(v, f)| format!("/ui/static/{v}/{f}")),
    ];
    let value = |known: Vec<&'static str>| prop_oneof![2 => select(known).prop_map(String::from), 1 => weird()];
    let query = vec(
        (
            select(vec!["q", "sort", "after", "n", "show", "next", "done"]),
            value(vec![
                "name", "pushed", "untagged", "deleted", "50", "0", "1~seed", "/ui/", "//x",
            ]),
        )
            .prop_map(|(k, v)| (k.to_string(), v)),
        0..4,
    );
    let cookie = prop_oneof![
        2 => Just(None),
        1 => weird().prop_map(|v| Some(format!("wharf_csrf={v}"))),
        1 => ("[A-Za-z0-9_-]{43}", weird())
            .prop_map(|(c, s)| Some(format!("wharf_csrf={c}; wharf_session={s}"))),
    ];
    let form = vec(
        (
            select(vec!["csrf", "what", "username", "password", "next"]),
            value(vec!["untag", "manifest", "alice", "alice-password", "/ui/"]),
        )
            .prop_map(|(k, v)| (k.to_string(), v)),
        0..5,
    );
    let method =
        prop_oneof![3 => Just(Method::GET), 2 => Just(Method::POST), 1 => Just(Method::PUT)];
    (method, path, query, cookie, form)
        .prop_map(|(method, path, query, cookie, form)| {
            let mut headers: Vec<(String, String)> = cookie
                .map(|c| ("cookie".to_string(), c))
                .into_iter()
                .collect();
            let body = if method == Method::POST {
                headers.push((
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ));
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish()
                    .into_bytes()
            } else {
                Vec::new()
            };
            V2Request {
                method,
                path,
                query,
                headers,
                body,
            }
        })
        .boxed()
}

/// The console answers below 500, and every answer under `/ui` carries its
/// content security policy.
fn console_property(app: &App, r: V2Request, tally: &Tally) -> Result<(), TestCaseError> {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&r.query)
        .finish();
    let sep = if query.is_empty() { "" } else { "?" };
    let Ok(uri) = http::Uri::try_from(format!("{}{sep}{query}", r.path).as_str()) else {
        tally.note("unsendable");
        return Ok(());
    };
    let mut builder = Request::builder().method(r.method.clone()).uri(uri.clone());
    for (k, v) in &r.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let Ok(request) = builder.body(Body::from(r.body.clone())) else {
        tally.note("unsendable");
        return Ok(());
    };
    let answer = app.call(request);
    let status = answer.status;
    prop_assert!(
        status.as_u16() < 500,
        "{} {} {}: {}",
        status,
        r.method,
        uri,
        String::from_utf8_lossy(&answer.body)
    );
    if uri.path().starts_with("/ui/") && status != StatusCode::METHOD_NOT_ALLOWED {
        prop_assert!(
            answer.headers.contains_key("content-security-policy"),
            "{} {} {}: no CSP",
            status,
            r.method,
            uri
        );
    }
    tally.note(format!("{} {}", r.method, status.as_u16()));
    Ok(())
}

#[test]
fn console_over_http() {
    let app = App::start(|_| {});
    check("console_open", 1_500, console_request(), |r, tally| {
        console_property(&app, r, tally)
    });
    let app = App::start(|c| {
        c.auth.users = vec![wharf::auth::ConfigUser {
            name: "alice".into(),
            password_hash: wharf::auth::hash_password("alice-password").unwrap(),
            groups: vec![],
        }];
    });
    check("console_enforced", 300, console_request(), |r, tally| {
        console_property(&app, r, tally)
    });
}

#[test]
fn token_and_operations_over_http() {
    let app = App::start(|_| {});
    check("token_http_open", 2_000, other_request(), |r, tally| {
        other_property(&app, r, tally)
    });
    let app = App::start(|c| {
        c.auth.users = vec![wharf::auth::ConfigUser {
            name: "alice".into(),
            password_hash: wharf::auth::hash_password("alice-password").unwrap(),
            groups: vec![],
        }];
    });
    check("token_http_enforced", 300, other_request(), |r, tally| {
        other_property(&app, r, tally)
    });
}

// ---------------------------------------------------------------------------
// ECR and ECS over the real router (`POST /`).

const ECR_TYPES: [&str; 29] = [
    "MissingAuthenticationTokenException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "AccessDeniedException",
    "UnknownOperationException",
    "InvalidParameterException",
    "InvalidTagParameterException",
    "TooManyTagsException",
    "RepositoryNotFoundException",
    "RepositoryAlreadyExistsException",
    "RepositoryNotEmptyException",
    "ImageNotFoundException",
    "LifecyclePolicyNotFoundException",
    "LifecyclePolicyPreviewNotFoundException",
    "ImageAlreadyExistsException",
    "ImageTagAlreadyExistsException",
    "ImageDigestDoesNotMatchException",
    "LayersNotFoundException",
    "ReferencedImagesNotFoundException",
    "RepositoryPolicyNotFoundException",
    "LimitExceededException",
    "LayerPartTooSmallException",
    "InvalidLayerPartException",
    "UploadNotFoundException",
    "LayerAlreadyExistsException",
    "InvalidLayerException",
    "EmptyUploadException",
    "LayerInaccessibleException",
    "ValidationException",
];

const ECS_TYPES: [&str; 17] = [
    "MissingAuthenticationTokenException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "AccessDeniedException",
    "UnknownOperationException",
    "ClientException",
    "InvalidParameterException",
    "ClusterNotFoundException",
    "ServiceNotFoundException",
    "ServiceNotActiveException",
    "ClusterContainsServicesException",
    "ClusterContainsTasksException",
    "ClusterContainsContainerInstancesException",
    "AttributeLimitExceededException",
    "TargetNotFoundException",
    "LimitExceededException",
    "ValidationException",
];

/// AWS JSON 1.1 answers: below 500, JSON, and every error a known `__type`
/// with a message.
/// Page tokens: garbage, small and huge numbers, plain and in base64.
fn next_token() -> BoxedStrategy<Value> {
    use base64::Engine as _;
    let number = prop_oneof![
        3 => (0u64..8).prop_map(|n| n.to_string()),
        1 => "[0-9]{1,20}",
        2 => (0u64..200).prop_map(|d| (u64::MAX - d).to_string()),
    ];
    prop_oneof![
        1 => weird(),
        2 => number.clone(),
        2 => number.prop_map(|n| base64::engine::general_purpose::STANDARD.encode(n)),
    ]
    .prop_map(Value::from)
    .boxed()
}

/// A page token as a position, if it is one (plain or base64 decimal).
fn token_position(token: &Value) -> Option<u128> {
    use base64::Engine as _;
    let t = token.as_str()?;
    t.parse().ok().or_else(|| {
        let bytes = base64::engine::general_purpose::STANDARD.decode(t).ok()?;
        String::from_utf8(bytes).ok()?.parse().ok()
    })
}

/// Paging moves forward: the token a page hands out lies past the one it was asked with.
fn pages_forward(sent: &Value, answer: &Value) -> Result<(), TestCaseError> {
    if let (Some(from), Some(next)) = (
        token_position(&sent["nextToken"]),
        token_position(&answer["nextToken"]),
    ) {
        prop_assert!(
            next > from,
            "nextToken {} after {}: paging went back",
            next,
            from
        );
    }
    Ok(())
}

fn aws_answer(
    answer: &Answer,
    types: &[&str],
    what: &str,
    tally: &Tally,
) -> Result<Value, TestCaseError> {
    let text = String::from_utf8_lossy(&answer.body);
    prop_assert!(
        answer.status.as_u16() < 500,
        "{}: {} {}",
        what,
        answer.status,
        text
    );
    let body: Value = serde_json::from_slice(&answer.body)
        .map_err(|e| TestCaseError::fail(format!("{what}: not JSON ({e}): {text}")))?;
    if answer.status.is_success() {
        prop_assert!(body.is_object());
        tally.note(format!("{what} ok"));
    } else {
        let kind = body["__type"].as_str().unwrap_or_default();
        prop_assert!(
            types.contains(&kind),
            "{}: {} {}",
            what,
            answer.status,
            text
        );
        prop_assert!(body["message"].is_string(), "{}: {}", what, text);
        tally.note(format!("{what} {kind}"));
    }
    Ok(body)
}

fn repository_name() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => select(vec!["fuzz", SEED_REPO, "fuzz/new", "other"]).prop_map(Value::from),
        2 => near_name().prop_map(Value::from),
    ]
    .boxed()
}

fn image_ids() -> BoxedStrategy<Value> {
    let id = object(vec![
        ("imageTag", field(near_tag().prop_map(Value::from))),
        ("imageDigest", field(near_digest().prop_map(Value::from))),
    ]);
    vec(id, 0..4).prop_map(Value::Array).boxed()
}

/// An ECR call: an operation and a body with that operation's fields.
fn ecr_call() -> BoxedStrategy<(String, Value)> {
    let ops = select(vec![
        "CreateRepository",
        "DescribeRepositories",
        "DeleteRepository",
        "ListImages",
        "DescribeImages",
        "BatchGetImage",
        "BatchDeleteImage",
        "PutImageTagMutability",
        "PutImage",
        "ListImageReferrers",
        "DescribeRegistry",
        "BatchCheckLayerAvailability",
        "InitiateLayerUpload",
        "UploadLayerPart",
        "CompleteLayerUpload",
        "GetDownloadUrlForLayer",
        "PutLifecyclePolicy",
        "GetLifecyclePolicy",
        "DeleteLifecyclePolicy",
        "StartLifecyclePolicyPreview",
        "GetLifecyclePolicyPreview",
        "SetRepositoryPolicy",
        "GetRepositoryPolicy",
        "DeleteRepositoryPolicy",
        "TagResource",
        "UntagResource",
        "ListTagsForResource",
        "GetAuthorizationToken",
        "NoSuchOperation",
        "",
    ]);
    let body = object(vec![
        ("repositoryName", field(repository_name())),
        (
            "registryId",
            field(strings_of(vec![ACCOUNT, "123456789012", ""])),
        ),
        (
            "repositoryNames",
            field(vec(repository_name(), 0..3).prop_map(Value::Array)),
        ),
        ("imageIds", field(image_ids())),
        (
            "imageManifest",
            field(prop_oneof![
                any_manifest()
                    .prop_map(|(_, body)| Value::from(String::from_utf8_lossy(&body).into_owned())),
                valid_manifest().prop_map(|m| Value::from(String::from_utf8(m.body).unwrap())),
            ]),
        ),
        ("imageManifestMediaType", field(media_type())),
        ("imageTag", field(near_tag().prop_map(Value::from))),
        ("imageDigest", field(near_digest().prop_map(Value::from))),
        (
            "policyText",
            field(text_of(iam_document()).prop_map(Value::from)),
        ),
        (
            "lifecyclePolicyText",
            field(prop_oneof![
                lifecycle_text(lifecycle_document()).prop_map(Value::from),
                valid_lifecycle().prop_map(|d| Value::from(format!("{d:<100}"))),
            ]),
        ),
        (
            "maxResults",
            field(prop_oneof![3 => (1i64..=100).prop_map(Value::from), 1 => json_number()]),
        ),
        ("nextToken", field(next_token())),
        (
            "filter",
            field(object(vec![
                (
                    "tagStatus",
                    field(strings_of(vec!["TAGGED", "UNTAGGED", "ANY", "x"])),
                ),
                (
                    "artifactStatus",
                    field(strings_of(vec!["ACTIVE", "ANY", "x"])),
                ),
                (
                    "artifactTypes",
                    field(vec(media_type(), 0..2).prop_map(Value::Array)),
                ),
            ])),
        ),
        (
            "layerDigests",
            field(vec(near_digest().prop_map(Value::from), 0..3).prop_map(Value::Array)),
        ),
        ("layerDigest", field(near_digest().prop_map(Value::from))),
        ("uploadId", field(upload_id().prop_map(Value::from))),
        ("partFirstByte", field(json_number())),
        ("partLastByte", field(json_number())),
        (
            "layerPartBlob",
            field(strings_of(vec!["c2VlZA==", "", "!!", "AA", "c2VlZA"])),
        ),
        (
            "imageTagMutability",
            field(strings_of(vec![
                "MUTABLE",
                "IMMUTABLE",
                "IMMUTABLE_WITH_EXCLUSION",
                "x",
            ])),
        ),
        ("force", field(any::<bool>().prop_map(Value::from))),
        (
            "resourceArn",
            field(prop_oneof![
                Just(Value::from(
                    "arn:aws:ecr:us-east-1:000000000000:repository/fuzz"
                )),
                weird().prop_map(|w| Value::from(format!(
                    "arn:aws:ecr:us-east-1:000000000000:repository/{w}"
                ))),
            ]),
        ),
        (
            "tags",
            field(
                vec(
                    object(vec![
                        ("Key", field(weird().prop_map(Value::from))),
                        ("Value", field(weird().prop_map(Value::from))),
                    ]),
                    0..3,
                )
                .prop_map(Value::Array),
            ),
        ),
        (
            "tagKeys",
            field(vec(weird().prop_map(Value::from), 0..3).prop_map(Value::Array)),
        ),
        (
            "subjectId",
            field(object(vec![(
                "imageDigest",
                field(near_digest().prop_map(Value::from)),
            )])),
        ),
    ]);
    (ops, body)
        .prop_map(|(op, body)| (op.to_string(), body))
        .boxed()
}

#[test]
fn ecr_over_http() {
    let app = App::start(|_| {});
    check("ecr_http", 3_000, ecr_call(), |(op, body), tally| {
        let answer = app.aws(
            &format!("AmazonEC2ContainerRegistry_V20150921.{op}"),
            body.clone(),
        );
        let out = aws_answer(&answer, &ECR_TYPES, &op, tally)?;
        pages_forward(&body, &out)
    });
}

fn ecs_name() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => select(vec!["app", "web", "sidecar", "fuzz"]).prop_map(Value::from),
        1 => "[A-Za-z0-9_-]{1,8}".prop_map(Value::from),
        1 => weird().prop_map(Value::from),
    ]
    .boxed()
}

fn container_definition(images: Vec<String>) -> BoxedStrategy<Value> {
    let image = prop_oneof![
        4 => select(images).prop_map(Value::from),
        1 => select(vec!["busybox", "docker.io/library/busybox:latest", "localhost/UPPER:x", "localhost:1/x"]).prop_map(Value::from),
        1 => weird().prop_map(Value::from),
    ];
    let small = || prop_oneof![4 => (0i64..2048).prop_map(Value::from), 1 => json_number()];
    object(vec![
        ("name", field(ecs_name())),
        ("image", field(image)),
        ("cpu", field(small())),
        ("memory", field(small())),
        ("memoryReservation", field(small())),
        ("essential", field(any::<bool>().prop_map(Value::from))),
        (
            "entryPoint",
            field(vec(weird().prop_map(Value::from), 0..3).prop_map(Value::Array)),
        ),
        (
            "command",
            field(vec(weird().prop_map(Value::from), 0..3).prop_map(Value::Array)),
        ),
        (
            "environment",
            field(
                vec(
                    object(vec![
                        ("name", field(weird().prop_map(Value::from))),
                        ("value", field(weird().prop_map(Value::from))),
                    ]),
                    0..3,
                )
                .prop_map(Value::Array),
            ),
        ),
        (
            "portMappings",
            field(
                vec(
                    object(vec![
                        (
                            "containerPort",
                            field(prop_oneof![
                                (1i64..70_000).prop_map(Value::from),
                                json_number()
                            ]),
                        ),
                        (
                            "hostPort",
                            field(prop_oneof![
                                (0i64..70_000).prop_map(Value::from),
                                json_number()
                            ]),
                        ),
                        (
                            "protocol",
                            field(strings_of(vec!["tcp", "udp", "sctp", "TCP"])),
                        ),
                        ("name", field(weird().prop_map(Value::from))),
                    ]),
                    0..3,
                )
                .prop_map(Value::Array),
            ),
        ),
        ("workingDirectory", field(weird().prop_map(Value::from))),
        (
            "user",
            field(strings_of(vec![
                "1000",
                "1000:1000",
                "0",
                "0:0",
                "root",
                "nobody",
                "",
            ])),
        ),
        ("stopTimeout", field(small())),
        (
            "healthCheck",
            field(object(vec![
                (
                    "command",
                    field(
                        vec(
                            strings_of(vec!["CMD", "CMD-SHELL", "NONE", "true", "exit 0"]),
                            0..3,
                        )
                        .prop_map(Value::Array),
                    ),
                ),
                ("interval", field(small())),
                ("timeout", field(small())),
                ("retries", field(small())),
                ("startPeriod", field(small())),
            ])),
        ),
        (
            "dependsOn",
            field(
                vec(
                    object(vec![
                        ("containerName", field(ecs_name())),
                        (
                            "condition",
                            field(strings_of(vec![
                                "START", "COMPLETE", "SUCCESS", "HEALTHY", "x",
                            ])),
                        ),
                    ]),
                    0..3,
                )
                .prop_map(Value::Array),
            ),
        ),
        (
            "dockerLabels",
            field(btree_map(weird(), weird(), 0..3).prop_map(|m| json!(m))),
        ),
    ])
}

fn task_definition(images: Vec<String>) -> BoxedStrategy<Value> {
    object(vec![
        ("family", field(ecs_name())),
        (
            "containerDefinitions",
            field(vec(container_definition(images), 0..4).prop_map(Value::Array)),
        ),
        (
            "cpu",
            field(strings_of(vec![
                "256", "1 vCPU", "0.5 vcpu", "inf", "NaN", "-1", "1e400", "0", "4096",
            ])),
        ),
        (
            "memory",
            field(strings_of(vec![
                "512", "1 GB", "0.5GB", "inf", "-0", "1e400", "6",
            ])),
        ),
        (
            "networkMode",
            field(strings_of(vec![
                "bridge", "none", "host", "awsvpc", "BRIDGE",
            ])),
        ),
        (
            "requiresCompatibilities",
            field(vec(strings_of(vec!["EC2", "EXTERNAL", "FARGATE"]), 0..3).prop_map(Value::Array)),
        ),
        ("taskRoleArn", field(weird().prop_map(Value::from))),
        ("tags", field(vec(json_any(), 0..2).prop_map(Value::Array))),
    ])
}

/// A definition every runner setting accepts: images of this registry,
/// bridge networking, no root user, no host ports.
fn valid_task_definition(images: Vec<String>) -> BoxedStrategy<Value> {
    let container = (
        select(images),
        6i64..4096,
        0i64..1024,
        vec("[ -~]{0,12}", 0..3),
        any::<bool>(),
        proptest::option::of(2i64..=120),
    )
        .prop_map(|(image, memory, cpu, command, health, stop_timeout)| {
            let mut c = json!({"image": image, "memory": memory, "cpu": cpu, "command": command,
                   "environment": [{"name": "A", "value": "b"}],
                   "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
                   "dockerLabels": {"team": "fuzz"}});
            if health {
                c["healthCheck"] = json!({"command": ["CMD-SHELL", "true"], "interval": 5, "timeout": 2, "retries": 1});
            }
            if let Some(t) = stop_timeout {
                c["stopTimeout"] = json!(t);
            }
            c
        });
    (
        "[A-Za-z0-9_-]{1,32}",
        vec(container, 1..4),
        any::<bool>(),
        proptest::option::of(select(vec!["bridge", "none"])),
    )
        .prop_map(|(family, containers, depend, network)| {
            let containers: Vec<Value> = containers
                .into_iter()
                .enumerate()
                .map(|(i, mut c)| {
                    c["name"] = json!(format!("c{i}"));
                    if depend && i > 0 {
                        // Later containers start after the first one.
                        c["essential"] = json!(false);
                        c["dependsOn"] = json!([{"containerName": "c0", "condition": "START"}]);
                    }
                    c
                })
                .collect();
            let mut d =
                json!({"family": family, "containerDefinitions": containers, "cpu": "4 vCPU"});
            if let Some(n) = network {
                d["networkMode"] = json!(n);
            }
            d
        })
        .boxed()
}

const ECS_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";

#[test]
fn ecs_task_definitions_over_http() {
    let app = App::start(|_| {});
    let images = vec![
        app.image(&format!("{SEED_REPO}:seed")),
        app.image(SEED_REPO),
        app.image(&format!("{SEED_REPO}@{ZERO}")),
        app.image("fuzz:missing"),
        format!("127.0.0.1:{}/{SEED_REPO}:seed", app.config.listen.port()),
    ];
    let input = prop_oneof![
        3 => text_of(task_definition(images.clone())),
        3 => text_of(mutated(valid_task_definition(images.clone()))),
    ];
    check(
        "ecs_register_task_definition",
        2_000,
        input,
        |body, tally| {
            let headers = [
                (
                    "x-amz-target",
                    "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition",
                ),
                ("content-type", "application/x-amz-json-1.1"),
            ];
            let answer = app.call(request(
                Method::POST,
                "/",
                &headers,
                body.clone().into_bytes(),
            ));
            let out = aws_answer(&answer, &ECS_TYPES, "register", tally)?;
            if answer.status.is_success() {
                let sent: Value = serde_json::from_str(&body).unwrap();
                prop_assert_eq!(&out["taskDefinition"]["family"], &sent["family"]);
                // What was registered can be described.
                let arn = out["taskDefinition"]["taskDefinitionArn"].clone();
                let a = app.aws(
                    &format!("{ECS_PREFIX}DescribeTaskDefinition"),
                    json!({"taskDefinition": arn}),
                );
                prop_assert_eq!(a.status, StatusCode::OK);
            }
            Ok(())
        },
    );
    check(
        "ecs_valid_task_definition",
        300,
        valid_task_definition(images),
        |body, tally| {
            let answer = app.aws(&format!("{ECS_PREFIX}RegisterTaskDefinition"), body);
            let text = String::from_utf8_lossy(&answer.body).to_string();
            prop_assert_eq!(answer.status, StatusCode::OK, "{}", text);
            tally.note("registered");
            Ok(())
        },
    );
    // The other reads and writes that need no container engine.
    let ops = select(vec![
        "CreateCluster",
        "DescribeClusters",
        "ListClusters",
        "DeleteCluster",
        "DeregisterTaskDefinition",
        "DescribeTaskDefinition",
        "ListTaskDefinitions",
        "ListTaskDefinitionFamilies",
        "DescribeTasks",
        "ListTasks",
        "StopTask",
        "DescribeServices",
        "ListServices",
        "DeleteService",
        "ListContainerInstances",
        "DescribeContainerInstances",
        "UpdateContainerInstancesState",
        "RegisterContainerInstance",
        "DeregisterContainerInstance",
        "PutAttributes",
        "DeleteAttributes",
        "ListAttributes",
        "Nope",
    ]);
    let body = object(vec![
        (
            "cluster",
            field(prop_oneof![ecs_name(), weird().prop_map(Value::from)]),
        ),
        ("clusterName", field(ecs_name())),
        (
            "clusters",
            field(vec(ecs_name(), 0..3).prop_map(Value::Array)),
        ),
        (
            "taskDefinition",
            field(prop_oneof![
                ecs_name(),
                (ecs_name(), json_number())
                    .prop_map(|(f, n)| Value::from(format!("{}:{n}", f.as_str().unwrap_or("")))),
                weird().prop_map(|w| Value::from(format!(
                    "arn:aws:ecs:us-east-1:000000000000:task-definition/{w}"
                ))),
            ]),
        ),
        ("familyPrefix", field(weird().prop_map(Value::from))),
        (
            "status",
            field(strings_of(vec!["ACTIVE", "INACTIVE", "ALL", "x"])),
        ),
        ("sort", field(strings_of(vec!["ASC", "DESC", "x"]))),
        (
            "maxResults",
            field(prop_oneof![3 => (1i64..=100).prop_map(Value::from), 1 => json_number()]),
        ),
        ("nextToken", field(next_token())),
        (
            "tasks",
            field(vec(weird().prop_map(Value::from), 0..3).prop_map(Value::Array)),
        ),
        ("task", field(weird().prop_map(Value::from))),
        (
            "services",
            field(vec(ecs_name(), 0..3).prop_map(Value::Array)),
        ),
        ("service", field(ecs_name())),
        (
            "desiredStatus",
            field(strings_of(vec!["RUNNING", "STOPPED", "PENDING", "x"])),
        ),
        (
            "include",
            field(vec(strings_of(vec!["TAGS", "x"]), 0..2).prop_map(Value::Array)),
        ),
        ("force", field(any::<bool>().prop_map(Value::from))),
        (
            "containerInstances",
            field(vec(weird().prop_map(Value::from), 0..3).prop_map(Value::Array)),
        ),
        ("containerInstance", field(weird().prop_map(Value::from))),
        (
            "filter",
            field(prop_oneof![
                strings_of(vec![
                    "attribute:ecs.os-type == linux",
                    "agentConnected == true and runningTasksCount > 0",
                    "task:group == x || not(attribute:a exists)",
                    "attribute:x in [a, 'b'",
                    "registeredAt < 2018-06-18"
                ]),
                weird().prop_map(Value::from)
            ]),
        ),
        (
            "attributes",
            field(
                vec(
                    object(vec![
                        (
                            "name",
                            field(prop_oneof![ecs_name(), weird().prop_map(Value::from)]),
                        ),
                        ("value", field(weird().prop_map(Value::from))),
                        (
                            "targetType",
                            field(strings_of(vec!["container-instance", "x"])),
                        ),
                        ("targetId", field(weird().prop_map(Value::from))),
                    ]),
                    0..12,
                )
                .prop_map(Value::Array),
            ),
        ),
        (
            "totalResources",
            field(
                vec(
                    object(vec![
                        (
                            "name",
                            field(strings_of(vec!["CPU", "MEMORY", "PORTS", "x"])),
                        ),
                        ("type", field(strings_of(vec!["INTEGER", "STRINGSET"]))),
                        ("integerValue", field(json_number())),
                        (
                            "stringSetValue",
                            field(vec(weird().prop_map(Value::from), 0..3).prop_map(Value::Array)),
                        ),
                    ]),
                    0..4,
                )
                .prop_map(Value::Array),
            ),
        ),
        (
            "targetType",
            field(strings_of(vec!["container-instance", "x"])),
        ),
        ("attributeName", field(weird().prop_map(Value::from))),
        ("attributeValue", field(weird().prop_map(Value::from))),
    ]);
    check("ecs_http", 1_500, (ops, body), |(op, body), tally| {
        let answer = app.aws(&format!("{ECS_PREFIX}{op}"), body.clone());
        let out = aws_answer(&answer, &ECS_TYPES, op, tally)?;
        pages_forward(&body, &out)
    });
}

// ---------------------------------------------------------------------------
// SigV4 canonicalisation over the real router: what the AWS reference signer
// signs is accepted, and a change to any signed part is refused.

#[derive(Debug, Clone)]
struct Signed {
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Value,
    content_sha256: bool,
    tamper: Tamper,
}

#[derive(Debug, Clone, Copy)]
enum Tamper {
    Nothing,
    Header(prop::sample::Index),
    Query,
    Target,
}

fn signed_request() -> BoxedStrategy<Signed> {
    // Spaces but no tabs: the SDKs disagree on tabs (botocore collapses them
    // like spaces, aws-sigv4 keeps them), so no server can accept both.
    let value = prop_oneof![
        "[!-~]{0,12}",
        "[ -~]{0,12}",
        select(vec![
            "  a   b  ",
            " x ",
            "a,b",
            "",
            "%20",
            "+",
            "=",
            "&",
            "/"
        ])
        .prop_map(String::from),
    ];
    let header_name = select(vec![
        "x-amz-meta-a",
        "x-custom",
        "x-custom",
        "accept",
        "x-amz-user-agent",
        "x-a_b",
        "amz-sdk-invocation-id",
    ])
    .prop_map(String::from);
    let query_part = prop_oneof!["[a-zA-Z0-9._~-]{0,6}", "[ -~]{0,6}", any::<String>()];
    let tamper = prop_oneof![
        4 => Just(Tamper::Nothing),
        2 => any::<prop::sample::Index>().prop_map(Tamper::Header),
        1 => Just(Tamper::Query),
        1 => Just(Tamper::Target),
    ];
    (
        vec((query_part.clone(), query_part), 0..3),
        vec((header_name, value), 0..4),
        json_any(),
        any::<bool>(),
        tamper,
    )
        .prop_map(|(query, headers, body, content_sha256, tamper)| Signed {
            query,
            headers,
            body: json!({ "fuzz": body }),
            content_sha256,
            tamper,
        })
        .boxed()
}

#[test]
fn sigv4_over_http() {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
    };
    use aws_sigv4::sign::v4::SigningParams;

    let app = App::start(|c| {
        c.auth.users = vec![wharf::auth::ConfigUser {
            name: "alice".into(),
            password_hash: wharf::auth::hash_password("alice-password").unwrap(),
            groups: vec![],
        }];
    });
    let store = app
        .runtime
        .block_on(wharf::storage::SqlMetadata::open(&app.config.database()))
        .unwrap();
    let secrets = wharf::auth::SecretsKey::load(&app.config.secrets_key_path(), false).unwrap();
    let (key, secret) = app
        .runtime
        .block_on(wharf::admin::create_access_key(
            &store,
            &secrets,
            "alice",
            &["alice".into()],
            wharf::admin::By::unrecorded(),
        ))
        .unwrap();
    let region = app.config.ecr.region.clone();
    let identity = aws_sdk_ecr::config::Credentials::new(key, secret, None, None, "fuzz").into();
    check("sigv4_http", 1_500, signed_request(), |s, tally| {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&s.query)
            .finish();
        let uri = if query.is_empty() {
            "/".to_string()
        } else {
            format!("/?{query}")
        };
        let target = "AmazonEC2ContainerRegistry_V20150921.DescribeRegistry";
        let body = s.body.to_string();
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), "registry.test".into()),
            ("x-amz-target".into(), target.into()),
            ("content-type".into(), "application/x-amz-json-1.1".into()),
        ];
        headers.extend(s.headers.iter().cloned());
        let mut settings = SigningSettings::default();
        if s.content_sha256 {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        let params = SigningParams::builder()
            .identity(&identity)
            .region(&region)
            .name("ecr")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let signable = SignableRequest::new(
            "POST",
            &uri,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body.as_bytes()),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut request = Request::builder().method(Method::POST).uri(&uri);
        for (k, v) in &headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let mut request = request.body(Body::from(body.clone())).unwrap();
        instructions.apply_to_request_http1x(&mut request);
        let tampered = match s.tamper {
            Tamper::Nothing => false,
            Tamper::Header(i) if !s.headers.is_empty() => {
                let (name, value) = &s.headers[i.index(s.headers.len())];
                let all = request.headers_mut();
                all.remove(name.as_str());
                all.insert(
                    http::HeaderName::from_str(name).unwrap(),
                    http::HeaderValue::from_str(&format!("{}x", value.trim())).unwrap(),
                );
                true
            }
            Tamper::Header(_) => false,
            Tamper::Query => {
                let extra = if query.is_empty() { "?z=1" } else { "&z=1" };
                *request.uri_mut() = format!("{uri}{extra}").parse().unwrap();
                true
            }
            Tamper::Target => {
                request.headers_mut().insert(
                    "x-amz-target",
                    http::HeaderValue::from_static(
                        "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
                    ),
                );
                true
            }
        };
        let answer = app.call(request);
        let body = aws_answer(
            &answer,
            &ECR_TYPES,
            if tampered { "tampered" } else { "signed" },
            tally,
        )?;
        let kind = body["__type"].as_str().unwrap_or_default();
        if tampered {
            prop_assert_eq!(
                kind,
                "InvalidSignatureException",
                "a changed request was accepted"
            );
        } else {
            prop_assert!(
                answer.status.is_success(),
                "refused a signed request: {}",
                body
            );
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Cases the fuzzing found, kept as plain tests over real HTTP.

/// An unsigned ECR call to a server that runs open.
async fn unsigned_ecr(server: &common::TestServer, operation: &str, input: Value) -> (u16, Value) {
    let r = server
        .http
        .post(server.url("/"))
        .header(
            "x-amz-target",
            format!("AmazonEC2ContainerRegistry_V20150921.{operation}"),
        )
        .header("content-type", "application/x-amz-json-1.1")
        .body(input.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Found by `lifecycle_evaluation`: `countNumber * DAY_MS` wrapped, so a rule
/// keeping images for 2^63 - 1 days expired every image, new ones included.
#[tokio::test]
async fn found_huge_day_counts_expire_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::TestServer::start(dir.path()).await;
    server.push_image("app", "v1", "fresh").await;
    for days in [i64::MAX, 106_751_991_168] {
        let policy = json!({"rules": [{"rulePriority": 1, "action": {"type": "expire"},
            "selection": {"tagStatus": "any", "countType": "sinceImagePushed",
                          "countUnit": "days", "countNumber": days}}]});
        let (status, out) = unsigned_ecr(
            &server,
            "StartLifecyclePolicyPreview",
            json!({"repositoryName": "app", "lifecyclePolicyText": policy.to_string()}),
        )
        .await;
        assert_eq!(status, 200, "{out}");
        let (status, out) = unsigned_ecr(
            &server,
            "GetLifecyclePolicyPreview",
            json!({"repositoryName": "app"}),
        )
        .await;
        assert_eq!(status, 200, "{out}");
        assert_eq!(
            out["previewResults"],
            json!([]),
            "countNumber {days}: {out}"
        );
    }
}

/// Found by `token_http_open`: a POST /token form that does not parse was
/// answered 415 or 422 in plain text; the endpoint's errors are JSON.
#[tokio::test]
async fn found_token_form_errors_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::TestServer::start(dir.path()).await;
    let cases = [
        ("application/x-www-form-urlencoded", ""),
        ("application/x-www-form-urlencoded", "service=wharf&scope="),
        ("application/json", r#"{"grant_type":"password"}"#),
    ];
    for (content_type, body) in cases {
        let r = server
            .http
            .post(server.url("/token"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{content_type} {body:?}");
        assert_eq!(common::error_code(r).await, "UNSUPPORTED", "{body:?}");
    }
}

/// Found by `v2_http_open`: `end - start + 1` of `Content-Range:
/// 0-18446744073709551615` wrapped to 0, so an empty PATCH claiming 2^64
/// bytes was accepted.
#[tokio::test]
async fn found_chunk_range_past_u64_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::TestServer::start(dir.path()).await;
    let r = server
        .http
        .post(server.url("/v2/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let r = server
        .http
        .patch(server.url(&location))
        .header("content-range", format!("0-{}", u64::MAX))
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert!(status == 400 || status == 416, "{status}");
    assert_eq!(common::error_code(r).await, "BLOB_UPLOAD_INVALID");
}

/// Found by `ecs_http`: `start + maxResults` wrapped for a nextToken near
/// usize::MAX, so the answer's nextToken pointed back to the first page.
#[tokio::test]
async fn found_page_tokens_near_the_end_do_not_wrap() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let server = common::TestServer::start(dir.path()).await;
    let ecs = |operation: &str, input: Value| {
        server
            .http
            .post(server.url("/"))
            .header("x-amz-target", format!("{ECS_PREFIX}{operation}"))
            .header("content-type", "application/x-amz-json-1.1")
            .body(input.to_string())
            .send()
    };
    for name in ["a", "b", "c"] {
        let r = ecs("CreateCluster", json!({"clusterName": name}))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = ecs(
        "ListClusters",
        json!({"maxResults": 2, "nextToken": u64::MAX.to_string()}),
    )
    .await
    .unwrap();
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["clusterArns"], json!([]), "{out}");
    assert!(out["nextToken"].is_null(), "{out}");

    for tag in ["1", "2", "3"] {
        server.push_image("app", tag, tag).await;
    }
    let token = base64::engine::general_purpose::STANDARD.encode(u64::MAX.to_string());
    for operation in ["ListImages", "DescribeImages"] {
        let (status, out) = unsigned_ecr(
            &server,
            operation,
            json!({"repositoryName": "app", "maxResults": 2, "nextToken": token}),
        )
        .await;
        assert_eq!(status, 200, "{out}");
        assert!(out["nextToken"].is_null(), "{operation}: {out}");
    }
}

#[test]
fn zz_deep_depends_on() {
    let app = App::start(|_| {});
    let image = app.image(&format!("{SEED_REPO}:seed"));
    for n in [7_000usize, 7_200] {
        let containers: Vec<Value> = (0..n)
            .map(|i| {
                let mut c = json!({"name": format!("c{i}"), "image": image, "memory": 6, "essential": i == 0});
                if i > 0 {
                    c["dependsOn"] = json!([{"containerName": format!("c{}", i - 1), "condition": "START"}]);
                }
                c
            })
            .collect();
        let body = json!({"family": "deep", "containerDefinitions": containers});
        let len = body.to_string().len();
        let t = Instant::now();
        let a = app.aws(&format!("{ECS_PREFIX}RegisterTaskDefinition"), body);
        eprintln!(
            "DEEP n={n} bytes={len} status={} in {:?}: {}",
            a.status,
            t.elapsed(),
            String::from_utf8_lossy(&a.body)
                .chars()
                .take(100)
                .collect::<String>()
        );
    }
}
