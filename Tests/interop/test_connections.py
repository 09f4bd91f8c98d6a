"""The HTTP port against slow and hostile clients: a slowloris (headers a byte at a time), a
slow body and an idle connection are cut after their timeouts while normal requests keep being
answered; past --max-connections a connection is closed on arrival; what the HTTP parser
rejects gets the JSON error envelope with an x-request-id."""

import json
import socket
import threading
import time

import httpx
import pytest

from conftest import start_server, wait_ready

LIMITS = ["--read-header-timeout", "2", "--body-timeout", "3", "--idle-timeout", "4"]


def connect(server):
    sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def closed_within(sock, seconds, trickle=None):
    """Seconds until the server closed `sock` (None if it stayed open that long); `trickle`,
    when given, is sent every 0.25 s meanwhile, like a slowloris."""
    started = time.monotonic()
    sock.settimeout(0.25)
    while time.monotonic() - started < seconds:
        try:
            if trickle is not None:
                sock.sendall(trickle)
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - started
    return None


@pytest.fixture
def guarded(tmp_path):
    for server in start_server(tmp_path, "--demo", *LIMITS):
        wait_ready(server)
        yield server


def test_slow_clients_are_cut_while_normal_requests_are_answered(guarded):
    # 200 slowloris connections: a request line, then a header byte every 0.25 s, never done.
    slow = []
    for _ in range(200):
        sock = connect(guarded)
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: lumen\r\n")
        slow.append(sock)

    latencies, failures, stop = [], [], threading.Event()

    def normal_traffic():
        with httpx.Client(base_url=guarded.http, timeout=5) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    response = client.get("/healthz")
                    assert response.status_code == 200
                    latencies.append(time.monotonic() - started)
                except Exception as error:  # noqa: BLE001 - every failure counts
                    failures.append(error)
                time.sleep(0.02)

    traffic = threading.Thread(target=normal_traffic)
    traffic.start()
    try:
        cut = [None] * len(slow)

        def watch(index):
            cut[index] = closed_within(slow[index], 8, trickle=b"X")

        watchers = [threading.Thread(target=watch, args=(i,)) for i in range(len(slow))]
        for watcher in watchers:
            watcher.start()
        for watcher in watchers:
            watcher.join()
    finally:
        stop.set()
        traffic.join()
        for sock in slow:
            sock.close()
    assert all(seconds is not None for seconds in cut), f"{cut.count(None)} slow connections were never cut"
    assert max(cut) < 6, f"the slowest cut took {max(cut):.1f} s with a 2 s header timeout"
    assert not failures, failures[:3]
    assert len(latencies) > 20
    assert max(latencies) < 1.0, f"a normal request took {max(latencies):.2f} s during the attack"


def test_a_slow_body_and_an_idle_connection_are_closed(guarded):
    body = connect(guarded)
    body.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: lumen\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n{")
    seconds = closed_within(body, 10, trickle=b" ")
    assert seconds is not None and 2.5 < seconds < 6, seconds

    idle = connect(guarded)
    seconds = closed_within(idle, 10)
    assert seconds is not None and 3.5 < seconds < 7, seconds

    # A keep-alive connection is not cut by the header timeout between its requests.
    with httpx.Client(base_url=guarded.http, timeout=5) as client:
        assert client.get("/healthz").status_code == 200
        time.sleep(2.5)
        assert client.get("/healthz").status_code == 200


def test_each_request_on_a_connection_gets_its_own_deadlines(guarded):
    """A request that follows a served one on the same connection is held to its own header
    deadline (2 s from its first byte), not to what is left of the one before's (the body's 3 s,
    set when the first request's head came)."""
    sock = connect(guarded)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: lumen\r\n\r\n")
    sock.settimeout(5)
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:40]
    time.sleep(1.5)  # inside the idle timeout; then a request whose headers never end
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: lumen\r\n")
    seconds = closed_within(sock, 8, trickle=b"X")
    assert seconds is not None and 1.5 < seconds < 3.5, seconds


def test_past_the_connection_cap_connections_are_closed_on_arrival(tmp_path):
    for server in start_server(tmp_path, "--demo", "--max-connections", "5"):
        wait_ready(server)
        # Six at once: whichever the server takes in last (its event loops set up connections
        # in parallel, so not necessarily the last one opened) is closed on arrival, and only it.
        socks = [connect(server) for _ in range(6)]
        for sock in socks:
            sock.settimeout(0.05)
        closed = set()
        started = time.monotonic()
        while time.monotonic() - started < 5 and not closed:
            for index, sock in enumerate(socks):
                try:
                    if sock.recv(4096) == b"":
                        closed.add(index)
                except socket.timeout:
                    pass
                except (ConnectionResetError, BrokenPipeError):
                    closed.add(index)
        assert len(closed) == 1, f"{len(closed)} of six connections were closed with a cap of five"
        time.sleep(0.5)  # the five others stay open
        for index, sock in enumerate(socks):
            if index in closed:
                continue
            try:
                assert sock.recv(4096) != b"", "a connection within the cap was closed"
            except socket.timeout:
                pass
        for sock in socks:
            sock.close()
        time.sleep(0.3)
        assert httpx.get(server.http + "/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("raw", [
    b"GET /\xff HTTP/1.1\r\nHost: lumen\r\n\r\n",
    b"GET / HTTP/1.1\rHost: lumen\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: lu\x00men\r\n\r\n",
])
def test_what_the_parser_rejects_gets_the_json_error(guarded, raw):
    sock = connect(guarded)
    sock.sendall(raw)
    data = b""
    sock.settimeout(5)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), data
    assert b"x-request-id: req_" in head.lower()
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_http" and error["type"] == "invalid_request_error"
