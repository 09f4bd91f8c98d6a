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


def within(seconds, attempt, failure):
    """Calls `attempt` until it returns True, for at most `seconds`."""
    deadline = time.time() + seconds
    while not attempt():
        assert time.time() < deadline, failure
        time.sleep(0.05)


def refused_with(chat, code):
    """An attempt that succeeds once `chat` is refused with 401 `code`."""
    def attempt():
        try:
            chat()
            return False
        except openai.AuthenticationError as error:
            assert error.body["code"] == code
            return True
    return attempt


def answered(chat):
    """An attempt that succeeds once `chat` answers."""
    def attempt():
        try:
            return bool(chat().choices[0].message.content)
        except openai.AuthenticationError:
            return False
    return attempt


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
        # Another person's key is not found, as another organisation's: its id tells nothing.
        ("revoke a key of C1", lambda: ("DELETE", f"/api/clients/{c1}/keys/{fresh_key(world)}", None),
         [OK, OK, (404, "key_not_found"), (404, "key_not_found"), (404, "key_not_found")]),
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
    within(1.0, refused_with(chat, "owner_inactive"), "the key still worked a second after its client was deactivated")
    assert admin.call("PATCH", f"/api/clients/{world.c1}", {"active": True}).status_code == 200
    within(1.0, answered(chat), "the key did not work again a second after its client was reactivated")
    # The page's usage cards count what the key used, as the ledger does.
    page = manager.call("GET", f"/api/clients/{world.c1}").json()
    keys = manager.call("GET", f"/api/clients/{world.c1}/keys?show_deleted=true").json()["data"]
    assert page["usage"]["tokens"] == sum(key["tokens"] for key in keys) > 0
    assert page["usage"]["coins_spent"] == pytest.approx(sum(key["coins"] for key in keys), abs=0)
    assert sum(key["requests"] for key in keys) == 2


def apply_models(server, yaml_text, tmp_path):
    env = {"LUMEN_DATA_DIR": server.data_dir, "LUMEN_GRPC_ADDRESS": server.grpc_target, "PATH": "/usr/bin:/bin"}
    made = subprocess.run([lumen_binary(), "admin", "operator-token", "create"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert made.returncode == 0, made.stderr
    models = tmp_path / "models.yaml"
    models.write_text(yaml_text)
    applied = subprocess.run([lumen_binary(), "admin", "models", "apply", "--file", str(models)], capture_output=True,
                             text=True, env={**env, "LUMEN_OPERATOR_TOKEN": json.loads(made.stdout)["operator_token"]},
                             timeout=60)
    assert applied.returncode == 0, applied.stderr


def test_consent_end_to_end_with_the_openai_sdk(world, tmp_path):
    apply_models(world, """
models:
  - name: careful-model
    max_output_tokens: 1024
    vendor: lumen
    description: Needs a one-time acknowledgement.
    consent_required: true
    prices: {input: 1, output: 2}
    backends:
      - {id: mock, provider: mock}
""", tmp_path)
    manager, member = world.people["manager"], world.people["member"]
    secret = manager.call("POST", f"/api/clients/{world.c1}/keys", {"name": "service"}).json()["key"]
    sdk = openai.OpenAI(base_url=world.http + "/v1", api_key=secret, max_retries=0)

    def chat():
        return sdk.chat.completions.create(model="careful-model", messages=[{"role": "user", "content": "hello"}])

    deadline = time.time() + 5
    while True:  # the gateway learns of the new model from the registry's watch
        try:
            chat()
            raise AssertionError("a model that needs consent answered without it")
        except openai.PermissionDeniedError as error:
            assert error.body["code"] == "consent_required"
            break
        except openai.NotFoundError:
            assert time.time() < deadline
            time.sleep(0.05)
    table = {row["model"]: row for row in manager.call("GET", f"/api/clients/{world.c1}/models").json()["data"]}
    assert table["careful-model"]["access"] == "needs_consent" and table["careful-model"]["status"] == "ok"
    assert table["lumen-demo"]["access"] == "allowed"
    # A member may not consent for a client they do not manage; its manager may.
    refused = member.call("POST", f"/api/clients/{world.c1}/models/careful-model/consent")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_permitted"
    consented = manager.call("POST", f"/api/clients/{world.c1}/models/careful-model/consent")
    assert consented.status_code == 200 and consented.json()["access"] == "consented"
    deadline = time.time() + 1.0
    while True:
        try:
            assert chat().choices[0].message.content
            break
        except openai.PermissionDeniedError:
            assert time.time() < deadline, "the client's key still needed consent a second after its manager gave it"
            time.sleep(0.05)
    table = {row["model"]: row for row in manager.call("GET", f"/api/clients/{world.c1}/models").json()["data"]}
    assert table["careful-model"]["access"] == "consented"
    assert table["careful-model"]["requests"] == 1 and table["careful-model"]["tokens"] > 0
    # The member's own table is theirs: the client's consent is not the member's.
    mine = {row["model"]: row for row in member.call("GET", "/api/me/models").json()["data"]}
    assert mine["careful-model"]["access"] == "needs_consent" and mine["careful-model"]["requests"] == 0
    page = member.call("GET", "/api/models/careful-model").json()
    assert page["prices"]["input"] == {"coins": 100, "usd": 1} and page["prices"]["output"] == {"coins": 200, "usd": 2}
    assert page["access"] == "needs_consent"
    assert [(b["id"], b["provider"]) for b in page["backends"]] == [("mock", "mock")]
    assert page["backends"][0]["health"] in ("unknown", "healthy")  # reported in batches
    assert "credential_env" not in json.dumps(page) and "base_url" not in json.dumps(page)
    assert page["description"] == "Needs a one-time acknowledgement."


def lines_of(server, key_id):
    """Every usage line of a key, through the management API (the record behind the figures)."""
    token = {"Authorization": "Bearer " + server.credentials["management_token"]}
    lines, page = [], 1
    while True:
        body = httpx.get(server.http + f"/v1/management/api-keys/{key_id}/usage", params={"page": page, "limit": 100},
                         headers=token).json()
        lines += body["data"]
        if not body["has_more"]:
            return lines
        page += 1


def test_profile_and_client_figures_equal_the_usage_lines_behind_them(world, tmp_path):
    from decimal import Decimal
    apply_models(world, """
models:
  - name: pricey
    max_output_tokens: 1024
    vendor: lumen
    prices: {input: 3.7, output: 11.3}
    backends:
      - {id: mock, provider: mock}
""", tmp_path)
    member, manager = world.people["member"], world.people["manager"]
    personal = [member.call("POST", "/api/me/keys", {"name": f"k{i}"}).json() for i in range(2)]
    client_key = manager.call("POST", f"/api/clients/{world.c1}/keys", {"name": "svc"}).json()
    plan = [(personal[0], "lumen-demo")] * 3 + [(personal[1], "pricey")] * 2 + [(client_key, "pricey")] * 4
    for key, model in plan:
        sdk = openai.OpenAI(base_url=world.http + "/v1", api_key=key["key"], max_retries=0)
        deadline = time.time() + 5
        while True:
            try:
                sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "count the coins " * 7}])
                break
            except openai.NotFoundError:  # the gateway has not heard of the model yet
                assert time.time() < deadline
                time.sleep(0.05)

    def sums(keys):
        lines = [line for key in keys for line in lines_of(world, key["id"])]
        assert all(line["status"] == "settled" for line in lines)
        cost = sum(Decimal(str(line["cost"])) for line in lines)
        tokens = sum(line["input_tokens"] + line["cached_input_tokens"] + line["output_tokens"] for line in lines)
        return len(lines), tokens, cost * 100  # 100 coins to the dollar

    requests, tokens, coins = sums(personal)
    profile = member.call("GET", "/api/me/profile").json()
    assert (profile["requests"], profile["tokens_used"]) == (requests, tokens) == (5, tokens)
    assert Decimal(str(profile["coins_used"])) == coins
    assert profile["favorite_model"] == "lumen-demo"  # 3 requests against 2
    assert profile["user"]["email"] == "member@demo.lumen.invalid"
    assert profile["avatar_url"] is None  # no Gravatar unless the deployment turns it on (--gravatar)
    assert profile["pool"]["state"] == "not_configured"
    # Keys are the API; nothing came through the web chat.
    assert profile["web_chat"] == {"conversations": 0, "requests": 0, "tokens": 0, "coins": 0, "last_used_at": None}
    by_model = {row["model"]: row for row in member.call("GET", "/api/me/models?sort=requests&order=desc").json()["data"]}
    assert by_model["lumen-demo"]["requests"] == 3 and by_model["pricey"]["requests"] == 2
    assert sum(Decimal(str(row["coins"])) for row in by_model.values()) == coins

    requests, tokens, coins = sums([client_key])
    page = manager.call("GET", f"/api/clients/{world.c1}").json()
    assert page["usage"]["tokens"] == tokens and Decimal(str(page["usage"]["coins_spent"])) == coins
    assert requests == 4


def test_deactivating_a_person_ends_their_sessions_and_stops_their_keys_at_once(world):
    admin, member = world.people["admin"], world.people["member"]
    secret = member.call("POST", "/api/me/keys", {"name": "laptop"}).json()["key"]
    sdk = openai.OpenAI(base_url=world.http + "/v1", api_key=secret, max_retries=0)

    def chat():
        return sdk.chat.completions.create(model="lumen-demo", messages=[{"role": "user", "content": "hello"}])

    assert chat().choices[0].message.content
    refused = member.call("PATCH", f"/api/users/{member.id}", {"active": False})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"
    changed = admin.call("PATCH", f"/api/users/{member.id}", {"active": False})
    assert changed.status_code == 200 and changed.json()["active"] is False
    me = member.call("GET", "/api/me")
    assert me.status_code == 401 and me.json()["error"]["code"] == "not_signed_in"
    relogin = httpx.post(world.http + "/api/session", json={"email": "member@demo.lumen.invalid", "password": PASSWORD})
    assert relogin.status_code == 401 and relogin.json()["error"]["code"] == "invalid_credentials"
    within(1.0, refused_with(chat, "owner_inactive"), "the key still worked a second after its owner was deactivated")
    assert admin.call("PATCH", f"/api/users/{member.id}", {"active": True}).status_code == 200
    within(1.0, answered(chat), "the key did not work again a second after its owner was reactivated")
    assert Person(world, "member@demo.lumen.invalid", PASSWORD).call("GET", "/api/me").status_code == 200
    # Another organisation's administrator cannot touch the member.
    stranger = world.people["stranger"].call("PATCH", f"/api/users/{member.id}", {"active": False})
    assert stranger.status_code == 404 and stranger.json()["error"]["code"] == "user_not_found"
    # Nobody deactivates themselves, and an organisation keeps an active administrator: 409.
    me = admin.call("GET", "/api/me").json()["user"]["id"]
    own = admin.call("PATCH", f"/api/users/{me}", {"active": False})
    assert own.status_code == 409 and own.json()["error"]["code"] == "cannot_deactivate_self", own.text
    assert admin.call("GET", "/api/me").status_code == 200


def test_the_command_line_way_back_restores_an_administrator(world):
    """`lumen admin user set`: an organisation's token changes its people; the deployment's
    operator (op-…) may only restore one — reactivate them, make them an administrator."""
    member, token = world.people["member"], world.credentials["management_token"]
    changed = admin_cli(world, "user", "set", "member@demo.lumen.invalid", "--inactive", token=token)
    assert changed["active"] is False and member.call("GET", "/api/me").status_code == 401
    env = {"LUMEN_DATA_DIR": world.data_dir, "LUMEN_GRPC_ADDRESS": world.grpc_target, "PATH": "/usr/bin:/bin"}
    made = subprocess.run([lumen_binary(), "admin", "operator-token", "create"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert made.returncode == 0, made.stderr
    env["LUMEN_OPERATOR_TOKEN"] = json.loads(made.stdout)["operator_token"]

    def as_operator(*args):
        return subprocess.run([lumen_binary(), "admin", "user", "set", *args], capture_output=True, text=True,
                              env=env, timeout=60)

    unnamed = as_operator("member@demo.lumen.invalid", "--active")
    assert unnamed.returncode == 64 and "name it with --org" in unnamed.stderr, unnamed.stderr
    demoting = as_operator(world.people["admin"].id, "--no-admin", "--org", "Demo")
    assert demoting.returncode != 0 and "operator_restores_only" in demoting.stderr, demoting.stderr
    restored = as_operator("member@demo.lumen.invalid", "--active", "--admin", "--org", "demo")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["active"] is True and json.loads(restored.stdout)["is_admin"] is True
    me = Person(world, "member@demo.lumen.invalid", PASSWORD).call("GET", "/api/me")
    assert me.status_code == 200 and me.json()["user"]["is_admin"] is True
