"""A split deployment as separate processes, secured: the keys service in one `lumen serve`, the
accounts, ledger and registry in a second, the gateway in a third — every gRPC port on mutual
TLS with certificates from a test CA, the gateway's HTTP port on TLS. A request goes through the
gateway to a mock upstream and is metered by the ledger two processes away; callers without
the deployment's certificates are turned away; plaintext off loopback is refused at start."""

import json
import os
import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import ExitStack

import grpc
import pytest

from conftest import lumen_binary, start_server
from mock_upstream import MockUpstream

COST_MICROS = 40_000  # the model's price per request


def openssl(*args, cwd):
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def make_ca(directory, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=directory)


def make_certificate(directory, name, ca):
    """A certificate for 127.0.0.1 and localhost, good for a server and a client."""
    (directory / f"{name}.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=directory)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=directory)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    make_ca(directory, "ca")
    make_certificate(directory, "services", "ca")
    make_certificate(directory, "gateway", "ca")
    make_ca(directory, "outsider-ca")
    make_certificate(directory, "outsider", "outsider-ca")
    return directory


def tls_flags(pki, name):
    return ["--tls-cert", str(pki / f"{name}.pem"), "--tls-key", str(pki / f"{name}.key"), "--tls-ca", str(pki / "ca.pem")]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, pki):
    tmp_path = tmp_path_factory.mktemp("split")
    data = tmp_path / "data"
    env = {"LUMEN_INTERNAL_TOKEN": secrets.token_hex(32)}
    with MockUpstream() as upstream, ExitStack() as stack:
        config = tmp_path / "lumen.yaml"
        config.write_text(f"""
models:
  - name: per-call
    max_output_tokens: 1024
    vendor: Lumen
    scenes: [chat]
    prices: {{per_request: 0.04}}
    backends:
      - {{id: live, provider: openai, base_url: "{upstream.base_url}", timeout_ms: 30000}}
""")

        def start(name, *flags, listeners):
            (tmp_path / name).mkdir()
            servers = start_server(tmp_path / name, *flags, env=env, listeners=listeners, data_dir=data)
            stack.callback(servers.close)
            return next(servers)

        keys = start("keys", "--services", "keys", *tls_flags(pki, "services"), "--tls-require-client-cert",
                     listeners=("gRPC",))
        core = start("core", "--services", "accounts,ledger,registry", "--keys-address", keys.grpc_target,
                     "--config", str(config), *tls_flags(pki, "services"), "--tls-require-client-cert",
                     listeners=("gRPC",))
        gateway = start("gateway", "--services", "gateway", "--keys-address", keys.grpc_target,
                        "--accounts-address", core.grpc_target, "--ledger-address", core.grpc_target,
                        "--registry-address", core.grpc_target, *tls_flags(pki, "gateway"),
                        listeners=("HTTP", "metrics"))
        https = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{gateway.http_port}/healthz", context=https,
                                            timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.time() < deadline, "the gateway never became ready:\n" + gateway.log()
            time.sleep(0.1)
        yield {"keys": keys, "core": core, "gateway": gateway, "https": https, "data": data, "env": env,
               "upstream": upstream}


def https_call(deployment, method, path, token, body=None):
    gateway = deployment["gateway"]
    request = urllib.request.Request(
        f"https://127.0.0.1:{gateway.http_port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode())
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, context=deployment["https"], timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def channel(target, pki, client=None, ca="ca"):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(pki / f"{ca}.pem").read_bytes(),
        private_key=(pki / f"{client}.key").read_bytes() if client else None,
        certificate_chain=(pki / f"{client}.pem").read_bytes() if client else None)
    return grpc.secure_channel(target, credentials)


def test_a_request_crosses_three_processes_on_mutual_tls_and_is_metered(deployment, pki, lumen_api):
    for name, expected in (("keys", "services: keys; mutual TLS"), ("core", "services: accounts,ledger,registry; mutual TLS")):
        assert expected in deployment[name].log()
    assert "HTTP listening on 127.0.0.1:" in deployment["gateway"].log() and "(TLS)" in deployment["gateway"].log()

    bootstrap = subprocess.run(
        [lumen_binary(), "admin", "bootstrap", "--org", "Acme", "--admin-email", "admin@acme.test",
         "--data-dir", str(deployment["data"])], capture_output=True, text=True, timeout=60)
    assert bootstrap.returncode == 0, bootstrap.stderr
    token = json.loads(bootstrap.stdout)["management_token"]

    status, key = https_call(deployment, "POST", "/v1/management/api-keys", token, {"name": "split"})
    assert status == 200, key
    deadline = time.time() + 15
    while https_call(deployment, "GET", "/v1/models", key["key"])[0] != 200:
        assert time.time() < deadline, "the gateway never learned of the key over its watch"
        time.sleep(0.05)
    status, answer = https_call(deployment, "POST", "/v1/chat/completions", key["key"],
                                {"model": "per-call", "messages": [{"role": "user", "content": "hi"}]})
    assert status == 200, answer
    assert answer["model"] == "per-call"
    status, usage = https_call(deployment, "GET", f"/v1/management/api-keys/{key['id']}/usage", token)
    assert status == 200 and usage["total"] == 1
    assert usage["data"][0]["status"] == "settled" and round(usage["data"][0]["cost"] * 1_000_000) == COST_MICROS

    # The services, as a tool holding the deployment's certificate calls them.
    auth = (("authorization", f"Bearer {token}"),)
    with channel(deployment["keys"].grpc_target, pki, client="gateway") as keys_channel:
        listed = lumen_api.keys_pb2_grpc.KeysServiceStub(keys_channel).ListKeys(
            lumen_api.keys_pb2.ListKeysRequest(), metadata=auth)
        assert [k.id for k in listed.keys] == [key["id"]]
    common = __import__("lumen.common.v1.common_pb2", fromlist=["_"])
    with channel(deployment["core"].grpc_target, pki, client="gateway") as core_channel:
        pool = lumen_api.ledger_pb2_grpc.LedgerServiceStub(core_channel).GetPool(
            lumen_api.ledger_pb2.GetPoolRequest(owner=common.PrincipalRef(type=common.PRINCIPAL_TYPE_KEY, id=key["id"])),
            metadata=auth).pool
        assert pool.spent_micros == COST_MICROS

    # `lumen admin` reaches a TLS port with the same variables as `lumen serve`.
    tls_env = {**os.environ, "LUMEN_TLS_CA": str(pki / "ca.pem"), "LUMEN_TLS_CERT": str(pki / "gateway.pem"),
               "LUMEN_TLS_KEY": str(pki / "gateway.key")}
    granted = subprocess.run(
        [lumen_binary(), "admin", "grant", "--amount", "5", "--reason", "over TLS", "--server",
         deployment["core"].grpc_target, "--token", token], capture_output=True, text=True, timeout=60, env=tls_env)
    assert granted.returncode == 0, granted.stderr
    assert json.loads(granted.stdout)["grant"]["reason"] == "over TLS"
    plain = subprocess.run(
        [lumen_binary(), "admin", "grants", "--server", deployment["core"].grpc_target, "--token", token],
        capture_output=True, text=True, timeout=60)
    assert plain.returncode != 0, "a plaintext client gets nothing from a TLS port"


def test_callers_without_the_deployments_certificate_are_turned_away(deployment, pki, lumen_api):
    request = lumen_api.keys_pb2.ListKeysRequest()
    auth = (("authorization", "Bearer mt-whatever"),)
    target = deployment["keys"].grpc_target
    attempts = {
        "plaintext": grpc.insecure_channel(target),
        "TLS without a client certificate": channel(target, pki),
        "a client certificate of another CA": channel(target, pki, client="outsider"),
    }
    for what, attempt in attempts.items():
        with attempt:
            with pytest.raises(grpc.RpcError) as refused:
                lumen_api.keys_pb2_grpc.KeysServiceStub(attempt).ListKeys(request, metadata=auth, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, what

    # The HTTP port speaks TLS only.
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{deployment['gateway'].http_port}/healthz", timeout=10).read()


def run_serve(tmp_path, *flags, env=None):
    return subprocess.run([lumen_binary(), "serve", "--data-dir", str(tmp_path / "data"), *flags],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


def test_plaintext_off_loopback_and_broken_tls_settings_stop_the_start(tmp_path, pki):
    """Refused before anything listens or connects, with what to do; nothing written."""
    refused = run_serve(tmp_path, "--grpc-host", "0.0.0.0", "--grpc-port", "0", "--http-port", "0", "--metrics-port", "0")
    assert refused.returncode != 0
    assert "the gRPC port on 0.0.0.0 would carry API keys and tokens in plaintext" in refused.stderr
    assert "--insecure-plaintext" in refused.stderr

    refused = run_serve(tmp_path, "--services", "gateway", "--keys-address", "10.1.2.3:9090",
                        "--accounts-address", "127.0.0.1:9", "--ledger-address", "127.0.0.1:9",
                        "--registry-address", "127.0.0.1:9", "--http-port", "0", "--metrics-port", "0",
                        env={"LUMEN_INTERNAL_TOKEN": secrets.token_hex(32)})
    assert refused.returncode != 0 and "--keys-address 10.1.2.3:9090" in refused.stderr and "--tls-ca" in refused.stderr

    refused = run_serve(tmp_path, "--tls-cert", str(pki / "services.pem"), "--grpc-port", "0", "--http-port", "0",
                        "--metrics-port", "0")
    assert refused.returncode != 0 and "--tls-cert needs --tls-key" in refused.stderr

    refused = run_serve(tmp_path, "--tls-cert", str(pki / "services.pem"), "--tls-key", str(pki / "gateway.key"),
                        "--grpc-port", "0", "--http-port", "0", "--metrics-port", "0")
    assert refused.returncode != 0 and "do not make a TLS identity" in refused.stderr

    refused = run_serve(tmp_path, "--tls-cert", str(pki / "ca.key"), "--tls-key", str(pki / "services.key"),
                        "--grpc-port", "0", "--http-port", "0", "--metrics-port", "0")
    assert refused.returncode != 0 and "cannot read PEM certificates" in refused.stderr

    refused = run_serve(tmp_path, *tls_flags(pki, "services")[:4], "--tls-require-client-cert",
                        "--grpc-port", "0", "--http-port", "0", "--metrics-port", "0")
    assert refused.returncode != 0 and "--tls-require-client-cert needs" in refused.stderr
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").glob("*.sqlite"))
