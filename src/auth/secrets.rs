//! Secrets Wharf must be able to read back (SigV4 needs an access key's secret
//! itself to recompute signatures) are sealed with ChaCha20-Poly1305 under a
//! key kept beside the token signing key, never in the database: a copy of
//! the database alone cannot sign requests. A sealed value names the key that
//! sealed it, so a wrong key is reported as such.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};

use super::keys::{KeyError, write_private};

const PREFIX: &str = "sealed:v1:";

/// The key that seals stored secrets.
#[derive(Clone)]
pub struct SecretsKey {
    key: Arc<LessSafeKey>,
    id: String,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsKey").field("id", &self.id).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed with another secrets key ({0})")]
    OtherKey(String),
    #[error("sealed value is damaged")]
    Damaged,
    #[error("sealing failed")]
    Sealing,
}

impl SecretsKey {
    /// Reads the key at `path` (base64 of 32 bytes); with `generate`, creates
    /// it (mode 0600) when absent.
    pub fn load(path: &Path, generate: bool) -> Result<SecretsKey, KeyError> {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && generate => {
                let mut bytes = [0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                let text = format!("{}\n", STANDARD.encode(bytes));
                write_private(path, &text).map_err(|source| KeyError::Write {
                    path: shown.clone(),
                    source,
                })?;
                text
            }
            Err(source) => {
                return Err(KeyError::Read {
                    path: shown,
                    source,
                });
            }
        };
        let bytes = STANDARD
            .decode(text.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| KeyError::Format {
                path: shown.clone(),
                message: "expected the base64 of 32 random bytes".into(),
            })?;
        Self::from_bytes(&bytes).map_err(|message| KeyError::Format {
            path: shown,
            message,
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<SecretsKey, String> {
        let key = UnboundKey::new(&CHACHA20_POLY1305, bytes).map_err(|e| e.to_string())?;
        let id = hex::encode(
            &Sha256::new()
                .chain_update(b"wharf secrets key id\0")
                .chain_update(bytes)
                .finalize()[..8],
        );
        Ok(SecretsKey {
            key: Arc::new(LessSafeKey::new(key)),
            id,
        })
    }

    /// A public name of the key (a truncated hash), to tell keys apart.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether a stored value is sealed (rather than left as is by an older version).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }

    /// Seals `plaintext`, bound to `context` (the row it belongs to), so a
    /// sealed value copied to another row does not open.
    pub fn seal(&self, context: &str, plaintext: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut data = plaintext.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .map_err(|_| SealError::Sealing)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!("{PREFIX}{}:{}", self.id, STANDARD.encode(out)))
    }

    /// Opens a value sealed by [`SecretsKey::seal`]; a value that is not
    /// sealed (an older version's row) is returned as is.
    pub fn open(&self, context: &str, stored: &str) -> Result<String, SealError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let (id, data) = rest.split_once(':').ok_or(SealError::Damaged)?;
        if id != self.id {
            return Err(SealError::OtherKey(id.to_string()));
        }
        let data = STANDARD.decode(data).map_err(|_| SealError::Damaged)?;
        if data.len() < NONCE_LEN {
            return Err(SealError::Damaged);
        }
        let (nonce, sealed) = data.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Damaged)?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut sealed)
            .map_err(|_| SealError::Damaged)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Damaged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets-key");
        let key = SecretsKey::load(&path, true).unwrap();
        let again = SecretsKey::load(&path, false).unwrap();
        assert_eq!(key.id(), again.id());
        let sealed = key.seal("AKIA1", "the secret").unwrap();
        assert!(SecretsKey::is_sealed(&sealed));
        assert!(!sealed.contains("the secret"));
        assert_ne!(
            sealed,
            key.seal("AKIA1", "the secret").unwrap(),
            "a fresh nonce each time"
        );
        assert_eq!(again.open("AKIA1", &sealed).unwrap(), "the secret");
        assert!(matches!(
            key.open("AKIA2", &sealed),
            Err(SealError::Damaged)
        ));
        let other = SecretsKey::from_bytes(&[7u8; 32]).unwrap();
        assert!(matches!(
            other.open("AKIA1", &sealed),
            Err(SealError::OtherKey(_))
        ));
        assert_eq!(key.open("AKIA1", "plain").unwrap(), "plain");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join("short"), "AAAA\n").unwrap();
        assert!(SecretsKey::load(&dir.path().join("short"), false).is_err());
    }
}
