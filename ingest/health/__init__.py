"""Camera health: detect a frozen, blocked, blurred or moved picture from the decoded frames.

``CameraHealthMonitor(camera, config, fps_hint).update(image, pts)`` returns the
``HealthChange`` starts and clears; the service turns them into camera events.
"""

from ingest.health.conditions import HealthChange, HealthCondition, HealthMeasures
from ingest.health.config import HealthConfig
from ingest.health.monitor import CameraHealthMonitor

__all__ = ["CameraHealthMonitor", "HealthChange", "HealthCondition", "HealthConfig", "HealthMeasures"]
