//! AWS Signature Version 4 verification for the AWS JSON 1.1 APIs (ECR, ECS):
//! rebuild the canonical request from what arrived, sign it with the secret of
//! the access key it names, and compare in constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::PrimitiveDateTime;
use time::macros::format_description;

type HmacSha256 = Hmac<Sha256>;

/// How far a request's `X-Amz-Date` may be from our clock, as AWS allows.
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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigError {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("Authorization header is malformed: {0}")]
    Malformed(String),
    #[error("Signature expired: the request time is too far from the server time")]
    Expired,
    #[error("The request signature we calculated does not match the signature you provided")]
    Mismatch,
}

/// Parses the Authorization header value.
pub fn parse_authorization(value: &str) -> Result<Credential, SigError> {
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| SigError::Malformed("unsupported algorithm".into()))?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| SigError::Malformed(part.trim().into()))?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let (credential, signed, signature) = match (credential, signed, signature) {
        (Some(c), Some(s), Some(sig)) => (c, s, sig),
        _ => {
            return Err(SigError::Malformed(
                "Credential, SignedHeaders and Signature are required".into(),
            ));
        }
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(SigError::Malformed(format!(
            "bad credential scope {credential:?}"
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

/// The request as it arrived, for verification.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Header lookup by lower-case name (all values of that name).
    pub header: &'a dyn Fn(&str) -> Vec<String>,
    pub body: &'a [u8],
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

/// The request's time from `X-Amz-Date`, as Unix seconds.
fn request_time(value: &str) -> Option<i64> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(value, format)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

/// Verifies `request` against `secret`; `now` is Unix seconds.
pub fn verify(
    cred: &Credential,
    secret: &str,
    request: &SignedRequest<'_>,
    now: i64,
) -> Result<(), SigError> {
    let amz_date = (request.header)("x-amz-date")
        .into_iter()
        .next()
        .ok_or(SigError::Missing)?;
    let when =
        request_time(&amz_date).ok_or_else(|| SigError::Malformed("bad X-Amz-Date".into()))?;
    if (when - now).abs() > MAX_SKEW_SECONDS {
        return Err(SigError::Expired);
    }
    if !amz_date.starts_with(&cred.date) || !cred.signed_headers.iter().any(|h| h == "host") {
        return Err(SigError::Mismatch);
    }
    let mut canonical_headers = String::new();
    for name in &cred.signed_headers {
        let values: Vec<String> = (request.header)(name)
            .iter()
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let payload_hash = match (request.header)("x-amz-content-sha256").into_iter().next() {
        Some(h) if h != "UNSIGNED-PAYLOAD" => h,
        _ => hex::encode(Sha256::digest(request.body)),
    };
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        uri_encode(request.path, true),
        canonical_query(request.query),
        canonical_headers,
        cred.signed_headers.join(";"),
        payload_hash
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        cred.date, cred.region, cred.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), cred.date.as_bytes());
    let k_region = hmac(&k_date, cred.region.as_bytes());
    let k_service = hmac(&k_region, cred.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let expected = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));
    if expected.as_bytes().ct_eq(cred.signature.as_bytes()).into() {
        Ok(())
    } else {
        Err(SigError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            body: b"",
        };
        let now = request_time("20150830T123600Z").unwrap();
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        assert_eq!(verify(&cred, secret, &request, now), Ok(()));
        assert_eq!(
            verify(&cred, "wrong", &request, now),
            Err(SigError::Mismatch)
        );
        assert_eq!(
            verify(&cred, secret, &request, now + 3600),
            Err(SigError::Expired)
        );
    }
}
