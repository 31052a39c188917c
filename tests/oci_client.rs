//! A third-party OCI client library (the `oci-client` crate) pushes and pulls
//! through a real Wharf, chunked and monolithic.

mod common;

use common::TestServer;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

fn client(monolithic: bool) -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        use_monolithic_push: monolithic,
        ..Default::default()
    })
}

#[tokio::test]
async fn push_then_pull_with_oci_client() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    for (monolithic, repo) in [(true, "oci/mono"), (false, "oci/chunked")] {
        let reference: Reference = format!("{}/{repo}:v1", s.addr).parse().unwrap();
        let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        let layers = vec![
            ImageLayer::oci_v1(b"small layer".to_vec(), None),
            ImageLayer::oci_v1(big.clone(), None),
        ];
        let config = Config::oci_v1(br#"{"architecture":"amd64","os":"linux"}"#.to_vec(), None);
        let c = client(monolithic);
        c.push(&reference, &layers, config, &RegistryAuth::Anonymous, None)
            .await
            .expect("push");

        let image = client(true)
            .pull(
                &reference,
                &RegistryAuth::Anonymous,
                vec![oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE],
            )
            .await
            .expect("pull");
        // oci-client fetches layers concurrently and may return them in any order.
        let mut got: Vec<String> = image
            .layers
            .iter()
            .map(|l| common::sha256(&l.data))
            .collect();
        let mut want = vec![common::sha256(b"small layer"), common::sha256(&big)];
        got.sort();
        want.sort();
        assert_eq!(got, want, "pulled layers differ from the pushed ones");
        let tags = c
            .list_tags(&reference, &RegistryAuth::Anonymous, None, None)
            .await
            .expect("tags");
        assert_eq!(tags.tags, vec!["v1".to_string()]);
    }
}
