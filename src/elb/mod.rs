//! ELBv2-compatible API of the built-in load balancer (control plane): the
//! AWS Query protocol (`POST /` with `Action=…&Version=2015-12-01`, XML
//! answers), SigV4 signed for `elasticloadbalancing` with Wharf-issued
//! access keys. Each operation declares its need in `operation.rs`, checked
//! once in [`dispatch`]; handlers (one file per resource) parse the form,
//! call the [`Balancer`], and shape its answer; errors map to ELB's codes in
//! `error.rs`. Depends on `aws`, `auth`, `balancer` and, to resolve
//! container instance ids, the runner.

mod addresses;
mod error;
mod groups;
mod listeners;
mod load_balancers;
mod operation;
mod query;
mod targets;

use std::sync::Arc;

use axum::extract::FromRef;
use axum::response::Response;

use crate::auth::{Auth, EcsNeed, Principal};
use crate::aws::query::{Params, QueryRequest, QueryService, output};
use crate::aws::xml::Xml;
use crate::aws::{self};
use crate::balancer::Balancer;
use crate::metrics::metrics;
use crate::runner::Runner;
pub use addresses::InstanceAddresses;
pub use error::ElbError;
pub use operation::Operation;

/// The namespace of every ELBv2 answer.
pub const XMLNS: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";

/// The load balancer, when this process has one (with the task runner),
/// and the runner that knows the container instances.
#[derive(Clone)]
pub struct ElbState {
    pub balancer: Option<Balancer>,
    pub runner: Option<Runner>,
    pub auth: Arc<Auth>,
}

impl<S> FromRef<S> for ElbState
where
    Option<Balancer>: FromRef<S>,
    Option<Runner>: FromRef<S>,
    Arc<Auth>: FromRef<S>,
{
    fn from_ref(state: &S) -> Self {
        ElbState {
            balancer: Option::<Balancer>::from_ref(state),
            runner: Option::<Runner>::from_ref(state),
            auth: Arc::<Auth>::from_ref(state),
        }
    }
}

impl QueryService for ElbState {
    const SIGNING_NAME: &'static str = "elasticloadbalancing";
    const VERSION: &'static str = "2015-12-01";
    const XMLNS: &'static str = XMLNS;
    type Operation = Operation;

    fn auth(&self) -> &Auth {
        &self.auth
    }

    fn operation(action: &str) -> Option<Operation> {
        Operation::parse(action)
    }

    fn body_limit(&self) -> usize {
        aws::MAX_REQUEST_BYTES
    }

    async fn call(self, request: QueryRequest<Operation>) -> Response {
        let operation = request.operation;
        let request_id = request.request_id.clone();
        match handle(&self, request).await {
            Ok(result) => output(XMLNS, operation.name(), &request_id, |x| {
                x.append(result);
            }),
            Err(e) => e.into_response(XMLNS, &request_id),
        }
    }
}

/// One admitted ELBv2 call.
pub struct Call<'a> {
    pub balancer: &'a Balancer,
    pub runner: &'a Option<Runner>,
    pub principal: Principal,
    pub auth: &'a Auth,
    pub params: &'a Params,
}

impl Call<'_> {
    fn input(&self) -> query::Input<'_> {
        query::Input(self.params)
    }

    /// Checks an operation's need, before its handler runs.
    fn check(&self, need: EcsNeed) -> Result<(), ElbError> {
        if self.auth.admits_ecs(&self.principal, need) {
            return Ok(());
        }
        let why = match need {
            EcsNeed::Operator => {
                "to change load balancers, listeners, target groups or targets: that needs every \
                 action on every repository (`*`)"
            }
            _ => "to describe load balancers: that needs push on some repository",
        };
        metrics().auth_failure("forbidden");
        Err(ElbError::AccessDenied(format!(
            "User: {} is not authorized {why}",
            self.principal.subject()
        )))
    }
}

async fn handle(state: &ElbState, request: QueryRequest<Operation>) -> Result<Xml, ElbError> {
    let Some(balancer) = &state.balancer else {
        return Err(ElbError::Validation(
            "the load balancer is turned off on this server (it runs with the task runner: \
             runner.enabled = false)"
                .into(),
        ));
    };
    let call = Call {
        balancer,
        runner: &state.runner,
        principal: request.principal,
        auth: &state.auth,
        params: &request.params,
    };
    dispatch(&call, request.operation).await
}

/// Runs the operation's handler once its need is met.
async fn dispatch(call: &Call<'_>, operation: Operation) -> Result<Xml, ElbError> {
    use Operation as Op;
    call.check(operation.authorization())?;
    match operation {
        Op::CreateTargetGroup => groups::create(call).await,
        Op::DescribeTargetGroups => groups::describe(call).await,
        Op::DeleteTargetGroup => groups::delete(call).await,
        Op::ModifyTargetGroup => groups::modify(call).await,
        Op::ModifyTargetGroupAttributes => groups::modify_attributes(call).await,
        Op::DescribeTargetGroupAttributes => groups::describe_attributes(call).await,
        Op::RegisterTargets => targets::register(call).await,
        Op::DeregisterTargets => targets::deregister(call).await,
        Op::DescribeTargetHealth => targets::health(call).await,
        Op::CreateLoadBalancer => load_balancers::create(call).await,
        Op::DescribeLoadBalancers => load_balancers::describe(call).await,
        Op::DeleteLoadBalancer => load_balancers::delete(call).await,
        Op::CreateListener => listeners::create(call).await,
        Op::DescribeListeners => listeners::describe(call).await,
        Op::DeleteListener => listeners::delete(call).await,
    }
}

/// An ISO 8601 time, as the Query protocol writes timestamps.
fn timestamp(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
