//! The cluster query language (reference §2): `subject operator [argument]`
//! terms joined by `&&`/`and`, `||`/`or`, `!`/`not` and parentheses. Used by
//! memberOf constraints and by ListContainerInstances' `filter`.
//!
//! Inferred choices: `matches` is a whole-value match (as Java's
//! `String.matches`), through `regex-lite`, whose matching time is linear in
//! the input, since filters come from callers; a negative operator (`!=`,
//! `!exists`, `not_in`, `!~`) is the negation of its positive form, so
//! `task:group != db` holds on instances with no `db` task and
//! `attribute:x != v` holds where `x` is absent; `registeredAt` without a
//! zone is UTC.

use std::cmp::Ordering;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Instance;

mod parse;

/// The longest expression accepted (ECS's memberOf limit).
const MAX_CHARS: usize = 2000;

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Expression {
    And(Box<Expression>, Box<Expression>),
    Or(Box<Expression>, Box<Expression>),
    Not(Box<Expression>),
    Term(Term),
}

/// One `subject operator [argument]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub subject: Subject,
    pub test: Test,
    /// A negative operator: the term is the opposite of `test`.
    pub negated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    AgentConnected,
    AgentVersion,
    Attribute(String),
    Ec2InstanceId,
    RegisteredAt,
    RunningTasksCount,
    /// Multi-valued: the groups of the tasks on the instance.
    TaskGroup,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Exists,
    Compare(Comparison, Value),
    In(Vec<Value>),
    Matches(Pattern),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Comparison {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Comparison::Equal => ordering.is_eq(),
            Comparison::Less => ordering.is_lt(),
            Comparison::LessOrEqual => ordering.is_le(),
            Comparison::Greater => ordering.is_gt(),
            Comparison::GreaterOrEqual => ordering.is_ge(),
        }
    }
}

/// An argument, typed by its subject when parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Bool(bool),
    Count(u64),
    Time(OffsetDateTime),
}

/// A compiled `matches` pattern.
#[derive(Debug, Clone)]
pub struct Pattern(regex_lite::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// Why an expression did not parse; `at` counts characters from 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at character {at}")]
pub struct QueryError {
    pub at: usize,
    pub what: String,
}

impl Expression {
    /// Parses an expression of at most 2000 characters.
    pub fn parse(text: &str) -> Result<Expression, QueryError> {
        let chars: Vec<char> = text.chars().collect();
        if chars.len() > MAX_CHARS {
            return Err(QueryError {
                at: MAX_CHARS,
                what: format!("expression longer than {MAX_CHARS} characters"),
            });
        }
        parse::expression(chars)
    }

    /// Whether the instance satisfies the expression; `task:group` and
    /// `runningTasksCount` read `instance.tasks`.
    pub fn evaluate(&self, instance: &Instance) -> bool {
        match self {
            Expression::And(a, b) => a.evaluate(instance) && b.evaluate(instance),
            Expression::Or(a, b) => a.evaluate(instance) || b.evaluate(instance),
            Expression::Not(e) => !e.evaluate(instance),
            Expression::Term(term) => term.evaluate(instance),
        }
    }
}

impl Term {
    fn evaluate(&self, instance: &Instance) -> bool {
        let values = subject_values(&self.subject, instance);
        let positive = match &self.test {
            Test::Exists => !values.is_empty(),
            Test::Compare(comparison, arg) => values
                .iter()
                .any(|v| compare(&self.subject, v, arg).is_some_and(|o| comparison.holds(o))),
            Test::In(items) => values.iter().any(|v| {
                items
                    .iter()
                    .any(|item| compare(&self.subject, v, item) == Some(Ordering::Equal))
            }),
            Test::Matches(pattern) => values.iter().any(|v| pattern.0.is_match(&text_of(v))),
        };
        positive != self.negated
    }
}

fn subject_values(subject: &Subject, instance: &Instance) -> Vec<Value> {
    let text = |s: &Option<String>| s.iter().map(|s| Value::Text(s.clone())).collect();
    match subject {
        Subject::AgentConnected => vec![Value::Bool(instance.agent_connected)],
        Subject::AgentVersion => text(&instance.agent_version),
        Subject::Attribute(name) => instance
            .attributes
            .get(name)
            .map(|v| Value::Text(v.clone()))
            .into_iter()
            .collect(),
        Subject::Ec2InstanceId => text(&instance.ec2_instance_id),
        Subject::RegisteredAt => vec![Value::Time(instance.registered_at)],
        Subject::RunningTasksCount => {
            vec![Value::Count(
                u64::try_from(instance.tasks.len()).unwrap_or(u64::MAX),
            )]
        }
        Subject::TaskGroup => {
            let mut groups: Vec<&String> = instance.tasks.iter().map(|t| &t.group).collect();
            groups.sort();
            groups.dedup();
            groups.into_iter().map(|g| Value::Text(g.clone())).collect()
        }
    }
}

/// `None` when the two cannot be ordered (e.g. a version that is not one).
fn compare(subject: &Subject, value: &Value, arg: &Value) -> Option<Ordering> {
    match (value, arg) {
        (Value::Text(a), Value::Text(b)) if *subject == Subject::AgentVersion => {
            match (version(a), version(b)) {
                (Some(a), Some(b)) => Some(compare_versions(&a, &b)),
                _ => (a == b).then_some(Ordering::Equal),
            }
        }
        (Value::Text(a), Value::Text(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Count(a), Value::Count(b)) => Some(a.cmp(b)),
        (Value::Time(a), Value::Time(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::Text(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Count(n) => n.to_string(),
        Value::Time(t) => t.format(&Rfc3339).unwrap_or_default(),
    }
}

/// `1.20.3`, `v1.20`, `1.20.3-beta`: the dotted numbers before any suffix.
fn version(text: &str) -> Option<Vec<u64>> {
    let text = text.strip_prefix('v').unwrap_or(text);
    let core = text.split(['-', '+']).next()?;
    core.split('.')
        .map(|part| part.parse::<u64>().ok())
        .collect()
}

/// Missing trailing parts count as 0, so `1.20` equals `1.20.0`.
fn compare_versions(a: &[u64], b: &[u64]) -> Ordering {
    let len = a.len().max(b.len());
    (0..len)
        .map(|i| {
            let x = a.get(i).copied().unwrap_or(0);
            let y = b.get(i).copied().unwrap_or(0);
            x.cmp(&y)
        })
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}

#[cfg(test)]
mod tests;
