//! RegisterTaskDefinition, DeregisterTaskDefinition, DescribeTaskDefinition,
//! ListTaskDefinitions, ListTaskDefinitionFamilies.

use serde::Deserialize;
use serde_json::{Value, json};

use std::collections::BTreeSet;

use super::{Call, EcsError, page};
use crate::runner::model::TaskDefinition;
use crate::runner::{DefinitionFilter, RegisterDefinition};

/// As DeregisterTaskDefinition answers for a revision that does not exist.
fn no_such_definition() -> EcsError {
    EcsError::Client("The specified task definition does not exist.".into())
}

pub async fn register(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: RegisterDefinition = call.input()?;
    let images: Vec<&str> = input
        .container_definitions
        .iter()
        .map(|c| c.image.as_str())
        .collect();
    call.require_use(&images).await?;
    call.require_family(&input.family).await?;
    let definition = call
        .runner
        .register_definition(input, call.caller_arn())
        .await?;
    Ok(json!({ "taskDefinition": definition, "tags": [] }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DefinitionInput {
    task_definition: String,
    #[serde(default)]
    include: Vec<String>,
}

pub async fn deregister(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: DefinitionInput = call.input()?;
    crate::runner::require_revision(&input.task_definition)?;
    if let Some(d) = call.runner.definition(&input.task_definition).await?
        && !call.may_use_definition(&d).await?
    {
        return Err(no_such_definition());
    }
    let definition = call
        .runner
        .deregister_definition(&input.task_definition)
        .await?;
    Ok(json!({ "taskDefinition": definition }))
}

pub async fn describe(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: DefinitionInput = call.input()?;
    let definition = call.definition(&input.task_definition).await?;
    let mut out = json!({ "taskDefinition": definition });
    if input.include.iter().any(|i| i == "TAGS") {
        out["tags"] = json!([]);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInput {
    family_prefix: Option<String>,
    family: Option<String>,
    status: Option<String>,
    sort: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

impl ListInput {
    fn filter(&self, prefix: Option<String>) -> Result<DefinitionFilter, EcsError> {
        let descending = match self.sort.as_deref() {
            None | Some("ASC") => false,
            Some("DESC") => true,
            Some(other) => {
                return Err(EcsError::InvalidParameter(format!(
                    "sort {other:?}: ASC or DESC"
                )));
            }
        };
        Ok(DefinitionFilter {
            family_prefix: prefix,
            status: self.status.clone(),
            descending,
        })
    }
}

/// The revisions that pass the filter and the caller may see.
async fn visible(
    call: &Call<'_>,
    filter: &DefinitionFilter,
) -> Result<Vec<TaskDefinition>, EcsError> {
    let mut seen = Vec::new();
    for d in call.runner.definitions(filter).await? {
        if call.may_use_definition(&d).await? {
            seen.push(d);
        }
    }
    Ok(seen)
}

pub async fn list(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: ListInput = call.input()?;
    let definitions = visible(call, &input.filter(input.family_prefix.clone())?).await?;
    // familyPrefix on ListTaskDefinitions names a whole family.
    let arns: Vec<String> = definitions
        .into_iter()
        .filter(|d| input.family_prefix.as_ref().is_none_or(|f| d.family == *f))
        .map(|d| d.task_definition_arn)
        .collect();
    let (arns, next) = page(
        &arns,
        input.max_results,
        input.next_token.as_deref(),
        100,
        100,
    )?;
    Ok(json!({ "taskDefinitionArns": arns, "nextToken": next }))
}

pub async fn families(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: ListInput = call.input()?;
    let filter = input.filter(input.family_prefix.clone().or(input.family.clone()))?;
    let mut families: BTreeSet<String> = visible(call, &filter)
        .await?
        .into_iter()
        .map(|d| d.family)
        .collect();
    if input.status.as_deref() == Some("INACTIVE") {
        // Families without any active revision.
        let active = call.runner.active_families().await?;
        families.retain(|f| !active.contains(f));
    }
    let families: Vec<String> = families.into_iter().collect();
    let (families, next) = page(
        &families,
        input.max_results,
        input.next_token.as_deref(),
        100,
        100,
    )?;
    Ok(json!({ "families": families, "nextToken": next }))
}
