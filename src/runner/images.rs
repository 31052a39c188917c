//! Images come from this registry only: a container's image must name one of
//! this registry's own addresses. At task start the tag is resolved to a
//! digest and the container runs exactly that manifest.

use std::fmt;

use crate::auth::{Action, Scope};
use crate::oci::{Digest, Reference, RepoName, Tag};

/// A parsed image reference that names this registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `host[:port]` as written (what the Docker Engine pulls from).
    pub host: String,
    pub repo: RepoName,
    pub reference: Reference,
}

impl ImageRef {
    /// The same image pinned to `digest`.
    pub fn pinned(&self, digest: &Digest) -> ImageRef {
        ImageRef {
            host: self.host.clone(),
            repo: self.repo.clone(),
            reference: Reference::Digest(digest.clone()),
        }
    }

    pub fn digest(&self) -> Option<&Digest> {
        match &self.reference {
            Reference::Digest(d) => Some(d),
            Reference::Tag(_) => None,
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reference {
            Reference::Tag(t) => write!(f, "{}/{}:{t}", self.host, self.repo),
            Reference::Digest(d) => write!(f, "{}/{}@{d}", self.host, self.repo),
        }
    }
}

/// The addresses that name this registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryHosts {
    hosts: Vec<String>,
}

impl RegistryHosts {
    /// `external_url` (may be empty) and the port Wharf listens on: the
    /// external host, and `localhost`/`127.0.0.1`/`[::1]` with that port.
    pub fn new(external_url: &str, listen_port: u16) -> RegistryHosts {
        let mut hosts = vec![
            format!("localhost:{listen_port}"),
            format!("127.0.0.1:{listen_port}"),
            format!("[::1]:{listen_port}"),
        ];
        if let Some((scheme, rest)) = external_url.split_once("://") {
            let host = rest
                .split('/')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if !host.is_empty() {
                hosts.push(host.clone());
                // The default port may be written out or not.
                let default_port = if scheme == "https" { 443 } else { 80 };
                match host.rsplit_once(':') {
                    Some((name, port)) if port == default_port.to_string() => {
                        hosts.push(name.to_string())
                    }
                    Some(_) => {}
                    None => hosts.push(format!("{host}:{default_port}")),
                }
            }
        }
        RegistryHosts { hosts }
    }

    /// The address to show in errors.
    pub fn preferred(&self) -> &str {
        self.hosts.last().map(String::as_str).unwrap_or("localhost")
    }

    /// Parses `image` and checks that it names this registry.
    pub fn parse(&self, image: &str) -> Result<ImageRef, String> {
        let refuse = |why: &str| {
            Err(format!(
                "image {image:?} {why}: task definitions may only use images stored in this \
                 registry, e.g. {}/REPOSITORY:TAG",
                self.preferred()
            ))
        };
        let Some((first, rest)) = image.split_once('/') else {
            return refuse("names no registry (a Docker Hub short name)");
        };
        if !(first.contains('.') || first.contains(':') || first == "localhost") {
            return refuse("names no registry (a Docker Hub name)");
        }
        let host = first.to_ascii_lowercase();
        if !self.hosts.contains(&host) {
            return refuse(&format!("comes from another registry ({first})"));
        }
        let (name, reference) = if let Some((name, digest)) = rest.split_once('@') {
            let digest: Digest = digest
                .parse()
                .map_err(|e| format!("image {image:?}: invalid digest: {e}"))?;
            // `repo:tag@digest`: the digest wins, as Docker does.
            let name = name.split_once(':').map_or(name, |(n, _)| n);
            (name, Reference::Digest(digest))
        } else if let Some((name, tag)) = rest.rsplit_once(':') {
            let tag: Tag = tag
                .parse()
                .map_err(|e| format!("image {image:?}: invalid tag: {e}"))?;
            (name, Reference::Tag(tag))
        } else {
            (
                rest,
                Reference::Tag("latest".parse().map_err(|e| format!("{e}"))?),
            )
        };
        let repo: RepoName = name
            .parse()
            .map_err(|e| format!("image {image:?}: invalid repository name: {e}"))?;
        Ok(ImageRef {
            host,
            repo,
            reference,
        })
    }
}

/// The scopes a resource running `images` requires (README, task runner:
/// "Who may call what"): `push` on each repository. `None` when there is no
/// image or one does not name a repository of this registry: such a
/// resource belongs to nobody.
pub fn repository_scopes<'i>(
    hosts: &RegistryHosts,
    images: impl IntoIterator<Item = &'i str>,
) -> Option<Vec<Scope>> {
    let mut needs: Vec<Scope> = Vec::new();
    for image in images {
        let repo = hosts.parse(image).ok()?.repo;
        if !needs.iter().any(|n| n.name == repo.as_str()) {
            needs.push(Scope::repository(repo.as_str(), &[Action::Push]));
        }
    }
    (!needs.is_empty()).then_some(needs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn only_this_registry() {
        let hosts = RegistryHosts::new("https://registry.example.com", 5000);
        for ok in [
            "localhost:5000/app:1",
            "127.0.0.1:5000/team/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "registry.example.com/app",
            "registry.example.com:443/app:v2",
        ] {
            assert!(hosts.parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "busybox",
            "library/busybox:latest",
            "docker.io/library/busybox",
            "localhost:5001/app:1",
            "ghcr.io/owner/app:1",
            "localhost:5000/App:1",
        ] {
            assert!(hosts.parse(bad).is_err(), "{bad}");
        }
        let r = hosts.parse("localhost:5000/team/app").unwrap();
        assert_eq!(r.repo.as_str(), "team/app");
        assert_eq!(r.to_string(), "localhost:5000/team/app:latest");
    }
}
