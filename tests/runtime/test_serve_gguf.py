"""`dsd serve fused` and `dsd serve cloud` on GGUF files run on llama.cpp, as processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request

import pytest

from backend_helpers import needs_llama, tiny_dir

pytestmark = [pytest.mark.runtime, needs_llama]


def _start(args: list[str]) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dsd.cli.main", "serve", *args, "--port",
                             "0", "--threads", "1", "--plain-logs", "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        found = re.search(r"OpenAI API on http://127\.0\.0\.1:(\d+)/v1", line)
        if found:
            return proc, int(found.group(1))
    raise AssertionError("server did not start: " + "".join(lines[-5:]))


def _complete(port: int, ids: list[int]) -> dict:
    body = json.dumps({"prompt": ids, "max_tokens": 16, "temperature": 0,
                       "ignore_eos": True}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body,
                                 {"content-type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=60).read())


def test_fused_and_cloud_serve_gguf_models_on_llama_cpp():
    from dsd.runtime.backends import load_backend
    from dsd.runtime.spec_loop import generate

    root = tiny_dir()
    target = load_backend(root / "target.gguf", "llamacpp", n_threads=1)
    ids = target.tokenizer("serve me").input_ids
    expected = target.tokenizer.decode(generate(target, None, [ids], 16)[0][0])
    target.close()
    procs = []
    try:
        fused, fport = _start(["fused", "--model", str(root / "target.gguf"),
                               "--draft-model", str(root / "draft.gguf")])
        procs.append(fused)
        cloud, cport = _start(["cloud", "--model", str(root / "target.gguf")])
        procs.append(cloud)
        spec, plain = _complete(fport, ids), _complete(cport, ids)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
    assert spec["choices"][0]["text"] == plain["choices"][0]["text"] == expected
    assert spec["dsd"]["drafted_tokens"] > 0 and plain["dsd"]["drafted_tokens"] == 0
    assert spec["model"] == plain["model"] == "target"
