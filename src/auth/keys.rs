//! The token signing key: ECDSA P-256 (ES256), generated on first start and
//! kept as PKCS#8 PEM, or read from a configured file. Its `kid` is the
//! RFC 7638 JWK thumbprint, as Distribution v3 names keys.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey};
use p256::SecretKey;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rand::RngCore;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid key: {message}")]
    Format { path: String, message: String },
}

/// The key pair tokens are signed and checked with.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
}

impl SigningKey {
    /// Reads the key at `path`; with `generate`, creates it (mode 0600) when absent.
    pub fn load(path: &Path, generate: bool) -> Result<SigningKey, KeyError> {
        let shown = path.display().to_string();
        let pem = match std::fs::read_to_string(path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && generate => {
                let pem = generate_pem().map_err(|message| KeyError::Format {
                    path: shown.clone(),
                    message,
                })?;
                write_private(path, &pem).map_err(|source| KeyError::Write {
                    path: shown.clone(),
                    source,
                })?;
                pem
            }
            Err(source) => {
                return Err(KeyError::Read {
                    path: shown,
                    source,
                });
            }
        };
        Self::from_pem(&pem).map_err(|message| KeyError::Format {
            path: shown,
            message,
        })
    }

    pub fn from_pem(pem: &str) -> Result<SigningKey, String> {
        let secret = SecretKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())?;
        let point = secret.public_key().to_encoded_point(false);
        let (x, y) = match (point.x(), point.y()) {
            (Some(x), Some(y)) => (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y)),
            _ => return Err("public key has no affine coordinates".into()),
        };
        // RFC 7638: the required members in lexical order, no whitespace.
        let jwk = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(jwk.as_bytes()));
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
        let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?;
        Ok(SigningKey {
            kid,
            encoding,
            decoding,
        })
    }
}

/// A new random key as PKCS#8 PEM.
pub fn generate_pem() -> Result<String, String> {
    // Rejection sampling: almost every 32-byte string is a valid scalar.
    loop {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        if let Ok(secret) = SecretKey::from_slice(&bytes) {
            return secret
                .to_pkcs8_pem(LineEnding::LF)
                .map(|p| p.to_string())
                .map_err(|e| e.to_string());
        }
    }
}

/// Creates `path` with mode 0600 (and its folder 0700 when missing).
pub(super) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::storage::private::create_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_is_kept_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let first = SigningKey::load(&path, true).unwrap();
        let again = SigningKey::load(&path, false).unwrap();
        assert_eq!(first.kid, again.kid);
        assert_eq!(first.kid.len(), 43, "base64url of a SHA-256");
        assert!(SigningKey::load(&dir.path().join("absent.pem"), false).is_err());
    }
}
