"""A small OpenAI-compatible upstream for the interop tests: it answers chat completions,
completions, embeddings and responses with fixed usage figures, records what it received,
and can be told to fail, to omit usage, to stream slowly, to be honest — to keep within
`max_tokens` and report usage that a real tokenizer could (chat only) — or to call tools (a
call of the first tool offered for each of CITIES, when the user spoke last)."""

import json
import threading
import time

from mock_http import MockHandler, MockServer

# What every answer reports; the tests compute the expected cost from these.
USAGE = {"prompt_tokens": 1234, "completion_tokens": 567, "total_tokens": 1801,
         "prompt_tokens_details": {"cached_tokens": 200}}
WORDS = ["Hello", " from", " the", " upstream", "."]
CITIES = ["Paris", "Lyon"]


class MockUpstream(MockServer):
    def __init__(self):
        self.requests = []          # (path, headers dict, body dict)
        self.mode = "ok"            # ok | fail | no_usage | slow | honest | tools
        self.slow_repeat = 200      # slow streams send WORDS this many times, 20 ms a chunk
        self.lock = threading.Lock()
        upstream = self

        class Handler(MockHandler):
            def do_GET(self):
                # Lumen's active health probe asks GET /models.
                with upstream.lock:
                    upstream.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, None))
                    mode = upstream.mode
                if mode == "fail":
                    return self.send_json(500, {"error": {"message": "upstream exploded", "type": "server_error"}})
                if self.path.split("?")[0].endswith("/models"):
                    return self.send_json(200, {"object": "list", "data": [{"id": "upstream-model-v1", "object": "model"}]})
                return self.send_json(404, {"error": {"message": "no such path", "type": "invalid_request_error"}})

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                self.body_length = length
                with upstream.lock:
                    upstream.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    mode = upstream.mode
                if mode == "fail":
                    return self.send_json(500, {"error": {"message": "upstream exploded", "type": "server_error"}})
                path = self.path.split("?")[0]
                if path.endswith("/chat/completions"):
                    return self.chat(body, mode)
                if path.endswith("/completions"):
                    return self.completion(body, mode)
                if path.endswith("/embeddings"):
                    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                    data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(inputs))]
                    answer = {"object": "list", "data": data, "model": body["model"]}
                    if mode != "no_usage":
                        answer["usage"] = {"prompt_tokens": 1234, "total_tokens": 1234}
                    return self.send_json(200, answer)
                if path.endswith("/images/generations"):
                    return self.send_json(200, {"created": 1, "data": [{"url": "https://images.example/1.png"}]})
                if path.endswith("/moderations"):
                    return self.send_json(200, {"id": "modr-1", "model": body["model"], "results": [
                        {"flagged": False, "categories": {}, "category_scores": {}}]})
                if path.endswith("/responses"):
                    answer = {"id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
                              "model": body["model"], "output": [{"id": "msg_1", "type": "message", "status": "completed",
                              "role": "assistant", "content": [{"type": "output_text", "text": "".join(WORDS), "annotations": []}]}],
                              "usage": {"input_tokens": 1234, "output_tokens": 567, "total_tokens": 1801,
                                        "input_tokens_details": {"cached_tokens": 200},
                                        "output_tokens_details": {"reasoning_tokens": 0}}}
                    return self.send_json(200, answer)
                self.send_json(404, {"error": {"message": "no such path", "type": "invalid_request_error"}})

            def honest_chat(self, body, base):
                # Within the request's max_tokens (or 64), a word a token; a prompt token per four
                # bytes of the request. `"user": "slow"` streams 40 ms a chunk.
                count = min(int(body.get("max_completion_tokens") or body.get("max_tokens") or 64), 64)
                usage = {"prompt_tokens": self.body_length // 4, "completion_tokens": count,
                         "total_tokens": self.body_length // 4 + count}
                if not body.get("stream"):
                    return self.send_json(200, dict(base, object="chat.completion", usage=usage, choices=[
                        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": " w" * count}}]))
                chunks = [dict(base, object="chat.completion.chunk", choices=[{"index": 0, "delta": {"content": " w"}, "finish_reason": None}])
                          for _ in range(count)]
                chunks.append(dict(base, object="chat.completion.chunk", choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
                if (body.get("stream_options") or {}).get("include_usage"):
                    chunks.append(dict(base, object="chat.completion.chunk", choices=[], usage=usage))
                self.stream(chunks, slow=body.get("user") == "slow", pause=0.04)

            def tool_chat(self, body, base):
                # A call of the first tool for each of CITIES, its arguments in two pieces when streamed.
                name = body["tools"][0]["function"]["name"]
                calls = [{"id": f"call_{i}", "type": "function",
                          "function": {"name": name, "arguments": json.dumps({"city": city})}} for i, city in enumerate(CITIES)]
                if not body.get("stream"):
                    return self.send_json(200, dict(base, object="chat.completion", usage=USAGE, choices=[
                        {"index": 0, "finish_reason": "tool_calls",
                         "message": {"role": "assistant", "content": None, "tool_calls": calls}}]))
                chunk = lambda delta, finish=None: dict(base, object="chat.completion.chunk",
                                                        choices=[{"index": 0, "delta": delta, "finish_reason": finish}])
                chunks = [chunk({"role": "assistant", "content": None})]
                for i, call in enumerate(calls):
                    arguments = call["function"]["arguments"]
                    chunks.append(chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                                         "function": {"name": name, "arguments": arguments[:5]}}]}))
                    chunks.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": arguments[5:]}}]}))
                chunks.append(chunk({}, "tool_calls"))
                if (body.get("stream_options") or {}).get("include_usage"):
                    chunks.append(dict(base, object="chat.completion.chunk", choices=[], usage=USAGE))
                self.stream(chunks)

            def chat(self, body, mode):
                base = {"id": "chatcmpl-up", "created": 1, "model": body["model"]}
                if mode == "honest":
                    return self.honest_chat(body, base)
                if mode == "tools" and body.get("tools") and body["messages"][-1]["role"] == "user":
                    return self.tool_chat(body, base)
                if not body.get("stream"):
                    answer = dict(base, object="chat.completion", choices=[{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": "".join(WORDS)}}])
                    if mode != "no_usage":
                        answer["usage"] = USAGE
                    return self.send_json(200, answer)
                chunks = [dict(base, object="chat.completion.chunk", choices=[{"index": 0, "delta": {"content": w}, "finish_reason": None}])
                          for w in (WORDS * (upstream.slow_repeat if mode == "slow" else 1))]
                chunks.append(dict(base, object="chat.completion.chunk", choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
                if mode != "no_usage" and (body.get("stream_options") or {}).get("include_usage"):
                    chunks.append(dict(base, object="chat.completion.chunk", choices=[], usage=USAGE))
                self.stream(chunks, slow=mode == "slow")

            def completion(self, body, mode):
                base = {"id": "cmpl-up", "object": "text_completion", "created": 1, "model": body["model"]}
                if not body.get("stream"):
                    answer = dict(base, choices=[{"index": 0, "text": "".join(WORDS), "finish_reason": "stop", "logprobs": None}])
                    if mode != "no_usage":
                        answer["usage"] = USAGE
                    return self.send_json(200, answer)
                chunks = [dict(base, choices=[{"index": 0, "text": w, "finish_reason": None, "logprobs": None}]) for w in WORDS]
                if mode != "no_usage" and (body.get("stream_options") or {}).get("include_usage"):
                    chunks.append(dict(base, choices=[], usage=USAGE))
                self.stream(chunks)

            def stream(self, chunks, slow=False, pause=0.02):
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    for chunk in chunks:
                        self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                        self.wfile.flush()
                        if slow:
                            time.sleep(pause)
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.serve(Handler)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}/v1"

    def received(self, suffix):
        with self.lock:
            return [r for r in self.requests if r[0].endswith(suffix)]
