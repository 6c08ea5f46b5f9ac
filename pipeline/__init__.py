"""The pipeline: the stages composed into one per-frame step, and the loops that drive it.

``FrameStep`` (frame_step.py) is the hot path: motion gate → detector →
health → tracker → rules. ``CameraWorker`` drives it for a live camera,
``analyze_video`` for a recorded file; ``EventSink`` takes the results to
storage and the live bus.
"""

from pipeline.analyze import AnalyzeSummary, analyze_video
from pipeline.camera_worker import CameraWorker
from pipeline.config import CameraConfig, ReplayConfig
from pipeline.frame_step import FrameStep, StepResult
from pipeline.observer import PipelineObserver
from pipeline.sink import EventSink

__all__ = [
    "AnalyzeSummary",
    "CameraConfig",
    "CameraWorker",
    "EventSink",
    "FrameStep",
    "PipelineObserver",
    "ReplayConfig",
    "StepResult",
    "analyze_video",
]
