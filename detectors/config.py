"""Detector settings: one pydantic model, validated once at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ingest.config import ConfigModel

CPU_MAX_BATCH = 2  # see ``DetectorConfig.max_batch``
ACCELERATOR_MAX_BATCH = 8


class DetectorConfig(ConfigModel):
    """Settings of the YOLO detector (an ONNX file on onnxruntime or OpenVINO).

    ``model`` is a path or a known model name (see ``models.resolve_model``);
    ``None`` means the default model from the resolution order.
    """

    type: str = "yolo_onnx"
    model: str | Path | None = None
    runtime: Literal["auto", "onnxruntime", "openvino"] = Field(
        "auto",
        description="auto: OpenVINO where it is installed and the CPU has bf16 matrix units (AMX), "
        "onnxruntime otherwise (and whenever onnxruntime has a GPU provider or providers are given)",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="inference precision on OpenVINO; auto: bf16 on CPUs with AMX bf16, fp32 elsewhere; "
        "onnxruntime runs the model file as it is (fp32)",
    )
    imgsz: int = Field(640, ge=32, le=4096, description="inference size (longest side), multiple of stride")
    conf: float = Field(0.25, ge=0.0, le=1.0, description="minimum class confidence")
    iou: float = Field(0.7, gt=0.0, le=1.0, description="NMS IoU threshold (class-aware)")
    classes: list[int | str] | None = Field(None, description="keep only these class ids or names")
    max_det: int = Field(300, ge=1, le=30000)
    providers: list[str] | None = Field(
        None, description="onnxruntime execution providers in order; None picks the best available"
    )
    intra_op_threads: int = Field(0, ge=0, description="0 lets onnxruntime decide")
    inter_op_threads: int = Field(0, ge=0)
    graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        "all", description="onnxruntime graph optimization level"
    )
    allow_spinning: bool = Field(
        False,
        description="let onnxruntime's idle intra-op threads spin-wait for work; off (measured: same "
        "speed alone, less CPU and latency beside camera decoding) gives the cores back between calls",
    )
    max_batch: int | None = Field(
        None,
        ge=1,
        description="most pictures per inference call, and so the most the batcher gathers; None: 2 "
        "on the CPU provider (larger batches are no faster there, and each extra picture holds ~19 MB "
        "of activations at 640), 8 otherwise",
    )
    io_binding: bool = Field(
        False, description="run through an IO binding with the output left where the session put it"
    )
    optimized_model_cache: Path | None = Field(
        None, description="directory where onnxruntime's optimized graph is cached between runs"
    )
    compiled_model_cache: Path | None = Field(
        None,
        description="directory of OpenVINO's compiled-model cache (CACHE_DIR); None: 'openvino' "
        "beside the model cache ($KHUPHO_CACHE or ~/.cache/khupho)",
    )

    @field_validator("providers")
    @classmethod
    def _non_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("give at least one provider, or leave it unset to pick automatically")
        return v
