//! Which blob files were hashed recently and matched their digest, so reading
//! them again need not hash them. A record holds while the file is the one
//! that was hashed (same device, inode, size, mtime and ctime, observed when
//! they had settled: any later write through the file system or a replaced
//! file breaks it) and is younger than
//! `max_age`, the scrub interval: bytes that rot without any of those
//! changing are found by the scrub, which re-hashes every blob once per
//! interval. Records live in memory only, so after a restart every blob is
//! hashed on its first read again.

use std::time::{Duration, Instant};

use crate::oci::Digest;
use crate::storage::FileIdentity;

/// Records kept at most (~150 bytes each); a forgotten one costs one hashed read.
const CAPACITY: usize = 16_384;
/// Corrupt blobs remembered; beyond it, the oldest lose their range refusal
/// (their full reads are hashed and break anyway).
const CORRUPT_CAPACITY: usize = 4_096;

pub(super) struct VerifiedFiles {
    records: quick_cache::sync::Cache<Digest, Record>,
    /// Blobs found not to match (by a read or the scrub) and not matched
    /// since: ranges of them are refused, as a part cannot be checked.
    corrupt: quick_cache::sync::Cache<Digest, ()>,
    max_age: Duration,
}

#[derive(Clone)]
struct Record {
    identity: FileIdentity,
    at: Instant,
}

impl VerifiedFiles {
    /// Records that hold for `max_age`; zero keeps none (every read hashes).
    pub(super) fn new(max_age: Duration) -> Self {
        VerifiedFiles {
            records: quick_cache::sync::Cache::new(CAPACITY),
            corrupt: quick_cache::sync::Cache::new(CORRUPT_CAPACITY),
            max_age,
        }
    }

    /// `digest`'s file, as `identity` describes it, was just hashed and
    /// matched. A file changed too recently to tell later writes apart is not
    /// recorded (it is hashed again on its next read).
    pub(super) fn record(&self, digest: &Digest, identity: FileIdentity) {
        self.corrupt.remove(digest);
        if !self.max_age.is_zero() && identity.is_settled() {
            let at = Instant::now();
            self.records.insert(digest.clone(), Record { identity, at });
        }
    }

    /// Whether the file `identity` describes may be sent without hashing.
    pub(super) fn holds(&self, digest: &Digest, identity: &FileIdentity) -> bool {
        self.records
            .get(digest)
            .is_some_and(|r| r.identity == *identity && r.at.elapsed() < self.max_age)
    }

    /// `digest`'s stored bytes matched (a read without a file to record).
    pub(super) fn matched(&self, digest: &Digest) {
        self.corrupt.remove(digest);
    }

    /// `digest`'s stored bytes did not match.
    pub(super) fn found_corrupt(&self, digest: &Digest) {
        self.records.remove(digest);
        self.corrupt.insert(digest.clone(), ());
    }

    pub(super) fn is_corrupt(&self, digest: &Digest) -> bool {
        self.corrupt.get(digest).is_some()
    }
}
