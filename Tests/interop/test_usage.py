"""Usage over time: `GET /v1/management/usage` (JSON and CSV), the dashboard's `/api/usage`, and
the charts of `/usage` and the profile in Chromium — the SVG drawn on the server, its numbers
the API's, the CSV the same figures."""

import csv
import io
import json
import re
import time
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI
from playwright.sync_api import expect

from conftest import start_server, wait_ready
from test_dashboard import screenshot, signed_in_page
from test_people_api import PASSWORD, Person, admin_cli, apply_models


@pytest.fixture
def site(tmp_path):
    for server in start_server(tmp_path, "--demo"):
        server.credentials = json.loads(Path(server.stdout_path).read_text().splitlines()[0])
        wait_ready(server)
        yield server


def spend(site, key, count):
    client = OpenAI(api_key=key, base_url=site.http + "/v1")
    for n in range(count):
        client.chat.completions.create(model=site.credentials["model"],
                                       messages=[{"role": "user", "content": f"Tell me about number {n}, at length."}])


def test_usage_over_time_by_api_csv_and_charts(site, browser):
    token = site.credentials["management_token"]
    management = httpx.Client(base_url=site.http, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    admin_cli(site, "user", "create", "--email", "member@demo.lumen.invalid", "--name", "Member",
              "--password-stdin", token=token, password=PASSWORD)
    member = Person(site, "member@demo.lumen.invalid", PASSWORD)
    member_key = member.call("POST", "/api/me/keys", {"name": "member-script"}).json()["key"]
    spend(site, site.credentials["api_key"], 3)
    spend(site, member_key, 1)

    # The management API: today's usage, the keys and owners that spent most.
    usage = management.get("/v1/management/usage", params={"days": 7})
    assert usage.status_code == 200, usage.text
    body = usage.json()
    assert body["object"] == "usage_series" and len(body["data"]) == 1
    today = body["data"][0]
    assert today["date"] == body["end_date"] and today["logical_model"] == site.credentials["model"]
    assert today["requests"] == 4 and body["total"]["requests"] == 4
    assert [key["type"] for key in body["top_keys"]] == ["key", "key"]
    assert [owner["type"] for owner in body["top_owners"]] == ["user", "user"]
    assert body["top_owners"][1]["id"] == member.id  # one request against three
    # The same figures as the keys' billing, summed.
    keys = management.get("/v1/management/api-keys").json()["data"]
    billed = sum(Decimal(str(management.get(f"/v1/management/api-keys/{key['id']}/billing").json()["total"]["cost"]))
                 for key in keys)
    assert Decimal(str(body["total"]["cost"])) == billed > 0
    # One person's; as CSV.
    mine = management.get("/v1/management/usage", params={"userId": member.id}).json()
    assert mine["total"]["requests"] == 1 and mine["top_owners"] == []
    exported = management.get("/v1/management/usage", params={"days": 7, "format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(row["date"], row["logical_model"], int(row["requests"])) for row in rows] == [
        (today["date"], site.credentials["model"], 4)]
    assert Decimal(rows[0]["cost_usd"]) == Decimal(str(today["cost"]))
    # Refusals name their parameter; a member may not read the organisation's.
    for params, status, code in [({"days": 0}, 400, "invalid_days"), ({"days": 400}, 400, "invalid_days"),
                                 ({"top": 101}, 400, "invalid_top"), ({"format": "xml"}, 400, "invalid_format"),
                                 ({"userId": member.id, "clientId": "cli_x"}, 400, "invalid_owner"),
                                 ({"userId": "usr_nobody"}, 404, "user_not_found"), ({"color": "red"}, 400, "unknown_parameter")]:
        refused = management.get("/v1/management/usage", params=params)
        assert (refused.status_code, refused.json()["error"]["code"]) == (status, code), params
    assert management.get("/v1/management/usage", params={"userId": "usr_nobody"}).json()["error"]["param"] == "userId"
    refused = member.call("GET", "/api/usage")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"
    assert member.call("GET", f"/api/usage?userId={member.id}").json()["total"]["requests"] == 1
    assert member.client.get("/usage", headers={"Accept": "text/html"}).status_code == 403
    # The chart is in the page as the server sends it: no script needed to see it.
    profile = member.client.get("/profile").text
    assert 'data-chart="coins"' in profile and "<svg viewBox" in profile and "<rect class=\"chart-s0\"" in profile

    # In Chromium: the organisation's page, its bars the API's coins, its table and CSV the same.
    page = signed_in_page(browser, site, site.credentials["email"], site.credentials["password"])
    page.get_by_role("link", name="Usage").click()
    expect(page).to_have_url(site.http + "/usage")
    api = page.request.get(site.http + "/api/usage?days=30").json()
    coins = page.locator("figure[data-chart='coins'] svg rect")
    expect(coins).to_have_count(1)
    assert coins.get_attribute("data-day") == api["end_date"]
    assert Decimal(coins.get_attribute("data-value")) == Decimal(str(api["data"][0]["coins"]))
    tokens = page.locator("figure[data-chart='tokens'] svg rect")
    point = api["data"][0]
    assert int(tokens.get_attribute("data-value")) == (point["input_tokens"] + point["cached_input_tokens"]
                                                       + point["cache_write_tokens"] + point["output_tokens"])
    assert page.locator("figure[data-chart='coins'] svg").get_attribute("role") == "img"
    expect(page.locator("[data-figure='usage-requests']")).to_have_text("4")
    expect(page.locator("table[data-top='keys'] tbody tr")).to_have_count(2)
    expect(page.locator("table[data-top='owners'] tbody tr").first).to_contain_text("Demo admin")
    expect(page.locator("table[data-top='owners'] tbody tr").nth(1)).to_contain_text("Member")
    page.get_by_text("Figures by day and model").click()
    expect(page.locator("table[data-usage-table] tbody tr")).to_have_count(1)
    expect(page.locator("table[data-usage-table] tbody tr td").nth(4)).to_have_text(str(point["coins"]))
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    text = Path(download.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1 and Decimal(rows[0]["coins"]) == Decimal(str(point["coins"])) and int(rows[0]["requests"]) == 4
    screenshot(page, "usage")

    # Seven days: the window's choice is kept in the address and marked.
    page.get_by_role("link", name="7 days").click()
    expect(page).to_have_url(re.compile(r"/usage\?days=7#usage$"))
    expect(page.get_by_role("link", name="7 days")).to_have_attribute("aria-current", "true")
    # The profile's chart is the person's own.
    page.goto(site.http + "/profile")
    expect(page.locator("#usage [data-figure='usage-requests']")).to_have_text("3")


def test_the_request_log_lists_every_request_failed_ones_too(site, browser, tmp_path):
    """One answered and one failed request (a backend nobody listens on): both in the log, the
    failed one with its status and error and no cost; filters; a member sees their own only."""
    token = site.credentials["management_token"]
    management = httpx.Client(base_url=site.http, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    apply_models(site, """
models:
  - name: broken-model
    max_output_tokens: 64
    vendor: lumen
    scenes: [chat]
    backends:
      - {id: nowhere, provider: openai, base_url: "http://127.0.0.1:9/v1"}
""", tmp_path)
    # Capturing, on for the organisation: a week, at most 4 KiB of each.
    admin = Person(site, site.credentials["email"], site.credentials["password"])
    organization = admin.client.get("/api/me").json()["user"]["organization_id"]
    setting = management.put(f"/v1/management/captures/organization/{organization}",
                             json={"enabled": True, "retention_days": 7, "max_bytes": 4096})
    assert setting.status_code == 200 and setting.json()["enabled"], setting.text
    assert management.put(f"/v1/management/captures/organization/{organization}",
                          json={"enabled": True, "retention_days": 365}).json()["error"]["code"] == "invalid_retention_days"
    client = OpenAI(api_key=site.credentials["api_key"], base_url=site.http + "/v1", max_retries=0)
    client.chat.completions.create(model=site.credentials["model"],
                                   messages=[{"role": "user", "content": "Hello, the password is tangerine-42"}])
    deadline = time.time() + 10  # the model reaches the gateway through the registry's watch
    while True:
        try:
            client.chat.completions.create(model="broken-model", messages=[{"role": "user", "content": "Hello"}])
            pytest.fail("a backend nobody listens on answered")
        except openai.NotFoundError:
            assert time.time() < deadline
            time.sleep(0.1)
        except openai.APIStatusError as refusal:
            assert refusal.status_code == 502
            break

    log = management.get("/v1/management/requests").json()
    assert [line["status"] for line in log["data"]] == ["failed", "settled"] and log["total"] == 2
    failed, answered = log["data"]
    assert failed["http_status"] == 502 and failed["error_code"] == "upstream_unavailable" and failed["cost"] == 0
    assert failed["logical_model"] == "broken-model" and failed["latency_ms"] is not None
    assert answered["http_status"] == 200 and answered["backend_id"] == "mock" and answered["cost"] > 0
    assert answered["ttft_ms"] is not None and answered["ttft_ms"] <= answered["latency_ms"]
    assert answered["captured"] and not failed["captured"]
    captured = management.get(f"/v1/management/requests/{answered['request_id']}/capture").json()
    assert "tangerine-42" in captured["prompt"] and "tangerine-42" in captured["answer"] and not captured["truncated"]
    assert management.get(f"/v1/management/requests/{failed['request_id']}/capture").status_code == 404
    # Never in the log (written at trace level here) nor in the metrics.
    assert "tangerine-42" not in Path(site.log_path).read_text()
    assert "tangerine-42" not in httpx.get(site.metrics + "/metrics").text
    assert [line["request_id"] for line in management.get("/v1/management/requests", params={"status": "failed"}).json()["data"]] \
        == [failed["request_id"]]
    assert management.get("/v1/management/requests", params={"logicalModel": site.credentials["model"]}).json()["total"] == 1
    refused = management.get("/v1/management/requests", params={"status": "lost"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "status"
    # The key's usage lists what it was charged for only.
    assert management.get(f"/v1/management/api-keys/{answered['key_id']}/usage").json()["total"] == 1

    admin_cli(site, "user", "create", "--email", "member@demo.lumen.invalid", "--name", "Member",
              "--password-stdin", token=token, password=PASSWORD)
    member = Person(site, "member@demo.lumen.invalid", PASSWORD)
    assert member.call("GET", "/api/requests").json()["data"] == []
    assert member.call("GET", f"/api/requests?userId={answered['owner_id']}").status_code == 403
    assert member.call("GET", f"/api/requests/{answered['request_id']}/capture").status_code == 404

    page = signed_in_page(browser, site, site.credentials["email"], site.credentials["password"])
    page.get_by_role("link", name="Activity").click()
    expect(page).to_have_url(site.http + "/activity")
    rows = page.locator("#activity-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("502")
    expect(rows.first).to_contain_text("upstream_unavailable")
    expect(rows.first).to_contain_text("broken-model")
    expect(rows.nth(1)).to_contain_text("Demo key")
    expect(rows.nth(1)).to_contain_text("Demo admin")
    screenshot(page, "activity")
    rows.nth(1).get_by_role("link", name="Prompt and answer").click()
    expect(page.locator("[data-prompt]")).to_contain_text("tangerine-42")
    page.go_back()
    # The organisation's capture, turned off and on again here.
    settings = page.locator("[data-capture-settings]")
    expect(settings.get_by_label("Capture the organisation's requests")).to_be_checked()
    expect(settings.get_by_label("Keep for (days)")).to_have_value("7")
    settings.get_by_label("Capture the organisation's requests").uncheck()
    settings.get_by_label("Keep for (days)").fill("3")
    settings.get_by_role("button", name="Save").click()
    expect(settings.get_by_role("status")).to_have_text("Saved.")
    rule = management.get("/v1/management/captures").json()["data"][0]
    assert (rule["owner_type"], rule["enabled"], rule["retention_days"], rule["max_bytes"]) == ("organization", False, 3, 4096)
    # A retention past 90 days is refused by the form itself (and by the API: the test above).
    settings.get_by_label("Keep for (days)").fill("300")
    assert not settings.get_by_label("Keep for (days)").evaluate("field => field.checkValidity()")
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/activity\?.*status=failed"))
    expect(rows).to_have_count(1)
    page.get_by_label("From").fill("2026-02-31")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("alert")).to_contain_text("startDate")
