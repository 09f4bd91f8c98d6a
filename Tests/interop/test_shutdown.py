"""SIGTERM: an idle server exits at once; under load it stops accepting, lets the requests in
flight finish within the grace (`--shutdown-grace`), cancels and bills what is left when the
grace is over, settles every hold and exits 0."""

import signal
import threading
import time

import httpx
import pytest

from conftest import start_server, wait_ready
from mock_upstream import MockUpstream
from test_ledger import all_lines, create_key
from test_upstream_inference import ledger_check


@pytest.fixture
def upstream():
    with MockUpstream() as server:
        yield server


def config(tmp_path, upstream):
    path = tmp_path / "lumen.yaml"
    path.write_text(f"""
models:
  - name: gpt-test
    vendor: OpenAI
    scenes: [chat]
    prices: {{input: 0.15, output: 0.60}}
    max_output_tokens: 1024
    backends:
      - {{id: live, provider: openai, base_url: "{upstream.base_url}", timeout_ms: 60000}}
""")
    return path


def stop(server):
    """Sends SIGTERM and returns (exit code, seconds until the process ended)."""
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(timeout=60)
    return code, time.monotonic() - started


def test_an_idle_server_exits_within_two_seconds(tmp_path):
    for server in start_server(tmp_path, "--demo"):
        wait_ready(server)
        code, seconds = stop(server)
        assert code == 0
        assert seconds < 2, f"SIGTERM took {seconds:.1f} s"
        assert "shutdown grace over" not in server.log()


def settled_line(tmp_path, path, tenant, key, request_id):
    """Restarts the server and returns the request's usage line, checking that the ledger was
    left with no open hold: it was settled before the exit, not by the reconciler (hold_ttl is
    15 minutes)."""
    runs = start_server(tmp_path, "--config", str(path))
    server = next(runs)
    try:
        wait_ready(server)
        report = ledger_check(server)
        assert report["ok"] and report["open_holds"] == 0, report
        (line,) = [l for l in all_lines(server, tenant["management_token"], key["id"]) if l["request_id"] == request_id]
        assert line["status"] == "settled"
        return line
    finally:
        runs.close()


def start_stream(server, secret, chunks):
    """Starts a streaming chat in a thread; returns the thread. `chunks` collects what arrives."""
    first = threading.Event()

    def run():
        try:
            with httpx.Client(base_url=server.http, timeout=60) as client:
                with client.stream("POST", "/v1/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                                   json={"model": "gpt-test", "stream": True,
                                         "messages": [{"role": "user", "content": "hello"}]}) as response:
                    chunks.append(response.headers["x-request-id"])
                    for chunk in response.iter_text():
                        chunks.append(chunk)
                        first.set()
        except httpx.HTTPError as error:
            chunks.append(error)
        finally:
            first.set()

    thread = threading.Thread(target=run)
    thread.start()
    assert first.wait(timeout=30)
    return thread


def test_under_load_requests_in_flight_finish_and_are_settled(tmp_path, upstream):
    path = config(tmp_path, upstream)
    upstream.mode = "slow"
    upstream.slow_repeat = 30  # about 3 s of streaming
    runs = start_server(tmp_path, "--config", str(path), "--shutdown-grace", "20")
    server = next(runs)
    try:
        wait_ready(server)
        tenant = server.bootstrap("Acme", "admin@acme.test")
        key = create_key(server, tenant["management_token"], {"name": "load"})
        chunks = []
        thread = start_stream(server, key["key"], chunks)
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # No new request is accepted while the stream finishes.
        with pytest.raises(httpx.HTTPError):
            httpx.get(server.http + "/healthz", timeout=2)
        code = server.process.wait(timeout=60)
        seconds = time.monotonic() - started
        thread.join(timeout=30)
        assert code == 0
        assert "".join(c for c in chunks[1:] if isinstance(c, str)).endswith("data: [DONE]\n\n"), chunks[-3:]
        assert seconds < 15, f"exit took {seconds:.1f} s for a 3 s stream"
        request_id = chunks[0]
    finally:
        runs.close()

    upstream.mode = "ok"
    line = settled_line(tmp_path, path, tenant, key, request_id)
    assert not line["estimated"] and line["output_tokens"] > 0


def test_when_the_grace_is_over_streams_are_cut_and_billed_for_what_they_produced(tmp_path, upstream):
    path = config(tmp_path, upstream)
    upstream.mode = "slow"  # about 20 s of streaming
    runs = start_server(tmp_path, "--config", str(path), "--shutdown-grace", "1")
    server = next(runs)
    try:
        wait_ready(server)
        tenant = server.bootstrap("Acme", "admin@acme.test")
        key = create_key(server, tenant["management_token"], {"name": "load"})
        chunks = []
        thread = start_stream(server, key["key"], chunks)
        time.sleep(0.5)
        code, seconds = stop(server)
        thread.join(timeout=30)
        assert code == 0
        assert seconds < 6, f"exit took {seconds:.1f} s with a 1 s grace"
        assert "shutdown grace over" in server.log()
        request_id = chunks[0]
    finally:
        runs.close()

    upstream.mode = "ok"
    line = settled_line(tmp_path, path, tenant, key, request_id)
    assert line["estimated"] and line["output_tokens"] > 0
    assert 0 < line["cost"] < 1024 * 0.60 / 1_000_000  # what it produced, less than the hold of 1,024 tokens
