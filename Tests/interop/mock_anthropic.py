"""A mock of Anthropic's Messages API for the interop tests. Every answer and every stream event
is built from the official `anthropic` SDK's own types (`anthropic.types`) and serialised by
them, so that what Lumen reads is Anthropic's wire format as the SDK defines it, not as Lumen
expects it. It records what it received and answers by a script: a text reply, or tool calls
when the request offers tools and the last turn is the user's."""

import json
import threading

from anthropic.types import (
    Message,
    MessageTokensCount,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    TextBlock,
    TextDelta,
    InputJSONDelta,
    ToolUseBlock,
    Usage,
    MessageDeltaUsage,
)

from mock_http import MockHandler, MockServer

# What every answer reports: fresh input, cache writes and reads, output.
USAGE = {"input_tokens": 120, "cache_creation_input_tokens": 30, "cache_read_input_tokens": 400, "output_tokens": 25}
REPLY = ["Bonjour", " from", " Claude", "."]
CITIES = ["Paris", "Lyon"]


class MockAnthropic(MockServer):
    def __init__(self):
        self.requests = []          # (path, headers dict, body dict)
        self.counted = 42           # what count_tokens answers
        self.lock = threading.Lock()
        anthropic = self

        class Handler(MockHandler):
            def do_GET(self):
                with anthropic.lock:
                    anthropic.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, None))
                if self.path.split("?")[0] == "/v1/models":
                    return self.send_json(200, {"data": [{"type": "model", "id": "claude-test", "display_name": "Claude",
                                                          "created_at": "2025-01-01T00:00:00Z"}],
                                                "has_more": False, "first_id": "claude-test", "last_id": "claude-test"})
                return self.send_error_json(404, "not_found_error", "no such path")

            def do_POST(self):
                headers, _, body = self.read_request()
                with anthropic.lock:
                    anthropic.requests.append((self.path, headers, body))
                path = self.path.split("?")[0]
                if path not in ("/v1/messages", "/v1/messages/count_tokens"):
                    return self.send_error_json(404, "not_found_error", "no such path")
                if headers.get("x-api-key") != "sk-ant-interop":
                    return self.send_error_json(401, "authentication_error", "invalid x-api-key")
                if path.endswith("/count_tokens"):
                    return self.send_json(200, MessageTokensCount(input_tokens=anthropic.counted).model_dump())
                if body.get("max_tokens", 0) > 8192:
                    return self.send_error_json(400, "invalid_request_error", "max_tokens: 9000 > 8192, the most for this model")
                message = anthropic.answer(body)
                if body.get("stream"):
                    return self.stream(message)
                return self.send_json(200, json.loads(message.model_dump_json()))

            def send_error_json(self, status, kind, message):
                self.send_json(status, {"type": "error", "error": {"type": kind, "message": message}})

            def stream(self, message):
                """The message as Anthropic streams it: message_start (no content, the input
                usage), each block's start, deltas and stop, message_delta, message_stop."""
                self.start_chunked("text/event-stream")
                start = message.model_copy(update={"content": [], "stop_reason": None,
                                                   "usage": message.usage.model_copy(update={"output_tokens": 1})})
                events = [RawMessageStartEvent(type="message_start", message=start)]
                for index, block in enumerate(message.content):
                    if isinstance(block, TextBlock):
                        events.append(RawContentBlockStartEvent(type="content_block_start", index=index,
                                                                content_block=TextBlock(type="text", text="")))
                        for word in REPLY:
                            events.append(RawContentBlockDeltaEvent(type="content_block_delta", index=index,
                                                                    delta=TextDelta(type="text_delta", text=word)))
                    else:
                        events.append(RawContentBlockStartEvent(
                            type="content_block_start", index=index,
                            content_block=ToolUseBlock(type="tool_use", id=block.id, name=block.name, input={})))
                        arguments = json.dumps(block.input)
                        for part in (arguments[:7], arguments[7:]):
                            events.append(RawContentBlockDeltaEvent(
                                type="content_block_delta", index=index,
                                delta=InputJSONDelta(type="input_json_delta", partial_json=part)))
                    events.append(RawContentBlockStopEvent(type="content_block_stop", index=index))
                events.append(RawMessageDeltaEvent(
                    type="message_delta", delta={"stop_reason": message.stop_reason, "stop_sequence": None},
                    usage=MessageDeltaUsage(output_tokens=message.usage.output_tokens)))
                events.append(RawMessageStopEvent(type="message_stop"))
                for event in events:
                    self.chunk(f"event: {event.type}\ndata: {event.model_dump_json()}\n\n".encode())
                    if event.type == "message_start":
                        self.chunk(b'event: ping\ndata: {"type": "ping"}\n\n')
                self.chunk(b"")

        self.serve(Handler)
        self.base_url = self.root_url

    def answer(self, body):
        """Tool calls for each city when tools are offered and the user spoke last; else text."""
        last = body["messages"][-1]
        blocks = last["content"] if isinstance(last["content"], list) else [{"type": "text", "text": last["content"]}]
        wants_tools = body.get("tools") and last["role"] == "user" and all(
            block.get("type") != "tool_result" for block in blocks)
        if wants_tools:
            content = [TextBlock(type="text", text="Checking.")] + [
                ToolUseBlock(type="tool_use", id=f"toolu_{i}", name=body["tools"][0]["name"], input={"city": city})
                for i, city in enumerate(CITIES)]
            stop = "tool_use"
        else:
            content = [TextBlock(type="text", text="".join(REPLY))]
            stop = "end_turn"
        return Message(id="msg_interop", type="message", role="assistant", model=body["model"], content=content,
                       stop_reason=stop, stop_sequence=None, usage=Usage(**USAGE))

    def received(self, path="/v1/messages"):
        with self.lock:
            return [(headers, body) for p, headers, body in self.requests if p.split("?")[0] == path]
