//! The command line's help: every command and subcommand describes itself,
//! and each description sits on its own command.

#![allow(clippy::unwrap_used, reason = "test helpers abort the test on failure")]

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "wharf {args:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// `(name, description)` of each entry under `Commands:` (without `help`).
fn commands(help: &str) -> Vec<(String, String)> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| {
            let l = l.trim();
            let (name, rest) = l.split_once(' ').unwrap_or((l, ""));
            (name != "help").then(|| (name.to_string(), rest.trim().to_string()))
        })
        .collect()
}

#[test]
fn every_command_describes_itself() {
    let top = help(&[]);
    let listed = commands(&top);
    let names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "serve",
        "user",
        "fsck",
        "du",
        "gc",
        "lifecycle",
        "task",
        "service",
        "token",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let about = |name: &str| &listed.iter().find(|(n, _)| n == name).unwrap().1;
    assert!(about("lifecycle").contains("lifecycle policies"), "{top}");
    assert!(about("fsck").contains("integrity"), "{top}");
    assert!(!about("fsck").contains("lifecycle"), "{top}");

    // Every command and subcommand, two levels down, has a description.
    let mut queue: Vec<Vec<String>> = listed.iter().map(|(n, _)| vec![n.clone()]).collect();
    let mut seen = 0;
    while let Some(path) = queue.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = help(&args);
        let first = text.lines().next().unwrap_or("");
        assert!(
            !first.trim().is_empty() && !first.starts_with("Usage:"),
            "`wharf {}` has no description:\n{text}",
            path.join(" ")
        );
        for (name, description) in commands(&text) {
            assert!(
                !description.is_empty(),
                "`wharf {} {name}` has no description",
                path.join(" ")
            );
            let mut deeper = path.clone();
            deeper.push(name);
            queue.push(deeper);
        }
        seen += 1;
    }
    assert!(seen >= 20, "only {seen} commands checked");
}
