#!/usr/bin/env python3
"""Writes an OCI image layout holding a two-platform index (linux/amd64 and
linux/arm64, one small layer each) and prints the index digest."""

import hashlib
import io
import json
import os
import sys
import tarfile


def main(root, tag):
    blobs = os.path.join(root, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def put(data):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + digest, "size": len(data)}

    manifests = []
    for arch in ("amd64", "arm64"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            content = f"built for {arch}\n".encode()
            info = tarfile.TarInfo("etc/platform")
            info.size, info.mtime = len(content), 0
            tar.addfile(info, io.BytesIO(content))
        layer = put(buf.getvalue())
        diff_id = layer["digest"]
        config = put(json.dumps({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "config": {"Cmd": ["/bin/sh"]},
        }).encode())
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
        }).encode()
        desc = put(manifest)
        manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", **desc,
                          "platform": {"architecture": arch, "os": "linux"}})
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }).encode()
    index_desc = put(index)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", **index_desc,
            "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)
    print(index_desc["digest"])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
