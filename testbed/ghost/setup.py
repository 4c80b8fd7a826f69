"""Set up a fresh Ghost site over the Admin API and print its Admin API key.

Usage: setup.py BASE_URL EMAIL PASSWORD

Creates the owner user, closes the site to the public (a private Ghost site
sends no webmentions), turns off the Explore ping and creates a custom
integration. Prints the integration's Admin API key as `id:hexsecret`.
Uses only the standard library.
"""

import http.cookiejar
import json
import sys
import urllib.error
import urllib.request


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: setup.py BASE_URL EMAIL PASSWORD")
    base_url, email, password = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    api = base_url + "/ghost/api/admin"

    # The session cookie from POST /session/ authenticates the later calls.
    # Ghost rejects cookie-authenticated requests whose Origin is not the site.
    # The empty ProxyHandler ignores proxy variables, so Ghost is reached directly.
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
    )

    def call(method, path, body):
        request = urllib.request.Request(
            api + path,
            method=method,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Origin": base_url},
        )
        try:
            with opener.open(request, timeout=60) as response:
                is_json = response.headers.get_content_type() == "application/json"
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            sys.exit(f"{method} {path} failed: HTTP {error.code}: {error.read().decode()}")
        # POST /session/ returns the plain text "Created".
        return json.loads(text) if is_json else {}

    call(
        "POST",
        "/authentication/setup/",
        {
            "setup": [
                {
                    "name": "Tend Owner",
                    "email": email,
                    "password": password,
                    "blogTitle": "tend testbed",
                }
            ]
        },
    )
    call("POST", "/session/", {"username": email, "password": password})

    # Ghost 6.65.0 sends webmentions to the links in published posts unless
    # the site is private (MentionSendingService isEnabled), so it sends none.
    call(
        "PUT",
        "/settings/",
        {
            "settings": [
                {"key": "is_private", "value": True},
                {"key": "password", "value": password},
                {"key": "explore_ping", "value": False},
            ]
        },
    )

    created = call(
        "POST",
        "/integrations/?include=api_keys",
        {"integrations": [{"name": "tend"}]},
    )
    admin_keys = [
        key["secret"]
        for key in created["integrations"][0]["api_keys"]
        if key["type"] == "admin"
    ]
    if len(admin_keys) != 1:
        sys.exit(f"expected one admin API key in the integration, got {created}")
    print(admin_keys[0])


if __name__ == "__main__":
    main()
