//! The AWS Query protocol (ELBv2 speaks it): `POST /` with a form body
//! (`Action=…&Version=…&Name.member.1=…`), answers and errors in XML. A
//! [`QueryService`] is admitted as the JSON services are: the signature's
//! parts judged from the headers before the body is read, then the body read
//! within the service's cap and the signature verified over it; only then is
//! the `Action` looked up, so an unsigned client learns nothing of the
//! operations.

use std::future::Future;
use std::net::IpAddr;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::sigv4::SigError;
use super::xml::Xml;
use super::{AwsSettings, Refusal, admit_signed};
use crate::auth::{Auth, Principal};
use crate::body::{self, BodyError, BodyLimits};
use crate::http::Fault;

/// The content type a Query request's form arrives in.
const FORM: &str = "application/x-www-form-urlencoded";

/// Headers the Query protocol needs signed besides `host` and the date: the
/// content type decides how the body reads.
const SIGNED_HEADERS: &[&str] = &["content-type"];

/// An AWS Query service behind `POST /`, as the front door sees it.
pub trait QueryService: Clone + Send + Sync + 'static {
    /// The SigV4 signing name, e.g. `elasticloadbalancing`.
    const SIGNING_NAME: &'static str;
    /// The API version clients send as `Version`, e.g. `2015-12-01`.
    const VERSION: &'static str;
    /// The namespace of every answer's root element.
    const XMLNS: &'static str;
    /// The service's operations, parsed from `Action`.
    type Operation: Send;
    fn auth(&self) -> &Auth;
    /// The operation an `Action` names; `None` when there is no such one.
    fn operation(action: &str) -> Option<Self::Operation>;
    /// The largest request body accepted (the operation is in the body, so
    /// one cap for all).
    fn body_limit(&self) -> usize;
    /// Serves one admitted call.
    fn call(self, request: QueryRequest<Self::Operation>) -> impl Future<Output = Response> + Send;
}

/// The parameters of a Query request, decoded, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(form: &[u8]) -> Params {
        Params(form_urlencoded::parse(form).into_owned().collect())
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every parameter, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// One admitted Query call: signature verified over the body, operation known.
pub struct QueryRequest<O> {
    pub peer: IpAddr,
    /// The request's id, as answers report it in `RequestId`.
    pub request_id: String,
    pub operation: O,
    pub principal: Principal,
    pub params: Params,
}

/// Whether `POST /` carries a Query request: a form, and no `X-Amz-Target`
/// (which the JSON protocol sends).
pub fn is_query(headers: &HeaderMap) -> bool {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with(FORM));
    form && !headers.contains_key("x-amz-target")
}

/// Admits and serves a Query request, or answers its refusal in XML.
pub(super) async fn serve<Q: QueryService>(
    service: Q,
    settings: &AwsSettings,
    limits: BodyLimits,
    peer: IpAddr,
    request_id: Option<String>,
    parts: Parts,
    body: Body,
) -> Response {
    let request_id = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    match admit(&service, settings, limits, &parts, body).await {
        Ok((operation, principal, params)) => {
            let request = QueryRequest {
                peer,
                request_id,
                operation,
                principal,
                params,
            };
            service.call(request).await
        }
        Err(refusal) => refusal_response(Q::XMLNS, &request_id, refusal),
    }
}

async fn admit<Q: QueryService>(
    service: &Q,
    settings: &AwsSettings,
    limits: BodyLimits,
    parts: &Parts,
    body: Body,
) -> Result<(Q::Operation, Principal, Params), Refusal> {
    let (principal, body) = admit_signed(
        service.auth(),
        &settings.region,
        Q::SIGNING_NAME,
        SIGNED_HEADERS,
        parts,
        body::read(body, &parts.headers, service.body_limit(), limits),
    )
    .await?;
    let params = Params::parse(&body);
    let action = params.get("Action").unwrap_or_default();
    if let Some(version) = params.get("Version").filter(|v| *v != Q::VERSION) {
        return Err(Refusal::UnknownOperation(format!(
            "Could not find operation {action} for version {version}"
        )));
    }
    let operation = Q::operation(action).ok_or_else(|| {
        Refusal::UnknownOperation(format!(
            "Could not find operation {action} for version {}",
            Q::VERSION
        ))
    })?;
    Ok((operation, principal, params))
}

/// The Query protocol's names for the front door's refusals.
fn refusal_response(xmlns: &str, request_id: &str, refusal: Refusal) -> Response {
    let bad = StatusCode::BAD_REQUEST;
    let forbidden = StatusCode::FORBIDDEN;
    let (status, code) = match &refusal {
        Refusal::Missing => (forbidden, "MissingAuthenticationToken"),
        Refusal::UnrecognizedClient => (forbidden, "InvalidClientTokenId"),
        Refusal::Signature(SigError::Incomplete(_)) => (bad, "IncompleteSignature"),
        Refusal::Signature(SigError::Invalid(_)) => (forbidden, "SignatureDoesNotMatch"),
        Refusal::UnknownOperation(_) => (bad, "InvalidAction"),
        Refusal::Body(BodyError::TooLarge { .. }) => {
            (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge")
        }
        Refusal::Body(BodyError::Timeout) => (StatusCode::REQUEST_TIMEOUT, "RequestTimeout"),
        Refusal::Body(BodyError::Read) => (bad, "MalformedQueryString"),
        Refusal::Store(e) => {
            return fault(xmlns, request_id, Fault::classify(e.is_unavailable(), e));
        }
    };
    error(xmlns, request_id, status, code, &refusal.to_string())
}

/// A successful call's answer: `<{action}Response><{action}Result>` around
/// what `result` writes, then the request id.
pub fn output(
    xmlns: &str,
    action: &str,
    request_id: &str,
    result: impl FnOnce(&mut Xml),
) -> Response {
    let response = format!("{action}Response");
    let mut x = Xml::new();
    x.root(&response, xmlns)
        .element(&format!("{action}Result"), result)
        .element("ResponseMetadata", |x| {
            x.leaf("RequestId", request_id);
        })
        .close(&response);
    xml_response(StatusCode::OK, x)
}

/// A failed call's answer: `<ErrorResponse><Error>` with `Type` `Sender`
/// for the client's failures and `Receiver` (5xx) for ours.
pub fn error(
    xmlns: &str,
    request_id: &str,
    status: StatusCode,
    code: &str,
    message: &str,
) -> Response {
    let kind = if status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    let mut x = Xml::new();
    x.root("ErrorResponse", xmlns)
        .element("Error", |x| {
            x.leaf("Type", kind)
                .leaf("Code", code)
                .leaf("Message", message);
        })
        .leaf("RequestId", request_id)
        .close("ErrorResponse");
    xml_response(status, x)
}

/// A failure that is not the client's: 503 with `Retry-After` while a
/// dependency does not answer, else 500, with a fixed message; the cause
/// rides on the response for the request log, never in it.
pub fn fault(xmlns: &str, request_id: &str, fault: Fault) -> Response {
    let code = match fault {
        Fault::Unavailable(_) => "ServiceUnavailable",
        Fault::Internal(_) => "InternalFailure",
    };
    let mut response = error(
        xmlns,
        request_id,
        fault.status(),
        code,
        fault.public_message(),
    );
    fault.mark(&mut response);
    response
}

fn xml_response(status: StatusCode, x: Xml) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml")],
        x.into_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_requests_are_forms_without_a_target() {
        let cases = [
            (
                Some("application/x-www-form-urlencoded; charset=utf-8"),
                None,
                true,
            ),
            (Some("Application/X-WWW-Form-Urlencoded"), None, true),
            (
                Some("application/x-www-form-urlencoded"),
                Some("AmazonEC2ContainerServiceV20141113.ListClusters"),
                false,
            ),
            (Some("application/x-amz-json-1.1"), None, false),
            (None, None, false),
        ];
        for (content_type, target, expected) in cases {
            let mut headers = HeaderMap::new();
            if let Some(c) = content_type {
                headers.insert(header::CONTENT_TYPE, c.parse().unwrap());
            }
            if let Some(t) = target {
                headers.insert("x-amz-target", t.parse().unwrap());
            }
            assert_eq!(is_query(&headers), expected, "{content_type:?} {target:?}");
        }
    }

    #[tokio::test]
    async fn faults_answer_without_their_cause() {
        let response = fault(
            "urn:x",
            "r-1",
            Fault::Unavailable("db at /data down".into()),
        );
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8(body.to_vec()).unwrap(),
            "<ErrorResponse xmlns=\"urn:x\"><Error><Type>Receiver</Type>\
             <Code>ServiceUnavailable</Code><Message>temporarily unavailable; retry later\
             </Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
        );
    }

    #[test]
    fn params_keep_order_and_decode() {
        let p = Params::parse(b"Action=X&Names.member.1=a%20b&Names.member.2=c+d");
        assert_eq!(p.get("Action"), Some("X"));
        assert_eq!(p.get("Names.member.1"), Some("a b"));
        assert_eq!(p.iter().count(), 3);
    }
}
