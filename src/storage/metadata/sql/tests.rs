//! The SQL store on its own, on SQLite and (under `WHARF_TEST_POSTGRES`, a
//! server URL without a database) on a fresh PostgreSQL database: the
//! set-based push with duplicates, lists longer than one batch, missing
//! references and immutable tags, resource tags written as sets, and the
//! failures other areas report in their own error types.

use futures::FutureExt as _;

use super::{BATCH, Database, SqlMetadata};
use crate::oci::{Algorithm, Digest, RepoName, Tag};
use crate::storage::metadata::{
    AccessTokenRecord, BlobMetadata, BlobMetadataError, CredentialStore, CredentialStoreError,
    ManifestMetadata, ManifestMetadataError, ManifestRecord, NewManifest, Page, RepositoryMetadata,
    RepositoryRecord,
};

fn digest_of(text: &str) -> Digest {
    Digest::compute(Algorithm::Sha256, text.as_bytes())
}

fn tags(names: &[&str]) -> Vec<Tag> {
    names.iter().map(|n| n.parse().unwrap()).collect()
}

/// The stores to test, with the folder a SQLite store lives in.
async fn stores() -> Vec<(tempfile::TempDir, SqlMetadata)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Database::Sqlite {
        path: dir.path().join("meta.db"),
        readers: 2,
    };
    let mut stores = vec![(dir, SqlMetadata::open(&sqlite).await.unwrap())];
    if let Some(server) = std::env::var("WHARF_TEST_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())
    {
        use sqlx::Connection as _;
        let name = format!("wharf_unit_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::AnyConnection::connect(&format!("{server}/postgres"))
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let url = format!("{server}/{name}");
        let postgres = Database::Postgres {
            url,
            connections: 4,
        };
        stores.push((
            tempfile::tempdir().unwrap(),
            SqlMetadata::open(&postgres).await.unwrap(),
        ));
    }
    stores
}

fn manifest<'a>(
    repo: &'a RepoName,
    text: &str,
    blobs: &'a [Digest],
    children: &'a [Digest],
    tags: &'a [Tag],
    immutable_tags: &'a [Tag],
) -> NewManifest<'a> {
    NewManifest {
        repo,
        record: ManifestRecord {
            digest: digest_of(text),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: text.len() as u64,
            artifact_type: None,
            annotations: None,
            pushed_at_ms: 0,
        },
        blobs,
        children,
        subject: None,
        platforms: &[],
        tags,
        immutable_tags,
        place: async { Ok(()) }.boxed(),
    }
}

#[tokio::test]
async fn push_checks_and_records_references_as_sets() {
    for (_dir, store) in stores().await {
        let repo: RepoName = "app".parse().unwrap();
        // More layers than one statement binds, each 10 bytes.
        let layers: Vec<Digest> = (0..BATCH + 20)
            .map(|i| digest_of(&format!("layer {i}")))
            .collect();
        for layer in &layers {
            store
                .link_blob(&repo, layer, 10, async { Ok(()) }.boxed())
                .await
                .unwrap();
        }
        let mut listed = layers.clone();
        listed.push(layers[0].clone());
        let image_tags = tags(&["v1", "latest", "v1"]);
        store
            .put_manifest(manifest(&repo, "image", &listed, &[], &image_tags, &[]))
            .await
            .unwrap();

        let images = store.images(&repo).await.unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].tags, ["latest", "v1"]);
        assert_eq!(images[0].blob_bytes, 10 * layers.len() as u64);

        // Missing references are reported in the manifest's order, repeats kept.
        let absent = digest_of("absent");
        let blobs = [layers[1].clone(), absent.clone(), absent.clone()];
        let children = [digest_of("image"), digest_of("no such child")];
        match store
            .put_manifest(manifest(&repo, "index", &blobs, &children, &[], &[]))
            .await
        {
            Err(ManifestMetadataError::MissingReferences { blobs, manifests }) => {
                assert_eq!(blobs, [absent.clone(), absent]);
                assert_eq!(manifests, [digest_of("no such child")]);
            }
            other => panic!("{other:?}"),
        }

        // An index listing the image, then an immutable tag kept from moving.
        let children = [digest_of("image")];
        let pinned = tags(&["stable"]);
        store
            .put_manifest(manifest(&repo, "index", &[], &children, &pinned, &pinned))
            .await
            .unwrap();
        let moved = tags(&["latest", "stable"]);
        match store
            .put_manifest(manifest(&repo, "other", &[], &[], &moved, &moved))
            .await
        {
            Err(ManifestMetadataError::TagImmutable(tag)) => assert_eq!(tag, "latest"),
            other => panic!("{other:?}"),
        }
        // Pushing the same manifest again under its immutable tag is allowed.
        store
            .put_manifest(manifest(&repo, "index", &[], &children, &pinned, &pinned))
            .await
            .unwrap();
        let images = store.images(&repo).await.unwrap();
        let index = images
            .iter()
            .find(|i| i.manifest.digest == digest_of("index"))
            .unwrap();
        assert_eq!(index.children, [digest_of("image")]);
        assert_eq!(index.tags, ["stable"]);
        let page = Page {
            last: None,
            limit: 10,
        };
        assert_eq!(
            store.list_tags(&repo, page).await.unwrap().unwrap(),
            ["latest", "stable", "v1"]
        );
    }
}

#[tokio::test]
async fn resource_tags_are_written_as_sets() {
    for (_dir, store) in stores().await {
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        for name in ["a", "b"] {
            let record = RepositoryRecord {
                name: name.parse().unwrap(),
                created_at_ms: 1,
                tag_mutability: "MUTABLE".into(),
                mutability_filters: vec!["x*".into()],
                tags: vec![pair("team", name), pair("env", "dev")],
            };
            assert!(store.create_repository(&record).await.unwrap());
            assert!(!store.create_repository(&record).await.unwrap());
        }
        let a: RepoName = "a".parse().unwrap();
        let add = [pair("env", "test"), pair("cost", "1"), pair("env", "prod")];
        let remove = ["team".to_string(), "team".to_string()];
        assert!(
            store
                .update_repository_tags(&a, &add, &remove)
                .await
                .unwrap()
        );
        let page = Page {
            last: None,
            limit: 10,
        };
        let records = store.repositories(page).await.unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].tags, [pair("cost", "1"), pair("env", "prod")]);
        assert_eq!(records[1].tags, [pair("env", "dev"), pair("team", "b")]);
        assert_eq!(records[1].mutability_filters, ["x*"]);
        let missing: RepoName = "c".parse().unwrap();
        assert!(
            !store
                .update_repository_tags(&missing, &add, &[])
                .await
                .unwrap()
        );
    }
}

#[tokio::test]
async fn blobs_in_use_and_taken_token_names_are_refused() {
    for (_dir, store) in stores().await {
        let repo: RepoName = "app".parse().unwrap();
        let layer = digest_of("layer");
        store
            .link_blob(&repo, &layer, 5, async { Ok(()) }.boxed())
            .await
            .unwrap();
        let listed = [layer.clone()];
        store
            .put_manifest(manifest(&repo, "image", &listed, &[], &[], &[]))
            .await
            .unwrap();
        match store.unlink_blob(&repo, &layer).await {
            Err(BlobMetadataError::InUse(digest)) => assert_eq!(digest, layer),
            other => panic!("{other:?}"),
        }

        let token = AccessTokenRecord {
            id: "id1".into(),
            name: "ci".into(),
            secret_hash: "00".into(),
            scopes: vec![],
            created_at_ms: 1,
            expires_at_ms: None,
        };
        store.put_access_token(&token).await.unwrap();
        let again = AccessTokenRecord {
            id: "id2".into(),
            ..token
        };
        match store.put_access_token(&again).await {
            // The admin API sends this text.
            Err(e @ CredentialStoreError::TokenNameTaken(_)) => {
                assert_eq!(e.to_string(), r#"an access token named "ci" exists"#)
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn container_instances_are_compared_and_swapped_and_go_with_their_cluster() {
    use crate::storage::metadata::RunnerStore;
    for (_dir, store) in stores().await {
        store.create_cluster("prod", 1).await.unwrap();
        assert!(
            store
                .insert_instance("prod", "i1", "{\"v\":1}")
                .await
                .unwrap()
        );
        assert!(
            !store
                .insert_instance("prod", "i1", "{\"v\":9}")
                .await
                .unwrap()
        );
        assert!(store.insert_instance("default", "i1", "{}").await.unwrap());
        let stored = store.instance("prod", "i1").await.unwrap().unwrap();
        assert_eq!((stored.version, stored.doc.as_str()), (1, "{\"v\":1}"));
        assert!(
            store
                .save_instance("prod", "i1", 1, "{\"v\":2}")
                .await
                .unwrap()
        );
        // A writer that read version 1 lost the race.
        assert!(
            !store
                .save_instance("prod", "i1", 1, "{\"v\":3}")
                .await
                .unwrap()
        );
        let stored = store.instance("prod", "i1").await.unwrap().unwrap();
        assert_eq!((stored.version, stored.doc.as_str()), (2, "{\"v\":2}"));
        assert_eq!(store.instances(None).await.unwrap().len(), 2);
        assert_eq!(store.instances(Some("prod")).await.unwrap().len(), 1);
        assert!(store.delete_cluster("prod").await.unwrap());
        assert!(store.instance("prod", "i1").await.unwrap().is_none());
        assert_eq!(store.instances(None).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn documents_are_compared_and_swapped_by_kind_and_key() {
    use crate::storage::metadata::DocumentStore;
    for (_dir, store) in stores().await {
        assert!(store.insert_document("tg", "a", "1").await.unwrap());
        assert!(!store.insert_document("tg", "a", "9").await.unwrap());
        assert!(store.insert_document("lb", "a", "x").await.unwrap());
        assert!(store.save_document("tg", "a", 1, "2").await.unwrap());
        // A writer that read version 1 lost the race, for saves and deletes.
        assert!(!store.save_document("tg", "a", 1, "3").await.unwrap());
        assert!(!store.delete_document("tg", "a", 1).await.unwrap());
        let stored = store.document("tg", "a").await.unwrap().unwrap();
        assert_eq!((stored.version, stored.doc.as_str()), (2, "2"));
        assert!(store.insert_document("tg", "0", "0").await.unwrap());
        let keys: Vec<String> = store
            .documents("tg")
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.key)
            .collect();
        assert_eq!(keys, ["0", "a"]);
        assert!(store.delete_document("tg", "a", 2).await.unwrap());
        assert!(store.document("tg", "a").await.unwrap().is_none());
        assert_eq!(store.documents("lb").await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn the_audit_log_pages_newest_first_and_filters_by_action_and_repository() {
    use crate::storage::metadata::{AuditEntry, AuditQuery, AuditStore};
    for (_dir, store) in stores().await {
        let entry = |at_ms: i64, action: &str, repository: &str| AuditEntry {
            at_ms,
            actor: "alice".into(),
            action: action.into(),
            repository: repository.into(),
            target: "v1".into(),
            detail: String::new(),
        };
        for (at, action, repo) in [
            (1, "push", "app"),
            (2, "gc.run", ""),
            (3, "gc_run", ""),
            (4, "delete", "app"),
            (5, "push", "web"),
        ] {
            store.record_audit(&entry(at, action, repo)).await.unwrap();
        }
        let all = |q: AuditQuery| {
            let store = &store;
            async move {
                let page = store.audit_entries(&q).await.unwrap();
                page.iter().map(|r| r.entry.at_ms).collect::<Vec<_>>()
            }
        };
        let limit = 10;
        assert_eq!(
            all(AuditQuery {
                limit,
                ..Default::default()
            })
            .await,
            [5, 4, 3, 2, 1]
        );
        // `_` in the prefix is not a wildcard.
        let gc = AuditQuery {
            action: Some("gc.".into()),
            limit,
            ..Default::default()
        };
        assert_eq!(all(gc).await, [2]);
        let app = AuditQuery {
            repository: Some("app".into()),
            limit,
            ..Default::default()
        };
        assert_eq!(all(app).await, [4, 1]);
        let first = store
            .audit_entries(&AuditQuery {
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        let next = AuditQuery {
            before: Some(first[1].id),
            limit: 2,
            ..Default::default()
        };
        assert_eq!(all(next).await, [3, 2]);
        assert_eq!(store.prune_audit(3).await.unwrap(), 2);
        assert_eq!(
            all(AuditQuery {
                limit,
                ..Default::default()
            })
            .await,
            [5, 4, 3]
        );
    }
}
