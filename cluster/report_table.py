"""``khupho cluster status`` as text: one line per node, then the cameras that are not running."""

from __future__ import annotations

from typing import Any


def status_table(status: dict[str, Any]) -> str:
    lines = [
        f"{'node':<24} {'cameras':>7} {'capacity':>8} {'used':>5} {'det.queue':>9} {'images':>8}  cameras"
    ]
    for node in status["nodes"]:
        det = node.get("detector") or {}
        lines.append(
            f"{node['address']:<24} {len(node['cameras']):>7} {node['capacity']:>8} "
            f"{node['used']:>5.0%} {det.get('queue_depth', '-'):>9} {det.get('images', '-'):>8}  "
            f"{' '.join(node['cameras'])}" + ("" if node["ready"] else "  (detector starting)")
        )
    waiting = [c for c in status["cameras"] if c["state"] != "online"]
    lines.append(
        f"{len(status['cameras'])} cameras, {len(status['unplaced'])} unplaced, "
        f"{status['rehomes']} re-homed, {status['moves']} moved"
    )
    for cam in waiting:
        lines.append(
            f"  {cam['id']}: {cam['state']}" + (f" ({cam['last_error']})" if cam["last_error"] else "")
        )
    return "\n".join(lines)
