"""Fitting the operator model: recovery of known coefficients, `dsd calibrate latency`,
and the shipped catalog's coefficients reproduced from the shipped profiles."""

from __future__ import annotations

import random

import numpy as np
import pytest
import yaml

from dsd.catalog import load_catalog
from dsd.catalog.gpu import OpCoefficients
from dsd.cli.main import main
from dsd.perf import coefficients as rule
from dsd.perf.fit import (
    calibrate,
    fit_allreduce,
    fit_operators,
    load_points,
    predict_linear,
)
from dsd.perf.vidur_data import VidurFolder, builtin_profiles
from vidur_fixtures import model_folder, write_allreduce

TRUTH = OpCoefficients(matmul_tflops=250.0, matmul_gbps=1600.0, elementwise_gbps=900.0,
                       smoothness=3.5, matmul_kernel_us=7.0, elementwise_kernel_us=2.5,
                       tile_tokens=128)
FITTED = ("matmul_tflops", "matmul_gbps", "elementwise_gbps", "smoothness",
          "matmul_kernel_us", "elementwise_kernel_us")


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def test_fit_recovers_the_coefficients_that_generated_the_data(tmp_path, cat) -> None:
    folder = VidurFolder(model_folder(tmp_path, TRUTH))
    points = load_points(folder, "a100", cat)
    fitted = fit_operators(points, cat.gpu("A100"))
    for name in FITTED:
        assert getattr(fitted, name) == pytest.approx(getattr(TRUTH, name), rel=2e-3), name
    assert np.allclose(predict_linear(points, fitted), points.measured_linear(), rtol=1e-4)


def test_fit_is_robust_to_measurement_noise(tmp_path, cat) -> None:
    rng = random.Random(1)
    folder = VidurFolder(model_folder(tmp_path, TRUTH, noise=lambda: rng.gauss(1.0, 0.03)))
    fitted = fit_operators(load_points(folder, "a100", cat), cat.gpu("A100"))
    for name in ("matmul_tflops", "matmul_gbps", "elementwise_gbps"):
        assert getattr(fitted, name) == pytest.approx(getattr(TRUTH, name), rel=0.03), name


def test_allreduce_fit_recovers_latency_and_bus_bandwidth(tmp_path) -> None:
    write_allreduce(tmp_path, "a100_dgx", latency_us=25.0, busbw_gbps=180.0)
    model_folder(tmp_path, TRUTH, keys=["meta-llama/Llama-2-7b-hf"], tps=(1,), tokens=(1, 64))
    latency, busbw = fit_allreduce(VidurFolder(tmp_path).allreduce("a100"))
    assert latency == pytest.approx(25.0, rel=1e-3) and busbw == pytest.approx(180.0, rel=1e-3)


def test_calibrate_latency_writes_a_catalog_overlay(tmp_path, capsys) -> None:
    root = model_folder(tmp_path / "vidur", TRUTH, keys=["meta-llama/Llama-2-7b-hf",
                                                          "Qwen/Qwen-72B"])
    write_allreduce(root, "a100_dgx", latency_us=25.0, busbw_gbps=180.0)
    out = tmp_path / "gpus.yaml"
    assert main(["calibrate", "latency", "--vidur", str(root), "--out", str(out)]) == 0
    assert "A100:" in capsys.readouterr().out
    ops = yaml.safe_load(out.read_text())["gpus"]["A100"]["ops"]
    assert ops["validated"] is True and ops["allreduce_gbps"] == pytest.approx(180.0, rel=1e-3)
    assert ops["matmul_tflops"] == pytest.approx(250.0, rel=2e-3)
    overlaid = load_catalog([out]).gpu("A100")
    assert overlaid.ops.matmul_gbps == pytest.approx(1600.0, rel=2e-3)
    assert overlaid.tflops == 312  # the spec sheet is untouched


def test_calibrate_latency_without_catalog_gpus_is_one_line(tmp_path, capsys) -> None:
    model_folder(tmp_path, TRUTH, gpu="b300", keys=["meta-llama/Llama-2-7b-hf"], tps=(1,),
                 tokens=(1, 8))
    assert main(["calibrate", "latency", "--vidur", str(tmp_path), "--out",
                 str(tmp_path / "o.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no catalog GPU profiled in" in err and len(err.splitlines()) == 1


def test_shipped_catalog_coefficients_come_from_calibrate_latency(cat) -> None:
    """`dsd calibrate latency` on the shipped profiles reproduces the catalog's blocks."""
    errors: dict[str, float] = {}
    fitted = calibrate([str(builtin_profiles())], cat, errors=errors)
    assert sorted(fitted) == ["A100", "A40", "H100"]
    for name, c in fitted.items():
        shipped = cat.gpu(name).ops
        assert shipped.validated and c.validated
        for key, value in c.given().items():
            if isinstance(value, float):
                assert getattr(shipped, key) == pytest.approx(value, rel=2e-3), (name, key)
        assert errors[name] <= 0.05  # the in-sample goal, per GPU


def test_spec_rule_constants_are_the_profiled_gpus_means(cat) -> None:
    fractions: dict[str, list[float]] = {}
    for name in ("A100", "H100", "A40"):
        for key, value in rule.rule_fractions(cat.gpu(name), cat.gpu(name).ops).items():
            fractions.setdefault(key, []).append(value)
    assert rule.MATMUL_FLOPS_FRAC == pytest.approx(np.mean(fractions["matmul_flops_frac"]),
                                                   rel=0.01)
    assert rule.MATMUL_BW_FRAC == pytest.approx(np.mean(fractions["matmul_bw_frac"]), rel=0.01)
    assert rule.ELEMENTWISE_BW_FRAC == pytest.approx(
        np.mean(fractions["elementwise_bw_frac"]), rel=0.01)
    assert rule.SMOOTHNESS == pytest.approx(np.mean(fractions["smoothness"]), rel=0.01)
    assert rule.MATMUL_KERNEL_US == pytest.approx(np.mean(fractions["matmul_kernel_us"]),
                                                  rel=0.01)
    assert rule.ELEMENTWISE_KERNEL_US == pytest.approx(
        np.mean(fractions["elementwise_kernel_us"]), rel=0.01)
    assert rule.ALLREDUCE_BW_FRAC == pytest.approx(np.mean(fractions["allreduce_bw_frac"]),
                                                   rel=0.01)
    assert rule.ALLREDUCE_LATENCY_SCALE == pytest.approx(
        np.mean(fractions["allreduce_latency_scale"]), rel=0.01)
    # a GPU with the A100's specs and no ops gets the rule, close to the A100's own fit
    derived = rule.spec_rule(cat.gpu("A100"))
    assert derived.matmul_tflops == pytest.approx(cat.gpu("A100").ops.matmul_tflops, rel=0.05)
