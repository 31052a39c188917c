//! Lifecycle policies with ECR's rules: the document, its validation, and the
//! evaluation that decides which images expire. Pure: the caller supplies the
//! images and the clock.
//!
//! Semantics (ECR's documentation): rules apply in `rulePriority` order,
//! lowest number first; an image whose tags match a rule's selection can only
//! be expired by that rule or a higher-priority one, yet it still counts for
//! lower-priority rules; every entry of a prefix or pattern list must be
//! matched by some tag of the image (AND); `imageCountMoreThan` keeps the
//! newest N by push time; each image expires by at most one rule. Beyond ECR,
//! images in use (pinned) are never expired, though they are counted.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::glob::glob_match;
use crate::oci::Digest;

const MIN_TEXT: usize = 100;
/// The longest policy text, as ECR allows.
pub const MAX_TEXT: usize = 30_720;
const MAX_WILDCARDS: usize = 4;
const DAY_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selection {
    pub tag_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_prefix_list: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_pattern_list: Option<Vec<String>>,
    pub count_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_unit: Option<String>,
    pub count_number: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleAction {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRule {
    pub rule_priority: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub selection: Selection,
    pub action: RuleAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecyclePolicy {
    pub rules: Vec<PolicyRule>,
}

/// An image as the evaluator sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub digest: Digest,
    pub tags: Vec<String>,
    pub pushed_at_ms: i64,
    /// Last pull, if any was recorded.
    pub pulled_at_ms: Option<i64>,
    /// In use (by a runner task or service): counted, never expired.
    pub pinned: bool,
}

/// One image a policy expires, and the rule that does it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    pub digest: Digest,
    pub rule_priority: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
/// Why a policy text is refused; the ECR adapter words it as ECR does.
#[error("{0}")]
pub struct PolicyError(pub String);

impl LifecyclePolicy {
    /// Parses and validates a policy text as ECR does.
    pub fn parse(text: &str) -> Result<LifecyclePolicy, PolicyError> {
        let bad = |m: &str| PolicyError(m.to_string());
        if !(MIN_TEXT..=MAX_TEXT).contains(&text.len()) {
            return Err(bad(&format!(
                "Lifecycle policy text must be {MIN_TEXT} to {MAX_TEXT} characters"
            )));
        }
        let policy: LifecyclePolicy = serde_json::from_str(text)
            .map_err(|e| PolicyError(format!("Lifecycle policy validation failure: {e}")))?;
        if policy.rules.is_empty() {
            return Err(bad("Lifecycle policy must contain at least one rule"));
        }
        let mut priorities = HashSet::new();
        let max_priority = policy
            .rules
            .iter()
            .map(|r| r.rule_priority)
            .max()
            .unwrap_or(0);
        let mut untagged_rules = 0;
        for rule in &policy.rules {
            let s = &rule.selection;
            if rule.rule_priority < 1 {
                return Err(bad("rulePriority must be a positive integer"));
            }
            if !priorities.insert(rule.rule_priority) {
                return Err(bad(&format!(
                    "Rule priorities must be unique: {} appears twice",
                    rule.rule_priority
                )));
            }
            if rule.action.kind != "expire" {
                return Err(bad("action type must be 'expire'"));
            }
            let lists = [&s.tag_prefix_list, &s.tag_pattern_list];
            let has_list = lists.iter().any(|l| l.is_some());
            match s.tag_status.as_str() {
                "tagged" => {
                    if !has_list {
                        return Err(bad(
                            "A rule with tagStatus 'tagged' needs tagPrefixList or tagPatternList",
                        ));
                    }
                    if lists.iter().all(|l| l.is_some()) {
                        return Err(bad("tagPrefixList and tagPatternList cannot both be given"));
                    }
                    if lists
                        .iter()
                        .filter_map(|l| l.as_ref())
                        .any(|l| l.is_empty())
                    {
                        return Err(bad("tagPrefixList and tagPatternList must not be empty"));
                    }
                }
                "untagged" | "any" => {
                    if has_list {
                        return Err(bad(&format!(
                            "tagPrefixList and tagPatternList are only allowed with tagStatus 'tagged', not '{}'",
                            s.tag_status
                        )));
                    }
                    if s.tag_status == "untagged" {
                        untagged_rules += 1;
                    } else if rule.rule_priority != max_priority {
                        return Err(bad(
                            "The rule with tagStatus 'any' must have the highest rulePriority",
                        ));
                    }
                }
                other => {
                    return Err(bad(&format!(
                        "tagStatus must be tagged, untagged or any, not '{other}'"
                    )));
                }
            }
            if let Some(p) = s
                .tag_pattern_list
                .iter()
                .flatten()
                .find(|p| p.matches('*').count() > MAX_WILDCARDS)
            {
                return Err(bad(&format!(
                    "tag pattern '{p}' has more than {MAX_WILDCARDS} wildcards"
                )));
            }
            match s.count_type.as_str() {
                "imageCountMoreThan" if s.count_unit.is_some() => {
                    return Err(bad(
                        "countUnit is not allowed with countType 'imageCountMoreThan'",
                    ));
                }
                "sinceImagePushed" | "sinceImagePulled"
                    if s.count_unit.as_deref() != Some("days") =>
                {
                    return Err(bad(
                        "countUnit 'days' is required with countType 'sinceImagePushed' or 'sinceImagePulled'",
                    ));
                }
                "imageCountMoreThan" | "sinceImagePushed" | "sinceImagePulled" => {}
                other => return Err(bad(&format!("unknown countType '{other}'"))),
            }
            if s.count_number < 1 {
                return Err(bad("countNumber must be a positive integer"));
            }
        }
        if untagged_rules > 1 {
            return Err(bad("Only one rule can select untagged images"));
        }
        Ok(policy)
    }

    /// Which images expire at `now_ms`, in rule order.
    pub fn evaluate(&self, images: &[Candidate], now_ms: i64) -> Vec<Expiry> {
        let mut rules: Vec<&PolicyRule> = self.rules.iter().collect();
        rules.sort_by_key(|r| r.rule_priority);
        let mut claimed: HashSet<&Digest> = HashSet::new();
        let mut expiries = Vec::new();
        for rule in rules {
            let s = &rule.selection;
            let mut selected: Vec<&Candidate> = images.iter().filter(|i| selects(s, i)).collect();
            // Newest first: imageCountMoreThan keeps the head of this list.
            selected.sort_by(|a, b| {
                b.pushed_at_ms
                    .cmp(&a.pushed_at_ms)
                    .then_with(|| a.digest.to_string().cmp(&b.digest.to_string()))
            });
            // Saturating: a count of days no clock reaches keeps every image
            // (wrapping made a huge countNumber expire new images).
            let cutoff = now_ms.saturating_sub(s.count_number.saturating_mul(DAY_MS));
            for (rank, image) in selected.iter().enumerate() {
                let expires = match s.count_type.as_str() {
                    "imageCountMoreThan" => rank as i64 >= s.count_number,
                    "sinceImagePushed" => image.pushed_at_ms < cutoff,
                    "sinceImagePulled" => image.pulled_at_ms.unwrap_or(image.pushed_at_ms) < cutoff,
                    _ => false,
                };
                if expires && !image.pinned && !claimed.contains(&image.digest) {
                    expiries.push(Expiry {
                        digest: image.digest.clone(),
                        rule_priority: rule.rule_priority,
                    });
                }
            }
            claimed.extend(selected.iter().map(|i| &i.digest));
        }
        expiries
    }
}

/// Does a rule's selection match an image?
fn selects(s: &Selection, image: &Candidate) -> bool {
    match s.tag_status.as_str() {
        "untagged" => image.tags.is_empty(),
        "any" => true,
        "tagged" if image.tags.is_empty() => false,
        "tagged" => {
            let all_prefixes = s.tag_prefix_list.as_ref().is_none_or(|l| {
                l.iter()
                    .all(|p| image.tags.iter().any(|t| t.starts_with(p.as_str())))
            });
            let all_patterns = s.tag_pattern_list.as_ref().is_none_or(|l| {
                l.iter()
                    .all(|p| image.tags.iter().any(|t| glob_match(p, t)))
            });
            all_prefixes && all_patterns
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Algorithm;

    const NOW: i64 = 1_000 * DAY_MS;

    fn image(n: u8, tags: &[&str], age_days: i64) -> Candidate {
        Candidate {
            digest: Digest::compute(Algorithm::Sha256, &[n]),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            pushed_at_ms: NOW - age_days * DAY_MS - i64::from(n),
            pulled_at_ms: None,
            pinned: false,
        }
    }

    fn policy(rules: serde_json::Value) -> LifecyclePolicy {
        let mut text = serde_json::json!({ "rules": rules }).to_string();
        while text.len() < MIN_TEXT {
            text.push(' ');
        }
        LifecyclePolicy::parse(&text).unwrap()
    }

    fn rule(priority: i64, selection: serde_json::Value) -> serde_json::Value {
        serde_json::json!({ "rulePriority": priority, "selection": selection, "action": { "type": "expire" } })
    }

    fn expired(p: &LifecyclePolicy, images: &[Candidate]) -> Vec<(u8, i64)> {
        let index = |d: &Digest| {
            (0..=255u8)
                .find(|n| Digest::compute(Algorithm::Sha256, &[*n]) == *d)
                .unwrap()
        };
        let mut out: Vec<(u8, i64)> = p
            .evaluate(images, NOW)
            .iter()
            .map(|e| (index(&e.digest), e.rule_priority))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn count_keeps_the_newest() {
        let p = policy(serde_json::json!([rule(
            1,
            serde_json::json!({
            "tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "imageCountMoreThan", "countNumber": 2 })
        )]));
        let images = [
            image(1, &["prod-1"], 1),
            image(2, &["prod-2"], 2),
            image(3, &["prod-3"], 3),
            image(4, &["dev"], 9),
        ];
        assert_eq!(expired(&p, &images), vec![(3, 1)]);
    }

    #[test]
    fn lists_are_anded() {
        let p = policy(serde_json::json!([rule(
            1,
            serde_json::json!({
            "tagStatus": "tagged", "tagPatternList": ["prod*", "*-stable"], "countType": "sinceImagePushed",
            "countUnit": "days", "countNumber": 5 })
        )]));
        let images = [
            image(1, &["prod-1", "v1-stable"], 10), // both patterns matched, by different tags
            image(2, &["prod-2"], 10),              // only one pattern
            image(3, &["prod-3", "x-stable"], 1),   // too young
        ];
        assert_eq!(expired(&p, &images), vec![(1, 1)]);
    }

    #[test]
    fn higher_priority_rules_claim_but_lower_rules_count() {
        // Rule 1 keeps one "release" image; rule 2 keeps the newest two of any.
        let p = policy(serde_json::json!([
            rule(
                1,
                serde_json::json!({ "tagStatus": "tagged", "tagPrefixList": ["release"], "countType": "imageCountMoreThan", "countNumber": 1 })
            ),
            rule(
                2,
                serde_json::json!({ "tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 2 })
            ),
        ]));
        let images = [
            image(1, &["release-3"], 1),
            image(2, &["release-2"], 2),
            image(3, &["dev-1"], 3),
            image(4, &["dev-2"], 4),
            image(5, &[], 5),
        ];
        // Rule 1 expires release-2. Rule 2 counts 1 and 2 (claimed) as the newest two,
        // so 3, 4 and 5 exceed its count; it may expire them, but not 1 or 2.
        assert_eq!(expired(&p, &images), vec![(2, 1), (3, 2), (4, 2), (5, 2)]);
    }

    #[test]
    fn untagged_rule_and_pinned_images() {
        let p = policy(serde_json::json!([rule(
            1,
            serde_json::json!({
            "tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1 })
        )]));
        let mut pinned = image(2, &[], 30);
        pinned.pinned = true;
        let images = [
            image(1, &[], 30),
            pinned,
            image(3, &["v1"], 30),
            image(4, &[], 0),
        ];
        assert_eq!(expired(&p, &images), vec![(1, 1)]);
    }

    #[test]
    fn since_pulled_uses_pull_times() {
        let p = policy(serde_json::json!([rule(
            1,
            serde_json::json!({
            "tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 7 })
        )]));
        let mut recently_pulled = image(1, &["a"], 30);
        recently_pulled.pulled_at_ms = Some(NOW - DAY_MS);
        let images = [recently_pulled, image(2, &["b"], 30), image(3, &["c"], 2)];
        assert_eq!(expired(&p, &images), vec![(2, 1)]);
    }

    #[test]
    fn each_image_expires_by_one_rule_only() {
        let p = policy(serde_json::json!([
            rule(
                1,
                serde_json::json!({ "tagStatus": "tagged", "tagPrefixList": ["a"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1 })
            ),
            rule(
                2,
                serde_json::json!({ "tagStatus": "tagged", "tagPrefixList": ["a"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1 })
            ),
        ]));
        assert_eq!(expired(&p, &[image(1, &["a1"], 5)]), vec![(1, 1)]);
    }

    /// Found by tests/fuzz.rs: `countNumber * DAY_MS` wrapped, so a rule
    /// keeping images for 2^63 days expired every image, new ones included.
    #[test]
    fn day_counts_past_any_clock_keep_everything() {
        for days in [i64::MAX, 106_751_991_168, i64::from(u32::MAX) * 1_000] {
            let p = policy(serde_json::json!([rule(
                1,
                serde_json::json!({
                "tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": days })
            )]));
            let images = [image(1, &["a"], 0), image(2, &[], 900)];
            assert_eq!(expired(&p, &images), vec![], "countNumber {days}");
        }
    }

    #[test]
    fn validation_follows_ecr() {
        let text = |rules: serde_json::Value| {
            let mut t = serde_json::json!({ "rules": rules }).to_string();
            while t.len() < MIN_TEXT {
                t.push(' ');
            }
            LifecyclePolicy::parse(&t)
        };
        let count = |status: &str| serde_json::json!({ "tagStatus": status, "countType": "imageCountMoreThan", "countNumber": 1 });
        let tagged = serde_json::json!({ "tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 1 });
        assert!(text(serde_json::json!([rule(1, tagged.clone())])).is_ok());
        assert!(
            text(serde_json::json!([rule(1, count("tagged"))])).is_err(),
            "tagged needs a list"
        );
        let mut untagged_with_list = count("untagged");
        untagged_with_list["tagPrefixList"] = serde_json::json!(["v"]);
        assert!(
            text(serde_json::json!([rule(1, untagged_with_list)])).is_err(),
            "untagged forbids lists"
        );
        assert!(
            text(serde_json::json!([
                rule(1, tagged.clone()),
                rule(1, count("untagged"))
            ]))
            .is_err(),
            "unique priorities"
        );
        assert!(
            text(serde_json::json!([
                rule(1, count("any")),
                rule(2, tagged.clone())
            ]))
            .is_err(),
            "any must be last"
        );
        assert!(
            text(serde_json::json!([
                rule(1, count("untagged")),
                rule(2, count("untagged"))
            ]))
            .is_err(),
            "one untagged rule"
        );
        let mut stars = tagged.clone();
        stars.as_object_mut().unwrap().remove("tagPrefixList");
        stars["tagPatternList"] = serde_json::json!(["a*b*c*d*e*"]);
        assert!(
            text(serde_json::json!([rule(1, stars)])).is_err(),
            "at most four wildcards"
        );
        let mut days = tagged.clone();
        days["countType"] = "sinceImagePushed".into();
        assert!(
            text(serde_json::json!([rule(1, days.clone())])).is_err(),
            "days needed"
        );
        days["countUnit"] = "days".into();
        assert!(text(serde_json::json!([rule(1, days)])).is_ok());
        assert!(LifecyclePolicy::parse("{}").is_err(), "too short");
    }
}
