"""The web console in a real browser: Debian's chromium, headless, driven by
Playwright for Python (the system browser: nothing is downloaded).

Seeds a running Wharf through its own /v2/ API (an image, a two-platform
index, a signature and an SBOM referrer, an untagged manifest, a repository
of 10,000 tags, a repository the pull-only user may not see; ui.sh adds a
running service),
then checks: sign-in, the displayed and the copied pull command equal the
expected ones, keyboard shortcuts and live filtering, the theme toggle, a
user without pull sees no trace of a repository, everything works with
JavaScript off (sign-in, pages, an untag through the confirmation form), and
no console or CSP error on any page; the runner pages down to a task whose
log follows new lines; a lifecycle policy saved in the console previews
exactly what the ECR API previews and expires it; the audit log, a token
shown once, the storage page. Screenshots of the main pages, light and
dark, go to the folder given by --out.

An accessibility scan (axe-core, from npm, given by --axe) of the main pages
in both color schemes must find no serious or critical violation.

Usage: ui.py --base http://127.0.0.1:PORT --out DIR --chromium PATH --axe axe.min.js
"""

import argparse
import base64
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request

from playwright.sync_api import sync_playwright

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ALICE = ("alice", "alice-password")
BOB = ("bob", "bob-password")


def fail(message):
    print(f"[ui.py] FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    """Just enough of a registry client to seed content, as alice."""

    def __init__(self, base, user):
        self.base = base
        token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
        self.auth = f"Basic {token}"

    def request(self, method, path, data=None, headers=None):
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", self.auth)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def blob(self, repo, data):
        digest = sha256(data)
        status, body = self.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data)
        check(status == 201, f"blob push to {repo}: {status} {body!r}")
        return digest

    def manifest(self, repo, reference, media_type, document):
        data = json.dumps(document).encode()
        status, body = self.request(
            "PUT", f"/v2/{repo}/manifests/{reference}", data, {"Content-Type": media_type}
        )
        check(status == 201, f"manifest push {repo}:{reference}: {status} {body!r}")
        return sha256(data), len(data)

    def image(self, repo, tag, arch):
        config = json.dumps({
            "architecture": arch, "os": "linux",
            "config": {"Env": [f"ARCH={arch}", "PATH=/usr/bin"], "Cmd": ["/bin/app", "--serve"],
                       "WorkingDir": "/srv", "User": "app", "ExposedPorts": {"8080/tcp": {}},
                       "Labels": {"org.opencontainers.image.source": "https://example.com/app"}},
        }).encode()
        layer = f"layer for {arch}".encode() * 1000
        return self.manifest(repo, tag, OCI_MANIFEST, {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": self.blob(repo, config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": self.blob(repo, layer), "size": len(layer)}],
        })

    def bulk_tags(self, repo, count, threads=4):
        """`count` tags, each naming a manifest of its own (one shared config
        and layer, a distinct annotation), pushed over kept-alive connections
        with one bearer token; returns the tags in push order."""
        import concurrent.futures
        import http.client
        import threading
        import urllib.parse

        config = self.blob(repo, b'{"architecture":"amd64","os":"linux"}')
        layer = self.blob(repo, b"bulk layer" * 100)
        status, body = self.request(
            "GET", f"/token?service=wharf&scope=repository:{repo}:pull,push")
        check(status == 200, f"token: {status} {body!r}")
        token = json.loads(body)["token"]
        url = urllib.parse.urlsplit(self.base)
        local = threading.local()
        tags = [f"build-{i:05d}" for i in range(count)]

        def put(i):
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(url.hostname, url.port)
            data = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": config, "size": 38},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": layer, "size": 1000}],
                "annotations": {"build": str(i)},
            }).encode()
            conn.request("PUT", f"/v2/{repo}/manifests/{tags[i]}", data,
                         {"Content-Type": OCI_MANIFEST, "Authorization": f"Bearer {token}"})
            r = conn.getresponse()
            r.read()
            check(r.status == 201, f"bulk push {tags[i]}: {r.status}")

        # In order per thread: push times rise with the tag number in each
        # quarter; the console's order is checked against its own timestamps.
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(put, range(count)))
        return tags

    def tags(self, repo):
        status, body = self.request("GET", f"/v2/{repo}/tags/list")
        check(status == 200, f"tags of {repo}: {status}")
        return sorted(json.loads(body).get("tags") or [])


def seed(registry):
    amd, amd_size = registry.image("team/app", "amd64", "amd64")
    arm, arm_size = registry.image("team/app", "arm64", "arm64")
    index, index_size = registry.manifest("team/app", "v1", OCI_INDEX, {
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd, "size": amd_size,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": arm, "size": arm_size,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ],
    })
    empty = registry.blob("team/app", b"{}")
    registry.manifest("team/app", "sha256-sig", OCI_MANIFEST, {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
        "subject": {"mediaType": OCI_INDEX, "digest": index, "size": index_size},
    })
    registry.manifest("team/app", "latest", OCI_MANIFEST, json.loads(
        registry.request("GET", "/v2/team/app/manifests/amd64", headers={"Accept": OCI_MANIFEST})[1]))
    # An SBOM referrer of the same index, and a manifest no tag names.
    sbom = registry.blob("team/app", b'{"spdxVersion":"SPDX-2.3"}')
    registry.manifest("team/app", "sha256-sbom", OCI_MANIFEST, {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": sbom, "size": 26}],
        "subject": {"mediaType": OCI_INDEX, "digest": index, "size": index_size},
    })
    untagged, _ = registry.image("team/app", "scratch", "riscv64")
    status, _ = registry.request("DELETE", "/v2/team/app/manifests/scratch")
    check(status == 202, f"untag scratch: {status}")
    registry.image("team/web", "stable", "amd64")
    registry.image("secret/db", "v1", "amd64")
    return index, amd, untagged


class Watch:
    """Console errors, page errors and CSP violations of every page."""

    def __init__(self):
        self.errors = []

    def attach(self, page):
        def console(m):
            # A page that is itself a 404 (a hidden repository) is reported as a
            # failed load of that page: expected, and checked by its status.
            own = m.text.startswith("Failed to load resource") and m.location.get("url") == page.url
            if m.type in ("error", "warning") and not own:
                self.errors.append(f"{page.url}: console {m.type}: {m.text} ({m.location.get('url')})")
        page.on("console", console)
        page.on("pageerror", lambda e: self.errors.append(f"{page.url}: page error: {e}"))


def sign_in(page, base, user):
    page.goto(base + "/ui/")
    check("/ui/login" in page.url, f"not sent to the sign-in form: {page.url}")
    page.fill("#username", user[0])
    page.fill("#password", user[1])
    page.click("button[type=submit]")
    page.wait_for_load_state()
    check(page.url == base + "/ui/", f"after sign-in at {page.url}")
    check(f"Signed in as {user[0]}" in page.inner_text("header"), "no signed-in name in the header")


def aws(cli, base, *args):
    """The AWS CLI against this registry (credentials in the environment), as JSON."""
    out = subprocess.run(shlex.split(cli) + list(args) + ["--endpoint-url", base, "--output", "json"],
                         capture_output=True, text=True, timeout=120)
    check(out.returncode == 0, f"aws {' '.join(args)}: {out.stderr}")
    return json.loads(out.stdout or "null")


def api_preview(cli, base, repo):
    """The digests GetLifecyclePolicyPreview names for `repo`'s stored policy."""
    aws(cli, base, "ecr", "start-lifecycle-policy-preview", "--repository-name", repo)
    for _ in range(100):
        got = aws(cli, base, "ecr", "get-lifecycle-policy-preview", "--repository-name", repo)
        if got["status"] == "COMPLETE":
            return sorted(r["imageDigest"] for r in got.get("previewResults", []))
        time.sleep(0.2)
    fail(f"the lifecycle preview of {repo} did not complete")


def runner_pages(page, base):
    """Clusters → the service → its running task, whose log follows new lines."""
    page.goto(base + "/ui/clusters")
    page.click("table#clusters a:has-text('default')")
    page.wait_for_load_state()
    page.click("table#services a:has-text('hello')")
    page.wait_for_load_state()
    check("Service hello" in page.inner_text("h1"), f"service page at {page.url}")
    check(page.locator("table#deployments tbody tr").count() >= 1, "no deployment listed")
    page.goto(base + "/ui/clusters/default/tasks?status=RUNNING")
    tasks = page.locator("table#tasks a.mono")
    check(tasks.count() == 1, f"one running task expected, {tasks.count()} listed")
    tasks.first.click()
    page.wait_for_load_state()
    log = page.locator("pre#log")
    check("hello from the console" in log.inner_text(), "the task's log is not shown")
    # The script follows the log: a tick newer than any shown arrives.
    shown = [int(n) for n in re.findall(r"tick (\d+)", log.inner_text())] or [0]
    newer = max(shown) + 2
    page.wait_for_function(
        "n => document.querySelector('pre#log').textContent.includes('tick ' + n)", arg=newer,
        timeout=15000)
    # The container's image digest leads back to the image page.
    page.click("a.digest")
    page.wait_for_load_state()
    check("/ui/r/apps/hello/-/image/sha256:" in page.url, f"image link went to {page.url}")
    return page.url


def lifecycle(page, base, cli):
    """A policy saved through the console's JSON form: its preview names
    exactly the images the ECR API's preview names, and applying it expires them."""
    path = "/ui/r/team/big/-/lifecycle"
    page.goto(base + path)
    policy = json.dumps({"rules": [{
        "rulePriority": 1, "description": "keep the newest 9,990",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 9990},
        "action": {"type": "expire"}}]})
    page.fill("textarea#policy", policy)
    page.click("form:has(textarea#policy) button[value=save]")
    page.wait_for_load_state()
    ours = sorted(page.locator("table#preview tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.digest)"))
    check(len(ours) == 10, f"the console's preview lists {len(ours)} images")
    theirs = api_preview(cli, base, "team/big")
    check(ours == theirs, f"console preview {ours} differs from the API's {theirs}")
    page.click("button:has-text('Apply now')")
    page.wait_for_load_state()
    page.click("button:has-text('Expire 10 image(s)')")
    page.wait_for_load_state()
    check("10 image(s) expired" in page.inner_text("main"), f"after apply at {page.url}")
    return ours


def admin_pages(page, base, registry):
    """The audit log shows the console's work; a token is shown once and works."""
    # Written in the background: the newest entries may take a moment.
    for action, actor in (("push", "alice"), ("login", "alice"), ("lifecycle.run", "alice")):
        for _ in range(50):
            page.goto(base + f"/ui/admin/audit?action={action}")
            rows = page.locator("table#audit tbody tr")
            if rows.count() and actor in rows.first.inner_text():
                break
            time.sleep(0.1)
        else:
            fail(f"the audit log has no {action} by {actor}")
    page.goto(base + "/ui/admin/tokens")
    page.fill("#name", "ci-reader")
    page.fill("#scopes", "repository:team/*:pull")
    page.click("button:has-text('Create token')")
    page.wait_for_load_state()
    secret = page.inner_text("#secret").strip()
    reader = Registry(base, ("ci-reader", secret))
    check(reader.request("GET", "/v2/team/app/tags/list")[0] == 200, "the new token cannot pull")
    check(reader.request("GET", "/v2/secret/db/tags/list")[0] in (401, 403, 404),
          "the new token reads beyond its scope")
    page.goto(base + "/ui/admin/tokens")
    check(secret not in page.content(), "the token's secret is shown again")
    page.goto(base + "/ui/admin/storage")
    check(page.locator("table#usage a:has-text('team/big')").count() == 1, "storage lists no team/big")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--chromium", required=True)
    parser.add_argument("--axe", required=True)
    parser.add_argument("--aws", required=True, help="the AWS CLI command (credentials in the environment)")
    args = parser.parse_args()
    base = args.base.rstrip("/")
    host = base.split("://", 1)[1]
    os.makedirs(args.out, exist_ok=True)

    registry = Registry(base, ALICE)
    index, amd, untagged = seed(registry)
    started = time.monotonic()
    big = registry.bulk_tags("team/big", 10_000)
    print(f"[ui.py] 10,000 tags pushed in {time.monotonic() - started:.1f} s", file=sys.stderr)
    watch = Watch()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])

        # --- With JavaScript: sign-in, shortcuts, copy, theme.
        context = browser.new_context(color_scheme="light", viewport={"width": 1280, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        page = context.new_page()
        watch.attach(page)
        sign_in(page, base, ALICE)
        check(page.locator("a[href='/ui/r/team/app']").count() == 1, "team/app is not listed")

        page.goto(base + "/ui/r/team/app")
        rows = page.locator("table#tags tbody tr")
        names = [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())]
        check(names[:1] == ["latest"], f"newest tag first: {names}")
        check("sha256-sig" not in names, f"a referrer's tag is listed as a tag: {names}")
        check(set(names) == {"latest", "v1", "arm64", "amd64"}, f"tags: {names}")
        # `/` focuses the search; typing filters the rows shown.
        page.keyboard.press("/")
        check(page.evaluate("document.activeElement.id") == "q", "/ does not focus the search")
        page.keyboard.type("arm")
        visible = [n for i, n in enumerate(names) if rows.nth(i).is_visible()]
        check(visible == ["arm64"], f"live filter shows {visible}")
        page.fill("#q", "")
        page.dispatch_event("#q", "input")
        page.keyboard.press("Escape")
        check(page.evaluate("document.activeElement.id") != "q", "Escape leaves the search")
        # j selects the first row; c copies its digest.
        page.keyboard.press("j")
        check("selected" in (rows.nth(0).get_attribute("class") or ""), "j selects no row")
        page.keyboard.press("c")
        page.wait_for_timeout(200)
        copied = page.evaluate("navigator.clipboard.readText()")
        check(copied == amd, f"c copied {copied!r}, expected the digest of latest {amd}")
        # ? opens the shortcuts help.
        page.keyboard.press("?")
        check(page.locator("dialog#help").is_visible(), "? shows no help")
        page.keyboard.press("Escape")

        # The image page: the displayed and the copied command are the expected ones.
        page.goto(base + "/ui/r/team/app/-/image/v1")
        expected = f"docker pull {host}/team/app@{index}"
        row = page.locator("#commands .cmdrow", has_text=expected)
        check(row.count() == 1, f"{expected!r} is not displayed")
        check(row.locator("code").inner_text() == expected, "displayed command differs")
        row.locator("button.copy").click()
        page.wait_for_timeout(200)
        copied = page.evaluate("navigator.clipboard.readText()")
        check(copied == expected, f"copied {copied!r}, expected {expected!r}")
        check(page.locator("#platforms tbody tr").count() == 2, "two platforms expected")
        check("linux/arm64/v8" in page.inner_text("#platforms"), "arm64 platform missing")
        check("application/vnd.dev.cosign.artifact.sig.v1+json" in page.content(), "referrer missing")
        # The theme toggle switches to dark and is remembered.
        page.click("#theme-toggle")
        check(page.evaluate("document.documentElement.dataset.theme") == "dark", "toggle did not go dark")
        page.reload()
        check(page.evaluate("document.documentElement.dataset.theme") == "dark", "theme not remembered")
        page.evaluate("localStorage.removeItem('wharf-theme')")

        # --- 10,000 tags: one page of rows, and paging stable in both orders.
        for sort in ("name", "pushed"):
            page.goto(base + f"/ui/r/team/big?sort={sort}")
            seen = []
            for _ in range(4):
                rows = page.locator("table#tags tbody tr")
                check(rows.count() == 50, f"{sort}: a page holds {rows.count()} rows")
                seen += [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())]
                page.click("a[rel=next]")
                page.wait_for_load_state()
            check(len(set(seen)) == len(seen), f"{sort}: a tag shown on two pages")
            check(set(seen) <= set(big), f"{sort}: unknown tags {set(seen) - set(big)}")
            if sort == "name":
                check(seen == sorted(big)[:200], f"name order: {seen[:3]}...")
        # Untagged manifests are behind a filter, not hidden.
        page.goto(base + "/ui/r/team/app?show=untagged")
        check(untagged[len("sha256:"):len("sha256:") + 12] in page.inner_text("main"),
              f"the untagged {untagged} is not listed")
        # Both referrers are shown under their subject, grouped by type.
        page.goto(base + "/ui/r/team/app/-/image/v1")
        check("application/spdx+json" in page.content(), "the SBOM referrer is missing")

        # --- The runner, lifecycle and operator pages.
        task_image = runner_pages(page, base)
        expired = lifecycle(page, base, args.aws)
        for digest in expired:
            check(registry.request("HEAD", f"/v2/team/big/manifests/{digest}",
                                   headers={"Accept": OCI_MANIFEST})[0] == 404, f"{digest} not expired")
        admin_pages(page, base, registry)
        task = base + "/ui/clusters/default/tasks?status=RUNNING"
        page.goto(task)
        task_page = page.locator("table#tasks a.mono").first.get_attribute("href")
        more_pages = [("clusters", "/ui/clusters"), ("cluster", "/ui/clusters/default"),
                      ("service", "/ui/clusters/default/services/hello"), ("task", task_page),
                      ("lifecycle", "/ui/r/team/big/-/lifecycle"), ("storage", "/ui/admin/storage"),
                      ("audit", "/ui/admin/audit"), ("gc", "/ui/admin/gc"),
                      ("tokens", "/ui/admin/tokens"), ("users", "/ui/admin/users")]
        check(task_image.startswith(base), f"image page {task_image}")

        # --- Screenshots of the main pages, light and dark.
        for scheme in ("light", "dark"):
            shots = browser.new_context(color_scheme=scheme, viewport={"width": 1280, "height": 900})
            shot = shots.new_page()
            watch.attach(shot)
            shot.goto(base + "/ui/login")
            shot.screenshot(path=os.path.join(args.out, f"sign-in-{scheme}.png"))
            sign_in(shot, base, ALICE)
            for name, path in [("repositories", "/ui/"), ("tags", "/ui/r/team/app"),
                               ("index", "/ui/r/team/app/-/image/v1"),
                               ("image", "/ui/r/team/app/-/image/amd64"),
                               ("delete", "/ui/r/team/app/-/delete/latest")] + more_pages:
                shot.goto(base + path)
                shot.screenshot(path=os.path.join(args.out, f"{name}-{scheme}.png"), full_page=True)
            shots.close()

        # --- Accessibility: axe-core on the main pages, light and dark. The
        # scan's script is injected, which the console's CSP rightly refuses:
        # this context alone bypasses it (the others check that nothing else is refused).
        problems = []
        scanned = {"pages": 0, "lesser": []}

        def scan(page, name, scheme):
            page.add_script_tag(path=args.axe)
            result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
            scanned["pages"] += 1
            for v in result["violations"]:
                if v["impact"] not in ("serious", "critical"):
                    scanned["lesser"].append(f"{name}: {v['id']} [{v['impact']}]")
                if v["impact"] in ("serious", "critical"):
                    targets = [n["target"] for n in v["nodes"][:3]]
                    problems.append(f"{name} ({scheme}): {v['id']} [{v['impact']}] {v['help']} at {targets}")

        for scheme in ("light", "dark"):
            context = browser.new_context(color_scheme=scheme, bypass_csp=True)
            page = context.new_page()
            page.goto(base + "/ui/login")
            scan(page, "sign-in", scheme)
            sign_in(page, base, ALICE)
            for name, path in [("repositories", "/ui/"), ("tags", "/ui/r/team/app"),
                               ("index", "/ui/r/team/app/-/image/v1"),
                               ("image", "/ui/r/team/app/-/image/amd64"),
                               ("untagged", "/ui/r/team/app?show=untagged"),
                               ("delete", "/ui/r/team/app/-/delete/latest")] + more_pages:
                page.goto(base + path)
                scan(page, name, scheme)
            context.close()
        check(not problems, "accessibility violations:\n" + "\n".join(problems))
        print(f"[ui.py] axe: {scanned['pages']} pages scanned, no serious or critical violation; "
              f"lesser: {sorted(set(scanned['lesser'])) or 'none'}", file=sys.stderr)

        # --- A pull-only user sees no trace of a repository outside his rules.
        bob_context = browser.new_context()
        bob = bob_context.new_page()
        watch.attach(bob)
        sign_in(bob, base, BOB)
        check("secret" not in bob.content(), "bob sees the secret repository listed")
        hidden = bob.goto(base + "/ui/r/secret/db")
        missing_body = None
        check(hidden.status == 404, f"hidden repository: {hidden.status}")
        hidden_body = bob.content()
        missing = bob.goto(base + "/ui/r/secret/nothing")
        missing_body = bob.content()
        check(missing.status == 404 and hidden_body == missing_body, "hidden and missing pages differ")
        bob.goto(base + "/ui/r/team/app/-/image/v1")
        check(bob.locator("a[href*='/-/delete/']").count() == 0, "bob is offered a delete")
        # Bob pulls team/* only: no runner, no admin, no lifecycle form.
        nav = bob.inner_text("header")
        check("Runner" not in nav and "Admin" not in nav, f"bob's navigation: {nav}")
        for path in ("/ui/clusters", "/ui/clusters/default/services/hello", "/ui/admin/audit"):
            check(bob.goto(base + path).status == 404, f"bob reaches {path}")
        bob.goto(base + "/ui/r/team/big/-/lifecycle")
        check(bob.locator("textarea#policy").count() == 0, "bob is offered the policy editor")
        bob_context.close()

        # --- JavaScript off: the same flows with plain forms and links.
        plain = browser.new_context(java_script_enabled=False)
        page = plain.new_page()
        watch.attach(page)
        sign_in(page, base, ALICE)
        page.goto(base + "/ui/r/team/app?q=arm&sort=name")
        rows = page.locator("table#tags tbody tr")
        check(rows.count() == 1 and "arm64" in rows.first.inner_text(), "server-side filter")
        check(page.locator("button.copy").first.is_hidden(), "copy buttons shown without JS")
        page.goto(base + "/ui/r/team/app/-/image/latest")
        check(f"docker pull {host}/team/app:latest" in page.inner_text("#commands"), "command without JS")
        page.click("a.button.danger")
        check("Untag latest" in page.content(), f"no untag form at {page.url}")
        page.click("button:has-text('Untag latest')")
        page.wait_for_load_state()
        check(page.url.endswith("/ui/r/team/app?done=untagged"), f"after untag at {page.url}")
        check(registry.tags("team/app") == ["amd64", "arm64", "sha256-sbom", "sha256-sig", "v1"],
              f"tags after untag: {registry.tags('team/app')}")
        # Sign out (a form, CSRF included) and back at the sign-in form.
        page.click("header button[type=submit]")
        page.wait_for_load_state()
        check("/ui/login" in page.url, f"after sign-out at {page.url}")
        plain.close()
        browser.close()

    check(not watch.errors, "console or CSP errors:\n" + "\n".join(watch.errors))
    shots = sorted(os.listdir(args.out))
    print(f"[ui.py] ok; {len(shots)} screenshots in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
