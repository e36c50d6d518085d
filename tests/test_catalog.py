"""dsd.catalog: built-in entries, lookup by name/alias, user extensions and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsd.catalog import Catalog, GpuSpec, ModelSpec, builtin_catalog, load_catalog
from dsd.errors import ConfigError

REQUIRED_GPUS = [
    "V100",
    "A40",
    "A6000",
    "A100",
    "H100",
    "H200",
    "L4",
    "RTX4090",
    "Jetson-AGX-Orin",
    "cpu",
]
REQUIRED_MODELS = [
    "llama-2-7b",
    "llama-2-13b",
    "llama-2-70b",
    "llama-3-8b",
    "llama-3-70b",
    "qwen-7b",
    "qwen-72b",
    "qwen2.5-0.5b",
    "qwen2.5-1.5b",
    "qwen2.5-7b",
    "qwen2.5-72b",
    "codellama-34b",
]

NEW_GPU = {
    "tflops": 100,
    "memory_gb": 16,
    "mem_bw_gbps": 500,
    "interconnect_gbps": 25,
    "compute_eff": 0.5,
    "mem_eff": 0.7,
    "step_overhead_ms": 2,
    "allreduce_latency_us": 20,
}


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_catalog()


def test_required_entries_present(cat: Catalog) -> None:
    assert set(REQUIRED_GPUS) <= set(cat.gpu_names())
    assert set(REQUIRED_MODELS) <= set(cat.model_names())


@pytest.mark.parametrize("name", REQUIRED_GPUS)
def test_every_gpu_is_sane(cat: Catalog, name: str) -> None:
    gpu = cat.gpu(name)
    assert isinstance(gpu, GpuSpec) and gpu.name == name
    assert gpu.tflops > 0 and gpu.memory_gb > 0 and gpu.mem_bw_gbps > 0
    assert 0.4 <= gpu.compute_eff <= 0.7
    assert 0.6 <= gpu.mem_eff <= 0.8
    assert gpu.interconnect_gbps > 0 and gpu.allreduce_latency_us > 0
    assert gpu.step_overhead_ms > 0
    assert gpu.dtype_bytes == (4 if name == "cpu" else 2)


def test_gpu_figures_match_spec_sheets(cat: Catalog) -> None:
    a100, h200, a40 = cat.gpu("A100"), cat.gpu("H200"), cat.gpu("A40")
    assert (a100.tflops, a100.memory_gb, a100.mem_bw_gbps) == (312, 80, 2039)
    assert (h200.tflops, h200.memory_gb, h200.mem_bw_gbps) == (989, 141, 4800)
    assert (a40.tflops, a40.memory_gb, a40.mem_bw_gbps) == (150, 48, 696)
    # NVLink parts all-reduce far faster than PCIe-only cards.
    assert a100.interconnect_gbps > 4 * a40.interconnect_gbps


@pytest.mark.parametrize("name", sorted(builtin_catalog().model_names()))
def test_every_model_params_match_its_shapes(cat: Catalog, name: str) -> None:
    model = cat.model(name)
    assert isinstance(model, ModelSpec) and model.name == name
    assert model.heads % model.kv_heads == 0
    assert model.estimated_params() == pytest.approx(model.num_params, rel=0.03)


def test_architecture_spot_checks(cat: Catalog) -> None:
    l70 = cat.model("llama-2-70b")
    assert (l70.layers, l70.hidden, l70.heads, l70.kv_heads, l70.intermediate, l70.vocab) == (
        80,
        8192,
        64,
        8,
        28672,
        32000,
    )
    q05 = cat.model("qwen2.5-0.5b")
    assert (q05.layers, q05.hidden, q05.heads, q05.kv_heads, q05.intermediate, q05.vocab) == (
        24,
        896,
        14,
        2,
        4864,
        151936,
    )
    assert q05.tied_embeddings and q05.head_dim == 64
    q15 = cat.model("qwen2.5-1.5b")
    assert (q15.layers, q15.hidden, q15.heads, q15.kv_heads, q15.intermediate) == (
        28,
        1536,
        12,
        2,
        8960,
    )
    q7 = cat.model("qwen-7b")
    assert (q7.layers, q7.hidden, q7.heads, q7.kv_heads, q7.vocab) == (32, 4096, 32, 32, 151936)
    q72 = cat.model("qwen-72b")
    assert (q72.layers, q72.hidden, q72.kv_heads, q72.intermediate, q72.vocab) == (
        80,
        8192,
        64,
        24576,
        152064,
    )
    assert cat.model("llama-3-8b").vocab == 128256


def test_official_parameter_counts(cat: Catalog) -> None:
    official = {
        "llama-2-7b": 6.74e9,
        "llama-2-13b": 13.0e9,
        "llama-2-70b": 69.0e9,
        "llama-3-8b": 8.03e9,
        "llama-3-70b": 70.6e9,
        "qwen-7b": 7.72e9,
        "qwen-72b": 72.3e9,
        "qwen2.5-0.5b": 0.49e9,
        "qwen2.5-1.5b": 1.54e9,
        "qwen2.5-7b": 7.61e9,
        "qwen2.5-72b": 72.7e9,
        "codellama-34b": 33.7e9,
    }
    for name, count in official.items():
        assert cat.model(name).estimated_params() == pytest.approx(count, rel=0.03), name


def test_kv_bytes_and_weight_bytes(cat: Catalog) -> None:
    l70 = cat.model("llama-2-70b")
    assert l70.kv_bytes_per_token() == 2 * 80 * 8 * 128 * 2 == 327_680
    assert l70.kv_bytes_per_token(dtype_bytes=1) == 163_840
    assert l70.weight_bytes(2) == pytest.approx(138e9, rel=0.01)
    assert cat.model("qwen2.5-0.5b").weight_bytes(4) == pytest.approx(1.976e9, rel=0.01)


def test_families_gate_drafting(cat: Catalog) -> None:
    assert cat.model("llama-2-7b").can_draft_for(cat.model("llama-2-70b"))
    assert cat.model("llama-2-7b").can_draft_for(cat.model("codellama-34b"))
    assert cat.model("qwen-7b").can_draft_for(cat.model("qwen-72b"))
    assert cat.model("qwen2.5-0.5b").can_draft_for(cat.model("qwen2.5-1.5b"))
    assert not cat.model("qwen2.5-0.5b").can_draft_for(cat.model("llama-2-70b"))
    assert not cat.model("llama-3-8b").can_draft_for(cat.model("llama-2-70b"))


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("A100-80GB", "A100"),
        ("a100", "A100"),
        ("a100_80gb", "A100"),
        ("h100-sxm", "H100"),
        ("jetson agx orin", "Jetson-AGX-Orin"),
        ("CPU", "cpu"),
        ("RTX-4090", "RTX4090"),
    ],
)
def test_gpu_aliases_and_case(cat: Catalog, query: str, canonical: str) -> None:
    assert cat.gpu(query).name == canonical


def test_model_aliases_and_case(cat: Catalog) -> None:
    assert cat.model("Llama-2-70B") == cat.model("llama-2-70b")
    assert cat.model("LLAMA2-70B").name == "llama-2-70b"
    assert cat.model("Qwen2.5-0.5B-Instruct").name == "qwen2.5-0.5b"


def test_unknown_names_list_known(cat: Catalog) -> None:
    with pytest.raises(ConfigError, match=r"unknown GPU 'A41' \(known: A100, A40, .*V100\)"):
        cat.gpu("A41")
    with pytest.raises(ConfigError, match=r"unknown model 'llama-9b' \(known: .*llama-2-70b"):
        cat.model("llama-9b")


def test_extend_overrides_fields_and_adds_entries(cat: Catalog) -> None:
    ext = cat.extend(
        {
            "gpus": {"A100-80GB": {"mem_eff": 0.8}, "MyNPU": {**NEW_GPU, "aliases": ["npu"]}},
            "models": {
                "tiny-llama": {
                    "family": "llama2",
                    "params_b": 0.011,
                    "layers": 4,
                    "hidden": 256,
                    "heads": 4,
                    "kv_heads": 4,
                    "head_dim": 64,
                    "intermediate": 688,
                    "vocab": 32000,
                }
            },
        }
    )
    assert ext.gpu("A100").mem_eff == 0.8
    assert ext.gpu("A100").tflops == 312  # untouched fields kept
    assert ext.gpu("a100-80gb").name == "A100"  # aliases kept
    assert ext.gpu("NPU").memory_gb == 16
    assert ext.model("tiny-llama").can_draft_for(ext.model("llama-2-70b"))
    # The original catalog is immutable.
    assert cat.gpu("A100").mem_eff == 0.75
    with pytest.raises(ConfigError):
        cat.gpu("MyNPU")


def test_load_catalog_reads_user_files_in_order(tmp_path: Path) -> None:
    first = tmp_path / "first.yaml"
    first.write_text("gpus:\n  MyNPU:\n" + "".join(f"    {k}: {v}\n" for k, v in NEW_GPU.items()))
    second = tmp_path / "second.yaml"
    second.write_text("gpus:\n  mynpu:\n    step_overhead_ms: 9\n")
    cat = load_catalog([first, str(second)])
    assert cat.gpu("MyNPU").step_overhead_ms == 9
    assert cat.gpu("MyNPU").tflops == 100
    assert "MyNPU" not in load_catalog().gpu_names()
    assert load_catalog() is load_catalog()  # package data read once


@pytest.mark.parametrize(
    ("yaml_text", "pattern"),
    [
        (
            "gpus:\n  MyNPU:\n    tflops: 100\n",
            r"bad\.yaml: gpus\.MyNPU: missing required field\(s\): memory_gb, mem_bw_gbps",
        ),
        ("gpus:\n  A100:\n    tflops: fast\n", r"bad\.yaml: gpus\.A100: tflops: "),
        ("gpus:\n  A100:\n    mem_eff: 1.5\n", r"bad\.yaml: gpus\.A100: mem_eff: "),
        ("gpus:\n  A100:\n    colour: green\n", r"bad\.yaml: gpus\.A100: colour: unknown key"),
        ("gpus:\n  A100:\n    dtype_bytes: 3\n", r"bad\.yaml: gpus\.A100: dtype_bytes"),
        ("models:\n  llama-2-7b:\n    kv_heads: 5\n", r"bad\.yaml: models\.llama-2-7b: .*kv_heads"),
        ("models:\n  m: 3\n", r"bad\.yaml: models\.m: expected a mapping"),
        ("gpu:\n  A100: {}\n", r"bad\.yaml: unknown section 'gpu'"),
        ("gpus: [1, 2]\n", r"bad\.yaml: gpus: expected a mapping"),
        ("gpus:\n  A100: {tflops: [\n", r"bad\.yaml: line \d+ invalid YAML"),
    ],
)
def test_malformed_user_catalog(tmp_path: Path, yaml_text: str, pattern: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=pattern) as info:
        load_catalog([path])
    assert "\n" not in str(info.value)


def test_missing_user_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read catalog file .*nope\.yaml"):
        load_catalog([tmp_path / "nope.yaml"])


def test_alias_collision_is_rejected(cat: Catalog) -> None:
    with pytest.raises(ConfigError, match=r"alias 'A100-80GB' is used by both"):
        cat.extend({"gpus": {"MyNPU": {**NEW_GPU, "aliases": ["A100-80GB"]}}})
