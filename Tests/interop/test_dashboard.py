"""The dashboard's pages in a real browser: Playwright driving Debian's headless Chromium
against `lumen serve --demo`. Every journey also writes screenshots of the pages it visits, at
a desktop (1280×800) and a phone (390×844) size, under test-output/screenshots/."""

import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from playwright.sync_api import expect

from conftest import ROOT, start_server, wait_ready

SHOTS = Path(os.environ.get("LUMEN_TEST_OUTPUT", ROOT / "test-output")) / "screenshots"


@pytest.fixture
def site(tmp_path):
    for server in start_server(tmp_path, "--demo"):
        server.credentials = json.loads(Path(server.stdout_path).read_text().splitlines()[0])
        wait_ready(server)
        yield server


def screenshot(page, name):
    """The page as it looks at a desktop and a phone size."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    for label, width, height in (("desktop", 1280, 800), ("phone", 390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
        # Every field has a label a screen reader reads.
        unlabelled = page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter(field => field.labels.length === 0 && !field.getAttribute('aria-label') && !field.getAttribute('aria-labelledby'))
            .map(field => field.outerHTML)""")
        assert unlabelled == [], f"{name}: fields without a label: {unlabelled}"
        # Nothing wider than the screen: wide tables scroll inside their own box.
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{name} is {overflow}px wider than a {width}px screen"
    page.set_viewport_size(size)


def sign_in(page, site, password=None):
    page.goto(site.http + "/profile")
    expect(page).to_have_url(re.compile(r"/login\?next=/profile$"))
    page.get_by_label("Email").fill(site.credentials["email"])
    page.get_by_label("Password").fill(password or site.credentials["password"])
    page.get_by_role("button", name="Sign in").click()


def key_row(page, name):
    return page.locator("#keys-table tbody tr", has=page.locator("td", has_text=name))


def test_after_sign_in_next_never_leads_to_another_site(site, browser):
    # As an attacker would link them: each `next` decodes to one a browser would turn into
    # another origin (tabs and newlines dropped, backslashes read as slashes). After signing in
    # the browser stays on this site.
    for query in ["/%09/evil.test", "/%0A/evil.test", "/%0D/%2Fevil.test", "/%5Cevil.test", "%5C%5Cevil.test",
                  "//evil.test", "/%2F/evil.test", "https://evil.test/", "/%09%5C/evil.test", "/%00//evil.test"]:
        context = browser.new_context()
        page = context.new_page()
        page.goto(site.http + "/login?next=" + query)
        page.get_by_label("Email").fill(site.credentials["email"])
        page.get_by_label("Password").fill(site.credentials["password"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        assert page.url.startswith(site.http + "/"), (query, page.url)
        context.close()


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
    # The quick start's key is the administrator's own: it is on their profile.
    demo_key = site.credentials["api_key"]
    expect(key_row(page, "Demo key").locator("td").nth(1)).to_have_text(demo_key[:4] + "..." + demo_key[-4:])

    # "+ New API Key" closed without saving — Cancel, or Escape — leaves no key behind: it is revoked.
    for close in ("Cancel", "Escape"):
        page.get_by_role("button", name="+ New API Key").click()
        dialog = page.locator("dialog[open]")
        expect(dialog.locator("[data-secret]")).to_have_value(re.compile(r"^sk-"))
        unsaved = dialog.locator("[data-secret]").input_value()
        # The page reloads once the key is revoked.
        with page.expect_navigation():
            if close == "Cancel":
                dialog.get_by_role("button", name="Cancel").click()
            else:
                page.keyboard.press("Escape")
        expect(page.locator("dialog[open]")).to_have_count(0)
        expect(key_row(page, "Default Key")).to_have_count(0)
        refused = httpx.get(site.http + "/v1/models", headers={"Authorization": f"Bearer {unsaved}"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "key_revoked", (close, refused.text)

    # "+ New API Key": the secret once, copied, then named.
    page.get_by_role("button", name="+ New API Key").click()
    dialog = page.locator("dialog[open]")
    expect(dialog.locator("[data-secret]")).to_have_value(re.compile(r"^sk-"))
    secret = dialog.locator("[data-secret]").input_value()
    assert re.fullmatch(r"sk-[A-Za-z0-9]{48}", secret)
    dialog.get_by_role("button", name="Copy").click()
    expect(dialog.get_by_role("button", name="Copied")).to_be_visible()
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
    expect(key_row(page, "my-research-script")).to_be_hidden()
    expect(key_row(page, "Demo key")).to_be_visible()
    page.get_by_label("Show deleted keys").click()
    expect(page).to_have_url(re.compile(r"show_deleted=true"))
    expect(page.get_by_label("Show deleted keys")).to_be_checked()
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


def test_sort_search_and_page_the_key_table(site, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, site)
    expect(page).to_have_url(site.http + "/profile")
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    # (The demo's own key, revoked: the table holds this test's keys alone.)
    demo = page.request.get(site.http + "/api/me/keys").json()["data"]
    for key in demo:
        assert page.request.delete(site.http + f"/api/me/keys/{key['id']}", headers={"X-CSRF-Token": csrf}).ok
    made = {}
    for name in ["beta", "alpha", "gamma"] + [f"bulk-{n:02}" for n in range(52)]:
        response = page.request.post(site.http + "/api/me/keys", data={"name": name}, headers={"X-CSRF-Token": csrf})
        assert response.ok
        made[name] = response.json()["key"]
    OpenAI(api_key=made["gamma"], base_url=site.http + "/v1").chat.completions.create(
        model=site.credentials["model"], messages=[{"role": "user", "content": "Hi"}])
    page.reload()
    names = lambda: [n.strip() for n in page.locator("#keys-table tbody tr td:first-child").all_inner_texts()]
    summary = page.locator("[data-pager-summary]")

    # 55 keys, 50 a page, by name.
    assert names()[:3] == ["alpha", "beta", "bulk-00"] and len(names()) == 50
    expect(summary).to_have_text("Keys 1–50 of 55")
    page.get_by_role("link", name="Next").click()
    expect(summary).to_have_text("Keys 51–55 of 55")
    assert names() == ["bulk-48", "bulk-49", "bulk-50", "bulk-51", "gamma"]
    page.get_by_role("link", name="Previous").click()
    expect(summary).to_have_text("Keys 1–50 of 55")

    # Name again: the other way round; Requests: the most used first.
    page.locator("#keys-table th", has_text="Name").get_by_role("link").click()
    expect(page.locator("#keys-table th", has_text="Name")).to_have_attribute("aria-sort", "descending")
    assert names()[:2] == ["gamma", "bulk-51"]
    page.locator("#keys-table th", has_text="Requests").get_by_role("link").click()
    expect(page.locator("#keys-table th", has_text="Requests")).to_have_attribute("aria-sort", "descending")
    assert names()[0] == "gamma"

    # Search as one types: the server's answer, the box keeps the focus.
    page.get_by_label("Search keys").press_sequentially("MM", delay=30)
    expect(page).to_have_url(re.compile(r"query=MM"))
    expect(page.locator("#keys-table tbody tr")).to_have_count(1)
    assert names() == ["gamma"]
    expect(page.get_by_label("Search keys")).to_be_focused()
    expect(summary).to_have_count(0)
    page.get_by_label("Search keys").fill("nothing-like-it")
    expect(page.get_by_text("No keys match “nothing-like-it”.")).to_be_visible()
    page.get_by_label("Search keys").fill("")
    expect(summary).to_have_text("Keys 1–50 of 55")
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


def signed_in_page(browser, site, email, password):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(site.http + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(site.http + "/profile")
    return page


def test_clients_managers_client_keys_and_deactivation(site, browser):
    from test_people_api import PASSWORD, Person, admin_cli

    token = site.credentials["management_token"]
    for name in ("manager", "member"):
        admin_cli(site, "user", "create", "--email", f"{name}@demo.lumen.invalid", "--name", name.title(),
                  "--password-stdin", token=token, password=PASSWORD)
    globex = site.bootstrap("Globex", "admin@globex.test")
    admin_cli(site, "user", "create", "--email", "boss@globex.test", "--name", "Boss", "--admin",
              "--password-stdin", token=globex["management_token"], password=PASSWORD)
    elsewhere = Person(site, "boss@globex.test", PASSWORD).call("POST", "/api/clients", {"name": "Globex bot"}).json()["id"]

    # An administrator creates a client on /clients and lands on its page.
    admin = signed_in_page(browser, site, site.credentials["email"], site.credentials["password"])
    admin.get_by_role("link", name="Clients").click()
    expect(admin.get_by_text("No clients yet")).to_be_visible()
    admin.get_by_role("button", name="+ New Client").click()
    admin.get_by_label("Name").fill("support-bot")
    admin.get_by_label("Description").fill("Answers the help desk")
    admin.get_by_role("button", name="Create client").click()
    expect(admin).to_have_url(re.compile(r"/clients/cli_[a-z0-9]+$"))
    client_url = admin.url
    expect(admin.get_by_role("heading", level=1)).to_contain_text("support-bot")
    expect(admin.get_by_text("No managers yet")).to_be_visible()

    # "+ Add Manager": suggestions as one types, pick, add.
    admin.get_by_role("button", name="+ Add Manager").click()
    admin.get_by_label("Name or email").press_sequentially("mana", delay=30)
    suggestion = admin.get_by_role("option", name=re.compile("manager@demo.lumen.invalid"))
    expect(suggestion).to_be_visible()
    expect(admin.get_by_role("option", name=re.compile("member@"))).to_have_count(0)
    suggestion.click()
    admin.get_by_role("button", name="Add Manager", exact=True).click()
    expect(admin.locator("#managers-table")).to_contain_text("manager@demo.lumen.invalid")
    screenshot(admin, "client")

    # The manager sees the client, no admin controls, and makes a key for it that works.
    manager = signed_in_page(browser, site, "manager@demo.lumen.invalid", PASSWORD)
    manager.get_by_role("link", name="Clients").click()
    expect(manager.get_by_role("link", name="support-bot")).to_be_visible()
    screenshot(manager, "clients")
    manager.get_by_role("link", name="support-bot").click()
    expect(manager).to_have_url(client_url)
    expect(manager.get_by_role("button", name="+ Add Manager")).to_have_count(0)
    expect(manager.get_by_role("button", name="Deactivate client")).to_have_count(0)
    expect(manager.get_by_role("button", name="Remove")).to_have_count(0)
    manager.get_by_role("button", name="+ New API Key").click()
    expect(manager.locator("dialog[open] [data-secret]")).to_have_value(re.compile(r"^sk-"))
    secret = manager.locator("dialog[open] [data-secret]").input_value()
    manager.locator("dialog[open]").get_by_label("Name").fill("production")
    manager.locator("dialog[open]").get_by_role("button", name="Save Key").click()
    expect(key_row(manager, "production")).to_be_visible()
    sdk = OpenAI(api_key=secret, base_url=site.http + "/v1")
    sdk.chat.completions.create(model=site.credentials["model"], messages=[{"role": "user", "content": "Hi"}])
    manager.reload()
    expect(key_row(manager, "production").locator("td").nth(2)).to_have_text("1")
    expect(manager.locator('[data-figure="tokens"]')).not_to_have_text("0")

    # The administrator deactivates the client: its key fails at once.
    admin.reload()
    admin.once("dialog", lambda confirm: confirm.accept())
    admin.get_by_role("button", name="Deactivate client").click()
    expect(admin.locator("[data-client-status]")).to_have_text("inactive")
    expect(admin.get_by_role("button", name="Activate client")).to_be_visible()
    deadline = time.time() + 1
    while True:
        try:
            sdk.chat.completions.create(model=site.credentials["model"], messages=[{"role": "user", "content": "Hi"}])
        except Exception as error:
            assert getattr(error, "status_code", None) == 401
            break
        assert time.time() < deadline, "the deactivated client's key still works after a second"
        time.sleep(0.05)

    # A plain member: no client listed, no admin link, 403 for this client, 404 for another organisation's.
    member = signed_in_page(browser, site, "member@demo.lumen.invalid", PASSWORD)
    expect(member.get_by_role("link", name="Users")).to_have_count(0)
    member.get_by_role("link", name="Clients").click()
    expect(member.get_by_text("You manage no client yet")).to_be_visible()
    response = member.goto(client_url)
    assert response.status == 403
    expect(member.get_by_role("heading", level=1)).to_have_text("Not allowed")
    response = member.goto(site.http + f"/clients/{elsewhere}")
    assert response.status == 404
    expect(member.get_by_role("heading", level=1)).to_have_text("Not found")
    for page in (admin, manager, member):
        page.context.close()


def test_consent_from_the_model_table_and_the_model_page(site, browser, tmp_path):
    from test_people_api import apply_models

    apply_models(site, """
models:
  - name: careful-model
    max_output_tokens: 1024
    vendor: lumen
    description: Needs a one-time acknowledgement.
    consent_required: true
    scenes: [chat]
    prices: {input: 1, output: 2}
    backends:
      - {id: mock, provider: mock}
""", tmp_path)
    page = signed_in_page(browser, site, site.credentials["email"], site.credentials["password"])
    row = page.locator('#models-table tr[data-model="careful-model"]')
    for _ in range(50):  # the registry's watch reaches the page's services at once; the table reads them
        if row.count():
            break
        page.wait_for_timeout(100)
        page.reload()
    need = row.get_by_role("button", name="Need Consent")
    expect(need).to_be_visible()

    # The model page: description, prices in coins and USD, the backend, the access.
    row.get_by_role("link", name="careful-model").click()
    expect(page).to_have_url(site.http + "/models/careful-model")
    expect(page.get_by_text("Needs a one-time acknowledgement.", exact=True)).to_be_visible()
    prices = page.locator("#prices-table")
    expect(prices.get_by_role("row", name=re.compile(r"^Input, per million tokens"))).to_have_text(re.compile(r"100\s*\$1$"))
    expect(prices.get_by_role("row", name=re.compile(r"^Output, per million tokens"))).to_have_text(re.compile(r"200\s*\$2$"))
    expect(page.locator("#backends-table")).to_contain_text("Built-in mock")
    screenshot(page, "model")

    # Consent from the table: the one-time acknowledgement, then "Consented".
    page.go_back()
    page.locator('#models-table tr[data-model="careful-model"]').get_by_role("button", name="Need Consent").click()
    page.locator("dialog[open]").get_by_role("button", name="I understand, enable it").click()
    expect(page.locator('#models-table tr[data-model="careful-model"] td').nth(5)).to_have_text("Consented")
    mine = {row["model"]: row for row in page.request.get(site.http + "/api/me/models").json()["data"]}
    assert mine["careful-model"]["access"] == "consented"
    page.context.close()


def test_an_administrator_manages_people_groups_and_coins(site, browser):
    admin = signed_in_page(browser, site, site.credentials["email"], site.credentials["password"])
    admin.get_by_role("link", name="Users").click()
    expect(admin).to_have_url(site.http + "/users")

    # By keyboard: Enter opens a dialog with the focus inside it, Escape closes it and gives the
    # focus back; then a group, made without the mouse.
    opener = admin.get_by_role("button", name="+ New Group")
    opener.focus()
    admin.keyboard.press("Enter")
    expect(admin.locator("#new-group-dialog")).to_be_visible()
    assert admin.evaluate("document.getElementById('new-group-dialog').contains(document.activeElement)")
    admin.keyboard.press("Escape")
    expect(admin.locator("#new-group-dialog")).to_be_hidden()
    expect(opener).to_be_focused()
    admin.keyboard.press("Enter")
    name = admin.locator("#new-group-dialog").get_by_label("Name")
    name.focus()
    admin.keyboard.type("research")
    admin.keyboard.press("Enter")  # submits the dialog's form
    expect(admin.locator("#new-group-dialog")).to_be_hidden()

    # A person in the group, an invitation link that sets their password.
    admin.get_by_role("button", name="+ New User").click()
    dialog = admin.locator("#new-user-dialog")
    dialog.get_by_label("Email").fill("newcomer@demo.lumen.invalid")
    dialog.get_by_label("Name").fill("Grace Newcomer")
    dialog.get_by_label("research").check()
    admin.get_by_role("button", name="Create user").click()
    row = admin.locator("#users-table tr", has_text="newcomer@demo.lumen.invalid")
    expect(row).to_contain_text("research")
    expect(row.locator(".badge").first).to_have_text("member")
    row.get_by_role("button", name="Invite link").click()
    expect(admin.locator("[data-invite-url]")).to_have_value(re.compile(re.escape(site.http) + r"/invite/inv-[A-Za-z0-9]+$"))
    link = admin.locator("[data-invite-url]").input_value()
    admin.locator("#invite-dialog").get_by_role("button", name="Done").click()
    screenshot(admin, "users")

    newcomer = browser.new_context().new_page()
    newcomer.goto(link)
    newcomer.get_by_label("New password").fill("a long new password")
    newcomer.get_by_label("Repeat it").fill("a long new password")
    newcomer.get_by_role("button", name="Set password").click()
    expect(newcomer.get_by_role("status")).to_have_text("Your password is set. Sign in.")
    newcomer.get_by_label("Password").fill("a long new password")
    newcomer.get_by_role("button", name="Sign in").click()
    expect(newcomer.get_by_role("heading", level=1)).to_have_text("Grace Newcomer")
    expect(newcomer.get_by_text("research")).to_be_visible()
    expect(newcomer.get_by_role("link", name="Users")).to_have_count(0)
    assert newcomer.goto(site.http + "/users").status == 403

    # Coins: a pool with a ceiling and a refill, then a grant; the person's profile shows it.
    row.get_by_role("button", name="Coins").click()
    pool = admin.locator("#pool-dialog")
    expect(pool.locator("[data-pool-now]")).to_have_text("Now: Not configured.")
    pool.get_by_label("Kind").select_option("balance")
    pool.get_by_label("Ceiling (coins; empty for none)").fill("100")
    pool.get_by_label("Refill per hour (coins)").fill("10")
    pool.get_by_role("button", name="Save pool").click()
    expect(pool.locator("[data-pool-now]")).to_contain_text("ceiling 100")
    pool.get_by_label("Coins (negative takes coins away)").fill("50")
    pool.get_by_label("Reason").fill("welcome")
    pool.get_by_role("button", name="Grant").click()
    expect(pool.locator("[data-pool-now]")).to_contain_text("50 coins")
    pool.get_by_role("button", name="Close").click()
    newcomer.goto(site.http + "/profile")
    expect(newcomer.locator('[data-figure="coins-available"]')).to_contain_text("50")
    expect(newcomer.locator('[data-figure="coins-available"] progress')).to_have_attribute("value", "50")
    expect(newcomer.locator('[data-figure="refill"]')).to_contain_text("10 / hour")
    expect(newcomer.locator("[data-countdown]")).to_have_text(re.compile(r"^\d{2}:\d{2}$|^\d+h "))

    # Administrator rights, then deactivation: the person's session ends at once.
    admin.reload()
    row = admin.locator("#users-table tr", has_text="newcomer@demo.lumen.invalid")
    row.get_by_role("button", name="Make admin").click()
    expect(admin.locator("#users-table tr", has_text="newcomer@").locator(".badge").first).to_have_text("admin")
    admin.once("dialog", lambda confirm: confirm.accept())
    admin.locator("#users-table tr", has_text="newcomer@").get_by_role("button", name="Deactivate").click()
    expect(admin.locator("#users-table tr", has_text="newcomer@")).to_contain_text("inactive")
    newcomer.goto(site.http + "/profile")
    expect(newcomer).to_have_url(re.compile(r"/login\?next=/profile$"))
    admin.context.close()
    newcomer.context.close()


def test_an_administrator_reads_and_filters_the_audit_log(site, browser):
    from test_people_api import PASSWORD, Person, admin_cli

    token = site.credentials["management_token"]
    admin_cli(site, "user", "create", "--email", "member@demo.lumen.invalid", "--name", "Member",
              "--password-stdin", token=token, password=PASSWORD)
    # A failed sign-in, then the administrator's own: both are on the page.
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(site.http + "/login")
    page.get_by_label("Email").fill(site.credentials["email"])
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    admin = signed_in_page(browser, site, site.credentials["email"], site.credentials["password"])
    admin.get_by_role("link", name="Audit").click()
    expect(admin).to_have_url(site.http + "/audit")
    rows = admin.locator("#audit-table tbody tr")
    expect(rows.first).to_contain_text("session.sign_in")
    expect(rows.first).to_contain_text("person")
    expect(admin.locator("#audit-table tr[data-action='session.sign_in_failed']")).to_have_count(1)
    expect(admin.locator("#audit-table tr[data-action='user.create']")).to_contain_text("management_token")

    # Filtered to the people's changes: the values before and after, opened.
    admin.get_by_label("Action").fill("user.")
    admin.get_by_role("button", name="Filter").click()
    expect(admin).to_have_url(re.compile(r"/audit\?action=user\.&"))
    expect(rows).not_to_have_count(0)
    assert set(rows.evaluate_all("rows => rows.map(row => row.dataset.action)")) <= {"user.create", "user.update",
                                                                                 "user.set_password"}
    created = admin.locator("#audit-table tr[data-action='user.create']", has_text="member@demo.lumen.invalid")
    created.get_by_text("Values").click()
    expect(created.locator("code.json")).to_contain_text('"email":"member@demo.lumen.invalid"')
    screenshot(admin, "audit")

    # A date that is not one is said on the page; a member may not read the log.
    admin.get_by_label("From").fill("2026-02-31x")
    admin.get_by_role("button", name="Filter").click()
    expect(admin.get_by_role("alert")).to_contain_text("startDate must be")
    member = Person(site, "member@demo.lumen.invalid", PASSWORD)
    assert member.client.get("/audit", headers={"Accept": "text/html"}).status_code == 403


def test_web_chat_streams_markdown_keeps_conversations_and_counts_on_the_profile(site, browser):
    page = signed_in_page(browser, site, site.credentials["email"], site.credentials["password"])
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.get_by_role("link", name="Chat").click()
    expect(page).to_have_url(site.http + "/chat")
    expect(page.get_by_text("No conversations yet")).to_be_visible()
    expect(page.get_by_label("Model")).to_have_value(site.credentials["model"])

    # Shift+Enter makes a new line, Enter sends; the answer streams in as Markdown.
    box = page.get_by_label("Message")
    box.press_sequentially("Hello **there**")
    box.press("Shift+Enter")
    box.press_sequentially("- one")
    expect(box).to_have_value("Hello **there**\n- one")
    box.press("Enter")
    answer = page.locator(".message.assistant .bubble").last
    expect(answer.locator("strong")).to_have_text("there")
    expect(answer.locator("li")).to_have_text("one")
    expect(page.locator(".message.user .bubble").last).to_contain_text("Hello")
    expect(box).to_have_value("")
    expect(page).to_have_url(re.compile(r"/chat\?c=cnv_[a-z0-9]+$"))
    # Titled by the first line as text, not its Markdown.
    expect(page.locator(".conversation-list [data-title]")).to_have_text(["Hello there"])

    # The list item the page added after the answer can be renamed at once (no reload first).
    page.once("dialog", lambda ask: ask.accept("Greetings"))
    page.get_by_role("button", name="Rename").click()
    expect(page.locator(".conversation-list [data-title]")).to_have_text(["Greetings"])

    # No HTML from the model's text: an image tag is text.
    box.fill("<img src=x onerror=alert(1)>")
    box.press("Enter")
    expect(page.locator(".message.assistant .bubble").last).to_contain_text("<img src=x onerror=alert(1)>")
    assert page.locator(".messages img").count() == 0
    screenshot(page, "chat")

    # Kept on the server: another browser opens the same conversation.
    url = page.url
    other = browser.new_context().new_page()
    other.goto(site.http + "/login")
    other.get_by_label("Email").fill(site.credentials["email"])
    other.get_by_label("Password").fill(site.credentials["password"])
    other.get_by_role("button", name="Sign in").click()
    other.goto(url)
    expect(other.locator(".message")).to_have_count(4)
    expect(other.locator(".message.assistant .bubble").first.locator("strong")).to_have_text("there")

    # The profile's web-chat row counts it, equal to /api's.
    other.goto(site.http + "/profile")
    row = other.locator('[data-row="web-chat"]')
    expect(row.locator('[data-figure="conversations"]')).to_have_text("1")
    expect(row.locator('[data-figure="requests"]')).to_have_text("2")
    web = other.request.get(site.http + "/api/me/profile").json()["web_chat"]
    expect(row.locator('[data-figure="tokens"]')).to_have_text(f"{web['tokens']:,}")
    # On a 390 px phone every figure of the row is on the screen, with its label: nothing to scroll to.
    other.set_viewport_size({"width": 390, "height": 844})
    for cell in row.locator("td").all():
        box = cell.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (cell.get_attribute("data-label"), box)
    assert row.locator("td").last.evaluate("cell => getComputedStyle(cell, '::before').content") == '"Last Used"'
    # The email breaks between its parts, never inside a word.
    email = other.locator(".identity .email")
    assert email.inner_text().replace("\n", "") == site.credentials["email"]
    other.set_viewport_size({"width": 1280, "height": 800})

    # A refused request says why in the page, and keeps nothing.
    me = other.request.get(site.http + "/api/me").json()
    csrf = me["csrf_token"]
    assert other.request.put(site.http + f"/api/users/{me['user']['id']}/pool", data={"mode": "balance", "refill_per_hour": 0},
                             headers={"X-CSRF-Token": csrf}).ok
    page.reload()
    page.get_by_label("Message").fill("Are you there?")
    page.get_by_label("Message").press("Enter")
    expect(page.locator("[data-chat-error]")).to_be_visible()
    expect(page.locator("[data-chat-error]")).not_to_be_empty()
    expect(page.locator(".message")).to_have_count(4)

    # Delete.
    expect(page.locator(".conversation-list [data-title]")).to_have_text(["Greetings"])
    page.once("dialog", lambda confirm: confirm.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(site.http + "/chat")
    expect(page.get_by_text("No conversations yet")).to_be_visible()
    assert errors == [], errors
    other.context.close()
    page.context.close()


def test_a_browser_gets_an_html_404_an_api_client_json_and_the_icon_is_served(site):
    html = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    page = httpx.get(site.http + "/no-such-page", headers=html)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html"), page.text
    assert "<h1>Not found</h1>" in page.text and "/no-such-page" in page.text and "x-request-id" in page.headers
    for path, headers in [("/no-such-page", {}), ("/no-such-page", {"Accept": "application/json"}),
                          ("/v1/no-such-route", html), ("/api/no-such-route", html), ("/static/nothing.js", html)]:
        answer = httpx.get(site.http + path, headers=headers)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found", (path, answer.text)
    posted = httpx.post(site.http + "/no-such-page", headers=html)
    assert posted.status_code == 404 and posted.json()["error"]["code"] == "not_found"
    icon = httpx.get(site.http + "/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml" and b"<svg" in icon.content
