"""Tracing (README, "Tracing"): Lumen exports OpenTelemetry spans over OTLP to a collector —
here a real OTLP/gRPC receiver built from the `opentelemetry-proto` package with grpcio, which
keeps every span it is sent. A request's spans form one tree: the HTTP request (continuing the
caller's `traceparent`), its admission, hold, upstream call (GenAI attributes) and settlement,
and — in a split deployment — the ledger's spans in the services' process, children of the
gateway's hold and settlement, and the services' spans of management calls, children of the
gateway's client spans. The upstream gets the upstream call's `traceparent`. Without
`--otlp-endpoint` nothing of the kind happens."""

import secrets
import threading
import time
from concurrent import futures
from contextlib import ExitStack, contextmanager

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from conftest import start_server, start_split, wait_ready
from mock_upstream import MockUpstream
from test_ledger import create_key, write_config
from test_management_http import call


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver: every span it is sent, with its resource's attributes."""

    def __init__(self):
        self.spans = []
        self.lock = threading.RLock()

    def Export(self, request, context):
        with self.lock:
            for resource_spans in request.resource_spans:
                resource = {a.key: value(a.value) for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append(Span(span, resource))
        return trace_service_pb2.ExportTraceServiceResponse()

    def wait(self, predicate, timeout=20, what="spans"):
        deadline = time.time() + timeout
        while True:
            with self.lock:
                found = [span for span in self.spans if predicate(span)]
            if found:
                return found
            assert time.time() < deadline, f"the collector never got {what}; it has: {self.names()}"
            time.sleep(0.1)

    def names(self):
        with self.lock:
            return sorted({span.name for span in self.spans})


def value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class Span:
    def __init__(self, span, resource):
        self.name = span.name
        self.trace_id = span.trace_id.hex()
        self.span_id = span.span_id.hex()
        self.parent_id = span.parent_span_id.hex()
        self.kind = span.kind
        self.attributes = {a.key: value(a.value) for a in span.attributes}
        self.error = span.status.code == span.status.STATUS_CODE_ERROR
        self.resource = resource

    def __repr__(self):
        return f"<{self.name} {self.span_id} parent {self.parent_id}>"


@contextmanager
def collector():
    receiver = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    receiver.endpoint = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        server.stop(grace=None)


def traceparent():
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, parent_id, f"00-{trace_id}-{parent_id}-01"


@pytest.fixture
def split(tmp_path):
    """The four services in one process, the gateway in another, both exporting to one collector."""
    env = {"LUMEN_INTERNAL_TOKEN": secrets.token_hex(32)}
    with collector() as receiver, MockUpstream() as upstream, ExitStack() as stack:
        config = write_config(tmp_path, upstream)
        services, (gateway,) = start_split(tmp_path, stack, config, "--otlp-endpoint", receiver.endpoint, env=env)
        tenant = services.bootstrap("Acme", "admin@acme.test")
        yield {"receiver": receiver, "upstream": upstream, "services": services, "gateway": gateway,
               "token": tenant["management_token"]}


def tree(receiver, trace_id, names):
    """The spans of `trace_id` named `names`, once the collector has them all."""
    found = {}

    def complete(_):
        with receiver.lock:
            spans = [span for span in receiver.spans if span.trace_id == trace_id]
        for name in names:
            matching = [span for span in spans if span.name == name]
            if matching:
                found[name] = matching[0]
        return len(found) == len(names)

    receiver.wait(complete, what=f"the spans {names} of trace {trace_id}")
    return found


def test_one_request_is_one_trace_across_the_gateway_the_ledger_and_the_upstream(split):
    receiver, upstream, gateway, token = split["receiver"], split["upstream"], split["gateway"], split["token"]
    key = create_key(gateway, token, {"name": "traced"})
    trace_id, caller_span, header = traceparent()
    response = httpx.post(
        gateway.http + "/v1/chat/completions", timeout=30,
        headers={"Authorization": f"Bearer {key['key']}", "traceparent": header},
        json={"model": "gpt-test", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 50})
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]

    spans = tree(receiver, trace_id, ["POST /v1/chat/completions", "lumen.admission", "lumen.hold", "chat gpt-test",
                                      "lumen.settle", "lumen.ledger.reserve", "lumen.ledger.settle"])
    http = spans["POST /v1/chat/completions"]
    # The caller's trace continues: the HTTP span is its span's child.
    assert http.parent_id == caller_span
    assert http.attributes["http.route"] == "/v1/chat/completions"
    assert http.attributes["http.response.status_code"] == 200
    assert http.attributes["lumen.request_id"] == request_id
    assert http.resource["service.name"] == "lumen" and http.resource["lumen.components"] == "gateway"
    for name in ["lumen.admission", "lumen.hold", "chat gpt-test", "lumen.settle"]:
        assert spans[name].parent_id == http.span_id, (name, spans[name].parent_id, http.span_id)
    assert spans["lumen.admission"].attributes["lumen.model"] == "gpt-test"
    assert spans["lumen.admission"].attributes["lumen.key_id"] == key["id"]
    assert spans["lumen.hold"].attributes["lumen.hold.output_bound_tokens"] == 50

    # The ledger runs in the other process: its spans are the gateway's hold's and settlement's children.
    reserve, settle = spans["lumen.ledger.reserve"], spans["lumen.ledger.settle"]
    assert reserve.parent_id == spans["lumen.hold"].span_id
    assert settle.parent_id == spans["lumen.settle"].span_id
    assert reserve.resource["lumen.components"] == "accounts,keys,ledger,registry"
    assert reserve.attributes["lumen.request_id"] == request_id

    # The upstream call, after the GenAI semantic conventions, with the usage the upstream reported.
    chat = spans["chat gpt-test"]
    assert chat.kind == trace_pb2.Span.SPAN_KIND_CLIENT and http.kind == trace_pb2.Span.SPAN_KIND_SERVER
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.system"] == "openai"
    assert chat.attributes["gen_ai.request.model"] == "gpt-test"
    assert chat.attributes["gen_ai.request.max_tokens"] == 50
    assert chat.attributes["gen_ai.usage.input_tokens"] == 1234  # the cached 200 included, as the conventions count
    assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 200
    assert chat.attributes["gen_ai.usage.output_tokens"] == 567
    assert chat.attributes["server.address"] == "127.0.0.1"
    assert not chat.error

    # …and the upstream was handed the call's context: the same trace, the call's span its parent.
    sent = [headers for path, headers, _ in upstream.requests if path.endswith("/chat/completions")]
    assert sent[-1]["traceparent"] == f"00-{trace_id}-{chat.span_id}-01"


def test_a_stream_and_a_refusal_are_traced_and_nothing_secret_is_recorded(split):
    receiver, gateway, token = split["receiver"], split["gateway"], split["token"]
    key = create_key(gateway, token, {"name": "streams"})
    trace_id, _, header = traceparent()
    with httpx.stream("POST", gateway.http + "/v1/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {key['key']}", "traceparent": header},
                      json={"model": "gpt-test", "stream": True,
                            "messages": [{"role": "user", "content": "stream please"}]}) as response:
        assert response.status_code == 200
        body = "".join(response.iter_text())
    assert "[DONE]" in body
    spans = tree(receiver, trace_id, ["POST /v1/chat/completions", "chat gpt-test", "lumen.settle", "lumen.ledger.settle"])
    # A stream's settlement is queued as its last event goes out, outside the handler: still the HTTP span's child.
    assert spans["lumen.settle"].parent_id == spans["POST /v1/chat/completions"].span_id
    assert spans["chat gpt-test"].attributes["gen_ai.usage.output_tokens"] == 567
    assert spans["chat gpt-test"].attributes["lumen.stream"] is True

    # A request the hold refuses: the hold's span and the ledger's carry the refusal's code.
    capped = create_key(gateway, token, {"name": "capped", "limitAmount": 0.01})  # per-call costs $0.04
    trace_id, _, header = traceparent()
    response = httpx.post(
        gateway.http + "/v1/chat/completions", timeout=30,
        headers={"Authorization": f"Bearer {capped['key']}", "traceparent": header},
        json={"model": "per-call", "messages": [{"role": "user", "content": "too dear"}]})
    assert response.status_code == 402, response.text
    spans = tree(receiver, trace_id, ["POST /v1/chat/completions", "lumen.hold", "lumen.ledger.reserve"])
    for name in ["lumen.hold", "lumen.ledger.reserve"]:
        assert spans[name].error and spans[name].attributes["error.type"] == "insufficient_quota", spans[name].attributes
    assert spans["POST /v1/chat/completions"].attributes["http.response.status_code"] == 402

    # A request without a traceparent starts a trace of its own.
    response = httpx.post(gateway.http + "/v1/chat/completions", timeout=30,
                          headers={"Authorization": f"Bearer {key['key']}"},
                          json={"model": "gpt-test", "messages": [{"role": "user", "content": "untraced caller"}]})
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    root = receiver.wait(lambda span: span.attributes.get("lumen.request_id") == request_id
                         and span.name == "POST /v1/chat/completions")[0]
    assert root.parent_id == ""

    # No key, token, prompt or answer in any span.
    time.sleep(1.5)
    with receiver.lock:
        recorded = " ".join(f"{span.name} {span.attributes} {span.resource}" for span in receiver.spans)
    for secret in [key["key"], capped["key"], token, "stream please", "too dear", "Hello from the upstream"]:
        assert secret not in recorded


def test_management_calls_are_traced_into_the_services_process(split):
    receiver, gateway, token = split["receiver"], split["gateway"], split["token"]
    trace_id, caller_span, header = traceparent()
    response = httpx.post(gateway.http + "/v1/management/api-keys", timeout=30,
                          headers={"Authorization": f"Bearer {token}", "traceparent": header}, json={"name": "rpc"})
    assert response.status_code == 200, response.text
    method = "lumen.keys.v1.KeysService/CreateKey"
    receiver.wait(lambda _: len([span for span in receiver.spans if span.trace_id == trace_id and span.name == method]) == 2,
                  what=f"{method} from both processes")
    spans = [span for span in receiver.spans if span.trace_id == trace_id and span.name == method]
    client = [span for span in spans if span.resource["lumen.components"] == "gateway"]
    server = [span for span in spans if span.resource["lumen.components"] != "gateway"]
    assert client and server, spans
    http = tree(receiver, trace_id, ["POST /v1/management/api-keys"])["POST /v1/management/api-keys"]
    assert http.parent_id == caller_span
    assert client[0].parent_id == http.span_id
    assert server[0].parent_id == client[0].span_id
    assert server[0].attributes["rpc.method"] == method


def test_without_an_endpoint_nothing_is_traced_and_the_upstream_gets_no_traceparent(tmp_path):
    with MockUpstream() as upstream:
        config = write_config(tmp_path, upstream)
        for server in start_server(tmp_path, "--config", str(config)):
            wait_ready(server)
            token = server.bootstrap("Acme", "admin@acme.test")["management_token"]
            key = create_key(server, token, {"name": "plain"})
            _, _, header = traceparent()
            response = httpx.post(
                server.http + "/v1/chat/completions", timeout=30,
                headers={"Authorization": f"Bearer {key['key']}", "traceparent": header},
                json={"model": "gpt-test", "messages": [{"role": "user", "content": "hello"}]})
            assert response.status_code == 200
            sent = [headers for path, headers, _ in upstream.requests if path.endswith("/chat/completions")]
            assert "traceparent" not in sent[-1]
            assert "exporting traces" not in server.log()


def test_a_bad_endpoint_or_protocol_stops_the_start_with_a_clear_message(tmp_path):
    import subprocess
    from conftest import lumen_binary
    for flags, message in [
        (["--otlp-endpoint", "collector:4317"], "--otlp-endpoint must be an OTLP collector's address"),
        (["--otlp-endpoint", "http://127.0.0.1:4317", "--otlp-protocol", "thrift"], "--otlp-protocol must be grpc or http/protobuf"),
        (["--otlp-endpoint", "http://127.0.0.1:4317/v1/traces"], "OTLP/gRPC takes http(s)://host:port"),
    ]:
        result = subprocess.run([lumen_binary(), "serve", "--data-dir", str(tmp_path / "data"), "--http-port", "0",
                                 "--grpc-port", "0", "--metrics-port", "0", *flags],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode != 0
        assert message in result.stderr, result.stderr


def test_one_process_traces_the_same_tree(tmp_path):
    """All in one process (the demo): the ledger takes the holds directly, not over the Meter
    stream, and its spans are still the gateway's hold's and settlement's children."""
    import json
    from pathlib import Path
    with collector() as receiver:
        for server in start_server(tmp_path, "--demo", "--otlp-endpoint", receiver.endpoint):
            wait_ready(server)
            credentials = json.loads(Path(server.stdout_path).read_text().splitlines()[0])
            trace_id, caller_span, header = traceparent()
            response = httpx.post(
                server.http + "/v1/chat/completions", timeout=30,
                headers={"Authorization": f"Bearer {credentials['api_key']}", "traceparent": header},
                json={"model": "lumen-demo", "messages": [{"role": "user", "content": "hello"}]})
            assert response.status_code == 200, response.text
            spans = tree(receiver, trace_id, ["POST /v1/chat/completions", "lumen.hold", "chat lumen-demo", "lumen.settle",
                                              "lumen.ledger.reserve", "lumen.ledger.settle"])
            assert spans["POST /v1/chat/completions"].parent_id == caller_span
            assert spans["lumen.ledger.reserve"].parent_id == spans["lumen.hold"].span_id
            assert spans["lumen.ledger.settle"].parent_id == spans["lumen.settle"].span_id
            assert spans["chat lumen-demo"].attributes["gen_ai.usage.output_tokens"] > 0
            assert spans["lumen.ledger.reserve"].resource["lumen.components"] == "accounts,keys,ledger,registry,gateway"
