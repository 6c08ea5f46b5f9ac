"""Choosing onnxruntime execution providers: the fastest one present, CPU last."""

from __future__ import annotations

import onnxruntime as ort

# Fastest first. TensorRT and CUDA need an onnxruntime-gpu build; OpenVINO needs onnxruntime-openvino.
PREFERRED = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "CoreMLExecutionProvider",
    "CPUExecutionProvider",
)


def select_providers(requested: list[str] | None) -> list[str]:
    """The providers to open a session with.

    ``None`` picks every preferred provider this onnxruntime build has, best
    first. A requested provider that the build lacks is an error naming what
    is available, rather than a silent fall-back to a slower one.
    """
    available = ort.get_available_providers()
    if requested is None:
        return [p for p in PREFERRED if p in available] or available
    aliases = {
        "cpu": "CPUExecutionProvider",
        "cuda": "CUDAExecutionProvider",
        "tensorrt": "TensorrtExecutionProvider",
        "openvino": "OpenVINOExecutionProvider",
    }
    chosen = [aliases.get(p.lower(), p) for p in requested]
    missing = [p for p in chosen if p not in available]
    if missing:
        raise ValueError(
            f"execution provider(s) {', '.join(missing)} not in this onnxruntime build "
            f"(available: {', '.join(available)})"
        )
    return chosen
