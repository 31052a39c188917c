//! Token scopes (`type:name:action[,action]`) and the `access` claim they become.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::need::Action;

pub const PULL: &str = Action::Pull.as_str();
pub const PUSH: &str = Action::Push.as_str();
pub const DELETE: &str = Action::Delete.as_str();
/// Every action on a resource.
pub const ALL: &str = "*";

/// A requested or granted scope, e.g. `repository:team/app:pull,push`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `repository` or `registry`.
    pub kind: String,
    pub name: String,
    pub actions: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid scope {0:?}: expected type:name:action[,action]")]
pub struct InvalidScope(pub String);

impl FromStr for Scope {
    type Err = InvalidScope;

    /// The name may itself contain a colon (`host:5000/app`), so the type ends
    /// at the first colon and the actions start after the last one.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidScope(s.to_string());
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(bad)?;
        if kind.is_empty() || name.is_empty() {
            return Err(bad());
        }
        let actions = actions
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        Ok(Scope {
            kind: kind.to_string(),
            name: name.to_string(),
            actions,
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actions: Vec<&str> = self.actions.iter().map(String::as_str).collect();
        write!(f, "{}:{}:{}", self.kind, self.name, actions.join(","))
    }
}

impl Scope {
    pub fn repository(name: &str, actions: &[Action]) -> Scope {
        Scope {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|a| a.as_str().to_string()).collect(),
        }
    }

    /// `registry:catalog:*`, needed for `/v2/_catalog`.
    pub fn catalog() -> Scope {
        Scope {
            kind: "registry".into(),
            name: "catalog".into(),
            actions: [ALL.to_string()].into(),
        }
    }
}

/// One entry of a token's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl From<Scope> for Access {
    fn from(s: Scope) -> Self {
        Access {
            kind: s.kind,
            name: s.name,
            actions: s.actions.into_iter().collect(),
        }
    }
}

/// Does a granted action set cover `action`? `*` covers everything.
pub fn covers(granted: &BTreeSet<String>, action: &str) -> bool {
    granted.contains(action) || granted.contains(ALL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_with_ports_in_names() {
        let s: Scope = "repository:localhost:5000/team/app:pull,push"
            .parse()
            .unwrap();
        assert_eq!(s.kind, "repository");
        assert_eq!(s.name, "localhost:5000/team/app");
        assert_eq!(s.actions, ["pull", "push"].map(String::from).into());
        assert_eq!(
            s.to_string(),
            "repository:localhost:5000/team/app:pull,push"
        );
        assert_eq!(
            "registry:catalog:*".parse::<Scope>().unwrap(),
            Scope::catalog()
        );
        assert!("repository".parse::<Scope>().is_err());
        assert!("repository:pull".parse::<Scope>().is_err());
    }
}
