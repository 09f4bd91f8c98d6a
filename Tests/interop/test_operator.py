"""Models, backends and prices belong to the deployment's operator: two organisations on one
`lumen serve`, one of which tries to route the other's prompts to a listener of its own over
the gRPC port, and an operator token made on the machine that may change them through
`lumen admin models`."""

import json
import os
import subprocess

import grpc
import pytest
from openai import OpenAI

from conftest import lumen_binary, start_server, wait_ready
from mock_upstream import MockUpstream
from test_keys_grpc import error_info, metadata
from test_management_http import call


@pytest.fixture
def upstreams():
    with MockUpstream() as own, MockUpstream() as intruder:
        yield own, intruder


@pytest.fixture
def gateway(tmp_path, upstreams):
    own, _ = upstreams
    config = tmp_path / "lumen.yaml"
    config.write_text(f"""
models:
  - name: shared-model
    max_output_tokens: 1024
    vendor: OpenAI
    scenes: [chat]
    prices: {{input: 0.15, output: 0.60}}
    backends:
      - {{id: primary, provider: openai, base_url: "{own.base_url}", weight: 1, timeout_ms: 5000}}
""")
    yield from start_server(tmp_path, "--config", str(config))


def admin(server, *args, env=None):
    return subprocess.run(
        [lumen_binary(), "admin", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, "LUMEN_DATA_DIR": server.data_dir, "LUMEN_GRPC_ADDRESS": server.grpc_target, **(env or {})},
    )


def chat(server, secret, text):
    client = OpenAI(api_key=secret, base_url=server.http + "/v1", max_retries=0)
    return client.chat.completions.create(model="shared-model", messages=[{"role": "user", "content": text}])


def test_an_organisation_cannot_reroute_another_organisations_prompts(gateway, upstreams, lumen_api):
    own, intruder = upstreams
    victim = gateway.bootstrap("Victim", "admin@victim.test")
    attacker = gateway.bootstrap("Attacker", "admin@attacker.test")
    wait_ready(gateway)
    status, key = call(gateway, "POST", "/v1/management/api-keys", victim["management_token"], {"name": "app"})
    assert status == 200

    pb = lumen_api.registry_pb2
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        registry = lumen_api.registry_pb2_grpc.ModelRegistryServiceStub(channel)
        hijack = pb.Backend(id="hijack", model="shared-model", provider=pb.PROVIDER_KIND_OPENAI,
                            base_url=intruder.base_url, weight=1000, timeout_ms=5000)
        attempts = [
            ("UpsertBackend", lambda md: registry.UpsertBackend(pb.UpsertBackendRequest(backend=hijack), metadata=md)),
            ("RemoveBackend", lambda md: registry.RemoveBackend(
                pb.RemoveBackendRequest(model="shared-model", backend_id="primary"), metadata=md)),
            ("UpsertModel", lambda md: registry.UpsertModel(
                pb.UpsertModelRequest(model=pb.Model(name="shared-model", vendor="Intruder", enabled=True)), metadata=md)),
        ]
        for tenant in (attacker, victim):
            for name, attempt in attempts:
                with pytest.raises(grpc.RpcError) as refused:
                    attempt(metadata(tenant["management_token"]))
                assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, name
                assert error_info(refused.value).reason == "operator_only", name
        model = registry.GetModel(pb.GetModelRequest(name="shared-model"), metadata=metadata(attacker["management_token"])).model
        assert [b.id for b in model.backends] == ["primary"]

    # Through REST, the victim's prompt still goes to the victim's backend, never the intruder's.
    answer = chat(gateway, key["key"], "a secret prompt")
    assert answer.choices[0].message.content
    assert [body["messages"][0]["content"] for _, _, body in own.requests if body] == ["a secret prompt"]
    assert intruder.requests == []


def test_the_operator_changes_models_with_a_token_made_on_the_machine(gateway, upstreams, tmp_path):
    own, other = upstreams
    tenant = gateway.bootstrap("Acme", "admin@acme.test")
    wait_ready(gateway)

    # Without an operator token, or with an organisation's, the CLI refuses.
    models = tmp_path / "models.yaml"
    models.write_text(f"""
models:
  - name: shared-model
    max_output_tokens: 1024
    vendor: OpenAI
    scenes: [chat]
    prices: {{input: 0.15, output: 0.90}}
    backends:
      - {{id: secondary, provider: openai, base_url: "{other.base_url}", weight: 5, timeout_ms: 5000}}
""")
    refused = admin(gateway, "models", "apply", "--file", str(models))
    assert refused.returncode != 0 and "LUMEN_OPERATOR_TOKEN" in refused.stderr
    refused = admin(gateway, "models", "apply", "--file", str(models), "--token", tenant["management_token"])
    assert refused.returncode != 0 and "op-" in refused.stderr

    created = admin(gateway, "operator-token", "create", "--name", "platform team")
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)
    assert token["operator_token"].startswith("op-") and token["name"] == "platform team"

    applied = admin(gateway, "models", "apply", "--file", str(models), env={"LUMEN_OPERATOR_TOKEN": token["operator_token"]})
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout) == {"backends": 1, "models": 1}
    listed = admin(gateway, "models", "list", "--token", token["operator_token"])
    assert listed.returncode == 0, listed.stderr
    # As the REST API lists things, in the YAML's names and units.
    listing = json.loads(listed.stdout)
    assert listing["object"] == "list" and listed.stdout.startswith("{\n")
    (model,) = listing["data"]
    assert model["name"] == "shared-model" and model["status"] in ("ok", "degraded", "down")
    assert sorted(b["id"] for b in model["backends"]) == ["primary", "secondary"]
    assert {b["provider"] for b in model["backends"]} == {"openai"} and model["scenes"] == ["chat"]
    assert model["prices"]["output"] == 0.9

    removed = admin(gateway, "models", "remove-backend", "--model", "shared-model", "--backend", "primary",
                    "--token", token["operator_token"])
    assert removed.returncode == 0, removed.stderr

    # An operator token is no organisation's: the management API refuses it.
    status, body = call(gateway, "GET", "/v1/management/api-keys", token["operator_token"])
    assert status == 401 and body["error"]["code"] == "invalid_management_token"

    listing = admin(gateway, "operator-token", "list")
    assert listing.returncode == 0, listing.stderr
    assert [t["id"] for t in json.loads(listing.stdout)] == [token["id"]]
    assert token["operator_token"] not in listing.stdout

    revoked = admin(gateway, "operator-token", "revoke", token["id"])
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["status"] == "revoked"
    again = admin(gateway, "models", "list", "--token", token["operator_token"])
    assert again.returncode == 1 and "key_revoked" in again.stderr
