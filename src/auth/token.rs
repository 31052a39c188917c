//! Registry tokens (Docker token spec, `jwt.md`): short-lived ES256 JWTs with
//! an `access` claim, and longer-lived refresh tokens (a different audience,
//! so one can never be used as the other).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use super::keys::SigningKey;
use super::scope::Access;

/// Query parameter of a blob download URL (ECR's GetDownloadUrlForLayer).
pub const DOWNLOAD_TOKEN: &str = "download_token";

/// Clock skew tolerated on `exp` and `nbf`, as Distribution allows.
const LEEWAY_SECONDS: u64 = 60;

/// The registered claims every token of ours carries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Registered {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
}

/// An access token: who, and what they may do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    #[serde(flatten)]
    pub registered: Registered,
    pub access: Vec<Access>,
}

/// What a refresh token (or an ECR login password) stands for: a user, or an
/// access token by id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefreshClaims {
    #[serde(flatten)]
    pub registered: Registered,
    #[serde(flatten)]
    pub binding: RefreshBinding,
}

/// The credential a refresh token was issued for; it stops working when that
/// credential goes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefreshBinding {
    /// Set when the refresh token was issued to an access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// A user's credential generation when it was issued.
    #[serde(default, rename = "gen", skip_serializing_if = "Option::is_none")]
    pub generation: Option<String>,
}

/// A web console session (`/ui/`): the credential it stands for, as a
/// refresh token's, and the CSRF secret of the browser it was issued to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionClaims {
    #[serde(flatten)]
    pub registered: Registered,
    #[serde(flatten)]
    pub binding: RefreshBinding,
    pub csrf: String,
}

impl SessionClaims {
    /// The claims [`super::Authenticator::refresh`] checks the credential with.
    pub fn refresh_claims(&self) -> RefreshClaims {
        RefreshClaims {
            registered: self.registered.clone(),
            binding: self.binding.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed or not signed by this registry: {0}")]
    Invalid(String),
    #[error("token was signed with an unknown key")]
    UnknownKey,
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Issues and verifies tokens for one service.
#[derive(Clone)]
pub struct TokenIssuer {
    key: SigningKey,
    pub issuer: String,
    pub service: String,
    pub ttl: Duration,
    pub refresh_ttl: Duration,
}

/// A freshly signed access token and its lifetime.
pub struct Issued {
    pub token: String,
    pub expires_in: u64,
    pub issued_at: SystemTime,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenIssuer {
    pub fn new(
        key: SigningKey,
        issuer: String,
        service: String,
        ttl: Duration,
        refresh_ttl: Duration,
    ) -> Self {
        Self {
            key,
            issuer,
            service,
            ttl,
            refresh_ttl,
        }
    }

    fn header(&self) -> Header {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key.kid.clone());
        header
    }

    fn refresh_audience(&self) -> String {
        format!("{}#refresh", self.service)
    }

    fn registered(
        &self,
        subject: &str,
        audience: String,
        now: SystemTime,
        ttl: Duration,
    ) -> Registered {
        Registered {
            iss: self.issuer.clone(),
            sub: subject.to_string(),
            aud: audience,
            exp: unix(now + ttl),
            nbf: unix(now),
            iat: unix(now),
            jti: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    pub fn issue(&self, subject: &str, access: Vec<Access>) -> Result<Issued, TokenError> {
        let now = SystemTime::now();
        let claims = Claims {
            registered: self.registered(subject, self.service.clone(), now, self.ttl),
            access,
        };
        let token = jsonwebtoken::encode(&self.header(), &claims, &self.key.encoding)
            .map_err(|e| TokenError::Sign(e.to_string()))?;
        Ok(Issued {
            token,
            expires_in: self.ttl.as_secs(),
            issued_at: now,
        })
    }

    /// A refresh token bound to `binding`, valid for `refresh_ttl` but never
    /// past `not_after` (Unix seconds): the end of the credential it came from.
    pub fn issue_refresh(
        &self,
        subject: &str,
        binding: RefreshBinding,
        not_after: Option<u64>,
    ) -> Result<String, TokenError> {
        let mut registered = self.registered(
            subject,
            self.refresh_audience(),
            SystemTime::now(),
            self.refresh_ttl,
        );
        if let Some(not_after) = not_after {
            registered.exp = registered.exp.min(not_after);
        }
        let claims = RefreshClaims {
            registered,
            binding,
        };
        jsonwebtoken::encode(&self.header(), &claims, &self.key.encoding)
            .map_err(|e| TokenError::Sign(e.to_string()))
    }

    fn session_audience(&self) -> String {
        format!("{}#console", self.service)
    }

    /// A web console session bound to `binding`, valid for `ttl` but never
    /// past `not_after` (Unix seconds), carrying the browser's CSRF secret.
    pub fn issue_session(
        &self,
        subject: &str,
        binding: RefreshBinding,
        not_after: Option<u64>,
        ttl: Duration,
        csrf: &str,
    ) -> Result<String, TokenError> {
        let mut registered =
            self.registered(subject, self.session_audience(), SystemTime::now(), ttl);
        if let Some(not_after) = not_after {
            registered.exp = registered.exp.min(not_after);
        }
        let claims = SessionClaims {
            registered,
            binding,
            csrf: csrf.to_string(),
        };
        jsonwebtoken::encode(&self.header(), &claims, &self.key.encoding)
            .map_err(|e| TokenError::Sign(e.to_string()))
    }

    /// A session's claims, when it is ours, for the console and unexpired;
    /// whether its credential still holds is [`super::Authenticator::refresh`]'s to say.
    pub fn verify_session(&self, token: &str) -> Result<SessionClaims, TokenError> {
        self.check_kid(token)?;
        jsonwebtoken::decode::<SessionClaims>(
            token,
            &self.key.decoding,
            &self.validation(&self.session_audience()),
        )
        .map(|d| d.claims)
        .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    fn login_audience(&self) -> String {
        format!("{}#login", self.service)
    }

    /// A password for `docker login -u AWS` (ECR's GetAuthorizationToken), valid
    /// for `ttl` while the user's credential generation stays `generation`.
    pub fn issue_login_password(
        &self,
        subject: &str,
        generation: String,
        ttl: Duration,
    ) -> Result<(String, SystemTime), TokenError> {
        let now = SystemTime::now();
        let claims = RefreshClaims {
            registered: self.registered(subject, self.login_audience(), now, ttl),
            binding: RefreshBinding {
                token_id: None,
                generation: Some(generation),
            },
        };
        let password = jsonwebtoken::encode(&self.header(), &claims, &self.key.encoding)
            .map_err(|e| TokenError::Sign(e.to_string()))?;
        Ok((password, now + ttl))
    }

    pub fn verify_login_password(&self, password: &str) -> Result<RefreshClaims, TokenError> {
        self.check_kid(password)?;
        jsonwebtoken::decode::<RefreshClaims>(
            password,
            &self.key.decoding,
            &self.validation(&self.login_audience()),
        )
        .map(|d| d.claims)
        .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    fn download_audience(&self) -> String {
        format!("{}#download", self.service)
    }

    /// The name a download token's access entry carries for one blob.
    fn download_resource(repo: &str, digest: &str) -> String {
        format!("{repo}@{digest}")
    }

    /// A token for a blob's download URL (in its [`DOWNLOAD_TOKEN`] parameter) (ECR's GetDownloadUrlForLayer): whoever
    /// holds the URL may read that one blob until it expires, and nothing else.
    pub fn issue_download(
        &self,
        subject: &str,
        repo: &str,
        digest: &str,
        ttl: Duration,
    ) -> Result<(String, SystemTime), TokenError> {
        let now = SystemTime::now();
        let claims = Claims {
            registered: self.registered(subject, self.download_audience(), now, ttl),
            access: vec![Access {
                kind: "blob".into(),
                name: Self::download_resource(repo, digest),
                actions: vec!["pull".into()],
            }],
        };
        let token = jsonwebtoken::encode(&self.header(), &claims, &self.key.encoding)
            .map_err(|e| TokenError::Sign(e.to_string()))?;
        Ok((token, now + ttl))
    }

    /// Whether `token` is a valid download token for this blob.
    pub fn verify_download(&self, token: &str, repo: &str, digest: &str) -> bool {
        if self.check_kid(token).is_err() {
            return false;
        }
        let resource = Self::download_resource(repo, digest);
        jsonwebtoken::decode::<Claims>(
            token,
            &self.key.decoding,
            &self.validation(&self.download_audience()),
        )
        .is_ok_and(|d| {
            d.claims
                .access
                .iter()
                .any(|a| a.kind == "blob" && a.name == resource)
        })
    }

    fn validation(&self, audience: &str) -> Validation {
        // Only ES256: `alg: none` and algorithm confusion are refused outright.
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[audience]);
        v.set_issuer(&[&self.issuer]);
        v.leeway = LEEWAY_SECONDS;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        v
    }

    fn check_kid(&self, token: &str) -> Result<(), TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        match header.kid {
            Some(kid) if kid == self.key.kid => Ok(()),
            _ => Err(TokenError::UnknownKey),
        }
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.check_kid(token)?;
        jsonwebtoken::decode::<Claims>(token, &self.key.decoding, &self.validation(&self.service))
            .map(|d| d.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    pub fn verify_refresh(&self, token: &str) -> Result<RefreshClaims, TokenError> {
        self.check_kid(token)?;
        jsonwebtoken::decode::<RefreshClaims>(
            token,
            &self.key.decoding,
            &self.validation(&self.refresh_audience()),
        )
        .map(|d| d.claims)
        .map_err(|e| TokenError::Invalid(e.to_string()))
    }
}
