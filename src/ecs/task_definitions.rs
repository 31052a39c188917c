//! RegisterTaskDefinition, DeregisterTaskDefinition, DescribeTaskDefinition,
//! ListTaskDefinitions, ListTaskDefinitionFamilies.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Call, EcsError, page};
use crate::runner::{DefinitionFilter, RegisterDefinition};

pub async fn register(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: RegisterDefinition = call.input()?;
    call.require_pull(input.container_definitions.iter().map(|c| c.image.as_str()))
        .await?;
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
    let definition = call
        .runner
        .deregister_definition(&input.task_definition)
        .await?;
    Ok(json!({ "taskDefinition": definition }))
}

pub async fn describe(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: DefinitionInput = call.input()?;
    let definition = call
        .runner
        .definition(&input.task_definition)
        .await?
        .ok_or_else(|| EcsError::Client("Unable to describe task definition.".into()))?;
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

pub async fn list(call: &Call<'_>) -> Result<Value, EcsError> {
    let input: ListInput = call.input()?;
    let mut arns = call
        .runner
        .definition_arns(&input.filter(input.family_prefix.clone())?)
        .await?;
    // familyPrefix on ListTaskDefinitions names a whole family.
    if let Some(family) = &input.family_prefix {
        arns.retain(|a| {
            a.rsplit_once(":task-definition/")
                .and_then(|(_, r)| r.rsplit_once(':'))
                .is_some_and(|(f, _)| f == family)
        });
    }
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
    let families = call
        .runner
        .definition_families(&input.filter(input.family_prefix.clone().or(input.family.clone()))?)
        .await?;
    let (families, next) = page(
        &families,
        input.max_results,
        input.next_token.as_deref(),
        100,
        100,
    )?;
    Ok(json!({ "families": families, "nextToken": next }))
}
