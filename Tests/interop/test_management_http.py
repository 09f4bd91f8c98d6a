"""The management REST API of a running `lumen serve`, as curl users meet it, and the
promise that no secret ever reaches the log (the server logs at trace level here)."""

import json
import urllib.error
import urllib.request


def call(server, method, path, token=None, body=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(server.http + path, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_bootstrap_create_list_patch_and_errors(server):
    tenant = server.bootstrap("Acme", "admin@acme.test")
    token = tenant["management_token"]
    assert token.startswith("mt-")

    status, created = call(server, "POST", "/v1/management/api-keys", token,
                           {"name": "Backend Worker", "limitAmount": 500, "models": ["gpt-4o-mini"]})
    assert status == 200
    secret = created["key"]
    assert secret.startswith("sk-")

    status, listed = call(server, "GET", "/v1/management/api-keys", token)
    assert status == 200 and listed["object"] == "list"
    (item,) = listed["data"]
    assert "key" not in item
    assert item["key_prefix"] == secret[:9] + "..."
    assert item["hint"] == secret[:4] + "..." + secret[-4:]
    assert item["limit_amount"] == 500 and item["used_amount"] == 0

    status, patched = call(server, "PATCH", f"/v1/management/api-keys/{created['id']}", token,
                           {"status": "suspended", "limitAmount": None})
    assert status == 200
    assert patched["status"] == "suspended" and patched["limit_amount"] is None

    cases = [
        ("POST", "/v1/management/api-keys", {"limitAmount": 5, "limitCurrency": "CNY"}, 400, "currency_retired"),
        ("POST", "/v1/management/api-keys", {"limitAmount": -1}, 400, "invalid_limit_amount"),
        ("POST", "/v1/management/api-keys", {"limitAmount": 1000001}, 400, "invalid_limit_amount"),
        ("POST", "/v1/management/api-keys", {"name": " "}, 400, "invalid_name"),
        ("POST", "/v1/management/api-keys", {"expiresAt": "soon"}, 400, "invalid_expires_at"),
        ("POST", "/v1/management/api-keys", b"{not json", 400, "invalid_json"),
        ("PATCH", f"/v1/management/api-keys/{created['id']}", {}, 400, "empty_update"),
        ("PATCH", f"/v1/management/api-keys/{created['id']}", {"status": "paused"}, 400, "invalid_status"),
        ("PATCH", "/v1/management/api-keys/key_unknown", {"name": "x"}, 404, "key_not_found"),
    ]
    for method, path, body, expected_status, code in cases:
        status, error = call(server, method, path, token, body)
        assert (status, error["error"]["code"]) == (expected_status, code), (method, path, body)

    status, error = call(server, "GET", "/v1/management/api-keys", secret)
    assert status == 401 and error["error"]["code"] == "invalid_management_token"
    status, error = call(server, "GET", "/v1/management/api-keys")
    assert status == 401 and error["error"]["code"] == "missing_authorization"

    log = server.log()
    assert "HTTP listening" in log
    for value in (token, secret, token[3:], secret[3:]):
        assert value not in log, "a secret reached the log"


def test_second_organisation_of_the_same_name_is_refused(server):
    server.bootstrap("Acme", "admin@acme.test")
    import subprocess
    from conftest import lumen_binary
    result = subprocess.run(
        [lumen_binary(), "admin", "bootstrap", "--org", "acme", "--admin-email", "x@acme.test",
         "--data-dir", server.data_dir],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "already exists" in result.stderr
    assert result.stdout == ""
