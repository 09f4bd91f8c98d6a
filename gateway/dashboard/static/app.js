// Lumen dashboard: plain ES module, no build step, nothing fetched but Lumen's own /api.
// Pages are rendered on the server; this adds local times, countdowns, sorting and filtering
// of the small tables (the key tables are sorted, searched and paged by the server), dialogs,
// copying, and the calls that change something (with the CSRF token).

import { api } from "./api.js";
import { chat } from "./chat.js";

/** Times in the viewer's own time zone. */
export function localTimes(root = document) {
  for (const time of root.querySelectorAll("time[datetime]")) {
    const when = new Date(time.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) {
      time.textContent = when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
      time.title = when.toISOString();
    }
  }
}

function countdowns() {
  const items = [...document.querySelectorAll("[data-countdown]")];
  if (items.length === 0) return;
  const tick = () => {
    for (const item of items) {
      const left = Math.max(0, Math.round((new Date(item.dataset.countdown) - Date.now()) / 1000));
      const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      item.textContent = left === 0 ? "now" : (h ? `${h}h ` : "") + `${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
    }
  };
  tick();
  setInterval(tick, 1000);
}

/** Sorting by any column with a sort button, filtering by name, and disabled rows on demand. */
function tables() {
  for (const table of document.querySelectorAll("table.sortable")) {
    const headers = [...table.tHead.rows[0].cells];
    headers.forEach((th, index) => {
      const button = th.querySelector("button");
      if (!button || !th.dataset.sort) return;
      button.addEventListener("click", () => {
        const descending = th.getAttribute("aria-sort") !== "descending"
          && (th.getAttribute("aria-sort") === "ascending" || th.dataset.sort === "number");
        for (const other of headers) other.removeAttribute("aria-sort");
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        const rows = [...table.tBodies[0].rows];
        const value = (row) => row.cells[index].dataset.value ?? row.cells[index].textContent;
        rows.sort((a, b) => {
          const order = th.dataset.sort === "number"
            ? Number(value(a)) - Number(value(b))
            : value(a).localeCompare(value(b), undefined, { sensitivity: "base" });
          return descending ? -order : order;
        });
        table.tBodies[0].append(...rows);
      });
    });
  }
  const refresh = (table) => {
    const query = (document.querySelector(`[data-filter="${table.id}"]`)?.value ?? "").trim().toLowerCase();
    const showHidden = document.querySelector(`[data-show-disabled="${table.id}"]`)?.checked;
    for (const row of table.tBodies[0].rows) {
      const optional = row.classList.contains("disabled");
      const matches = (row.dataset.name ?? "").toLowerCase().includes(query);
      row.hidden = !matches || (optional && !showHidden);
    }
  };
  for (const input of document.querySelectorAll("[data-filter], [data-show-disabled]")) {
    const table = document.getElementById(input.dataset.filter ?? input.dataset.showDisabled);
    if (table) input.addEventListener("input", () => refresh(table));
  }
}

/** The key tables are paged on the server: their search asks it as one types (a pause of
 * 400 ms), "Show deleted keys" at once; the search box keeps the focus across the reload. */
function keySearch() {
  for (const form of document.querySelectorAll("[data-key-search]")) {
    const input = form.querySelector("[data-search-input]");
    let timer = null;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        sessionStorage.setItem("lumen-key-search-focus", "1");
        form.requestSubmit();
      }, 400);
    });
    form.querySelector("[data-deleted-toggle]").addEventListener("change", () => form.requestSubmit());
    if (sessionStorage.getItem("lumen-key-search-focus")) {
      sessionStorage.removeItem("lumen-key-search-focus");
      // After the load: going to the #keys fragment would take the focus away again.
      const focus = () => setTimeout(() => {
        input.focus();
        input.setSelectionRange(input.value.length, input.value.length);
      });
      if (document.readyState === "complete") focus(); else addEventListener("load", focus, { once: true });
    }
  }
}

function showError(dialog, error) {
  const box = dialog.querySelector("[data-error]");
  box.textContent = error.message;
  box.hidden = false;
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * "+ New API Key": the key is made when the dialog opens, shown once, then named; "Save Key"
 * keeps it. Closed any other way (Cancel, Escape), the key is revoked: only a saved key stays.
 */
function keys() {
  for (const section of document.querySelectorAll("[data-keys]")) {
    const dialog = section.querySelector("[data-new-key-dialog]");
    let created = null;
    let saved = false;
    section.querySelector("[data-new-key]")?.addEventListener("click", async (event) => {
      event.target.disabled = true;
      dialog.querySelector("[data-error]").hidden = true;
      saved = false;
      try {
        created = await api("POST", section.dataset.createUrl, {});
        dialog.querySelector("[data-secret]").value = created.key;
        dialog.querySelector("[data-key-name-input]").value = "";
        dialog.showModal();
        dialog.querySelector("[data-secret]").select();
      } catch (error) {
        alert(`The key was not created: ${error.message}`);
      } finally {
        event.target.disabled = false;
      }
    });
    dialog?.querySelector("[data-copy]").addEventListener("click", async (event) => {
      const secret = dialog.querySelector("[data-secret]");
      secret.select();
      event.target.textContent = (await copy(secret.value)) ? "Copied" : "Press Ctrl+C";
    });
    dialog?.querySelector("[data-save-key]").addEventListener("click", async () => {
      const name = dialog.querySelector("[data-key-name-input]").value.trim();
      try {
        if (name) await api("PATCH", `${section.dataset.createUrl}/${encodeURIComponent(created.id)}`, { name });
        saved = true;
        location.reload();
      } catch (error) {
        showError(dialog, error);
      }
    });
    dialog?.querySelector("[data-cancel-key]").addEventListener("click", () => dialog.close());
    dialog?.addEventListener("close", async () => {
      if (!created || saved) return;
      const id = created.id;
      created = null;
      try {
        await api("DELETE", `${section.dataset.createUrl}/${encodeURIComponent(id)}`);
      } catch (error) {
        alert(`The unsaved key could not be revoked: ${error.message}. Revoke it from the table.`);
      }
      location.reload();
    });
    for (const button of section.querySelectorAll("[data-revoke]")) {
      button.addEventListener("click", async () => {
        const name = button.dataset.keyName || "this key";
        if (!confirm(`Revoke ${name}? Code using it starts getting authentication errors at once. Its usage stays visible.`)) return;
        try {
          await api("DELETE", button.dataset.revoke);
          location.reload();
        } catch (error) {
          alert(`The key was not revoked: ${error.message}`);
        }
      });
    }
  }
}

/** "Need Consent": a one-time acknowledgement, then the badge reads "Consented". */
function consent() {
  for (const section of document.querySelectorAll("[data-models]")) {
    const dialog = section.querySelector("[data-consent-dialog]");
    let url = null;
    for (const button of section.querySelectorAll("[data-consent]")) {
      button.addEventListener("click", () => {
        url = button.dataset.consent;
        dialog.querySelector("[data-consent-model]").textContent = button.dataset.modelName;
        dialog.querySelector("[data-error]").hidden = true;
        dialog.showModal();
      });
    }
    dialog?.querySelector("[data-confirm-consent]").addEventListener("click", async () => {
      try {
        await api("POST", url, {});
        location.reload();
      } catch (error) {
        showError(dialog, error);
      }
    });
  }
}

function avatars() {
  for (const image of document.querySelectorAll(".avatar img")) {
    const hide = () => { image.hidden = true; };
    if (image.complete && image.naturalWidth === 0) hide();
    image.addEventListener("error", hide);
  }
}

/** Buttons that open a dialog by id, and buttons that close theirs. */
function dialogs() {
  for (const button of document.querySelectorAll("[data-open]")) {
    const dialog = document.getElementById(button.dataset.open);
    button.addEventListener("click", () => {
      dialog.querySelector("[data-error]")?.setAttribute("hidden", "");
      dialog.showModal();
    });
  }
  for (const button of document.querySelectorAll("dialog [data-close]")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }
}

/** `/clients`: an administrator makes a client and lands on its page. */
function newClient() {
  const form = document.querySelector("[data-new-client-form]");
  form?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { name: data.get("name").trim() };
    if (data.get("description").trim()) body.description = data.get("description").trim();
    try {
      const client = await api("POST", "/api/clients", body);
      location.href = `/clients/${encodeURIComponent(client.id)}`;
    } catch (error) {
      showError(form.closest("dialog"), error);
    }
  });
}

/** `/clients/<id>`: activation, and managers (search as you type, add, remove). */
function client() {
  const toggle = document.querySelector("[data-client-active]");
  toggle?.addEventListener("click", async () => {
    const activate = toggle.dataset.active !== "true";
    if (!activate && !confirm("Deactivate this client? Its API keys are refused at once, until it is activated again.")) return;
    try {
      await api("PATCH", toggle.dataset.clientActive, { active: activate });
      location.reload();
    } catch (error) {
      alert(error.message);
    }
  });
  const section = document.querySelector("[data-managers]");
  if (!section) return;
  for (const button of section.querySelectorAll("[data-remove-manager]")) {
    button.addEventListener("click", async () => {
      if (!confirm(`Remove ${button.dataset.managerName} as a manager of this client?`)) return;
      try {
        await api("DELETE", button.dataset.removeManager);
        location.reload();
      } catch (error) {
        alert(error.message);
      }
    });
  }
  const form = section.querySelector("[data-add-manager-form]");
  if (!form) return;
  const input = form.querySelector("[data-user-search]");
  const list = form.querySelector("#user-suggestions");
  const chosen = form.querySelector("[data-selected-user]");
  const submit = form.querySelector("[data-add-manager-submit]");
  let selected = null;
  let timer = null;
  let asked = 0;
  const choose = (user) => {
    selected = user;
    chosen.textContent = `${user.display_name} <${user.email}> will manage this client.`;
    submit.disabled = false;
    list.replaceChildren();
    input.setAttribute("aria-expanded", "false");
  };
  input.addEventListener("input", () => {
    selected = null;
    submit.disabled = true;
    chosen.textContent = "";
    clearTimeout(timer);
    const query = input.value.trim();
    if (!query) { list.replaceChildren(); return; }
    timer = setTimeout(async () => {
      const mine = ++asked;
      try {
        const users = (await api("GET", `/api/users?query=${encodeURIComponent(query)}`)).data;
        if (mine !== asked) return;
        list.replaceChildren(...users.map((user) => {
          const item = document.createElement("li");
          const button = document.createElement("button");
          button.type = "button";
          button.setAttribute("role", "option");
          button.textContent = `${user.display_name} — ${user.email}`;
          button.addEventListener("click", () => choose(user));
          item.append(button);
          return item;
        }));
        if (users.length === 0) {
          const item = document.createElement("li");
          item.className = "muted";
          item.textContent = "Nobody matches.";
          list.append(item);
        }
        input.setAttribute("aria-expanded", String(users.length > 0));
      } catch (error) {
        showError(form.closest("dialog"), error);
      }
    }, 150);
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!selected) return;
    try {
      await api("POST", `${section.dataset.managersUrl}/${encodeURIComponent(selected.id)}`);
      location.reload();
    } catch (error) {
      showError(form.closest("dialog"), error);
    }
  });
}

/** `/users`: an administrator's people and groups. */
function users() {
  const newUser = document.querySelector("[data-new-user-form]");
  newUser?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(newUser);
    const body = { email: data.get("email").trim(), is_admin: data.get("is_admin") === "on", group_ids: data.getAll("group_ids") };
    if (data.get("display_name").trim()) body.display_name = data.get("display_name").trim();
    try {
      await api("POST", "/api/users", body);
      location.reload();
    } catch (error) {
      showError(newUser.closest("dialog"), error);
    }
  });
  const newGroup = document.querySelector("[data-new-group-form]");
  newGroup?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(newGroup);
    const body = { name: data.get("name").trim() };
    if (data.get("description").trim()) body.description = data.get("description").trim();
    try {
      await api("POST", "/api/groups", body);
      location.reload();
    } catch (error) {
      showError(newGroup.closest("dialog"), error);
    }
  });
  const groupsDialog = document.getElementById("groups-dialog");
  let editing = null;
  for (const row of document.querySelectorAll("#users-table tr[data-user]")) {
    const url = row.dataset.url;
    const act = async (body, question) => {
      if (question && !confirm(question)) return;
      try {
        await api("PATCH", url, body);
        location.reload();
      } catch (error) {
        alert(error.message);
      }
    };
    row.querySelector("[data-set-admin]")?.addEventListener("click", (event) => {
      const admin = event.target.dataset.setAdmin === "true";
      act({ is_admin: admin }, admin ? null : `Remove ${row.dataset.name}'s administrator rights?`);
    });
    row.querySelector("[data-set-active]")?.addEventListener("click", (event) => {
      const active = event.target.dataset.setActive === "true";
      act({ active }, active ? null : `Deactivate ${row.dataset.name}? Their sessions end and their API keys are refused at once.`);
    });
    row.querySelector("[data-edit-groups]")?.addEventListener("click", () => {
      editing = row;
      const mine = new Set(row.dataset.groupIds.split(" ").filter(Boolean));
      for (const box of groupsDialog.querySelectorAll('input[name="group_ids"]')) box.checked = mine.has(box.value);
      groupsDialog.querySelector("[data-who]").textContent = row.dataset.name;
      groupsDialog.querySelector("[data-error]").hidden = true;
      groupsDialog.showModal();
    });
    row.querySelector("[data-invite]")?.addEventListener("click", async () => {
      const dialog = document.getElementById("invite-dialog");
      try {
        const invite = await api("POST", `${url}/invite`, {});
        dialog.querySelector("[data-invite-url]").value = invite.url;
        dialog.querySelector("[data-who]").textContent = row.dataset.name;
        dialog.showModal();
        dialog.querySelector("[data-invite-url]").select();
      } catch (error) {
        alert(error.message);
      }
    });
  }
  groupsDialog?.querySelector("[data-groups-form]").addEventListener("submit", async (event) => {
    event.preventDefault();
    const ids = [...groupsDialog.querySelectorAll('input[name="group_ids"]:checked')].map((box) => box.value);
    try {
      await api("PATCH", editing.dataset.url, { group_ids: ids });
      location.reload();
    } catch (error) {
      showError(groupsDialog, error);
    }
  });
  document.querySelector("[data-copy-invite]")?.addEventListener("click", async (event) => {
    const field = document.querySelector("[data-invite-url]");
    field.select();
    event.target.textContent = (await copy(field.value)) ? "Copied" : "Press Ctrl+C";
  });
}

/** A fresh key for a grant, so that a retried click grants once (works without HTTPS too). */
function idempotencyKey() {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The coins dialog (administrators): a user's or client's pool, grants and settings. */
function pools() {
  const dialog = document.getElementById("pool-dialog");
  if (!dialog) return;
  let url = null;
  const describe = (pool) => {
    const parts = [pool.state === "unlimited" ? "Unlimited" : pool.state === "balance" ? `${pool.balance} coins` : "Not configured"];
    if (pool.limit !== null) parts.push(`ceiling ${pool.limit}`);
    if (Number(pool.refill_per_hour) > 0) parts.push(`refills ${pool.refill_per_hour} an hour`);
    if (pool.exhausted) parts.push("exhausted");
    dialog.querySelector("[data-pool-now]").textContent = `Now: ${parts.join(", ")}.`;
    const form = dialog.querySelector("[data-configure-form]");
    form.elements.mode.value = pool.state;
    form.elements.limit.value = pool.limit ?? "";
    form.elements.refill_per_hour.value = pool.refill_per_hour;
  };
  for (const button of document.querySelectorAll("[data-pool]")) {
    button.addEventListener("click", async () => {
      url = button.dataset.pool;
      dialog.querySelector("[data-who]").textContent = button.dataset.poolName;
      dialog.querySelector("[data-error]").hidden = true;
      try {
        describe(await api("GET", `${url}/pool`));
        dialog.showModal();
      } catch (error) {
        alert(error.message);
      }
    });
  }
  const grant = dialog.querySelector("[data-grant-form]");
  grant.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(grant);
    try {
      const made = await api("POST", `${url}/grants`, {
        coins: Number(data.get("coins")), reason: data.get("reason").trim(), idempotency_key: idempotencyKey(),
      });
      describe(made.pool);
      grant.reset();
      dialog.querySelector("[data-error]").hidden = true;
    } catch (error) {
      showError(dialog, error);
    }
  });
  const alertsForm = dialog.querySelector("[data-alerts-form]");
  const describeAlerts = (alerts) => {
    alertsForm.elements.thresholds.value = alerts.thresholds_percent.join(", ");
    const crossed = alerts.crossed_percent.length ? `; crossed now: ${alerts.crossed_percent.map((p) => `${p} %`).join(", ")}` : "";
    dialog.querySelector("[data-alerts-now]").textContent = alerts.thresholds_percent.length
      ? `Of ${alerts.reference_coins} coins (the ceiling, or the balance after the latest grant)${crossed}.`
      : "No alerts.";
  };
  for (const button of document.querySelectorAll("[data-pool]")) {
    button.addEventListener("click", async () => {
      try {
        describeAlerts(await api("GET", `${button.dataset.pool}/pool/alerts`));
      } catch (error) {
        showError(dialog, error);
      }
    });
  }
  alertsForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = new FormData(alertsForm).get("thresholds").trim();
    const thresholds = text === "" ? [] : text.split(/[\s,]+/).filter(Boolean).map(Number);
    try {
      describeAlerts(await api("PUT", `${url}/pool/alerts`, { thresholds_percent: thresholds }));
      dialog.querySelector("[data-error]").hidden = true;
    } catch (error) {
      showError(dialog, error);
    }
  });
  const configure = dialog.querySelector("[data-configure-form]");
  configure.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(configure);
    const body = { mode: data.get("mode"), refill_per_hour: Number(data.get("refill_per_hour") || 0) };
    body.limit = data.get("limit") === "" ? null : Number(data.get("limit"));
    try {
      describe(await api("PUT", `${url}/pool`, body));
      dialog.querySelector("[data-error]").hidden = true;
    } catch (error) {
      showError(dialog, error);
    }
  });
  dialog.addEventListener("close", () => location.reload());
}

/** The Usage page's webhooks (administrators): add one (its secret shown once), delete one. */
function alertWebhooks() {
  const section = document.querySelector("[data-alerts]");
  if (!section) return;
  const table = section.querySelector("#alert-endpoints");
  const body = table.querySelector("tbody");
  const empty = section.querySelector("[data-no-endpoints]");
  const error = section.querySelector("[data-error]");
  const fail = (problem) => {
    error.textContent = problem.message;
    error.hidden = false;
  };
  const remove = async (button) => {
    if (!confirm("Delete this webhook? Alerts will no longer be sent to it.")) return;
    try {
      await api("DELETE", button.dataset.deleteEndpoint);
      button.closest("tr").remove();
      table.hidden = body.rows.length === 0;
      empty.hidden = body.rows.length !== 0;
    } catch (problem) {
      fail(problem);
    }
  };
  for (const button of section.querySelectorAll("[data-delete-endpoint]")) button.addEventListener("click", () => remove(button));
  const form = section.querySelector("[data-endpoint-form]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    try {
      const made = await api("POST", "/api/alerts/endpoints", {
        url: data.get("url").trim(), format: data.get("format"), description: data.get("description").trim(),
      });
      const row = body.insertRow();
      row.dataset.endpoint = made.id;
      for (const [label, text] of [["Webhook", made.url], ["Format", made.format === "slack" ? "Slack" : "JSON"],
        ["Description", made.description], ["Added", new Date(made.created_at).toLocaleString()]]) {
        const cell = row.insertCell();
        cell.dataset.label = label;
        cell.textContent = text;
      }
      const button = document.createElement("button");
      Object.assign(button, { type: "button", className: "small danger", textContent: "Delete" });
      button.dataset.deleteEndpoint = `/api/alerts/endpoints/${encodeURIComponent(made.id)}`;
      button.addEventListener("click", () => remove(button));
      row.insertCell().append(button);
      table.hidden = false;
      empty.hidden = true;
      section.querySelector("[data-secret]").textContent = made.secret;
      section.querySelector("[data-secret-notice]").hidden = false;
      error.hidden = true;
      form.reset();
    } catch (problem) {
      fail(problem);
    }
  });
}

/** The Activity page's capture setting (administrators). */
function captureSettings() {
  const form = document.querySelector("[data-capture-form]");
  if (!form) return;
  const section = form.closest("section");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    try {
      await api("PUT", form.dataset.url, {
        enabled: data.get("enabled") === "on", retention_days: Number(data.get("retention_days")),
        max_bytes: Number(data.get("kib")) * 1024,
      });
      section.querySelector("[data-error]").hidden = true;
      section.querySelector("[data-saved]").hidden = false;
    } catch (problem) {
      const error = section.querySelector("[data-error]");
      error.textContent = problem.message;
      error.hidden = false;
      section.querySelector("[data-saved]").hidden = true;
    }
  });
}

localTimes();
countdowns();
tables();
keySearch();
keys();
consent();
avatars();
dialogs();
newClient();
client();
users();
pools();
alertWebhooks();
captureSettings();
chat();
