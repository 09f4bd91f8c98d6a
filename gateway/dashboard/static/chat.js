// The web chat (/chat): sends a message, reads the answer as it streams (the API's
// server-sent events), renders it as Markdown without HTML, and keeps the conversation list
// in step. Conversations live on the server, so they follow the person to any browser.
import { api, csrf } from "./api.js";
import { renderMarkdown } from "./markdown.js";

export function chat() {
  const root = document.querySelector("[data-chat]");
  if (!root) return;
  const messages = root.querySelector("[data-messages]");
  const form = root.querySelector("[data-composer]");
  const input = form.querySelector("textarea");
  const send = form.querySelector("[data-send]");
  const select = root.querySelector("[data-model-select]");
  const error = root.querySelector("[data-chat-error]");
  let conversation = root.dataset.conversation || null;

  for (const bubble of messages.querySelectorAll("[data-markdown]")) renderMarkdown(bubble, bubble.textContent);
  messages.scrollTop = messages.scrollHeight;

  const bubble = (role, text) => {
    const article = document.createElement("article");
    article.className = `message ${role}`;
    article.dataset.role = role;
    const body = document.createElement("div");
    body.className = "bubble";
    renderMarkdown(body, text);
    article.append(body);
    messages.append(article);
    messages.scrollTop = messages.scrollHeight;
    return body;
  };

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const content = input.value;
    if (!content.trim() || send.disabled) return;
    error.hidden = true;
    send.disabled = true;
    try {
      if (!conversation) {
        const made = await api("POST", "/api/chat/conversations", { model: select.value });
        conversation = made.id;
        history.replaceState(null, "", `/chat?c=${encodeURIComponent(conversation)}`);
      }
      const response = await fetch(`/api/chat/conversations/${encodeURIComponent(conversation)}/messages`, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ content, model: select.value }),
      });
      if (!response.ok) {
        const body = await response.json().catch(() => null);
        throw new Error(body?.error?.message ?? `${response.status} ${response.statusText}`);
      }
      bubble("user", content);
      input.value = "";
      const answer = bubble("assistant", "");
      answer.closest("article").setAttribute("aria-busy", "true");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let pending = "";
      let text = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        pending += value;
        const events = pending.split(/\r?\n\r?\n/);
        pending = events.pop();
        for (const event of events) {
          for (const line of event.split(/\r?\n/)) {
            if (!line.startsWith("data:")) continue;
            const data = line.slice(5).trim();
            if (data === "[DONE]") continue;
            try {
              for (const choice of JSON.parse(data).choices ?? []) text += choice.delta?.content ?? "";
            } catch {
              // Not a chunk of the answer (a comment or a keep-alive).
            }
          }
        }
        renderMarkdown(answer, text);
        messages.scrollTop = messages.scrollHeight;
      }
      answer.closest("article").removeAttribute("aria-busy");
      await refreshList(root, conversation);
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    } finally {
      send.disabled = false;
      input.focus();
    }
  });

  // One listener for the list, so that an item the page adds after an answer works as well.
  root.querySelector(".conversation-list").addEventListener("click", async (event) => {
    const rename = event.target.closest("[data-rename]");
    const remove = event.target.closest("[data-delete-conversation]");
    try {
      if (rename) {
        const title = prompt("Rename the conversation", rename.dataset.titleNow);
        if (title === null) return;
        await api("PATCH", `/api/chat/conversations/${encodeURIComponent(rename.dataset.rename)}`, { title });
        location.reload();
      } else if (remove) {
        if (!confirm(`Delete “${remove.dataset.titleNow}”? Its messages go; what they cost stays counted.`)) return;
        await api("DELETE", `/api/chat/conversations/${encodeURIComponent(remove.dataset.deleteConversation)}`);
        location.href = remove.dataset.deleteConversation === conversation ? "/chat" : location.href;
      }
    } catch (failure) {
      alert(failure.message);
    }
  });
}

/** After an answer: the conversation's title and place in the list, as the server has them. */
async function refreshList(root, id) {
  const { data } = await api("GET", "/api/chat/conversations");
  const list = root.querySelector(".conversation-list");
  const mine = data.find((item) => item.id === id);
  if (!mine) return;
  let item = list.querySelector(`[data-conversation-item="${CSS.escape(id)}"]`);
  if (!item) {
    item = document.createElement("li");
    item.dataset.conversationItem = id;
    const link = document.createElement("a");
    link.href = `/chat?c=${encodeURIComponent(id)}`;
    link.dataset.title = "";
    const actions = document.createElement("span");
    actions.className = "item-actions";
    for (const [label, action, style] of [["Rename", "rename", "small"], ["Delete", "deleteConversation", "small danger"]]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = style;
      button.textContent = label;
      button.dataset[action] = id;
      actions.append(button);
    }
    item.append(link, actions);
    root.querySelector(".conversations .empty")?.remove();
  }
  item.querySelector("[data-title]").textContent = mine.title;
  for (const button of item.querySelectorAll("button")) button.dataset.titleNow = mine.title;
  for (const other of list.querySelectorAll("[aria-current]")) other.removeAttribute("aria-current");
  item.setAttribute("aria-current", "true");
  list.prepend(item);
}
