"""The official OpenAI Python SDK against `lumen serve` routing to a mock OpenAI-compatible
upstream that the test starts: failover from a dead backend, admission errors with their
statuses and codes, and usage lines whose cost is the upstream's usage times the configured
prices, to the micro-dollar."""

import json
import socket
import subprocess
import time
from decimal import ROUND_HALF_UP, Decimal

import grpc
import httpx
import openai
import pytest
from openai import OpenAI

from conftest import lumen_binary, start_server, wait_ready
from mock_upstream import USAGE, MockUpstream
from test_management_http import call

PRICES = {"input": Decimal("0.15"), "cached_input": Decimal("0.075"), "output": Decimal("0.60")}
UPSTREAM_SECRET = "upstream-secret-for-tests"


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expected_cost_micros(input_tokens, cached, output):
    """Tokens × USD per million tokens = micro-USD, rounded once, half up."""
    micros = input_tokens * PRICES["input"] + cached * PRICES["cached_input"] + output * PRICES["output"]
    return int(micros.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@pytest.fixture
def upstream():
    with MockUpstream() as server:
        yield server


@pytest.fixture
def gateway(tmp_path, upstream):
    dead = f"http://127.0.0.1:{closed_port()}/v1"
    prices = "{input: 0.15, cached_input: 0.075, output: 0.60}"
    config = tmp_path / "lumen.yaml"
    config.write_text(f"""
models:
  - name: gpt-test
    vendor: OpenAI
    scenes: [chat]
    prices: {prices}
    max_output_tokens: 1024
    backends:
      - {{id: dead, provider: openai, base_url: "{dead}", weight: 1000, timeout_ms: 2000}}
      - {{id: live, provider: openai, base_url: "{upstream.base_url}", credential_env: LUMEN_TEST_UPSTREAM_KEY,
          upstream_model: upstream-model-v1, weight: 1, timeout_ms: 5000, byok: true}}
  - name: embed-test
    max_output_tokens: 1024
    vendor: OpenAI
    scenes: [embedding]
    prices: {{input: 0.02}}
    backends:
      - {{id: live, provider: openai, base_url: "{upstream.base_url}", credential_env: LUMEN_TEST_UPSTREAM_KEY}}
  - name: image-test
    max_output_tokens: 1024
    vendor: OpenAI
    scenes: [image, chat]
    prices: {{per_request: 0.04}}
    backends:
      - {{id: live, provider: openai, base_url: "{upstream.base_url}", upstream_model: dall-e-up}}
  - name: careful-model
    max_output_tokens: 1024
    vendor: Lumen
    consent_required: true
    backends: [{{id: live, provider: openai, base_url: "{upstream.base_url}"}}]
  - name: off-model
    max_output_tokens: 1024
    vendor: Lumen
    enabled: false
    backends: [{{id: live, provider: openai, base_url: "{upstream.base_url}"}}]
  - name: doomed-model
    max_output_tokens: 1024
    vendor: Lumen
    prices: {prices}
    backends: [{{id: dead, provider: openai, base_url: "{dead}"}}]
""")
    for server in start_server(tmp_path, "--config", str(config), env={"LUMEN_TEST_UPSTREAM_KEY": UPSTREAM_SECRET}):
        wait_ready(server)
        tenant = server.bootstrap("Acme", "admin@acme.test")
        server.token = tenant["management_token"]
        server.keys = {}
        for name, body in {
            "open": {"name": "open"},
            "restricted": {"name": "restricted", "models": ["embed-test"]},
            "poor": {"name": "poor", "limitAmount": 0.0001},
            "hasty": {"name": "hasty", "rpmLimit": 1},
        }.items():
            status, created = call(server, "POST", "/v1/management/api-keys", server.token, body)
            assert status == 200, created
            server.keys[name] = created
        # The gateway learns of new keys through its watch; wait until the last one works.
        deadline = time.time() + 10
        while call(server, "GET", "/v1/models", server.keys["poor"]["key"])[0] != 200:
            assert time.time() < deadline
            time.sleep(0.02)
        yield server


def sdk(server, key="open", **kwargs):
    return OpenAI(api_key=server.keys[key]["key"], base_url=server.http + "/v1", max_retries=0, **kwargs)


def usage_lines(server, lumen_api, key="open"):
    pb, rpc = lumen_api.ledger_pb2, lumen_api.ledger_pb2_grpc
    with grpc.insecure_channel(server.grpc_target) as channel:
        response = rpc.LedgerServiceStub(channel).ListUsage(
            pb.ListUsageRequest(filter=pb.UsageFilter(key_id=server.keys[key]["id"])),
            metadata=(("authorization", f"Bearer {server.token}"),))
    return list(response.lines)


def test_the_ledger_invariant_holds_after_settled_failed_and_refused_requests(gateway, upstream):
    client = sdk(gateway)
    for _ in range(3):
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="doomed-model", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.APIStatusError):
        sdk(gateway, key="poor").chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    report = ledger_check(gateway)
    assert report["ok"] and report["violations"] == [] and report["open_holds"] == 0 and report["pools"] > 0


def test_chat_fails_over_from_a_dead_backend_and_bills_the_upstream_usage(gateway, upstream, lumen_api):
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": "Hello"}], max_tokens=50)
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from the upstream."
    # The answer names the model the caller asked for; the upstream's name stays in the log.
    assert completion.model == "gpt-test"
    assert completion.usage.prompt_tokens == USAGE["prompt_tokens"]

    (path, headers, body), = upstream.received("/chat/completions")
    assert headers["authorization"] == f"Bearer {UPSTREAM_SECRET}"
    assert body["model"] == "upstream-model-v1"
    assert body["max_tokens"] == 50

    (line,) = usage_lines(gateway, lumen_api)
    pb = lumen_api.ledger_pb2
    assert line.request_id == raw.headers["x-request-id"]
    assert line.status == pb.USAGE_STATUS_SETTLED and line.billing_transaction_id.startswith("btx_")
    assert (line.input_tokens, line.cached_input_tokens, line.output_tokens) == (1034, 200, 567)
    assert line.cost_micros == expected_cost_micros(1034, 200, 567) == 510
    assert line.logical_model == "gpt-test" and line.model_vendor == "OpenAI"
    assert not line.estimated

    # The same line through the management API, cost in USD to the micro-dollar.
    status, page = call(gateway, "GET", f"/v1/management/api-keys/{gateway.keys['open']['id']}/usage?scene=chat",
                        gateway.token)
    assert status == 200 and page["total"] == 1 and page["has_more"] is False
    (item,) = page["data"]
    assert item["request_id"] == line.request_id and item["billing_transaction_id"] == line.billing_transaction_id
    assert Decimal(str(item["cost"])) == Decimal("0.000510")
    assert (item["input_tokens"], item["cached_input_tokens"], item["output_tokens"]) == (1034, 200, 567)
    assert item["status"] == "settled" and item["access_channel"] == "platform" and item["scene"] == "chat"


def test_streaming_asks_the_upstream_for_usage_and_hides_it_unless_asked(gateway, upstream, lumen_api):
    stream = sdk(gateway).chat.completions.create(
        model="gpt-test", stream=True, messages=[{"role": "user", "content": "Stream"}])
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the upstream."
    assert chunks and all(c.model == "gpt-test" for c in chunks)
    assert all(c.usage is None for c in chunks)
    (_, _, body), = upstream.received("/chat/completions")
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}

    asked = sdk(gateway).chat.completions.create(
        model="gpt-test", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Stream"}])
    usage = [c.usage for c in asked if c.usage]
    assert len(usage) == 1 and usage[0].completion_tokens == 567

    lines = usage_lines(gateway, lumen_api)
    assert len(lines) == 2
    assert all(l.cost_micros == 510 and not l.estimated for l in lines)


def test_an_upstream_without_usage_is_counted_and_marked_estimated(gateway, upstream, lumen_api):
    upstream.mode = "no_usage"
    sdk(gateway).chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "Hello there"}])
    list(sdk(gateway).chat.completions.create(
        model="gpt-test", stream=True, messages=[{"role": "user", "content": "Hello there"}]))
    lines = usage_lines(gateway, lumen_api)
    assert len(lines) == 2
    for line in lines:
        assert line.estimated
        # About four characters a token: "Hello there" is 3, "Hello from the upstream." 6.
        assert (line.input_tokens, line.output_tokens) == (3, 6)
        assert line.cost_micros == expected_cost_micros(3, 0, 6)


def test_a_caller_who_leaves_mid_stream_pays_for_what_was_produced(gateway, upstream, lumen_api):
    upstream.mode = "slow"  # 1000 words, 20 ms apart
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", gateway.http + "/v1/chat/completions",
                           headers={"authorization": "Bearer " + gateway.keys["open"]["key"]},
                           json={"model": "gpt-test", "stream": True, "max_tokens": 4000,
                                 "messages": [{"role": "user", "content": "Talk"}]}) as response:
            assert response.status_code == 200
            events = 0
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events += 1
                if events == 10:
                    break
    deadline = time.time() + 15
    while True:
        lines = usage_lines(gateway, lumen_api)
        if lines and lines[0].status == lumen_api.ledger_pb2.USAGE_STATUS_SETTLED:
            break
        assert time.time() < deadline, "the interrupted stream was not settled"
        time.sleep(0.1)
    (line,) = lines
    assert line.estimated
    reservation = expected_cost_micros(1, 0, 4000)
    assert 0 < line.output_tokens < 1000
    assert 0 < line.cost_micros < reservation
    assert ledger_check(gateway)["ok"]


def stream_until_stopped(server, secret, stop):
    """Streams a slow answer with `secret`, calls `stop()` after ten events, and returns the
    events that came after it and how long the stream took to end."""
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", server.http + "/v1/chat/completions", headers={"authorization": "Bearer " + secret},
                           json={"model": "gpt-test", "stream": True, "max_tokens": 4000,
                                 "messages": [{"role": "user", "content": "Talk"}]}) as response:
            assert response.status_code == 200
            events, after, stopped_at = 0, [], None
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                events += 1
                if stopped_at is not None:
                    after.append(line[6:])
                if events == 10:
                    stop()
                    stopped_at = time.time()
            return after, time.time() - stopped_at


def settled_line(server, lumen_api, key):
    deadline = time.time() + 15
    while True:
        lines = usage_lines(server, lumen_api, key)
        if lines and lines[0].status == lumen_api.ledger_pb2.USAGE_STATUS_SETTLED:
            return lines[0]
        assert time.time() < deadline, "the stopped stream was not settled"
        time.sleep(0.1)


def test_revoking_a_key_ends_its_open_streams_and_charges_what_was_produced(gateway, upstream, lumen_api):
    upstream.mode = "slow"  # 1000 words, 20 ms apart: about 20 s
    status, created = call(gateway, "POST", "/v1/management/api-keys", gateway.token, {"name": "doomed"})
    assert status == 200
    gateway.keys["doomed"] = created
    deadline = time.time() + 10
    while call(gateway, "GET", "/v1/models", created["key"])[0] != 200:
        assert time.time() < deadline
        time.sleep(0.02)

    def revoke():
        assert call(gateway, "PATCH", f"/v1/management/api-keys/{created['id']}", gateway.token, {"status": "revoked"})[0] == 200

    after, took = stream_until_stopped(gateway, created["key"], revoke)
    assert took < 2.5, f"the stream went on {took:.1f} s after the revocation"
    final = json.loads(after[-1])
    assert final["error"]["code"] == "key_revoked", after[-3:]
    assert "[DONE]" not in after
    line = settled_line(gateway, lumen_api, "doomed")
    assert 0 < line.output_tokens < 1000 and line.cost_micros > 0
    assert ledger_check(gateway)["ok"]


def test_deactivating_a_client_ends_the_streams_of_its_keys(gateway, upstream, lumen_api):
    from lumen.common.v1 import common_pb2
    upstream.mode = "slow"
    token = (("authorization", f"Bearer {gateway.token}"),)
    accounts, keys = lumen_api.accounts_pb2, lumen_api.keys_pb2
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        client = lumen_api.accounts_pb2_grpc.AccountsServiceStub(channel).CreateClient(
            accounts.CreateClientRequest(name="batch worker"), metadata=token).client
        made = lumen_api.keys_pb2_grpc.KeysServiceStub(channel).CreateKey(
            keys.CreateKeyRequest(name="worker", owner=common_pb2.PrincipalRef(
                type=common_pb2.PRINCIPAL_TYPE_CLIENT, id=client.id)), metadata=token)
    gateway.keys["worker"] = {"id": made.key.id, "key": made.secret}
    deadline = time.time() + 10
    while call(gateway, "GET", "/v1/models", made.secret)[0] != 200:
        assert time.time() < deadline
        time.sleep(0.02)

    def deactivate():
        with grpc.insecure_channel(gateway.grpc_target) as channel:
            lumen_api.accounts_pb2_grpc.AccountsServiceStub(channel).UpdateClient(
                accounts.UpdateClientRequest(client_id=client.id, active=False), metadata=token)

    after, took = stream_until_stopped(gateway, made.secret, deactivate)
    assert took < 2.5, f"the stream went on {took:.1f} s after the deactivation"
    assert json.loads(after[-1])["error"]["code"] == "owner_inactive", after[-3:]
    line = settled_line(gateway, lumen_api, "worker")
    assert 0 < line.output_tokens < 1000 and line.cost_micros > 0
    assert ledger_check(gateway)["ok"]


def ledger_check(server):
    """`lumen admin ledger check` on the running server's data directory."""
    result = subprocess.run([lumen_binary(), "admin", "ledger", "check", "--data-dir", server.data_dir],
                            capture_output=True, text=True, timeout=60)
    report = json.loads(result.stdout)
    assert result.returncode == (0 if report["ok"] else 1), result.stderr
    return report


def test_completions_embeddings_and_responses(gateway, upstream, lumen_api):
    text = sdk(gateway).completions.create(model="gpt-test", prompt="Say hi")
    assert text.choices[0].text == "Hello from the upstream."
    vectors = sdk(gateway).embeddings.create(model="embed-test", input=["a", "b"], encoding_format="float")
    assert [len(d.embedding) for d in vectors.data] == [3, 3]
    response = sdk(gateway).responses.create(model="gpt-test", input="Hi")
    assert response.output_text == "Hello from the upstream."
    assert (text.model, vectors.model, response.model) == ("gpt-test", "embed-test", "gpt-test")
    assert "upstream_model=upstream-model-v1" in gateway.log()

    lines = usage_lines(gateway, lumen_api)
    assert len(lines) == 3
    (embedding,) = [l for l in lines if l.logical_model == "embed-test"]
    assert embedding.input_tokens == 1234 and embedding.cost_micros == 25  # 1234 × $0.02/M = 24.68
    chat_lines = [l for l in lines if l.logical_model == "gpt-test"]
    assert len(chat_lines) == 2 and all(l.cost_micros == 510 for l in chat_lines)


def test_pass_through_paths_are_billed_per_request(gateway, upstream, lumen_api):
    image = sdk(gateway).images.generate(model="image-test", prompt="a lighthouse at dusk")
    assert image.data[0].url == "https://images.example/1.png"
    (_, _, body), = upstream.received("/images/generations")
    assert body == {"model": "dall-e-up", "prompt": "a lighthouse at dusk"}
    moderation = sdk(gateway).moderations.create(model="image-test", input="hello")
    assert moderation.results[0].flagged is False

    from lumen.common.v1 import common_pb2
    lines = usage_lines(gateway, lumen_api)
    assert sorted(l.scene for l in lines) == sorted([common_pb2.SCENE_IMAGE, common_pb2.SCENE_CHAT])
    assert all(l.cost_micros == 40_000 and not l.estimated for l in lines)


def test_byok_forwards_the_callers_key_and_charges_nothing(gateway, upstream, lumen_api):
    client = sdk(gateway, "poor", default_headers={"X-Upstream-Authorization": "Bearer sk-my-own-upstream"})
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "mine"}])
    (_, headers, _), = upstream.received("/chat/completions")
    assert headers["authorization"] == "Bearer sk-my-own-upstream"
    (line,) = usage_lines(gateway, lumen_api, "poor")
    from lumen.common.v1 import common_pb2
    assert line.access_channel == common_pb2.ACCESS_CHANNEL_BYOK
    assert line.cost_micros == 0 and line.output_tokens == 567


def test_byok_is_refused_where_no_backend_takes_it_and_the_key_never_forwarded(gateway, upstream, lumen_api):
    # image-test's backend needs no credential and is not configured for callers' keys: the
    # header would have skipped every budget and been forwarded as is.
    client = sdk(gateway, "poor", default_headers={"X-Upstream-Authorization": "Bearer junk"})
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="image-test", messages=[{"role": "user", "content": "free?"}])
    assert refused.value.code == "byok_not_allowed" and refused.value.param == "X-Upstream-Authorization"
    assert upstream.received("/chat/completions") == []
    assert usage_lines(gateway, lumen_api, "poor") == []


def test_models_retrieve_answers_only_what_the_key_may_use(gateway, upstream):
    assert sdk(gateway, "restricted").models.retrieve("embed-test").id == "embed-test"
    for key, name in [("restricted", "gpt-test"), ("open", "off-model"), ("open", "careful-model"), ("open", "nope/with-slash")]:
        with pytest.raises(openai.NotFoundError) as refused:
            sdk(gateway, key).models.retrieve(name)
        assert refused.value.code == "model_not_found", (key, name)
    # The same answer whether the model exists or not: nothing to probe.
    assert sdk(gateway).models.retrieve("gpt-test").owned_by == "OpenAI"


def test_admission_errors_reach_the_sdk_with_status_and_code(gateway, upstream):
    def fails(exception, status, code, model="gpt-test", key="open"):
        with pytest.raises(exception) as caught:
            sdk(gateway, key).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert caught.value.status_code == status
        assert caught.value.code == code, caught.value
        return caught.value

    with pytest.raises(openai.AuthenticationError) as unknown:
        OpenAI(api_key="sk-unknown", base_url=gateway.http + "/v1", max_retries=0).chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.status_code == 401
    fails(openai.PermissionDeniedError, 403, "model_not_allowed", key="restricted")
    fails(openai.PermissionDeniedError, 403, "consent_required", model="careful-model")
    fails(openai.NotFoundError, 404, "model_not_found", model="gpt-nonexistent")
    fails(openai.InternalServerError, 503, "model_unavailable", model="off-model")
    fails(openai.APIStatusError, 402, "insufficient_quota", key="poor")
    assert upstream.received("/chat/completions") == []

    sdk(gateway, "hasty").chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    limited = fails(openai.RateLimitError, 429, "rate_limit_exceeded", key="hasty")
    assert 1 <= int(limited.response.headers["retry-after"]) <= 60
    assert len(upstream.received("/chat/completions")) == 1


def test_a_dead_backend_opens_its_circuit_and_the_model_goes_down(gateway, upstream):
    for _ in range(3):
        with pytest.raises(openai.APIStatusError) as failed:
            sdk(gateway).chat.completions.create(model="doomed-model", messages=[{"role": "user", "content": "hi"}])
        assert (failed.value.status_code, failed.value.code) == (502, "upstream_unavailable")
        # A short, stable answer: no backend address or connection error reaches the caller;
        # the request id ties it to the log line that has them.
        message = failed.value.response.json()["error"]["message"]
        request_id = failed.value.response.headers["x-request-id"]
        assert message == f"no upstream of doomed-model answered; try again later (request {request_id})", message
    assert "no upstream answered" in gateway.log() and "errno" in gateway.log()
    # The operator's listing says what went wrong last, under a request id the log has.
    operator = subprocess.run([lumen_binary(), "admin", "operator-token", "create", "--data-dir", gateway.data_dir],
                              capture_output=True, text=True, timeout=60)
    assert operator.returncode == 0, operator.stderr
    token = json.loads(operator.stdout)["operator_token"]
    deadline = time.time() + 10
    while True:
        listed = subprocess.run([lumen_binary(), "admin", "models", "list", "--server", gateway.grpc_target, "--token", token],
                                capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        (backend,) = [m for m in json.loads(listed.stdout)["data"] if m["name"] == "doomed-model"][0]["backends"]
        if backend["last_failure"] or time.time() > deadline:
            break
        time.sleep(0.2)
    assert backend["last_failure"].startswith("failed after") and "(request req_" in backend["last_failure"], backend
    assert backend["last_failure"].split("(request ")[-1].rstrip(")") in gateway.log()
    assert backend["last_failure_at"].endswith("Z")
    deadline = time.time() + 10
    while True:
        with pytest.raises(openai.APIStatusError) as refused:
            sdk(gateway).chat.completions.create(model="doomed-model", messages=[{"role": "user", "content": "hi"}])
        if refused.value.status_code == 503:
            assert refused.value.code == "model_unavailable"
            break
        assert time.time() < deadline, "the circuit did not open"
        time.sleep(0.1)


def model_status(server, lumen_api, name):
    pb, rpc = lumen_api.registry_pb2, lumen_api.registry_pb2_grpc
    with grpc.insecure_channel(server.grpc_target) as channel:
        model = rpc.ModelRegistryServiceStub(channel).GetModel(
            pb.GetModelRequest(name=name), metadata=(("authorization", f"Bearer {server.token}"),)).model
    return pb.ModelStatus.Name(model.status), [pb.BackendHealth.Name(b.health) for b in model.backends]


def test_active_probes_take_a_failing_backend_out_and_bring_it_back_without_any_request(tmp_path, upstream, lumen_api):
    config = tmp_path / "lumen.yaml"
    config.write_text(f"""
probe_interval: 1
models:
  - name: probed-model
    max_output_tokens: 1024
    vendor: Lumen
    backends: [{{id: live, provider: openai, base_url: "{upstream.base_url}", credential_env: LUMEN_TEST_UPSTREAM_KEY}}]
""")
    for server in start_server(tmp_path, "--config", str(config), env={"LUMEN_TEST_UPSTREAM_KEY": UPSTREAM_SECRET}):
        wait_ready(server)
        server.token = server.bootstrap("Acme", "admin@acme.test")["management_token"]
        deadline = time.time() + 15
        while model_status(server, lumen_api, "probed-model") != ("MODEL_STATUS_OK", ["BACKEND_HEALTH_HEALTHY"]):
            assert time.time() < deadline, "the first probes did not mark the backend healthy"
            time.sleep(0.2)
        probes = upstream.received("/models")
        assert probes and probes[0][1]["authorization"] == f"Bearer {UPSTREAM_SECRET}"

        upstream.mode = "fail"  # three failed probes open the circuit: the model is down
        deadline = time.time() + 15
        while model_status(server, lumen_api, "probed-model")[0] != "MODEL_STATUS_DOWN":
            assert time.time() < deadline, "failing probes did not take the backend out"
            time.sleep(0.2)

        upstream.mode = "ok"  # one good probe closes it, long before the 30 s cooldown
        deadline = time.time() + 10
        while model_status(server, lumen_api, "probed-model")[0] != "MODEL_STATUS_OK":
            assert time.time() < deadline, "a good probe did not bring the backend back"
            time.sleep(0.2)
        assert not upstream.received("/chat/completions")


def test_an_unset_credential_env_is_warned_about_and_shown_on_the_backend(tmp_path, upstream):
    config = tmp_path / "lumen.yaml"
    config.write_text(f"""
models:
  - name: keyless
    max_output_tokens: 1024
    vendor: OpenAI
    backends:
      - {{id: forgotten, provider: openai, base_url: "{upstream.base_url}", credential_env: LUMEN_TEST_NEVER_SET}}
      - {{id: fine, provider: openai, base_url: "{upstream.base_url}", credential_env: LUMEN_TEST_UPSTREAM_KEY}}
""")
    for server in start_server(tmp_path, "--config", str(config), env={"LUMEN_TEST_UPSTREAM_KEY": UPSTREAM_SECRET}):
        wait_ready(server)
        operator = subprocess.run(
            [lumen_binary(), "admin", "operator-token", "create", "--data-dir", server.data_dir],
            capture_output=True, text=True, timeout=60)
        assert operator.returncode == 0, operator.stderr
        token = json.loads(operator.stdout)["operator_token"]
        deadline = time.time() + 15
        while True:
            listed = subprocess.run(
                [lumen_binary(), "admin", "models", "list", "--server", server.grpc_target, "--token", token],
                capture_output=True, text=True, timeout=60)
            assert listed.returncode == 0, listed.stderr
            backends = {b["id"]: b for m in json.loads(listed.stdout)["data"] for b in m.get("backends", [])}
            if backends["forgotten"].get("problem"):
                break
            assert time.time() < deadline, listed.stdout
            time.sleep(0.2)
        assert backends["forgotten"]["problem"] == "credential_env LUMEN_TEST_NEVER_SET is not set in the gateway's environment"
        assert not backends["fine"].get("problem")
        log = server.log()
        # Warned once, at start, naming the variable and the backend.
        (warning,) = [line for line in log.splitlines()
                      if " warning " in line and "credential_env LUMEN_TEST_NEVER_SET is not set" in line]
        assert "backend=forgotten" in warning and "model=keyless" in warning
        assert UPSTREAM_SECRET not in log


def test_a_burst_past_the_upstream_connection_cap_waits_its_turn_then_gets_503_upstream_busy(tmp_path, upstream):
    """--upstream-max-connections 1: one stream at a time reaches the upstream, one more request
    waits for its connection, a third is refused at once with 503 upstream_busy and Retry-After,
    its hold released (a failed line in the request log, nothing charged)."""
    import asyncio
    import httpx
    config = tmp_path / "lumen.yaml"
    config.write_text(f"""
models:
  - name: capped-model
    max_output_tokens: 1024
    vendor: Lumen
    prices: {{input: 0.15, output: 0.60}}
    backends: [{{id: live, provider: openai, base_url: "{upstream.base_url}"}}]
""")
    for server in start_server(tmp_path, "--config", str(config), "--upstream-max-connections", "1"):
        wait_ready(server)
        token = server.bootstrap("Acme", "admin@acme.test")["management_token"]
        status, key = call(server, "POST", "/v1/management/api-keys", token, {"name": "burst"})
        assert status == 200, key
        deadline = time.time() + 10
        while call(server, "GET", "/v1/models", key["key"])[0] != 200:
            assert time.time() < deadline
            time.sleep(0.02)
        upstream.mode, upstream.slow_repeat = "slow", 20  # 100 chunks, 20 ms apart: two seconds a stream

        async def burst():
            async with httpx.AsyncClient(base_url=server.http, timeout=60) as client:
                async def one(index):
                    await asyncio.sleep(0.3 * (index > 0))  # the first holds the connection before the others arrive
                    async with client.stream(
                            "POST", "/v1/chat/completions", headers={"Authorization": f"Bearer {key['key']}"},
                            json={"model": "capped-model", "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as r:
                        body = (await r.aread()).decode()
                        return r.status_code, r.headers.get("retry-after"), body
                return await asyncio.gather(*(one(index) for index in range(3)))

        started = time.time()
        results = asyncio.run(burst())
        statuses = sorted(status for status, _, _ in results)
        assert statuses == [200, 200, 503], results
        refused = next(result for result in results if result[0] == 503)
        assert refused[1] == "1" and '"upstream_busy"' in refused[2]
        assert all("[DONE]" in body for status, _, body in results if status == 200)
        assert time.time() - started >= 3.5  # the second stream waited for the first's connection
        assert len(upstream.received("/chat/completions")) == 2
        status, log = call(server, "GET", "/v1/management/requests?status=failed", token)
        assert status == 200 and [line["error_code"] for line in log["data"]] == ["upstream_busy"], log
        assert log["data"][0]["http_status"] == 503 and log["data"][0]["cost"] == 0
