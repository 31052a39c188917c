//! Placement strategies and constraints as callers give them, parsed and
//! checked against ECS's limits (reference §2, "Inputs & limits").

use super::query::{Expression, QueryError};

/// At most this many strategy rules per request.
pub const MAX_STRATEGIES: usize = 5;
/// At most this many constraints per task, the task definition's included.
pub const MAX_CONSTRAINTS: usize = 10;
/// The longest memberOf expression.
pub const MAX_EXPRESSION_CHARS: usize = 2000;

/// One rule of `placementStrategy` as it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrategySpec<'a> {
    pub kind: &'a str,
    pub field: Option<&'a str>,
}

/// One entry of `placementConstraints` as it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConstraintSpec<'a> {
    pub kind: &'a str,
    pub expression: Option<&'a str>,
}

/// How to rank the candidate instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    Random,
    /// Prefer the bucket with the fewest tasks of the group.
    Spread(SpreadField),
    /// Prefer the instance with the least of this resource left.
    Binpack(BinpackField),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpreadField {
    /// `instanceId` or `host`: every instance is its own bucket.
    InstanceId,
    /// `attribute:NAME`: instances sharing a value form a bucket.
    Attribute(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinpackField {
    Cpu,
    Memory,
}

impl Strategy {
    /// The service default: spread over availability zones, then instances.
    pub fn service_default() -> Vec<Strategy> {
        vec![
            Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into())),
            Strategy::Spread(SpreadField::InstanceId),
        ]
    }

    /// Parses one rule; `random` ignores its field, as ECS documents.
    pub fn parse(spec: StrategySpec<'_>) -> Result<Strategy, RuleError> {
        let field = spec.field.map(str::trim).filter(|f| !f.is_empty());
        let bad_field = || RuleError::InvalidField {
            kind: spec.kind.to_owned(),
            field: field.unwrap_or_default().to_owned(),
        };
        match spec.kind {
            "random" => Ok(Strategy::Random),
            "spread" => {
                let field = field.ok_or_else(bad_field)?;
                if field.eq_ignore_ascii_case("instanceId") || field.eq_ignore_ascii_case("host") {
                    return Ok(Strategy::Spread(SpreadField::InstanceId));
                }
                match field.strip_prefix("attribute:") {
                    Some(name) if !name.is_empty() => {
                        Ok(Strategy::Spread(SpreadField::Attribute(name.to_owned())))
                    }
                    _ => Err(bad_field()),
                }
            }
            "binpack" => match field {
                Some(f) if f.eq_ignore_ascii_case("cpu") => {
                    Ok(Strategy::Binpack(BinpackField::Cpu))
                }
                Some(f) if f.eq_ignore_ascii_case("memory") => {
                    Ok(Strategy::Binpack(BinpackField::Memory))
                }
                _ => Err(bad_field()),
            },
            other => Err(RuleError::UnknownStrategyType(other.to_owned())),
        }
    }
}

/// A binding rule: instances that break it get no task.
#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    /// No two tasks of the same group on one instance.
    DistinctInstance,
    /// The instance must satisfy the expression.
    MemberOf(Expression),
}

impl Constraint {
    pub fn parse(spec: ConstraintSpec<'_>) -> Result<Constraint, RuleError> {
        match spec.kind {
            // ECS refuses even an empty string here.
            "distinctInstance" => match spec.expression {
                None => Ok(Constraint::DistinctInstance),
                Some(_) => Err(RuleError::DistinctInstanceExpression),
            },
            "memberOf" => {
                let text = spec
                    .expression
                    .filter(|e| !e.trim().is_empty())
                    .ok_or(RuleError::MemberOfWithoutExpression)?;
                if text.chars().count() > MAX_EXPRESSION_CHARS {
                    return Err(RuleError::ExpressionTooLong);
                }
                Ok(Constraint::MemberOf(Expression::parse(text)?))
            }
            other => Err(RuleError::UnknownConstraintType(other.to_owned())),
        }
    }
}

/// Parses a request's strategies (at most [`MAX_STRATEGIES`]).
pub fn parse_strategies(specs: &[StrategySpec<'_>]) -> Result<Vec<Strategy>, RuleError> {
    if specs.len() > MAX_STRATEGIES {
        return Err(RuleError::TooManyStrategies);
    }
    specs.iter().map(|s| Strategy::parse(*s)).collect()
}

/// Parses a request's constraints together with its task definition's,
/// which may only be memberOf; ten at most in all.
pub fn parse_constraints(
    request: &[ConstraintSpec<'_>],
    definition: &[ConstraintSpec<'_>],
) -> Result<Vec<Constraint>, RuleError> {
    if request.len().saturating_add(definition.len()) > MAX_CONSTRAINTS {
        return Err(RuleError::TooManyConstraints);
    }
    if let Some(spec) = definition.iter().find(|s| s.kind != "memberOf") {
        return Err(RuleError::DefinitionConstraint(spec.kind.to_owned()));
    }
    definition
        .iter()
        .chain(request)
        .map(|s| Constraint::parse(*s))
        .collect()
}

/// Why a strategy or constraint was refused. The messages are the texts of
/// ECS's `InvalidParameterException` (quoted where AWS's are known, shaped
/// after them otherwise); see [`RuleError::exception`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("The number of placement strategies must not exceed {MAX_STRATEGIES}.")]
    TooManyStrategies,
    #[error(
        "The number of placement constraints, including those of the task definition, must not exceed {MAX_CONSTRAINTS}."
    )]
    TooManyConstraints,
    #[error("Invalid placement strategy type '{0}'. Valid values are random, spread and binpack.")]
    UnknownStrategyType(String),
    #[error("Invalid field '{field}' for placement strategy '{kind}'.")]
    InvalidField { kind: String, field: String },
    #[error(
        "Invalid placement constraint type '{0}'. Valid values are distinctInstance and memberOf."
    )]
    UnknownConstraintType(String),
    #[error("distinctInstance expression should not be specified.")]
    DistinctInstanceExpression,
    #[error("memberOf placement constraint requires an expression.")]
    MemberOfWithoutExpression,
    #[error("Placement constraint expression must not exceed {MAX_EXPRESSION_CHARS} characters.")]
    ExpressionTooLong,
    #[error("constraint.type '{0}' is not supported.")]
    DefinitionConstraint(String),
    #[error("Invalid placement constraint expression: {0}")]
    Expression(#[from] QueryError),
}

impl RuleError {
    /// The ECS exception name (`__type`) this error is sent as.
    pub fn exception(&self) -> &'static str {
        match self {
            // RegisterTaskDefinition refuses these as a client error.
            RuleError::DefinitionConstraint(_) => "ClientException",
            _ => "InvalidParameterException",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(kind: &str, field: Option<&str>) -> Result<Strategy, RuleError> {
        Strategy::parse(StrategySpec { kind, field })
    }

    #[test]
    fn parses_strategy_fields() {
        assert_eq!(strategy("random", None), Ok(Strategy::Random));
        assert_eq!(
            strategy("spread", Some("host")),
            Ok(Strategy::Spread(SpreadField::InstanceId))
        );
        assert_eq!(
            strategy("spread", Some("instanceId")),
            Ok(Strategy::Spread(SpreadField::InstanceId))
        );
        assert_eq!(
            strategy("spread", Some("attribute:ecs.availability-zone")),
            Ok(Strategy::Spread(SpreadField::Attribute(
                "ecs.availability-zone".into()
            )))
        );
        assert_eq!(
            strategy("binpack", Some("memory")),
            Ok(Strategy::Binpack(BinpackField::Memory))
        );
        assert_eq!(
            strategy("binpack", Some("cpu")),
            Ok(Strategy::Binpack(BinpackField::Cpu))
        );
    }

    #[test]
    fn refuses_bad_strategies() {
        assert!(matches!(
            strategy("binpack", Some("disk")),
            Err(RuleError::InvalidField { .. })
        ));
        assert!(matches!(
            strategy("spread", None),
            Err(RuleError::InvalidField { .. })
        ));
        assert!(matches!(
            strategy("spread", Some("attribute:")),
            Err(RuleError::InvalidField { .. })
        ));
        assert_eq!(
            strategy("pack", None),
            Err(RuleError::UnknownStrategyType("pack".into()))
        );
        let six = [StrategySpec {
            kind: "random",
            field: None,
        }; 6];
        assert_eq!(parse_strategies(&six), Err(RuleError::TooManyStrategies));
        assert_eq!(parse_strategies(&six[..5]).map(|v| v.len()), Ok(5));
    }

    #[test]
    fn validates_constraints() {
        let distinct = ConstraintSpec {
            kind: "distinctInstance",
            expression: None,
        };
        let member = ConstraintSpec {
            kind: "memberOf",
            expression: Some("attribute:ecs.os-type == linux"),
        };
        assert_eq!(
            parse_constraints(&[distinct], &[member]).map(|c| c.len()),
            Ok(2)
        );
        let with_expression = ConstraintSpec {
            kind: "distinctInstance",
            expression: Some(""),
        };
        let err = parse_constraints(&[with_expression], &[]);
        assert_eq!(err, Err(RuleError::DistinctInstanceExpression));
        assert_eq!(
            RuleError::DistinctInstanceExpression.to_string(),
            "distinctInstance expression should not be specified."
        );
        assert_eq!(
            parse_constraints(&[], &[distinct]),
            Err(RuleError::DefinitionConstraint("distinctInstance".into()))
        );
        assert_eq!(
            parse_constraints(&[distinct; 6], &[member; 5]),
            Err(RuleError::TooManyConstraints)
        );
        let empty = ConstraintSpec {
            kind: "memberOf",
            expression: Some(" "),
        };
        assert_eq!(
            parse_constraints(&[empty], &[]),
            Err(RuleError::MemberOfWithoutExpression)
        );
        let long = "a".repeat(MAX_EXPRESSION_CHARS + 1);
        let long = ConstraintSpec {
            kind: "memberOf",
            expression: Some(&long),
        };
        assert_eq!(
            parse_constraints(&[long], &[]),
            Err(RuleError::ExpressionTooLong)
        );
        let broken = ConstraintSpec {
            kind: "memberOf",
            expression: Some("attribute:a =="),
        };
        assert!(matches!(
            parse_constraints(&[broken], &[]),
            Err(RuleError::Expression(_))
        ));
    }
}
