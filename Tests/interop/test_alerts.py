"""Budget alerts end to end: thresholds set in the Coins dialog and a webhook added on the Usage
page in Chromium, requests that spend across the threshold concurrently, and a webhook
receiver here that checks each delivery's signature, answers the first with a 500 and sees it
again (the same id), once per crossing."""

import hashlib
import hmac
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI
from playwright.sync_api import expect

from conftest import start_server, wait_ready
from test_dashboard import screenshot, signed_in_page
from test_people_api import Person


class Receiver:
    """An alert webhook on loopback: records every delivery; answers 500 to the first of each path."""

    def __init__(self):
        self.deliveries = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    first = not any(d["path"] == self.path for d in receiver.deliveries)
                    receiver.deliveries.append({"path": self.path, "headers": {name.lower(): value for name, value in self.headers.items()}, "body": body,
                                                "answered": 500 if first else 200})
                self.send_response(500 if first else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def at(self, path):
        with self.lock:
            return [d for d in self.deliveries if d["path"] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def site(tmp_path):
    for server in start_server(tmp_path, "--demo", "--alert-webhook-hosts", "127.0.0.1"):
        server.credentials = json.loads(Path(server.stdout_path).read_text().splitlines()[0])
        wait_ready(server)
        yield server


def verify(secret, delivery):
    """The check README "Alerts" shows a receiver."""
    fields = dict(part.split("=", 1) for part in delivery["headers"]["lumen-signature"].split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + delivery["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"]) and abs(time.time() - int(fields["t"])) < 300


def wait_for(condition, timeout=20):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def test_a_threshold_crossed_under_concurrency_is_one_signed_alert_retried_after_a_500(site, browser, receiver):
    token = site.credentials["management_token"]
    management = httpx.Client(base_url=site.http, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    admin_id = Person(site, site.credentials["email"], site.credentials["password"]).id

    # The Coins dialog: a 10-coin budget (0.1 USD), granted, warned at half of it spent.
    page = signed_in_page(browser, site, site.credentials["email"], site.credentials["password"])
    page.get_by_role("link", name="Users").click()
    page.locator("#users-table tr", has_text=site.credentials["email"]).get_by_role("button", name="Coins").click()
    pool = page.locator("#pool-dialog")
    expect(pool.locator("[data-alerts-now]")).to_have_text("No alerts.")
    pool.get_by_label("Kind").select_option("balance")
    pool.get_by_label("Ceiling (coins; empty for none)").fill("10")
    pool.get_by_role("button", name="Save pool").click()
    expect(pool.locator("[data-pool-now]")).to_contain_text("ceiling 10")
    pool.get_by_label("Coins (negative takes coins away)").fill("10")
    pool.get_by_label("Reason").fill("monthly budget")
    pool.get_by_role("button", name="Grant").click()
    expect(pool.locator("[data-pool-now]")).to_contain_text("10 coins")
    pool.get_by_label("Warn at, in % of the budget spent (comma-separated; empty for none)").fill("150")
    pool.get_by_role("button", name="Save alerts").click()
    expect(pool.locator("[data-error]")).to_contain_text("thresholds_percent")
    pool.get_by_label("Warn at, in % of the budget spent (comma-separated; empty for none)").fill("50")
    pool.get_by_role("button", name="Save alerts").click()
    expect(pool.locator("[data-alerts-now]")).to_have_text("Of 10 coins (the ceiling, or the balance after the latest grant).")
    pool.get_by_role("button", name="Close").click()

    # The Usage page: a webhook, its secret shown once; a second one in Slack's format by the API.
    page.get_by_role("link", name="Usage").click()
    alerts = page.locator("[data-alerts]")
    expect(alerts.get_by_text("No webhooks yet")).to_be_visible()
    alerts.get_by_label("Webhook URL").fill(receiver.url + "/lumen")
    alerts.get_by_label("Description").fill("finance")
    alerts.get_by_role("button", name="Add webhook").click()
    expect(alerts.locator("[data-secret]")).to_have_text(re.compile(r"^whsec_[A-Za-z0-9_-]{43}$"))
    secret = alerts.locator("[data-secret]").text_content()
    expect(alerts.locator("#alert-endpoints tbody tr")).to_have_count(1)
    slack = management.post("/v1/management/alerts/endpoints", json={"url": receiver.url + "/slack", "format": "slack"})
    assert slack.status_code == 201 and slack.json()["secret"].startswith("whsec_"), slack.text
    refused = management.post("/v1/management/alerts/endpoints", json={"url": "http://hooks.example.com/x"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_url"

    # Thirty requests, twelve at a time, each held at ~1.7 coins (its bound) and charged about
    # half of that:
    # past half of the 10 coins, until the pool cannot hold another (402).
    client = OpenAI(api_key=site.credentials["api_key"], base_url=site.http + "/v1", max_retries=0)
    words = "budget " * 2_000

    def spend(_):
        try:
            client.chat.completions.create(model=site.credentials["model"], messages=[{"role": "user", "content": words}])
            return 200
        except openai.APIStatusError as refusal:
            return refusal.status_code

    with ThreadPoolExecutor(max_workers=12) as pool_of_threads:
        statuses = list(pool_of_threads.map(spend, range(30)))
    assert set(statuses) <= {200, 402} and statuses.count(200) >= 3, statuses

    # One alert, delivered to each endpoint: refused once with a 500, then taken — the same id.
    wait_for(lambda: len(receiver.at("/lumen")) >= 2 and len(receiver.at("/slack")) >= 2)
    time.sleep(2)  # nothing more comes
    json_deliveries = receiver.at("/lumen")
    assert [d["answered"] for d in json_deliveries] == [500, 200]
    assert len({d["headers"]["lumen-webhook-id"] for d in json_deliveries + receiver.at("/slack")}) == 1
    assert all(verify(secret, d) for d in json_deliveries)
    assert not verify("whsec_not-the-secret", json_deliveries[0])
    event = json.loads(json_deliveries[1]["body"])
    assert event["type"] == "budget.threshold_crossed" and event["threshold_percent"] == 50
    assert event["id"] == json_deliveries[1]["headers"]["lumen-webhook-id"]
    assert event["pool"]["owner_type"] == "user" and event["pool"]["owner_id"] == admin_id
    assert event["pool"]["reference"] == 0.1 and event["pool"]["balance"] <= 0.05
    assert verify(slack.json()["secret"], receiver.at("/slack")[1])
    assert "50% of its budget" in json.loads(receiver.at("/slack")[1]["body"])["text"]

    deliveries = management.get("/v1/management/alerts/deliveries").json()
    assert deliveries["total"] == 2
    assert all(d["status"] == "delivered" and d["attempts"] == 2 and d["threshold_percent"] == 50 for d in deliveries["data"])
    alerts_now = management.get(f"/v1/management/pools/user/{admin_id}/alerts").json()
    assert alerts_now["thresholds_percent"] == [50] and alerts_now["crossed_percent"] == [50]

    # The page shows the alert, delivered; the audit log has the changes.
    page.reload()
    expect(page.locator("#alert-deliveries tbody tr")).to_have_count(2)
    expect(page.locator("#alert-deliveries tbody tr").first).to_contain_text("delivered")
    screenshot(page, "alerts")
    actions = {entry["action"] for entry in management.get("/v1/management/audit-log", params={"limit": 100}).json()["data"]}
    assert {"pool.alerts", "alert_endpoint.create"} <= actions

    # Deleting a webhook: gone from the list, its deliveries too.
    page.once("dialog", lambda confirm: confirm.accept())
    page.locator("#alert-endpoints tbody tr").first.get_by_role("button", name="Delete").click()
    expect(page.locator("#alert-endpoints tbody tr")).to_have_count(1)
    assert [e["format"] for e in management.get("/v1/management/alerts/endpoints").json()["data"]] == ["slack"]
    assert management.get("/v1/management/alerts/deliveries").json()["total"] == 1
