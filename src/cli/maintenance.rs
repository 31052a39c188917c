//! `wharf gc`, `du`, `fsck` and `lifecycle run`: registry jobs run now, over
//! `wharf::server::open_registry` only (storage and metadata; no auth, no
//! runner, no HTTP parts), so they work beside a running server.

use std::io::Write;

use wharf::registry::{FsckEvent, GcEvent};
use wharf::server;

use super::args::{CommonArgs, LifecycleCommand};
use super::output::{human_bytes, usage_row};
use super::{Result, load_config};

/// `wharf lifecycle run`: one line per expired image, then the total.
pub async fn lifecycle(command: LifecycleCommand, common: CommonArgs) -> Result {
    let LifecycleCommand::Run {
        dry_run,
        repository,
    } = command;
    let config = load_config(&common, None)?;
    let (registry, audit) = server::open_registry_audited(&config).await?;
    let repos = match repository {
        Some(r) => vec![r.parse::<wharf::oci::RepoName>()?],
        None => registry.repositories_with_lifecycle().await?,
    };
    let mut out = std::io::stdout().lock();
    let verb = if dry_run { "would expire" } else { "expired" };
    let mut total = 0;
    for repo in repos {
        let done = registry.run_lifecycle(&repo, dry_run).await?;
        if !dry_run {
            wharf::registry::record_lifecycle(&audit, &wharf::audit::cli_actor(), &repo, &done)
                .await;
        }
        for p in done {
            let tags = if p.image.tags.is_empty() {
                "<untagged>".to_string()
            } else {
                p.image.tags.join(",")
            };
            writeln!(
                out,
                "{repo}\t{}\t{tags}\t{verb} by rule {}",
                p.image.manifest.digest, p.expiry.rule_priority
            )?;
            total += 1;
        }
    }
    writeln!(out, "{total} image(s) {verb}")?;
    Ok(())
}

/// `wharf fsck`: one line per problem, a byte progress bar on a terminal.
pub async fn fsck(repair: bool, common: CommonArgs) -> Result {
    let config = load_config(&common, None)?;
    let registry = server::open_registry(&config).await?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {binary_bytes}/{binary_total_bytes} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let on_event = |event: FsckEvent<'_>| match event {
        FsckEvent::Planned { bytes, .. } => bar.set_length(bytes),
        FsckEvent::Checked { size, .. } => bar.inc(size),
    };
    let report = registry.fsck(repair, &on_event).await?;
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    for problem in &report.database {
        writeln!(out, "database\t{problem}")?;
    }
    for digest in &report.missing {
        writeln!(out, "missing\t{digest}")?;
    }
    for digest in &report.corrupt {
        let action = if repair { "quarantined" } else { "corrupt" };
        writeln!(out, "{action}\t{digest}")?;
    }
    for (repo, digest) in &report.broken_manifests {
        writeln!(out, "broken manifest\t{repo}@{digest}")?;
    }
    for digest in &report.orphans {
        writeln!(out, "orphan\t{digest}\t(garbage collection removes it)")?;
    }
    writeln!(
        out,
        "checked {} blob(s), {} bytes: {} missing, {} corrupt{}, {} broken manifest(s), {} orphan(s), {} database problem(s)",
        report.blobs_checked,
        report.bytes_checked,
        report.missing.len(),
        report.corrupt.len(),
        if repair {
            format!(" ({} quarantined)", report.quarantined)
        } else {
            String::new()
        },
        report.broken_manifests.len(),
        report.orphans.len(),
        report.database.len()
    )?;
    if let Some(scrub) = registry.scrub_state() {
        let at = |ms: i64| {
            time::OffsetDateTime::from_unix_timestamp(ms / 1000)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| ms.to_string())
        };
        for (digest, found) in &scrub.corrupt {
            writeln!(out, "scrub found corrupt\t{digest}\tat {}", at(*found))?;
        }
        for (digest, found) in &scrub.unreadable {
            writeln!(out, "scrub could not read\t{digest}\tat {}", at(*found))?;
        }
        let last = scrub.last_pass_completed_ms.map_or("never".into(), at);
        let progress = match &scrub.cursor {
            Some(cursor) => format!(
                "; a pass is under way ({} blob(s) so far, at {cursor})",
                scrub.blobs
            ),
            None => String::new(),
        };
        writeln!(out, "scrub: last complete pass {last}{progress}")?;
    }
    // Quarantined content still leaves its manifests broken until it is pushed again.
    if report.is_clean() {
        Ok(())
    } else {
        Err("integrity problems found".into())
    }
}

/// `wharf du`: a table of repositories, then the registry's total.
pub async fn du(common: CommonArgs) -> Result {
    let config = load_config(&common, None)?;
    let registry = server::open_registry(&config).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", usage_row("REPOSITORY", "LOGICAL", "UNIQUE"))?;
    for u in registry.usage().await? {
        writeln!(
            out,
            "{}",
            usage_row(
                u.repo.as_str(),
                &human_bytes(u.logical_bytes),
                &human_bytes(u.unique_bytes)
            )
        )?;
    }
    let (count, bytes) = registry.blob_totals().await?;
    writeln!(
        out,
        "registry: {count} blob(s), {} ({bytes} bytes) stored, shared blobs counted once",
        human_bytes(bytes)
    )?;
    Ok(())
}

/// `wharf gc`: one line per removed item on stdout, a progress bar on a terminal.
pub async fn gc(dry_run: bool, common: CommonArgs) -> Result {
    let config = load_config(&common, None)?;
    let (registry, audit) = server::open_registry_audited(&config).await?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} blobs")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let verb = if dry_run { "would remove" } else { "removed" };
    let on_event = |event: GcEvent<'_>| match event {
        GcEvent::Candidates(n) => bar.set_length(n as u64),
        GcEvent::Blob {
            digest,
            size,
            removed,
        } => {
            bar.inc(1);
            if removed {
                bar.suspend(|| {
                    let _ = writeln!(std::io::stdout().lock(), "blob\t{digest}\t{size}");
                });
            }
        }
    };
    let report = registry
        .collect_garbage_now(
            &config.gc.policy(),
            dry_run,
            &audit,
            &wharf::audit::cli_actor(),
            &on_event,
        )
        .await?
        .ok_or("another garbage collection is running; try again when it is done")?;
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    for (repo, digest) in &report.manifests {
        writeln!(out, "manifest\t{repo}\t{digest}")?;
    }
    writeln!(
        out,
        "{verb} {} manifest(s), {} blob link(s), {} blob(s) ({} bytes), {} upload(s)",
        report.manifests.len(),
        report.links,
        report.blobs.len(),
        report.bytes(),
        report.uploads
    )?;
    Ok(())
}
