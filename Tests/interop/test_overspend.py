"""Trying to overspend, as an attacker (or an agent) would: random mixes of requests — 40 KB of
tool definitions, images by URL, JSON schemas, `n` choices, streams, callers who leave
mid-stream, keys revoked mid-stream, many at once — against small pools of two users, a client,
capped keys and the organisation, on SQLite and on PostgreSQL. The upstream keeps within
`max_tokens` and reports usage a real tokenizer could, so nothing may overrun: afterwards every
pool is at or above zero, each pool was charged exactly the sum of its lines, and
`lumen admin ledger check` is clean. Bounded: a fixed number of requests from a seeded plan."""

import json
import random
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import grpc
import httpx
import pytest

from conftest import postgres_database, start_server, wait_ready
from mock_upstream import MockUpstream
from test_management_http import call
from test_upstream_inference import ledger_check

REQUESTS = 240
SEED = 28


def write_config(tmp_path, upstream):
    config = tmp_path / "lumen.yaml"
    config.write_text(f"""
hold_ttl: 60
models:
  - name: metered
    vendor: Lumen
    scenes: [chat]
    prices: {{input: 1, output: 4}}
    max_output_tokens: 256
    max_attachment_input_tokens: 1000
    backends:
      - {{id: live, provider: openai, base_url: "{upstream.base_url}", timeout_ms: 30000}}
""")
    return config


class World:
    """The server, its tenant, the principals with small pools, and gRPC helpers."""

    def __init__(self, server, token, lumen_api):
        from lumen.common.v1 import common_pb2
        self.server, self.token, self.api, self.common = server, token, lumen_api, common_pb2
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.channel = grpc.insecure_channel(server.grpc_target)
        self.accounts = lumen_api.accounts_pb2_grpc.AccountsServiceStub(self.channel)
        self.keys = lumen_api.keys_pb2_grpc.KeysServiceStub(self.channel)
        self.ledger = lumen_api.ledger_pb2_grpc.LedgerServiceStub(self.channel)

    def ref(self, kind, ident):
        types = {"user": self.common.PRINCIPAL_TYPE_USER, "client": self.common.PRINCIPAL_TYPE_CLIENT,
                 "key": self.common.PRINCIPAL_TYPE_KEY, "organization": self.common.PRINCIPAL_TYPE_ORGANIZATION}
        return self.common.PrincipalRef(type=types[kind], id=ident)

    def grant(self, kind, ident, micros):
        self.ledger.Grant(self.api.ledger_pb2.GrantRequest(
            owner=self.ref(kind, ident), amount_micros=micros, reason="overspend test", idempotency_key=secrets.token_hex(8)),
            metadata=self.metadata)

    def key(self, name, owner=None, cap_micros=None):
        request = self.api.keys_pb2.CreateKeyRequest(name=name)
        if owner:
            request.owner.CopyFrom(self.ref(*owner))
        if cap_micros is not None:
            request.limit_micros = cap_micros
        made = self.keys.CreateKey(request, metadata=self.metadata)
        return {"id": made.key.id, "secret": made.secret, "owner": owner or ("organization", "")}

    def pool(self, kind, ident):
        return self.ledger.GetPool(self.api.ledger_pb2.GetPoolRequest(owner=self.ref(kind, ident)), metadata=self.metadata).pool

    def lines(self, key_id):
        pb, lines, page = self.api.ledger_pb2, [], 1
        while True:
            response = self.ledger.ListUsage(pb.ListUsageRequest(
                filter=pb.UsageFilter(key_id=key_id), page=self.common.PageRequest(page=page, limit=100)), metadata=self.metadata)
            lines += response.lines
            if len(lines) >= response.page_info.total:
                return lines
            page += 1


@pytest.fixture(params=["sqlite", "postgres"])
def world(request, tmp_path, monkeypatch, lumen_api):
    with MockUpstream() as upstream, ExitStack() as stack:
        upstream.mode = "honest"
        if request.param == "postgres":
            monkeypatch.setenv("LUMEN_DATABASE", stack.enter_context(postgres_database()))
        servers = start_server(tmp_path, "--config", str(write_config(tmp_path, upstream)), "--log-level", "info")
        stack.callback(servers.close)
        server = next(servers)
        wait_ready(server)
        tenant = server.bootstrap("Acme", "admin@acme.test")
        world = World(server, tenant["management_token"], lumen_api)
        stack.callback(world.channel.close)
        world.organization = tenant["organization_id"]
        pb = lumen_api.accounts_pb2
        ada = world.accounts.CreateUser(pb.CreateUserRequest(email="ada@acme.test"), metadata=world.metadata).user.id
        bob = world.accounts.CreateUser(pb.CreateUserRequest(email="bob@acme.test"), metadata=world.metadata).user.id
        robot = world.accounts.CreateClient(pb.CreateClientRequest(name="robot"), metadata=world.metadata).client.id
        world.owners = [("user", ada), ("user", bob), ("client", robot)]
        # Small pools: a plain request holds about 1.8k micro-USD, 40 KB of tools over 41k.
        world.grant("organization", world.organization, 150_000)
        world.grant("user", ada, 30_000)
        world.grant("user", bob, 45_000)
        world.grant("client", robot, 60_000)
        world.keys_made = [
            world.key("ada-1", ("user", ada)), world.key("ada-2", ("user", ada), cap_micros=12_000),
            world.key("bob-1", ("user", bob)), world.key("robot-1", ("client", robot), cap_micros=20_000),
            world.key("robot-2", ("client", robot)), world.key("org-1", cap_micros=30_000),
        ]
        deadline = time.time() + 10
        for key in world.keys_made:
            while call(server, "GET", "/v1/models", key["secret"])[0] != 200:
                assert time.time() < deadline, "the gateway never learned of a key"
                time.sleep(0.02)
        yield world


TOOLS = [{"type": "function", "function": {"name": f"tool_{index}", "parameters": {"type": "object"},
                                           "description": "Reads a file of the workspace and returns its text. " * 14}}
         for index in range(50)]  # about 40 KB, as a coding agent sends with every turn
IMAGE = {"type": "image_url", "image_url": {"url": "https://images.example/cat.png"}}
SCHEMA = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object", "description": "x" * 6000}}}


def plan(rng):
    """A request: its body and what the caller does with the answer."""
    body = {"model": "metered", "messages": [{"role": "user", "content": "hello " * rng.randint(1, 200)}]}
    shape = rng.choice(["plain", "plain", "tools", "images", "schema", "choices", "no_max"])
    if shape == "tools":
        body["tools"] = TOOLS
    elif shape == "images":
        body["messages"][0]["content"] = [{"type": "text", "text": "what are these?"}] + [IMAGE] * rng.randint(1, 8)
    elif shape == "schema":
        body["response_format"] = SCHEMA
    elif shape == "choices":
        body["n"] = rng.randint(2, 4)
    if shape != "no_max":
        body["max_tokens"] = rng.choice([8, 32, 64, 200])
    how = rng.choice(["json", "stream", "stream", "leave", "slow"])
    if how != "json":
        body["stream"] = True
    if how in ("leave", "slow"):
        body["user"] = "slow"  # the upstream streams 40 ms a chunk
    return body, how


def send(server, secret, body, how):
    headers = {"authorization": f"Bearer {secret}"}
    with httpx.Client(timeout=60) as client:
        if how == "json":
            return client.post(server.http + "/v1/chat/completions", headers=headers, json=body).status_code
        with client.stream("POST", server.http + "/v1/chat/completions", headers=headers, json=body) as response:
            events = 0
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events += 1
                if how == "leave" and events == 3:
                    break  # the caller leaves mid-stream
            return response.status_code


def test_random_mixes_never_overspend_any_pool(world):
    rng = random.Random(SEED)
    requests = [(rng.choice(world.keys_made), *plan(rng)) for _ in range(REQUESTS)]
    # Two keys are revoked while requests (slow streams among them) are under way.
    revocable = [world.keys_made[1], world.keys_made[4]]
    statuses, lock = [], threading.Lock()

    def run(item):
        key, body, how = item
        status = send(world.server, key["secret"], body, how)
        with lock:
            statuses.append(status)

    def revoke():
        for key in revocable:
            time.sleep(1.5)
            status, _ = call(world.server, "PATCH", f"/v1/management/api-keys/{key['id']}", world.token, {"status": "revoked"})
            assert status == 200

    revoker = threading.Thread(target=revoke)
    revoker.start()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(run, requests))
    revoker.join()

    print("statuses:", {status: statuses.count(status) for status in set(statuses)})
    # Every answer is a success, a refusal for money, or a revoked key: never a 5xx.
    assert set(statuses) <= {200, 401, 402}, sorted(set(statuses))
    assert statuses.count(200) >= 20 and statuses.count(402) >= 10, (statuses.count(200), statuses.count(402))

    deadline = time.time() + 30
    while (report := ledger_check(world.server))["open_holds"] > 0:
        assert time.time() < deadline, report
        time.sleep(0.2)
    assert report["ok"], report
    assert report["pools_below_zero"] == [] and report["overrun_lines"] == 0, report

    # Each pool was charged exactly what its lines say, and none is below zero.
    lines = {key["id"]: world.lines(key["id"]) for key in world.keys_made}
    assert all(line.status == world.api.ledger_pb2.USAGE_STATUS_SETTLED for found in lines.values() for line in found)
    spent = {key_id: sum(line.cost_micros for line in found) for key_id, found in lines.items()}
    assert sum(spent.values()) > 0
    for key in world.keys_made:
        pool = world.pool("key", key["id"])
        assert pool.spent_micros == spent[key["id"]] and pool.reserved_micros == 0, (key["owner"], pool)
    for owner in world.owners:
        pool = world.pool(*owner)
        assert pool.balance_micros >= 0, (owner, pool)
        assert pool.spent_micros == sum(spent[key["id"]] for key in world.keys_made if key["owner"] == owner), owner
    print("balances:", [world.pool(*owner).balance_micros for owner in world.owners])
    organization = world.pool("organization", world.organization)
    assert organization.balance_micros >= 0 and organization.spent_micros == sum(spent.values())
    # Capped keys kept within their caps.
    for key in world.keys_made:
        if key["id"] in (world.keys_made[1]["id"], world.keys_made[3]["id"], world.keys_made[5]["id"]):
            cap = {1: 12_000, 3: 20_000, 5: 30_000}[world.keys_made.index(key)]
            assert spent[key["id"]] <= cap, (key, spent[key["id"]])
    # A revoked key is refused from then on.
    assert call(world.server, "GET", "/v1/models", revocable[0]["secret"])[0] == 401
