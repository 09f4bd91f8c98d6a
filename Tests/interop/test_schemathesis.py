"""Schemathesis against gateway/openapi.yaml on a running `lumen serve --demo`: every
operation, authenticated as its security scheme says, bounded in examples and time. No server
error, no response that breaks the document, no schema-valid request refused and no invalid
one accepted (the document says exactly what the server enforces)."""

import os
import subprocess
import sys

import httpx
from pathlib import Path

from conftest import ROOT

EXAMPLES = os.environ.get("LUMEN_SCHEMATHESIS_EXAMPLES", "30")
# The coverage phase's fixed boundary values bypass the hooks (lumen_hooks.py) that keep out
# what JSON Schema cannot rule out (a past expiresAt, startDate after endDate); the examples
# phase trips over a CPython 3.11 `ast` error inside hypothesis ("AST constructor recursion
# depth mismatch") before it sends anything. Fuzzing covers the examples' ground.
PHASES = os.environ.get("LUMEN_SCHEMATHESIS_PHASES", "fuzzing,stateful")


def test_the_openapi_document_and_the_server_agree(demo, tmp_path):
    schemathesis = Path(sys.executable).parent / "schemathesis"
    # The dashboard's routes are tried as the demo administrator, signed in.
    signed_in = httpx.post(demo.http + "/api/session",
                           json={"email": demo.credentials["email"], "password": demo.credentials["password"]})
    assert signed_in.status_code == 200, signed_in.text
    env = {
        **os.environ,
        "LUMEN_SESSION": signed_in.cookies["lumen_session"],
        "LUMEN_MANAGEMENT_TOKEN": demo.credentials["management_token"],
        "LUMEN_API_KEY": demo.credentials["api_key"],
        # Hooks for what JSON Schema cannot say (a future expiresAt): Tests/schemathesis/lumen_hooks.py.
        "SCHEMATHESIS_HOOKS": "lumen_hooks",
        "PYTHONPATH": str(ROOT / "Tests/schemathesis"),
    }
    result = subprocess.run(
        [str(schemathesis), "--config-file", str(ROOT / "Tests/schemathesis/schemathesis.toml"), "run",
         str(ROOT / "gateway/openapi.yaml"), "--url", demo.http, "--checks", "all",
         "--max-examples", EXAMPLES, "--phases", PHASES, "--workers", "2", "--request-timeout", "20", "--seed", "20261201"],
        # Its cache (.schemathesis/, replayed crashes) stays in the test's own folder.
        capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path,
    )
    print(result.stdout[-20000:])
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-2000:]
