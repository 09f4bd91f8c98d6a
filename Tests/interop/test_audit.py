"""The model registry's audit log, end to end: the configuration file's models (Lumen's own
doing) and an operator's changes through `lumen admin models` are recorded with who made them,
`lumen admin audit verify` finds the chain intact, and an entry edited in the SQLite file by
hand makes it fail, naming that entry."""

import json
import os
import sqlite3
import subprocess
import time

from conftest import lumen_binary, start_server, wait_ready


def verify(data_dir):
    result = subprocess.run([lumen_binary(), "admin", "audit", "verify", "--data-dir", str(data_dir)],
                            capture_output=True, text=True, timeout=60)
    return result.returncode, json.loads(result.stdout) if result.stdout.strip() else result.stderr


def test_changes_are_recorded_and_an_edited_entry_is_found(tmp_path):
    config = tmp_path / "lumen.yaml"
    config.write_text("""
models:
  - name: chat
    vendor: openai
    scenes: [chat]
    prices: {input: 0.15, output: 0.60}
    max_output_tokens: 1024
    backends:
      - {id: primary, provider: openai, base_url: "http://127.0.0.1:9/v1"}
""")
    change = tmp_path / "change.yaml"
    change.write_text("""
models:
  - name: chat
    vendor: openai
    scenes: [chat]
    prices: {input: 0.15, output: 0.60}
    max_output_tokens: 1024
    backends:
      - {id: primary, provider: openai, base_url: "http://127.0.0.1:9/v1", weight: 3}
""")
    for server in start_server(tmp_path, "--config", str(config)):
        wait_ready(server)
        created = subprocess.run([lumen_binary(), "admin", "operator-token", "create", "--data-dir", server.data_dir],
                                 capture_output=True, text=True, timeout=60)
        assert created.returncode == 0, created.stderr
        token = json.loads(created.stdout)
        env = {**os.environ, "LUMEN_OPERATOR_TOKEN": token["operator_token"], "LUMEN_GRPC_ADDRESS": server.grpc_target}
        applied = subprocess.run([lumen_binary(), "admin", "models", "apply", "--file", str(change)],
                                 capture_output=True, text=True, timeout=60, env=env)
        assert applied.returncode == 0, applied.stderr

        status, report = verify(server.data_dir)
        assert status == 0 and report["ok"], report
        chain = report["services"]["registry"]
        assert chain["intact"] and chain["entries"] == 3 and len(chain["head_hash"]) == 64

        database = sqlite3.connect(os.path.join(server.data_dir, "registry.sqlite"))
        try:
            rows = database.execute("SELECT sequence, actor_type, actor_id, action, target_id, after_json FROM audit_log "
                                    "ORDER BY sequence").fetchall()
            # The file's model and backend, by Lumen itself; the operator's re-weighting, by its token.
            assert [(r[1], r[3], r[4]) for r in rows] == [
                ("internal", "model.upsert", "chat"), ("internal", "backend.upsert", "chat/primary"),
                ("operator", "backend.upsert", "chat/primary")]
            assert rows[2][2] == token["id"] and '"weight":3' in rows[2][5]

            # Someone with the file rewrites who made the change.
            database.execute("UPDATE audit_log SET actor_id = 'key_nobody' WHERE sequence = 3")
            database.commit()
        finally:
            database.close()
        status, report = verify(server.data_dir)
        assert status == 1 and not report["ok"], report
        assert report["services"]["registry"] == {
            "intact": False, "entries": 2, "broken_sequence": 3, "reason": "entry 3 was changed after it was written"}


def test_a_persons_change_carries_its_request_id_and_address(demo, tmp_path):
    """The administrator consents to a model through the dashboard's API: the registry's entry
    names the person, the organisation, the request id the response carried and the address the
    request came from."""
    import httpx

    from test_people_api import apply_models

    apply_models(demo, """
models:
  - name: careful-model
    max_output_tokens: 1024
    vendor: lumen
    consent_required: true
    scenes: [chat]
    backends:
      - {id: mock, provider: mock}
""", tmp_path)
    client = httpx.Client(base_url=demo.http, timeout=30)
    session = client.post("/api/session", json={"email": demo.credentials["email"], "password": demo.credentials["password"]})
    assert session.status_code == 200, session.text
    user = session.json()["user"]["id"]
    deadline = time.time() + 10  # the demo's models arrive through the registry's watch
    while (consented := client.post("/api/me/models/careful-model/consent",
                                    headers={"X-CSRF-Token": session.json()["csrf_token"]})).status_code == 404:
        assert time.time() < deadline, consented.text
        time.sleep(0.05)
    assert consented.status_code == 200, consented.text

    database = sqlite3.connect(os.path.join(demo.data_dir, "registry.sqlite"))
    try:
        (row,) = database.execute("SELECT actor_type, actor_id, organization_id, action, target_id, request_id, client_address "
                                  "FROM audit_log WHERE action = 'consent.grant'").fetchall()
    finally:
        database.close()
    assert row[0:2] == ("person", user) and row[2].startswith("org_")
    assert row[3:5] == ("consent.grant", f"user/{user}/careful-model")
    assert row[5] == consented.headers["x-request-id"] and row[6] == "127.0.0.1"
    status, report = verify(demo.data_dir)
    assert status == 0 and report["services"]["registry"]["intact"], report


# The routes that change something, each with the one audit entry it writes.
ROUTE_ACTIONS = {
    ("POST", "/api/session"): "session.sign_in",
    ("POST", "/api/users"): "user.create",
    ("PATCH", "/api/users/{userId}"): "user.update",
    ("POST", "/api/groups"): "group.create",
    ("POST", "/api/users/{userId}/invite"): "invite.create",
    ("POST", "/api/invites/{token}"): "invite.accept",
    ("POST", "/api/me/keys"): "key.create",
    ("PATCH", "/api/me/keys/{keyId}"): "key.update",
    ("DELETE", "/api/me/keys/{keyId}"): "key.revoke",
    ("POST", "/api/clients"): "client.create",
    ("PATCH", "/api/clients/{clientId}"): "client.update",
    ("POST", "/api/clients/{clientId}/managers/{userId}"): "client.add_manager",
    ("DELETE", "/api/clients/{clientId}/managers/{userId}"): "client.remove_manager",
    ("POST", "/api/clients/{clientId}/keys"): "key.create",
    ("PATCH", "/api/clients/{clientId}/keys/{keyId}"): "key.update",
    ("DELETE", "/api/clients/{clientId}/keys/{keyId}"): "key.revoke",
    ("PUT", "/api/users/{userId}/pool"): "pool.configure",
    ("POST", "/api/users/{userId}/grants"): "pool.grant",
    ("PUT", "/api/clients/{clientId}/pool"): "pool.configure",
    ("POST", "/api/clients/{clientId}/grants"): "pool.grant",
    ("POST", "/api/me/models/{model}/consent"): "consent.grant",
    ("POST", "/api/clients/{clientId}/models/{model}/consent"): "consent.grant",
    ("PUT", "/api/users/{userId}/pool/alerts"): "pool.alerts",
    ("PUT", "/api/clients/{clientId}/pool/alerts"): "pool.alerts",
    ("POST", "/api/alerts/endpoints"): "alert_endpoint.create",
    ("DELETE", "/api/alerts/endpoints/{endpointId}"): "alert_endpoint.delete",
    ("POST", "/v1/management/api-keys"): "key.create",
    ("PATCH", "/v1/management/api-keys/{keyId}"): "key.update",
    ("PUT", "/v1/management/pools/{ownerType}/{ownerId}/alerts"): "pool.alerts",
    ("POST", "/v1/management/alerts/endpoints"): "alert_endpoint.create",
    ("DELETE", "/v1/management/alerts/endpoints/{endpointId}"): "alert_endpoint.delete",
    ("PUT", "/v1/management/captures/{ownerType}/{ownerId}"): "capture.set",
    ("PUT", "/api/captures/{ownerType}/{ownerId}"): "capture.set",
}

# The routes that change something the audit log leaves to another record.
ROUTES_ELSEWHERE = {
    ("DELETE", "/api/session"): "signing out ends a session; the sign-in is the entry",
    **{("POST", path): "inference: the usage line is its record" for path in (
        "/v1/chat/completions", "/v1/embeddings", "/v1/messages", "/v1/messages/count_tokens", "/v1/completions",
        "/v1/responses", "/v1/images/generations", "/v1/images/edits", "/v1/images/variations", "/v1/audio/speech",
        "/v1/audio/transcriptions", "/v1/audio/translations", "/v1/moderations", "/v1/rerank")},
    ("POST", "/api/chat/conversations"): "a person's own web chat",
    ("PATCH", "/api/chat/conversations/{conversationId}"): "a person's own web chat",
    ("DELETE", "/api/chat/conversations/{conversationId}"): "a person's own web chat",
    ("POST", "/api/chat/conversations/{conversationId}/messages"): "a person's own web chat (and its usage line)",
}


def all_entries(data_dir):
    """Every service's audit entries: (service, sequence, actor type, action, request id, time in ms)."""
    found = []
    for service in ("accounts", "keys", "ledger", "registry"):
        database = sqlite3.connect(os.path.join(data_dir, f"{service}.sqlite"))
        try:
            found += [(service,) + row for row in database.execute(
                "SELECT sequence, actor_type, action, request_id, at_ms FROM audit_log ORDER BY sequence")]
        finally:
            database.close()
    return found


def test_every_route_that_changes_something_writes_one_entry(demo, tmp_path):
    """Every route of the API document that changes something is called once, as its users call
    it; each writes exactly one entry, with its action, the caller as actor and the response's
    request id. A route the document gains fails here until it is given its entry (or a reason)."""
    import httpx
    import yaml

    from test_people_api import apply_models

    document = yaml.safe_load(open(os.path.join(os.path.dirname(__file__), "../../gateway/openapi.yaml")))
    changing = {(method.upper(), path) for path, operations in document["paths"].items()
                for method in operations if method in ("post", "put", "patch", "delete")}
    assert changing == set(ROUTE_ACTIONS) | set(ROUTES_ELSEWHERE), (
        changing ^ (set(ROUTE_ACTIONS) | set(ROUTES_ELSEWHERE)))

    apply_models(demo, """
models:
  - name: careful-model
    max_output_tokens: 1024
    vendor: lumen
    consent_required: true
    scenes: [chat]
    backends:
      - {id: mock, provider: mock}
""", tmp_path)
    mt = {"Authorization": f"Bearer {demo.credentials['management_token']}"}
    admin = httpx.Client(base_url=demo.http, timeout=30)
    walked = {}

    def call(client, method, template, actor, path=None, **kwargs):
        before = set(all_entries(demo.data_dir))
        response = client.request(method, path or template, **kwargs)
        assert response.status_code in (200, 201, 204), (method, template, response.text)
        added = [entry for entry in all_entries(demo.data_dir) if entry not in before]
        action = ROUTE_ACTIONS[(method, template)]
        assert [(entry[2], entry[3]) for entry in added] == [(actor, action)], (method, template, added)
        assert added[0][4] == response.headers["x-request-id"], (method, template, added)
        walked[(method, template)] = action
        return response.json() if response.content else None

    session = call(admin, "POST", "/api/session", "person",
                   json={"email": demo.credentials["email"], "password": demo.credentials["password"]})
    admin.headers["X-CSRF-Token"] = session["csrf_token"]
    user = call(admin, "POST", "/api/users", "person", json={"email": "walker@demo.test"})["id"]
    call(admin, "PATCH", "/api/users/{userId}", "person", f"/api/users/{user}", json={"display_name": "Walker"})
    call(admin, "POST", "/api/groups", "person", json={"name": "Walkers"})
    token = call(admin, "POST", "/api/users/{userId}/invite", "person", f"/api/users/{user}/invite")["token"]
    walker = httpx.Client(base_url=demo.http, timeout=30)
    call(walker, "POST", "/api/invites/{token}", "person", f"/api/invites/{token}", json={"password": "a walk in the park"})
    key = call(admin, "POST", "/api/me/keys", "person", json={"name": "walk"})["id"]
    call(admin, "PATCH", "/api/me/keys/{keyId}", "person", f"/api/me/keys/{key}", json={"name": "walk-2"})
    call(admin, "DELETE", "/api/me/keys/{keyId}", "person", f"/api/me/keys/{key}")
    client = call(admin, "POST", "/api/clients", "person", json={"name": "walk-client"})["id"]
    call(admin, "PATCH", "/api/clients/{clientId}", "person", f"/api/clients/{client}", json={"description": "walks"})
    call(admin, "POST", "/api/clients/{clientId}/managers/{userId}", "person", f"/api/clients/{client}/managers/{user}")
    call(admin, "DELETE", "/api/clients/{clientId}/managers/{userId}", "person", f"/api/clients/{client}/managers/{user}")
    client_key = call(admin, "POST", "/api/clients/{clientId}/keys", "person", f"/api/clients/{client}/keys",
                      json={"name": "ci"})["id"]
    call(admin, "PATCH", "/api/clients/{clientId}/keys/{keyId}", "person", f"/api/clients/{client}/keys/{client_key}",
         json={"name": "ci-2"})
    call(admin, "DELETE", "/api/clients/{clientId}/keys/{keyId}", "person", f"/api/clients/{client}/keys/{client_key}")
    call(admin, "PUT", "/api/users/{userId}/pool", "person", f"/api/users/{user}/pool", json={"mode": "balance", "limit": 10})
    call(admin, "POST", "/api/users/{userId}/grants", "person", f"/api/users/{user}/grants",
         json={"coins": 5, "reason": "walk", "idempotency_key": "walk-1"})
    call(admin, "PUT", "/api/clients/{clientId}/pool", "person", f"/api/clients/{client}/pool", json={"mode": "balance"})
    call(admin, "POST", "/api/clients/{clientId}/grants", "person", f"/api/clients/{client}/grants",
         json={"coins": 3, "reason": "walk", "idempotency_key": "walk-2"})
    call(admin, "PUT", "/api/users/{userId}/pool/alerts", "person", f"/api/users/{user}/pool/alerts",
         json={"thresholds_percent": [50]})
    call(admin, "PUT", "/api/clients/{clientId}/pool/alerts", "person", f"/api/clients/{client}/pool/alerts",
         json={"thresholds_percent": [80]})
    hook = call(admin, "POST", "/api/alerts/endpoints", "person", json={"url": "https://hooks.example.com/walk"})["id"]
    call(admin, "DELETE", "/api/alerts/endpoints/{endpointId}", "person", f"/api/alerts/endpoints/{hook}")
    deadline = time.time() + 10  # the model arrives at the gateway through the registry's watch
    while admin.get("/api/models/careful-model").status_code == 404:
        assert time.time() < deadline
        time.sleep(0.05)
    call(admin, "POST", "/api/me/models/{model}/consent", "person", "/api/me/models/careful-model/consent")
    call(admin, "POST", "/api/clients/{clientId}/models/{model}/consent", "person",
         f"/api/clients/{client}/models/careful-model/consent")
    made = call(admin, "POST", "/v1/management/api-keys", "management_token", headers=mt, json={"name": "walk-api"})
    call(admin, "PATCH", "/v1/management/api-keys/{keyId}", "management_token", f"/v1/management/api-keys/{made['id']}",
         headers=mt, json={"name": "walk-api-2"})
    call(admin, "PUT", "/v1/management/pools/{ownerType}/{ownerId}/alerts", "management_token",
         f"/v1/management/pools/user/{user}/alerts", headers=mt, json={"thresholds_percent": [90]})
    hook = call(admin, "POST", "/v1/management/alerts/endpoints", "management_token", headers=mt,
                json={"url": "https://hooks.example.com/walk-2"})["id"]
    call(admin, "DELETE", "/v1/management/alerts/endpoints/{endpointId}", "management_token",
         f"/v1/management/alerts/endpoints/{hook}", headers=mt)
    call(admin, "PUT", "/api/captures/{ownerType}/{ownerId}", "person", f"/api/captures/client/{client}",
         json={"enabled": True, "retention_days": 5})
    call(admin, "PUT", "/v1/management/captures/{ownerType}/{ownerId}", "management_token",
         f"/v1/management/captures/client/{client}", headers=mt, json={"enabled": True, "retention_days": 3})
    assert set(walked) == set(ROUTE_ACTIONS)

    # The management API lists them, newest first, filtered.
    listed = admin.get("/v1/management/audit-log", headers=mt, params={"action": "key.", "limit": 3}).json()
    assert [entry["action"] for entry in listed["data"]] == ["key.update", "key.create", "key.revoke"]
    assert listed["total"] >= 8 and listed["has_more"] and listed["page"] == 1
    assert listed["data"][0]["actor"]["type"] == "management_token" and listed["data"][0]["target"]["id"] == made["id"]
    assert listed["data"][0]["before"]["name"] == "walk-api" and listed["data"][0]["after"]["name"] == "walk-api-2"
    following = admin.get("/v1/management/audit-log", headers=mt, params={"action": "key.", "limit": 3, "page": 2}).json()
    assert not {e["hash"] for e in following["data"]} & {e["hash"] for e in listed["data"]}
    by_target = admin.get("/v1/management/audit-log", headers=mt, params={"targetId": user}).json()["data"]
    assert {e["action"] for e in by_target} >= {"user.create", "user.update", "invite.create", "invite.accept",
                                               "pool.configure", "pool.grant"}
    refused = admin.get("/v1/management/audit-log", headers=mt, params={"startDate": "2026-02-30x"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "startDate"
    assert admin.get("/v1/management/audit-log", headers=mt, params={"page": 101, "limit": 100}).json()["error"]["code"] \
        == "invalid_page"
    status, report = verify(demo.data_dir)
    assert status == 0 and all(chain["intact"] for chain in report["services"].values()), report


def test_a_removed_accounts_entry_is_found(tmp_path):
    """The accounts service chains its entries as the others do: the organisation's bootstrap
    removed from its table breaks `audit verify` there, and only there."""
    for server in start_server(tmp_path, "--demo"):
        wait_ready(server)
        status, report = verify(server.data_dir)
        assert status == 0 and report["services"]["accounts"]["entries"] >= 2, report
        database = sqlite3.connect(os.path.join(server.data_dir, "accounts.sqlite"))
        try:
            database.execute("DELETE FROM audit_log WHERE sequence = 1")
            database.commit()
        finally:
            database.close()
        status, report = verify(server.data_dir)
        assert status == 1 and report["services"]["accounts"]["broken_sequence"] == 1, report
        assert report["services"]["keys"]["intact"] and report["services"]["ledger"]["intact"], report
