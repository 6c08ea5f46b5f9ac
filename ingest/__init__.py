"""Ingest: video files and camera streams in, timestamped BGR frames at the analysis rate out."""

from ingest.config import BackoffConfig, CameraSourceConfig
from ingest.errors import SourceError
from ingest.frame import Frame
from ingest.opener import SourceInfo
from ingest.rate import RateSelector
from ingest.rtsp import RtspSource
from ingest.status import CameraState, CameraStatus
from ingest.urls import mask_url
from ingest.video_source import VideoSource

__all__ = [
    "BackoffConfig",
    "CameraSourceConfig",
    "CameraState",
    "CameraStatus",
    "Frame",
    "RateSelector",
    "RtspSource",
    "SourceError",
    "SourceInfo",
    "VideoSource",
    "mask_url",
]
