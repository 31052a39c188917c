//! `wharf task` and `wharf service`: the task runner's records from the
//! metadata database; a task's logs through the runner itself.

use std::io::Write;

use futures::StreamExt as _;
use wharf::runner::model::{ServiceRecord, TaskRecord};
use wharf::server;
use wharf::storage::RunnerStore;

use super::args::{CommonArgs, ServiceCommand, TaskCommand};
use super::{Result, load_config, open_store};

/// `wharf task ls` (one tab-separated line per task) and `wharf task logs`
/// (the containers' output as the engine gives it).
pub async fn task(command: TaskCommand, common: CommonArgs) -> Result {
    let mut out = std::io::stdout().lock();
    match command {
        TaskCommand::Ls { all } => {
            let store = open_store(&common).await?;
            for stored in store.tasks(None, !all).await? {
                let r: TaskRecord = serde_json::from_str(&stored.doc)?;
                let reason = r.task.stopped_reason.as_deref().unwrap_or("");
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    r.id, r.cluster, r.family, r.task.last_status, reason
                )?;
            }
        }
        TaskCommand::Logs {
            task,
            container,
            tail,
        } => {
            let config = load_config(&common, None)?;
            let runner = server::open_task_runner(&config).await?;
            let mut logs = runner.logs(&task, container.as_deref(), tail).await?;
            while let Some(chunk) = logs.next().await {
                out.write_all(&chunk?)?;
            }
        }
    }
    Ok(())
}

/// `wharf service ls`: one tab-separated line per service.
pub async fn service(command: ServiceCommand, common: CommonArgs) -> Result {
    let store = open_store(&common).await?;
    let mut out = std::io::stdout().lock();
    match command {
        ServiceCommand::Ls => {
            for stored in store.services(None).await? {
                let r: ServiceRecord = serde_json::from_str(&stored.doc)?;
                let s = &r.service;
                let rollout = s
                    .deployments
                    .first()
                    .map_or("", |d| d.rollout_state.as_str());
                writeln!(
                    out,
                    "{}\t{}\t{}\tdesired {}\t{}\t{}",
                    r.cluster,
                    s.service_name,
                    s.status,
                    s.desired_count,
                    s.task_definition,
                    rollout
                )?;
            }
        }
    }
    Ok(())
}
