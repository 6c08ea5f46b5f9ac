"""Event rules: each turns a camera's tracked objects into event transitions."""

from __future__ import annotations

from datetime import tzinfo

from events.config import (
    CrowdingConfig,
    LineCrossingConfig,
    LoiteringConfig,
    RuleConfig,
    ZoneIntrusionConfig,
)
from events.rules.base import FrameContext, Rule, RuleOutput, SnapshotCandidate
from events.rules.crowding import CrowdingRule
from events.rules.line_crossing import LineCrossingRule
from events.rules.loitering import LoiteringRule
from events.rules.zone_intrusion import ZoneIntrusionRule

_RULES: dict[type, type[Rule]] = {
    LineCrossingConfig: LineCrossingRule,
    ZoneIntrusionConfig: ZoneIntrusionRule,
    LoiteringConfig: LoiteringRule,
    CrowdingConfig: CrowdingRule,
}


def build_rule(config: RuleConfig, camera: str, tz: tzinfo) -> Rule:
    """The rule for one validated rule config."""
    return _RULES[type(config)](config, camera, tz)


__all__ = [
    "CrowdingRule",
    "FrameContext",
    "LineCrossingRule",
    "LoiteringRule",
    "Rule",
    "RuleOutput",
    "SnapshotCandidate",
    "ZoneIntrusionRule",
    "build_rule",
]
