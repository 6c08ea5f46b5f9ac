"""The events stage: tracking, rules and event lifecycle, traffic counts.

Where events go afterwards (stores, object storage, snapshots, the live bus)
is the package ``events.storage``; nothing here imports it.
"""

from events.camera_events import CameraEventProcessor, ProcessResult
from events.config import CameraEventsConfig, EventsConfig
from events.tracking import ObjectTracker

__all__ = ["CameraEventProcessor", "CameraEventsConfig", "EventsConfig", "ObjectTracker", "ProcessResult"]
