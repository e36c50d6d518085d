"""The operator-level latency model (`fitted`, the default): physics, the bound fast path,
ragged batches, unvalidated GPUs and `dsd perf predict`."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest

from dsd.catalog import load_catalog
from dsd.cli.main import main
from dsd.perf import BatchShape, Deployment, FittedPredictor, make_predictor
from dsd.perf.attention import AttentionModel
from dsd.perf.coefficients import resolve
from dsd.perf.ops import LayerShape, linear_s, op_s
from dsd.sim.batch_time import fused_draft_s, target_batch_s
from dsd.sim.entities import PREFILL, VERIFY

MS = 1e-3


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def dep(cat, gpu="A100", model="llama-2-70b", tp=4) -> Deployment:
    return Deployment(cat.gpu(gpu), cat.model(model), tp)


def test_default_predictor_is_the_fitted_operator_model(cat) -> None:
    step = make_predictor().bind(dep(cat))
    assert isinstance(make_predictor(), FittedPredictor)
    assert step.validated and "VIDUR" in step.source


def test_smooth_roofline_is_above_the_hard_max_in_the_transition(cat) -> None:
    c = resolve(cat.gpu("A100"))
    shape = LayerShape.of(cat.model("llama-2-70b"), 4)
    k, n = shape.matmul("mlp_up_proj")
    for tokens in (1, 128, 4096):
        compute = 2 * max(tokens, 128 if tokens > 128 else tokens) * k * n / (
            c.matmul_tflops * 1e12)
        memory = 2 * (k * n + tokens * (k + n)) / (c.matmul_gbps * 1e9)
        t = float(op_s("mlp_up_proj", tokens, shape, c)) - c.matmul_kernel_us * 1e-6
        assert max(compute, memory) < t < compute + memory


def test_tile_quantization_charges_whole_row_tiles(cat) -> None:
    c = resolve(cat.gpu("H100"))
    shape = LayerShape.of(cat.model("llama-2-7b"), 1)
    # 129..256 rows cost one extra 128-row tile of compute: flat between 129 and 256
    assert float(op_s("mlp_up_proj", 129, shape, c)) == pytest.approx(
        float(op_s("mlp_up_proj", 256, shape, c)), rel=0.03)
    assert float(op_s("mlp_up_proj", 257, shape, c)) > 1.2 * float(
        op_s("mlp_up_proj", 256, shape, c))


def test_decode_is_weight_bound_and_tp_splits_it(cat) -> None:
    fitted = make_predictor()
    one = fitted.bind(dep(cat, "H100", "llama-2-70b", 2)).breakdown(1, 1, 500, 501)
    four = fitted.bind(dep(cat, "H100", "llama-2-70b", 4)).breakdown(1, 1, 500, 501)
    c = resolve(cat.gpu("H100"))
    weights = 2 * 68.98e9 / 2  # bytes per GPU at tp=2 (embedding and head aside: ~1%)
    assert one["linear"] == pytest.approx(weights / (c.matmul_gbps * 1e9), rel=0.15)
    assert four["linear"] < 0.6 * one["linear"]
    assert four["comm"] > one["comm"] > 0  # more GPUs in the ring, same message


def test_prefill_is_compute_bound(cat) -> None:
    step = make_predictor().bind(dep(cat, "A100", "llama-2-7b", 1))
    t = 2048
    linear = step.breakdown(1, t, 0, t * (t + 1) // 2)["linear"]
    flops = 2 * 6.2e9 * t  # non-embedding, non-head parameters
    assert linear == pytest.approx(flops / (resolve(cat.gpu("A100")).matmul_tflops * 1e12),
                                   rel=0.15)


def test_linear_part_is_exactly_the_vidur_operator_set(cat) -> None:
    hw = dep(cat, "A40", "llama-2-7b", 2)
    c, shape = resolve(hw.gpu), LayerShape.of(hw.model, 2)
    got = make_predictor().bind(hw).breakdown(3, 24, 300, 24 * 108)["linear"]
    ops = sum(float(op_s(op, 24, shape, c)) for op in shape.ops() if op != "emb")
    assert got == pytest.approx(float(op_s("emb", 24, shape, c)) + 32 * ops)
    assert got == pytest.approx(float(linear_s(24, shape, c)))


def test_step_equals_its_parts_and_the_attention_model(cat) -> None:
    rng = random.Random(0)
    for gpu, model, tp in [("A100", "llama-2-70b", 4), ("H100", "qwen-72b", 8),
                           ("A40", "llama-2-7b", 1), ("V100", "qwen-7b", 1),
                           ("cpu", "qwen2.5-0.5b", 1)]:
        hw = dep(cat, gpu, model, tp)
        step = make_predictor().bind(hw)
        attention = AttentionModel(hw, resolve(hw.gpu))
        for _ in range(300):
            n = rng.randint(1, 40)
            seqs = [(rng.choice([1, 3, 5, 9]), rng.choice([1, 100, 3000, 9000]))
                    for _ in range(n)]
            shape = BatchShape.of(seqs)
            parts = step.breakdown(*shape.args())
            assert step.step_s(*shape.args()) == pytest.approx(sum(parts.values()),
                                                               rel=1e-12)
            assert parts["attention"] == pytest.approx(attention.seconds(*shape.args()),
                                                       rel=1e-12)


def ragged_twin(cat, predictor="fitted", hw=None):
    """(ragged, twin) seconds: 1 x 8k + 15 x 100 context vs 16 x the mean context."""
    step = make_predictor(predictor).bind(hw or dep(cat))
    ragged = BatchShape.of([(1, 8000)] + [(1, 100)] * 15)
    mean = ragged.context_tokens // 16
    twin = BatchShape.of([(1, mean)] * 16)
    assert twin.context_tokens == ragged.context_tokens - ragged.context_tokens % 16
    return step.step_s(*ragged.args()), step.step_s(*twin.args())


@pytest.mark.parametrize("gpu, model, tp", [("A100", "llama-2-70b", 4),
                                            ("H100", "qwen-72b", 4),
                                            ("A40", "llama-2-7b", 2),
                                            ("L4", "llama-3-8b", 1)])
def test_a_ragged_batch_costs_more_than_its_mean_context_twin(cat, gpu, model, tp) -> None:
    ragged, twin = ragged_twin(cat, hw=dep(cat, gpu, model, tp))
    assert ragged > twin * 1.005
    # ... and the extra is attention: sums alone (max_kv unknown) give the twin's price
    step = make_predictor().bind(dep(cat, gpu, model, tp))
    shape = BatchShape.of([(1, 8000)] + [(1, 100)] * 15)
    assert step.step_s(*shape.args()[:4]) < ragged


def test_ragged_reaches_the_step_model_through_the_simulator_seam(cat) -> None:
    step = make_predictor().bind(dep(cat))

    def job(q, c, kind=VERIFY):
        return SimpleNamespace(query_tokens=q, context_len=c, kind=kind)

    ragged = [job(5, 8000)] + [job(5, 100) for _ in range(15)]
    twin = [job(5, 593) for _ in range(16)]
    assert sum(j.context_len for j in twin) == sum(j.context_len for j in ragged) - 12
    assert target_batch_s(step, ragged) > 1.005 * target_batch_s(step, twin)
    # a long prefill in the batch is not a ragged decode sequence
    with_prefill = twin[:15] + [job(8000, 0, PREFILL)]
    shape_longest = max(j.context_len + j.query_tokens for j in with_prefill
                        if j.kind != PREFILL)
    assert shape_longest == 598
    # fused drafting passes the longest live context too
    drafts = [job(4, 8000)] + [job(4, 100) for _ in range(15)]
    even = [job(4, 593) for _ in range(16)]
    assert fused_draft_s(step, drafts) > fused_draft_s(step, even)


def test_the_premium_vanishes_once_the_batch_fills_every_sm(cat) -> None:
    # 16 sequences x 32 KV heads = 512 blocks on 84 SMs: the long sequence's 32 blocks run
    # beside the others, and the whole-GPU bandwidth bounds the step (docs/latency.md).
    ragged, twin = ragged_twin(cat, hw=dep(cat, "A40", "llama-2-7b", 1))
    assert ragged == pytest.approx(twin, rel=0.005)


def test_uniform_batches_ignore_the_critical_path(cat) -> None:
    step = make_predictor().bind(dep(cat))
    shape = BatchShape.of([(5, 700)] * 16)
    assert step.step_s(*shape.args()) == step.step_s(*shape.args()[:4])


def test_unprofiled_gpus_are_unvalidated_and_follow_the_spec_rule(cat) -> None:
    for name in ("V100", "L4", "RTX4090", "Jetson-AGX-Orin", "A6000", "H200", "cpu"):
        gpu = cat.gpu(name)
        assert not gpu.validated
        assert not make_predictor().bind(
            Deployment(gpu, cat.model("qwen2.5-0.5b"))).validated
    for name in ("A100", "H100", "A40"):
        assert cat.gpu(name).validated
    # H200 = H100's compute with more bandwidth: decode must be faster, prefill no slower
    h100, h200 = resolve(cat.gpu("H100")), resolve(cat.gpu("H200"))
    assert h200.matmul_gbps > h100.matmul_gbps
    decode = [make_predictor().bind(dep(cat, g, "llama-2-70b", 4)).step_s(1, 1, 500, 501)
              for g in ("H100", "H200")]
    assert decode[1] < decode[0]


def test_a_user_catalog_overrides_coefficients_field_by_field(cat, tmp_path) -> None:
    path = tmp_path / "ops.yaml"
    path.write_text("gpus:\n  A100:\n    ops: {step_overhead_ms: 0, seq_overhead_us: 0}\n")
    custom = load_catalog([path])
    ops = custom.gpu("A100").ops
    assert ops.step_overhead_ms == 0 and ops.matmul_tflops == cat.gpu("A100").ops.matmul_tflops
    assert ops.validated
    parts = FittedPredictor().bind(Deployment(custom.gpu("A100"), cat.model("llama-2-7b"))
                                   ).breakdown(8, 8, 800, 808)
    assert parts["overhead"] == 0.0


def test_cpu_entry_stays_near_measured_decode(cat) -> None:
    step = make_predictor()
    q05 = step.bind(Deployment(cat.gpu("cpu"), cat.model("qwen2.5-0.5b"))).step_s(1, 1, 64, 65)
    q15 = step.bind(Deployment(cat.gpu("cpu"), cat.model("qwen2.5-1.5b"))).step_s(1, 1, 64, 65)
    assert 70 * MS < q05 < 120 * MS and 160 * MS < q15 < 320 * MS


def test_perf_predict_json_has_the_parts_and_they_sum(capsys) -> None:
    args = ["perf", "predict", "--gpu", "H100", "--model", "llama-2-70b", "--tp", "4",
            "--op", "verify", "--batch", "16", "--query", "5", "--context", "1024", "--json"]
    assert main(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    data = json.loads(out[0])
    for key in ("total_ms", "linear_ms", "attention_ms", "comm_ms", "overhead_ms"):
        assert isinstance(data[key], float) and data[key] >= 0
    assert data["validated"] is True
    parts = sum(data[f"{k}_ms"] for k in ("linear", "head", "attention", "comm", "overhead"))
    assert data["total_ms"] == pytest.approx(parts, rel=1e-9)
    # linear is the VIDUR operator set at batch x query tokens
    hw = Deployment(load_catalog().gpu("H100"), load_catalog().model("llama-2-70b"), 4)
    expected = linear_s(80, LayerShape.of(hw.model, 4), resolve(hw.gpu)) * 1e3
    assert data["linear_ms"] == pytest.approx(float(expected))


@pytest.mark.parametrize("latency, validated", [("roofline", False), ("vidur", True)])
def test_perf_predict_other_models(capsys, latency, validated) -> None:
    assert main(["perf", "predict", "--gpu", "A100", "--model", "llama-2-7b", "--op",
                 "decode", "--context", "200", "--latency", latency, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    parts = sum(data[f"{k}_ms"] for k in ("linear", "head", "attention", "comm", "overhead"))
    assert data["total_ms"] == pytest.approx(parts, rel=1e-9)
    assert data["validated"] is validated


def test_perf_predict_marks_unvalidated_gpus(capsys) -> None:
    assert main(["perf", "predict", "--gpu", "L4", "--model", "llama-3-8b", "--op", "decode",
                 "--context", "10"]) == 0
    assert "validated  no (spec rule)" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--gpu", "X1", "--model", "llama-2-7b", "--op", "decode"], "unknown GPU 'X1'"),
    (["--gpu", "A100", "--model", "nope", "--op", "decode"], "unknown model 'nope'"),
    (["--gpu", "A100", "--model", "llama-2-7b", "--op", "sample"], "unknown op 'sample'"),
    (["--gpu", "A100", "--model", "llama-2-7b", "--op", "decode", "--query", "3"],
     "a decode feeds 1 token per sequence"),
    (["--gpu", "A100", "--model", "llama-2-7b", "--op", "decode", "--latency", "magic"],
     "--latency: unknown 'magic'"),
])
def test_perf_predict_errors_are_one_line(capsys, args, message) -> None:
    assert main(["perf", "predict", *args, "--context", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_perf_predict_prices_a_ragged_batch_above_its_twin(capsys) -> None:
    base = ["perf", "predict", "--gpu", "A100", "--model", "llama-2-70b", "--tp", "4",
            "--op", "decode", "--json"]
    assert main([*base, "--contexts", "8000,100*15"]) == 0
    ragged = json.loads(capsys.readouterr().out)
    assert main([*base, "--batch", "16", "--context", str(ragged["context"])]) == 0
    twin = json.loads(capsys.readouterr().out)
    assert (ragged["batch"], ragged["max_context"]) == (16, 8000)
    assert ragged["linear_ms"] == twin["linear_ms"]
    assert ragged["attention_ms"] > twin["attention_ms"]
    assert main([*base, "--contexts", "8000,x"]) == 2
    assert "--contexts: expected e.g." in capsys.readouterr().err
