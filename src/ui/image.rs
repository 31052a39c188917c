//! `GET /ui/r/{repo}/-/image/{reference}`: one manifest: its facts, the
//! platforms of an index, the config summary and layers of an image (the
//! config read through the registry, at most [`MAX_CONFIG_BYTES`]), its
//! referrers by artifact type, and the exact commands that pull it.

use std::collections::BTreeMap;

use maud::{Markup, html};
use serde::Deserialize;

use super::access::Rights;
use super::error::UiResult;
use super::layout::{MAX_LISTED, copy_button, kind, more, page as shell, short_digest, size, time};
use super::session::Viewer;
use super::{Console, delete_path, image_path, ok, repo_path};
use crate::oci::{Digest, Reference, RepoName};
use crate::registry::Referrer;

/// The largest image config read for its summary.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

const CONFIG_TYPES: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: Digest,
    #[serde(default)]
    size: u64,
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    variant: Option<String>,
    #[serde(rename = "os.version")]
    os_version: Option<String>,
}

impl Platform {
    fn name(&self) -> String {
        let mut name = format!("{}/{}", self.os, self.architecture);
        if let Some(v) = &self.variant {
            name.push('/');
            name.push_str(v);
        }
        if let Some(v) = &self.os_version {
            name.push_str(&format!(" ({v})"));
        }
        name
    }
}

/// An image config, the parts shown.
#[derive(Debug, Default, Deserialize)]
struct ImageConfig {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    config: Option<RunConfig>,
    #[serde(default)]
    history: Vec<History>,
}

/// One step of the image's build history.
#[derive(Debug, Default, Deserialize)]
struct History {
    #[serde(default)]
    created_by: Option<String>,
    #[serde(default)]
    empty_layer: bool,
}

/// What built each layer: the history steps that made a layer, in order,
/// when there is exactly one per layer (else nothing is claimed).
fn layer_history(config: &ConfigView, layers: usize) -> Option<Vec<&str>> {
    let ConfigView::Shown(c) = config else {
        return None;
    };
    let steps: Vec<&str> = c
        .history
        .iter()
        .filter(|h| !h.empty_layer)
        .map(|h| h.created_by.as_deref().unwrap_or(""))
        .collect();
    (steps.len() == layers && layers > 0).then_some(steps)
}

/// A long build step, cut for the table (the whole is in the title).
fn cut(text: &str) -> String {
    const MAX: usize = 140;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// What the config section shows.
enum ConfigView {
    None,
    TooLarge,
    Unreadable,
    Shown(Box<ImageConfig>),
}

pub async fn page(
    console: &Console,
    viewer: &Viewer,
    rights: Rights,
    repo: &RepoName,
    reference: &Reference,
    base_url: &str,
) -> UiResult {
    let registry = &console.registry;
    let read = registry.inspect_manifest(repo, reference).await?;
    let record = &read.record;
    // A manifest we accepted parses; if it somehow does not, show its facts alone.
    let document: Option<Document> = serde_json::from_slice(&read.bytes).ok();
    let links = registry.manifest_links(repo, &record.digest).await?;
    let referrers = registry.referrers(repo, &record.digest, None).await?;
    // Unique: what no other manifest in any repository uses, an index's
    // children only it lists included (the delete confirmation's figure;
    // one indexed query).
    let unique = registry
        .reclaimable(repo, std::slice::from_ref(&record.digest), None)
        .await?
        .with_untagged;
    let config = match document.as_ref().and_then(|d| d.config.as_ref()) {
        Some(c) if CONFIG_TYPES.contains(&c.media_type.as_str()) => {
            match registry
                .read_small_blob(repo, &c.digest, MAX_CONFIG_BYTES)
                .await
            {
                Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                    .map(|c| ConfigView::Shown(Box::new(c)))
                    .unwrap_or(ConfigView::Unreadable),
                Ok(None) => ConfigView::TooLarge,
                Err(crate::registry::RegistryError::BlobUnknown(_)) => ConfigView::Unreadable,
                Err(e) => return Err(e.into()),
            }
        }
        _ => ConfigView::None,
    };
    let commands = Commands::new(base_url, repo, reference, &record.digest);
    let title = format!("{repo}:{reference}");
    let body = html! {
        p.crumbs { a href="/ui/" { "Repositories" } " / " a href=(repo_path(repo)) { (repo) } " / " }
        h1 { (reference) }
        dl.facts {
            dt { "Digest" }
            dd { code { (record.digest) } (copy_button(&record.digest.to_string(), "Copy digest")) }
            dt { "Media type" } dd { code { (record.media_type) } }
            @if let Some(t) = &record.artifact_type { dt { "Artifact type" } dd { code { (t) } } }
            dt { "Pushed" } dd { (time(record.pushed_at_ms)) }
            dt { "Manifest size" } dd { (size(record.size)) }
            @if let Some(d) = &document {
                @if !d.layers.is_empty() {
                    dt { "Compressed size" }
                    dd { (size(d.layers.iter().fold(d.config.as_ref().map_or(0, |c| c.size), |sum, l| sum.saturating_add(l.size)))) }
                }
            }
            dt { "Unique bytes" }
            dd title="Blobs no other manifest in any repository uses" {
                @if !unique.complete { "at least " }
                (size(unique.bytes)) " in " (unique.blobs) " blob(s)"
            }
            dt { "Tags" }
            dd {
                @if links.tags.is_empty() { span.muted { "none" } }
                @for tag in links.tags.iter().take(MAX_LISTED) { span.badge { (tag) } " " }
                (more(links.tags.len()))
            }
            @if let Some(subject) = &links.subject {
                dt { "Refers to" }
                dd { a.mono href=(image_path(repo, &Reference::Digest(subject.clone()))) { (short_digest(subject)) } }
            }
            @if !links.parents.is_empty() {
                dt { "Listed by" }
                dd {
                    @for p in links.parents.iter().take(MAX_LISTED) { a.mono href=(image_path(repo, &Reference::Digest(p.clone()))) { (short_digest(p)) } " " }
                    (more(links.parents.len()))
                }
            }
        }
        @if rights.delete {
            p.actions { a.button.danger href=(delete_path(repo, reference)) { "Delete…" } }
        }
        h2 { "Pull" }
        (commands.render())
        @if let Some(d) = &document {
            @if !d.manifests.is_empty() { (platforms(repo, &commands, &d.manifests)) }
            @if !d.layers.is_empty() { (layers(&d.layers, layer_history(&config, d.layers.len()))) }
        }
        (config_section(&config))
        (referrers_section(repo, &referrers))
    };
    ok(shell(&title, Some(viewer), body))
}

/// The commands that pull this manifest, exactly as they are to be typed.
struct Commands {
    /// `host[:port]`, as clients reach this registry.
    host: String,
    /// The registry is plain HTTP: each tool needs its flag for that.
    plain: bool,
    repo: String,
    /// The tag the page was reached by, if any.
    tag: Option<Reference>,
    /// The manifest's digest, as a reference.
    digest: Reference,
}

impl Commands {
    fn new(base_url: &str, repo: &RepoName, reference: &Reference, digest: &Digest) -> Commands {
        let (plain, host) = match base_url.split_once("://") {
            Some((scheme, host)) => (scheme == "http", host.trim_end_matches('/').to_string()),
            None => (false, base_url.to_string()),
        };
        Commands {
            host,
            plain,
            repo: repo.to_string(),
            tag: matches!(reference, Reference::Tag(_)).then(|| reference.clone()),
            digest: Reference::Digest(digest.clone()),
        }
    }

    /// The image reference: `host/repo:tag` or `host/repo@digest`.
    fn image(&self, reference: &Reference) -> String {
        match reference {
            Reference::Tag(t) => format!("{}/{}:{t}", self.host, self.repo),
            Reference::Digest(d) => format!("{}/{}@{d}", self.host, self.repo),
        }
    }

    fn flag(&self, flag: &str) -> String {
        if self.plain {
            format!(" {flag}")
        } else {
            String::new()
        }
    }

    /// Every command for `reference` (by tag the tag-based ones, always by digest).
    fn list(&self, tag: Option<&Reference>, digest: &Reference) -> Vec<(&'static str, String)> {
        let local = self.repo.rsplit('/').next().unwrap_or("image").to_string();
        let mut out = Vec::new();
        if let Some(tag) = tag {
            out.push(("docker, by tag", format!("docker pull {}", self.image(tag))));
            out.push((
                "podman, by tag",
                format!(
                    "podman pull{} {}",
                    self.flag("--tls-verify=false"),
                    self.image(tag)
                ),
            ));
        }
        let pinned = self.image(digest);
        out.push(("docker, by digest", format!("docker pull {pinned}")));
        out.push((
            "podman, by digest",
            format!("podman pull{} {pinned}", self.flag("--tls-verify=false")),
        ));
        out.push((
            "skopeo",
            format!(
                "skopeo copy --all{} docker://{pinned} oci:{local}",
                self.flag("--src-tls-verify=false")
            ),
        ));
        out.push((
            "oras",
            format!("oras pull{} {pinned}", self.flag("--plain-http")),
        ));
        out.push((
            "crane",
            format!("crane pull{} {pinned} {local}.tar", self.flag("--insecure")),
        ));
        out.push((
            "runner task definition",
            self.task_definition(&local, &pinned),
        ));
        out
    }

    /// Registers a task definition that runs this image, pinned by digest,
    /// on Wharf's task runner with the AWS CLI.
    fn task_definition(&self, local: &str, pinned: &str) -> String {
        let family: String = local
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let scheme = if self.plain { "http" } else { "https" };
        let containers = serde_json::json!([{
            "name": family,
            "image": pinned,
            "memory": 128,
            "essential": true,
        }]);
        format!(
            "aws ecs register-task-definition --endpoint-url {scheme}://{} --family {family} \\\n    --container-definitions '{containers}'",
            self.host
        )
    }

    fn render_for(&self, tag: Option<&Reference>, digest: &Reference) -> Markup {
        html! {
            @for (label, command) in self.list(tag, digest) {
                div.cmdrow {
                    span.muted { (label) }
                    pre.cmd { code { (command) } }
                    (copy_button(&command, &format!("Copy {label} command")))
                }
            }
        }
    }

    fn render(&self) -> Markup {
        html! { div #commands { (self.render_for(self.tag.as_ref(), &self.digest)) } }
    }
}

fn platforms(repo: &RepoName, commands: &Commands, children: &[Descriptor]) -> Markup {
    html! {
        h2 { "Platforms" }
        table.rows #platforms {
            thead { tr { th scope="col" { "Platform" } th scope="col" { "Digest" } th.num scope="col" { "Size" } th scope="col" { "Pull" } } }
            tbody {
                @for child in children {
                    @let by_digest = Reference::Digest(child.digest.clone());
                    @let pull = format!("docker pull {}", commands.image(&by_digest));
                    tr {
                        td { @match &child.platform { Some(p) => (p.name()), None => span.muted { "(none)" } } }
                        td { a.mono href=(image_path(repo, &by_digest)) title=(child.digest) { (short_digest(&child.digest)) } }
                        td.num { (size(child.size)) }
                        td { code { (pull) } (copy_button(&pull, "Copy pull command")) }
                    }
                }
            }
        }
    }
}

fn layers(layers: &[Descriptor], history: Option<Vec<&str>>) -> Markup {
    html! {
        h2 { "Layers" }
        table #layers {
            thead {
                tr {
                    th.num scope="col" { "#" }
                    th scope="col" { "Digest" }
                    th scope="col" { "Media type" }
                    th.num scope="col" { "Size" }
                    @if history.is_some() { th scope="col" { "Created by" } }
                }
            }
            tbody {
                @for (n, layer) in layers.iter().enumerate() {
                    tr {
                        td.num { (n + 1) }
                        td { code title=(layer.digest) { (short_digest(&layer.digest)) } }
                        td { code { (layer.media_type) } }
                        td.num { (size(layer.size)) }
                        @if let Some(step) = history.as_ref().and_then(|h| h.get(n)) {
                            td { code title=(step) { (cut(step)) } }
                        }
                    }
                }
            }
        }
    }
}

fn words(list: &Option<Vec<String>>) -> Option<String> {
    list.as_ref()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::to_string(l).unwrap_or_default())
}

fn config_section(config: &ConfigView) -> Markup {
    html! {
        @match config {
            ConfigView::None => {}
            ConfigView::TooLarge => { h2 { "Config" } p.muted { "The config is larger than 1 MiB; not shown." } }
            ConfigView::Unreadable => { h2 { "Config" } p.muted { "The config could not be read." } }
            ConfigView::Shown(c) => {
                @let run = c.config.as_ref();
                h2 { "Config" }
                dl.facts #config {
                    dt { "Platform" } dd { (c.os) "/" (c.architecture) }
                    @if let Some(e) = run.and_then(|r| words(&r.entrypoint)) { dt { "Entrypoint" } dd { code { (e) } } }
                    @if let Some(e) = run.and_then(|r| words(&r.cmd)) { dt { "Cmd" } dd { code { (e) } } }
                    @if let Some(w) = run.and_then(|r| r.working_dir.as_deref()).filter(|w| !w.is_empty()) { dt { "Working dir" } dd { code { (w) } } }
                    @if let Some(u) = run.and_then(|r| r.user.as_deref()).filter(|u| !u.is_empty()) { dt { "User" } dd { code { (u) } } }
                    @if let Some(ports) = run.and_then(|r| r.exposed_ports.as_ref()).filter(|p| !p.is_empty()) {
                        dt { "Exposed ports" } dd { @for p in ports.keys() { span.badge { (p) } " " } }
                    }
                    @if let Some(env) = run.and_then(|r| r.env.as_ref()).filter(|e| !e.is_empty()) {
                        dt { "Environment" } dd { @for e in env { code { (e) } br; } }
                    }
                    @if let Some(labels) = run.and_then(|r| r.labels.as_ref()).filter(|l| !l.is_empty()) {
                        dt { "Labels" } dd { @for (k, v) in labels { code { (k) "=" (v) } br; } }
                    }
                }
            }
        }
    }
}

fn referrers_section(repo: &RepoName, referrers: &[Referrer]) -> Markup {
    let mut groups: BTreeMap<&str, Vec<&Referrer>> = BTreeMap::new();
    for r in referrers.iter().take(MAX_LISTED) {
        groups
            .entry(r.artifact_type.as_deref().unwrap_or("(no artifact type)"))
            .or_default()
            .push(r);
    }
    html! {
        h2 { "Referrers" }
        @if groups.is_empty() {
            p.muted { "No signatures, SBOMs or other artifacts refer to this manifest." }
        }
        @for (artifact_type, items) in &groups {
            h3 { code { (artifact_type) } }
            table.referrers {
                thead { tr { th scope="col" { "Digest" } th scope="col" { "Type" } th.num scope="col" { "Size" } } }
                tbody {
                    @for r in items {
                        tr {
                            td { a.mono href=(image_path(repo, &Reference::Digest(r.digest.clone()))) title=(r.digest) { (short_digest(&r.digest)) } }
                            td { (kind(&r.media_type)) }
                            td.num { (size(r.size)) }
                        }
                    }
                }
            }
        }
        @if referrers.len() > MAX_LISTED { p { (more(referrers.len())) } }
    }
}
