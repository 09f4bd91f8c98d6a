"""Single sign-on through a real OpenID Connect provider: `oidc-provider-mock` (PyPI; authlib's
authorization server) on loopback, and Chromium signing in through it to `lumen serve --demo`.

The first sign-in creates the person with the role and groups the provider's claims map to;
the next follows the provider (a group removed there is removed here); a person deactivated in
Lumen cannot come back through the provider; a replayed callback and a tampered `state` each
end on the sign-in page saying why; an organisation can turn passwords off."""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from conftest import lumen_binary, start_server, wait_ready



def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def provider(tmp_path):
    """oidc-provider-mock on a free loopback port; its issuer URL."""
    port = free_port()
    log = open(tmp_path / "oidc.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "oidc_provider_mock", "--port", str(port)], stdout=log, stderr=log)
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                if httpx.get(issuer + "/.well-known/openid-configuration", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline and process.poll() is None, (tmp_path / "oidc.log").read_text()
            time.sleep(0.1)
        yield issuer
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture
def site(tmp_path):
    # The client secret lives in the gateway's environment; the setting names its variable.
    for server in start_server(tmp_path, "--demo", env={"MOCK_IDP_SECRET": "a client secret"}):
        server.credentials = json.loads(Path(server.stdout_path).read_text().splitlines()[0])
        wait_ready(server)
        yield server


def admin(site, *args):
    env = {"LUMEN_GRPC_ADDRESS": site.grpc_target, "LUMEN_MANAGEMENT_TOKEN": site.credentials["management_token"],
           "PATH": "/usr/bin:/bin"}
    result = subprocess.run([lumen_binary(), "admin", *args], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def administrator(site):
    """An httpx client signed in as the demo's administrator."""
    client = httpx.Client(base_url=site.http, timeout=30)
    session = client.post("/api/session", json={"email": site.credentials["email"], "password": site.credentials["password"]})
    assert session.status_code == 200, session.text
    client.headers["X-CSRF-Token"] = session.json()["csrf_token"]
    return client


def set_up(site, provider, *extra):
    return admin(site, "sso", "set", "--issuer", provider, "--client-id", "lumen", "--client-secret-env", "MOCK_IDP_SECRET",
                 "--display-name", "Mock IdP",
                 "--allowed-domain", "example.com", "--create-people", "--admin-claim", "roles", "--admin-value", "lumen-admin",
                 "--groups-claim", "groups", "--group-map", "research=Research", "--group-map", "ops=Ops", *extra)


def sign_in_through_provider(browser, site, subject):
    """Chromium from Lumen's sign-in page through the provider's form; the page it ends on."""
    page = browser.new_context().new_page()
    page.goto(site.http + "/login")
    page.get_by_role("link", name="Sign in with Mock IdP").click()
    expect(page.locator("input[name=sub]")).to_be_visible()
    page.locator("input[name=sub]").fill(subject)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_load_state()
    return page


def test_first_sign_in_creates_the_person_and_the_next_follows_the_provider(site, provider, browser):
    lumen = administrator(site)
    for name in ("Research", "Ops"):
        assert lumen.post("/api/groups", json={"name": name}).status_code in (200, 201)
    groups = {group["name"]: group["id"] for group in lumen.get("/api/groups").json()["data"]}
    shown = set_up(site, provider)
    assert shown["issuer"] == provider and shown["group_map"] == {"research": "Research", "ops": "Ops"}
    assert shown["create_people"] and shown["passwords_allowed"]
    assert admin(site, "sso", "show")["client_id"] == "lumen"

    # The sign-in page offers the organisation's provider.
    from test_dashboard import screenshot

    login = browser.new_context().new_page()
    login.goto(site.http + "/login")
    expect(login.get_by_role("link", name="Sign in with Mock IdP")).to_be_visible()
    screenshot(login, "login-sso")

    # The provider knows Ada as a researcher and an administrator.
    claims = {"email": "ada@example.com", "name": "Ada Lovelace", "groups": ["research"], "roles": ["lumen-admin"]}
    assert httpx.put(provider + "/users/ada", json=claims).status_code == 204
    page = sign_in_through_provider(browser, site, "ada")
    expect(page).to_have_url(site.http + "/profile")
    me = page.request.get(site.http + "/api/me").json()
    assert me["user"]["email"] == "ada@example.com" and me["user"]["display_name"] == "Ada Lovelace"
    assert me["user"]["is_admin"] and me["user"]["group_ids"] == [groups["Research"]]

    # She moves to operations and is no longer an administrator there: so here, at the next sign-in.
    claims.update(groups=["ops"], roles=[])
    assert httpx.put(provider + "/users/ada", json=claims).status_code == 204
    page = sign_in_through_provider(browser, site, "ada")
    expect(page).to_have_url(site.http + "/profile")
    me = page.request.get(site.http + "/api/me").json()
    assert not me["user"]["is_admin"] and me["user"]["group_ids"] == [groups["Ops"]]

    # The audit log has the provisioning and the sign-ins, by Ada, with the method.
    log = lumen.get("/audit", headers={"Accept": "text/html"})
    assert log.status_code == 200
    entries = httpx.get(site.http + "/v1/management/audit-log", params={"targetId": me["user"]["id"]},
                        headers={"Authorization": f"Bearer {site.credentials['management_token']}"}).json()["data"]
    actions = [entry["action"] for entry in entries]
    assert actions.count("session.sign_in") == 2 and "user.provision" in actions and "user.update" in actions
    assert all(entry["actor"] == {"type": "person", "id": me["user"]["id"]} for entry in entries
               if entry["action"] in ("session.sign_in", "user.provision"))

    # Deactivated in Lumen, she cannot come back through the provider.
    assert lumen.patch(f"/api/users/{me['user']['id']}", json={"active": False}).status_code == 200
    page = sign_in_through_provider(browser, site, "ada")
    expect(page.get_by_role("alert")).to_contain_text("ada@example.com is deactivated in Lumen")


def test_a_replayed_callback_and_a_tampered_state_are_refused_with_a_clear_page(site, provider, browser):
    set_up(site, provider)
    assert httpx.put(provider + "/users/bo", json={"email": "bo@example.com"}).status_code == 204

    # A callback seen once (its code and state) does not sign in again.
    page = browser.new_context().new_page()
    callbacks = []
    page.on("request", lambda request: callbacks.append(request.url)
            if request.url.startswith(site.http + "/login/sso/callback") else None)
    page.goto(site.http + "/login")
    page.get_by_role("link", name="Sign in with Mock IdP").click()
    page.locator("input[name=sub]").fill("bo")
    page.get_by_role("button", name="Authorize").click()
    expect(page).to_have_url(site.http + "/profile")
    assert len(callbacks) == 1
    replay = browser.new_context().new_page()
    response = replay.goto(callbacks[0])
    assert response.status == 400
    expect(replay.get_by_role("alert")).to_contain_text("was not started in this browser, was used already or took too long")
    again = page.goto(callbacks[0])
    assert again.status == 400
    expect(page.get_by_role("alert")).to_contain_text("Single sign-on failed")

    # A state changed on its way back is not the one this browser started.
    page = browser.new_context().new_page()
    page.route(re.compile(re.escape(site.http) + r"/login/sso/callback.*"), lambda route: route.continue_(
        url=re.sub(r"state=[^&]+", "state=forged", route.request.url)))
    page.goto(site.http + "/login")
    page.get_by_role("link", name="Sign in with Mock IdP").click()
    page.locator("input[name=sub]").fill("bo")
    page.get_by_role("button", name="Authorize").click()
    expect(page.get_by_role("alert")).to_contain_text("the sign-in's state does not match the one this browser started")
    assert page.request.get(site.http + "/api/me").status == 401


def test_an_organisation_without_passwords_signs_in_through_its_provider_only(site, provider):
    set_up(site, provider, "--no-passwords")
    refused = httpx.post(site.http + "/api/session",
                         json={"email": site.credentials["email"], "password": site.credentials["password"]})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "password_sign_in_off"
    assert "Sign in with Mock IdP" in refused.json()["error"]["message"]
    # The sign-in page offers the provider.
    page = httpx.get(site.http + "/login").text
    assert "Sign in with Mock IdP" in page and "/login/sso/start/org_" in page
    admin(site, "sso", "remove")
    assert httpx.post(site.http + "/api/session",
                      json={"email": site.credentials["email"], "password": site.credentials["password"]}).status_code == 200


class TamperingIssuer:
    """An issuer in front of oidc-provider-mock that passes its sign-ins through (the browser
    goes to the real provider's form) but rewrites the ID token of each code exchange as `mode`
    says — re-signed with its own key (`ok`), for another audience (`aud`), expired an hour ago
    (`expired`), or signed with a key it does not publish (`kid`) — to see Lumen refuse each."""

    def __init__(self, upstream, mode):
        from authlib.jose import JsonWebKey

        self.upstream, self.mode = upstream, mode
        self.key = JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": "published"})
        self.stranger = JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": "unpublished"})

    def __enter__(self):
        from mock_http import MockHandler, MockServer

        issuer = self

        class Handler(MockHandler):
            def do_GET(self):
                if self.path == "/.well-known/openid-configuration":
                    upstream = httpx.get(issuer.upstream + "/.well-known/openid-configuration").json()
                    self.send_json(200, {**upstream, "issuer": issuer.url, "token_endpoint": issuer.url + "/token",
                                         "jwks_uri": issuer.url + "/jwks"})
                elif self.path == "/jwks":
                    self.send_json(200, {"keys": [issuer.key.as_dict(is_private=False)]})
                else:
                    self.send_json(404, {})

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))  # a form, not JSON
                forwarded = {name: self.headers[name] for name in ("authorization", "content-type") if self.headers.get(name)}
                upstream = httpx.post(issuer.upstream + "/oauth2/token", content=raw, headers=forwarded)
                answer = upstream.json()
                if "id_token" not in answer:
                    self.send_json(upstream.status_code, answer)
                    return
                answer["id_token"] = issuer.rewrite(answer["id_token"])
                self.send_json(200, answer)

        self.server = MockServer()
        self.server.serve(Handler)
        self.server.__enter__()
        self.url = self.server.root_url
        return self

    def __exit__(self, *exc):
        self.server.__exit__(*exc)

    def rewrite(self, token):
        from authlib.jose import jwt

        # The provider's claims as it wrote them (the real check of its signature is Lumen's, below).
        claims = json.loads(_b64(token.split(".")[1]))
        claims["iss"] = self.url
        if self.mode == "aud":
            claims["aud"] = "someone-else"
        if self.mode == "expired":
            claims["iat"], claims["exp"] = int(time.time()) - 7200, int(time.time()) - 3600
        key = self.stranger if self.mode == "kid" else self.key
        return jwt.encode({"alg": "RS256", "kid": key.as_dict()["kid"]}, claims, key).decode()


def _b64(part):
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@pytest.mark.parametrize("mode, said", [
    ("ok", None),
    ("aud", "the ID token is for another client (aud), not lumen"),
    ("expired", "the ID token has expired"),
    ("kid", "the ID token is signed with a key the provider does not publish (unknown kid)"),
])
def test_an_id_token_for_another_client_expired_or_signed_with_an_unknown_key_is_refused(site, provider, browser, mode, said):
    with TamperingIssuer(provider, mode) as issuer:
        set_up(site, issuer.url)
        assert httpx.put(provider + "/users/cy", json={"email": "cy@example.com"}).status_code == 204
        page = sign_in_through_provider(browser, site, "cy")
        if said is None:
            expect(page).to_have_url(site.http + "/profile")
            return
        expect(page.get_by_role("alert")).to_contain_text(said)
        assert page.request.get(site.http + "/api/me").status == 401
