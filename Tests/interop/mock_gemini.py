"""A mock of Google's Gemini API (`generativelanguage.googleapis.com/v1beta`) for the interop
tests. What Lumen sends is validated against the official `google-genai` SDK's own types
(`google.genai.types`, which forbid unknown fields), and every answer and stream chunk is built
from those types and serialised by them, so that both directions are Gemini's wire format as
Google's SDK defines it, not as Lumen expects it. It records what it received and answers by a
script: function calls for each city when the request offers tools and the user spoke last
(the first call carrying a thought signature that, as Gemini 3 requires, must come back with
it), else text. A request with a wrong key, an unknown field or a malformed part gets Google's
error shape."""

import json
import threading

import pydantic
from google.genai import types

from mock_http import MockHandler, MockServer

KEY = "AIza-interop"
# What every answer reports: the prompt (cached part included), candidates, thinking.
USAGE = {"prompt_token_count": 150, "cached_content_token_count": 50, "candidates_token_count": 20,
         "thoughts_token_count": 10, "total_token_count": 180}
REPLY = ["Bonjour", " from", " Gemini", "."]
CITIES = ["Paris", "Lyon"]
SIGNATURE = b"signature"  # on the wire in base64: c2lnbmF0dXJl
# The top-level fields of each method's request body, and the SDK type of each.
GENERATE_FIELDS = {"contents": None, "systemInstruction": types.Content, "tools": types.Tool,
                   "toolConfig": types.ToolConfig, "generationConfig": types.GenerationConfig,
                   "safetySettings": types.SafetySetting, "cachedContent": str}
EMBED_FIELDS = {"model", "content", "taskType", "title", "outputDimensionality"}


class Refused(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class MockGemini(MockServer):
    def __init__(self):
        self.requests = []          # (path, headers dict, body dict)
        self.lock = threading.Lock()
        gemini = self

        class Handler(MockHandler):
            def do_GET(self):
                headers = {k.lower(): v for k, v in self.headers.items()}
                with gemini.lock:
                    gemini.requests.append((self.path, headers, None))
                path = self.path.split("?")[0]
                if headers.get("x-goog-api-key") != KEY:
                    return self.refuse(Refused(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."))
                if path.startswith("/v1beta/models/"):
                    name = path[len("/v1beta/"):]
                    model = types.Model(name=name, display_name="Gemini mock", input_token_limit=1048576,
                                        output_token_limit=65536)
                    return self.send_json(200, gemini.dump(model))
                return self.refuse(Refused(404, "NOT_FOUND", "no such path"))

            def do_POST(self):
                headers, _, body = self.read_request()
                with gemini.lock:
                    gemini.requests.append((self.path, headers, body))
                path, _, query = self.path.partition("?")
                try:
                    if headers.get("x-goog-api-key") != KEY:
                        raise Refused(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
                    if not path.startswith("/v1beta/models/") or ":" not in path:
                        raise Refused(404, "NOT_FOUND", "no such path")
                    model, method = path[len("/v1beta/models/"):].split(":", 1)
                    if method == "generateContent":
                        return self.send_json(200, gemini.dump(gemini.answer(body)))
                    if method == "streamGenerateContent":
                        if query != "alt=sse":
                            raise Refused(400, "INVALID_ARGUMENT", "Lumen must ask for alt=sse")
                        return self.stream(gemini.answer(body))
                    if method == "embedContent":
                        embedding = gemini.embed(body, model)
                        return self.send_json(200, {"embedding": gemini.dump(embedding)})
                    if method == "batchEmbedContents":
                        if set(body) != {"requests"}:
                            raise Refused(400, "INVALID_ARGUMENT", f"unknown fields {sorted(set(body) - {'requests'})}")
                        response = types.EmbedContentResponse(embeddings=[gemini.embed(one, model) for one in body["requests"]])
                        return self.send_json(200, gemini.dump(response))
                    raise Refused(404, "NOT_FOUND", f"no method {method}")
                except Refused as refused:
                    return self.refuse(refused)

            def refuse(self, refused):
                self.send_json(refused.status, {"error": {"code": refused.status, "message": refused.message,
                                                          "status": refused.code}})

            def stream(self, response):
                """As Gemini streams: text a word per chunk, function calls whole, the last chunk
                with the finish reason; every chunk with the usage so far; then the connection
                simply ends (no closing event)."""
                self.start_chunked("text/event-stream")
                candidate = response.candidates[0]
                parts = candidate.content.parts
                chunks = []
                for part in parts:
                    if part.text:
                        chunks += [[types.Part(text=word)] for word in REPLY]
                    else:
                        chunks.append([part])
                for index, chunk_parts in enumerate(chunks):
                    last = index == len(chunks) - 1
                    usage = response.usage_metadata if last else types.GenerateContentResponseUsageMetadata(
                        prompt_token_count=USAGE["prompt_token_count"], candidates_token_count=index + 1)
                    chunk = types.GenerateContentResponse(
                        candidates=[types.Candidate(content=types.Content(role="model", parts=chunk_parts), index=0,
                                                    finish_reason=candidate.finish_reason if last else None)],
                        usage_metadata=usage, model_version=response.model_version, response_id=response.response_id)
                    self.chunk(b"data: " + json.dumps(gemini.dump(chunk)).encode() + b"\r\n\r\n")
                self.chunk(b"")

        self.serve(Handler)
        self.base_url = self.root_url

    @staticmethod
    def dump(value):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)

    @staticmethod
    def validated(kind, value, where):
        try:
            return kind.model_validate_json(json.dumps(value))
        except pydantic.ValidationError as error:
            raise Refused(400, "INVALID_ARGUMENT", f"Invalid JSON payload received at {where}: {error}")

    def validate(self, body):
        """The body against the SDK's types: known fields only, each of its type."""
        unknown = set(body) - set(GENERATE_FIELDS)
        if unknown:
            raise Refused(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. Unknown name {sorted(unknown)}")
        contents = [self.validated(types.Content, content, f"contents[{i}]") for i, content in enumerate(body["contents"])]
        for name, kind in GENERATE_FIELDS.items():
            if kind is None or kind is str or name not in body:
                continue
            values = body[name] if isinstance(body[name], list) else [body[name]]
            for value in values:
                self.validated(kind, value, name)
        return contents

    def answer(self, body):
        """Function calls for each city when tools are offered and the user spoke last; else text."""
        contents = self.validate(body)
        for turn in contents:
            if turn.role not in ("user", "model"):
                raise Refused(400, "INVALID_ARGUMENT", f"Please use a valid role: user, model (not {turn.role})")
        # Gemini 3: a function call of an earlier turn must come back with its thought signature.
        for turn in contents:
            for part in turn.parts or []:
                if part.function_call and part.function_call.args.get("city") == CITIES[0] \
                        and part.thought_signature != SIGNATURE:
                    raise Refused(400, "INVALID_ARGUMENT",
                                  "Function call is missing a thought_signature in functionCall parts.")
        last = contents[-1]
        wants_tools = body.get("tools") and last.role == "user" and not any(p.function_response for p in last.parts or [])
        if wants_tools:
            name = body["tools"][0]["functionDeclarations"][0]["name"]
            parts = [types.Part(text="Checking.")] + [
                types.Part(function_call=types.FunctionCall(name=name, args={"city": city}),
                           thought_signature=SIGNATURE if i == 0 else None)
                for i, city in enumerate(CITIES)]
        else:
            parts = [types.Part(text="".join(REPLY))]
        return types.GenerateContentResponse(
            candidates=[types.Candidate(content=types.Content(role="model", parts=parts), finish_reason="STOP", index=0)],
            usage_metadata=types.GenerateContentResponseUsageMetadata(**USAGE),
            model_version="gemini-mock-001", response_id="resp-interop")

    def embed(self, body, model):
        unknown = set(body) - EMBED_FIELDS
        if unknown:
            raise Refused(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. Unknown name {sorted(unknown)}")
        if body.get("model") != f"models/{model}":
            raise Refused(400, "INVALID_ARGUMENT", f"model {body.get('model')} does not match the path's models/{model}")
        content = self.validated(types.Content, body["content"], "content")
        text = "".join(part.text or "" for part in content.parts)
        size = body.get("outputDimensionality", 3)
        return types.ContentEmbedding(values=[float(len(text) % 7) / 10] + [0.5] * (size - 1))

    def received(self, method=None):
        with self.lock:
            return [(path, headers, body) for path, headers, body in self.requests
                    if method is None or path.split("?")[0].endswith(":" + method)]
