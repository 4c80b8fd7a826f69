"""Check a running Ghost with the Admin API calls that a publisher makes.

Reads GHOST_URL and GHOST_ADMIN_KEY (`id:hexsecret`) from the environment, as
printed by `testbed/ghost.sh start`. Creates a published post from HTML with
an HTML card, reads it back by id and by slug, uploads a PNG, deletes the post
and checks that it is gone. Exits non-zero on the first failed check.
Uses only the standard library.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import struct
import sys
import time
import urllib.error
import urllib.request
import uuid
import zlib

HTML_CARD = "<!--kg-card-begin: html--><p>hello</p><!--kg-card-end: html-->"

# Ghost must be reached directly, never through a proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def base64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def admin_token(admin_key):
    """Build an HS256 Admin API token valid for 5 minutes, the maximum Ghost accepts."""
    key_id, secret = admin_key.split(":")
    header = {"alg": "HS256", "typ": "JWT", "kid": key_id}
    now = int(time.time())
    payload = {"iat": now, "exp": now + 5 * 60, "aud": "/admin/"}
    signing_input = (
        base64url(json.dumps(header).encode())
        + "."
        + base64url(json.dumps(payload).encode())
    )
    signature = hmac.new(
        bytes.fromhex(secret), signing_input.encode(), hashlib.sha256
    ).digest()
    return signing_input + "." + base64url(signature)


def tiny_png():
    """Return a valid 1x1 red PNG."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


class AdminApi:
    def __init__(self, base_url, admin_key):
        self.base_url = base_url.rstrip("/")
        self.admin_key = admin_key

    def request(self, method, path, body=None, content_type="application/json"):
        """Send a request and return (status, parsed JSON or None)."""
        if body is not None and content_type == "application/json":
            body = json.dumps(body).encode()
        headers = {
            "Authorization": "Ghost " + admin_token(self.admin_key),
            "Accept-Version": "v6.0",
        }
        if body is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(
            self.base_url + "/ghost/api/admin" + path,
            method=method,
            data=body,
            headers=headers,
        )
        try:
            with OPENER.open(request, timeout=30) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        return status, (json.loads(text) if text else None)


def check(condition, message, detail=""):
    """Print the passed check, or exit with the failed one and its detail."""
    if not condition:
        sys.exit(f"FAIL: {message}: {detail}")
    print("ok:", message)


def main():
    try:
        base_url = os.environ["GHOST_URL"]
        admin_key = os.environ["GHOST_ADMIN_KEY"]
    except KeyError as missing:
        sys.exit(f"missing environment variable {missing}; run: eval \"$(testbed/ghost.sh start DIR)\"")
    api = AdminApi(base_url, admin_key)

    title = "tend smoke " + uuid.uuid4().hex[:8]
    status, created = api.request(
        "POST",
        "/posts/?source=html",
        {"posts": [{"title": title, "html": "<p>intro</p>" + HTML_CARD, "status": "published"}]},
    )
    check(status == 201, "POST /posts/?source=html returns 201", f"got {status}: {created}")
    post = created["posts"][0]
    post_id, slug = post["id"], post["slug"]
    check(post["status"] == "published", f"post {post_id} is published")

    status, read = api.request("GET", f"/posts/{post_id}/?formats=html")
    check(status == 200, f"GET /posts/{post_id}/?formats=html returns 200", f"got {status}: {read}")
    html = read["posts"][0]["html"]
    # Ghost puts a newline around the card markers and the card body.
    check(HTML_CARD in re.sub(r">\s+<", "><", html), "post html keeps the html card", repr(html))

    status, by_slug = api.request("GET", f"/posts/slug/{slug}/")
    check(status == 200, f"GET /posts/slug/{slug}/ returns 200", f"got {status}: {by_slug}")
    found_id = by_slug["posts"][0]["id"]
    check(found_id == post_id, f"slug {slug} finds post {post_id}", f"found {found_id}")

    boundary = "tend-smoke-" + uuid.uuid4().hex
    png = tiny_png()
    form = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="smoke.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode() + png + f"\r\n--{boundary}--\r\n".encode()
    status, uploaded = api.request(
        "POST", "/images/upload/", form, "multipart/form-data; boundary=" + boundary
    )
    check(status == 201, "POST /images/upload/ returns 201", f"got {status}: {uploaded}")
    image_url = uploaded["images"][0]["url"]
    check(image_url.startswith(base_url + "/content/images/"), "image url is on GHOST_URL", image_url)
    with OPENER.open(image_url, timeout=30) as response:
        served = response.read()
    check(served == png, f"GET {image_url} returns the uploaded bytes", f"{len(served)} bytes differ")

    status, _ = api.request("DELETE", f"/posts/{post_id}/")
    check(status == 204, f"DELETE /posts/{post_id}/ returns 204", f"got {status}")
    status, _ = api.request("GET", f"/posts/slug/{slug}/")
    check(status == 404, f"GET /posts/slug/{slug}/ returns 404 after the delete", f"got {status}")

    print("ghost smoke: all checks passed")


if __name__ == "__main__":
    main()
