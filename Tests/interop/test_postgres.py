"""Accounts, keys and the registry on PostgreSQL (`--database`), in a deployment split as
processes: those three on PostgreSQL, the ledger on SQLite, a gateway in front. The organisation
`lumen admin bootstrap --database` makes and a key made through the gateway live in PostgreSQL, a
request through it is metered; the ledger, which cannot use PostgreSQL yet, refuses it, and a
second process cannot run the same service on the same database.

Needs a server: LUMEN_TEST_POSTGRES_URL (scripts/test.sh starts one)."""

import json
import os
import secrets
import subprocess
import time
from contextlib import ExitStack
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from conftest import lumen_binary, start_server, wait_ready
from mock_upstream import MockUpstream
from test_ledger import PER_CALL_MICROS, all_lines, micros, write_config
from test_management_http import call


@pytest.fixture
def database():
    """A fresh database on the test server, dropped afterwards."""
    server = os.environ.get("LUMEN_TEST_POSTGRES_URL")
    if not server:
        if os.environ.get("LUMEN_TEST_POSTGRES_REQUIRED") == "1":
            pytest.fail("LUMEN_TEST_POSTGRES_REQUIRED=1 but no LUMEN_TEST_POSTGRES_URL")
        pytest.skip("no LUMEN_TEST_POSTGRES_URL (scripts/postgres.sh start DIR prints one)")
    name = "lumen_interop_" + secrets.token_hex(6)
    subprocess.run(["psql", server, "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    parts = urlsplit(server)
    yield urlunsplit(parts._replace(path="/" + name))
    subprocess.run(["psql", server, "-q", "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


def psql(url, sql):
    result = subprocess.run(["psql", url, "-At", "-c", sql], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_accounts_keys_and_registry_on_postgres_in_a_split_deployment(tmp_path, database):
    env = {"LUMEN_INTERNAL_TOKEN": secrets.token_hex(32)}
    data = tmp_path / "data"
    with MockUpstream() as upstream, ExitStack() as stack:
        config = write_config(tmp_path, upstream)

        def start(name, *flags, listeners):
            (tmp_path / name).mkdir()
            servers = start_server(tmp_path / name, *flags, "--log-level", "info", env=env, listeners=listeners,
                                   data_dir=data)
            stack.callback(servers.close)
            return next(servers)

        stored = start("stored", "--services", "accounts,keys,registry", "--database", database, "--config", str(config),
                       listeners=("gRPC",))
        assert "PostgreSQL" in stored.log()
        core = start("core", "--services", "ledger", "--keys-address", stored.grpc_target,
                     "--accounts-address", stored.grpc_target, listeners=("gRPC",))
        remote = ["--keys-address", stored.grpc_target, "--registry-address", stored.grpc_target,
                  "--accounts-address", stored.grpc_target, "--ledger-address", core.grpc_target]
        gateway = start("gateway", "--services", "gateway", *remote, listeners=("HTTP", "metrics"))
        wait_ready(gateway)

        # The models of the configuration reached the registry's schema.
        assert psql(database, "SELECT name FROM registry.models ORDER BY name") == "gpt-test\nper-call"

        bootstrap = subprocess.run(
            [lumen_binary(), "admin", "bootstrap", "--org", "Acme", "--admin-email", "admin@acme.test",
             "--data-dir", str(data), "--database", database], capture_output=True, text=True, timeout=60)
        assert bootstrap.returncode == 0, bootstrap.stderr
        token = json.loads(bootstrap.stdout)["management_token"]
        assert psql(database, "SELECT name FROM accounts.organizations") == "Acme"
        assert psql(database, "SELECT email FROM accounts.users WHERE is_admin") == "admin@acme.test"
        assert not (data / "accounts.sqlite").exists() and not (data / "keys.sqlite").exists()

        # A person made with `lumen admin user create` signs in through the gateway (a session row
        # in PostgreSQL) and makes a group there; names stay unique without regard to case.
        created = subprocess.run(
            [lumen_binary(), "admin", "user", "create", "--email", "grace@acme.test", "--name", "Grace", "--admin",
             "--password-stdin", "--server", stored.grpc_target, "--token", token],
            input="correct horse\n", capture_output=True, text=True, timeout=60)
        assert created.returncode == 0, created.stderr
        browser = httpx.Client(base_url=gateway.http, timeout=30)
        signed_in = browser.post("/api/session", json={"email": "grace@acme.test", "password": "correct horse"})
        assert signed_in.status_code == 200, signed_in.text
        assert psql(database, "SELECT count(*) FROM accounts.sessions") == "1"
        csrf = {"X-CSRF-Token": signed_in.json()["csrf_token"]}
        group = browser.post("/api/groups", json={"name": "Research"}, headers=csrf)
        assert group.status_code == 200, group.text
        again = browser.post("/api/groups", json={"name": "RESEARCH"}, headers=csrf)
        assert again.status_code == 409 and again.json()["error"]["code"] == "group_exists", again.text
        assert psql(database, "SELECT name FROM accounts.groups") == "Research"

        status, key = call(gateway, "POST", "/v1/management/api-keys", token, {"name": "on postgres", "limitAmount": 1})
        assert status == 200, key
        assert psql(database, f"SELECT name FROM keys.keys WHERE id = '{key['id']}'") == "on postgres"
        deadline = time.time() + 10
        while call(gateway, "GET", "/v1/models", key["key"])[0] != 200:
            assert time.time() < deadline, "the gateway never learned of the key"
            time.sleep(0.05)
        status, answer = call(gateway, "POST", "/v1/chat/completions", key["key"],
                              {"model": "per-call", "messages": [{"role": "user", "content": "hi"}]})
        assert status == 200, answer
        lines = all_lines(gateway, token, key["id"])
        assert [micros(line["cost"]) for line in lines] == [PER_CALL_MICROS]

        # One process a service on a database; the ledger does not use PostgreSQL yet.
        twin = subprocess.run(
            [lumen_binary(), "serve", "--services", "accounts", "--database", database, "--data-dir", str(tmp_path / "twin"),
             "--grpc-port", "0"], capture_output=True, text=True, timeout=60, env={**os.environ, **env})
        assert twin.returncode != 0 and "the accounts service already runs on" in twin.stderr
        refused = subprocess.run(
            [lumen_binary(), "serve", "--services", "ledger", "--database", database, "--data-dir", str(tmp_path / "other"),
             "--grpc-port", "0", "--keys-address", stored.grpc_target, "--accounts-address", stored.grpc_target],
            capture_output=True, text=True, timeout=60, env={**os.environ, **env})
        assert refused.returncode != 0 and "the ledger service does not keep its tables in PostgreSQL yet" in refused.stderr
