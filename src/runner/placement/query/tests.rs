//! The cluster query language: the reference's examples, every operator,
//! and the errors.

use std::collections::BTreeMap;

use time::macros::datetime;

use super::*;
use crate::runner::placement::{Resources, RunningTask};

fn host() -> Instance {
    Instance {
        id: "c0ffee".into(),
        ec2_instance_id: Some("i-0123456789abcdef0".into()),
        status: crate::runner::placement::InstanceStatus::Active,
        agent_connected: true,
        agent_version: Some("1.20.3".into()),
        registered_at: datetime!(2018-06-18 22:28:28 UTC),
        registered: Resources::default(),
        attributes: BTreeMap::from([
            ("ecs.instance-type".into(), "t2.micro".into()),
            ("ecs.availability-zone".into(), "us-east-1a".into()),
            ("ecs.os-type".into(), "linux".into()),
            ("stack".into(), "prod west".into()),
        ]),
        tasks: vec![
            RunningTask {
                id: "t1".into(),
                group: "database".into(),
                reserved: Resources::default(),
            },
            RunningTask {
                id: "t2".into(),
                group: "service:web".into(),
                reserved: Resources::default(),
            },
        ],
    }
}

fn holds(expression: &str) -> bool {
    match Expression::parse(expression) {
        Ok(e) => e.evaluate(&host()),
        Err(e) => panic!("{expression}: {e}"),
    }
}

fn error(expression: &str) -> QueryError {
    match Expression::parse(expression) {
        Ok(e) => panic!("{expression} parsed as {e:?}"),
        Err(e) => e,
    }
}

#[test]
fn the_reference_examples() {
    assert!(holds("attribute:ecs.instance-type =~ t2.*"));
    assert!(!holds("not(task:group == database)"));
    assert!(holds(
        "attribute:ecs.availability-zone in [us-east-1a, us-east-1b]"
    ));
    assert!(holds("registeredAt < 2018-06-18T22:28:29+00:00"));
    assert!(!holds("registeredAt < 2018-06-18T22:28:28+00:00"));
    assert!(holds("task:group == database"));
}

#[test]
fn equality_in_both_spellings() {
    for yes in [
        "attribute:ecs.os-type == linux",
        "attribute:ecs.os-type equals linux",
        "attribute:ecs.os-type != windows",
        "attribute:ecs.os-type not_equals windows",
        "attribute:stack == 'prod west'",
        "attribute:stack == \"prod west\"",
        "ec2InstanceId == i-0123456789abcdef0",
        "agentConnected == true",
        "agentConnected != false",
        "task:group != cache",
        "task:group == service:web",
    ] {
        assert!(holds(yes), "{yes}");
    }
    for no in [
        "attribute:ecs.os-type == windows",
        "attribute:ecs.os-type != linux",
        "attribute:missing == linux",
        "agentConnected == false",
        "task:group != database",
    ] {
        assert!(!holds(no), "{no}");
    }
    // The negation of a missing attribute's equality.
    assert!(holds("attribute:missing != linux"));
}

#[test]
fn ordering_on_counts_versions_and_dates() {
    for yes in [
        "runningTasksCount == 2",
        "runningTasksCount > 1",
        "runningTasksCount greater_than 1",
        "runningTasksCount >= 2",
        "runningTasksCount greater_than_equal 2",
        "runningTasksCount < 3",
        "runningTasksCount less_than 3",
        "runningTasksCount <= 2",
        "runningTasksCount less_than_equal 2",
        // 1.20 is later than 1.9: versions compare by number, not as text.
        "agentVersion > 1.9.9",
        "agentVersion >= 1.20.3",
        "agentVersion < 1.100",
        "agentVersion == 1.20.3",
        "agentVersion <= v1.20.3",
        "registeredAt == 2018-06-18T22:28:28Z",
        "registeredAt == 2018-06-18T22:28:28",
        "registeredAt > 2018-06-18",
        "registeredAt < 2018-06-19",
    ] {
        assert!(holds(yes), "{yes}");
    }
    assert!(!holds("runningTasksCount > 2"));
    assert!(!holds("agentVersion < 1.20.3"));
    assert!(holds("registeredAt == 2018-06-18T23:28:28+01:00"));
}

#[test]
fn exists_in_and_matches() {
    for yes in [
        "attribute:stack exists",
        "attribute:missing !exists",
        "attribute:missing not_exists",
        "task:group exists",
        "attribute:ecs.availability-zone in ['us-east-1a', \"us-east-1c\"]",
        "attribute:ecs.availability-zone !in [us-east-1b]",
        "attribute:ecs.availability-zone not_in [us-east-1b, us-east-1c]",
        "attribute:stack in [prod west, prod east]",
        "runningTasksCount in [0, 2]",
        "task:group in [cache, database]",
        "task:group not_in [cache]",
        "attribute:ecs.instance-type matches t2\\..*",
        "attribute:ecs.instance-type !~ m5.*",
        "attribute:ecs.instance-type not_matches (m5|c5).*",
        "attribute:ecs.instance-type =~ (t2|t3).micro",
        "attribute:stack =~ 'prod .*'",
        "agentConnected =~ tr.e",
        "task:group =~ serv.*",
    ] {
        assert!(holds(yes), "{yes}");
    }
    for no in [
        "attribute:missing exists",
        "attribute:ecs.availability-zone in [us-east-1b]",
        "attribute:ecs.availability-zone not_in [us-east-1a]",
        "task:group not_in [database]",
        // A whole-value match, as Java's `matches`.
        "attribute:ecs.instance-type =~ t2",
        "attribute:ecs.instance-type =~ micro",
    ] {
        assert!(!holds(no), "{no}");
    }
}

#[test]
fn connectives_and_precedence() {
    assert!(holds(
        "attribute:ecs.os-type == linux && attribute:ecs.instance-type =~ t2.*"
    ));
    assert!(holds(
        "attribute:ecs.os-type == windows or agentConnected == true"
    ));
    assert!(!holds(
        "attribute:ecs.os-type == windows and agentConnected == true"
    ));
    // `and` binds tighter than `or`.
    assert!(holds(
        "attribute:ecs.os-type == linux || attribute:x exists && attribute:y exists"
    ));
    assert!(!holds(
        "(attribute:ecs.os-type == linux || attribute:x exists) && attribute:y exists"
    ));
    assert!(holds("!(attribute:ecs.os-type == windows)"));
    assert!(holds("not attribute:ecs.os-type == windows"));
    assert!(holds("not(not(task:group == database))"));
    assert!(holds("not(attribute:ecs.instance-type =~ (m5|c5).*)"));
    assert!(holds(
        "( task:group==database&&runningTasksCount>1 ) and ! ( agentConnected==false )"
    ));
    // `and` inside a name is part of the name, not the connective.
    assert!(holds("attribute:ecs.os-type != android"));
}

#[test]
fn the_tree_is_what_was_written() {
    let parsed = Expression::parse("not(task:group == db) || runningTasksCount < 2");
    let term = |subject, test, negated| {
        Box::new(Expression::Term(Term {
            subject,
            test,
            negated,
        }))
    };
    let expected = Expression::Or(
        Box::new(Expression::Not(term(
            Subject::TaskGroup,
            Test::Compare(Comparison::Equal, Value::Text("db".into())),
            false,
        ))),
        term(
            Subject::RunningTasksCount,
            Test::Compare(Comparison::Less, Value::Count(2)),
            false,
        ),
    );
    assert_eq!(parsed, Ok(expected));
}

#[test]
fn errors_say_where() {
    assert_eq!(error("").what, "expected a subject");
    assert_eq!(error("cpu == 2").what, "unknown subject 'cpu'");
    assert_eq!(error("attribute: == 2").at, 0);
    let e = error("attribute:a");
    assert_eq!((e.at, e.what.as_str()), (11, "expected an operator"));
    let e = error("attribute:a ~= b");
    assert_eq!((e.at, e.what.as_str()), (12, "expected an operator"));
    assert_eq!(error("attribute:a ==").what, "expected a value");
    assert_eq!(error("attribute:a == 'b").what, "unterminated quoted value");
    assert_eq!(error("attribute:a in b").what, "expected '['");
    assert_eq!(error("attribute:a in [b c").what, "expected ',' or ']'");
    assert_eq!(error("attribute:a in [b,]").what, "expected a value");
    assert_eq!(error("(attribute:a exists").what, "expected ')'");
    assert_eq!(error("attribute:a exists)").what, "unexpected ')'");
    assert_eq!(error("attribute:a exists attribute:b exists").at, 19);
    assert_eq!(error("attribute:a exists &&").what, "expected a subject");
    assert!(
        error("attribute:a =~ (")
            .what
            .starts_with("invalid pattern")
    );
    assert_eq!(
        error("attribute:a > 2").what,
        "operator not supported for this subject"
    );
    assert_eq!(
        error("ec2InstanceId exists").what,
        "operator not supported for this subject"
    );
    assert_eq!(
        error("registeredAt =~ 2018.*").what,
        "operator not supported for this subject"
    );
    assert_eq!(
        error("agentConnected == yes").what,
        "'yes' is not true or false"
    );
    assert_eq!(error("runningTasksCount > -1").what, "'-1' is not a count");
    assert!(
        error("registeredAt < yesterday")
            .what
            .contains("not a date")
    );
    assert!(
        error("agentVersion > latest")
            .what
            .contains("not a version")
    );
    assert!(
        error(&format!("{}attribute:a exists", "(".repeat(100)))
            .what
            .contains("nested too deeply")
    );
    assert!(error(&"a".repeat(2001)).what.contains("longer than"));
    assert_eq!(
        error("cpu == 2").to_string(),
        "unknown subject 'cpu' at character 0"
    );
}
