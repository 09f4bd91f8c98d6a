"""The dashboard's web chat through `/api`: conversations kept per person, answers streamed
through the same admission and ledger as the API (origin `web`, the person's own pool), a
refused request that keeps nothing, and privacy between people."""

import json

import httpx

from test_people_api import PASSWORD, Person, admin_cli, world  # noqa: F401  (the fixture)


def stream_text(response):
    """The answer's text from the chat-completion chunks of a server-sent event stream."""
    text = ""
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:]).get("choices", []):
                text += choice.get("delta", {}).get("content") or ""
    return text


def test_a_conversation_streams_its_answers_and_keeps_them(world):
    member = world.people["member"]
    model = world.credentials["model"]
    conversation = member.call("POST", "/api/chat/conversations", {"model": model}).json()
    assert conversation["title"] == "New conversation" and conversation["message_count"] == 0
    path = f"/api/chat/conversations/{conversation['id']}"
    with member.client.stream("POST", path + "/messages", json={"content": "Hello *Lumen*\nand more"},
                              headers=member.csrf) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        answer = stream_text(response)
    assert "Hello *Lumen*" in answer
    opened = member.call("GET", path).json()
    assert [m["role"] for m in opened["messages"]] == ["user", "assistant"]
    assert opened["messages"][1]["content"] == answer and opened["messages"][1]["request_id"].startswith("req_")
    assert opened["conversation"]["title"] == "Hello Lumen"  # named by its first line, as text (no Markdown)
    with member.client.stream("POST", path + "/messages", json={"content": "Again"}, headers=member.csrf) as response:
        second = stream_text(response)
    assert member.call("GET", path).json()["conversation"]["message_count"] == 4
    # The answer is to the newest message (the mock echoes the last user message it was given).
    assert "Again" in second

    # The profile's web-chat row counts it; the person's API usage is untouched.
    profile = member.call("GET", "/api/me/profile").json()
    assert profile["web_chat"]["conversations"] == 1 and profile["web_chat"]["requests"] == 2
    assert profile["web_chat"]["tokens"] > 0 and profile["requests"] == 2
    assert member.call("GET", "/api/me/keys").json()["data"] == []

    # Private: another person, even an administrator, does not find it.
    for other in ("admin", "manager"):
        assert world.people[other].call("GET", path).status_code == 404
    renamed = member.call("PATCH", path, {"title": "Greetings"}).json()
    assert renamed["title"] == "Greetings"
    assert member.call("GET", "/api/chat/conversations").json()["total"] == 1
    assert member.call("DELETE", path).status_code == 204
    assert member.call("GET", path).status_code == 404
    assert member.call("GET", "/api/me/profile").json()["web_chat"]["conversations"] == 0


def test_a_refused_request_says_why_and_keeps_nothing(world):
    admin, member = world.people["admin"], world.people["member"]
    # An exhausted pool: 402, and the conversation keeps no message.
    assert admin.call("PUT", f"/api/users/{member.id}/pool", {"mode": "balance", "refill_per_hour": 0}).status_code == 200
    conversation = member.call("POST", "/api/chat/conversations", {"model": world.credentials["model"]}).json()
    path = f"/api/chat/conversations/{conversation['id']}"
    refused = member.call("POST", path + "/messages", {"content": "Hello"})
    assert refused.status_code == 402 and refused.json()["error"]["code"] == "insufficient_quota"
    assert member.call("GET", path).json()["messages"] == []
    # An unknown model: 404, nothing kept either.
    unknown = member.call("POST", path + "/messages", {"content": "Hello", "model": "no-such-model"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert member.call("GET", path).json()["conversation"]["message_count"] == 0
