"""Seed 000's table through the dashboard's JSON API (`/api`), as people signed in with their
own passwords: every action on client C1 of organisation A by an administrator, C1's manager,
another client's manager, a plain member, an administrator of organisation B and a caller who
is not signed in, each cell the exact status and code. Then what a client's deactivation does
to its keys, through the OpenAI SDK."""

import json
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest

from conftest import lumen_binary, start_server, wait_ready

PASSWORD = "correct horse battery"
ACTORS = ["admin", "manager", "other_manager", "member", "stranger", "signed_out"]


def admin_cli(server, *args, token, password=None):
    env = {"LUMEN_GRPC_ADDRESS": server.grpc_target, "LUMEN_MANAGEMENT_TOKEN": token, "PATH": "/usr/bin:/bin"}
    result = subprocess.run([lumen_binary(), "admin", *args], input=(password + "\n") if password else None,
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class Person:
    """An httpx client signed in as someone, sending the CSRF token with every change."""

    def __init__(self, server, email=None, password=None):
        self.client = httpx.Client(base_url=server.http, timeout=30)
        self.csrf = {}
        if email:
            response = self.client.post("/api/session", json={"email": email, "password": password})
            assert response.status_code == 200, response.text
            self.csrf = {"X-CSRF-Token": response.json()["csrf_token"]}
            self.id = response.json()["user"]["id"]

    def call(self, method, path, body=None):
        headers = self.csrf if method != "GET" else {}
        return self.client.request(method, path, json=body, headers=headers)


@pytest.fixture
def world(tmp_path):
    for server in start_server(tmp_path, "--demo"):
        server.credentials = json.loads(Path(server.stdout_path).read_text().splitlines()[0])
        wait_ready(server)
        token = server.credentials["management_token"]
        people = {"admin": Person(server, server.credentials["email"], server.credentials["password"])}
        for actor in ["manager", "other_manager", "member"]:
            admin_cli(server, "user", "create", "--email", f"{actor}@demo.lumen.invalid", "--name", actor,
                      "--password-stdin", token=token, password=PASSWORD)
            people[actor] = Person(server, f"{actor}@demo.lumen.invalid", PASSWORD)
        globex = server.bootstrap("Globex", "admin@globex.test")
        admin_cli(server, "user", "create", "--email", "boss@globex.test", "--name", "Boss", "--admin",
                  "--password-stdin", token=globex["management_token"], password=PASSWORD)
        people["stranger"] = Person(server, "boss@globex.test", PASSWORD)
        people["signed_out"] = Person(server)
        admin = people["admin"]
        c1 = admin.call("POST", "/api/clients", {"name": "C1"}).json()["id"]
        c2 = admin.call("POST", "/api/clients", {"name": "C2"}).json()["id"]
        assert admin.call("POST", f"/api/clients/{c1}/managers/{people['manager'].id}").status_code == 200
        assert admin.call("POST", f"/api/clients/{c2}/managers/{people['other_manager'].id}").status_code == 200
        server.people, server.c1, server.c2 = people, c1, c2
        yield server


def fresh_key(world):
    response = world.people["admin"].call("POST", f"/api/clients/{world.c1}/keys", {"name": "to revoke"})
    assert response.status_code == 200, response.text
    return response.json()["id"]


OK = (200, None)
NOT_PERMITTED = (403, "not_permitted")
ADMIN_REQUIRED = (403, "admin_required")
SIGNED_OUT = (401, "not_signed_in")


def cells(world):
    """(action, request maker, expected per actor but the signed-out one)."""
    c1, member = world.c1, world.people["member"].id
    return [
        ("see C1", lambda: ("GET", f"/api/clients/{c1}", None),
         [OK, OK, NOT_PERMITTED, NOT_PERMITTED, (404, "client_not_found")]),
        ("rename C1", lambda: ("PATCH", f"/api/clients/{c1}", {"name": "C1"}),
         [OK, OK, NOT_PERMITTED, NOT_PERMITTED, (404, "client_not_found")]),
        ("add a manager to C1", lambda: ("POST", f"/api/clients/{c1}/managers/{member}", None),
         [OK, ADMIN_REQUIRED, ADMIN_REQUIRED, ADMIN_REQUIRED, (404, "client_not_found")]),
        ("remove a manager of C1", lambda: ("DELETE", f"/api/clients/{c1}/managers/{member}", None),
         [OK, ADMIN_REQUIRED, ADMIN_REQUIRED, ADMIN_REQUIRED, (404, "client_not_found")]),
        ("search users", lambda: ("GET", "/api/users?query=demo", None),
         [OK, OK, OK, NOT_PERMITTED, OK]),
        ("create a client", lambda: ("POST", "/api/clients", {"name": f"new {uuid.uuid4()}"}),
         [OK, ADMIN_REQUIRED, ADMIN_REQUIRED, ADMIN_REQUIRED, OK]),
        ("create a key for C1", lambda: ("POST", f"/api/clients/{c1}/keys", {"name": "ci"}),
         [OK, OK, NOT_PERMITTED, NOT_PERMITTED, (404, "client_not_found")]),
        ("revoke a key of C1", lambda: ("DELETE", f"/api/clients/{c1}/keys/{fresh_key(world)}", None),
         [OK, OK, NOT_PERMITTED, NOT_PERMITTED, (404, "key_not_found")]),
        ("list C1's keys", lambda: ("GET", f"/api/clients/{c1}/keys?show_deleted=true", None),
         [OK, OK, NOT_PERMITTED, NOT_PERMITTED, (404, "client_not_found")]),
        ("create a personal key", lambda: ("POST", "/api/me/keys", {"name": "mine"}),
         [OK, OK, OK, OK, OK]),
        ("see C1's pool", lambda: ("GET", f"/api/clients/{c1}/pool", None),
         [OK, OK, NOT_PERMITTED, NOT_PERMITTED, (404, "client_not_found")]),
        ("set up C1's pool", lambda: ("PUT", f"/api/clients/{c1}/pool", {"mode": "balance", "limit": 100, "refill_per_hour": 5}),
         [OK, ADMIN_REQUIRED, ADMIN_REQUIRED, ADMIN_REQUIRED, (404, "client_not_found")]),
        ("grant coins to C1", lambda: ("POST", f"/api/clients/{c1}/grants",
                                        {"coins": 10, "reason": "test", "idempotency_key": str(uuid.uuid4())}),
         [OK, ADMIN_REQUIRED, ADMIN_REQUIRED, ADMIN_REQUIRED, (404, "client_not_found")]),
        ("see a member's pool", lambda: ("GET", f"/api/users/{member}/pool", None),
         [OK, NOT_PERMITTED, NOT_PERMITTED, OK, (404, "user_not_found")]),
        ("invite a member", lambda: ("POST", f"/api/users/{member}/invite", None),
         [OK, ADMIN_REQUIRED, ADMIN_REQUIRED, ADMIN_REQUIRED, (404, "user_not_found")]),
        ("deactivate C1", lambda: ("PATCH", f"/api/clients/{c1}", {"active": False}),
         [OK, ADMIN_REQUIRED, ADMIN_REQUIRED, ADMIN_REQUIRED, (404, "client_not_found")]),
    ]


def test_each_action_by_each_person_gets_exactly_what_seed_000_says(world):
    failures = []
    for name, make, expected in cells(world):
        for actor, (status, code) in zip(ACTORS, expected + [SIGNED_OUT]):
            method, path, body = make()
            response = world.people[actor].call(method, path, body)
            got_code = response.json()["error"]["code"] if response.status_code >= 400 else None
            if (response.status_code, got_code) != (status, code):
                failures.append(f"{name} by {actor}: {response.status_code} {got_code}, expected {status} {code}")
            if name == "deactivate C1" and response.status_code == 200:
                restored = world.people["admin"].call("PATCH", f"/api/clients/{world.c1}", {"active": True})
                assert restored.status_code == 200
    assert not failures, "\n".join(failures)


def test_a_change_without_the_csrf_token_is_refused_for_everyone(world):
    for actor in ["admin", "manager", "member"]:
        person = world.people[actor]
        refused = person.client.post("/api/me/keys", json={"name": "no token"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_token_invalid"
    listed = world.people["admin"].call("GET", "/api/me/keys").json()["data"]
    assert [key["name"] for key in listed if key["name"] == "no token"] == []


def test_a_deactivated_client_s_keys_fail_within_a_second_and_work_again(world):
    manager = world.people["manager"]
    secret = manager.call("POST", f"/api/clients/{world.c1}/keys", {"name": "service"}).json()["key"]
    sdk = openai.OpenAI(base_url=world.http + "/v1", api_key=secret, max_retries=0)

    def chat():
        return sdk.chat.completions.create(model="lumen-demo", messages=[{"role": "user", "content": "hello"}])

    assert chat().choices[0].message.content
    admin = world.people["admin"]
    assert admin.call("PATCH", f"/api/clients/{world.c1}", {"active": False}).status_code == 200
    deadline = time.time() + 1.0
    while True:
        try:
            chat()
        except openai.AuthenticationError as error:
            assert error.body["code"] == "owner_inactive"
            break
        assert time.time() < deadline, "the key still worked a second after its client was deactivated"
        time.sleep(0.05)
    assert admin.call("PATCH", f"/api/clients/{world.c1}", {"active": True}).status_code == 200
    deadline = time.time() + 1.0
    while True:
        try:
            assert chat().choices[0].message.content
            break
        except openai.AuthenticationError:
            assert time.time() < deadline, "the key did not work again a second after its client was reactivated"
            time.sleep(0.05)
    # The page's usage cards count what the key used, as the ledger does.
    page = manager.call("GET", f"/api/clients/{world.c1}").json()
    keys = manager.call("GET", f"/api/clients/{world.c1}/keys?show_deleted=true").json()["data"]
    assert page["usage"]["tokens"] == sum(key["tokens"] for key in keys) > 0
    assert page["usage"]["coins_spent"] == pytest.approx(sum(key["coins"] for key in keys), abs=0)
    assert sum(key["requests"] for key in keys) == 2
