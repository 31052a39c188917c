//! The parser of the cluster query language: a recursive descent over
//! characters, where the argument's syntax depends on the operator before it
//! (a bare regex may hold parentheses, a list item may hold spaces).

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use super::{Comparison, Expression, Pattern, QueryError, Subject, Term, Test, Value, version};

/// How deeply `not` and parentheses may nest; bounds the recursion.
const MAX_DEPTH: usize = 64;

/// Parses a whole expression (its length already checked).
pub(super) fn expression(chars: Vec<char>) -> Result<Expression, QueryError> {
    let mut parser = Parser {
        chars,
        pos: 0,
        depth: 0,
    };
    let expression = parser.or()?;
    parser.skip_ws();
    match parser.peek() {
        None => Ok(expression),
        Some(c) => Err(parser.error(format!("unexpected '{c}'"))),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Exists,
    NotExists,
    In,
    NotIn,
    Matches,
    NotMatches,
}

// Longest first, so `!=` is not read as `!` and `!exists` not as `!`.
const SYMBOLS: [(&str, Op); 10] = [
    ("!exists", Op::NotExists),
    ("!in", Op::NotIn),
    ("==", Op::Eq),
    ("!=", Op::Ne),
    (">=", Op::Ge),
    ("<=", Op::Le),
    ("=~", Op::Matches),
    ("!~", Op::NotMatches),
    (">", Op::Gt),
    ("<", Op::Lt),
];

const WORDS: [(&str, Op); 12] = [
    ("equals", Op::Eq),
    ("not_equals", Op::Ne),
    ("greater_than", Op::Gt),
    ("greater_than_equal", Op::Ge),
    ("less_than", Op::Lt),
    ("less_than_equal", Op::Le),
    ("exists", Op::Exists),
    ("not_exists", Op::NotExists),
    ("in", Op::In),
    ("not_in", Op::NotIn),
    ("matches", Op::Matches),
    ("not_matches", Op::NotMatches),
];

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | '\\' | ':' | '@')
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn error(&self, what: impl Into<String>) -> QueryError {
        QueryError {
            at: self.pos,
            what: what.into(),
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn looking_at(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(i, c)| self.chars.get(self.pos + i) == Some(&c))
    }

    fn eat(&mut self, s: &str) -> bool {
        let found = self.looking_at(s);
        if found {
            self.pos += s.chars().count();
        }
        found
    }

    /// A word operator, not the start of a longer word (`and` in `android`).
    fn eat_keyword(&mut self, word: &str) -> bool {
        let len = word.chars().count();
        let ends = !self.chars.get(self.pos + len).copied().is_some_and(is_word);
        ends && self.eat(word)
    }

    fn deeper(&mut self) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("expression nested too deeply"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expression, QueryError> {
        let mut left = self.and()?;
        loop {
            self.skip_ws();
            if self.eat("||") || self.eat_keyword("or") {
                let right = self.and()?;
                left = Expression::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn and(&mut self) -> Result<Expression, QueryError> {
        let mut left = self.unary()?;
        loop {
            self.skip_ws();
            if self.eat("&&") || self.eat_keyword("and") {
                let right = self.unary()?;
                left = Expression::And(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn unary(&mut self) -> Result<Expression, QueryError> {
        self.skip_ws();
        if self.eat("!") || self.eat_keyword("not") {
            self.deeper()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expression::Not(Box::new(inner)));
        }
        if self.eat("(") {
            self.deeper()?;
            let inner = self.or()?;
            self.skip_ws();
            if !self.eat(")") {
                return Err(self.error("expected ')'"));
            }
            self.depth -= 1;
            return Ok(inner);
        }
        self.term().map(Expression::Term)
    }

    fn term(&mut self) -> Result<Term, QueryError> {
        let start = self.pos;
        let word = self.word();
        let subject = match word.as_str() {
            "agentConnected" => Subject::AgentConnected,
            "agentVersion" => Subject::AgentVersion,
            "ec2InstanceId" => Subject::Ec2InstanceId,
            "registeredAt" => Subject::RegisteredAt,
            "runningTasksCount" => Subject::RunningTasksCount,
            "task:group" => Subject::TaskGroup,
            _ => match word.strip_prefix("attribute:") {
                Some(name) if !name.is_empty() => Subject::Attribute(name.to_owned()),
                _ => {
                    self.pos = start;
                    return Err(self.error(if word.is_empty() {
                        "expected a subject".to_owned()
                    } else {
                        format!("unknown subject '{word}'")
                    }));
                }
            },
        };
        self.skip_ws();
        let op_at = self.pos;
        let op = self.operator()?;
        if !allowed(&subject, op) {
            self.pos = op_at;
            return Err(self.error("operator not supported for this subject"));
        }
        let (test, negated) = match op {
            Op::Exists | Op::NotExists => (Test::Exists, op == Op::NotExists),
            Op::In | Op::NotIn => (Test::In(self.list(&subject)?), op == Op::NotIn),
            Op::Matches | Op::NotMatches => (Test::Matches(self.pattern()?), op == Op::NotMatches),
            Op::Eq | Op::Ne => {
                let value = self.value(&subject, false)?;
                (Test::Compare(Comparison::Equal, value), op == Op::Ne)
            }
            Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                let comparison = match op {
                    Op::Gt => Comparison::Greater,
                    Op::Ge => Comparison::GreaterOrEqual,
                    Op::Lt => Comparison::Less,
                    _ => Comparison::LessOrEqual,
                };
                (
                    Test::Compare(comparison, self.value(&subject, true)?),
                    false,
                )
            }
        };
        Ok(Term {
            subject,
            test,
            negated,
        })
    }

    fn word(&mut self) -> String {
        let mut word = String::new();
        while let Some(c) = self.peek().filter(|c| is_word(*c)) {
            word.push(c);
            self.pos += 1;
        }
        word
    }

    fn operator(&mut self) -> Result<Op, QueryError> {
        for (symbol, op) in SYMBOLS {
            if self.eat(symbol) {
                return Ok(op);
            }
        }
        let start = self.pos;
        let word = self.word();
        match WORDS.iter().find(|(w, _)| *w == word) {
            Some((_, op)) => Ok(*op),
            None => {
                self.pos = start;
                Err(self.error("expected an operator"))
            }
        }
    }

    /// A quoted string, or a bare run ending at whitespace, `&&`, `||`, or
    /// a `)` it did not open (so `not(a =~ (x|y).*)` reads `(x|y).*`).
    fn raw(&mut self, in_list: bool) -> Result<String, QueryError> {
        self.skip_ws();
        if let Some(quote) = self.peek().filter(|c| *c == '"' || *c == '\'') {
            self.pos += 1;
            let mut text = String::new();
            loop {
                match self.peek() {
                    None => return Err(self.error("unterminated quoted value")),
                    Some(c) => {
                        self.pos += 1;
                        if c == quote {
                            return Ok(text);
                        }
                        text.push(c);
                    }
                }
            }
        }
        let start = self.pos;
        let mut text = String::new();
        let mut open = 0usize;
        while let Some(c) = self.peek() {
            let ends = (c.is_whitespace() && !in_list)
                || (c == ')' && open == 0)
                || (in_list && (c == ',' || c == ']'))
                || self.looking_at("&&")
                || self.looking_at("||");
            if ends {
                break;
            }
            match c {
                '(' => open += 1,
                ')' => open = open.saturating_sub(1),
                _ => {}
            }
            text.push(c);
            self.pos += 1;
        }
        let text = text.trim().to_owned();
        if text.is_empty() {
            self.pos = start;
            return Err(self.error("expected a value"));
        }
        Ok(text)
    }

    fn value(&mut self, subject: &Subject, ordered: bool) -> Result<Value, QueryError> {
        let at = self.pos;
        let raw = self.raw(false)?;
        typed(subject, &raw, ordered).map_err(|what| QueryError { at, what })
    }

    fn list(&mut self, subject: &Subject) -> Result<Vec<Value>, QueryError> {
        self.skip_ws();
        if !self.eat("[") {
            return Err(self.error("expected '['"));
        }
        let mut items = Vec::new();
        loop {
            let at = self.pos;
            let raw = self.raw(true)?;
            items.push(typed(subject, &raw, false).map_err(|what| QueryError { at, what })?);
            self.skip_ws();
            if self.eat("]") {
                return Ok(items);
            }
            if !self.eat(",") {
                return Err(self.error("expected ',' or ']'"));
            }
        }
    }

    fn pattern(&mut self) -> Result<Pattern, QueryError> {
        let at = self.pos;
        let raw = self.raw(false)?;
        regex_lite::Regex::new(&format!("^(?:{raw})$"))
            .map(Pattern)
            .map_err(|e| QueryError {
                at,
                what: format!("invalid pattern: {e}"),
            })
    }
}

/// Which operators each subject takes (reference §2); equality and `in`
/// apply to all.
fn allowed(subject: &Subject, op: Op) -> bool {
    use Subject::*;
    match op {
        Op::Eq | Op::Ne | Op::In | Op::NotIn => true,
        Op::Gt | Op::Ge | Op::Lt | Op::Le => {
            matches!(subject, AgentVersion | RegisteredAt | RunningTasksCount)
        }
        Op::Exists | Op::NotExists => matches!(subject, Attribute(_) | TaskGroup),
        Op::Matches | Op::NotMatches => !matches!(subject, RegisteredAt | RunningTasksCount),
    }
}

fn typed(subject: &Subject, raw: &str, ordered: bool) -> Result<Value, String> {
    match subject {
        Subject::AgentConnected => match raw {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("'{raw}' is not true or false")),
        },
        Subject::RunningTasksCount => raw
            .parse()
            .map(Value::Count)
            .map_err(|_| format!("'{raw}' is not a count")),
        Subject::RegisteredAt => timestamp(raw)
            .map(Value::Time)
            .ok_or_else(|| format!("'{raw}' is not a date such as 2018-06-18T22:28:28+00:00")),
        Subject::AgentVersion if ordered && version(raw).is_none() => {
            Err(format!("'{raw}' is not a version such as 1.20.3"))
        }
        _ => Ok(Value::Text(raw.to_owned())),
    }
}

/// `2018-06-18T22:28:28+00:00`, `…Z`, `…` without a zone (UTC), `2018-06-18`.
fn timestamp(raw: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Some(t);
    }
    let local = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    if let Ok(t) = PrimitiveDateTime::parse(raw, &local) {
        return Some(t.assume_utc());
    }
    Date::parse(raw, &format_description!("[year]-[month]-[day]"))
        .ok()
        .map(|d| d.midnight().assume_utc())
}
