"""Gateway replicas: the four services in one `lumen serve`, two gateways in two more, as an
organisation that outgrows one gateway runs them — with the services on SQLite, and on
PostgreSQL (`--database`, a fresh database of the server `scripts/test.sh` starts). Both replicas
draw on one ledger: a key's cap and its per-minute limits hold in total, every charge is a line,
and a replica killed with `kill -9` mid-load loses no charge (its holds are settled by the
ledger's reconciler) while the other keeps serving."""

import asyncio
import secrets
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from conftest import postgres_database, psql, start_split
from mock_upstream import MockUpstream
from test_ledger import PER_CALL_MICROS, CrashLoad, all_lines, micros, pool, write_config
from test_management_http import call
from test_upstream_inference import ledger_check


@pytest.fixture(params=["sqlite", "postgres"])
def replicas(request, tmp_path, monkeypatch):
    """The services process and two gateway processes (plaintext on loopback, one internal token),
    the services' tables in the data directory or in a PostgreSQL database (`LUMEN_DATABASE`, which
    `lumen admin` reads too)."""
    env = {"LUMEN_INTERNAL_TOKEN": secrets.token_hex(32)}
    with MockUpstream() as upstream, ExitStack() as stack:
        database = None
        if request.param == "postgres":
            database = stack.enter_context(postgres_database())
            monkeypatch.setenv("LUMEN_DATABASE", database)
        config = write_config(tmp_path, upstream)
        services, gateways = start_split(tmp_path, stack, config, "--log-level", "info", env=env, gateways=2)
        tenant = services.bootstrap("Acme", "admin@acme.test")
        if database:
            assert "PostgreSQL" in services.log()
            assert psql(database, "SELECT name FROM accounts.organizations") == "Acme"
        yield {"services": services, "gateways": gateways, "token": tenant["management_token"], "tenant": tenant,
               "upstream": upstream, "database": database}


def create_key(gateways, token, body):
    """A key made through the first replica, once both replicas' caches have it."""
    status, created = call(gateways[0], "POST", "/v1/management/api-keys", token, body)
    assert status == 200, created
    deadline = time.time() + 10
    for gateway in gateways:
        while call(gateway, "GET", "/v1/models", created["key"])[0] != 200:
            assert time.time() < deadline, "a replica never learned of the key"
            time.sleep(0.02)
    return created


def test_500_requests_over_two_replicas_never_exceed_a_cap_and_every_charge_is_a_line(replicas, lumen_api):
    gateways, token, services = replicas["gateways"], replicas["token"], replicas["services"]
    key = create_key(gateways, token, {"name": "half", "limitAmount": 10})  # covers 250 of 500 at $0.04

    async def fire():
        limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
        async with httpx.AsyncClient(base_url=gateways[0].http, limits=limits, timeout=120) as first, \
                httpx.AsyncClient(base_url=gateways[1].http, limits=limits, timeout=120) as second:
            async def one(index):
                client = (first, second)[index % 2]
                response = await client.post(
                    "/v1/chat/completions", headers={"Authorization": f"Bearer {key['key']}"},
                    json={"model": "per-call", "messages": [{"role": "user", "content": f"request {index}"}]})
                return index % 2, response.status_code, response.headers.get("x-request-id"), response.json()
            return await asyncio.gather(*(one(index) for index in range(500)))

    results = asyncio.run(fire())
    statuses = [status for _, status, _, _ in results]
    assert set(statuses) <= {200, 402}, statuses
    assert statuses.count(200) == 250, "exactly what the cap affords, across both replicas"
    assert all(body["error"]["code"] == "insufficient_quota" for _, status, _, body in results if status == 402)
    assert {replica for replica, status, _, _ in results if status == 200} == {0, 1}, "both replicas served"

    lines = all_lines(gateways[1], token, key["id"])
    answered = {request_id for _, status, request_id, _ in results if status == 200}
    assert {line["request_id"] for line in lines} == answered
    assert all(line["status"] == "settled" and micros(line["cost"]) == PER_CALL_MICROS for line in lines)
    assert sum(micros(line["cost"]) for line in lines) == 10_000_000
    key_pool = pool(services, lumen_api, token, key=key["id"])
    assert key_pool.spent_micros == 10_000_000 and key_pool.reserved_micros == 0
    org_pool = pool(services, lumen_api, token, organization=replicas["tenant"]["organization_id"])
    assert org_pool.spent_micros == 10_000_000 and org_pool.reserved_micros == 0
    report = ledger_check(services)
    assert report["ok"] and report["open_holds"] == 0
    if replicas["database"]:  # the lines are rows of PostgreSQL, not of a file
        assert psql(replicas["database"], "SELECT count(*), sum(cost_micros) FROM ledger.usage_lines") == "250|10000000"
        assert not list(Path(services.data_dir).glob("*.sqlite"))


def test_a_keys_requests_per_minute_hold_across_replicas(replicas):
    gateways, token = replicas["gateways"], replicas["token"]
    key = create_key(gateways, token, {"name": "hasty", "rpmLimit": 10})
    # The key's minute, in each answer (over the ledger's Meter stream: the gateways are processes of their own).
    first = httpx.post(gateways[0].http + "/v1/chat/completions", headers={"Authorization": f"Bearer {key['key']}"},
                       json={"model": "per-call", "messages": [{"role": "user", "content": "hi"}]})
    assert first.status_code == 200, first.text
    assert first.headers["x-ratelimit-limit-requests"] == "10" and first.headers["x-ratelimit-remaining-requests"] == "9"
    answers = [(200, first.json())]
    for index in range(1, 30):
        status, body = call(gateways[index % 2], "POST", "/v1/chat/completions", key["key"],
                            {"model": "per-call", "messages": [{"role": "user", "content": "hi"}]})
        answers.append((status, body))
    statuses = [status for status, _ in answers]
    assert statuses.count(200) == 10, f"10 a minute in total, not per replica: {statuses}"
    assert statuses.count(429) == 20
    assert all(body["error"]["code"] == "rate_limit_exceeded" for status, body in answers if status == 429)
    response = httpx.post(gateways[1].http + "/v1/chat/completions", headers={"Authorization": f"Bearer {key['key']}"},
                          json={"model": "per-call", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 429 and 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["x-ratelimit-remaining-requests"] == "0" and response.headers["x-ratelimit-limit-requests"] == "10"
    # A refused request wrote nothing.
    assert len(all_lines(gateways[0], token, key["id"])) == 10


def test_kill_9_of_one_replica_loses_no_charge_and_the_other_keeps_serving(replicas, lumen_api):
    gateways, token, services, upstream = replicas["gateways"], replicas["token"], replicas["services"], replicas["upstream"]
    key = create_key(gateways, token, {"name": "load"})
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 100}
    upstream.mode = "slow"  # streams take about 20 s: some are in flight on the replica that dies
    load = CrashLoad(key["key"], body)
    doomed, survivor = gateways
    threads = [load.json_thread(gateway) for gateway in (doomed, doomed, survivor, survivor)]
    threads += [load.stream_thread(doomed) for _ in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.time() + 20
    while (len(load.answered) < 50 or len(load.streams) < 3) and time.time() < deadline:
        time.sleep(0.05)
    assert len(load.streams) == 3, "streams in flight on the replica about to die"
    doomed.process.kill()  # SIGKILL: no shutdown, no settlement of what it had in flight
    doomed.process.wait()
    served_before = len(load.answered)
    time.sleep(1)
    assert len(load.answered) > served_before, "the other replica kept serving"
    load.stop.set()
    for thread in threads:
        thread.join(timeout=60)
    upstream.mode = "ok"

    # The dead replica's holds expire (hold_ttl 3 s) and the ledger settles them at their estimate.
    deadline = time.time() + 30
    while (report := ledger_check(services))["open_holds"] > 0:
        assert time.time() < deadline, report
        time.sleep(0.5)
    assert report["ok"], report
    lines = {line["request_id"]: line for line in all_lines(survivor, token, key["id"])}
    assert all(line["status"] == "settled" for line in lines.values())
    for request_id in load.answered:
        assert lines[request_id]["status"] == "settled"
    for request_id in load.streams:
        line = lines[request_id]
        assert line["estimated"] and (line["input_tokens"], line["output_tokens"]) == (0, 0), line
    total = sum(micros(line["cost"]) for line in lines.values())
    key_pool = pool(services, lumen_api, token, key=key["id"])
    assert key_pool.spent_micros == total and key_pool.reserved_micros == 0
    status, _ = call(survivor, "POST", "/v1/chat/completions", key["key"], body)
    assert status == 200
