#!/usr/bin/env python3
"""Wharf's OCI distribution-spec conformance runner, written from spec.md (v1.1).

Point it at any registry with the environment variables of the official suite:
  OCI_ROOT_URL              registry root, e.g. http://127.0.0.1:5000
  OCI_NAMESPACE             repository to test in, e.g. conformance/test
  OCI_CROSSMOUNT_NAMESPACE  second repository for cross-mount checks
  OCI_USERNAME/OCI_PASSWORD credentials (HTTP Basic, or the Bearer token dance)
  OCI_TEST_PULL, OCI_TEST_PUSH, OCI_TEST_CONTENT_DISCOVERY,
  OCI_TEST_CONTENT_MANAGEMENT   set to 1/true to run a category (none set: all)
  OCI_DEBUG                 set to print every request

Each check is named; a failing check says what it saw. The run ends with
"N passed, M failed" and exits non-zero when anything failed. Standard library only.
"""

import base64
import hashlib
import json
import os
import random
import re
import sys
import traceback
import urllib.error
import urllib.parse
import urllib.request

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
EMPTY_JSON = "application/vnd.oci.empty.v1+json"
SPEC_CODES = {
    "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID",
    "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS",
}


class CheckFailed(Exception):
    pass


def expect(cond, message):
    if not cond:
        raise CheckFailed(message)


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512(data):
    return "sha512:" + hashlib.sha512(data).hexdigest()


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body)

    def error_codes(self):
        try:
            return [e.get("code") for e in self.json().get("errors", [])]
        except (ValueError, AttributeError):
            return []

    def __repr__(self):
        return f"HTTP {self.status} {self.body[:200]!r}"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Client:
    """A tiny registry client: relative Location handling and the token dance."""

    def __init__(self, root, username, password):
        self.root = root.rstrip("/")
        self.username = username
        self.password = password
        self.token = None
        self.basic = False
        self.debug = bool(os.environ.get("OCI_DEBUG"))
        self.opener = urllib.request.build_opener(NoRedirect)

    def url(self, path):
        return path if path.startswith("http") else self.root + path

    def request(self, method, path, body=None, headers=None, query=None, _retry=True):
        url = self.url(path)
        if query:
            sep = "&" if "?" in url else "?"
            url += sep + urllib.parse.urlencode(query, doseq=True)
        hdrs = dict(headers or {})
        # Like real clients: no credentials until challenged, then a Bearer
        # token from the realm (or HTTP Basic when that is the challenge).
        if self.token:
            hdrs["Authorization"] = "Bearer " + self.token
        elif self.basic and self.username:
            creds = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            hdrs["Authorization"] = "Basic " + creds
        if body is not None and "Content-Length" not in hdrs:
            hdrs["Content-Length"] = str(len(body))
        req = urllib.request.Request(url, data=body, method=method, headers=hdrs)
        try:
            with self.opener.open(req, timeout=60) as r:
                resp = Response(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
        except urllib.error.HTTPError as e:
            resp = Response(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())
        if self.debug:
            print(f"  {method} {url} -> {resp.status}", file=sys.stderr)
        challenge = resp.header("WWW-Authenticate") or ""
        if resp.status == 401 and _retry:
            if challenge.lower().startswith("bearer") and self.fetch_token(challenge):
                return self.request(method, path, body, headers, query, _retry=False)
            if challenge.lower().startswith("basic") and self.username and not self.basic:
                self.basic = True
                return self.request(method, path, body, headers, query, _retry=False)
        return resp

    def fetch_token(self, challenge):
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", None)
        if not realm:
            return False
        hdrs = {}
        if self.username:
            creds = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            hdrs["Authorization"] = "Basic " + creds
        url = realm + "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=hdrs), timeout=30) as r:
                data = json.loads(r.read())
        except urllib.error.HTTPError:
            return False
        self.token = data.get("token") or data.get("access_token")
        return bool(self.token)


class Runner:
    def __init__(self):
        self.root = os.environ.get("OCI_ROOT_URL", "http://127.0.0.1:5000")
        suffix = "%06x" % random.randrange(16**6)
        self.ns = os.environ.get("OCI_NAMESPACE", f"conformance/{suffix}")
        self.cross = os.environ.get("OCI_CROSSMOUNT_NAMESPACE", f"conformance/cross-{suffix}")
        self.client = Client(self.root, os.environ.get("OCI_USERNAME"), os.environ.get("OCI_PASSWORD"))
        self.passed = 0
        self.failed = []
        flags = {
            "pull": "OCI_TEST_PULL",
            "push": "OCI_TEST_PUSH",
            "discovery": "OCI_TEST_CONTENT_DISCOVERY",
            "management": "OCI_TEST_CONTENT_MANAGEMENT",
        }
        chosen = {k for k, v in flags.items() if os.environ.get(v, "").lower() in ("1", "true", "yes")}
        self.categories = chosen or set(flags)

    # -- helpers -------------------------------------------------------------

    def req(self, method, path, **kw):
        return self.client.request(method, path.replace("<name>", self.ns), **kw)

    def check(self, name, fn):
        try:
            fn()
        except CheckFailed as e:
            self.failed.append(name)
            print(f"FAIL {name}: {e}")
        except Exception as e:  # a crash in a check is a failure, not the end of the run
            self.failed.append(name)
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            if self.client.debug:
                traceback.print_exc()
        else:
            self.passed += 1
            print(f"ok   {name}")

    def push_blob(self, data, repo=None):
        repo = repo or self.ns
        r = self.client.request("POST", f"/v2/{repo}/blobs/uploads/")
        expect(r.status == 202, f"POST upload: {r}")
        r = self.client.request("PUT", r.header("Location"), body=data,
                                headers={"Content-Type": "application/octet-stream"},
                                query={"digest": sha256(data)})
        expect(r.status == 201, f"PUT upload: {r}")
        return sha256(data)

    def image(self, seed, extra=None):
        """A config and a layer (pushed), and the manifest bytes naming them."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
        layer = os.urandom(1024)
        self.push_blob(config)
        self.push_blob(layer)
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}],
        }
        doc.update(extra or {})
        return json.dumps(doc).encode(), config, layer

    def put_manifest(self, ref, body, media_type=OCI_MANIFEST, query=None):
        return self.req("PUT", f"/v2/<name>/manifests/{ref}", body=body,
                        headers={"Content-Type": media_type}, query=query)

    def expect_error(self, r, status, code):
        expect(r.status == status, f"expected {status} {code}, got {r}")
        expect(code in r.error_codes(), f"expected error code {code}, got {r.error_codes()}")

    # -- categories ------------------------------------------------------------

    def run(self):
        print(f"# registry {self.root}, namespace {self.ns}, categories {sorted(self.categories)}")
        self.check("base: GET /v2/ answers 200", self.base)
        for name, category in (("pull", self.pull), ("push", self.push),
                               ("discovery", self.discovery), ("management", self.management)):
            if name not in self.categories:
                continue
            try:
                category()
            except Exception as e:  # a failed setup fails the category, and the run goes on
                self.failed.append(f"{name}: setup")
                print(f"FAIL {name}: setup: {type(e).__name__}: {e}")
        print(f"{self.passed} passed, {len(self.failed)} failed")
        return 1 if self.failed else 0

    def base(self):
        r = self.client.request("GET", "/v2/")
        expect(r.status == 200, f"{r}")

    def pull(self):
        manifest, config, layer = self.image("pull")
        digest = sha256(manifest)
        r = self.put_manifest("pulltag", manifest)
        expect(r.status == 201, f"setup: manifest PUT: {r}")
        dummy = sha256(b"never pushed " + os.urandom(8))

        def head_blob():
            r = self.req("HEAD", f"/v2/<name>/blobs/{sha256(config)}")
            expect(r.status == 200, f"{r}")
            expect(r.header("Docker-Content-Digest") == sha256(config), "Docker-Content-Digest")
            expect(r.header("Content-Length") == str(len(config)), f"Content-Length {r.header('Content-Length')}")

        def get_blob():
            r = self.req("GET", f"/v2/<name>/blobs/{sha256(layer)}")
            expect(r.status == 200 and r.body == layer, f"{r}")

        def range_blob():
            r = self.req("GET", f"/v2/<name>/blobs/{sha256(layer)}", headers={"Range": "bytes=10-19"})
            expect(r.status == 206, f"{r}")
            expect(r.body == layer[10:20], "range body")
            expect(r.header("Content-Range") == f"bytes 10-19/{len(layer)}", f"Content-Range {r.header('Content-Range')}")

        def unknown_blob():
            expect(self.req("HEAD", f"/v2/<name>/blobs/{dummy}").status == 404, "HEAD")
            self.expect_error(self.req("GET", f"/v2/<name>/blobs/{dummy}"), 404, "BLOB_UNKNOWN")

        def manifest_by(ref):
            def check():
                for method in ("HEAD", "GET"):
                    r = self.req(method, f"/v2/<name>/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
                    expect(r.status == 200, f"{method}: {r}")
                    expect(r.header("Docker-Content-Digest") == digest, f"{method}: digest header")
                    expect(r.header("Content-Type") == OCI_MANIFEST, f"{method}: Content-Type")
                    if method == "GET":
                        expect(r.body == manifest, "body differs from what was pushed")
            return check

        def unknown_manifest():
            for ref in ("nosuchtag", dummy):
                expect(self.req("HEAD", f"/v2/<name>/manifests/{ref}").status == 404, f"HEAD {ref}")
                self.expect_error(self.req("GET", f"/v2/<name>/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")

        def invalid_reference():
            # The official suites ask for `.INVALID_MANIFEST_NAME`: a reference
            # that cannot be a tag names no manifest (404), while a push to it
            # is a client error (400).
            ref = ".INVALID_MANIFEST_NAME"
            expect(self.req("HEAD", f"/v2/<name>/manifests/{ref}").status == 404, "HEAD")
            self.expect_error(self.req("GET", f"/v2/<name>/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")
            r = self.put_manifest(ref, manifest)
            expect(r.status == 400, f"PUT: {r}")

        def bad_digest():
            r = self.req("GET", "/v2/<name>/manifests/sha256:totallywrong")
            expect(r.status in (400, 404), f"{r}")
            if r.status == 400:
                expect(set(r.error_codes()) & SPEC_CODES, f"codes {r.error_codes()}")

        def bad_name():
            r = self.client.request("GET", "/v2/Bad..Name/manifests/latest")
            self.expect_error(r, 400, "NAME_INVALID")

        self.check("pull: HEAD blob gives 200, digest and length", head_blob)
        self.check("pull: GET blob returns its bytes", get_blob)
        self.check("pull: GET blob with Range gives 206", range_blob)
        self.check("pull: unknown blob gives 404 BLOB_UNKNOWN", unknown_blob)
        self.check("pull: manifest by tag", manifest_by("pulltag"))
        self.check("pull: manifest by digest", manifest_by(digest))
        self.check("pull: unknown manifest gives 404 MANIFEST_UNKNOWN", unknown_manifest)
        self.check("pull: an invalid tag gives 404 MANIFEST_UNKNOWN", invalid_reference)
        self.check("pull: malformed digest gives an OCI error", bad_digest)
        self.check("pull: invalid repository name gives 400 NAME_INVALID", bad_name)

    def push(self):
        state = {}

        def monolithic_post():
            data = os.urandom(2048)
            r = self.req("POST", "/v2/<name>/blobs/uploads/", body=data, query={"digest": sha256(data)},
                         headers={"Content-Type": "application/octet-stream"})
            expect(r.status in (201, 202), f"{r}")
            expect(r.header("Location"), "Location")
            want = 200 if r.status == 201 else 404
            expect(self.req("GET", f"/v2/<name>/blobs/{sha256(data)}").status == want, "GET afterwards")

        def post_put():
            data = os.urandom(3000)
            r = self.req("POST", "/v2/<name>/blobs/uploads/")
            expect(r.status == 202 and r.header("Location"), f"POST: {r}")
            r = self.client.request("PUT", r.header("Location"), body=data, query={"digest": sha256(data)})
            expect(r.status == 201, f"PUT: {r}")
            expect(r.header("Docker-Content-Digest") == sha256(data), "Docker-Content-Digest")
            r = self.client.request("GET", r.header("Location"))
            expect(r.status == 200 and r.body == data, f"GET Location: {r}")

        def streamed():
            data = os.urandom(5000)
            r = self.req("POST", "/v2/<name>/blobs/uploads/")
            r = self.client.request("PATCH", r.header("Location"), body=data,
                                    headers={"Content-Type": "application/octet-stream"})
            expect(r.status == 202, f"PATCH: {r}")
            expect(r.header("Range") == f"0-{len(data) - 1}", f"Range {r.header('Range')}")
            r = self.client.request("PUT", r.header("Location"), query={"digest": sha256(data)})
            expect(r.status == 201, f"PUT: {r}")
            state["streamed"] = sha256(data)

        def chunked():
            data = os.urandom(10000)
            a, b = data[:6000], data[6000:]
            r = self.req("POST", "/v2/<name>/blobs/uploads/", headers={"Content-Length": "0"})
            expect(r.status == 202, f"POST: {r}")
            first = r.header("Location")
            r = self.client.request("PATCH", first, body=b, headers={"Content-Range": "6000-9999"})
            expect(r.status == 416, f"out-of-order chunk: {r}")
            r = self.client.request("PATCH", first, body=a, headers={"Content-Range": "0-5999"})
            expect(r.status == 202, f"first chunk: {r}")
            expect(r.header("Range") == "0-5999", f"Range after first chunk: {r.header('Range')}")
            r = self.client.request("PATCH", first, body=a, headers={"Content-Range": "0-5999"})
            expect(r.status == 416, f"retried first chunk: {r}")
            r = self.client.request("GET", first)
            expect(r.status == 204, f"status: {r}")
            expect(r.header("Range") == "0-5999" and r.header("Location"), "status headers")
            r = self.client.request("PATCH", r.header("Location"), body=b, headers={"Content-Range": "6000-9999"})
            expect(r.status == 202, f"second chunk: {r}")
            r = self.client.request("PUT", r.header("Location"), query={"digest": sha256(data)})
            expect(r.status == 201, f"PUT: {r}")
            expect(self.req("GET", f"/v2/<name>/blobs/{sha256(data)}").body == data, "content")

        def final_chunk_in_put():
            data = os.urandom(4000)
            r = self.req("POST", "/v2/<name>/blobs/uploads/")
            r = self.client.request("PATCH", r.header("Location"), body=data[:1000],
                                    headers={"Content-Range": "0-999"})
            expect(r.status == 202, f"PATCH: {r}")
            r = self.client.request("PUT", r.header("Location"), body=data[1000:], query={"digest": sha256(data)})
            expect(r.status == 201, f"PUT with last chunk: {r}")

        def final_chunk_out_of_range():
            # The official suites: a final PUT whose Content-Range does not
            # start at the session's offset is 416 with the current Range, and
            # the session is left as it was.
            data = os.urandom(4000)
            r = self.req("POST", "/v2/<name>/blobs/uploads/")
            r = self.client.request("PATCH", r.header("Location"), body=data[:1000],
                                    headers={"Content-Range": "0-999"})
            expect(r.status == 202, f"PATCH: {r}")
            location = r.header("Location")
            r = self.client.request("PUT", location, body=data[1500:], query={"digest": sha256(data)},
                                    headers={"Content-Range": f"1500-{len(data) - 1}"})
            expect(r.status == 416, f"PUT with a gap: {r}")
            expect(r.header("Range") == "0-999", f"Range after 416: {r.header('Range')}")
            r = self.client.request("GET", location)
            expect(r.status == 204 and r.header("Range") == "0-999", f"session after 416: {r} {r.header('Range')}")
            r = self.client.request("PUT", location, body=data[1000:], query={"digest": sha256(data)},
                                    headers={"Content-Range": f"1000-{len(data) - 1}"})
            expect(r.status == 201, f"PUT with the right range: {r}")
            r = self.req("GET", f"/v2/<name>/blobs/{sha256(data)}")
            expect(r.status == 200 and r.body == data, f"GET: {r}")

        def digest_mismatch():
            data = os.urandom(100)
            wrong = sha256(b"something else")
            r = self.req("POST", "/v2/<name>/blobs/uploads/")
            r = self.client.request("PUT", r.header("Location"), body=data, query={"digest": wrong})
            self.expect_error(r, 400, "DIGEST_INVALID")
            expect(self.req("HEAD", f"/v2/<name>/blobs/{wrong}").status == 404, "blob visible after mismatch")
            expect(self.req("HEAD", f"/v2/<name>/blobs/{sha256(data)}").status == 404, "content visible")

        def cancel():
            r = self.req("POST", "/v2/<name>/blobs/uploads/")
            location = r.header("Location")
            self.client.request("PATCH", location, body=b"abc")
            r = self.client.request("DELETE", location)
            expect(r.status in (202, 204), f"DELETE session: {r}")
            self.expect_error(self.client.request("GET", location), 404, "BLOB_UPLOAD_UNKNOWN")

        def unknown_session():
            r = self.req("PATCH", "/v2/<name>/blobs/uploads/00000000-0000-4000-8000-000000000000", body=b"x")
            self.expect_error(r, 404, "BLOB_UPLOAD_UNKNOWN")

        def mount():
            digest = state.get("streamed") or self.push_blob(os.urandom(500))
            r = self.client.request("POST", f"/v2/{self.cross}/blobs/uploads/",
                                    query={"mount": digest, "from": self.ns})
            expect(r.status in (201, 202), f"{r}")
            if r.status == 201:
                expect(r.header("Location") == f"/v2/{self.cross}/blobs/{digest}" or
                       r.header("Location").endswith(f"/v2/{self.cross}/blobs/{digest}"), "Location")
                expect(self.client.request("GET", f"/v2/{self.cross}/blobs/{digest}").status == 200, "GET")

        def mount_fallbacks():
            dummy = sha256(os.urandom(16))
            for query in ({"mount": dummy, "from": self.ns}, {"mount": dummy}):
                r = self.client.request("POST", f"/v2/{self.cross}/blobs/uploads/", query=query)
                expect(r.status == 202 and r.header("Location"), f"{query}: {r}")

        def sha512_blob():
            data = os.urandom(777)
            d = sha512(data)
            r = self.req("POST", "/v2/<name>/blobs/uploads/")
            r = self.client.request("PUT", r.header("Location"), body=data, query={"digest": d})
            expect(r.status == 201, f"{r}")
            r = self.req("GET", f"/v2/<name>/blobs/{d}")
            expect(r.status == 200 and r.body == data, f"GET by sha512: {r}")

        manifest, config, layer = self.image("push")

        def manifest_put():
            for tag in ("push1", "push2"):
                r = self.put_manifest(tag, manifest)
                expect(r.status == 201, f"{tag}: {r}")
                expect(r.header("Location"), "Location")
                expect(r.header("Docker-Content-Digest") == sha256(manifest), "Docker-Content-Digest")

        def manifest_put_digest():
            r = self.put_manifest(sha256(manifest), manifest)
            expect(r.status == 201, f"{r}")

        def manifest_digest_mismatch():
            r = self.put_manifest(sha256(b"other"), manifest)
            self.expect_error(r, 400, "DIGEST_INVALID")

        def manifest_missing_blob():
            doc = json.loads(manifest)
            doc["layers"][0]["digest"] = sha256(os.urandom(8))
            r = self.put_manifest("broken", json.dumps(doc).encode())
            self.expect_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
            expect(self.req("GET", "/v2/<name>/manifests/broken").status == 404, "tag created anyway")

        def manifest_invalid():
            r = self.put_manifest("invalid", b"{not json")
            self.expect_error(r, 400, "MANIFEST_INVALID")

        def empty_layers():
            doc = json.loads(manifest)
            doc["layers"] = []
            r = self.put_manifest("nolayers", json.dumps(doc).encode())
            expect(r.status == 201, f"{r}")

        def with_subject():
            empty = b"{}"
            self.push_blob(empty)
            doc = {
                "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x-test",
                "config": {"mediaType": EMPTY_JSON, "digest": sha256(empty), "size": 2},
                "layers": [{"mediaType": EMPTY_JSON, "digest": sha256(empty), "size": 2}],
                "subject": {"mediaType": OCI_MANIFEST, "digest": sha256(manifest), "size": len(manifest)},
            }
            body = json.dumps(doc).encode()
            r = self.put_manifest(sha256(body), body)
            expect(r.status == 201, f"{r}")
            expect(r.header("OCI-Subject") == sha256(manifest), f"OCI-Subject {r.header('OCI-Subject')}")

        def multi_tag():
            r = self.put_manifest(sha256(manifest), manifest, query=[("tag", "multi-a"), ("tag", "multi-b")])
            expect(r.status == 201, f"{r}")
            for tag in ("multi-a", "multi-b"):
                r = self.req("HEAD", f"/v2/<name>/manifests/{tag}")
                expect(r.status == 200 and r.header("Docker-Content-Digest") == sha256(manifest), f"{tag}: {r}")

        def index_push():
            index = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_INDEX,
                "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(manifest), "size": len(manifest),
                               "platform": {"architecture": "amd64", "os": "linux"}}],
            }).encode()
            r = self.put_manifest("index", index, media_type=OCI_INDEX)
            expect(r.status == 201, f"{r}")
            r = self.req("GET", "/v2/<name>/manifests/index", headers={"Accept": OCI_INDEX})
            expect(r.status == 200 and r.header("Content-Type") == OCI_INDEX, f"{r}")
            missing = json.loads(index)
            missing["manifests"][0]["digest"] = sha256(b"absent")
            r = self.put_manifest("index-missing", json.dumps(missing).encode(), media_type=OCI_INDEX)
            expect(r.status == 400, f"index with a missing child: {r}")

        self.check("push: monolithic POST ?digest=", monolithic_post)
        self.check("push: POST then PUT with body", post_put)
        self.check("push: streamed PATCH then PUT", streamed)
        self.check("push: chunked upload, 416 for out-of-order and retried chunks, status", chunked)
        self.check("push: PUT may carry the final chunk", final_chunk_in_put)
        self.check("push: final PUT with a Content-Range off the offset gives 416", final_chunk_out_of_range)
        self.check("push: digest mismatch gives 400 DIGEST_INVALID and nothing visible", digest_mismatch)
        self.check("push: cancelled session is gone", cancel)
        self.check("push: unknown session gives 404 BLOB_UPLOAD_UNKNOWN", unknown_session)
        self.check("push: cross-repository mount", mount)
        self.check("push: mount of unknown blob or without from opens a session", mount_fallbacks)
        self.check("push: sha512 blob", sha512_blob)
        self.check("push: manifest PUT by tag", manifest_put)
        self.check("push: manifest PUT by digest", manifest_put_digest)
        self.check("push: manifest PUT with wrong digest gives 400 DIGEST_INVALID", manifest_digest_mismatch)
        self.check("push: manifest naming a missing blob gives 400 MANIFEST_BLOB_UNKNOWN", manifest_missing_blob)
        self.check("push: malformed manifest gives 400 MANIFEST_INVALID", manifest_invalid)
        self.check("push: manifest with no layers", empty_layers)
        self.check("push: manifest with subject answers OCI-Subject", with_subject)
        self.check("push: multi-tag manifest push (?tag=)", multi_tag)
        self.check("push: image index push and child check", index_push)

    def discovery(self):
        manifest, _, _ = self.image("discovery")
        digest = sha256(manifest)
        tags = sorted(["d-a", "d-b", "d-c", "d-d", "d-e", "D-upper", "d_1"])
        for t in tags:
            self.put_manifest(t, manifest)
        empty = b"{}"
        self.push_blob(empty)
        referrers = {}
        for kind in ("application/x-sig", "application/x-sbom", "application/x-sig"):
            doc = {
                "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": kind,
                "config": {"mediaType": EMPTY_JSON, "digest": sha256(empty), "size": 2},
                "layers": [{"mediaType": EMPTY_JSON, "digest": sha256(empty), "size": 2}],
                "subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest)},
                "annotations": {"org.example.n": str(len(referrers))},
            }
            body = json.dumps(doc).encode()
            referrers[sha256(body)] = (kind, doc["annotations"])
            self.put_manifest(sha256(body), body)

        def list_all():
            r = self.req("GET", "/v2/<name>/tags/list")
            expect(r.status == 200, f"{r}")
            body = r.json()
            expect(body.get("name") == self.ns, f"name {body.get('name')}")
            got = [t for t in body["tags"] if t in tags]
            expect(got == tags, f"tags {body['tags']} not in lexical order or incomplete")

        def paginate():
            r = self.req("GET", "/v2/<name>/tags/list", query={"n": 2})
            expect(r.status == 200 and len(r.json()["tags"]) == 2, f"n=2: {r}")
            link = r.header("Link")
            expect(link and 'rel="next"' in link, f"Link {link}")
            seen = list(r.json()["tags"])
            while link:
                target = re.match(r"<([^>]+)>", link).group(1)
                r = self.client.request("GET", target)
                expect(r.status == 200, f"next page: {r}")
                seen += r.json()["tags"]
                link = r.header("Link")
            full = self.req("GET", "/v2/<name>/tags/list").json()["tags"]
            expect(seen == full, f"paged {seen} != full {full}")

        def last_param():
            r = self.req("GET", "/v2/<name>/tags/list", query={"n": 3, "last": "d-b"})
            got = r.json()["tags"]
            expect(r.status == 200 and all(t > "d-b" for t in got) and len(got) <= 3, f"{got}")
            expect(got[0] == "d-c", f"first after d-b is {got[0]}")

        def unknown_repo():
            r = self.client.request("GET", "/v2/conformance/never-pushed-xyz/tags/list")
            self.expect_error(r, 404, "NAME_UNKNOWN")

        def catalog():
            r = self.client.request("GET", "/v2/_catalog")
            if r.status in (401, 403, 404):
                return  # optional extension; may be restricted
            expect(r.status == 200 and self.ns in r.json().get("repositories", []), f"{r}")
            r = self.client.request("GET", "/v2/_catalog", query={"n": 1})
            expect(len(r.json()["repositories"]) == 1, "n=1")

        def referrers_all():
            r = self.req("GET", f"/v2/<name>/referrers/{digest}")
            expect(r.status == 200, f"{r}")
            expect(r.header("Content-Type") == OCI_INDEX, f"Content-Type {r.header('Content-Type')}")
            got = {m["digest"]: m for m in r.json()["manifests"]}
            expect(set(got) == set(referrers), f"referrers {sorted(got)}")
            for d, (kind, annotations) in referrers.items():
                expect(got[d]["artifactType"] == kind, "artifactType")
                expect(got[d].get("annotations") == annotations, "annotations")
                expect(got[d]["mediaType"] == OCI_MANIFEST, "mediaType")

        def referrers_filtered():
            r = self.req("GET", f"/v2/<name>/referrers/{digest}", query={"artifactType": "application/x-sig"})
            expect(r.status == 200, f"{r}")
            got = r.json()["manifests"]
            if r.header("OCI-Filters-Applied"):
                expect(r.header("OCI-Filters-Applied") == "artifactType", "OCI-Filters-Applied")
                expect(len(got) == 2 and all(m["artifactType"] == "application/x-sig" for m in got), f"{got}")
            else:
                expect(len(got) == 3, "unfiltered answer must list all")

        def referrers_unknown():
            r = self.req("GET", f"/v2/<name>/referrers/{sha256(os.urandom(4))}")
            expect(r.status == 200 and r.json()["manifests"] == [], f"{r}")
            expect(r.header("Content-Type") == OCI_INDEX, "Content-Type")

        self.check("discovery: tags list in lexical order", list_all)
        self.check("discovery: tags paginate with n and Link", paginate)
        self.check("discovery: tags list starts after last", last_param)
        self.check("discovery: tags of unknown repository give 404 NAME_UNKNOWN", unknown_repo)
        self.check("discovery: catalog lists the repository", catalog)
        self.check("discovery: referrers list every referrer", referrers_all)
        self.check("discovery: referrers filtered by artifactType", referrers_filtered)
        self.check("discovery: referrers of unknown subject is an empty index", referrers_unknown)

    def management(self):
        manifest, config, layer = self.image("management")
        digest = sha256(manifest)
        self.put_manifest("keep", manifest)
        self.put_manifest("drop", manifest)

        def delete_tag():
            r = self.req("DELETE", "/v2/<name>/manifests/drop")
            expect(r.status == 202, f"{r}")
            expect(self.req("GET", "/v2/<name>/manifests/drop").status == 404, "tag still resolves")
            expect(self.req("GET", f"/v2/<name>/manifests/{digest}").status == 200, "manifest went with the tag")
            expect("drop" not in self.req("GET", "/v2/<name>/tags/list").json()["tags"], "tag still listed")

        def delete_manifest():
            r = self.req("DELETE", f"/v2/<name>/manifests/{digest}")
            expect(r.status == 202, f"{r}")
            expect(self.req("GET", f"/v2/<name>/manifests/{digest}").status == 404, "still served by digest")
            expect(self.req("GET", "/v2/<name>/manifests/keep").status == 404, "tag outlived its manifest")
            expect("keep" not in self.req("GET", "/v2/<name>/tags/list").json()["tags"], "tag still listed")

        def delete_unknown_manifest():
            r = self.req("DELETE", f"/v2/<name>/manifests/{sha256(os.urandom(4))}")
            self.expect_error(r, 404, "MANIFEST_UNKNOWN")

        def delete_blob():
            r = self.req("DELETE", f"/v2/<name>/blobs/{sha256(config)}")
            expect(r.status == 202, f"{r}")
            expect(self.req("GET", f"/v2/<name>/blobs/{sha256(config)}").status == 404, "blob still served")

        def delete_unknown_blob():
            r = self.req("DELETE", f"/v2/<name>/blobs/{sha256(os.urandom(4))}")
            self.expect_error(r, 404, "BLOB_UNKNOWN")

        self.check("management: delete a tag keeps the manifest", delete_tag)
        self.check("management: delete a manifest by digest removes it and its tags", delete_manifest)
        self.check("management: delete unknown manifest gives 404 MANIFEST_UNKNOWN", delete_unknown_manifest)
        self.check("management: delete a blob", delete_blob)
        self.check("management: delete unknown blob gives 404 BLOB_UNKNOWN", delete_unknown_blob)


if __name__ == "__main__":
    sys.exit(Runner().run())
