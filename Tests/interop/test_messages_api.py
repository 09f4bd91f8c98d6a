"""The official `anthropic` Python SDK, unmodified, against Lumen's `/v1/messages` — as Claude
Code uses it: `messages.create`, `messages.stream()` with text and with a tool-use loop over
several turns, `count_tokens`, and each refusal as the SDK's exception class. Two models: one
whose backend is Claude (a mock of the Messages API built from the SDK's own types: the request
passes through), one whose backend speaks OpenAI's format (translated both ways)."""

import time

import anthropic
import pytest

from conftest import start_server, wait_ready
from mock_anthropic import MockAnthropic
from mock_anthropic import USAGE as CLAUDE_USAGE
from mock_upstream import CITIES, USAGE, MockUpstream
from test_ledger import all_lines, create_key

TOOLS = [{"name": "weather", "description": "Today's weather in a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


@pytest.fixture
def upstreams():
    with MockAnthropic() as claude, MockUpstream() as openai_like:
        openai_like.mode = "tools"
        yield claude, openai_like


@pytest.fixture
def gateway(tmp_path, upstreams):
    claude, openai_like = upstreams
    config = tmp_path / "lumen.yaml"
    config.write_text(f"""
models:
  - name: claude
    vendor: anthropic
    scenes: [chat]
    prices: {{input: 3, cached_input: 0.30, output: 15}}
    max_output_tokens: 4096
    backends:
      - {{id: anthropic, provider: anthropic, base_url: "{claude.base_url}", credential_env: LUMEN_TEST_ANTHROPIC_KEY,
          upstream_model: claude-test}}
  - name: gpt
    vendor: openai
    scenes: [chat]
    prices: {{input: 0.15, cached_input: 0.075, output: 0.60}}
    max_output_tokens: 1024
    backends:
      - {{id: openai, provider: openai, base_url: "{openai_like.base_url}", upstream_model: gpt-up}}
  - name: embeddings-only
    vendor: openai
    scenes: [embedding]
    max_output_tokens: 1
    backends:
      - {{id: openai, provider: openai, base_url: "{openai_like.base_url}"}}
""")
    for server in start_server(tmp_path, "--config", str(config), env={"LUMEN_TEST_ANTHROPIC_KEY": "sk-ant-interop"}):
        wait_ready(server)
        server.token = server.bootstrap("Acme", "admin@acme.test")["management_token"]
        server.key = create_key(server, server.token, {"name": "claude code"})
        server.poor = create_key(server, server.token, {"name": "poor", "limitAmount": 0.000001})
        yield server


def sdk(server, key=None, bearer=False):
    secret = (key or server.key)["key"]
    # Claude Code's two ways: ANTHROPIC_API_KEY (x-api-key) or ANTHROPIC_AUTH_TOKEN (Bearer).
    if bearer:
        return anthropic.Anthropic(base_url=server.http, auth_token=secret, api_key=None, max_retries=0)
    return anthropic.Anthropic(base_url=server.http, api_key=secret, max_retries=0)


@pytest.mark.parametrize("model", ["claude", "gpt"])
def test_create_and_a_tool_loop_over_several_turns(gateway, upstreams, model):
    client = sdk(gateway, bearer=model == "gpt")
    messages = [{"role": "user", "content": "Weather in Paris and Lyon?"}]
    first = client.messages.create(model=model, max_tokens=500, system="Be brief.", messages=messages, tools=TOOLS)
    assert first.model == model and first.type == "message" and first.role == "assistant"
    assert first.stop_reason == "tool_use"
    uses = [block for block in first.content if block.type == "tool_use"]
    assert [use.input for use in uses] == [{"city": city} for city in CITIES]
    for turn in range(2):
        messages.append({"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": use.id, "content": f"{18 + i}C"} for i, use in enumerate(uses)]})
        answer = client.messages.create(model=model, max_tokens=500, messages=messages, tools=TOOLS)
        assert answer.stop_reason == "end_turn"
        assert answer.content[0].type == "text" and answer.content[0].text
        messages.append({"role": "assistant", "content": answer.content[0].text})
        messages.append({"role": "user", "content": "And tomorrow?"})
        first = client.messages.create(model=model, max_tokens=500, messages=messages, tools=TOOLS)
        uses = [block for block in first.content if block.type == "tool_use"]
        assert first.stop_reason == "tool_use" and len(uses) == 2
    claude, openai_like = upstreams
    if model == "claude":
        headers, sent = claude.received()[0]
        assert headers["x-api-key"] == "sk-ant-interop" and "authorization" not in headers
        assert sent["model"] == "claude-test" and sent["system"] == "Be brief.", "passed through, the model renamed"
        assert sent["tools"] == TOOLS
    else:
        path, headers, sent = openai_like.requests[0]
        assert path.endswith("/chat/completions") and sent["model"] == "gpt-up"
        assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
        assert sent["tools"][0]["function"]["parameters"]["required"] == ["city"]
        later = openai_like.requests[1][2]["messages"]
        assert [m["role"] for m in later] == ["user", "assistant", "tool", "tool"]
        assert later[1]["tool_calls"][1]["function"]["name"] == "weather"


@pytest.mark.parametrize("model", ["claude", "gpt"])
def test_streams_in_anthropics_event_grammar(gateway, model):
    client = sdk(gateway)
    with client.messages.stream(model=model, max_tokens=300, messages=[{"role": "user", "content": "Say hello"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    with client.messages.stream(model=model, max_tokens=300, tools=TOOLS,
                                messages=[{"role": "user", "content": "Weather in Paris and Lyon?"}]) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_start" in events and "input_json" in events
    assert final.stop_reason == "tool_use"
    assert [block.input for block in final.content if block.type == "tool_use"] == [{"city": c} for c in CITIES]
    # Every block's index is its place: the SDK assembles them by index.
    assert [block.type for block in final.content].count("tool_use") == 2


def test_count_tokens_is_never_charged(gateway, upstreams):
    client = sdk(gateway)
    claude, _ = upstreams
    counted = client.messages.count_tokens(model="claude", messages=[{"role": "user", "content": "Hello"}])
    assert counted.input_tokens == claude.counted, "a Claude backend counts"
    assert claude.received("/v1/messages/count_tokens")[0][1]["model"] == "claude-test"
    ours = client.messages.count_tokens(model="gpt", messages=[{"role": "user", "content": "Hello"}])
    assert ours.input_tokens > 0, "else Lumen's bound"
    time.sleep(0.3)
    assert all_lines(gateway, gateway.token, gateway.key["id"]) == []


def test_each_refusal_is_the_sdks_exception(gateway):
    hi = [{"role": "user", "content": "Hi"}]
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=gateway.http, api_key="sk-not-a-key", max_retries=0).messages.create(
            model="claude", max_tokens=10, messages=hi)
    with pytest.raises(anthropic.NotFoundError) as unknown:
        sdk(gateway).messages.create(model="no-such-model", max_tokens=10, messages=hi)
    assert unknown.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as scene:
        sdk(gateway).messages.create(model="embeddings-only", max_tokens=10, messages=hi)
    assert scene.value.body["type"] == "error"
    with pytest.raises(anthropic.APIStatusError) as budget:
        sdk(gateway, key=gateway.poor).messages.create(model="claude", max_tokens=4000, messages=hi)
    assert budget.value.status_code == 402 and budget.value.body["error"]["type"] == "billing_error"
    with pytest.raises(anthropic.BadRequestError) as upstream:
        sdk(gateway).messages.create(model="claude", max_tokens=9000, messages=hi)
    assert "max_tokens" in upstream.value.message, "Claude's own 400 comes back as it was"


def test_usage_is_metered_from_each_backends_own_usage(gateway):
    client = sdk(gateway)
    client.messages.create(model="claude", max_tokens=100, messages=[{"role": "user", "content": "Hi"}])
    client.messages.create(model="gpt", max_tokens=100, messages=[{"role": "user", "content": "Hi"}])
    deadline = time.time() + 10
    while len(lines := all_lines(gateway, gateway.token, gateway.key["id"])) < 2:
        assert time.time() < deadline
        time.sleep(0.05)
    by_model = {line["logical_model"]: line for line in lines}
    claude = by_model["claude"]
    assert (claude["input_tokens"], claude["cached_input_tokens"], claude["cache_write_tokens"], claude["output_tokens"]) == (
        CLAUDE_USAGE["input_tokens"], CLAUDE_USAGE["cache_read_input_tokens"], CLAUDE_USAGE["cache_creation_input_tokens"],
        CLAUDE_USAGE["output_tokens"])
    gpt = by_model["gpt"]
    cached = USAGE["prompt_tokens_details"]["cached_tokens"]
    assert (gpt["input_tokens"], gpt["cached_input_tokens"], gpt["output_tokens"]) == (
        USAGE["prompt_tokens"] - cached, cached, USAGE["completion_tokens"])
    assert not claude["estimated"] and not gpt["estimated"]


def test_a_claude_code_like_session(gateway, upstreams):
    """What Claude Code sends — its version and beta headers, a bearer token, a system prompt of
    blocks — goes to Claude as it came; a stream it cancels is billed for what was produced."""
    claude, openai_like = upstreams
    client = anthropic.Anthropic(
        base_url=gateway.http, auth_token=gateway.key["key"], api_key=None, max_retries=0,
        default_headers={"anthropic-beta": "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14",
                         "x-app": "cli", "user-agent": "claude-cli/2.0.0 (external, cli)"})
    answer = client.messages.create(
        model="claude", max_tokens=200, messages=[{"role": "user", "content": "Hi"}],
        system=[{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}])
    assert answer.content[0].text
    headers, sent = claude.received()[-1]
    assert headers["anthropic-beta"] == "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"
    assert headers["anthropic-version"] == client.default_headers["anthropic-version"], "the SDK's version, forwarded"
    assert sent["system"][0]["cache_control"] == {"type": "ephemeral"}, "passed through as sent"

    # A stream cancelled after its first words: the line is settled, estimated, for what was produced.
    openai_like.mode = "slow"
    with client.messages.stream(model="gpt", max_tokens=1000, messages=[{"role": "user", "content": "Talk"}]) as stream:
        words = 0
        for _ in stream.text_stream:
            words += 1
            if words == 5:
                break
    deadline = time.time() + 15
    while True:
        lines = [line for line in all_lines(gateway, gateway.token, gateway.key["id"]) if line["logical_model"] == "gpt"]
        if lines and lines[0]["status"] == "settled" or time.time() > deadline:
            break
        time.sleep(0.1)
    assert lines and lines[0]["status"] == "settled", lines
    assert lines[0]["estimated"] and 0 < lines[0]["output_tokens"] < 1000
