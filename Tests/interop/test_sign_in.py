"""Signing in to the dashboard's JSON API (`/api`), as a browser would, with httpx: the cookie's
flags, the same answer for a wrong password and an unknown email, the throttle (per email and
address, per address, per email), login CSRF, CSRF on every state-changing request, sign-out, a
session that survives a restart, Secure cookies and HSTS behind an https public URL, and the
invitation link that sets a password and ends the other sessions."""

import json
import re
from pathlib import Path

import httpx

from conftest import start_server, wait_ready


def demo_server(tmp_path):
    for server in start_server(tmp_path, "--demo"):
        server.credentials = json.loads(Path(server.stdout_path).read_text().splitlines()[0])
        wait_ready(server)
        yield server


def sign_in(server, email=None, password=None, address=None, headers=None):
    client = httpx.Client(base_url=server.http, timeout=30)
    # From loopback, X-Forwarded-For names the client (a proxy beside Lumen): other addresses.
    sent = {"X-Forwarded-For": address} if address else {}
    sent.update(headers or {})
    response = client.post("/api/session", headers=sent, json={
        "email": email or server.credentials["email"], "password": password or server.credentials["password"]})
    return client, response


def test_sign_in_sets_a_strict_cookie_and_me_says_who(tmp_path):
    for server in demo_server(tmp_path):
        client, response = sign_in(server, email=server.credentials["email"].upper())
        assert response.status_code == 200, response.text
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("lumen_session=")
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
        body = response.json()
        assert body["user"]["email"] == server.credentials["email"] and body["user"]["is_admin"] is True
        assert len(body["csrf_token"]) >= 32
        me = client.get("/api/me")
        assert me.status_code == 200 and me.json() == body


def test_wrong_password_and_unknown_email_get_the_same_answer_and_ten_failures_lock_the_email(tmp_path):
    for server in demo_server(tmp_path):
        _, wrong = sign_in(server, password="not-the-password")
        _, unknown = sign_in(server, email="nobody@demo.lumen.invalid", password="not-the-password")
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json()
        assert wrong.json()["error"]["code"] == "invalid_credentials"
        assert "set-cookie" not in wrong.headers
        for _ in range(9):
            assert sign_in(server, password="not-the-password")[1].status_code == 401
        # Locked now from this address, even with the right password; another email is not, and
        # the person signs in from elsewhere: an attacker cannot lock them out from everywhere.
        _, locked = sign_in(server)
        assert locked.status_code == 429 and locked.json()["error"]["code"] == "too_many_sign_ins"
        assert 1 <= int(locked.headers["Retry-After"]) <= 60
        assert sign_in(server, email="other@demo.lumen.invalid", password="not-the-password")[1].status_code == 401
        assert sign_in(server, address="192.0.2.7")[1].status_code == 200


def test_one_address_cannot_spray_a_password_across_accounts(tmp_path):
    for server in demo_server(tmp_path):
        for index in range(30):
            _, response = sign_in(server, email=f"user{index}@demo.lumen.invalid", password="Summer2026!!", address="198.51.100.9")
            assert response.status_code == 401, (index, response.text)
        _, sprayed = sign_in(server, email="user30@demo.lumen.invalid", password="Summer2026!!", address="198.51.100.9")
        assert sprayed.status_code == 429 and sprayed.json()["error"]["code"] == "too_many_sign_ins"
        assert "your address" in sprayed.json()["error"]["message"] and int(sprayed.headers["Retry-After"]) > 60
        # Others are not affected.
        assert sign_in(server, address="198.51.100.10")[1].status_code == 200


def test_another_site_cannot_sign_a_browser_in(tmp_path):
    for server in demo_server(tmp_path):
        for headers in [{"Origin": "https://evil.test"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                        {"Sec-Fetch-Site": "same-site"}]:
            _, refused = sign_in(server, headers=headers)
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "cross_site_sign_in", headers
            assert "set-cookie" not in refused.headers
        # What a cross-site form can send (no preflight): not JSON, refused.
        plain = httpx.post(server.http + "/api/session", headers={"Content-Type": "text/plain"}, content=json.dumps(
            {"email": server.credentials["email"], "password": server.credentials["password"]}))
        assert plain.status_code == 415 and plain.json()["error"]["code"] == "json_required"
        # This site's own pages are welcome.
        _, own = sign_in(server, headers={"Origin": server.http, "Sec-Fetch-Site": "same-origin"})
        assert own.status_code == 200
        # The sign-in form: without the token of its page (and its cookie) it signs nobody in.
        form = {"email": server.credentials["email"], "password": server.credentials["password"], "next": "/profile"}
        forged = httpx.post(server.http + "/login", data=form)
        assert forged.status_code == 403 and "lumen_session" not in forged.headers.get("set-cookie", "")
        browser = httpx.Client(base_url=server.http, timeout=30)
        page = browser.get("/login")
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("lumen_sign_in=") and "SameSite=Strict" in cookie and "HttpOnly" in cookie
        token = re.search(r'name="sign_in_token" value="([^"]+)"', page.text).group(1)
        wrong = browser.post("/login", data={**form, "sign_in_token": "x" * len(token)})
        assert wrong.status_code == 403 and "This sign-in form has expired" in wrong.text
        # Each page rendered carries a fresh token (and cookie).
        token = re.search(r'name="sign_in_token" value="([^"]+)"', wrong.text).group(1)
        cross = browser.post("/login", data={**form, "sign_in_token": token}, headers={"Origin": "https://evil.test"})
        assert cross.status_code == 403 and "lumen_session" not in cross.headers.get("set-cookie", "")
        signed_in = browser.post("/login", data={**form, "sign_in_token": token})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/profile"
        assert browser.get("/api/me").status_code == 200


def test_over_https_cookies_are_secure_hsts_is_sent_and_links_come_from_the_public_url(tmp_path):
    for server in start_server(tmp_path, "--demo", "--public-url", "https://lumen.example.test/"):
        server.credentials = json.loads(Path(server.stdout_path).read_text().splitlines()[0])
        wait_ready(server)
        _, response = sign_in(server)
        assert response.status_code == 200
        assert "; Secure" in response.headers["set-cookie"]
        assert response.headers["strict-transport-security"] == "max-age=31536000"
        # Errors too.
        assert httpx.get(server.http + "/api/nothing-here").headers["strict-transport-security"] == "max-age=31536000"
        user_id = response.json()["user"]["id"]
        # (A client keeps a Secure cookie for HTTPS only: sent by hand over this loopback HTTP.)
        session = response.headers["set-cookie"].split(";")[0]
        invite = httpx.post(server.http + f"/api/users/{user_id}/invite", headers={
            "Cookie": session, "X-CSRF-Token": response.json()["csrf_token"], "Host": "evil.test",
            "X-Forwarded-Proto": "http", "X-Forwarded-Host": "evil.test"})
        assert invite.status_code == 200, invite.text
        assert re.fullmatch(r"https://lumen\.example\.test/invite/inv-[A-Za-z0-9]{48}", invite.json()["url"]), invite.json()
    # Without an https public URL (plain HTTP on loopback): no HSTS, no Secure.
    (tmp_path / "plain").mkdir()
    for server in demo_server(tmp_path / "plain"):
        _, response = sign_in(server)
        assert "Secure" not in response.headers["set-cookie"] and "strict-transport-security" not in response.headers


def test_state_changing_requests_need_the_csrf_token_and_sign_out_ends_the_session(tmp_path):
    for server in demo_server(tmp_path):
        client, response = sign_in(server)
        token = response.json()["csrf_token"]
        refused = client.delete("/api/session")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_token_invalid"
        assert client.delete("/api/session", headers={"X-CSRF-Token": "x" * 40}).status_code == 403
        assert client.get("/api/me").status_code == 200
        stolen = dict(client.cookies)
        signed_out = client.delete("/api/session", headers={"X-CSRF-Token": token})
        assert signed_out.status_code == 204
        # The old cookie is worth nothing now, even replayed by hand.
        replay = httpx.get(server.http + "/api/me", cookies=stolen)
        assert replay.status_code == 401 and replay.json()["error"]["code"] == "not_signed_in"
        assert httpx.get(server.http + "/api/me").status_code == 401


def test_a_session_survives_a_restart(tmp_path):
    first = demo_server(tmp_path)
    server = next(first)
    client, response = sign_in(server)
    assert response.status_code == 200
    cookies = dict(client.cookies)
    first.close()  # stops the server
    for again in start_server(tmp_path, "--demo"):
        wait_ready(again)
        me = httpx.get(again.http + "/api/me", cookies=cookies)
        assert me.status_code == 200, me.text
        assert me.json()["user"]["email"] == response.json()["user"]["email"]


def test_an_invitation_sets_a_password_once(tmp_path):
    for server in demo_server(tmp_path):
        admin, response = sign_in(server)
        csrf = {"X-CSRF-Token": response.json()["csrf_token"]}
        user_id = admin.get("/api/me").json()["user"]["id"]
        assert user_id.startswith("usr_")
        invite = admin.post(f"/api/users/{user_id}/invite", headers=csrf)
        assert invite.status_code == 200, invite.text
        url = invite.json()["url"]
        assert re.fullmatch(rf"http://127\.0\.0\.1:{server.http_port}/invite/inv-[A-Za-z0-9]{{48}}", url), url
        token = url.rsplit("/", 1)[1]
        other = admin.post(f"/api/users/{user_id}/invite", headers=csrf).json()["url"].rsplit("/", 1)[1]
        for weak, code in [("short", "invalid_password"), ("password123", "weak_password"), ("qwertyuiop", "weak_password"),
                           ("long enough\u0000tail", "invalid_password")]:
            refused = httpx.post(server.http + f"/api/invites/{token}", json={"password": weak})
            assert refused.status_code == 400 and refused.json()["error"]["code"] == code, (weak, refused.text)
        accepted = httpx.post(server.http + f"/api/invites/{token}", json={"password": "a new password"})
        assert accepted.status_code == 200 and accepted.json()["user"]["id"] == user_id
        again = httpx.post(server.http + f"/api/invites/{token}", json={"password": "another one"})
        assert again.status_code == 404 and again.json()["error"]["code"] == "invite_not_found"
        # The other link is void, and the session signed in with the old password has ended.
        voided = httpx.post(server.http + f"/api/invites/{other}", json={"password": "yet another one"})
        assert voided.status_code == 404 and voided.json()["error"]["code"] == "invite_not_found"
        assert admin.get("/api/me").status_code == 401
        admin, response = sign_in(server, password="a new password")
        assert response.status_code == 200
        assert sign_in(server)[1].status_code == 401
        # Inviting needs the CSRF token like every change.
        assert admin.post(f"/api/users/{user_id}/invite").status_code == 403
        # A management token is not a dashboard credential.
        management = {"Authorization": "Bearer " + server.credentials["management_token"]}
        assert httpx.get(server.http + "/api/me", headers=management).status_code == 401


def test_admin_user_create_over_the_grpc_port_makes_a_person_who_signs_in(tmp_path):
    import subprocess
    from conftest import lumen_binary
    for server in demo_server(tmp_path):
        env = {"LUMEN_GRPC_ADDRESS": server.grpc_target, "LUMEN_MANAGEMENT_TOKEN": server.credentials["management_token"],
               "PATH": "/usr/bin:/bin"}

        def create(*args, password="correct horse battery"):
            return subprocess.run([lumen_binary(), "admin", "user", "create", *args], input=password + "\n",
                                  capture_output=True, text=True, env=env, timeout=60)

        made = create("--email", "Ada@Demo.Lumen.Invalid", "--name", "Ada", "--password-stdin")
        assert made.returncode == 0, made.stderr
        user = json.loads(made.stdout)
        assert user["id"].startswith("usr_") and user["email"] == "ada@demo.lumen.invalid"
        assert user["display_name"] == "Ada" and user["is_admin"] is False
        client, response = sign_in(server, email="ada@demo.lumen.invalid", password="correct horse battery")
        assert response.status_code == 200 and response.json()["user"]["id"] == user["id"]
        # The same email again, a short password, an unknown group: refused, nothing made.
        again = create("--email", "ada@demo.lumen.invalid", "--name", "Ada", "--password-stdin")
        assert again.returncode == 1 and "user_exists" in again.stderr
        short = create("--email", "bob@demo.lumen.invalid", "--name", "Bob", "--password-stdin", password="short")
        assert short.returncode == 1 and "invalid_password" in short.stderr
        group = create("--email", "bob@demo.lumen.invalid", "--name", "Bob", "--group", "nope")
        assert group.returncode == 64 and "--group nope" in group.stderr
        assert sign_in(server, email="bob@demo.lumen.invalid", password="short")[1].status_code == 401
