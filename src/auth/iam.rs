//! Repository policies: IAM-style JSON documents, as ECR's `SetRepositoryPolicy`
//! takes them, that allow or deny `ecr:*` actions to Wharf users. An explicit
//! Deny wins over everything; an Allow adds to what the configuration's rules
//! grant. `/v2/` requests are judged by the ECR actions a Docker client's
//! pull, push or delete needs.

use serde_json::Value;

use super::policy::Principal;
use super::scope::{DELETE, PULL, PUSH};
use crate::glob::glob_match;

/// ECR's limit on the document's length.
pub const MAX_POLICY_CHARS: usize = 10_240;

/// ECR actions a `/v2/` pull, push or delete amounts to.
pub fn ecr_actions(action: &str) -> &'static [&'static str] {
    match action {
        PULL => &["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
        PUSH => &[
            "ecr:PutImage",
            "ecr:InitiateLayerUpload",
            "ecr:UploadLayerPart",
            "ecr:CompleteLayerUpload",
            "ecr:BatchCheckLayerAvailability",
        ],
        DELETE => &["ecr:BatchDeleteImage"],
        _ => &[],
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// No statement speaks of this principal and action.
    Silent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    /// `"*"`: every signed-in user for an Allow; everybody, anonymous included, for a Deny.
    Everyone,
    /// `arn:aws:iam::<this registry>:root` or the bare registry id: every user of this registry.
    Account,
    User(String),
    /// Principals that can never be a Wharf user (other accounts, AWS services).
    Foreign,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    allow: bool,
    who: Vec<Who>,
    /// Lower-cased action patterns (`ecr:batchgetimage`, `ecr:*`, `*`).
    actions: Vec<String>,
}

/// A parsed, validated repository policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryPolicy {
    statements: Vec<Statement>,
}

#[derive(Debug, thiserror::Error)]
#[error("Invalid repository policy provided: {0}")]
pub struct InvalidPolicy(String);

fn invalid(message: impl Into<String>) -> InvalidPolicy {
    InvalidPolicy(message.into())
}

/// A string or an array of strings, as IAM allows for most fields.
fn strings(value: &Value, field: &str) -> Result<Vec<String>, InvalidPolicy> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid(format!("{field} must hold strings")))
            })
            .collect(),
        _ => Err(invalid(format!(
            "{field} must be a string or a non-empty array of strings"
        ))),
    }
}

impl RepositoryPolicy {
    /// Parses and validates a document; `registry_id` is this registry's account number.
    pub fn parse(text: &str, registry_id: &str) -> Result<Self, InvalidPolicy> {
        let length = text.chars().count();
        if length == 0 || length > MAX_POLICY_CHARS {
            return Err(invalid(format!(
                "the policy text must be 1 to {MAX_POLICY_CHARS} characters"
            )));
        }
        let doc: Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let doc = doc
            .as_object()
            .ok_or_else(|| invalid("the policy must be a JSON object"))?;
        for key in doc.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(invalid(format!("unknown field {key}")));
            }
        }
        match doc.get("Version").and_then(Value::as_str) {
            Some("2012-10-17" | "2008-10-17") | None => {}
            Some(other) => return Err(invalid(format!("unsupported Version {other}"))),
        }
        let statements = match doc.get("Statement") {
            Some(Value::Array(items)) if !items.is_empty() => items.iter().collect(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => return Err(invalid("Statement must be an object or a non-empty array")),
        };
        let statements = statements
            .into_iter()
            .map(|s| Statement::parse(s, registry_id))
            .collect::<Result<_, _>>()?;
        Ok(RepositoryPolicy { statements })
    }

    /// What the document says about `principal` doing `action` (`ecr:Operation`).
    pub fn decide(&self, principal: &Principal, action: &str) -> Decision {
        let action = action.to_ascii_lowercase();
        let mut decision = Decision::Silent;
        for s in &self.statements {
            if !s.actions.iter().any(|p| glob_match(p, &action)) {
                continue;
            }
            if !s.who.iter().any(|w| w.matches(principal, s.allow)) {
                continue;
            }
            if !s.allow {
                return Decision::Deny;
            }
            decision = Decision::Allow;
        }
        decision
    }

    /// Whether `principal` may do `action` when the configuration's rules
    /// say `by_rules`: a Deny refuses, an Allow grants, silence defers.
    pub fn permits(&self, principal: &Principal, action: &str, by_rules: bool) -> bool {
        match self.decide(principal, action) {
            Decision::Deny => false,
            Decision::Allow => true,
            Decision::Silent => by_rules,
        }
    }

    /// The same for a `/v2/` action: every ECR action it amounts to must be
    /// allowed by the document for it to grant, and a Deny of any refuses.
    pub fn permits_registry_action(
        &self,
        principal: &Principal,
        action: &str,
        by_rules: bool,
    ) -> bool {
        let decisions: Vec<Decision> = ecr_actions(action)
            .iter()
            .map(|a| self.decide(principal, a))
            .collect();
        if decisions.contains(&Decision::Deny) {
            false
        } else if !decisions.is_empty() && decisions.iter().all(|d| *d == Decision::Allow) {
            true
        } else {
            by_rules
        }
    }
}

impl Statement {
    fn parse(value: &Value, registry_id: &str) -> Result<Self, InvalidPolicy> {
        let s = value
            .as_object()
            .ok_or_else(|| invalid("each statement must be an object"))?;
        for key in s.keys() {
            match key.as_str() {
                "Sid" | "Effect" | "Principal" | "Action" | "Resource" => {}
                "Condition" | "NotAction" | "NotPrincipal" | "NotResource" => {
                    return Err(invalid(format!("{key} is not supported by Wharf")));
                }
                other => return Err(invalid(format!("unknown statement field {other}"))),
            }
        }
        let allow = match s.get("Effect").and_then(Value::as_str) {
            Some("Allow") => true,
            Some("Deny") => false,
            _ => return Err(invalid("Effect must be Allow or Deny")),
        };
        let principal = s
            .get("Principal")
            .ok_or_else(|| invalid("each statement needs a Principal"))?;
        let who = match principal {
            Value::String(star) if star == "*" => vec![Who::Everyone],
            Value::Object(kinds) if !kinds.is_empty() => {
                let mut who = Vec::new();
                for (kind, names) in kinds {
                    let names = strings(names, "Principal")?;
                    match kind.as_str() {
                        "AWS" => {
                            for name in names {
                                who.push(Who::parse(&name, registry_id)?);
                            }
                        }
                        "Service" | "Federated" | "CanonicalUser" => who.push(Who::Foreign),
                        other => return Err(invalid(format!("unknown principal type {other}"))),
                    }
                }
                who
            }
            _ => return Err(invalid("Principal must be \"*\" or an object")),
        };
        let actions = strings(
            s.get("Action")
                .ok_or_else(|| invalid("each statement needs an Action"))?,
            "Action",
        )?
        .into_iter()
        .map(|a| {
            let lower = a.to_ascii_lowercase();
            if lower == "*" || lower.starts_with("ecr:") && lower.len() > 4 {
                Ok(lower)
            } else {
                Err(invalid(format!("action {a} is not an ecr: action")))
            }
        })
        .collect::<Result<_, _>>()?;
        Ok(Statement {
            allow,
            who,
            actions,
        })
    }
}

impl Who {
    fn parse(name: &str, registry_id: &str) -> Result<Self, InvalidPolicy> {
        if name == "*" {
            return Ok(Who::Everyone);
        }
        if name == registry_id {
            return Ok(Who::Account);
        }
        let Some(rest) = name.strip_prefix("arn:aws:iam::") else {
            // A bare Wharf user name.
            return if name.is_empty() || name.contains(':') {
                Err(invalid(format!("invalid principal {name}")))
            } else {
                Ok(Who::User(name.to_string()))
            };
        };
        let (account, resource) = rest
            .split_once(':')
            .ok_or_else(|| invalid(format!("invalid principal {name}")))?;
        if account != registry_id {
            return Ok(Who::Foreign);
        }
        if resource == "root" {
            return Ok(Who::Account);
        }
        match resource.strip_prefix("user/") {
            // IAM user ARNs may carry a path: user/path/to/NAME.
            Some(path) => match path.rsplit('/').next() {
                Some(user) if !user.is_empty() => Ok(Who::User(user.to_string())),
                _ => Err(invalid(format!("invalid principal {name}"))),
            },
            None => Ok(Who::Foreign),
        }
    }

    fn matches(&self, principal: &Principal, allow: bool) -> bool {
        match (self, principal) {
            (Who::Foreign, _) => false,
            (Who::User(name), Principal::User { name: mine, .. }) => name == mine,
            (Who::Everyone | Who::Account, Principal::User { .. }) => true,
            // Access tokens are limited to their own scopes: a policy can
            // take from them but never widen them.
            (Who::Everyone | Who::Account, Principal::Token { .. }) => !allow,
            (Who::Everyone, Principal::Anonymous) => !allow,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "000000000000";

    fn user(name: &str) -> Principal {
        Principal::User {
            name: name.into(),
            groups: vec![],
        }
    }

    fn policy(text: &str) -> RepositoryPolicy {
        RepositoryPolicy::parse(text, ACCOUNT).unwrap()
    }

    #[test]
    fn allows_and_denies_by_user_and_action() {
        let p = policy(
            r#"{"Version":"2012-10-17","Statement":[
                {"Sid":"ci","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::000000000000:user/ci","bob"]},
                 "Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer","ecr:Put*"]},
                {"Effect":"Deny","Principal":"*","Action":"ecr:BatchDeleteImage"},
                {"Effect":"Deny","Principal":{"AWS":"mallory"},"Action":"*"}
            ]}"#,
        );
        let cases = [
            ("ci", "ecr:BatchGetImage", Decision::Allow),
            ("ci", "ECR:batchgetimage", Decision::Allow),
            ("bob", "ecr:PutImage", Decision::Allow),
            ("bob", "ecr:PutLifecyclePolicy", Decision::Allow),
            ("alice", "ecr:BatchGetImage", Decision::Silent),
            ("ci", "ecr:BatchDeleteImage", Decision::Deny),
            ("mallory", "ecr:DescribeImages", Decision::Deny),
        ];
        for (who, action, want) in cases {
            assert_eq!(p.decide(&user(who), action), want, "{who} {action}");
        }
        assert!(p.permits_registry_action(&user("ci"), PULL, false));
        // Push needs every layer action too, which the policy does not give.
        assert!(!p.permits_registry_action(&user("ci"), PUSH, false));
        assert!(p.permits_registry_action(&user("alice"), PUSH, true));
        assert!(!p.permits_registry_action(&user("alice"), DELETE, true));
        assert!(!p.permits_registry_action(&user("mallory"), PULL, true));
    }

    #[test]
    fn deny_wins_over_allow_in_any_order() {
        let p = policy(
            r#"{"Statement":[
                {"Effect":"Deny","Principal":{"AWS":"bob"},"Action":"ecr:PutImage"},
                {"Effect":"Allow","Principal":"*","Action":"ecr:*"}
            ]}"#,
        );
        assert_eq!(p.decide(&user("bob"), "ecr:PutImage"), Decision::Deny);
        assert_eq!(p.decide(&user("bob"), "ecr:BatchGetImage"), Decision::Allow);
        assert!(!p.permits(&user("bob"), "ecr:PutImage", true));
    }

    #[test]
    fn everyone_allows_users_only_but_denies_all() {
        let allow = policy(r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"ecr:*"}}"#);
        let token = Principal::Token {
            name: "ci".into(),
            scopes: vec![],
        };
        assert_eq!(
            allow.decide(&Principal::Anonymous, "ecr:BatchGetImage"),
            Decision::Silent
        );
        assert_eq!(allow.decide(&token, "ecr:BatchGetImage"), Decision::Silent);
        let deny = policy(
            r#"{"Statement":{"Effect":"Deny","Principal":{"AWS":"*"},"Action":"ecr:BatchGetImage"}}"#,
        );
        assert_eq!(
            deny.decide(&Principal::Anonymous, "ecr:BatchGetImage"),
            Decision::Deny
        );
        assert_eq!(deny.decide(&token, "ecr:BatchGetImage"), Decision::Deny);
        let root = policy(
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"ecr:*"}}"#,
        );
        assert_eq!(root.decide(&user("x"), "ecr:PutImage"), Decision::Allow);
        let other = policy(
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/x"},"Action":"ecr:*"}}"#,
        );
        assert_eq!(other.decide(&user("x"), "ecr:PutImage"), Decision::Silent);
    }

    #[test]
    fn rejects_invalid_documents() {
        let bad = [
            "",
            "not json",
            "[]",
            r#"{"Statement":[]}"#,
            r#"{"Version":"2020-01-01","Statement":{"Effect":"Allow","Principal":"*","Action":"ecr:*"}}"#,
            r#"{"Statement":{"Effect":"Maybe","Principal":"*","Action":"ecr:*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Action":"ecr:*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":"*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"ecr:*","Condition":{}}}"#,
            r#"{"Statement":{"Effect":"Allow","NotPrincipal":"*","Action":"ecr:*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":{"Alien":"x"},"Action":"ecr:*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":[]}}"#,
        ];
        for text in bad {
            assert!(
                RepositoryPolicy::parse(text, ACCOUNT).is_err(),
                "accepted {text:?}"
            );
        }
        let long = format!(
            r#"{{"Id":"{}","Statement":{{"Effect":"Allow","Principal":"*","Action":"ecr:*"}}}}"#,
            "x".repeat(MAX_POLICY_CHARS)
        );
        assert!(RepositoryPolicy::parse(&long, ACCOUNT).is_err());
    }
}
