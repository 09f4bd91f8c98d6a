"""The official OpenAI Python SDK against `lumen serve --demo`: it must work exactly as
against OpenAI, with no network and no configuration."""

import openai
import pytest
from openai import OpenAI


def client(demo, key=None):
    return OpenAI(api_key=key or demo.credentials["api_key"], base_url=demo.http + "/v1", max_retries=0)


def test_demo_prints_credentials_first(demo):
    credentials = demo.credentials
    assert credentials["api_key"].startswith("sk-")
    assert credentials["management_token"].startswith("mt-")
    assert credentials["model"] == "lumen-demo"
    log = demo.log()
    assert credentials["api_key"] not in log and credentials["management_token"] not in log


def test_models_and_chat(demo):
    sdk = client(demo)
    assert [m.id for m in sdk.models.list().data] == ["lumen-demo"]
    # models.retrieve, often a tool's first call to check that a model exists.
    model = sdk.models.retrieve("lumen-demo")
    assert (model.id, model.object, model.owned_by) == ("lumen-demo", "model", "lumen")
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.models.retrieve("no-such-model")
    assert missing.value.code == "model_not_found"

    completion = sdk.chat.completions.create(
        model="lumen-demo", messages=[{"role": "user", "content": "Hello Lumen"}])
    assert completion.choices[0].message.content == "You said: Hello Lumen"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens > 0

    raw = sdk.chat.completions.with_raw_response.create(
        model="lumen-demo", messages=[{"role": "user", "content": "id?"}])
    assert raw.headers["x-request-id"].startswith("req_")


def test_streaming(demo):
    sdk = client(demo)
    stream = sdk.chat.completions.create(
        model="lumen-demo", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "stream this please"}])
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == "You said: stream this please"
    assert usage is not None and usage.completion_tokens > 0


def test_errors_reach_the_sdk_as_openai_errors(demo):
    with pytest.raises(openai.AuthenticationError) as unauthenticated:
        client(demo, key="sk-wrong").chat.completions.create(
            model="lumen-demo", messages=[{"role": "user", "content": "hi"}])
    assert unauthenticated.value.code == "invalid_api_key"

    with pytest.raises(openai.NotFoundError) as missing:
        client(demo).chat.completions.create(model="gpt-7", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "model_not_found"


def test_embeddings(demo):
    sdk = client(demo)
    # The SDK asks for base64 by default and decodes it: both encodings are exercised.
    result = sdk.embeddings.create(model="lumen-demo", input=["first text", "second text"])
    assert [item.index for item in result.data] == [0, 1]
    assert all(len(item.embedding) == 16 for item in result.data)
    assert abs(sum(x * x for x in result.data[0].embedding) - 1) < 1e-4
    floats = sdk.embeddings.create(model="lumen-demo", input="first text", encoding_format="float")
    assert [round(x, 5) for x in floats.data[0].embedding] == [round(x, 5) for x in result.data[0].embedding]
    assert result.usage.prompt_tokens > 0


def test_a_key_created_or_suspended_here_takes_effect_at_once(demo):
    """Read your own writes: the gateway that made a change answers the next request with it,
    without waiting for its watch of the keys service."""
    from test_management_http import call
    token = demo.credentials["management_token"]
    for round in range(20):
        status, key = call(demo, "POST", "/v1/management/api-keys", token, {"name": f"fresh {round}"})
        assert status == 200, key
        status, models = call(demo, "GET", "/v1/models", key["key"])
        assert status == 200, (round, models)
        status, _ = call(demo, "PATCH", f"/v1/management/api-keys/{key['id']}", token, {"status": "suspended"})
        assert status == 200
        status, refused = call(demo, "GET", "/v1/models", key["key"])
        assert (status, refused["error"]["code"]) == (401, "key_suspended"), round
