"""Which runtime and precision run the detector: ``detector.runtime`` and ``detector.precision``.

``auto`` takes OpenVINO in bf16 where it pays: OpenVINO installed and a CPU with
bf16 matrix units (AMX), where bf16 runs about 3x onnxruntime fp32 at parity
F1 0.98+ (README). Elsewhere it keeps onnxruntime fp32, which also stays the
choice whenever onnxruntime has a GPU provider or providers are named in the
config (those are onnxruntime's settings).
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from detectors.base import DetectorError
from detectors.config import DetectorConfig
from detectors.yolo_base import YoloDetector

log = logging.getLogger(__name__)

_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


@dataclass(frozen=True, slots=True)
class RuntimeChoice:
    runtime: str  # "onnxruntime" or "openvino"
    precision: str  # "fp32" or "bf16"
    reason: str  # why, for the log


def cpu_has_amx_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU has AMX bf16 tiles (Linux flag ``amx_bf16``, Sapphire Rapids and later)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return "amx_bf16" in flags.split()


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def choose_runtime(
    config: DetectorConfig,
    *,
    amx_bf16: bool | None = None,
    openvino: bool | None = None,
    gpu: bool | None = None,
) -> RuntimeChoice:
    """Resolve ``auto`` in ``config.runtime`` and ``config.precision`` (the keywords override what
    this machine has, for tests and benchmarks)."""
    amx_bf16 = cpu_has_amx_bf16() if amx_bf16 is None else amx_bf16
    openvino = openvino_installed() if openvino is None else openvino
    if gpu is None:
        gpu = any(p in ort.get_available_providers() for p in _GPU_PROVIDERS)
    runtime, precision = config.runtime, config.precision
    if runtime == "auto":
        if config.providers is not None or gpu:
            runtime, reason = "onnxruntime", "onnxruntime execution providers given or a GPU present"
        elif precision == "bf16":
            runtime, reason = "openvino", f"precision {precision} needs OpenVINO"
        elif openvino and amx_bf16 and precision == "auto":
            runtime, reason = "openvino", "OpenVINO installed and the CPU has AMX bf16"
        elif not openvino:
            runtime, reason = "onnxruntime", "OpenVINO not installed"
        else:
            runtime, reason = "onnxruntime", "no AMX bf16 on this CPU"
    else:
        reason = "set in the config"
    if runtime == "openvino" and not openvino:
        raise DetectorError("detector runtime openvino: the openvino package is not installed")
    if precision == "auto":
        precision = "bf16" if runtime == "openvino" and amx_bf16 else "fp32"
    if runtime == "onnxruntime" and precision != "fp32":
        raise DetectorError(
            f"detector precision {precision} needs runtime openvino; onnxruntime runs the model file as it is"
        )
    return RuntimeChoice(runtime, precision, reason)


def open_detector(model: str | Path, config: DetectorConfig | None = None) -> YoloDetector:
    """The detector the config asks for, on the runtime and precision it resolves to (logged)."""
    config = config or DetectorConfig()
    choice = choose_runtime(config)
    log.info("detector runtime %s, precision %s (%s)", choice.runtime, choice.precision, choice.reason)
    if choice.runtime == "openvino":
        from detectors.yolo_openvino import YoloOpenVinoDetector

        return YoloOpenVinoDetector(model, config, choice.precision)
    from detectors.yolo_onnx import YoloOnnxDetector

    return YoloOnnxDetector(model, config)
