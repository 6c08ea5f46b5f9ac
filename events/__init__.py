"""The events stage: tracking, rules and event lifecycle, traffic counts, and their storage."""

from __future__ import annotations

import importlib
from typing import Any

# --- Tracking and rules (events/config.py, tracking.py, rules/, traffic.py, camera_events.py) ---
# Loaded on first use: importing ``events.model`` (storage, API) must not pay
# for the tracker's and supervision's imports.
_RULES_EXPORTS: dict[str, str] = {
    "CameraEventProcessor": "events.camera_events",
    "ProcessResult": "events.camera_events",
    "CameraEventsConfig": "events.config",
    "EventsConfig": "events.config",
    "RuleConfig": "events.config",
    "TrackerConfig": "events.config",
    "ObjectTracker": "events.tracking",
    "SnapshotCandidate": "events.rules.base",
    "TrafficAggregator": "events.traffic",
}
# --- end of tracking and rules ---

__all__ = [*_RULES_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _RULES_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'events' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
