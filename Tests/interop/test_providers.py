"""The official `openai` SDK (chat, tool loops, streams with usage, embeddings) and the official
`anthropic` SDK (messages, tool loops, streams) against `lumen serve`, through a model on each
provider's mock: Azure OpenAI (`mock_upstream.py` at a deployment's URL), Google's Gemini API
(`mock_gemini.py`, which validates what Lumen sends against the `google-genai` SDK's types and
answers with them) and AWS Bedrock (`mock_bedrock.py`, which verifies every signature with
botocore's signer and every body against botocore's service model). The same test runs
against each: what a caller sees does not depend on the cloud behind the model."""

import json
import time
from decimal import ROUND_HALF_UP, Decimal

import anthropic
import openai
import pytest
from openai import OpenAI

from conftest import start_server, wait_ready
from mock_gemini import CITIES as GEMINI_CITIES
from mock_gemini import USAGE as GEMINI_USAGE
from mock_gemini import MockGemini
from mock_bedrock import ACCESS_KEY, API_KEY, SECRET_KEY, SESSION_TOKEN
from mock_bedrock import CITIES as BEDROCK_CITIES
from mock_bedrock import REGION, MockBedrock
from mock_bedrock import USAGE as BEDROCK_USAGE
from mock_upstream import CITIES, MockUpstream
from test_ledger import all_lines, create_key, micros

assert CITIES == GEMINI_CITIES == BEDROCK_CITIES
# bedrock signs with AWS keys; bedrock-key sends a Bedrock API key.
PROVIDERS = ["azure", "gemini", "bedrock", "bedrock-key"]
TOOLS = [{"type": "function", "function": {
    "name": "weather", "description": "Today's weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}}}]
CLAUDE_TOOLS = [{"name": "weather", "description": "Today's weather in a city",
                 "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
PRICES = {"input": Decimal("1.25"), "cached_input": Decimal("0.125"), "output": Decimal("10")}


@pytest.fixture(scope="module")
def clouds():
    with MockUpstream() as azure, MockGemini() as gemini, MockBedrock() as bedrock:
        azure.mode = "tools"
        yield {"azure": azure, "gemini": gemini, "bedrock": bedrock, "bedrock-key": bedrock}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, clouds):
    tmp_path = tmp_path_factory.mktemp("providers")
    config = tmp_path / "lumen.yaml"
    config.write_text(f"""
models:
  - name: azure
    vendor: openai
    scenes: [chat, embedding]
    prices: {{input: 1.25, cached_input: 0.125, output: 10}}
    max_output_tokens: 4096
    backends:
      - {{id: azure, provider: azure, base_url: "{clouds['azure'].base_url.removesuffix('/v1')}", credential_env: LUMEN_TEST_AZURE_KEY,
          upstream_model: my-gpt-4o, api_version: 2025-01-01-preview}}
  - name: gemini
    vendor: google
    scenes: [chat, embedding]
    prices: {{input: 1.25, cached_input: 0.125, output: 10}}
    max_output_tokens: 4096
    backends:
      - {{id: google, provider: gemini, base_url: "{clouds['gemini'].base_url}", credential_env: LUMEN_TEST_GEMINI_KEY,
          upstream_model: gemini-2.5-flash}}
  - name: bedrock
    vendor: anthropic
    scenes: [chat]
    prices: {{input: 3, cached_input: 0.30, cache_write: 3.75, output: 15}}
    max_output_tokens: 4096
    backends:
      - {{id: aws, provider: bedrock, region: {REGION}, base_url: "{clouds['bedrock'].base_url}",
          upstream_model: "anthropic.claude-sonnet-4-5-20250929-v1:0"}}
  - name: bedrock-key
    vendor: anthropic
    scenes: [chat]
    max_output_tokens: 4096
    backends:
      - {{id: aws, provider: bedrock, region: {REGION}, base_url: "{clouds['bedrock'].base_url}",
          credential_env: LUMEN_TEST_BEDROCK_KEY, upstream_model: "anthropic.claude-sonnet-4-5-20250929-v1:0"}}
""")
    env = {"LUMEN_TEST_AZURE_KEY": "azure-interop", "LUMEN_TEST_GEMINI_KEY": "AIza-interop",
           "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_SESSION_TOKEN": SESSION_TOKEN,
           "LUMEN_TEST_BEDROCK_KEY": API_KEY}
    for server in start_server(tmp_path, "--config", str(config), env=env):
        wait_ready(server)
        server.token = server.bootstrap("Acme", "admin@acme.test")["management_token"]
        server.key = create_key(server, server.token, {"name": "providers"})
        yield server


def client(server):
    return OpenAI(base_url=server.http + "/v1", api_key=server.key["key"], max_retries=0)


def claude_client(server):
    return anthropic.Anthropic(base_url=server.http, api_key=server.key["key"], max_retries=0)


def last_request(clouds, provider):
    """The path, headers and body of what `provider`'s mock received last."""
    return clouds[provider].requests[-1]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_openai_sdk_tool_loop(gateway, clouds, provider):
    sdk = client(gateway)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris and Lyon?"}]
    first = sdk.chat.completions.create(model=provider, messages=messages, tools=TOOLS, tool_choice="auto")
    assert first.model == provider
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls", "a tool call must not come back as stop"
    assert [call.function.name for call in choice.message.tool_calls] == ["weather", "weather"]
    assert [json.loads(call.function.arguments) for call in choice.message.tool_calls] == [{"city": city} for city in CITIES]
    assert first.usage.prompt_tokens > 0 and first.usage.completion_tokens > 0

    messages.append(choice.message.model_dump(exclude_none=True))
    for call, answer in zip(choice.message.tool_calls, ["18C", "21C"]):
        messages.append({"role": "tool", "tool_call_id": call.id, "content": answer})
    second = sdk.chat.completions.create(model=provider, messages=messages, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content

    path, headers, sent = last_request(clouds, provider)
    if provider == "bedrock":
        assert path == "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
        assert headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
        assert sent["system"] == [{"text": "Be brief."}] and [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
        assert [b["toolResult"]["content"] for b in sent["messages"][2]["content"]] == [[{"text": "18C"}], [{"text": "21C"}]]
        return
    if provider == "bedrock-key":
        assert headers["authorization"] == f"Bearer {API_KEY}"
        return
    assert "authorization" not in headers, "Lumen's sk- key never goes upstream"
    if provider == "azure":
        assert path == "/openai/deployments/my-gpt-4o/chat/completions?api-version=2025-01-01-preview"
        assert headers["api-key"] == "azure-interop" and sent["model"] == "my-gpt-4o"
    else:
        assert path == "/v1beta/models/gemini-2.5-flash:generateContent" and headers["x-goog-api-key"] == "AIza-interop"
        assert sent["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
        assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]
        results = [p["functionResponse"] for p in sent["contents"][2]["parts"]]
        assert results == [{"name": "weather", "response": {"content": "18C"}},
                           {"name": "weather", "response": {"content": "21C"}}]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_openai_sdk_streams_with_usage_and_tools(gateway, clouds, provider):
    sdk = client(gateway)
    with sdk.chat.completions.stream(
            model=provider, messages=[{"role": "user", "content": "Weather in Paris and Lyon?"}], tools=TOOLS,
            stream_options={"include_usage": True}, max_tokens=300) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [call.function.name for call in choice.message.tool_calls] == ["weather", "weather"]
    assert final.usage is not None and final.usage.total_tokens > 0

    chunks = list(sdk.chat.completions.create(
        model=provider, messages=[{"role": "user", "content": "Hi"}], stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage is not None and not chunks[-1].choices
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    if provider == "gemini":
        path, _, sent = last_request(clouds, provider)
        assert path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        assert text == "Bonjour from Gemini."
        usage = chunks[-1].usage
        assert usage.prompt_tokens == GEMINI_USAGE["prompt_token_count"]
        assert usage.prompt_tokens_details.cached_tokens == GEMINI_USAGE["cached_content_token_count"]
        assert usage.completion_tokens == GEMINI_USAGE["candidates_token_count"] + GEMINI_USAGE["thoughts_token_count"]
        assert usage.completion_tokens_details.reasoning_tokens == GEMINI_USAGE["thoughts_token_count"]
    if provider == "bedrock":
        path, headers, _ = last_request(clouds, provider)
        assert path.endswith("/converse-stream") and headers["accept"] == "application/vnd.amazon.eventstream"
        usage = chunks[-1].usage
        assert usage.prompt_tokens == sum(BEDROCK_USAGE[k] for k in ("inputTokens", "cacheReadInputTokens", "cacheWriteInputTokens"))
        assert usage.prompt_tokens_details.cached_tokens == BEDROCK_USAGE["cacheReadInputTokens"]
        assert text == "Bonjour from Bedrock."


@pytest.mark.parametrize("provider", ["azure", "gemini"])
def test_openai_sdk_embeddings(gateway, clouds, provider):
    sdk = client(gateway)
    one = sdk.embeddings.create(model=provider, input="hello")
    assert one.model == provider and len(one.data) == 1 and len(one.data[0].embedding) == 3
    several = sdk.embeddings.create(model=provider, input=["a", "bb"])  # the SDK asks for base64 and decodes it
    assert [item.index for item in several.data] == [0, 1] and all(len(item.embedding) == 3 for item in several.data)
    assert several.usage.prompt_tokens > 0
    if provider == "gemini":
        path, _, sent = last_request(clouds, provider)
        assert path == "/v1beta/models/gemini-2.5-flash:batchEmbedContents"
        assert [r["content"]["parts"][0]["text"] for r in sent["requests"]] == ["a", "bb"]
        assert several.data[1].embedding[0] == pytest.approx(0.2), "the vector Gemini sent, through base64"
    else:
        path, headers, _ = last_request(clouds, provider)
        assert path == "/openai/deployments/my-gpt-4o/embeddings?api-version=2025-01-01-preview"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_anthropic_sdk_messages_tool_loop_and_stream(gateway, clouds, provider):
    sdk = claude_client(gateway)
    messages = [{"role": "user", "content": "Weather in Paris and Lyon?"}]
    first = sdk.messages.create(model=provider, max_tokens=500, system="Be brief.", messages=messages, tools=CLAUDE_TOOLS)
    assert first.model == provider and first.stop_reason == "tool_use"
    uses = [block for block in first.content if block.type == "tool_use"]
    assert [use.input for use in uses] == [{"city": city} for city in CITIES]
    messages.append({"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]})
    messages.append({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": use.id, "content": f"{18 + i}C"} for i, use in enumerate(uses)]})
    answer = sdk.messages.create(model=provider, max_tokens=500, messages=messages, tools=CLAUDE_TOOLS)
    assert answer.stop_reason == "end_turn" and answer.content[0].type == "text" and answer.content[0].text
    assert answer.usage.input_tokens > 0 and answer.usage.output_tokens > 0

    with sdk.messages.stream(model=provider, max_tokens=300, messages=[{"role": "user", "content": "Say hello"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    with sdk.messages.stream(model=provider, max_tokens=300, tools=CLAUDE_TOOLS,
                             messages=[{"role": "user", "content": "Weather in Paris and Lyon?"}]) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert final.stop_reason == "tool_use"
    assert [block.input for block in final.content if block.type == "tool_use"] == [{"city": c} for c in CITIES]


def test_gemini_usage_is_priced_from_geminis_own_counts(gateway, clouds):
    """Cached tokens at the cached price, thinking tokens as output."""
    key = create_key(gateway, gateway.token, {"name": "gemini-pricing"})
    sdk = OpenAI(base_url=gateway.http + "/v1", api_key=key["key"], max_retries=0)
    sdk.chat.completions.create(model="gemini", messages=[{"role": "user", "content": "Hi"}])
    deadline = time.time() + 10
    while not (lines := all_lines(gateway, gateway.token, key["id"])):
        assert time.time() < deadline
        time.sleep(0.05)
    (line,) = lines
    fresh = GEMINI_USAGE["prompt_token_count"] - GEMINI_USAGE["cached_content_token_count"]
    output = GEMINI_USAGE["candidates_token_count"] + GEMINI_USAGE["thoughts_token_count"]
    assert (line["input_tokens"], line["cached_input_tokens"], line["output_tokens"], line["estimated"]) == (
        fresh, GEMINI_USAGE["cached_content_token_count"], output, False)
    cost = (fresh * PRICES["input"] + GEMINI_USAGE["cached_content_token_count"] * PRICES["cached_input"]
            + output * PRICES["output"]).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    assert micros(line["cost"]) == int(cost)


def test_gemini_refusals_name_what_is_refused(gateway, clouds):
    sdk = client(gateway)
    hi = [{"role": "user", "content": "Hi"}]
    before = len(clouds["gemini"].requests)
    with pytest.raises(openai.BadRequestError) as logprobs:
        sdk.chat.completions.create(model="gemini", messages=hi, logprobs=True)
    assert logprobs.value.code == "unsupported_parameter" and "logprobs" in logprobs.value.message
    with pytest.raises(openai.BadRequestError) as image:
        sdk.chat.completions.create(model="gemini", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert image.value.code == "image_url_not_supported"
    with pytest.raises(openai.BadRequestError) as completions:
        sdk.completions.create(model="gemini", prompt="Once")
    assert completions.value.code == "model_not_supported"
    assert len(clouds["gemini"].requests) == before, "nothing refused reaches Gemini"


def test_gemini_errors_come_back_as_the_sdk_exceptions(tmp_path, clouds):
    """A wrong key: Google's 400 INVALID_ARGUMENT as OpenAI's error, for both SDKs."""
    config = tmp_path / "lumen.yaml"
    config.write_text(f"""
models:
  - name: gemini
    vendor: google
    scenes: [chat]
    max_output_tokens: 1024
    backends:
      - {{id: google, provider: gemini, base_url: "{clouds['gemini'].base_url}", credential_env: LUMEN_TEST_GEMINI_KEY}}
""")
    for server in start_server(tmp_path, "--config", str(config), env={"LUMEN_TEST_GEMINI_KEY": "AIza-wrong"}):
        wait_ready(server)
        token = server.bootstrap("Acme", "admin@acme.test")["management_token"]
        server.key = create_key(server, token, {"name": "wrong"})
        with pytest.raises(openai.BadRequestError) as error:
            client(server).chat.completions.create(model="gemini", messages=[{"role": "user", "content": "Hi"}])
        assert "API key not valid" in error.value.message and error.value.code == "invalid_argument"
        with pytest.raises(anthropic.BadRequestError) as claude:
            claude_client(server).messages.create(model="gemini", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
        assert "API key not valid" in claude.value.message


def test_bedrock_usage_is_priced_from_bedrocks_own_counts(gateway, clouds):
    """Cache reads at the cached price, cache writes at the cache-write price, the rest as input."""
    key = create_key(gateway, gateway.token, {"name": "bedrock-pricing"})
    sdk = OpenAI(base_url=gateway.http + "/v1", api_key=key["key"], max_retries=0)
    with sdk.chat.completions.stream(model="bedrock", messages=[{"role": "user", "content": "Hi"}]) as stream:
        stream.get_final_completion()
    deadline = time.time() + 10
    while not (lines := all_lines(gateway, gateway.token, key["id"])):
        assert time.time() < deadline
        time.sleep(0.05)
    (line,) = lines
    assert (line["input_tokens"], line["cached_input_tokens"], line["cache_write_tokens"], line["output_tokens"]) == (
        BEDROCK_USAGE["inputTokens"], BEDROCK_USAGE["cacheReadInputTokens"], BEDROCK_USAGE["cacheWriteInputTokens"],
        BEDROCK_USAGE["outputTokens"])
    cost = (BEDROCK_USAGE["inputTokens"] * Decimal(3) + BEDROCK_USAGE["cacheReadInputTokens"] * Decimal("0.30")
            + BEDROCK_USAGE["cacheWriteInputTokens"] * Decimal("3.75")
            + BEDROCK_USAGE["outputTokens"] * Decimal(15)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    assert micros(line["cost"]) == int(cost) and not line["estimated"]


def test_the_bedrock_mock_is_what_boto3_itself_speaks(clouds):
    """The mock, checked with AWS's own client: boto3 signs and serialises a Converse request
    the mock accepts, and parses its answer and its event stream."""
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("bedrock-runtime", region_name=REGION, endpoint_url=clouds["bedrock"].base_url,
                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, aws_session_token=SESSION_TOKEN)
    answer = client.converse(modelId="anthropic.claude-sonnet-4-5-20250929-v1:0",
                             messages=[{"role": "user", "content": [{"text": "Weather?"}]}],
                             toolConfig={"tools": [{"toolSpec": {"name": "weather", "inputSchema": {"json": {"type": "object"}}}}]})
    assert answer["stopReason"] == "tool_use" and answer["usage"]["cacheWriteInputTokens"] == BEDROCK_USAGE["cacheWriteInputTokens"]
    events = client.converse_stream(modelId="m", messages=[{"role": "user", "content": [{"text": "Hi"}]}])["stream"]
    assert [next(iter(event)) for event in events][-2:] == ["messageStop", "metadata"]
    wrong = boto3.client("bedrock-runtime", region_name=REGION, endpoint_url=clouds["bedrock"].base_url,
                         aws_access_key_id=ACCESS_KEY, aws_secret_access_key="not-the-secret", aws_session_token=SESSION_TOKEN)
    with pytest.raises(ClientError) as refused:
        wrong.converse(modelId="m", messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
