"""Choosing the runtime and precision from ``detector.runtime`` / ``detector.precision`` and the machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors import DetectorConfig, DetectorError, choose_runtime, open_detector
from detectors.runtime import cpu_has_amx_bf16, openvino_installed

CPU = {"gpu": False}


@pytest.mark.parametrize(
    ("amx", "openvino", "expected"),
    [
        (True, True, ("openvino", "bf16")),
        (False, True, ("onnxruntime", "fp32")),
        (True, False, ("onnxruntime", "fp32")),
        (False, False, ("onnxruntime", "fp32")),
    ],
)
def test_auto(amx: bool, openvino: bool, expected: tuple[str, str]) -> None:
    choice = choose_runtime(DetectorConfig(), amx_bf16=amx, openvino=openvino, **CPU)
    assert (choice.runtime, choice.precision) == expected
    assert choice.reason


def test_auto_keeps_onnxruntime_for_gpus_and_named_providers() -> None:
    assert choose_runtime(DetectorConfig(), amx_bf16=True, openvino=True, gpu=True).runtime == "onnxruntime"
    named = DetectorConfig(providers=["CPUExecutionProvider"])
    assert choose_runtime(named, amx_bf16=True, openvino=True, gpu=False).runtime == "onnxruntime"


def test_explicit_settings() -> None:
    ov32 = DetectorConfig(runtime="openvino", precision="fp32")
    assert choose_runtime(ov32, amx_bf16=True, openvino=True, **CPU).precision == "fp32"
    # OpenVINO on a CPU without AMX: fp32 unless bf16 is asked for.
    ov = DetectorConfig(runtime="openvino")
    assert choose_runtime(ov, amx_bf16=False, openvino=True, **CPU).precision == "fp32"
    bf16 = DetectorConfig(precision="bf16")
    assert choose_runtime(bf16, amx_bf16=False, openvino=True, **CPU).runtime == "openvino"
    ort = DetectorConfig(runtime="onnxruntime")
    assert choose_runtime(ort, amx_bf16=True, openvino=True, **CPU).precision == "fp32"


def test_impossible_settings_are_errors() -> None:
    with pytest.raises(DetectorError, match="precision bf16 needs runtime openvino"):
        choose_runtime(DetectorConfig(runtime="onnxruntime", precision="bf16"), openvino=True, **CPU)
    with pytest.raises(DetectorError, match="openvino package is not installed"):
        choose_runtime(DetectorConfig(runtime="openvino"), openvino=False, **CPU)
    with pytest.raises(DetectorError, match="openvino package is not installed"):
        choose_runtime(DetectorConfig(precision="bf16"), openvino=False, **CPU)
    with pytest.raises(ValueError, match="precision"):
        DetectorConfig(precision="int8")  # type: ignore[arg-type]  # measured and not kept (README)
    with pytest.raises(ValueError, match="runtime"):
        DetectorConfig(runtime="tensorflow")  # type: ignore[arg-type]


def test_cpu_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512_bf16 amx_bf16 amx_tile\n")
    assert cpu_has_amx_bf16(info)
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512_bf16\n")
    assert not cpu_has_amx_bf16(info)
    assert not cpu_has_amx_bf16(tmp_path / "missing")


def test_open_detector_runs_what_was_chosen(fp32_model: Path, tmp_path: Path) -> None:
    config = DetectorConfig(compiled_model_cache=tmp_path)
    choice = choose_runtime(config)
    detector = open_detector(fp32_model, config)
    assert (detector.runtime, detector.precision) == (choice.runtime, choice.precision)
    if cpu_has_amx_bf16() and openvino_installed():
        assert (detector.runtime, detector.precision) == ("openvino", "bf16")
