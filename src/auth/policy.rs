//! Who may do what: rules from the configuration, anonymous pull patterns, and
//! the scopes of access tokens. Grants are always the intersection of what was
//! asked and what is allowed.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::scope::{ALL, Access, DELETE, PULL, PUSH, Scope, covers};
use crate::glob::glob_match;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    User {
        name: String,
        groups: Vec<String>,
    },
    /// A machine credential, limited to its own scopes.
    Token {
        name: String,
        scopes: Vec<Scope>,
    },
}

impl Principal {
    /// The `sub` claim: empty for anonymous, as the token spec says.
    pub fn subject(&self) -> String {
        match self {
            Principal::Anonymous => String::new(),
            Principal::User { name, .. } => name.clone(),
            Principal::Token { name, .. } => format!("token:{name}"),
        }
    }
}

/// One permission rule of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// User names, `group:NAME`, or `*` for every signed-in user.
    pub who: Vec<String>,
    /// Repository name patterns; `*` matches any characters, `/` included.
    #[serde(default)]
    pub repositories: Vec<String>,
    /// `pull`, `push`, `delete` or `*`.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Grants `registry:catalog:*` (listing every repository).
    #[serde(default)]
    pub catalog: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub rules: Vec<Rule>,
    pub anonymous_pull: Vec<String>,
}

fn expand(actions: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for a in actions {
        if a == ALL {
            out.extend([PULL, PUSH, DELETE].map(String::from));
        } else {
            out.insert(a.clone());
        }
    }
    out
}

/// Whether `allowed` (as from [`Policy::allowed`]) permits `action`; asking
/// for `*` needs every action.
pub fn permits(allowed: &BTreeSet<String>, action: &str) -> bool {
    if action == ALL {
        allowed.contains(ALL) || [PULL, PUSH, DELETE].iter().all(|a| allowed.contains(*a))
    } else {
        covers(allowed, action)
    }
}

impl Policy {
    fn applies(rule: &Rule, principal: &Principal) -> bool {
        let Principal::User { name, groups } = principal else {
            return false;
        };
        rule.who.iter().any(|w| {
            w == "*"
                || w == name
                || w.strip_prefix("group:")
                    .is_some_and(|g| groups.iter().any(|mine| mine == g))
        })
    }

    /// Whether some rule (for an access token: some scope) lets `principal`
    /// do `action` to at least one repository.
    pub fn grants_somewhere(&self, principal: &Principal, action: &str) -> bool {
        match principal {
            Principal::Anonymous => false,
            Principal::Token { scopes, .. } => scopes.iter().any(|s| {
                s.kind == "repository"
                    && permits(
                        &expand(&s.actions.iter().cloned().collect::<Vec<_>>()),
                        action,
                    )
            }),
            Principal::User { .. } => self
                .rules
                .iter()
                .filter(|r| Self::applies(r, principal) && !r.repositories.is_empty())
                .any(|r| permits(&expand(&r.actions), action)),
        }
    }

    /// Whether some rule (for an access token: some scope) lets `principal`
    /// do every action to every repository: its pattern is `*` itself, not
    /// one that happens to match every name there is today.
    pub fn grants_everywhere(&self, principal: &Principal) -> bool {
        match principal {
            Principal::Anonymous => false,
            Principal::Token { scopes, .. } => scopes.iter().any(|s| {
                s.kind == "repository"
                    && s.name == ALL
                    && permits(&expand(&s.actions.iter().cloned().collect::<Vec<_>>()), ALL)
            }),
            Principal::User { .. } => self
                .rules
                .iter()
                .filter(|r| Self::applies(r, principal) && r.repositories.iter().any(|p| p == ALL))
                .any(|r| permits(&expand(&r.actions), ALL)),
        }
    }

    /// Everything `principal` may do to the resource (`*` expanded).
    pub fn allowed(&self, principal: &Principal, kind: &str, name: &str) -> BTreeSet<String> {
        let mut allowed = BTreeSet::new();
        match principal {
            Principal::Token { scopes, .. } => {
                for s in scopes
                    .iter()
                    .filter(|s| s.kind == kind && glob_match(&s.name, name))
                {
                    allowed.extend(expand(&s.actions.iter().cloned().collect::<Vec<_>>()));
                }
            }
            _ => {
                for rule in self.rules.iter().filter(|r| Self::applies(r, principal)) {
                    match kind {
                        "repository" if rule.repositories.iter().any(|p| glob_match(p, name)) => {
                            allowed.extend(expand(&rule.actions))
                        }
                        "registry" if name == "catalog" && rule.catalog => {
                            allowed.insert(ALL.to_string());
                        }
                        _ => {}
                    }
                }
            }
        }
        // Anonymous pull applies to everybody, signed in or not.
        if kind == "repository" && self.anonymous_pull.iter().any(|p| glob_match(p, name)) {
            allowed.insert(PULL.to_string());
        }
        allowed
    }
}

/// What of `asked` the `allowed` actions grant; `None` when nothing.
pub fn intersect(asked: &Scope, allowed: &BTreeSet<String>) -> Option<Access> {
    let actions: Vec<String> = asked
        .actions
        .iter()
        .filter(|a| permits(allowed, a))
        .cloned()
        .collect();
    (!actions.is_empty()).then(|| Access {
        kind: asked.kind.clone(),
        name: asked.name.clone(),
        actions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Action;

    impl Policy {
        fn grant(&self, principal: &Principal, requested: &[Scope]) -> Vec<Access> {
            requested
                .iter()
                .filter_map(|s| intersect(s, &self.allowed(principal, &s.kind, &s.name)))
                .collect()
        }
    }

    fn policy() -> Policy {
        Policy {
            rules: vec![
                Rule {
                    who: vec!["alice".into()],
                    repositories: vec!["team-a/*".into()],
                    actions: vec!["*".into()],
                    catalog: true,
                },
                Rule {
                    who: vec!["group:readers".into()],
                    repositories: vec!["*".into()],
                    actions: vec!["pull".into()],
                    catalog: false,
                },
            ],
            anonymous_pull: vec!["public/*".into()],
        }
    }

    fn user(name: &str, groups: &[&str]) -> Principal {
        Principal::User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn grants_are_intersections() {
        let p = policy();
        let asked = vec![
            Scope::repository("team-a/app", &[Action::Pull, Action::Push]),
            Scope::repository("team-b/app", &[Action::Push]),
        ];
        let granted = p.grant(&user("alice", &[]), &asked);
        assert_eq!(
            granted,
            vec![Access {
                kind: "repository".into(),
                name: "team-a/app".into(),
                actions: vec!["pull".into(), "push".into()]
            }]
        );
        let granted = p.grant(&user("bob", &["readers"]), &asked);
        assert_eq!(
            granted,
            vec![Access {
                kind: "repository".into(),
                name: "team-a/app".into(),
                actions: vec!["pull".into()]
            }]
        );
        assert!(p.grant(&user("mallory", &[]), &asked).is_empty());
    }

    #[test]
    fn anonymous_and_catalog() {
        let p = policy();
        let asked = vec![Scope::repository("public/x", &[Action::Pull, Action::Push])];
        assert_eq!(
            p.grant(&Principal::Anonymous, &asked)[0].actions,
            vec!["pull".to_string()]
        );
        assert!(
            p.grant(&Principal::Anonymous, &[Scope::catalog()])
                .is_empty()
        );
        assert_eq!(p.grant(&user("alice", &[]), &[Scope::catalog()]).len(), 1);
    }

    #[test]
    fn grants_somewhere() {
        let p = policy();
        assert!(p.grants_somewhere(&user("alice", &[]), "push"));
        assert!(!p.grants_somewhere(&user("bob", &["readers"]), "push"));
        assert!(p.grants_somewhere(&user("bob", &["readers"]), "pull"));
        assert!(!p.grants_somewhere(&Principal::Anonymous, "pull"));
        let token = |scope: &str| Principal::Token {
            name: "ci".into(),
            scopes: vec![scope.parse().unwrap()],
        };
        assert!(p.grants_somewhere(&token("repository:app/*:push"), "push"));
        assert!(!p.grants_somewhere(&token("repository:app/*:pull"), "push"));
    }

    #[test]
    fn grants_everywhere_needs_every_action_on_the_star_pattern() {
        let p = Policy {
            rules: vec![
                Rule {
                    who: vec!["root".into()],
                    repositories: vec!["*".into()],
                    actions: vec!["*".into()],
                    catalog: false,
                },
                Rule {
                    who: vec!["ops".into()],
                    repositories: vec!["*".into()],
                    actions: vec!["pull".into(), "push".into()],
                    catalog: false,
                },
                Rule {
                    who: vec!["team".into()],
                    repositories: vec!["team/*".into()],
                    actions: vec!["*".into()],
                    catalog: false,
                },
            ],
            anonymous_pull: vec!["*".into()],
        };
        assert!(p.grants_everywhere(&user("root", &[])));
        assert!(!p.grants_everywhere(&user("ops", &[])));
        assert!(!p.grants_everywhere(&user("team", &[])));
        assert!(!p.grants_everywhere(&Principal::Anonymous));
        let token = |scope: &str| Principal::Token {
            name: "t".into(),
            scopes: vec![scope.parse().unwrap()],
        };
        assert!(p.grants_everywhere(&token("repository:*:*")));
        assert!(p.grants_everywhere(&token("repository:*:pull,push,delete")));
        assert!(!p.grants_everywhere(&token("repository:*:pull,push")));
        assert!(!p.grants_everywhere(&token("repository:team/*:*")));
    }

    #[test]
    fn tokens_are_limited_to_their_scopes() {
        let p = policy();
        let token = Principal::Token {
            name: "ci".into(),
            scopes: vec!["repository:app/*:pull,push".parse().unwrap()],
        };
        let granted = p.grant(
            &token,
            &[Scope::repository(
                "app/web",
                &[Action::Pull, Action::Push, Action::Delete],
            )],
        );
        assert_eq!(
            granted[0].actions,
            vec!["pull".to_string(), "push".to_string()]
        );
        assert!(
            p.grant(&token, &[Scope::repository("team-a/app", &[Action::Pull])])
                .is_empty()
        );
    }
}
