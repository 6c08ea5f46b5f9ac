"""What the pipeline reports as it runs, as a typed Protocol (``api.metrics.KhuphoMetrics`` implements it).

Every method is keyword-only: the pipeline and the metrics are written and tested
apart, and a swapped pair of positional arguments would go unnoticed.
"""

from __future__ import annotations

from typing import Protocol

from events.model import EventTransition


class PipelineObserver(Protocol):
    def frame_analysed(self, *, camera: str, n: int = 1) -> None:
        """``n`` frames of ``camera`` went through the frame step."""
        ...

    def frame_dropped(self, *, camera: str, reason: str, n: int = 1) -> None:
        """``n`` frames of ``camera`` were not analysed, for ``reason`` (queue_full, analysis_error...)."""
        ...

    def set_camera_up(self, *, camera: str, up: bool) -> None:
        """Whether ``camera`` delivers frames."""
        ...

    def observe_event_latency(self, *, seconds: float) -> None:
        """From a frame leaving the decoder to the transitions it caused being handed to the sink."""
        ...

    def event_transition(self, *, transition: EventTransition) -> None:
        """A transition was stored and published."""
        ...
