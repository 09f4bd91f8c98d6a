"""A newcomer's first starts: the demo's credentials come last and survive a restart, a taken
port is named with its flag, and a data directory in use by a live process is refused — with
nothing written by the process that was refused."""

import json
import os
import signal
import stat
import subprocess
import urllib.request
from pathlib import Path

from conftest import ROOT, lumen_binary, start_server, wait_ready


def run_lumen(*args, timeout=60):
    return subprocess.run([lumen_binary(), *args], capture_output=True, text=True, timeout=timeout)


def test_demo_credentials_come_last_and_are_the_same_after_a_restart(tmp_path):
    first_dir = tmp_path / "first"
    first_dir.mkdir()
    for server in start_server(first_dir, "--demo", "--log-level", "info"):
        wait_ready(server)
        credentials = json.loads(Path(server.stdout_path).read_text().splitlines()[0])
        data_dir = Path(server.data_dir)
        # Once it listens, the credentials come again, framed, on standard output after the
        # JSON line; the log (standard error) never holds a secret.
        log = server.log()
        assert all(f"{name} listening on" in log for name in ("HTTP", "gRPC", "metrics"))
        box = Path(server.stdout_path).read_text().split("\n", 1)[1]
    assert credentials["api_key"] not in log and credentials["management_token"] not in log
    assert credentials["password"] not in log
    # The README and `serve --help` name every field of the first line.
    readme = (ROOT / "README.md").read_text()
    shown = json.loads(readme[readme.index('{"api_key":'):].split("\n", 1)[0])
    assert sorted(shown) == sorted(credentials), (shown, credentials)
    helped = run_lumen("serve", "--help").stdout
    assert all(f'"{name}"' in helped for name in credentials), helped
    assert credentials["api_key"] in box and credentials["management_token"] in box
    box_lines = box[box.index("╔"):].splitlines()
    assert box_lines[-1].startswith("╚"), "the frame is the last thing printed"
    assert all(line.startswith(("╔", "║", "╚")) for line in box_lines)
    assert len({len(line) for line in box_lines}) == 1, "a closed frame"
    # It fits an 80-column terminal (with ./data; this test's directory is a longer path).
    contents = [line[2:-2].rstrip() for line in box_lines[1:-1] if "demo.json" not in line]
    assert all(len(content) + 4 <= 80 for content in contents), contents
    assert "export OPENAI_API_KEY=" + credentials["api_key"] in box
    # Kept in the data directory, for this user only.
    kept = data_dir / "demo.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert json.loads(kept.read_text()) == credentials

    # A restart over the same directory prints the same credentials first, and they work.
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    for server in start_server(second_dir, "--demo", "--data-dir", str(data_dir)):
        wait_ready(server)
        assert json.loads(Path(server.stdout_path).read_text().splitlines()[0]) == credentials
        import httpx
        response = httpx.post(
            server.http + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {credentials['api_key']}"},
            json={"model": credentials["model"], "messages": [{"role": "user", "content": "again"}]},
        )
        assert response.status_code == 200, response.text
    assert credentials["api_key"] in (second_dir / "lumen.out").read_text().split("╔")[-1]


def test_a_taken_port_is_named_with_its_flag_and_nothing_is_written(tmp_path):
    running_dir = tmp_path / "running"
    running_dir.mkdir()
    for server in start_server(running_dir):
        metrics_port = int(server.metrics.rsplit(":", 1)[1])
        cases = [
            ("--http-port", server.http_port, "HTTP"),
            ("--grpc-port", server.grpc_port, "gRPC"),
            ("--metrics-port", metrics_port, "metrics"),
        ]
        for flag, port, name in cases:
            data_dir = tmp_path / f"refused-{name}"
            ports = {"--http-port": "0", "--grpc-port": "0", "--metrics-port": "0", flag: str(port)}
            result = run_lumen("serve", "--demo", "--data-dir", str(data_dir), *[x for item in ports.items() for x in item])
            assert result.returncode != 0
            assert f"{name} port 127.0.0.1:{port} is already in use" in result.stderr, result.stderr
            assert flag in result.stderr, result.stderr
            assert "errno" not in result.stderr, "a person's message, not the socket call's"
            assert not data_dir.exists(), "the refused process created its data directory"
        assert server.process.poll() is None


def test_a_data_directory_in_use_is_refused_with_the_holders_pid(tmp_path):
    running_dir = tmp_path / "running"
    running_dir.mkdir()
    for server in start_server(running_dir):
        wait_ready(server)
        data_dir = Path(server.data_dir)
        before = sorted(p.name for p in data_dir.iterdir())
        result = run_lumen("serve", "--demo", "--data-dir", str(data_dir),
                           "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0")
        assert result.returncode != 0
        assert f"the data directory {data_dir} is in use by another Lumen process (PID {server.process.pid})" in result.stderr, result.stderr
        assert "--data-dir" in result.stderr
        assert sorted(p.name for p in data_dir.iterdir()) == before, "the refused --demo wrote into the directory"
        assert not (data_dir / "demo.json").exists()
        with urllib.request.urlopen(server.http + "/healthz", timeout=5) as response:
            assert response.status == 200

        # A process killed with SIGKILL leaves no lock behind.
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        restarted_dir = tmp_path / "restarted"
        restarted_dir.mkdir()
        for again in start_server(restarted_dir, "--data-dir", str(data_dir)):
            wait_ready(again)


def test_the_quick_start_command_ends_with_the_demo_credentials(tmp_path):
    """`scripts/serve.sh --demo`, as the README's first command, with standard output and error
    in one place as a terminal shows them: quiet build, logs, then the credentials last."""
    import time
    combined = tmp_path / "terminal"
    with open(combined, "w") as terminal:
        process = subprocess.Popen(
            [str(ROOT / "scripts" / "serve.sh"), "--demo", "--data-dir", str(tmp_path / "data"),
             "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"],
            stdout=terminal, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        try:
            deadline = time.time() + 600
            while "╚" not in combined.read_text(errors="replace"):
                assert process.poll() is None, combined.read_text()
                assert time.time() < deadline, combined.read_text()
                time.sleep(0.2)
            time.sleep(0.5)
            text = combined.read_text()
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    lines = text.rstrip("\n").splitlines()
    assert lines[-1].startswith("╚") and any("API key" in line and "sk-" in line for line in lines[-20:]), text
    assert not any("Compiling" in line for line in lines), "the build log belongs in .build/lumen-build.log"
    assert json.loads(lines[[i for i, line in enumerate(lines) if line.startswith("{")][0]])["model"] == "lumen-demo"


COMMANDS = [[], ["serve"], ["admin"], ["admin", "bootstrap"], ["admin", "grant"], ["admin", "grants"], ["admin", "pool"],
            ["admin", "pool", "show"], ["admin", "pool", "set"], ["admin", "ledger", "check"], ["admin", "operator-token"],
            ["admin", "operator-token", "create"], ["admin", "operator-token", "list"], ["admin", "operator-token", "revoke"],
            ["admin", "models"], ["admin", "models", "list"], ["admin", "models", "apply"], ["admin", "models", "remove-backend"],
            ["admin", "user"], ["admin", "user", "create"], ["admin", "user", "set"]]


def test_help_reads_well_at_80_columns_and_errors_show_the_subcommands_usage(tmp_path):
    env = {**os.environ, "COLUMNS": "80"}
    for command in COMMANDS:
        shown = subprocess.run([lumen_binary(), *command, "--help"], capture_output=True, text=True, timeout=30, env=env)
        assert shown.returncode == 0, (command, shown.stderr)
        lines = shown.stdout.splitlines()
        assert all(len(line) <= 80 for line in lines), (command, [line for line in lines if len(line) > 80])
        # A paragraph wrapped twice leaves a word alone on a line ("…by default,\non\nSQLite").
        assert not [line for line in lines if line.strip() and len(line.strip()) <= 3 and not line.strip().startswith("-")], \
            (command, shown.stdout)
        # Nor does a paragraph of prose end in one word on a line of its own ("…from the command\nline.").
        paragraphs = [p.splitlines() for p in shown.stdout.split("\n\n")]
        widows = [p[-1] for p in paragraphs if len(p) > 1 and not p[-1].startswith(" ") and len(p[-1].split()) == 1]
        assert widows == [], (command, widows)
    assert "the dashboard at /" in " ".join(run_lumen("serve", "--help").stdout.split())
    # `lumen --version` and the API document agree.
    version = run_lumen("--version")
    assert version.returncode == 0, version.stderr
    assert f"  version: {version.stdout.strip()}\n" in (ROOT / "gateway" / "openapi.yaml").read_text()
    refused = run_lumen("admin", "ledger", "check", "--data-dir", str(tmp_path / "nothing"))
    assert refused.returncode == 64
    assert "Usage: lumen admin ledger check" in refused.stderr and "Usage: lumen <subcommand>" not in refused.stderr
    assert "See 'lumen admin ledger check --help'" in refused.stderr
