"""dsd.perf: the reference roofline predictor's physics (pinned to `roofline` explicitly),
the fast path, memory fit and the registry."""

from __future__ import annotations

import pytest

from dsd.catalog import Catalog, load_catalog
from dsd.errors import ConfigError
from dsd.perf import (
    OPS,
    PREDICTORS,
    BatchShape,
    Deployment,
    FittedPredictor,
    LatencyPredictor,
    RooflinePredictor,
    check_fits,
    kv_capacity_tokens,
    make_predictor,
)

MS = 1e-3


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="module")
def pred() -> RooflinePredictor:
    return RooflinePredictor()


def dep(
    cat: Catalog, gpu: str, model: str, tp: int = 1, dtype_bytes: int | None = None
) -> Deployment:
    return Deployment(cat.gpu(gpu), cat.model(model), tp, dtype_bytes)


def decode(batch: int, ctx: int) -> BatchShape:
    return BatchShape.of([(1, ctx)] * batch)


def test_batch_shape_of() -> None:
    shape = BatchShape.of([(5, 100), (1, 20), (2048, 0)])
    assert (shape.num_seqs, shape.query_tokens, shape.context_tokens) == (3, 2054, 120)
    assert shape.attn_pairs == 5 * 105 + 1 * 21 + 2048 * 2048
    assert BatchShape.of([]) == BatchShape(0, 0, 0, 0)


def test_deployment_dtype_falls_back_to_gpu(cat: Catalog) -> None:
    assert dep(cat, "A100", "llama-2-7b").dtype_bytes == 2
    assert dep(cat, "cpu", "qwen2.5-0.5b").dtype_bytes == 4
    assert dep(cat, "cpu", "qwen2.5-0.5b", dtype_bytes=2).dtype_bytes == 2
    assert dep(cat, "A100", "llama-2-7b") == dep(cat, "A100", "llama-2-7b", dtype_bytes=2)


def test_deployment_rejects_bad_tp_and_dtype(cat: Catalog) -> None:
    with pytest.raises(ConfigError, match=r"tp=3 must divide the model's 64 attention heads"):
        dep(cat, "A100", "llama-2-70b", tp=3)
    with pytest.raises(ConfigError, match="tp must be a positive integer"):
        dep(cat, "A100", "llama-2-70b", tp=0)
    with pytest.raises(ConfigError, match="dtype_bytes must be 1, 2 or 4"):
        dep(cat, "A100", "llama-2-7b", dtype_bytes=3)


def test_decode_is_memory_bound(cat: Catalog, pred: RooflinePredictor) -> None:
    for gpu_name in ("A100", "H100", "A40", "V100"):
        hw = dep(cat, gpu_name, "llama-2-7b")
        gpu = hw.gpu
        expected = (
            hw.model.weight_bytes(2) / (gpu.mem_bw_gbps * 1e9 * gpu.mem_eff)
            + gpu.step_overhead_ms * MS
        )
        got = pred.predict("decode", decode(1, 256), hw)
        assert got == pytest.approx(expected, rel=0.04), gpu_name


def test_prefill_is_compute_bound(cat: Catalog, pred: RooflinePredictor) -> None:
    hw = dep(cat, "A100", "llama-2-7b")
    shape = BatchShape.of([(2048, 0)])
    got = pred.predict("prefill", shape, hw)
    dense_flops = 2 * hw.model.num_params * 2048
    compute = dense_flops / (hw.gpu.tflops * 1e12 * hw.gpu.compute_eff)
    memory = hw.model.weight_bytes(2) / (hw.gpu.mem_bw_gbps * 1e9 * hw.gpu.mem_eff)
    assert compute > 10 * memory
    # Dense matmuls dominate; attention adds its share on top (but not more than ~25%).
    assert compute < got < 1.25 * compute + hw.gpu.step_overhead_ms * MS


@pytest.mark.parametrize(
    "gpu_name", ["V100", "A40", "A6000", "A100", "H100", "H200", "L4", "RTX4090", "Jetson-AGX-Orin"]
)
def test_verify_costs_little_more_than_decode_on_gpus(
    cat: Catalog, pred: RooflinePredictor, gpu_name: str
) -> None:
    hw = dep(cat, gpu_name, "llama-2-7b")
    one = pred.predict("decode", BatchShape.of([(1, 512)]), hw)
    five = pred.predict("verify", BatchShape.of([(5, 512)]), hw)
    assert one < five < 1.2 * one


def test_tensor_parallel_speeds_up_decode(cat: Catalog, pred: RooflinePredictor) -> None:
    with pytest.raises(ConfigError, match=r"llama-2-70b on 1x A100 \(tp=1\) does not fit"):
        pred.predict("decode", decode(1, 512), dep(cat, "A100", "llama-2-70b", tp=1))
    t2 = pred.predict("decode", decode(8, 512), dep(cat, "A100", "llama-2-70b", tp=2))
    t4 = pred.predict("decode", decode(8, 512), dep(cat, "A100", "llama-2-70b", tp=4))
    t8 = pred.predict("decode", decode(8, 512), dep(cat, "A100", "llama-2-70b", tp=8))
    assert t8 < t4 < t2
    s1 = pred.predict("decode", decode(1, 512), dep(cat, "A100", "llama-2-13b", tp=1))
    s4 = pred.predict("decode", decode(1, 512), dep(cat, "A100", "llama-2-13b", tp=4))
    assert s4 < s1


def test_tensor_parallel_pays_for_all_reduces(cat: Catalog, pred: RooflinePredictor) -> None:
    # On PCIe cards the all-reduce of a long prefill eats much of the TP gain.
    shape = BatchShape.of([(2048, 0)])
    nvlink = pred.predict("prefill", shape, dep(cat, "A100", "llama-2-13b", tp=4))
    a100_one = pred.predict("prefill", shape, dep(cat, "A100", "llama-2-13b", tp=1))
    pcie = pred.predict("prefill", shape, dep(cat, "A40", "llama-2-13b", tp=4))
    a40_one = pred.predict("prefill", shape, dep(cat, "A40", "llama-2-13b", tp=1))
    assert a100_one / nvlink > a40_one / pcie


def test_time_grows_with_batch_and_context(cat: Catalog, pred: RooflinePredictor) -> None:
    hw = dep(cat, "H100", "llama-2-70b", tp=4)
    by_batch = [
        pred.predict("verify", BatchShape.of([(5, 1000)] * b), hw)
        for b in (1, 2, 4, 8, 16, 32, 64, 128, 256)
    ]
    assert all(a < b for a, b in zip(by_batch, by_batch[1:], strict=False))
    by_ctx = [pred.predict("decode", decode(16, c), hw) for c in (0, 128, 1024, 4096, 16384)]
    assert all(a < b for a, b in zip(by_ctx, by_ctx[1:], strict=False))
    by_prompt = [
        pred.predict("prefill", BatchShape.of([(p, 0)]), hw) for p in (1, 64, 512, 2048, 8192)
    ]
    assert all(a < b for a, b in zip(by_prompt, by_prompt[1:], strict=False))


def test_predict_equals_bound_step(cat: Catalog, pred: RooflinePredictor) -> None:
    hw = dep(cat, "A100", "llama-2-70b", tp=4)
    step = pred.bind(hw)
    assert pred.bind(hw) is step  # bound once per deployment
    for shape in (
        decode(1, 10),
        decode(32, 900),
        BatchShape.of([(5, 300), (3, 1200)]),
        BatchShape.of([(2048, 0)]),
    ):
        for op in OPS:
            assert pred.predict(op, shape, hw) == step.step_s(
                shape.num_seqs, shape.query_tokens, shape.context_tokens, shape.attn_pairs
            )


def test_cpu_matches_measured_decode(cat: Catalog, pred: RooflinePredictor) -> None:
    small = pred.predict("draft_step", decode(1, 200), dep(cat, "cpu", "qwen2.5-0.5b"))
    large = pred.predict("decode", decode(1, 200), dep(cat, "cpu", "qwen2.5-1.5b"))
    assert 60 * MS <= small <= 130 * MS
    assert 150 * MS <= large <= 350 * MS


def test_paper_setup_sanity(cat: Catalog, pred: RooflinePredictor) -> None:
    draft = pred.predict("draft_step", decode(1, 300), dep(cat, "A40", "llama-2-7b"))
    assert 20 * MS <= draft <= 35 * MS
    target = pred.predict("decode", decode(1, 300), dep(cat, "A100", "llama-2-70b", tp=4))
    assert 20 * MS <= target <= 40 * MS


def test_kv_capacity(cat: Catalog) -> None:
    hw = dep(cat, "A100", "llama-2-70b", tp=4)
    free = 4 * 80e9 * 0.9 - hw.model.weight_bytes(2)
    assert kv_capacity_tokens(hw) == int(free // 327_680)
    assert kv_capacity_tokens(hw, reserve_frac=0.0) > kv_capacity_tokens(hw)
    assert kv_capacity_tokens(dep(cat, "A100", "llama-2-70b", tp=8)) > kv_capacity_tokens(hw)
    assert kv_capacity_tokens(dep(cat, "A40", "llama-2-70b")) == 0
    # Two KV heads over four GPUs: each head is held twice, doubling KV bytes per token.
    q = dep(cat, "A100", "qwen2.5-1.5b", tp=4)
    assert q.kv_bytes_per_token == 2 * q.model.kv_bytes_per_token(2)


def test_fit_error_names_the_deployment(cat: Catalog) -> None:
    with pytest.raises(
        ConfigError,
        match=r"llama-2-70b on 1x A40 \(tp=1\) does not fit: "
        r"needs 138\.0 GB of weights",
    ):
        check_fits(dep(cat, "A40", "llama-2-70b"))
    check_fits(dep(cat, "H200", "llama-2-70b", tp=2))  # fits: no error


def test_registry_and_factory() -> None:
    assert PREDICTORS["roofline"] is RooflinePredictor
    for spec in ("roofline", {"type": "roofline"}, {"type": "roofline", "reserve_frac": 0.2}):
        p = make_predictor(spec)
        assert isinstance(p, RooflinePredictor)
        assert isinstance(p, LatencyPredictor)
    # The operator-level model is the default.
    assert isinstance(make_predictor({}), FittedPredictor)
    assert isinstance(make_predictor(), FittedPredictor)
    assert make_predictor({"type": "roofline", "reserve_frac": 0.2}).reserve_frac == 0.2
    # Unset (None) options from a config dump are ignored.
    assert isinstance(make_predictor({"type": "roofline", "path": None}), RooflinePredictor)
    with pytest.raises(ConfigError, match=r"unknown latency predictor 'table9' \(known: "):
        make_predictor({"type": "table9"})
    with pytest.raises(ConfigError, match=r"latency predictor 'roofline': bad parameters"):
        make_predictor({"type": "roofline", "speed": 3})


def test_unknown_op(cat: Catalog, pred: RooflinePredictor) -> None:
    with pytest.raises(ConfigError, match=r"unknown op 'sample'"):
        pred.predict("sample", decode(1, 1), dep(cat, "A100", "llama-2-7b"))  # type: ignore[arg-type]


def test_fp32_doubles_memory_bound_time(cat: Catalog, pred: RooflinePredictor) -> None:
    bf16 = pred.predict("decode", decode(1, 100), dep(cat, "A100", "llama-2-7b"))
    fp32 = pred.predict("decode", decode(1, 100), dep(cat, "A100", "llama-2-7b", dtype_bytes=4))
    overhead = cat.gpu("A100").step_overhead_ms * MS
    assert fp32 - overhead == pytest.approx(2 * (bf16 - overhead), rel=0.01)
