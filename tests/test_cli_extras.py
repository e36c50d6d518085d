"""Commands that need an optional extra say which one, in one line, when it is missing.

The missing packages are simulated in a subprocess by a meta-path finder that refuses them,
as a fresh `pip install dsd` without extras would."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from dsd.cli.main import missing_extra

RUNTIME_MODULES = ("torch", "transformers", "tokenizers", "grpc", "fastapi", "uvicorn",
                   "httpx", "prometheus_client", "safetensors", "accelerate", "gguf", "pandas")

COMMANDS = {  # argv -> the extra the message must name
    "models tiny {tmp}/pair": "runtime",
    "serve verifier --model {tmp}/m": "runtime",
    "serve edge --draft-model {tmp}/m --verifier 127.0.0.1:1": "runtime",
    "serve proxy --upstream 127.0.0.1:1": "runtime",
    "profile --model {tmp}/m --out {tmp}/p.csv": "runtime",
    "bench runtime --num 1 --out {tmp}/bench": "runtime",
    "experiment sim-vs-real --quick --out {tmp}/svr": "runtime",
    "awc train {tmp}/train.parquet": "awc",
}

SCRIPT = textwrap.dedent("""
    import contextlib, io, json, sys
    BLOCK = set(sys.argv[1].split(","))

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCK:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, Refuse())
    from dsd.cli.main import main
    out = {}
    for argv in json.loads(sys.argv[2]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = main(argv.split())
        out[argv] = [rc, err.getvalue()]
    print(json.dumps(out))
""")


def test_missing_extras_are_named_in_one_line(tmp_path):
    argvs = {cmd.format(tmp=tmp_path): extra for cmd, extra in COMMANDS.items()}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(RUNTIME_MODULES), json.dumps(list(argvs))],
        capture_output=True, text=True, cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for argv, extra in argvs.items():
        rc, err = results[argv]
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1, (argv, err)
        assert f"pip install 'dsd[{extra}]'" in lines[0], (argv, lines[0])


def test_missing_extra_names_only_optional_modules():
    assert "dsd[ray]" in missing_extra("sweep", "ray.util")
    assert "dsd[runtime]" in missing_extra("serve", "google.protobuf")
    assert "dsd[awc]" in missing_extra("awc", "torch")
    assert missing_extra("simulate", "numpy") is None  # a broken install, not an extra
    assert missing_extra("simulate", None) is None
