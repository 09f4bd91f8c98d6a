"""The ledger under load and through a crash, against a real `lumen serve` and a mock upstream:
500 concurrent requests never overrun a key's cap and every charge is a usage line; after a
`kill -9` mid-load and a restart, every answered request has its line, nothing is charged
twice, the invariant holds and the holds left open are reconciled.

The promise under a crash (README, "Durability"): no caller receives a byte that the ledger
has not durably recorded — the hold is decided before the upstream call, committed beside it,
and the answer waits for that commit — and the settlement is queued as the answer goes out,
durable a group commit later. So every request whose caller received anything (a JSON answer,
a stream's first bytes, an error from the upstream) has its line, settled at its real cost,
or — answered in the last instant before the crash — at its estimate, flagged estimated and
expired; never missing, never charged twice."""

import asyncio
import threading
import time

import grpc
import httpx
import pytest

from conftest import start_server, wait_ready
from mock_upstream import MockUpstream
from test_management_http import call
from test_upstream_inference import ledger_check

PER_CALL_MICROS = 40_000  # the model's price per request: $0.04


@pytest.fixture
def upstream():
    with MockUpstream() as server:
        yield server


def write_config(tmp_path, upstream):
    config = tmp_path / "lumen.yaml"
    config.write_text(f"""
hold_ttl: 3
models:
  - name: per-call
    max_output_tokens: 1024
    vendor: Lumen
    scenes: [chat]
    prices: {{per_request: 0.04}}
    backends:
      - {{id: live, provider: openai, base_url: "{upstream.base_url}", timeout_ms: 30000}}
  - name: gpt-test
    vendor: OpenAI
    scenes: [chat]
    prices: {{input: 0.15, cached_input: 0.075, output: 0.60}}
    max_output_tokens: 1024
    backends:
      - {{id: live, provider: openai, base_url: "{upstream.base_url}", timeout_ms: 60000}}
""")
    return config


def create_key(server, token, body):
    status, created = call(server, "POST", "/v1/management/api-keys", token, body)
    assert status == 200, created
    # The gateway learns of new keys through its watch; wait until this one works.
    deadline = time.time() + 10
    while call(server, "GET", "/v1/models", created["key"])[0] != 200:
        assert time.time() < deadline
        time.sleep(0.02)
    return created


def all_lines(server, token, key_id):
    lines, page = [], 1
    while True:
        status, body = call(server, "GET", f"/v1/management/api-keys/{key_id}/usage?limit=100&page={page}", token)
        assert status == 200, body
        lines += body["data"]
        if not body["has_more"]:
            assert body["total"] == len(lines)
            return lines
        page += 1


def micros(usd):
    """USD from JSON (a float in Python) back to exact micro-USD."""
    return round(usd * 1_000_000)


def pool(server, lumen_api, token, **owner):
    pb, common = lumen_api.ledger_pb2, __import__("lumen.common.v1.common_pb2", fromlist=["_"])
    kind, ident = next(iter(owner.items()))
    ref = common.PrincipalRef(type={"key": common.PRINCIPAL_TYPE_KEY, "user": common.PRINCIPAL_TYPE_USER,
                                    "organization": common.PRINCIPAL_TYPE_ORGANIZATION}[kind], id=ident)
    with grpc.insecure_channel(server.grpc_target) as channel:
        return lumen_api.ledger_pb2_grpc.LedgerServiceStub(channel).GetPool(
            pb.GetPoolRequest(owner=ref), metadata=(("authorization", f"Bearer {token}"),)).pool


class CrashLoad:
    """Load to crash a gateway under: callers posting JSON requests in a loop and streams held
    open (the mock's slow mode), each noting the request ids of every answer it received: 200s
    in `answered` and `streams`, anything else in `others` (status and id)."""

    def __init__(self, key, body):
        self.headers = {"Authorization": f"Bearer {key}"}
        self.body = body
        self.answered, self.streams, self.others = [], [], []
        self.lock, self.stop = threading.Lock(), threading.Event()

    def json_thread(self, gateway):
        def run():
            with httpx.Client(base_url=gateway.http, timeout=30) as client:
                while not self.stop.is_set():
                    try:
                        response = client.post("/v1/chat/completions", headers=self.headers, json=self.body)
                    except httpx.HTTPError:
                        return
                    with self.lock:
                        if response.status_code == 200:
                            self.answered.append(response.headers["x-request-id"])
                        else:
                            self.others.append((response.status_code, response.headers.get("x-request-id")))
        return threading.Thread(target=run)

    def stream_thread(self, gateway):
        def run():
            try:
                with httpx.Client(base_url=gateway.http, timeout=60) as client:
                    with client.stream("POST", "/v1/chat/completions", headers=self.headers,
                                       json=dict(self.body, stream=True)) as response:
                        with self.lock:
                            if response.status_code == 200:
                                self.streams.append(response.headers["x-request-id"])
                            else:
                                self.others.append((response.status_code, response.headers.get("x-request-id")))
                        for _ in response.iter_bytes():
                            pass
            except httpx.HTTPError:
                pass
        return threading.Thread(target=run)


def test_500_concurrent_requests_never_exceed_a_cap_and_every_charge_is_a_line(tmp_path, upstream, lumen_api):
    config = write_config(tmp_path, upstream)
    for server in start_server(tmp_path, "--config", str(config), "--log-level", "info"):
        wait_ready(server)
        tenant = server.bootstrap("Acme", "admin@acme.test")
        token = tenant["management_token"]
        # The cap covers 250 of the 500 requests: $10 at $0.04 each.
        key = create_key(server, token, {"name": "half", "limitAmount": 10})

        async def fire():
            limits = httpx.Limits(max_connections=500, max_keepalive_connections=500)
            async with httpx.AsyncClient(base_url=server.http, limits=limits, timeout=120) as client:
                async def one(index):
                    response = await client.post(
                        "/v1/chat/completions", headers={"Authorization": f"Bearer {key['key']}"},
                        json={"model": "per-call", "messages": [{"role": "user", "content": f"request {index}"}]})
                    return response.status_code, response.headers.get("x-request-id"), response.json()
                return await asyncio.gather(*(one(index) for index in range(500)))

        results = asyncio.run(fire())
        statuses = [status for status, _, _ in results]
        assert set(statuses) <= {200, 402}, statuses
        assert statuses.count(200) == 250
        refused = [body for status, _, body in results if status == 402]
        assert all(body["error"]["code"] == "insufficient_quota" for body in refused)

        # Every charge is a usage line and every line a 200: the sums agree to the micro-dollar.
        lines = all_lines(server, token, key["id"])
        answered = {request_id for status, request_id, _ in results if status == 200}
        assert {line["request_id"] for line in lines} == answered
        assert all(line["status"] == "settled" and micros(line["cost"]) == PER_CALL_MICROS for line in lines)
        assert sum(micros(line["cost"]) for line in lines) == 10_000_000

        key_pool = pool(server, lumen_api, token, key=key["id"])
        assert key_pool.spent_micros == 10_000_000 and key_pool.reserved_micros == 0
        org_pool = pool(server, lumen_api, token, organization=tenant["organization_id"])
        assert org_pool.spent_micros == 10_000_000 and org_pool.reserved_micros == 0
        status, billing = call(server, "GET", f"/v1/management/api-keys/{key['id']}/billing", token)
        assert status == 200 and billing["total"]["requests"] == 250 and micros(billing["total"]["cost"]) == 10_000_000
        # The key's used_amount (batched to the keys service once a second) reaches the same sum.
        deadline = time.time() + 10
        while True:
            status, shown = call(server, "GET", f"/v1/management/api-keys/{key['id']}", token)
            if micros(shown["used_amount"]) == 10_000_000:
                break
            assert time.time() < deadline, shown
            time.sleep(0.1)
        report = ledger_check(server)
        assert report["ok"] and report["open_holds"] == 0


def test_kill_9_mid_load_loses_no_answered_request_and_charges_nothing_twice(tmp_path, upstream, lumen_api):
    config = write_config(tmp_path, upstream)
    upstream.mode = "slow"  # streams take about 20 s: some are in flight when the server dies
    first = start_server(tmp_path, "--config", str(config), "--log-level", "info")
    server = next(first)
    try:
        wait_ready(server)
        tenant = server.bootstrap("Acme", "admin@acme.test")
        token = tenant["management_token"]
        key = create_key(server, token, {"name": "load"})
        body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 100}
        load = CrashLoad(key["key"], body)
        threads = [load.json_thread(server) for _ in range(4)] + [load.stream_thread(server) for _ in range(3)]
        for thread in threads:
            thread.start()
        deadline = time.time() + 20
        while (len(load.answered) < 50 or len(load.streams) < 3) and time.time() < deadline:
            time.sleep(0.05)
        server.process.kill()  # SIGKILL: no shutdown, no flush
        server.process.wait()
        load.stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert len(load.answered) >= 50 and len(load.streams) == 3
        # Nothing but 200s reached a caller: a hold that was not durable would have been a 503.
        assert load.others == []
    finally:
        first.close()

    upstream.mode = "ok"
    for server in start_server(tmp_path, "--config", str(config), "--log-level", "info"):
        wait_ready(server)
        # The holds left open by the crash expire (hold_ttl 3 s) and are settled at their estimate.
        deadline = time.time() + 30
        while (report := ledger_check(server))["open_holds"] > 0:
            assert time.time() < deadline, report
            time.sleep(0.5)
        assert report["ok"], report

        lines = {line["request_id"]: line for line in all_lines(server, token, key["id"])}
        # Every request answered with a 200 has its settled line: at its real cost, or, when
        # the crash came between the answer and its settlement's commit, at its estimate.
        # (The mock reports usage, so an estimated line here is one the reconciler settled: no
        # tokens, the estimate's cost.)
        for request_id in load.answered:
            assert request_id in lines, f"{request_id} was answered but the ledger has no line of it"
            line = lines[request_id]
            assert line["status"] == "settled", line
            assert not line["estimated"] or (line["input_tokens"], line["output_tokens"]) == (0, 0), line
        # That window is one group commit: at most the last answer or two of each of the 4 callers.
        caught = [request_id for request_id in load.answered if lines[request_id]["estimated"]]
        assert len(caught) <= 8, caught
        # The streams cut by the crash were settled by the reconciler at their estimate, flagged.
        for request_id in load.streams:
            assert lines[request_id]["status"] == "settled" and lines[request_id]["estimated"], lines[request_id]
        assert all(line["status"] == "settled" for line in lines.values())

        # Nothing charged twice: the pools' spending is exactly the sum of the lines.
        total = sum(micros(line["cost"]) for line in lines.values())
        assert total > 0
        key_pool = pool(server, lumen_api, token, key=key["id"])
        assert key_pool.spent_micros == total and key_pool.reserved_micros == 0
        org_pool = pool(server, lumen_api, token, organization=tenant["organization_id"])
        assert org_pool.spent_micros == total and org_pool.reserved_micros == 0
        status, billing = call(server, "GET", f"/v1/management/api-keys/{key['id']}/billing", token)
        assert status == 200 and micros(billing["total"]["cost"]) == total
        assert billing["total"]["requests"] == len(lines)

        # The key's counters are the ledger's: exactly Σ of its lines, after the crash too.
        status, listed = call(server, "GET", "/v1/management/api-keys", token)
        (listed_key,) = [k for k in listed["data"] if k["id"] == key["id"]]
        assert micros(listed_key["used_amount"]) == total
        assert listed_key["last_used_at"] is not None
        with grpc.insecure_channel(server.grpc_target) as channel:
            (totals,) = lumen_api.ledger_pb2_grpc.LedgerServiceStub(channel).GetKeyTotals(
                lumen_api.ledger_pb2.GetKeyTotalsRequest(key_ids=[key["id"]]),
                metadata=(("authorization", f"Bearer {token}"),)).totals
        assert totals.requests == len(lines) and totals.cost_micros == total
        assert totals.input_tokens == sum(line["input_tokens"] for line in lines.values())
        assert totals.output_tokens == sum(line["output_tokens"] for line in lines.values())

        # And the restarted server meters new requests as before, counted on the key at once.
        status, _ = call(server, "POST", "/v1/chat/completions", key["key"], body)
        assert status == 200
        status, after = call(server, "GET", f"/v1/management/api-keys/{key['id']}", token)
        assert status == 200 and micros(after["used_amount"]) > total


def test_the_admin_cli_grants_configures_and_lists_over_the_grpc_port(server):
    import json
    import subprocess
    from decimal import Decimal

    from conftest import lumen_binary

    wait_ready(server)
    tenant = server.bootstrap("Acme", "admin@acme.test")
    token = tenant["management_token"]

    def admin(*args):
        result = subprocess.run([lumen_binary(), "admin", *args, "--server", server.grpc_target, "--token", token],
                                capture_output=True, text=True, timeout=60)
        return result.returncode, result.stdout, result.stderr

    # Exact decimals: 0.1 + 0.2 is 0.3 in the ledger and at the REST edge.
    for amount in ("0.1", "0.2"):
        code, out, err = admin("grant", "--amount", amount, "--reason", "top-up")
        assert code == 0, err
        grant = json.loads(out, parse_float=Decimal)
        assert grant["grant"]["amount"] == Decimal(amount) and grant["grant"]["id"].startswith("grt_")
        assert grant["grant"]["granted_by_user_id"] == tenant["admin_user_id"]
    status, balance = call(server, "GET", "/v1/management/balance", token)
    assert status == 200 and balance["state"] == "balance"
    assert Decimal(str(balance["balance"])) == Decimal("0.3") and Decimal(str(balance["granted"])) == Decimal("0.3")

    code, out, err = admin("grant", "--amount", "-0.05", "--reason", "correction", "--idempotency-key", "fix-1")
    assert code == 0, err
    code, again, err = admin("grant", "--amount", "-0.05", "--reason", "correction", "--idempotency-key", "fix-1")
    assert code == 0 and json.loads(again)["grant"]["id"] == json.loads(out)["grant"]["id"]
    assert Decimal(str(json.loads(again, parse_float=Decimal)["pool"]["balance"])) == Decimal("0.25")

    # A typo is not a phantom pool: the user must exist in the organisation.
    code, out, err = admin("pool", "set", "--user", "usr_someone", "--mode", "balance", "--limit", "10")
    assert code == 1 and "user_not_found" in err
    code, out, err = admin("pool", "set", "--user", tenant["admin_user_id"], "--mode", "balance", "--limit", "10",
                           "--refill-per-hour", "1")
    assert code == 0, err
    pool = json.loads(out)
    assert pool["state"] == "balance" and pool["limit"] == 10 and pool["refill_per_hour"] == 1 and pool["next_refill_at"]
    code, out, err = admin("grants")
    listed = json.loads(out)
    assert code == 0 and listed["total"] == 3 and [g["reason"] for g in listed["grants"]] == ["correction", "top-up", "top-up"]

    # Refusals: a clear message on standard error and a failing exit status, nothing written.
    code, out, err = admin("pool", "set", "--mode", "unlimited")
    assert code == 0, err
    code, out, err = admin("grant", "--amount", "5", "--reason", "no")
    assert code == 1 and "pool_unlimited" in err
    code, out, err = admin("grant", "--amount", "1.0000001", "--reason", "too precise")
    assert code != 0 and "6 decimal places" in err
    code, out, err = admin("grant", "--amount", "5", "--reason", " ")
    assert code == 1 and "invalid_reason" in err
    assert json.loads(admin("grants")[1])["total"] == 3
