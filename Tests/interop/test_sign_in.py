"""Signing in to the dashboard's JSON API (`/api`), as a browser would, with httpx: the cookie's
flags, the same answer for a wrong password and an unknown email, the lockout after ten
failures, CSRF on every state-changing request, sign-out, a session that survives a restart,
and the invitation link that sets a password."""

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


def sign_in(server, email=None, password=None):
    client = httpx.Client(base_url=server.http, timeout=30)
    response = client.post("/api/session", json={
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
        # Locked now, even with the right password; another email is not.
        _, locked = sign_in(server)
        assert locked.status_code == 429 and locked.json()["error"]["code"] == "too_many_sign_ins"
        assert locked.headers["Retry-After"] == "60"
        assert sign_in(server, email="other@demo.lumen.invalid", password="not-the-password")[1].status_code == 401


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
        assert httpx.post(server.http + f"/api/invites/{token}", json={"password": "short"}).status_code == 400
        accepted = httpx.post(server.http + f"/api/invites/{token}", json={"password": "a new password"})
        assert accepted.status_code == 200 and accepted.json()["user"]["id"] == user_id
        again = httpx.post(server.http + f"/api/invites/{token}", json={"password": "another one"})
        assert again.status_code == 404 and again.json()["error"]["code"] == "invite_not_found"
        assert sign_in(server, password="a new password")[1].status_code == 200
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
