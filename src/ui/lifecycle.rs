//! `/ui/r/{repo}/-/lifecycle`: a repository's lifecycle policy as a form and
//! as JSON, a preview of exactly which images it would expire and the bytes
//! that frees, applying it now (behind a confirmation), deleting it, tag
//! immutability, and the audit log's lifecycle entries.
//!
//! The preview is the ECR API's: `Registry::plan_expiry` runs
//! `LifecyclePolicy::evaluate` over the same candidates as
//! StartLifecyclePolicyPreview, so the two can never disagree (the console's
//! preview is not stored; the API's stays as it was). Each POST declares the
//! ECR operation it equals ([`Action::need`]), judged by `access::authorize`
//! as the API judges that operation; the page offers only those forms the
//! viewer may submit.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};

use super::access::{
    APPLY_LIFECYCLE_POLICY, DELETE_LIFECYCLE_POLICY, Need, PREVIEW_LIFECYCLE_POLICY,
    PUT_IMAGE_TAG_MUTABILITY, PUT_LIFECYCLE_POLICY, may_call,
};
use super::delete::reclaim_text;
use super::error::{UiError, UiResult};
use super::layout::{self, MAX_LISTED, more, page as shell, short_digest, time};
use super::session::Viewer;
use super::{Console, image_path, lifecycle_path, repo_path};
use crate::http::Query;
use crate::notifications::{Action as Event, Notice};
use crate::oci::{Reference, RepoName};
use crate::registry::lifecycle::{LifecyclePolicy, MAX_TEXT, PolicyRule, RuleAction, Selection};
use crate::registry::{LifecycleError, PlannedExpiry, Reclaimable};

/// The most rules the form edits (a JSON policy is bounded by its size).
pub const MAX_RULES: usize = 50;
/// Audit entries shown.
const HISTORY: u32 = 20;
/// The tag statuses and count types a rule may have.
const STATUSES: [&str; 3] = ["tagged", "untagged", "any"];
const COUNT_TYPES: [&str; 3] = ["imageCountMoreThan", "sinceImagePushed", "sinceImagePulled"];

/// What the viewer may change here, each as the ECR API would allow it.
#[derive(Debug, Clone, Copy, Default)]
struct Rights {
    edit: bool,
    delete: bool,
    apply: bool,
    mutability: bool,
}

impl Rights {
    async fn of(console: &Console, viewer: &Viewer, repo: &RepoName) -> UiResult<Rights> {
        let p = &viewer.principal;
        Ok(Rights {
            edit: may_call(console, p, repo, PUT_LIFECYCLE_POLICY).await?,
            delete: may_call(console, p, repo, DELETE_LIFECYCLE_POLICY).await?,
            apply: may_call(console, p, repo, APPLY_LIFECYCLE_POLICY).await?,
            mutability: may_call(console, p, repo, PUT_IMAGE_TAG_MUTABILITY).await?,
        })
    }
}

/// A POST to the page, parsed from its form.
#[derive(Debug)]
pub enum Action {
    /// PutLifecyclePolicy with the submitted policy.
    Save(Draft),
    /// StartLifecyclePolicyPreview of the submitted policy (nothing stored).
    Preview(Draft),
    /// The confirmation of applying the stored policy now.
    Apply,
    /// Applying it.
    ApplyConfirmed,
    /// DeleteLifecyclePolicy.
    DeletePolicy,
    /// PutImageTagMutability, without exclusion filters.
    Mutability(&'static str),
}

/// A submitted policy: its text, or why the form's rules make none.
#[derive(Debug)]
pub struct Draft(Result<String, String>);

impl Action {
    pub fn parse(pairs: &[(String, String)]) -> UiResult<Action> {
        let fields: HashMap<&str, &str> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let draft = || match fields.get("source").copied() {
            Some("json") => {
                let text = fields.get("policy").copied().unwrap_or_default().trim();
                if text.len() > MAX_TEXT {
                    Draft(Err(format!(
                        "A lifecycle policy is at most {MAX_TEXT} characters"
                    )))
                } else {
                    Draft(Ok(text.to_string()))
                }
            }
            _ => Draft(policy_from_fields(&fields)),
        };
        Ok(match fields.get("what").copied() {
            Some("save") => Action::Save(draft()),
            Some("preview") => Action::Preview(draft()),
            Some("apply") => Action::Apply,
            Some("apply-confirm") => Action::ApplyConfirmed,
            Some("delete-policy") => Action::DeletePolicy,
            Some("mutability") => match fields.get("mutability").copied() {
                Some("MUTABLE") => Action::Mutability("MUTABLE"),
                Some("IMMUTABLE") => Action::Mutability("IMMUTABLE"),
                _ => return Err(UiError::BadRequest("mutability is MUTABLE or IMMUTABLE")),
            },
            _ => return Err(UiError::BadRequest("unknown action")),
        })
    }

    /// What the action needs: the ECR operation it equals.
    pub fn need(&self) -> Need {
        match self {
            Action::Save(_) => Need::Ecr(PUT_LIFECYCLE_POLICY),
            // StartLifecyclePolicyPreview needs pull: it changes nothing.
            Action::Preview(_) => Need::Ecr(PREVIEW_LIFECYCLE_POLICY),
            Action::Apply | Action::ApplyConfirmed => Need::Ecr(APPLY_LIFECYCLE_POLICY),
            Action::DeletePolicy => Need::Ecr(DELETE_LIFECYCLE_POLICY),
            Action::Mutability(_) => Need::Ecr(PUT_IMAGE_TAG_MUTABILITY),
        }
    }
}

/// A comma-separated list field; `None` when it names nothing.
fn list(text: &str) -> Option<Vec<String>> {
    let items: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    (!items.is_empty()).then_some(items)
}

/// The policy text the form's rule rows (`r{i}.priority`, …) describe; a
/// row without a priority is no rule. Validation is the registry's.
fn policy_from_fields(fields: &HashMap<&str, &str>) -> Result<String, String> {
    let mut rules = Vec::new();
    for i in 0..=MAX_RULES {
        let get = |name: &str| {
            fields
                .get(format!("r{i}.{name}").as_str())
                .map_or("", |v| v.trim())
        };
        let priority = get("priority");
        if priority.is_empty() {
            continue;
        }
        let number = |name: &str, what: &str| {
            get(name)
                .parse::<i64>()
                .map_err(|_| format!("Rule {}: {what} must be a whole number", i + 1))
        };
        let count_type = get("count_type").to_string();
        rules.push(PolicyRule {
            rule_priority: number("priority", "the priority")?,
            description: Some(get("description").to_string()).filter(|d| !d.is_empty()),
            selection: Selection {
                tag_status: get("status").to_string(),
                tag_prefix_list: list(get("prefixes")),
                tag_pattern_list: list(get("patterns")),
                count_unit: (count_type != "imageCountMoreThan").then(|| "days".to_string()),
                count_type,
                count_number: number("count_number", "the count")?,
            },
            action: RuleAction {
                kind: "expire".into(),
            },
        });
        if rules.len() > MAX_RULES {
            return Err(format!("At most {MAX_RULES} rules"));
        }
    }
    if rules.is_empty() {
        return Err("Give at least one rule a priority".into());
    }
    serde_json::to_string_pretty(&LifecyclePolicy { rules })
        .map_err(|_| "The rules could not be written as JSON".to_string())
}

/// What a policy would expire now, and what that frees.
struct Preview {
    rows: Vec<PlannedExpiry>,
    reclaim: Reclaimable,
}

/// The preview of `text`, or the policy's own complaint.
async fn preview(
    console: &Console,
    repo: &RepoName,
    text: &str,
) -> UiResult<Result<Preview, String>> {
    let policy = match LifecyclePolicy::parse(text) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e.0)),
    };
    let rows = console.registry.plan_expiry(repo, &policy).await?;
    let digests: Vec<_> = rows
        .iter()
        .map(|p| p.image.manifest.digest.clone())
        .collect();
    let reclaim = console.registry.reclaimable(repo, &digests, None).await?;
    Ok(Ok(Preview { rows, reclaim }))
}

/// What a change just did, shown after its redirect (a fixed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Saved,
    Deleted,
    Applied,
    Mutability,
}

impl Done {
    fn parse(s: &str) -> Option<Done> {
        match s {
            "saved" => Some(Done::Saved),
            "deleted" => Some(Done::Deleted),
            "applied" => Some(Done::Applied),
            "mutability" => Some(Done::Mutability),
            _ => None,
        }
    }
}

/// Everything the page shows.
struct View<'a> {
    repo: &'a RepoName,
    viewer: &'a Viewer,
    rights: Rights,
    mutability: String,
    filters: Vec<String>,
    /// The stored policy's text.
    policy: Option<String>,
    /// Its preview (or its complaint, for a text stored before a rule changed).
    stored_preview: Option<Result<Preview, String>>,
    /// A submitted policy shown back: its text, and its preview or problem.
    draft: Option<(String, Result<Preview, String>)>,
    done: Option<(Done, u64)>,
    history: Vec<crate::storage::metadata::AuditRecord>,
}

async fn view<'a>(console: &Console, viewer: &'a Viewer, repo: &'a RepoName) -> UiResult<View<'a>> {
    let registry = &console.registry;
    let settings = registry.repository(repo).await?;
    let policy = match registry.lifecycle_policy(repo).await {
        Ok(record) => Some(record.text),
        Err(LifecycleError::NoPolicy(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let stored_preview = match &policy {
        Some(text) => Some(preview(console, repo, text).await?),
        None => None,
    };
    Ok(View {
        repo,
        viewer,
        rights: Rights::of(console, viewer, repo).await?,
        mutability: settings.tag_mutability,
        filters: settings.mutability_filters,
        policy,
        stored_preview,
        draft: None,
        done: None,
        history: registry.lifecycle_history(repo, HISTORY).await?,
    })
}

/// `GET /ui/r/{repo}/-/lifecycle` (pull already checked).
pub async fn page(console: &Console, viewer: &Viewer, repo: &RepoName, query: &Query) -> UiResult {
    let mut v = view(console, viewer, repo).await?;
    v.done = query.get("done").and_then(Done::parse).map(|d| {
        let n = query.get("expired").and_then(|n| n.parse().ok());
        (d, n.unwrap_or(0))
    });
    Ok(layout::html(render(&v)).into_response())
}

/// `POST /ui/r/{repo}/-/lifecycle` (already authorized for `action.need()`).
pub async fn submit(
    console: &Console,
    viewer: &Viewer,
    repo: &RepoName,
    action: Action,
) -> UiResult {
    let registry = &console.registry;
    let back =
        |done: &str| Redirect::to(&format!("{}?done={done}", lifecycle_path(repo))).into_response();
    // Recorded under the names the ECR operations use, so the log reads the
    // same whichever way a policy changed.
    let subject = viewer.principal.subject();
    let record = |action: &'static str, detail: String| {
        let actor = crate::audit::actor(&subject).to_string();
        async move {
            console
                .auth
                .audit
                .record(&actor, action, repo.as_str(), "", &detail)
                .await;
        }
    };
    match action {
        Action::Save(Draft(Ok(text))) => match registry.put_lifecycle_policy(repo, &text).await {
            Ok(()) => {
                tracing::info!(repo = %repo, "console lifecycle policy saved");
                record("policy.lifecycle", "via=console".into()).await;
                Ok(back("saved"))
            }
            Err(LifecycleError::Invalid(e)) => again(console, viewer, repo, text, Err(e.0)).await,
            Err(e) => Err(e.into()),
        },
        Action::Save(Draft(Err(problem))) | Action::Preview(Draft(Err(problem))) => {
            again(console, viewer, repo, String::new(), Err(problem)).await
        }
        Action::Preview(Draft(Ok(text))) => {
            let outcome = preview(console, repo, &text).await?;
            let mut v = view(console, viewer, repo).await?;
            v.draft = Some((text, outcome));
            Ok(layout::html(render(&v)).into_response())
        }
        Action::Apply => confirm_apply(console, viewer, repo).await,
        Action::ApplyConfirmed => {
            let done = registry.run_lifecycle(repo, false).await?;
            tracing::info!(repo = %repo, expired = done.len(), "console lifecycle policy applied");
            let actor = viewer.principal.subject();
            crate::registry::record_lifecycle(
                &console.auth.audit,
                crate::audit::actor(&actor),
                repo,
                &done,
            )
            .await;
            let notices: Vec<Notice> = done
                .iter()
                .map(|p| Notice {
                    action: Event::Delete,
                    repository: repo.to_string(),
                    media_type: Some(p.image.manifest.media_type.clone()),
                    digest: Some(p.image.manifest.digest.to_string()),
                    size: Some(p.image.manifest.size),
                    tag: None,
                })
                .collect();
            if !notices.is_empty() {
                console.notifier.notify_job("lifecycle", &notices);
            }
            let to = format!(
                "{}?done=applied&expired={}",
                lifecycle_path(repo),
                done.len()
            );
            Ok(Redirect::to(&to).into_response())
        }
        Action::DeletePolicy => {
            registry.delete_lifecycle_policy(repo).await?;
            tracing::info!(repo = %repo, "console lifecycle policy deleted");
            record("policy.lifecycle.delete", "via=console".into()).await;
            Ok(back("deleted"))
        }
        Action::Mutability(value) => {
            registry.set_tag_mutability(repo, value, &[]).await?;
            tracing::info!(repo = %repo, mutability = value, "console tag mutability set");
            record("policy.tag_mutability", format!("via=console {value}")).await;
            Ok(back("mutability"))
        }
    }
}

/// The page again with a submitted policy's problem beside its form (400).
async fn again(
    console: &Console,
    viewer: &Viewer,
    repo: &RepoName,
    text: String,
    problem: Result<Preview, String>,
) -> UiResult {
    let mut v = view(console, viewer, repo).await?;
    let text = if text.is_empty() {
        v.policy.clone().unwrap_or_default()
    } else {
        text
    };
    v.draft = Some((text, problem));
    Ok((StatusCode::BAD_REQUEST, layout::html(render(&v))).into_response())
}

/// What applying the stored policy now would expire, and the button that does it.
async fn confirm_apply(console: &Console, viewer: &Viewer, repo: &RepoName) -> UiResult {
    let text = console.registry.lifecycle_policy(repo).await?.text;
    let outcome = preview(console, repo, &text).await?;
    let path = lifecycle_path(repo);
    let body = html! {
        (crumbs(repo))
        h1 { "Apply the lifecycle policy now?" }
        @match &outcome {
            Err(problem) => p.warning { "The stored policy is not valid: " (problem) }
            Ok(p) => {
                (preview_table("preview", repo, p))
                @if !p.rows.is_empty() {
                    form method="post" action=(path) {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        input type="hidden" name="what" value="apply-confirm";
                        button.danger type="submit" { "Expire " (p.rows.len()) " image(s)" }
                    }
                }
            }
        }
        p { a href=(path) { "Cancel" } }
    };
    Ok(layout::html(shell("Apply lifecycle policy", Some(viewer), body)).into_response())
}

fn crumbs(repo: &RepoName) -> Markup {
    html! {
        p.crumbs { a href="/ui/" { "Repositories" } " / " a href=(repo_path(repo)) { (repo) } " / " }
    }
}

/// A preview's table; `id` names it (a page may show two).
fn preview_table(id: &str, repo: &RepoName, p: &Preview) -> Markup {
    html! {
        @if p.rows.is_empty() {
            p.preview-empty { "No image would expire now." }
        } @else {
            p.preview-summary {
                (p.rows.len()) " image(s) would expire. " (reclaim_text(p.reclaim))
            }
            table.rows id=(id) {
                thead { tr { th scope="col" { "Digest" } th scope="col" { "Tags" } th scope="col" { "Pushed" } th.num scope="col" { "Rule" } } }
                tbody {
                    @for row in p.rows.iter().take(MAX_LISTED) {
                        @let digest = &row.image.manifest.digest;
                        tr data-digest=(digest) {
                            td { a.mono href=(image_path(repo, &Reference::Digest(digest.clone()))) title=(digest) { (short_digest(digest)) } }
                            td {
                                @for (n, t) in row.image.tags.iter().take(MAX_LISTED).enumerate() {
                                    @if n > 0 { ", " } code { (t) }
                                }
                                (more(row.image.tags.len()))
                            }
                            td { (time(row.image.manifest.pushed_at_ms)) }
                            td.num { (row.expiry.rule_priority) }
                        }
                    }
                }
            }
            (more(p.rows.len()))
        }
    }
}

fn render(v: &View<'_>) -> Markup {
    let path = lifecycle_path(v.repo);
    let r = v.rights;
    let body = html! {
        (crumbs(v.repo))
        h1 { "Lifecycle · " (v.repo) }
        @if let Some((done, n)) = v.done {
            p.notice role="status" {
                @match done {
                    Done::Saved => "The lifecycle policy was saved.",
                    Done::Deleted => "The lifecycle policy was deleted.",
                    Done::Applied => { "The policy was applied: " (n) " image(s) expired. Their blobs are reclaimed by the next garbage collection." },
                    Done::Mutability => "Tag immutability was changed.",
                }
            }
        }
        h2 { "Tag immutability" }
        p #mutability { "Tags are " strong { (v.mutability) } "."
            @if !v.filters.is_empty() { " Exclusions: " @for f in &v.filters { code { (f) } " " } } }
        @if r.mutability {
            form method="post" action=(path) {
                input type="hidden" name="csrf" value=(v.viewer.csrf);
                input type="hidden" name="what" value="mutability";
                @if v.mutability == "MUTABLE" {
                    input type="hidden" name="mutability" value="IMMUTABLE";
                    button type="submit" { "Make tags immutable" }
                } @else {
                    input type="hidden" name="mutability" value="MUTABLE";
                    button type="submit" { "Make tags mutable" }
                    @if !v.filters.is_empty() { span.muted { " (removes the exclusions)" } }
                }
            }
        }
        h2 { "Policy" }
        @match &v.policy {
            None => p #no-policy { "This repository has no lifecycle policy." },
            Some(text) => {
                @if let Ok(policy) = LifecyclePolicy::parse(text) { (rules_table(&policy)) }
                @if !r.edit { pre.policy { code { (text) } } }
            }
        }
        @if let Some((_, outcome)) = &v.draft {
            @match outcome {
                Err(problem) => p.warning #policy-problem role="alert" { (problem) },
                Ok(p) => { h2 { "Preview of the submitted policy (not saved)" } (preview_table("draft-preview", v.repo, p)) }
            }
        }
        @if let Some(outcome) = &v.stored_preview {
            h2 { "What the saved policy would expire now" }
            @match outcome {
                Err(problem) => p.warning { (problem) },
                Ok(p) => (preview_table("preview", v.repo, p)),
            }
        }
        @if r.edit { (editors(v, &path)) }
        @if v.policy.is_some() && (r.apply || r.delete) {
            div.toolbar {
                @if r.apply {
                    form method="post" action=(path) {
                        input type="hidden" name="csrf" value=(v.viewer.csrf);
                        input type="hidden" name="what" value="apply";
                        button type="submit" { "Apply now…" }
                    }
                }
                @if r.delete {
                    form method="post" action=(path) {
                        input type="hidden" name="csrf" value=(v.viewer.csrf);
                        input type="hidden" name="what" value="delete-policy";
                        button.danger type="submit" { "Delete the policy" }
                    }
                }
            }
        }
        h2 { "Past runs" }
        @if v.history.is_empty() {
            p.muted { "None recorded." }
        } @else {
            table.rows #history {
                thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Detail" } } }
                tbody {
                    @for h in &v.history {
                        tr { td { (time(h.entry.at_ms)) } td { (h.entry.actor) } td { (h.entry.action) } td { (h.entry.detail) } }
                    }
                }
            }
        }
    };
    shell("Lifecycle", Some(v.viewer), body)
}

fn rules_table(policy: &LifecyclePolicy) -> Markup {
    let mut rules: Vec<&PolicyRule> = policy.rules.iter().collect();
    rules.sort_by_key(|r| r.rule_priority);
    html! {
        table.rows #rules {
            thead { tr { th.num scope="col" { "Priority" } th scope="col" { "Description" } th scope="col" { "Selects" } th scope="col" { "Expires" } } }
            tbody {
                @for rule in rules {
                    @let s = &rule.selection;
                    tr {
                        td.num { (rule.rule_priority) }
                        td { (rule.description.as_deref().unwrap_or("")) }
                        td {
                            (s.tag_status)
                            @if let Some(l) = &s.tag_prefix_list { " with prefixes " code { (l.join(", ")) } }
                            @if let Some(l) = &s.tag_pattern_list { " matching " code { (l.join(", ")) } }
                        }
                        td {
                            @match s.count_type.as_str() {
                                "imageCountMoreThan" => { "beyond the newest " (s.count_number) }
                                "sinceImagePulled" => { "not pulled for " (s.count_number) " days" }
                                _ => { "pushed over " (s.count_number) " days ago" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The two editors: rule rows and JSON, each its own form with Preview and Save.
fn editors(v: &View<'_>, path: &str) -> Markup {
    let text = match &v.draft {
        Some((text, _)) if !text.is_empty() => text.clone(),
        _ => v.policy.clone().unwrap_or_default(),
    };
    let mut rules: Vec<PolicyRule> = LifecyclePolicy::parse(&text)
        .map(|p| p.rules)
        .or_else(|_| serde_json::from_str::<LifecyclePolicy>(&text).map(|p| p.rules))
        .unwrap_or_default();
    rules.sort_by_key(|r| r.rule_priority);
    rules.truncate(MAX_RULES);
    let buttons = html! {
        button type="submit" name="what" value="preview" { "Preview" }
        " "
        button type="submit" name="what" value="save" { "Save" }
    };
    html! {
        h2 { "Edit the policy" }
        form #policy-form method="post" action=(path) {
            input type="hidden" name="csrf" value=(v.viewer.csrf);
            input type="hidden" name="source" value="form";
            @for (i, rule) in rules.iter().map(Some).chain([None]).enumerate() {
                (rule_row(i, rule))
            }
            p.muted { "A rule without a priority is left out; fill the last row to add one." }
            (buttons)
        }
        form #policy-json method="post" action=(path) {
            input type="hidden" name="csrf" value=(v.viewer.csrf);
            input type="hidden" name="source" value="json";
            label for="policy" { "As JSON (ECR's lifecycle policy text, at most " (MAX_TEXT) " characters)" }
            textarea #policy name="policy" rows="16" cols="80" spellcheck="false" { (text) }
            (buttons)
        }
    }
}

fn rule_row(i: usize, rule: Option<&PolicyRule>) -> Markup {
    let s = rule.map(|r| &r.selection);
    let id = |name: &str| format!("r{i}.{name}");
    let joined = |l: Option<&Vec<String>>| l.map(|l| l.join(", ")).unwrap_or_default();
    html! {
        fieldset.rule {
            legend { @if rule.is_some() { "Rule " (i + 1) } @else { "New rule" } }
            label { "Priority " input type="number" min="1" name=(id("priority")) value=[rule.map(|r| r.rule_priority)]; }
            label { "Description " input type="text" maxlength="256" name=(id("description")) value=[rule.and_then(|r| r.description.as_deref())]; }
            label { "Tag status "
                select name=(id("status")) {
                    @for st in STATUSES { option value=(st) selected[s.is_some_and(|s| s.tag_status == st)] { (st) } }
                }
            }
            label { "Tag prefixes " input type="text" name=(id("prefixes")) placeholder="prod, release-" value=(joined(s.and_then(|s| s.tag_prefix_list.as_ref()))); }
            label { "Tag patterns " input type="text" name=(id("patterns")) placeholder="v*-stable" value=(joined(s.and_then(|s| s.tag_pattern_list.as_ref()))); }
            label { "Count type "
                select name=(id("count_type")) {
                    @for ct in COUNT_TYPES { option value=(ct) selected[s.is_some_and(|s| s.count_type == ct)] { (ct) } }
                }
            }
            label { "Count (images, or days) " input type="number" min="1" name=(id("count_number")) value=[s.map(|s| s.count_number)]; }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rule_rows_become_a_valid_policy_and_blank_rows_none() {
        let form = pairs(&[
            ("what", "save"),
            ("source", "form"),
            ("r0.priority", "2"),
            ("r0.status", "any"),
            ("r0.count_type", "sinceImagePushed"),
            ("r0.count_number", "30"),
            ("r1.priority", "1"),
            ("r1.status", "tagged"),
            ("r1.prefixes", " prod , release-,"),
            ("r1.count_type", "imageCountMoreThan"),
            ("r1.count_number", "5"),
            ("r2.priority", ""),
            ("r2.status", "tagged"),
        ]);
        let Action::Save(Draft(Ok(text))) = Action::parse(&form).unwrap() else {
            panic!("a saved draft");
        };
        let policy = LifecyclePolicy::parse(&text).unwrap();
        assert_eq!(policy.rules.len(), 2);
        let any = &policy.rules[0].selection;
        assert_eq!(any.count_unit.as_deref(), Some("days"));
        let tagged = &policy.rules[1].selection;
        assert_eq!(
            tagged.tag_prefix_list,
            Some(vec!["prod".to_string(), "release-".to_string()])
        );
        assert_eq!(tagged.count_unit, None);
    }

    #[test]
    fn forms_are_bounded_and_actions_need_what_the_api_needs() {
        let bad = pairs(&[("what", "save"), ("r0.priority", "x")]);
        assert!(matches!(
            Action::parse(&bad).unwrap(),
            Action::Save(Draft(Err(_)))
        ));
        let huge = "x".repeat(MAX_TEXT + 1);
        let json = pairs(&[("what", "preview"), ("source", "json"), ("policy", &huge)]);
        let action = Action::parse(&json).unwrap();
        assert!(matches!(action, Action::Preview(Draft(Err(_)))));
        assert_eq!(action.need(), Need::Ecr(PREVIEW_LIFECYCLE_POLICY));
        assert!(Action::parse(&pairs(&[("what", "mutability"), ("mutability", "X")])).is_err());
        assert!(Action::parse(&pairs(&[("what", "drop")])).is_err());
        let needs = [
            ("delete-policy", DELETE_LIFECYCLE_POLICY),
            ("apply", APPLY_LIFECYCLE_POLICY),
            ("apply-confirm", APPLY_LIFECYCLE_POLICY),
        ];
        for (what, actions) in needs {
            let action = Action::parse(&pairs(&[("what", what)])).unwrap();
            assert_eq!(action.need(), Need::Ecr(actions), "{what}");
        }
    }
}
