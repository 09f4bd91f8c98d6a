"""The dashboard's pages in a real browser: Playwright driving Debian's headless Chromium
against `lumen serve --demo`. Every journey also writes screenshots of the pages it visits, at
a desktop (1280×800) and a phone (390×844) size, under test-output/screenshots/."""

import json
import os
import re
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from playwright.sync_api import expect, sync_playwright

from conftest import ROOT, start_server, wait_ready

CHROMIUM = os.environ.get("LUMEN_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("LUMEN_TEST_OUTPUT", ROOT / "test-output")) / "screenshots"


@pytest.fixture
def site(tmp_path):
    for server in start_server(tmp_path, "--demo"):
        server.credentials = json.loads(Path(server.stdout_path).read_text().splitlines()[0])
        wait_ready(server)
        yield server


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/setup.sh --tests (Debian's chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield browser
        browser.close()


def screenshot(page, name):
    """The page as it looks at a desktop and a phone size."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    for label, width, height in (("desktop", 1280, 800), ("phone", 390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(size)


def sign_in(page, site, password=None):
    page.goto(site.http + "/profile")
    expect(page).to_have_url(re.compile(r"/login\?next=/profile$"))
    page.get_by_label("Email").fill(site.credentials["email"])
    page.get_by_label("Password").fill(password or site.credentials["password"])
    page.get_by_role("button", name="Sign in").click()


def key_row(page, name):
    return page.locator("#keys-table tbody tr", has=page.locator("td", has_text=name))


def test_sign_in_create_use_and_revoke_a_personal_key(site, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.http)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    # A wrong password: the form says so and nobody is signed in.
    sign_in(page, site, password="not-the-password")
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    screenshot(page, "login")
    page.get_by_label("Password").fill(site.credentials["password"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(site.http + "/profile")
    expect(page.get_by_role("heading", level=1)).to_have_text("Demo admin")
    expect(page.get_by_text("No API keys yet")).to_be_visible()

    # "+ New API Key": the secret once, copied, then named.
    page.get_by_role("button", name="+ New API Key").click()
    dialog = page.locator("dialog[open]")
    secret = dialog.locator("[data-secret]").input_value()
    assert re.fullmatch(r"sk-[A-Za-z0-9]{48}", secret)
    dialog.get_by_role("button", name="Copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    dialog.get_by_label("Name").fill("my-research-script")
    dialog.get_by_role("button", name="Save Key").click()
    row = key_row(page, "my-research-script")
    expect(row).to_be_visible()
    expect(row.locator("td").nth(1)).to_have_text(secret[:4] + "..." + secret[-4:])
    assert secret not in page.content(), "the secret is shown once, never again"
    expect(row.locator("td").nth(2)).to_have_text("0")

    # The key works with the openai SDK; its row counts the request.
    client = OpenAI(api_key=secret, base_url=site.http + "/v1")
    answer = client.chat.completions.create(model=site.credentials["model"], messages=[{"role": "user", "content": "Hi"}])
    page.reload()
    row = key_row(page, "my-research-script")
    expect(row.locator("td").nth(2)).to_have_text("1")
    tokens = answer.usage.prompt_tokens + answer.usage.completion_tokens
    expect(row.locator("td").nth(3)).to_have_text(f"{tokens:,}")
    screenshot(page, "profile")

    # Revoke, confirmed: the key stops working, and shows only with "Show deleted keys", struck through.
    page.once("dialog", lambda confirm: confirm.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("No API keys yet")).to_have_count(0)
    expect(key_row(page, "my-research-script")).to_be_hidden()
    page.get_by_label("Show deleted keys").check()
    revoked = key_row(page, "my-research-script")
    expect(revoked).to_be_visible()
    assert "line-through" in revoked.locator("td").first.evaluate("cell => getComputedStyle(cell).textDecorationLine")
    expect(revoked.locator("td").nth(2)).to_have_text("1")
    with pytest.raises(Exception) as refused:
        client.chat.completions.create(model=site.credentials["model"], messages=[{"role": "user", "content": "Hi"}])
    assert getattr(refused.value, "status_code", None) == 401

    # The profile's figures are /api's.
    api = httpx.Client(base_url=site.http, cookies=context.cookies() and {c["name"]: c["value"] for c in context.cookies()})
    profile = api.get("/api/me/profile").json()
    expect(page.locator('[data-figure="tokens-used"]')).to_have_text(f"{profile['tokens_used']:,}")
    assert errors == [], errors
    context.close()


def test_sort_and_search_the_key_table(site, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, site)
    expect(page).to_have_url(site.http + "/profile")
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    for name in ("beta", "alpha", "gamma"):
        assert page.request.post(site.http + "/api/me/keys", data={"name": name}, headers={"X-CSRF-Token": csrf}).ok
    page.reload()
    names = lambda: [n.strip() for n in page.locator("#keys-table tbody tr:not([hidden]) td:first-child").all_inner_texts()]
    assert names() == ["alpha", "beta", "gamma"]
    page.locator("#keys-table th", has_text="Name").get_by_role("button").click()
    assert names() == ["alpha", "beta", "gamma"]
    page.locator("#keys-table th", has_text="Name").get_by_role("button").click()
    assert names() == ["gamma", "beta", "alpha"]
    page.get_by_label("Search keys").fill("MM")
    assert names() == ["gamma"]
    page.get_by_label("Search keys").fill("")
    assert len(names()) == 3
    page.close()


def test_signed_out_pages_go_to_sign_in_and_sign_out_ends_the_session(site, browser):
    page = browser.new_page()
    page.goto(site.http + "/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    sign_in(page, site)
    expect(page).to_have_url(site.http + "/profile")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(site.http + "/login")
    page.goto(site.http + "/profile")
    expect(page).to_have_url(re.compile(r"/login\?next=/profile$"))
    page.close()
