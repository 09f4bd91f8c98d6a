"""The official OpenAI Python SDK against `lumen serve` routing to a Claude backend — a mock of
Anthropic's Messages API built from the `anthropic` SDK's own types (`mock_anthropic.py`): a
tool loop over two turns, whole and streamed (the SDK's stream helper assembles the tool
calls), usage with cache reads, Anthropic's errors as the SDK's exceptions, and usage lines
priced from Claude's own usage."""

import time
from decimal import ROUND_HALF_UP, Decimal

import httpx
import openai
import pytest
from openai import OpenAI

from conftest import start_server, wait_ready
from mock_anthropic import CITIES, USAGE, MockAnthropic
from test_ledger import all_lines, create_key, micros

PRICES = {"input": Decimal("3"), "cached_input": Decimal("0.30"), "cache_write": Decimal("3.75"), "output": Decimal("15")}
TOOLS = [{"type": "function", "function": {
    "name": "weather", "description": "Today's weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.fixture
def claude():
    with MockAnthropic() as server:
        yield server


def serve(tmp_path, claude, **env):
    """`lumen serve` with the model `claude` on the mock's Messages API, an organisation, its
    token (`.token`) and a key (`.key`); `env` adds settings."""
    config = tmp_path / "lumen.yaml"
    config.write_text(f"""
models:
  - name: claude
    vendor: anthropic
    scenes: [chat]
    prices: {{input: 3, cached_input: 0.30, cache_write: 3.75, output: 15}}
    max_output_tokens: 4096
    backends:
      - {{id: anthropic, provider: anthropic, base_url: "{claude.base_url}", credential_env: LUMEN_TEST_ANTHROPIC_KEY,
          upstream_model: claude-test}}
""")
    for server in start_server(tmp_path, "--config", str(config), env={"LUMEN_TEST_ANTHROPIC_KEY": "sk-ant-interop", **env}):
        wait_ready(server)
        server.token = server.bootstrap("Acme", "admin@acme.test")["management_token"]
        server.key = create_key(server, server.token, {"name": "claude"})
        yield server


@pytest.fixture
def gateway(tmp_path, claude):
    yield from serve(tmp_path, claude)


def client(server):
    return OpenAI(base_url=server.http + "/v1", api_key=server.key["key"], max_retries=0)


def expected_usage(usage):
    assert usage.prompt_tokens == USAGE["input_tokens"] + USAGE["cache_creation_input_tokens"] + USAGE["cache_read_input_tokens"]
    assert usage.prompt_tokens_details.cached_tokens == USAGE["cache_read_input_tokens"]
    assert usage.completion_tokens == USAGE["output_tokens"]
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_a_tool_loop_over_two_turns(gateway, claude):
    sdk = client(gateway)
    messages = [{"role": "system", "content": "You are terse."}, {"role": "system", "content": "Use tools."},
                {"role": "user", "content": "Weather in Paris and Lyon?"}]
    first = sdk.chat.completions.create(model="claude", messages=messages, tools=TOOLS, tool_choice="auto")
    assert first.model == "claude"
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls", "tool_use must not become stop: the agent would stop silently"
    assert [call.function.name for call in choice.message.tool_calls] == ["weather", "weather"]
    assert [call.function.arguments for call in choice.message.tool_calls] == [f'{{"city":"{c}"}}' for c in CITIES]
    expected_usage(first.usage)

    messages.append(choice.message.model_dump(exclude_none=True))
    for call, answer in zip(choice.message.tool_calls, ["18C", "21C"]):
        messages.append({"role": "tool", "tool_call_id": call.id, "content": answer})
    second = sdk.chat.completions.create(model="claude", messages=messages, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "Bonjour from Claude."

    (_, sent_first), (headers, sent) = claude.received()
    assert headers["x-api-key"] == "sk-ant-interop" and headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers, "Lumen's sk- key never goes upstream"
    assert sent_first["model"] == "claude-test" and sent_first["max_tokens"] == 4096
    assert [block["text"] for block in sent_first["system"]] == ["You are terse.", "Use tools."], "every system message, in order"
    assert sent_first["tools"][0]["input_schema"]["required"] == ["city"]
    assert sent_first["tool_choice"] == {"type": "auto"}
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert [b["type"] for b in sent["messages"][1]["content"]] == ["text", "tool_use", "tool_use"]
    assert sent["messages"][1]["content"][1]["input"] == {"city": "Paris"}
    assert [(b["tool_use_id"], b["content"]) for b in sent["messages"][2]["content"]] == [("toolu_0", "18C"), ("toolu_1", "21C")]


def test_a_stream_with_tool_calls_and_usage(gateway, claude):
    sdk = client(gateway)
    with sdk.chat.completions.stream(
            model="claude", messages=[{"role": "user", "content": "Weather in Paris and Lyon?"}], tools=TOOLS,
            stream_options={"include_usage": True}, max_tokens=300) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Bonjour from Claude."
    assert [call.id for call in choice.message.tool_calls] == ["toolu_0", "toolu_1"]
    assert [call.function.parsed_arguments if call.function.parsed_arguments else call.function.arguments
            for call in choice.message.tool_calls] == [f'{{"city": "{c}"}}' for c in CITIES]
    expected_usage(final.usage)
    assert claude.received()[-1][1]["max_tokens"] == 300 and claude.received()[-1][1]["stream"] is True

    chunks = list(sdk.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "Hi"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Bonjour from Claude."
    assert all(c.usage is None for c in chunks), "no usage chunk unless the caller asks for it"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_refusals_come_back_as_the_sdk_exceptions(gateway, claude):
    sdk = client(gateway)
    hi = [{"role": "user", "content": "Hi"}]
    with pytest.raises(openai.BadRequestError) as upstream:
        sdk.chat.completions.create(model="claude", messages=hi, max_tokens=9000)
    assert "max_tokens" in upstream.value.message and upstream.value.code == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as several:
        sdk.chat.completions.create(model="claude", messages=hi, n=2)
    assert several.value.code == "n_not_supported"
    with pytest.raises(openai.BadRequestError) as image:
        sdk.chat.completions.create(model="claude", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert image.value.code == "image_url_not_supported" and "data: URL" in image.value.message
    with pytest.raises(openai.BadRequestError) as embeddings:
        sdk.embeddings.create(model="claude", input="hi")
    assert embeddings.value.code in ("model_not_supported",)


def test_usage_lines_are_priced_from_claudes_own_usage(gateway, claude):
    sdk = client(gateway)
    sdk.chat.completions.create(model="claude", messages=[{"role": "user", "content": "Hi"}])
    with sdk.chat.completions.stream(model="claude", messages=[{"role": "user", "content": "Hi"}]) as stream:
        stream.get_final_completion()
    deadline = time.time() + 10
    while len(lines := all_lines(gateway, gateway.token, gateway.key["id"])) < 2:
        assert time.time() < deadline
        time.sleep(0.05)
    # Each kind of input token at its own price: cache reads, cache writes, the rest.
    cost = (USAGE["input_tokens"] * PRICES["input"] + USAGE["cache_read_input_tokens"] * PRICES["cached_input"]
            + USAGE["cache_creation_input_tokens"] * PRICES["cache_write"]
            + USAGE["output_tokens"] * PRICES["output"]).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    for line in lines:
        assert (line["input_tokens"], line["cached_input_tokens"], line["cache_write_tokens"], line["output_tokens"]) == (
            USAGE["input_tokens"], USAGE["cache_read_input_tokens"], USAGE["cache_creation_input_tokens"],
            USAGE["output_tokens"])
        assert micros(line["cost"]) == int(cost) and not line["estimated"]
    # Billing shows them too.
    billing = httpx.get(f"{gateway.http}/v1/management/api-keys/{gateway.key['id']}/billing",
                        headers={"Authorization": f"Bearer {gateway.token}"}, timeout=30)
    assert billing.status_code == 200, billing.text
    total = billing.json()["total"]
    assert (total["requests"], total["cache_write_tokens"], total["cached_input_tokens"]) == (
        2, 2 * USAGE["cache_creation_input_tokens"], 2 * USAGE["cache_read_input_tokens"])
    assert micros(total["cost"]) == 2 * int(cost)


def test_an_image_by_url_is_fetched_from_a_host_the_operator_allows(tmp_path, claude):
    """LUMEN_IMAGE_URL_HOSTS names the image server: Lumen fetches the image and sends it to
    Claude inline; an image it cannot fetch is refused before Claude is called."""
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    png = bytes.fromhex("89504e470d0a1a0a") + bytes(range(256))

    class Images(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            found = self.path == "/cat.png"
            self.send_response(200 if found else 404)
            self.send_header("content-type", "image/png" if found else "text/plain")
            self.send_header("content-length", str(len(png) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(png)

    images = ThreadingHTTPServer(("127.0.0.1", 0), Images)
    threading.Thread(target=images.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{images.server_address[1]}"
    try:
        for gateway in serve(tmp_path, claude, LUMEN_IMAGE_URL_HOSTS="127.0.0.1"):
            def ask(url):
                return client(gateway).chat.completions.create(model="claude", messages=[{"role": "user", "content": [
                    {"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": url}}]}])

            ask(f"{base}/cat.png")
            ((_, body),) = claude.received()
            assert body["messages"][0]["content"][-1] == {
                "type": "image", "source": {"type": "base64", "media_type": "image/png",
                                            "data": base64.b64encode(png).decode()}}
            with pytest.raises(openai.BadRequestError) as missing:
                ask(f"{base}/nothing.png")
            assert missing.value.code == "image_url_unreachable" and "404" in missing.value.message
            assert len(claude.received()) == 1
    finally:
        images.shutdown()
