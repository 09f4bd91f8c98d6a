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
