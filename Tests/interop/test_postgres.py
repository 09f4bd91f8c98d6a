"""Every service on PostgreSQL (`--database`), in a deployment split as processes: the four
services in one, on PostgreSQL, a gateway in front, nothing in the data directory. The
organisation `lumen admin bootstrap --database` makes, a person's session and group, a key made
through the gateway and the lines of the requests it makes live in PostgreSQL; `lumen admin
ledger check --database` checks them; a second process cannot run the same service on the same
database.

Needs a server: LUMEN_TEST_POSTGRES_URL (scripts/test.sh starts one)."""

import json
import os
import secrets
import subprocess
from contextlib import ExitStack

import httpx

from conftest import lumen_binary, psql, start_server, wait_ready
from mock_upstream import MockUpstream
from test_ledger import PER_CALL_MICROS, all_lines, micros, write_config
from test_management_http import call
from test_replicas import create_key


def test_every_service_on_postgres_in_a_split_deployment(tmp_path, database):
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

        stored = start("stored", "--services", "accounts,keys,ledger,registry", "--database", database, "--config",
                       str(config), listeners=("gRPC",))
        assert "PostgreSQL" in stored.log()
        remote = []
        for component in ("keys", "accounts", "ledger", "registry"):
            remote += [f"--{component}-address", stored.grpc_target]
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
        assert not list(data.glob("*.sqlite")), "nothing in the data directory"

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

        key = create_key([gateway], token, {"name": "on postgres", "limitAmount": 1})
        assert psql(database, f"SELECT name FROM keys.keys WHERE id = '{key['id']}'") == "on postgres"
        status, answer = call(gateway, "POST", "/v1/chat/completions", key["key"],
                              {"model": "per-call", "messages": [{"role": "user", "content": "hi"}]})
        assert status == 200, answer
        lines = all_lines(gateway, token, key["id"])
        assert [micros(line["cost"]) for line in lines] == [PER_CALL_MICROS]
        assert psql(database, "SELECT status, cost_micros FROM ledger.usage_lines") == f"2|{PER_CALL_MICROS}"
        assert psql(database, f"SELECT spent_micros FROM ledger.pools WHERE owner_id = '{key['id']}'") == str(PER_CALL_MICROS)
        check = subprocess.run([lumen_binary(), "admin", "ledger", "check", "--data-dir", str(data), "--database", database],
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stderr
        assert json.loads(check.stdout)["ok"] and json.loads(check.stdout)["pools"] >= 2
        assert not list(data.glob("*.sqlite")), "nothing in the data directory"

        # One process a service on a database.
        for service in ("accounts", "ledger"):
            twin = subprocess.run(
                [lumen_binary(), "serve", "--services", service, "--database", database, "--data-dir", str(tmp_path / "twin"),
                 "--grpc-port", "0", "--keys-address", stored.grpc_target, "--accounts-address", stored.grpc_target],
                capture_output=True, text=True, timeout=60, env={**os.environ, **env})
            assert twin.returncode != 0 and f"the {service} service already runs on" in twin.stderr


def test_an_unreachable_database_is_named_at_once(tmp_path):
    """Nothing listens at the URL: `lumen admin` and `lumen serve` say they cannot connect to it
    (password hidden) within the connection's timeout, instead of waiting on a pool that retries."""
    import socket
    import time

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        url = f"postgres://lumen:hunter2@127.0.0.1:{port}/lumen"
        for command in (["admin", "ledger", "check"], ["admin", "bootstrap", "--org", "Acme", "--admin-email", "a@acme.test"],
                        ["serve", "--services", "ledger", "--grpc-port", "0", "--metrics-port", "0"]):
            started = time.monotonic()
            result = subprocess.run([lumen_binary(), *command, "--data-dir", str(tmp_path / "data"), "--database", url],
                                    capture_output=True, text=True, timeout=60,
                                    env={**os.environ, "LUMEN_INTERNAL_TOKEN": secrets.token_hex(32)})
            assert result.returncode != 0, result.stdout
            assert f"cannot connect to postgres://lumen:***@127.0.0.1:{port}/lumen" in result.stderr, result.stderr
            assert "hunter2" not in result.stderr and time.monotonic() - started < 20, command
