"""Authentication and start-up checks: the edge's API key, the verifier's token-protected
metrics on the service's host, tokens kept off the command line, TLS mistakes and busy ports
stopping the start-up with one line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import socket
import subprocess

import pytest

torch = pytest.importorskip("torch")
httpx = pytest.importorskip("httpx")

from rt_helpers import edge_stack, make_edge, verifier_server  # noqa: E402

pytestmark = pytest.mark.runtime


def test_api_key_guards_everything_but_health(tiny, runners):
    tok = tiny[0]
    good = {"Authorization": "Bearer k3y"}

    async def main():
        async with edge_stack(runners, tok, server_kw={"api_key": "k3y"}) as (base, _):
            async with httpx.AsyncClient(base_url=base, timeout=30) as c:
                out = {"health": (await c.get("/health")).status_code}
                for path in ("/v1/models", "/metrics", "/docs", "/openapi.json"):
                    out[path] = ((await c.get(path)).status_code,
                                 (await c.get(path, headers={"Authorization": "Bearer no"})
                                  ).status_code,
                                 (await c.get(path, headers=good)).status_code)
                bad = await c.post("/v1/completions", content=b"{not json")
                ok = await c.post("/v1/completions", headers=good,
                                  json={"prompt": "hi", "max_tokens": 3})
                return out, bad, ok

    out, bad, ok = asyncio.run(main())
    assert out.pop("health") == 200
    for path, codes in out.items():
        assert codes == (401, 401, 200), (path, codes)
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
    assert "API key" in bad.json()["error"]["message"]  # refused before the body is read
    assert ok.status_code == 200


def test_verifier_metrics_bind_the_service_host_and_need_the_token(runners):
    from dsd.runtime.metrics import VerifierMetrics
    from dsd.runtime.verifier import start_metrics_server

    async def main():
        srv = await start_metrics_server(VerifierMetrics().registry, "127.0.0.1", 0, "s3cret")
        try:
            bound = srv.server.servers[0].sockets[0].getsockname()[0]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{srv.port}") as c:
                anon = await c.get("/metrics")
                auth = await c.get("/metrics", headers={"Authorization": "Bearer s3cret"})
            return bound, anon, auth
        finally:
            await srv.stop()

    bound, anon, auth = asyncio.run(main())
    assert bound == "127.0.0.1"
    assert anon.status_code == 401
    assert auth.status_code == 200 and "dsd_verifier_sessions" in auth.text


def test_tokens_come_from_a_file_or_the_environment_and_argv_warns(tmp_path, monkeypatch,
                                                                   caplog):
    from dsd.cli.secrets import read_secret
    from dsd.errors import DsdError

    def args(token=None, token_file=None):
        return argparse.Namespace(token=token, token_file=token_file)

    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    monkeypatch.setattr(logging.getLogger("dsd"), "propagate", True)  # to caplog
    monkeypatch.setenv("DSD_TOKEN", "from-env")
    assert read_secret(args(token_file=str(secret)), "--token", "DSD_TOKEN") == "from-file"
    assert read_secret(args(), "--token", "DSD_TOKEN") == "from-env"
    with caplog.at_level(logging.WARNING, logger="dsd"):
        assert read_secret(args(token="argv"), "--token", "DSD_TOKEN") == "argv"
    assert "process list" in caplog.text
    monkeypatch.delenv("DSD_TOKEN")
    assert read_secret(args(), "--token", "DSD_TOKEN") is None
    with pytest.raises(DsdError, match="cannot read --token-file"):
        read_secret(args(token_file=str(tmp_path / "missing")), "--token", "DSD_TOKEN")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    for name, cn, san in (("good", "localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                          ("other", "other", "subjectAltName=DNS:other")):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "2", "-subj", f"/CN={cn}", "-addext", san, "-keyout",
                        str(d / f"{name}.key"), "-out", str(d / f"{name}.pem")],
                       check=True, capture_output=True)
    return d


def test_tls_mistakes_stop_the_edge_at_start_with_one_line(tiny, runners, certs):
    from dsd.errors import DsdError
    from dsd.policies import BATCHERS, ROUTERS, WINDOWS
    from dsd.runtime.client import RemoteEndpoint
    from dsd.runtime.edge import EdgeEngine
    from dsd.runtime.launch import start_edge_server
    from dsd.runtime.protocol import TlsConfig
    from dsd.runtime.scheduler import VerifierCore
    from dsd.runtime.verifier import VerifierService, start_verifier_server

    tok = tiny[0]
    tr, dr = runners
    server_tls = TlsConfig(cert=str(certs / "good.pem"), key=str(certs / "good.key"))

    async def start(port, tls):
        ep = RemoteEndpoint(0, f"127.0.0.1:{port}", tls=tls)
        engine = EdgeEngine(dr, [ep], lambda: WINDOWS.create("static", gamma=2),
                            ROUTERS.create("jsq"))
        try:
            srv = await start_edge_server(engine, tok, "tiny", strict_start=True)
        except DsdError as exc:
            return str(exc)
        await srv.stop()
        return "started"

    async def main():
        core = VerifierCore(tr, BATCHERS.create("fifo"))
        server, tls_port = await start_verifier_server(VerifierService(core), tls=server_tls)
        try:
            async with verifier_server(tr) as (_, plain_port):
                return {
                    "no --tls": await start(tls_port, None),
                    "wrong CA": await start(tls_port, TlsConfig(ca=str(certs / "other.pem"))),
                    "TLS to plain": await start(plain_port,
                                                TlsConfig(ca=str(certs / "good.pem"))),
                    "right CA": await start(tls_port, TlsConfig(ca=str(certs / "good.pem"))),
                }
        finally:
            await server.stop(0)
            await core.stop()

    out = asyncio.run(main())
    assert "serves TLS" in out["no --tls"] and "--tls" in out["no --tls"]
    assert "not trusted" in out["wrong CA"] and "--tls-ca" in out["wrong CA"]
    assert "plain gRPC" in out["TLS to plain"]
    assert out["right CA"] == "started"
    assert all("\n" not in v for v in out.values())


def test_an_unreachable_verifier_does_not_stop_the_start(tiny, runners):
    """Not listening yet is not a mistake: the edge starts and probes it in the background."""
    from dsd.runtime.launch import start_edge_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main():
        srv = await start_edge_server(make_edge(runners[1], [port]), tiny[0], "tiny",
                                      strict_start=True)
        await srv.stop()

    asyncio.run(main())


def test_a_second_server_on_a_busy_port_fails_at_start_naming_it(runners):
    from dsd.errors import DsdError
    from dsd.runtime.metrics import VerifierMetrics
    from dsd.runtime.verifier import start_metrics_server

    tr, _ = runners

    async def main():
        async with verifier_server(tr) as (_, port):
            with pytest.raises(DsdError) as grpc_clash:
                async with verifier_server(tr, port=port):
                    pass
            metrics = await start_metrics_server(VerifierMetrics().registry, "127.0.0.1", 0)
            try:
                with pytest.raises(DsdError) as metrics_clash:
                    await start_metrics_server(VerifierMetrics().registry, "127.0.0.1",
                                               metrics.port)
            finally:
                await metrics.stop()
            return port, grpc_clash.value, metrics.port, metrics_clash.value

    port, grpc_clash, mport, metrics_clash = asyncio.run(main())
    assert f":{port}" in str(grpc_clash) and "in use" in str(grpc_clash)
    assert f":{mport}" in str(metrics_clash) and "--metrics-port" in str(metrics_clash)


def test_serve_cli_port_clash_is_one_line(capsys, tmp_path, monkeypatch):
    from dsd.cli.main import main as cli

    dsd_log = logging.getLogger("dsd")  # the CLI points it at this test's captured stderr
    monkeypatch.setattr(dsd_log, "handlers", list(dsd_log.handlers))
    monkeypatch.setattr(dsd_log, "propagate", dsd_log.propagate)
    monkeypatch.setattr(dsd_log, "level", dsd_log.level)

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert cli(["serve", "verifier", "--model", str(tmp_path), "--port", str(port),
                    "--metrics-port", "0", "--plain-logs"]) == 2
        grpc_err = capsys.readouterr().err.strip().splitlines()
        assert cli(["serve", "verifier", "--model", str(tmp_path), "--port", "0",
                    "--metrics-port", str(port), "--plain-logs"]) == 2
        metrics_err = capsys.readouterr().err.strip().splitlines()
        assert cli(["serve", "edge", "--draft-model", str(tmp_path), "--verifier",
                    "127.0.0.1:1", "--port", str(port), "--plain-logs"]) == 2
        edge_err = capsys.readouterr().err.strip().splitlines()
    for err, flag in ((grpc_err, "--port"), (metrics_err, "--metrics-port"),
                      (edge_err, "--port")):
        assert len(err) == 1, err
        assert f"127.0.0.1:{port}" in err[0] and flag in err[0]
