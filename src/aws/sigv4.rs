//! AWS Signature Version 4 verification for the AWS JSON 1.1 APIs (ECR, ECS),
//! in two steps so a request is judged before its body is read: [`check`]
//! what the headers say (date, credential scope, which headers are signed),
//! then [`verify`] the signature over the canonical request rebuilt from what
//! arrived, with the hash of the body actually received, in constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

type HmacSha256 = Hmac<Sha256>;

/// How far a request's date may be from our clock, as AWS allows.
const MAX_SKEW_SECONDS: i64 = 15 * 60;

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Why a signature does not hold. The two kinds are the two AWS answers:
/// `IncompleteSignatureException` when a part is missing or malformed,
/// `InvalidSignatureException` when the parts are there but do not hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigError {
    #[error("{0}")]
    Incomplete(String),
    #[error("{0}")]
    Invalid(String),
}

fn incomplete(message: impl Into<String>) -> SigError {
    SigError::Incomplete(message.into())
}

fn invalid(message: impl Into<String>) -> SigError {
    SigError::Invalid(message.into())
}

/// Parses the Authorization header value.
pub fn parse_authorization(value: &str) -> Result<Credential, SigError> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        incomplete("Unsupported authorization: only AWS4-HMAC-SHA256 signatures are accepted.")
    })?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or_else(|| {
            incomplete(format!(
                "Authorization header requires key=value pairs, got '{}'.",
                part.trim()
            ))
        })?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        let missing: Vec<&str> = [
            ("Credential", credential),
            ("SignedHeaders", signed),
            ("Signature", signature),
        ]
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| *k)
        .collect();
        return Err(incomplete(format!(
            "Authorization header requires the parameters {}.",
            missing.join(", ")
        )));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(incomplete(format!(
            "Credential should have exactly 5 slash-delimited elements, e.g. \
             keyid/date/region/service/aws4_request, got '{credential}'."
        )));
    };
    Ok(Credential {
        access_key_id: key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed.split(';').map(str::to_string).collect(),
        signature: signature.to_string(),
    })
}

/// What a signature must commit to besides being valid.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The one region this server answers for.
    pub region: &'a str,
    /// The signing name of the service the request is for, e.g. `ecr`.
    pub service: &'a str,
    /// Headers that must be signed besides `host` and the request's date
    /// (which SigV4 always requires).
    pub signed: &'a [&'a str],
}

/// The request as it arrived, for verification.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Header lookup by lower-case name (all values of that name).
    pub header: &'a (dyn Fn(&str) -> Vec<String> + Sync),
}

impl SignedRequest<'_> {
    fn first(&self, name: &str) -> Option<String> {
        (self.header)(name).into_iter().next()
    }
}

/// A request whose signature passed [`check`]: its body remains to be verified.
#[derive(Debug)]
pub struct Checked {
    /// The request's date as sent; the string to sign carries it.
    timestamp: String,
}

#[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (uri_encode(&k, false), uri_encode(&v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A time in SigV4's ISO 8601 basic format (`20150830T123600Z`), as Unix seconds.
fn request_time(value: &str) -> Option<i64> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(value, format)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

fn basic_time(unix: i64) -> String {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_default()
}

fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks what the headers alone decide, so a request is refused before its
/// body is read: the request's date (`X-Amz-Date`, else `Date` in the same
/// format) and its distance from `now` (Unix seconds), the credential scope
/// (date, `expect.region`, `expect.service`), that `host`, the date and
/// `expect.signed` are all signed, and that the payload is to be signed (no
/// `UNSIGNED-PAYLOAD` or streaming variants).
pub fn check(
    cred: &Credential,
    request: &SignedRequest<'_>,
    expect: &Expect<'_>,
    now: i64,
) -> Result<Checked, SigError> {
    let (date_header, timestamp) = match request.first("x-amz-date") {
        Some(value) => ("x-amz-date", value),
        None => ("date", request.first("date").ok_or_else(|| {
            incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            )
        })?),
    };
    let when = request_time(&timestamp).ok_or_else(|| {
        incomplete(format!(
            "The {date_header} header must be in ISO 8601 basic format (YYYYMMDD'T'HHMMSS'Z'), \
             got '{timestamp}'."
        ))
    })?;
    for name in ["host", date_header].iter().chain(expect.signed) {
        if !cred.signed_headers.iter().any(|h| h == name) {
            return Err(incomplete(format!(
                "'{name}' must be a 'SignedHeader' in the AWS Authorization."
            )));
        }
    }
    if cred.service != expect.service {
        return Err(invalid(format!(
            "Credential should be scoped to correct service: '{}'.",
            expect.service
        )));
    }
    if cred.region != expect.region {
        return Err(invalid(format!(
            "Credential should be scoped to a valid region, not '{}': this server signs for '{}'.",
            cred.region, expect.region
        )));
    }
    let day = timestamp.get(..8).unwrap_or_default();
    if cred.date != day {
        return Err(invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{}' != '{day}', from '{timestamp}'.",
            cred.date
        )));
    }
    if when < now - MAX_SKEW_SECONDS {
        return Err(invalid(format!(
            "Signature expired: {timestamp} is now earlier than {} ({} - 15 min.)",
            basic_time(now - MAX_SKEW_SECONDS),
            basic_time(now)
        )));
    }
    if when > now + MAX_SKEW_SECONDS {
        return Err(invalid(format!(
            "Signature not yet current: {timestamp} is still later than {} ({} + 15 min.)",
            basic_time(now + MAX_SKEW_SECONDS),
            basic_time(now)
        )));
    }
    match (request.header)("x-amz-content-sha256").as_slice() {
        [] => {}
        [hash] if is_sha256_hex(hash) => {}
        [hash] if hash == "UNSIGNED-PAYLOAD" || hash.starts_with("STREAMING-") => {
            return Err(invalid(format!(
                "This API takes signed payloads only: x-amz-content-sha256 must be the \
                 SHA-256 of the body, not {hash}."
            )));
        }
        _ => {
            return Err(invalid(
                "x-amz-content-sha256 must be one lower-case hex SHA-256 of the body.",
            ));
        }
    }
    Ok(Checked { timestamp })
}

/// Verifies the signature of a [`check`]ed request with the access key's
/// `secret`, over the SHA-256 of `body` as received (which a given
/// `x-amz-content-sha256` must equal).
pub fn verify(
    cred: &Credential,
    checked: &Checked,
    secret: &str,
    request: &SignedRequest<'_>,
    body: &[u8],
) -> Result<(), SigError> {
    let payload_hash = hex::encode(Sha256::digest(body));
    if request
        .first("x-amz-content-sha256")
        .is_some_and(|declared| declared != payload_hash)
    {
        return Err(invalid(
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        ));
    }
    let expected = signature(
        secret,
        &Scope {
            date: &cred.date,
            region: &cred.region,
            service: &cred.service,
        },
        &checked.timestamp,
        &cred.signed_headers,
        request,
        &payload_hash,
    );
    if expected.as_bytes().ct_eq(cred.signature.as_bytes()).into() {
        Ok(())
    } else {
        Err(invalid(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method.",
        ))
    }
}

/// A credential scope: the day, region and service a signature is for.
struct Scope<'a> {
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

/// The hex signature of `request` over `signed_headers` and `payload_hash`,
/// as both the verifier and the signer compute it.
fn signature(
    secret: &str,
    scope: &Scope<'_>,
    timestamp: &str,
    signed_headers: &[String],
    request: &SignedRequest<'_>,
    payload_hash: &str,
) -> String {
    let mut canonical_headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = (request.header)(name)
            .iter()
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        uri_encode(request.path, true),
        canonical_query(request.query),
        canonical_headers,
        signed_headers.join(";"),
        payload_hash
    );
    let credential_scope = format!(
        "{}/{}/{}/aws4_request",
        scope.date, scope.region, scope.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{timestamp}\n{credential_scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), scope.date.as_bytes());
    let k_region = hmac(&k_date, scope.region.as_bytes());
    let k_service = hmac(&k_region, scope.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    hex::encode(hmac(&k_signing, string_to_sign.as_bytes()))
}

/// A client's access key and the scope it signs for.
pub struct ClientKey<'a> {
    pub access_key_id: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// The headers that sign a request as a client (`wharf agent`): `x-amz-date`,
/// `x-amz-content-sha256` and `authorization`, to be sent with `host` (which
/// must be among `headers`, as sent) and the other `headers`, all signed.
pub fn sign(
    key: &ClientKey<'_>,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    now: i64,
) -> Vec<(&'static str, String)> {
    let ClientKey {
        access_key_id,
        secret,
        region,
        service,
    } = *key;
    let timestamp = basic_time(now);
    let date = timestamp.get(..8).unwrap_or_default().to_string();
    let payload_hash = hex::encode(Sha256::digest(body));
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    all.push(("x-amz-date".into(), timestamp.clone()));
    all.push(("x-amz-content-sha256".into(), payload_hash.clone()));
    all.sort();
    let signed_headers: Vec<String> = all.iter().map(|(k, _)| k.clone()).collect();
    let lookup = |name: &str| {
        all.iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let request = SignedRequest {
        method,
        path,
        query,
        header: &lookup,
    };
    let scope = Scope {
        date: &date,
        region,
        service,
    };
    let signature = signature(
        secret,
        &scope,
        &timestamp,
        &signed_headers,
        &request,
        &payload_hash,
    );
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={access_key_id}/{date}/{region}/{service}/aws4_request, \
         SignedHeaders={}, Signature={signature}",
        signed_headers.join(";")
    );
    vec![
        ("x-amz-date", timestamp),
        ("x-amz-content-sha256", payload_hash),
        ("authorization", authorization),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::{Duration, UNIX_EPOCH};

    use aws_sigv4::http_request::{
        PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
    };

    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    /// 2015-08-30T12:36:00Z, the date of AWS's SigV4 test suite.
    const NOW: i64 = 1_440_938_160;

    fn expect_ecr() -> Expect<'static> {
        Expect {
            region: "us-east-1",
            service: "ecr",
            signed: &["x-amz-target", "content-type"],
        }
    }

    /// A request as it arrived, with lower-case header names.
    struct Arrived {
        headers: HashMap<String, Vec<String>>,
        authorization: String,
    }

    impl Arrived {
        fn credential(&self) -> Credential {
            parse_authorization(&self.authorization).unwrap()
        }

        fn run(&self, expect: &Expect<'_>, body: &[u8]) -> Result<(), SigError> {
            let header = |name: &str| self.headers.get(name).cloned().unwrap_or_default();
            let request = SignedRequest {
                method: "POST",
                path: "/",
                query: "",
                header: &header,
            };
            let cred = self.credential();
            let checked = check(&cred, &request, expect, NOW)?;
            verify(&cred, &checked, SECRET, &request, body)
        }
    }

    /// Signs an ECR call with the AWS SDK's own signer.
    fn signed(
        region: &str,
        service: &str,
        body: SignableBody<'_>,
        tweak: impl FnOnce(&mut SigningSettings),
    ) -> Arrived {
        let mut headers: HashMap<String, Vec<String>> = [
            ("host", "127.0.0.1:5000"),
            ("content-type", "application/x-amz-json-1.1"),
            (
                "x-amz-target",
                "AmazonEC2ContainerRegistry_V20150921.CreateRepository",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
        .collect();
        let mut settings = SigningSettings::default();
        tweak(&mut settings);
        let identity =
            aws_sdk_ecr::config::Credentials::new("AKIDEXAMPLE", SECRET, None, None, "test").into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(UNIX_EPOCH + Duration::from_secs(NOW as u64))
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let pairs: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.clone(), v[0].clone()))
            .collect();
        let request = SignableRequest::new(
            "POST",
            "http://127.0.0.1:5000/",
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            body,
        )
        .unwrap();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        let mut authorization = String::new();
        for (name, value) in instructions.headers() {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = value.to_string();
            } else {
                headers.insert(name.to_ascii_lowercase(), vec![value.to_string()]);
            }
        }
        Arrived {
            headers,
            authorization,
        }
    }

    const BODY: &[u8] = br#"{"repositoryName":"app"}"#;

    #[test]
    fn a_request_signed_by_the_aws_signer_verifies() {
        let r = signed("us-east-1", "ecr", SignableBody::Bytes(BODY), |_| {});
        assert_eq!(r.run(&expect_ecr(), BODY), Ok(()));
        let r = signed("us-east-1", "ecr", SignableBody::Bytes(BODY), |s| {
            s.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        });
        assert_eq!(r.run(&expect_ecr(), BODY), Ok(()));
    }

    /// What `sign` produces, checked the way the server checks requests,
    /// including a query string and a tampered copy.
    #[test]
    fn our_signer_verifies_and_binds_the_query() {
        let now = 1_700_000_000;
        let path = "/agent/v1/channel?cluster=a%20b&containerInstance=arn%3Aaws%3Aecs%3Ax";
        let headers = [("host", "192.0.2.1:5000")];
        let key = ClientKey {
            access_key_id: "AKID",
            secret: "secret",
            region: "us-east-1",
            service: "ecs",
        };
        let signed = super::sign(&key, "GET", path, &headers, b"", now);
        let mut all: HashMap<String, Vec<String>> = HashMap::new();
        all.insert("host".into(), vec!["192.0.2.1:5000".into()]);
        for (k, v) in &signed {
            all.insert((*k).to_string(), vec![v.clone()]);
        }
        let lookup = |name: &str| all.get(name).cloned().unwrap_or_default();
        let authorization = lookup("authorization").remove(0);
        let cred = parse_authorization(&authorization).unwrap();
        let expect = Expect {
            region: "us-east-1",
            service: "ecs",
            signed: &[],
        };
        let (p, q) = path.split_once('?').unwrap();
        let request = SignedRequest {
            method: "GET",
            path: p,
            query: q,
            header: &lookup,
        };
        let checked = check(&cred, &request, &expect, now).unwrap();
        assert_eq!(verify(&cred, &checked, "secret", &request, b""), Ok(()));
        assert!(verify(&cred, &checked, "other", &request, b"").is_err());
        let tampered = SignedRequest {
            query: "cluster=a%20b&containerInstance=other",
            ..request
        };
        assert!(verify(&cred, &checked, "secret", &tampered, b"").is_err());
    }

    #[test]
    fn the_body_received_is_the_body_signed() {
        let other = br#"{"repositoryName":"evil"}"#;
        let r = signed("us-east-1", "ecr", SignableBody::Bytes(BODY), |_| {});
        assert!(matches!(
            r.run(&expect_ecr(), other),
            Err(SigError::Invalid(_))
        ));
        // An unsigned x-amz-content-sha256 naming the signed body does not help.
        let mut r = r;
        r.headers.insert(
            "x-amz-content-sha256".into(),
            vec![hex::encode(Sha256::digest(BODY))],
        );
        assert!(
            matches!(r.run(&expect_ecr(), other), Err(SigError::Invalid(m)) if m.contains("x-amz-content-sha256"))
        );
        // Neither does a signed one.
        let r = signed("us-east-1", "ecr", SignableBody::Bytes(BODY), |s| {
            s.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        });
        assert!(matches!(
            r.run(&expect_ecr(), other),
            Err(SigError::Invalid(_))
        ));
    }

    #[test]
    fn unsigned_and_streaming_payloads_are_refused() {
        let r = signed("us-east-1", "ecr", SignableBody::UnsignedPayload, |s| {
            s.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        });
        assert_eq!(
            r.headers["x-amz-content-sha256"],
            vec!["UNSIGNED-PAYLOAD".to_string()]
        );
        assert!(
            matches!(r.run(&expect_ecr(), BODY), Err(SigError::Invalid(m)) if m.contains("UNSIGNED-PAYLOAD"))
        );
        let mut r = r;
        r.headers.insert(
            "x-amz-content-sha256".into(),
            vec!["STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into()],
        );
        assert!(
            matches!(r.run(&expect_ecr(), BODY), Err(SigError::Invalid(m)) if m.contains("STREAMING"))
        );
    }

    #[test]
    fn the_credential_scope_names_this_service_region_and_day() {
        let r = signed("eu-west-1", "ecr", SignableBody::Bytes(BODY), |_| {});
        assert!(
            matches!(r.run(&expect_ecr(), BODY), Err(SigError::Invalid(m)) if m.contains("region"))
        );
        let r = signed("us-east-1", "ecs", SignableBody::Bytes(BODY), |_| {});
        assert!(
            matches!(r.run(&expect_ecr(), BODY), Err(SigError::Invalid(m)) if m.contains("service: 'ecr'"))
        );
        let mut r = signed("us-east-1", "ecr", SignableBody::Bytes(BODY), |_| {});
        r.authorization = r.authorization.replace("/20150830/", "/20150831/");
        assert!(
            matches!(r.run(&expect_ecr(), BODY), Err(SigError::Invalid(m)) if m.contains("Date in Credential scope"))
        );
    }

    #[test]
    fn host_date_target_and_content_type_must_be_signed() {
        for name in ["host", "x-amz-date", "x-amz-target", "content-type"] {
            let r = signed("us-east-1", "ecr", SignableBody::Bytes(BODY), |s| {
                s.excluded_headers
                    .get_or_insert_with(Vec::new)
                    .push(name.into());
            });
            assert!(
                matches!(r.run(&expect_ecr(), BODY), Err(SigError::Incomplete(m)) if m.contains(name)),
                "{name}"
            );
        }
    }

    #[test]
    fn the_date_may_come_from_the_date_header() {
        let mut r = signed("us-east-1", "ecr", SignableBody::Bytes(BODY), |_| {});
        let stamp = r.headers.remove("x-amz-date").unwrap();
        r.headers.insert("date".into(), stamp);
        r.authorization = r.authorization.replace("x-amz-date", "date");
        // Signed over another header name, so the signature no longer holds, but the parts do.
        assert!(
            matches!(r.run(&expect_ecr(), BODY), Err(SigError::Invalid(m)) if m.contains("signature we calculated"))
        );
        r.headers.remove("date");
        assert!(
            matches!(r.run(&expect_ecr(), BODY), Err(SigError::Incomplete(m)) if m.contains("'Date'"))
        );
    }

    #[test]
    fn the_request_time_is_within_fifteen_minutes() {
        let r = signed("us-east-1", "ecr", SignableBody::Bytes(BODY), |_| {});
        let header = |name: &str| r.headers.get(name).cloned().unwrap_or_default();
        let request = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            header: &header,
        };
        let cred = r.credential();
        assert!(check(&cred, &request, &expect_ecr(), NOW + 14 * 60).is_ok());
        assert!(
            matches!(check(&cred, &request, &expect_ecr(), NOW + 16 * 60), Err(SigError::Invalid(m)) if m.starts_with("Signature expired"))
        );
        assert!(
            matches!(check(&cred, &request, &expect_ecr(), NOW - 16 * 60), Err(SigError::Invalid(m)) if m.starts_with("Signature not yet current"))
        );
    }

    #[test]
    fn malformed_authorization_is_incomplete() {
        for value in [
            "Basic abc",
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/ecr/aws4_request",
            "AWS4-HMAC-SHA256 Credential=AKID/us-east-1/ecr, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 garbage",
        ] {
            assert!(
                matches!(parse_authorization(value), Err(SigError::Incomplete(_))),
                "{value}"
            );
        }
    }

    /// The worked example of AWS's SigV4 documentation ("get-vanilla" of the
    /// SigV4 test suite): GET / with Host and X-Amz-Date signed.
    #[test]
    fn aws_test_suite_get_vanilla() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                    SignedHeaders=host;x-amz-date, \
                    Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        let cred = parse_authorization(auth).unwrap();
        assert_eq!(cred.access_key_id, "AKIDEXAMPLE");
        let header = |name: &str| match name {
            "host" => vec!["example.amazonaws.com".to_string()],
            "x-amz-date" => vec!["20150830T123600Z".to_string()],
            _ => vec![],
        };
        let request = SignedRequest {
            method: "GET",
            path: "/",
            query: "",
            header: &header,
        };
        let expect = Expect {
            region: "us-east-1",
            service: "service",
            signed: &[],
        };
        let checked = check(&cred, &request, &expect, NOW).unwrap();
        assert_eq!(verify(&cred, &checked, SECRET, &request, b""), Ok(()));
        assert!(matches!(
            verify(&cred, &checked, "wrong", &request, b""),
            Err(SigError::Invalid(_))
        ));
    }
}
