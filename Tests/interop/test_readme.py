"""The README's promises, kept: its tour runs, block by block, against `lumen serve --demo`
exactly as a newcomer pastes it (only the ports, the binary's path and the data directory
differ), and every output it shows (`# {…}` after a command) is checked against what came;
every change it makes is in the audit log, once, with the actor who made it.
The models of "Connect a provider" are applied to a running server as they are written.

A shown output is a fragment: `"key":value` pairs must appear in the answer (anywhere in it),
`"usr_…"` is a prefix, `…` stands for anything. A command whose shown output is an error
envelope must answer 4xx; every other curl must answer 2xx; every command must exit 0."""

import json
import os
import re
import subprocess
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

from conftest import ROOT, lumen_binary, start_server, wait_ready

README = (ROOT / "README.md").read_text()


def section(heading):
    """The text under a `### heading` up to the next heading."""
    start = README.index(f"\n{heading}\n")
    following = re.search(r"\n#{2,3} ", README[start + len(heading) + 2:])
    return README[start: start + len(heading) + 2 + (following.start() if following else len(README))]


def blocks(text, language):
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def commands(block):
    """Commands (continuation lines joined) with the output shown right after each, if any."""
    result = []
    lines = block.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            if line.startswith("# {") and result and result[-1]["expected"] is None:
                result[-1]["expected"] = line[2:]
            continue
        text = line
        while text.endswith("\\") and index < len(lines):
            text += "\n" + lines[index]
            index += 1
        result.append({"text": text, "expected": None})
    return result


PAIR = re.compile(r'"(\w+)":("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false|null|\[[^\[\]{}…]*\]|\[\{|\{|…)')


def pairs(value, found=None):
    """Every (member name, value) pair anywhere in a JSON value."""
    found = [] if found is None else found
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((key, item))
            pairs(item, found)
    elif isinstance(value, list):
        for item in value:
            pairs(item, found)
    return found


def check_shown(shown, answer, where):
    actual = pairs(answer)
    names = {key for key, _ in actual}
    for key, raw in PAIR.findall(shown):
        assert key in names, f"{where}: the README shows {key!r}, the answer has none:\n{answer}"
        if raw in ("{", "[{", "…"):
            continue
        if raw.startswith('"') and "…" in raw:
            prefix = raw[1:raw.index("…")]
            assert any(k == key and isinstance(v, str) and v.startswith(prefix) for k, v in actual), \
                f"{where}: the README shows {key}={raw}, the answer has {[v for k, v in actual if k == key]}"
            continue
        expected = json.loads(raw, parse_float=Decimal)
        values = [v for k, v in actual if k == key]
        normalized = [Decimal(str(v)) if isinstance(v, float) else v for v in values]
        assert expected in normalized, f"{where}: the README shows {key}={raw}, the answer has {values}"


def test_the_tour_runs_as_written_and_shows_what_comes(tmp_path):
    run_section("### A short tour", tmp_path, commands_at_least=15, outputs_at_least=8, audited=Counter({
        # lumen admin bootstrap, on the data directory: the organisation and its first token.
        ("cli", "organization.bootstrap"): 1, ("cli", "key.create"): 1,
        # The key, the grants and the pool, with the management token (REST and lumen admin).
        ("management_token", "key.create"): 1, ("management_token", "pool.grant"): 2,
        ("management_token", "pool.configure"): 1, ("management_token", "key.update"): 1,
    }))


def test_the_people_walkthrough_runs_as_written_and_shows_what_comes(tmp_path):
    run_section("### People and the dashboard API", tmp_path, commands_at_least=20, outputs_at_least=12, audited=Counter({
        ("cli", "organization.bootstrap"): 1, ("cli", "key.create"): 1,
        ("management_token", "user.create"): 2,
        # Ada and Bob sign in; Ada makes a client, names Bob its manager and makes its key;
        # Bob consents to a model for the client (his deactivation and key without a token are refused).
        ("person", "session.sign_in"): 2, ("person", "client.create"): 1, ("person", "client.add_manager"): 1,
        ("person", "key.create"): 1, ("person", "consent.grant"): 1,
        # The operator's token, made on the machine, applies a model with its backend.
        ("cli", "operator_token.create"): 1, ("operator", "model.upsert"): 1, ("operator", "backend.upsert"): 1,
    }))


def audit_entries(data_dir, since_ms):
    """(actor type, action, request id) of every service's audit entries made from `since_ms` on."""
    from test_audit import all_entries

    return [(actor, action, request_id) for _, _, actor, action, request_id, at in all_entries(data_dir) if at >= since_ms]


def run_section(heading, tmp_path, commands_at_least, outputs_at_least, audited):
    """Runs a section's `sh` blocks, as pasted, against `lumen serve --demo` and checks them."""
    tour = [command for block in blocks(section(heading), "sh") for command in commands(block)]
    assert len(tour) >= commands_at_least and sum(1 for c in tour if c["expected"]) >= outputs_at_least, \
        f"{heading} lost its commands or outputs"
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    work = tmp_path / "shell"
    work.mkdir()
    for server in start_server(server_dir, "--demo"):
        wait_ready(server)
        # (The status goes to standard error: this -w, last, wins over the README's `-w '\\n'`.)
        script = ["set -o pipefail", "curl() { command curl \"$@\" -w '%{stderr}\\nHTTP_STATUS=%{http_code}\\n'; }"]
        for number, command in enumerate(tour):
            text = command["text"].replace("localhost:8080", f"localhost:{server.http_port}")
            text = text.replace(".build/debug/lumen", lumen_binary())
            script.append(f"{{ {text}\n}} > out.{number} 2> err.{number}; echo $? > rc.{number}")
        env = {key: value for key, value in os.environ.items() if not key.startswith("LUMEN_")}
        private = tmp_path / "tmp"
        private.mkdir()
        env.update(LUMEN_GRPC_ADDRESS=server.grpc_target, LUMEN_DATA_DIR=server.data_dir, TMPDIR=str(private))
        since_ms = int(time.time() * 1000)
        ran = subprocess.run(["bash", "-c", "\n".join(script)], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert ran.returncode == 0, ran.stderr
        # Every change the section made, once, by whom it was made; those made over HTTP name
        # their request.
        entries = audit_entries(server.data_dir, since_ms)
        assert Counter((actor, action) for actor, action, _ in entries) == audited, entries
        assert all(request_id.startswith("req_") for actor, _, request_id in entries if actor == "person"), entries
        # Pasted at the repository's root, the section leaves nothing there: what it keeps
        # (tokens, cookies, keys) goes to its private folder.
        left = sorted(path.name for path in work.iterdir() if not re.fullmatch(r"(out|err|rc)\.\d+", path.name))
        assert left == [], f"{heading} left files in the directory it was pasted in: {left}"
        kept = [path for folder in private.iterdir() for path in folder.iterdir()]
        assert kept and all(folder.stat().st_mode & 0o077 == 0 for folder in private.iterdir()), kept
        for number, command in enumerate(tour):
            where = f"tour command {number + 1} ({command['text'].splitlines()[0][:70]})"
            rc = int((work / f"rc.{number}").read_text())
            out = (work / f"out.{number}").read_text()
            err = (work / f"err.{number}").read_text()
            assert rc == 0, f"{where} exited {rc}:\n{out}\n{err}"
            statuses = re.findall(r"HTTP_STATUS=(\d+)", err)
            shown = command["expected"]
            if statuses:
                status = int(statuses[-1])
                if shown and shown.startswith('{"error"'):
                    assert 400 <= status < 500, f"{where}: status {status}, the README shows an error:\n{out}"
                else:
                    assert 200 <= status < 300, f"{where}: status {status}:\n{out}"
            if shown:
                answer = json.loads(out.strip().splitlines()[-1] if out.strip() else "null")
                check_shown(shown, answer, where)


def test_the_upstream_models_shown_are_accepted_as_written(tmp_path):
    part = section("### Connect a provider")
    yaml_block, claude_block, azure_block, gemini_block, bedrock_block = blocks(part, "yaml")
    config = tmp_path / "upstream.yaml"
    config.write_text(yaml_block)
    (tmp_path / "claude.yaml").write_text(claude_block)
    (tmp_path / "azure.yaml").write_text(azure_block)
    (tmp_path / "gemini.yaml").write_text(gemini_block)
    (tmp_path / "bedrock.yaml").write_text(bedrock_block)
    for server in start_server(tmp_path, env={"OPENAI_API_KEY": "", "OPENROUTER_API_KEY": "sk-or-test", "ANTHROPIC_API_KEY": ""}):
        wait_ready(server)
        created = subprocess.run([lumen_binary(), "admin", "operator-token", "create", "--data-dir", server.data_dir],
                                 capture_output=True, text=True, timeout=60)
        assert created.returncode == 0, created.stderr
        env = {**os.environ, "LUMEN_OPERATOR_TOKEN": json.loads(created.stdout)["operator_token"],
               "LUMEN_GRPC_ADDRESS": server.grpc_target}
        applied = subprocess.run([lumen_binary(), "admin", "models", "apply", "--file", str(config)],
                                 capture_output=True, text=True, timeout=60, env=env)
        assert applied.returncode == 0, applied.stderr
        # As the README says: the unset OPENAI_API_KEY shows as the backend's problem.
        deadline = time.time() + 15
        while True:
            listed = subprocess.run([lumen_binary(), "admin", "models", "list"], capture_output=True, text=True, timeout=60, env=env)
            models = {m["name"]: m for m in json.loads(listed.stdout)["data"]}
            if models["gpt-4o-mini"]["backends"][0].get("problem") or time.time() > deadline:
                break
            time.sleep(0.2)
        assert {"gpt-4o-mini", "llama-3.1-8b", "qwen2.5", "claude-sonnet"} <= set(models)
        assert models["llama-3.1-8b"]["backends"][0]["upstream_model"] == "meta-llama/Llama-3.1-8B-Instruct"
        assert "OPENAI_API_KEY" in models["gpt-4o-mini"]["backends"][0]["problem"]
        assert not models["claude-sonnet"]["backends"][0].get("problem")
        assert not models["llama-3.1-8b"]["backends"][0].get("problem")

        # "Connect Claude": an anthropic backend, on Anthropic's API unless it names another.
        applied = subprocess.run([lumen_binary(), "admin", "models", "apply", "--file", str(tmp_path / "claude.yaml")],
                                 capture_output=True, text=True, timeout=60, env=env)
        assert applied.returncode == 0, applied.stderr
        deadline = time.time() + 15
        while True:
            listed = subprocess.run([lumen_binary(), "admin", "models", "list"], capture_output=True, text=True, timeout=60, env=env)
            claude = {m["name"]: m for m in json.loads(listed.stdout)["data"]}["claude"]["backends"][0]
            if claude.get("problem") or time.time() > deadline:
                break
            time.sleep(0.2)
        assert claude["provider"] == "anthropic" and claude["base_url"] == "https://api.anthropic.com"
        assert "ANTHROPIC_API_KEY" in claude["problem"]

        # "Connect Azure OpenAI": the deployment and its API version, as written.
        applied = subprocess.run([lumen_binary(), "admin", "models", "apply", "--file", str(tmp_path / "azure.yaml")],
                                 capture_output=True, text=True, timeout=60, env=env)
        assert applied.returncode == 0, applied.stderr
        listed = subprocess.run([lumen_binary(), "admin", "models", "list"], capture_output=True, text=True, timeout=60, env=env)
        azures = {b["id"]: b for b in {m["name"]: m for m in json.loads(listed.stdout)["data"]}["gpt-4o"]["backends"]}
        azure, entra = azures["azure-eu"], azures["azure-us"]
        assert (azure["provider"], azure["upstream_model"], azure["api_version"]) == ("azure", "gpt-4o-prod", "2024-10-21")
        assert azure["base_url"] == "https://acme-eu.openai.azure.com" and "api_version" not in claude
        assert entra["token_source"] == "entra" and "token_source" not in azure

        # "Connect Gemini": Google's API unless a backend names another, for chat and embeddings.
        applied = subprocess.run([lumen_binary(), "admin", "models", "apply", "--file", str(tmp_path / "gemini.yaml")],
                                 capture_output=True, text=True, timeout=60, env=env)
        assert applied.returncode == 0, applied.stderr
        listed = subprocess.run([lumen_binary(), "admin", "models", "list"], capture_output=True, text=True, timeout=60, env=env)
        models = {m["name"]: m for m in json.loads(listed.stdout)["data"]}
        for name, upstream in [("gemini-flash", "gemini-2.5-flash"), ("gemini-embedding", "gemini-embedding-001")]:
            (google,) = models[name]["backends"]
            assert (google["provider"], google["upstream_model"]) == ("gemini", upstream)
            assert google["base_url"] == "https://generativelanguage.googleapis.com"

        # "Connect AWS Bedrock": each region's endpoint, signed with the gateway's AWS keys or a profile's, or an API key.
        applied = subprocess.run([lumen_binary(), "admin", "models", "apply", "--file", str(tmp_path / "bedrock.yaml")],
                                 capture_output=True, text=True, timeout=60, env=env)
        assert applied.returncode == 0, applied.stderr
        deadline = time.time() + 15
        while True:
            listed = subprocess.run([lumen_binary(), "admin", "models", "list"], capture_output=True, text=True, timeout=60, env=env)
            models = {m["name"]: m for m in json.loads(listed.stdout)["data"]}
            backends = {b["id"]: b for b in models["claude-bedrock"]["backends"]}
            us, eu = backends["aws-us"], backends["aws-eu"]
            if (us.get("problem") and eu.get("problem")) or time.time() > deadline:
                break
            time.sleep(0.2)
        assert (us["provider"], us["region"], us["base_url"]) == ("bedrock", "us-east-1", "https://bedrock-runtime.us-east-1.amazonaws.com")
        assert (eu["region"], eu["aws_profile"]) == ("eu-west-3", "bedrock-eu")
        assert "AWS_ACCESS_KEY_ID" in us["problem"] and "profile bedrock-eu" in eu["problem"], "the server has no AWS keys"
        (key,) = models["nova-pro"]["backends"]
        assert key["credential_env"] == "AWS_BEARER_TOKEN_BEDROCK" and key["upstream_model"] == "amazon.nova-pro-v1:0"


def test_the_module_graph_and_table_match_package_swift():
    """README's module graph and table say what `Package.swift` says: every module Lumen is
    built from appears in both, every arrow of the graph is a dependency of the manifest, and
    what each module reaches through the arrows is what it reaches in the manifest."""
    manifest = json.loads(subprocess.run(
        ["swift", "package", "dump-package"], cwd=ROOT, check=True, capture_output=True, text=True).stdout)
    tooling = ("bench-", "fuzz-", "Fuzz", "LumenTesting", "embed-files")
    modules = {target["name"] for target in manifest["targets"]
               if target["type"] in ("regular", "executable", "macro") and not target["name"].startswith(tooling)}
    declared = {}
    for target in manifest["targets"]:
        if target["name"] in modules:
            names = [next(iter(dependency.values()))[0] for dependency in target["dependencies"]
                     if "byName" in dependency or "target" in dependency]
            declared[target["name"]] = {name for name in names if name in modules}

    architecture = section("## Architecture")
    table = set()
    for row in re.findall(r"^\| (`[^|]+`) \|", architecture, re.M):
        table.update(re.findall(r"`([^`]+)`", row))
    assert table == modules, f"README's module table lists {sorted(table)}, Package.swift has {sorted(modules)}"

    graph_block = next(block for block in blocks(architecture, "") if "──►" in block)
    drawn = {module: set() for module in modules}
    for line in graph_block.strip().splitlines():
        users, used = (side.split(",") for side in line.split("──►"))
        for user in map(str.strip, users):
            assert user in modules, f"the graph names {user}, which Package.swift does not build"
            drawn[user].update(map(str.strip, used))
    for user, used in drawn.items():
        assert used <= declared[user], f"the graph draws {user} ──► {sorted(used - declared[user])}; Package.swift does not"

    def reach(graph, start):
        seen, stack = set(), [start]
        while stack:
            for nxt in graph[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    for module in sorted(modules):
        assert reach(drawn, module) == reach(declared, module), (
            f"{module} reaches {sorted(reach(declared, module))} in Package.swift, "
            f"{sorted(reach(drawn, module))} in the README's graph")


def free_ports(count):
    """`count` distinct ports free on loopback now."""
    import socket
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_running_at_scale_runs_as_written(tmp_path, database):
    """The section's block as one shell script, pasted into a directory holding the example
    configuration: only the ports, the database URL and the binary's path differ. Its services
    and gateways are stopped afterwards; meanwhile a key made through one gateway answers
    through the other, over HTTPS checked against the block's CA."""
    import signal
    import ssl

    import httpx

    (block,) = blocks(section("## Running at scale"), "sh")
    assert "postgres://lumen@127.0.0.1:5432/lumen" in block
    script = block.replace("postgres://lumen@127.0.0.1:5432/lumen", database)
    ports = dict(zip(("9090", "9464", "9465", "9466", "8080", "8081"), free_ports(6)))
    for shown, port in ports.items():
        script = re.sub(rf"\b{shown}\b", str(port), script)
    (tmp_path / "gateway").mkdir()
    (tmp_path / "gateway" / "lumen.example.yaml").write_text((ROOT / "gateway" / "lumen.example.yaml").read_text())
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "lumen").symlink_to(lumen_binary())
    env = {key: value for key, value in os.environ.items() if not key.startswith("LUMEN_")}
    env["PATH"] = f"{tmp_path / 'bin'}:{env['PATH']}"
    out_path, err_path = tmp_path / "script.out", tmp_path / "script.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        # Files, not pipes: the servers the script leaves running (in its process group) hold them.
        process = subprocess.Popen(["bash", "-e", "-c", script], cwd=tmp_path, env=env, stdout=out, stderr=err,
                                   start_new_session=True)
    try:
        try:
            status = process.wait(timeout=240)
        except subprocess.TimeoutExpired:
            # What was running, and what the database was doing, to find what waited.
            running = subprocess.run(["ps", "-o", "pid,stat,etime,args", "-g", str(process.pid)],
                                     capture_output=True, text=True).stdout
            activity = subprocess.run(
                ["psql", database, "-At", "-c", "SELECT pid, state, wait_event_type, wait_event, left(query, 160) "
                                                "FROM pg_stat_activity WHERE datname = current_database()"],
                capture_output=True, text=True, timeout=30).stdout
            status = f"still running after 240 s:\n{running}\n{activity}"
        assert status == 0, f"{status}\n{out_path.read_text()}\n{err_path.read_text()}"
        outputs = [json.loads(line) for line in out_path.read_text().splitlines()]
        assert outputs[:2] == [{"status": "ok"}, {"status": "ok"}], outputs
        token = outputs[2]["management_token"]
        assert token.startswith("mt-") and outputs[2]["organization_id"].startswith("org_")
        assert outputs[3] == {"ok": True, "open_holds": 0, "pools": 0, "violations": [], "overrun_lines": 0,
                              "overrun_micros": 0, "overruns": [], "pools_below_zero": []}
        first, second = (f"https://127.0.0.1:{ports[shown]}" for shown in ("8080", "8081"))
        verify = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        created = httpx.post(first + "/v1/management/api-keys", headers={"Authorization": f"Bearer {token}"},
                             json={"name": "at scale"}, verify=verify, timeout=30)
        assert created.status_code == 200, created.text
        deadline = time.time() + 10
        while (answer := httpx.get(second + "/v1/models", headers={"Authorization": f"Bearer {created.json()['key']}"},
                                   verify=verify, timeout=30)).status_code != 200:
            assert time.time() < deadline, answer.text
            time.sleep(0.05)
        assert [model["id"] for model in answer.json()["data"]] == ["gpt-4o-mini"]
        assert not list((tmp_path / "data").glob("*.sqlite")), "every table is in PostgreSQL"
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.killpg(process.pid, signal.SIGKILL)


def test_the_single_sign_on_settings_shown_are_applied_as_written(tmp_path):
    """Each `sso:` block of "Single sign-on" (the generic provider, Keycloak, Entra ID, Google),
    given to `lumen serve --demo --config` for the demo's organisation, is what
    `lumen admin sso show` then prints."""
    import yaml

    shown = blocks(section("### Single sign-on"), "yaml")
    assert len(shown) == 4, "the generic, Keycloak, Entra ID and Google examples"
    for number, text in enumerate(shown):
        entry = yaml.safe_load(text)["sso"][0]
        config = tmp_path / f"sso-{number}.yaml"
        config.write_text(text.replace(f"organization: {entry['organization']}", "organization: Demo"))
        run = tmp_path / f"run-{number}"
        run.mkdir()
        for server in start_server(run, "--demo", "--config", str(config)):
            credentials = json.loads(Path(server.stdout_path).read_text().splitlines()[0])
            wait_ready(server)
            env = {"LUMEN_GRPC_ADDRESS": server.grpc_target, "LUMEN_MANAGEMENT_TOKEN": credentials["management_token"],
                   "PATH": "/usr/bin:/bin"}
            result = subprocess.run([lumen_binary(), "admin", "sso", "show"], capture_output=True, text=True, env=env,
                                    timeout=60)
            assert result.returncode == 0, result.stderr
            applied = json.loads(result.stdout)
            assert applied["issuer"] == entry["issuer"].rstrip("/") and applied["client_id"] == str(entry["client_id"])
            assert applied["client_secret_env"] == entry["client_secret_env"]
            assert applied["group_map"] == {str(k): v for k, v in (entry.get("group_map") or {}).items()}
            assert applied["create_people"] == entry.get("create_people", False)
            assert applied["passwords_allowed"] == entry.get("passwords", True)
