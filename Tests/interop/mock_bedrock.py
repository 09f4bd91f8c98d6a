"""A mock of AWS Bedrock's runtime (Converse and ConverseStream) for the interop tests, held to
AWS's own definitions through botocore (PyPI `boto3`): every request's Signature Version 4 is
recomputed with botocore's signer from what arrived (or a Bedrock API key checked as a bearer
token), every body is validated against the `bedrock-runtime` service model's input shape
(unknown fields, wrong types and missing members refused as AWS refuses them), and every
answer is checked to parse under the model's output shape — event streams framed with CRCs that
botocore's own event stream decoder reads. It records what it received and answers by a
script: tool uses for each city when the request offers tools and the user spoke last, else
text."""

import base64
import datetime
import json
import struct
import threading
import zlib
from unittest import mock
from urllib.parse import unquote

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ParamValidationError
from botocore.parsers import create_parser
from botocore.validate import validate_parameters

from mock_http import MockHandler, MockServer

ACCESS_KEY = "AKIAINTEROP"
SECRET_KEY = "interop/secret+key"
SESSION_TOKEN = "interop-session-token"
API_KEY = "bedrock-api-key-interop"
REGION = "eu-west-3"
# What every answer reports: fresh input, cache reads and writes, output.
USAGE = {"inputTokens": 90, "outputTokens": 30, "totalTokens": 260, "cacheReadInputTokens": 120, "cacheWriteInputTokens": 20}
REPLY = ["Bonjour", " from", " Bedrock", "."]
CITIES = ["Paris", "Lyon"]
MODEL = botocore.session.get_session().get_service_model("bedrock-runtime")


class Refused(Exception):
    def __init__(self, status, kind, message):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def blobs_decoded(value, shape):
    """A JSON body as botocore's Python parameters: base64 blobs as bytes."""
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: blobs_decoded(v, shape.members[k]) if k in shape.members else v for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [blobs_decoded(v, shape.member) for v in value]
    if shape.type_name == "blob" and isinstance(value, str):
        return base64.b64decode(value)
    return value


def frame(headers, payload):
    """One event stream message (string headers), as AWS frames it."""
    encoded = b"".join(bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value)) + value.encode()
                       for name, value in headers)
    prelude = struct.pack(">II", 16 + len(encoded) + len(payload), len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


class MockBedrock(MockServer):
    def __init__(self):
        self.requests = []          # (path, headers dict, body dict)
        self.lock = threading.Lock()
        bedrock = self

        class Handler(MockHandler):
            def do_POST(self):
                headers, raw, body = self.read_request()
                with bedrock.lock:
                    bedrock.requests.append((self.path, headers, body))
                try:
                    bedrock.authenticate(self.path, headers, raw)
                    parts = self.path.split("/")
                    if len(parts) != 4 or parts[1] != "model" or parts[3] not in ("converse", "converse-stream"):
                        raise Refused(404, "UnknownOperationException", f"no operation at {self.path}")
                    operation = "Converse" if parts[3] == "converse" else "ConverseStream"
                    response = bedrock.answer(operation, unquote(parts[2]), body)
                except Refused as refused:
                    return self.send_json(refused.status, {"message": refused.message}, extra={
                        "x-amzn-errortype": f"{refused.kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"})
                if operation == "Converse":
                    return self.send_json(200, response)
                self.stream(response)

            def stream(self, response):
                """As ConverseStream answers: messageStart, each block's start, deltas and stop,
                messageStop, then metadata with the usage — each a frame of its own."""
                events = [("messageStart", {"role": "assistant"})]
                for index, block in enumerate(response["output"]["message"]["content"]):
                    if "text" in block:
                        events += [("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": word}})
                                   for word in REPLY]
                    else:
                        use = block["toolUse"]
                        events.append(("contentBlockStart", {"contentBlockIndex": index, "start": {
                            "toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}}))
                        arguments = json.dumps(use["input"])
                        events += [("contentBlockDelta", {"contentBlockIndex": index, "delta": {"toolUse": {"input": part}}})
                                   for part in (arguments[:6], arguments[6:])]
                    events.append(("contentBlockStop", {"contentBlockIndex": index}))
                events.append(("messageStop", {"stopReason": response["stopReason"]}))
                events.append(("metadata", {"usage": response["usage"], "metrics": {"latencyMs": 12}}))
                frames = b"".join(frame([(":event-type", kind), (":content-type", "application/json"),
                                         (":message-type", "event")], json.dumps(payload).encode())
                                  for kind, payload in events)
                bedrock.check_stream(frames)
                self.send_response(200)
                self.send_header("content-type", "application/vnd.amazon.eventstream")
                self.send_header("content-length", str(len(frames)))
                self.end_headers()
                # In pieces that cut frames apart, as a network does.
                for start in range(0, len(frames), 50):
                    self.wfile.write(frames[start:start + 50])
                    self.wfile.flush()

        self.serve(Handler)
        self.base_url = self.root_url

    def authenticate(self, path, headers, raw):
        """A Bedrock API key as a bearer token, or a SigV4 signature botocore computes the same."""
        authorization = headers.get("authorization", "")
        if authorization.startswith("Bearer "):
            if authorization != f"Bearer {API_KEY}":
                raise Refused(403, "AccessDeniedException", "Invalid API Key format: Must start with pre-defined prefix")
            return
        if not authorization.startswith("AWS4-HMAC-SHA256 "):
            raise Refused(403, "AccessDeniedException", "Missing Authentication Token")
        signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
        if headers.get("x-amz-security-token") != SESSION_TOKEN:
            raise Refused(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        at = datetime.datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ")
        request = AWSRequest(method="POST", url=f"http://{headers['host']}{path}", data=raw,
                             headers={name: headers[name] for name in signed
                                      if name not in ("host", "x-amz-date", "x-amz-security-token")})
        with mock.patch("botocore.auth.get_current_datetime", return_value=at):
            SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN), "bedrock", REGION).add_auth(request)
        if request.headers["Authorization"] != authorization:
            raise Refused(403, "InvalidSignatureException",
                          "The request signature we calculated does not match the signature you provided.")

    def answer(self, operation, model_id, body):
        shape = MODEL.operation_model(operation).input_shape
        params = {"modelId": model_id, **blobs_decoded(body, shape)}
        try:
            validate_parameters(params, shape)
        except ParamValidationError as error:
            raise Refused(400, "ValidationException", str(error))
        messages = body["messages"]
        for earlier, later in zip(messages, messages[1:]):
            if earlier["role"] == later["role"]:
                raise Refused(400, "ValidationException", "A conversation must alternate between user and assistant roles.")
        last = messages[-1]
        wants_tools = body.get("toolConfig") and last["role"] == "user" and not any("toolResult" in b for b in last["content"])
        if wants_tools:
            name = body["toolConfig"]["tools"][0]["toolSpec"]["name"]
            content = [{"text": "Checking."}] + [
                {"toolUse": {"toolUseId": f"tooluse_{i}", "name": name, "input": {"city": city}}} for i, city in enumerate(CITIES)]
            stop = "tool_use"
        else:
            content = [{"text": "".join(REPLY)}]
            stop = "end_turn"
        response = {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
                    "usage": dict(USAGE), "metrics": {"latencyMs": 120}}
        # The answer is what botocore reads as a ConverseResponse.
        parsed = create_parser("rest-json").parse(
            {"body": json.dumps(response).encode(), "headers": {}, "status_code": 200},
            MODEL.operation_model("Converse").output_shape)
        assert parsed["stopReason"] == stop and parsed["usage"]["inputTokens"] == USAGE["inputTokens"], parsed
        return response

    @staticmethod
    def check_stream(frames):
        """botocore's own decoder reads every frame (both CRCs) back."""
        buffer = EventStreamBuffer()
        buffer.add_data(frames)
        assert all(message.headers[":message-type"] == "event" for message in buffer)

    def received(self, suffix="/converse"):
        with self.lock:
            return [(path, headers, body) for path, headers, body in self.requests if path.endswith(suffix)]
