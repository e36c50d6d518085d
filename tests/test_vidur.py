"""The vidur latency predictor and its profile reader, on synthetic VIDUR folders written by
the tests (plus the shipped subset and, when present, ../shared/gpu-profiles)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from dsd.catalog import load_catalog
from dsd.errors import ConfigError, DataError
from dsd.perf import Deployment, make_predictor
from dsd.perf.vidur_data import VidurFolder, builtin_profiles, read_mlp
from vidur_fixtures import (
    MODELS,
    TOKENS,
    VIDUR_OPS,
    linear_folder,
    linear_ms,
    write_allreduce,
    write_mlp,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "gpu-profiles" / "vidur"
KEY = "meta-llama/Llama-2-7b-hf"


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def hw(cat, gpu="A100", model="llama-2-7b", tp=1) -> Deployment:
    return Deployment(cat.gpu(gpu), cat.model(model), tp)


def expected_linear_ms(tokens: float, tp: int, layers: int = 32) -> float:
    per_layer = sum(linear_ms(op, tokens, tp) for op in VIDUR_OPS if op != "emb")
    return linear_ms("emb", tokens, tp) + layers * per_layer


def test_interpolation_is_exact_at_grid_points_and_between(tmp_path, cat) -> None:
    step = make_predictor({"type": "vidur", "path": str(linear_folder(tmp_path))}).bind(
        hw(cat))
    for t in (*TOKENS, 3, 100, 700, 3000):  # grid points and points between them
        got = step.breakdown(1, t, 100, t * (100 + t))["linear"] * 1e3
        assert got == pytest.approx(expected_linear_ms(t, 1), rel=1e-9)


def test_monotone_in_tokens(tmp_path, cat) -> None:
    step = make_predictor({"type": "vidur", "path": str(linear_folder(tmp_path))}).bind(
        hw(cat))
    values = [step.step_s(4, t, 4000, t * 1000) for t in range(1, 5000, 37)]
    assert all(b > a for a, b in zip(values, values[1:], strict=False))


def test_tensor_parallel_reads_its_own_shard_and_adds_allreduces(tmp_path, cat) -> None:
    root = linear_folder(tmp_path, tps=(1, 2))
    write_allreduce(root, "a100_dgx", latency_us=20.0, busbw_gbps=100.0, gpus=(2,))
    pred = make_predictor({"type": "vidur", "path": str(root)})
    one, two = pred.bind(hw(cat, tp=1)), pred.bind(hw(cat, tp=2))
    t = 64
    assert two.breakdown(1, t, 100, 0)["linear"] * 1e3 == pytest.approx(
        expected_linear_ms(t, 2))
    assert two.breakdown(1, t, 100, 0)["linear"] < one.breakdown(1, t, 100, 0)["linear"]
    # 2 all-reduces per layer of tokens x hidden x 2 bytes, as profiled (ring model)
    message = t * 4096 * 2
    per = 20e-6 + message / 100e9
    assert two.breakdown(1, t, 100, 0)["comm"] == pytest.approx(64 * per, rel=1e-6)
    assert one.breakdown(1, t, 100, 0)["comm"] == 0.0


def test_missing_allreduce_profile_falls_back_with_a_warning(tmp_path, cat) -> None:
    pred = make_predictor({"type": "vidur", "path": str(linear_folder(tmp_path))})
    with pytest.warns(RuntimeWarning, match="no all-reduce profile over 2 A100 GPUs"):
        step = pred.bind(hw(cat, tp=2))
    assert step.breakdown(1, 8, 100, 0)["comm"] > 0


def test_missing_model_gpu_and_tp_are_one_line_listing_the_folder(tmp_path, cat) -> None:
    root = str(linear_folder(tmp_path, keys=[KEY], tps=(1, 2)))
    pred = make_predictor({"type": "vidur", "path": root})
    with pytest.raises(ConfigError) as err:
        pred.bind(hw(cat, model="llama-2-13b"))
    msg = str(err.value)
    assert "\n" not in msg and "compute/a100 has no profile of model 'llama-2-13b'" in msg
    assert "(models there: meta-llama/Llama-2-7b-hf)" in msg
    with pytest.raises(ConfigError, match=r"has no profiles of GPU 'H100' \(GPUs there: a100\)"):
        pred.bind(hw(cat, gpu="H100"))
    with pytest.raises(ConfigError) as err:
        pred.bind(hw(cat, tp=4))
    assert "mlp.csv has no rows for tp=4 (tp there: 1, 2)" in str(err.value)
    assert str(tmp_path) in str(err.value)  # names the file


@pytest.mark.parametrize("damage, pattern", [
    (lambda text: text.replace("num_tokens", "tokens"), r"missing column\(s\) num_tokens"),
    (lambda text: text.replace(",64,", ",abc,", 1), r"mlp\.csv:\d+: non-numeric"),
    (lambda text: text + "1,2,3\n", r"mlp\.csv:\d+: 3 fields, the header has"),
])
def test_malformed_csv_is_one_line_naming_the_file(tmp_path, cat, damage, pattern) -> None:
    root = linear_folder(tmp_path, keys=[KEY])
    path = root / "compute" / "a100" / KEY / "mlp.csv"
    path.write_text(damage(path.read_text()))
    with pytest.raises(DataError, match=pattern) as err:
        read_mlp(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_not_a_vidur_folder(tmp_path) -> None:
    with pytest.raises(DataError, match="not a VIDUR profile folder"):
        VidurFolder(tmp_path)


def test_gzip_files_read_like_plain_ones(tmp_path, cat) -> None:
    root = linear_folder(tmp_path / "plain", keys=[KEY])
    src = root / "compute" / "a100" / KEY / "mlp.csv"
    gz = tmp_path / "gz" / "compute" / "a100" / KEY / "mlp.csv.gz"
    gz.parent.mkdir(parents=True)
    gz.write_bytes(gzip.compress(src.read_bytes()))
    a, b = read_mlp(src), read_mlp(gz)
    assert np.array_equal(a.ms[1]["add"], b.ms[1]["add"])


def test_parallel_block_model_lacks_the_post_attention_norm(tmp_path) -> None:
    ops = tuple(op for op in VIDUR_OPS if op != "post_attention_layernorm")
    path = write_mlp(tmp_path / "mlp.csv", KEY,
                     [(t, 1, {op: linear_ms(op, t, 1) for op in ops}) for t in TOKENS], ops)
    assert read_mlp(path).ops == ops


def test_attention_csv_is_used_when_present(tmp_path, cat) -> None:
    root = linear_folder(tmp_path, keys=[KEY])
    att = root / "compute" / "a100" / KEY / "attention.csv"
    lines = ["time_stats.attn_decode.median,time_stats.attn_prefill.median,batch_size,"
             "kv_cache_size,prefill_chunk_size,is_prefill,num_tensor_parallel_workers"]
    for b in (1, 4, 16):
        for kv in (128, 1024, 4096):
            lines.append(f"{0.001 * b * kv / 128},,{b},{kv},0,False,1")
    for chunk in (16, 256, 1024):
        lines.append(f",{0.002 * chunk},1,0,{chunk},True,1")
    att.write_text("\n".join(lines) + "\n")
    step = make_predictor({"type": "vidur", "path": str(root)}).bind(hw(cat))
    # decode: batch 4 x mean kv 1024 -> 0.032 ms per layer; prefill of 256: 0.512 ms
    assert step.breakdown(4, 4, 4 * 1023, 4 * 1024)["attention"] == pytest.approx(
        32 * 0.032e-3)
    assert step.breakdown(1, 256, 0, 256 * 257 // 2)["attention"] == pytest.approx(
        32 * 0.512e-3)
    total = step.step_s(4, 4, 4 * 1023, 4 * 1024)
    assert total == pytest.approx(sum(step.breakdown(4, 4, 4 * 1023, 4 * 1024).values()))


def test_shipped_profiles_cover_the_fidelity_gpus(cat) -> None:
    folder = VidurFolder(builtin_profiles())
    assert sorted(folder.models) == ["a100", "a40", "h100"]
    assert (builtin_profiles() / "LICENSE").read_text().lstrip().startswith("MIT License")
    assert (builtin_profiles() / "PROVENANCE.md").is_file()
    for gpu in ("A100", "H100", "A40"):
        gpu_folder = folder.gpu_folder(cat.gpu(gpu))
        for model in ("llama-2-7b", "llama-2-70b", "qwen-72b", "internlm-20b", "phi-2"):
            folder.model_key(gpu_folder, cat.model(model))  # raises if missing
        assert folder.allreduce(gpu_folder) is not None or gpu == "A40"
    step = make_predictor("vidur").bind(hw(cat, "H100", "llama-2-70b", tp=4))
    assert step.validated and step.step_s(16, 80, 16 * 1000, 80 * 1005) > 0


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/gpu-profiles is not present")
def test_shipped_medians_equal_the_original_profiles() -> None:
    shipped, original = VidurFolder(builtin_profiles()), VidurFolder(SHARED)
    for gpu, models in original.models.items():
        for key in models:
            a, b = shipped.mlp(gpu, key), original.mlp(gpu, key)
            for tp in b.tps():
                for op in b.ops:
                    np.testing.assert_allclose(a.ms[tp][op], b.ms[tp][op], rtol=1e-5)


def test_vidur_pools_simulate(cat) -> None:
    from dsd.sim import simulate

    s = simulate("examples/single-pair.yaml", overrides=[
        "cluster.targets.0.latency.type=vidur", "cluster.drafts.0.latency.type=vidur",
        "simulation.duration_s=30"]).summary
    assert s["requests_completed"] > 0 and s["tpot_ms_p50"] > 0


def test_models_the_profiles_hold_map_to_catalog_names(cat) -> None:
    folder = VidurFolder(builtin_profiles())
    for key, (name, *_rest) in MODELS.items():
        assert folder.model_key("a100", cat.model(name)) == key
    assert folder.model_key("a100", cat.model("codellama-34b")).endswith(
        "CodeLlama-34b-Instruct-hf")


def test_a_fused_draft_model_missing_from_the_profiles_falls_back(cat) -> None:
    from dsd.config import load_config
    from dsd.sim.cluster import build_cluster

    cfg = load_config("examples/single-pair.yaml", overrides=[
        "cluster.targets.0.latency.type=vidur", "cluster.drafts.0.model=codellama-7b"])
    with pytest.warns(RuntimeWarning, match="fused drafting with codellama-7b uses the"):
        cluster = build_cluster(cfg)
    assert cluster.servers[0].step.validated
