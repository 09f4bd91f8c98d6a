"""Fixtures for the interop tests: a real `lumen serve` process and a Python client
generated from proto/ with grpcio-tools.

The binary is LUMEN_BIN, or .build/debug/lumen at the repository root (built by
`swift build`). Every server a test starts is stopped by the fixture.
"""

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lumen_binary() -> str:
    binary = os.environ.get("LUMEN_BIN") or str(ROOT / ".build" / "debug" / "lumen")
    if not Path(binary).exists():
        pytest.fail(f"no lumen binary at {binary}: run `swift build` first or set LUMEN_BIN")
    return binary


@pytest.fixture(scope="session")
def lumen_api(tmp_path_factory):
    """Generates Python modules from proto/ and returns a namespace of them."""
    from grpc_tools import protoc
    import grpc_tools

    out = tmp_path_factory.mktemp("generated")
    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto"))
    include = str(Path(grpc_tools.__file__).parent / "_proto")
    code = protoc.main(
        ["grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}"]
        + protos
    )
    assert code == 0, "grpc_tools.protoc failed on proto/"
    sys.path.insert(0, str(out))
    from lumen.keys.v1 import keys_pb2, keys_pb2_grpc
    from lumen.accounts.v1 import accounts_pb2, accounts_pb2_grpc
    from lumen.ledger.v1 import ledger_pb2, ledger_pb2_grpc
    from lumen.registry.v1 import registry_pb2, registry_pb2_grpc

    class API:
        pass

    api = API()
    api.keys_pb2, api.keys_pb2_grpc = keys_pb2, keys_pb2_grpc
    api.accounts_pb2, api.accounts_pb2_grpc = accounts_pb2, accounts_pb2_grpc
    api.ledger_pb2, api.ledger_pb2_grpc = ledger_pb2, ledger_pb2_grpc
    api.registry_pb2, api.registry_pb2_grpc = registry_pb2, registry_pb2_grpc
    return api


class Server:
    def __init__(self, process, log_path, http_port, grpc_port, data_dir):
        self.process = process
        self.log_path = log_path
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.data_dir = data_dir

    @property
    def http(self):
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self):
        return f"127.0.0.1:{self.grpc_port}"

    def log(self):
        # Lumen writes its lines in batches at most 10 ms old (README, "Logs"): wait for the last.
        time.sleep(0.05)
        return Path(self.log_path).read_text(errors="replace")

    def bootstrap(self, org, email):
        result = subprocess.run(
            [lumen_binary(), "admin", "bootstrap", "--org", org, "--admin-email", email, "--data-dir", self.data_dir],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


def start_server(tmp_path, *extra, env=None, listeners=("HTTP", "gRPC", "metrics"), data_dir=None):
    """Starts `lumen serve` on free loopback ports, logging at trace level to a file, and
    yields it; stops it afterwards. `env` adds environment variables; `listeners` are those
    the process is waited for (a split process has only some of them); `data_dir` defaults to
    `tmp_path/data`."""
    data_dir = data_dir or tmp_path / "data"
    log_path = tmp_path / "lumen.log"
    out_path = tmp_path / "lumen.out"
    log = open(log_path, "w")
    out = open(out_path, "w")
    process = subprocess.Popen(
        [lumen_binary(), "serve", "--data-dir", str(data_dir), "--http-port", "0", "--grpc-port", "0",
         "--metrics-port", "0", "--log-level", "trace", *extra],
        stdout=out, stderr=log, env={**os.environ, **(env or {})},
    )
    try:
        deadline = time.time() + 60
        found = {}
        while time.time() < deadline and not all(found.get(name) for name in listeners):
            if process.poll() is not None:
                pytest.fail(f"lumen serve exited early:\n{log_path.read_text()}")
            text = log_path.read_text(errors="replace")
            for name in ("HTTP", "gRPC", "metrics"):
                if m := re.search(name + r" listening on [\d.]+:(\d+)", text):
                    found[name] = int(m.group(1))
            time.sleep(0.05)
        if not all(found.get(name) for name in listeners):
            pytest.fail(f"lumen serve did not report its ports:\n{log_path.read_text()}")
        http_port, grpc_port, metrics_port = found.get("HTTP"), found.get("gRPC"), found.get("metrics")
        server = Server(process, log_path, http_port, grpc_port, str(data_dir))
        server.metrics = f"http://127.0.0.1:{metrics_port}"
        server.stdout_path = out_path
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        out.close()


def start_split(tmp_path, stack, config, *flags, env, gateways=1):
    """A split deployment: the four services in one `lumen serve` (with the models of `config`),
    and `gateways` gateway processes reaching them over gRPC, each with `flags` and `env` (the
    shared internal token); every process is stopped when `stack` closes. Returns the services
    process and the gateways, ready."""
    def start(name, *more, listeners):
        (tmp_path / name).mkdir()
        servers = start_server(tmp_path / name, *more, *flags, env=env, listeners=listeners)
        stack.callback(servers.close)
        return next(servers)

    services = start("services", "--services", "accounts,keys,ledger,registry", "--config", str(config),
                     listeners=("gRPC",))
    remote = []
    for component in ("keys", "accounts", "ledger", "registry"):
        remote += [f"--{component}-address", services.grpc_target]
    started = [start(f"gateway-{index}", "--services", "gateway", *remote, listeners=("HTTP", "metrics"))
               for index in range(gateways)]
    for gateway in started:
        wait_ready(gateway)
    return services, started


def wait_ready(server, timeout=30):
    """Waits until /healthz is 200: the gateway's caches have synced and the ledger stream is open."""
    import urllib.request
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(server.http + "/healthz", timeout=5) as response:
                if response.status == 200:
                    return
        except Exception:
            pass
        assert time.time() < deadline, "the gateway did not become ready"
        time.sleep(0.05)


@pytest.fixture
def server(tmp_path):
    """`lumen serve` on an empty data directory."""
    yield from start_server(tmp_path)


@pytest.fixture
def demo(tmp_path):
    """`lumen serve --demo`, with the credentials it printed as its first line of output."""
    for server in start_server(tmp_path, "--demo"):
        first = Path(server.stdout_path).read_text().splitlines()[0]
        server.credentials = json.loads(first)
        wait_ready(server)
        yield server


@contextmanager
def postgres_database():
    """A fresh database on the test server of LUMEN_TEST_POSTGRES_URL (scripts/postgres.sh starts
    one), its URL; dropped afterwards. Skips without a server, unless LUMEN_TEST_POSTGRES_REQUIRED=1."""
    server = os.environ.get("LUMEN_TEST_POSTGRES_URL")
    if not server:
        if os.environ.get("LUMEN_TEST_POSTGRES_REQUIRED") == "1":
            pytest.fail("LUMEN_TEST_POSTGRES_REQUIRED=1 but no LUMEN_TEST_POSTGRES_URL")
        pytest.skip("no LUMEN_TEST_POSTGRES_URL (scripts/postgres.sh start DIR prints one)")
    name = "lumen_interop_" + secrets.token_hex(6)
    subprocess.run(["psql", server, "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    try:
        yield urlunsplit(urlsplit(server)._replace(path="/" + name))
    finally:
        subprocess.run(["psql", server, "-q", "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


@pytest.fixture
def database():
    """A fresh PostgreSQL database for one test (`postgres_database`)."""
    with postgres_database() as url:
        yield url


def psql(url, sql):
    result = subprocess.run(["psql", url, "-At", "-c", sql], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


CHROMIUM = os.environ.get("LUMEN_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium, driven by Playwright, for the tests of a module."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/setup.sh --tests (Debian's chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield browser
        browser.close()
