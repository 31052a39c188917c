//! Content digests (`algorithm:encoded`) and the streaming hasher that produces them.
//! Pure data: no I/O here.

use std::fmt;
use std::str::FromStr;

use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest as _, Sha256, Sha512};

/// A digest algorithm this registry can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated digest such as `sha256:9f86d0...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// Why a digest string was refused.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("digest must have the form algorithm:encoded")]
    Malformed,
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("encoded part of the digest is not {0} lowercase hex characters")]
    BadEncoding(usize),
}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded (hex) part.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Digest of an in-memory byte slice (manifests, small test data).
    pub fn compute(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (alg, hex) = s.split_once(':').ok_or(DigestError::Malformed)?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => {
                // Anything matching the spec's algorithm grammar is well-formed but unsupported.
                let valid = !other.is_empty()
                    && other.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b)
                    });
                return Err(if valid {
                    DigestError::UnsupportedAlgorithm(other.to_string())
                } else {
                    DigestError::Malformed
                });
            }
        };
        let ok = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err(DigestError::BadEncoding(algorithm.hex_len()));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental hasher for one algorithm; fed while bytes stream past.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The hashing state so far, to continue in another process ([`Hasher::restore`]).
    pub fn save(&self) -> Vec<u8> {
        let (tag, state) = match self {
            Hasher::Sha256(h) => (b'2', h.serialize().to_vec()),
            Hasher::Sha512(h) => (b'5', h.serialize().to_vec()),
        };
        let mut saved = Vec::with_capacity(1 + state.len());
        saved.push(tag);
        saved.extend(state);
        saved
    }

    /// A hasher from [`Hasher::save`]'s output; `None` when it is not one.
    pub fn restore(saved: &[u8]) -> Option<Hasher> {
        let (tag, state) = saved.split_first()?;
        match tag {
            b'2' => SerializedState::<Sha256>::try_from(state)
                .ok()
                .and_then(|s| Sha256::deserialize(&s).ok())
                .map(Hasher::Sha256),
            b'5' => SerializedState::<Sha512>::try_from(state)
                .ok()
                .and_then(|s| Sha512::deserialize(&s).ok())
                .map(Hasher::Sha512),
            _ => None,
        }
    }

    pub fn finish(self) -> Digest {
        let algorithm = self.algorithm();
        let hex = match self {
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        };
        Digest { algorithm, hex }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        assert_eq!(d, Digest::compute(Algorithm::Sha256, b""));
        assert_eq!(d.to_string().len(), 71);
    }

    #[test]
    fn sha512_round_trip() {
        let d = Digest::compute(Algorithm::Sha512, b"abc");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!(d.hex().starts_with("ddaf35a193617aba"));
    }

    #[test]
    fn saved_state_continues_the_hash() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            // Split inside a block, so the saved state carries a partial block.
            let mut first = Hasher::new(algorithm);
            first.update(&data[..333]);
            let mut resumed = Hasher::restore(&first.save()).unwrap();
            resumed.update(&data[333..]);
            assert_eq!(resumed.finish(), Digest::compute(algorithm, &data));
        }
        assert!(Hasher::restore(b"").is_none());
        assert!(Hasher::restore(b"2short").is_none());
        assert!(Hasher::restore(&[b'9'; 41]).is_none());
    }

    #[test]
    fn rejects_bad_digests() {
        assert!(matches!(
            "sha256".parse::<Digest>(),
            Err(DigestError::Malformed)
        ));
        assert!(matches!(
            "sha256:ABC".parse::<Digest>(),
            Err(DigestError::BadEncoding(64))
        ));
        assert!(matches!(
            "md5:0123".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        let upper = format!("sha256:{}", "A".repeat(64));
        assert!(upper.parse::<Digest>().is_err());
    }
}
