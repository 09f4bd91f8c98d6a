"""The built-in mock model answers exactly as OpenAI's schemas say, since a newcomer's first
calls go to it: every body and stream event of chat completions, completions, embeddings and
responses is checked against OpenAI's published OpenAPI document (the extract in
openai_spec/schemas.json) and against the `openai` package's own types in strict
validation, and the SDK's stream helpers follow the streams to the end."""

import json
from pathlib import Path

import httpx
import jsonschema_rs
import pytest
from openai import OpenAI
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response

SPEC = json.loads((Path(__file__).parent / "openai_spec" / "schemas.json").read_text())
_validators = {}


def schema_errors(name, instance):
    if name not in _validators:
        _validators[name] = jsonschema_rs.Draft202012Validator({**SPEC, "$ref": f"#/components/schemas/{name}"})
    return [f"{error.instance_path}: {error.message}"[:400] for error in _validators[name].iter_errors(instance)]


def check(name, instance, model_type=None):
    assert schema_errors(name, instance) == [], json.dumps(instance)[:2000]
    if model_type is not None:
        model_type.model_validate(instance, strict=True)


def post(demo, path, body):
    response = httpx.post(demo.http + "/v1/" + path, json=body, timeout=30,
                          headers={"Authorization": f"Bearer {demo.credentials['api_key']}"})
    assert response.status_code == 200, response.text
    return response


def events(response):
    """(event name or None, parsed data) of an SSE body; `[DONE]` as the string."""
    result = []
    for block in response.text.strip().split("\n\n"):
        name, data = None, []
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                data.append(line[len("data: "):])
        text = "\n".join(data)
        result.append((name, text if text == "[DONE]" else json.loads(text)))
    return result


MESSAGES = [{"role": "user", "content": "Hello schema"}]


def test_chat_bodies_and_chunks_follow_openais_schema(demo):
    plain = post(demo, "chat/completions", {"model": "lumen-demo", "messages": MESSAGES}).json()
    check("CreateChatCompletionResponse", plain, ChatCompletion)
    (choice,) = plain["choices"]
    assert choice["message"]["refusal"] is None and choice["logprobs"] is None
    assert choice["message"]["content"] == "You said: Hello schema"

    two = post(demo, "chat/completions", {"model": "lumen-demo", "messages": MESSAGES, "n": 2, "max_tokens": 2}).json()
    check("CreateChatCompletionResponse", two, ChatCompletion)
    assert [c["index"] for c in two["choices"]] == [0, 1]
    assert all(c["finish_reason"] == "length" for c in two["choices"])
    one = post(demo, "chat/completions", {"model": "lumen-demo", "messages": MESSAGES, "max_tokens": 2}).json()
    assert two["usage"]["completion_tokens"] == 2 * one["usage"]["completion_tokens"] > 0

    streamed = events(post(demo, "chat/completions", {
        "model": "lumen-demo", "messages": MESSAGES, "stream": True, "n": 2, "stream_options": {"include_usage": True}}))
    assert streamed[-1] == (None, "[DONE]")
    for _, chunk in streamed[:-1]:
        check("CreateChatCompletionStreamResponse", chunk, ChatCompletionChunk)
    for index in (0, 1):
        text = "".join(c["choices"][0]["delta"].get("content") or "" for _, c in streamed[:-1]
                       if c["choices"] and c["choices"][0]["index"] == index)
        assert text == "You said: Hello schema"
    assert streamed[-2][1]["choices"] == [] and streamed[-2][1]["usage"]["total_tokens"] > 0

    bad = httpx.post(demo.http + "/v1/chat/completions", json={"model": "lumen-demo", "messages": MESSAGES, "n": 0},
                     headers={"Authorization": f"Bearer {demo.credentials['api_key']}"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_n"


def test_completions_and_embeddings_follow_openais_schema(demo):
    text = post(demo, "completions", {"model": "lumen-demo", "prompt": "Hi", "n": 2}).json()
    check("CreateCompletionResponse", text, Completion)
    assert [c["index"] for c in text["choices"]] == [0, 1]
    streamed = events(post(demo, "completions", {"model": "lumen-demo", "prompt": "Hi", "stream": True}))
    assert streamed[-1] == (None, "[DONE]")
    for _, chunk in streamed[:-1]:
        # OpenAI sends `finish_reason: null` until a choice's last chunk, although its schema
        # (shared by bodies and chunks) has a string there: the chunks are checked as bodies
        # once that is filled in.
        filled = json.loads(json.dumps(chunk))
        for choice in filled["choices"]:
            choice["finish_reason"] = choice["finish_reason"] or "stop"
        check("CreateCompletionResponse", filled, Completion)
    for encoding in ("float", "base64"):
        vectors = post(demo, "embeddings", {"model": "lumen-demo", "input": ["a", "b"], "encoding_format": encoding}).json()
        if encoding == "float":
            check("CreateEmbeddingResponse", vectors, CreateEmbeddingResponse)
        else:
            # OpenAI's schema types the vector as numbers; base64 is the documented string form.
            assert all(isinstance(d["embedding"], str) for d in vectors["data"])


RESPONSE_EVENTS = {
    "response.created": "ResponseCreatedEvent",
    "response.in_progress": "ResponseInProgressEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent",
    "response.output_text.done": "ResponseTextDoneEvent",
    "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.completed": "ResponseCompletedEvent",
    "response.incomplete": "ResponseIncompleteEvent",
}


def test_responses_bodies_and_events_follow_openais_schema(demo):
    body = {"model": "lumen-demo", "input": "Hello schema", "instructions": "Be brief.", "temperature": 0.5,
            "metadata": {"team": "platform"}}
    response = post(demo, "responses", body).json()
    check("Response", response, Response)
    assert response["status"] == "completed" and response["error"] is None and response["incomplete_details"] is None
    assert (response["instructions"], response["temperature"], response["metadata"]) == ("Be brief.", 0.5, {"team": "platform"})
    assert response["output"][0]["content"][0]["text"] == "You said: Hello schema"

    cut = post(demo, "responses", {"model": "lumen-demo", "input": "a long enough question", "max_output_tokens": 1}).json()
    check("Response", cut, Response)
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}

    for request in ({"model": "lumen-demo", "input": "Hello schema", "stream": True},
                    {"model": "lumen-demo", "input": "a long enough question", "stream": True, "max_output_tokens": 1}):
        streamed = events(post(demo, "responses", request))
        names = [name for name, _ in streamed]
        assert names[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                             "response.content_part.added"]
        assert names[-4:-1] == ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
        assert names[-1] == ("response.incomplete" if "max_output_tokens" in request else "response.completed")
        for number, (name, data) in enumerate(streamed):
            assert data["type"] == name and data["sequence_number"] == number
            check(RESPONSE_EVENTS[name], data)


def test_the_sdks_stream_helpers_follow_the_mock_to_the_end(demo):
    client = OpenAI(api_key=demo.credentials["api_key"], base_url=demo.http + "/v1", max_retries=0)
    with client.responses.stream(model="lumen-demo", input="Hello helpers") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "You said: Hello helpers"
    assert final.model == "lumen-demo" and final.usage.total_tokens > 0

    with client.chat.completions.stream(model="lumen-demo", messages=[{"role": "user", "content": "Hello helpers"}]) as stream:
        pieces = [event.delta for event in stream if event.type == "content.delta"]
        completion = stream.get_final_completion()
    assert "".join(pieces) == completion.choices[0].message.content == "You said: Hello helpers"
