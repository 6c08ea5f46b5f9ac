"""Which node runs which camera: a pure function of the cameras, the nodes and where cameras run now.

Rules, in order:

1. A camera stays where it runs while its node is alive and not above capacity
   (moving a camera costs its tracks and a few seconds of video).
2. Cameras without a node (new, or their node was lost) go, one by one, to the
   node with free capacity that holds the fewest cameras of the same khu phố and
   then the lowest share of its capacity, so a khu phố's cameras are spread
   over nodes (one lost node costs a neighbourhood part of its cameras, not all).
3. When nodes are unevenly loaded (a node joined), at most ``max_moves`` cameras
   move from the fullest nodes to the emptiest, only where it lowers the spread.

Cameras that fit nowhere are returned as ``unplaced``. Deterministic: the same
inputs give the same plan (ties broken by id), so every run of the controller and
the simulation benchmark agree.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CameraSpec:
    id: str
    khu_pho: str | None = None


@dataclass(frozen=True, slots=True)
class NodeSpec:
    id: str
    capacity: int  # cameras the node can analyse live


@dataclass(slots=True)
class Plan:
    assignment: dict[str, str]  # camera -> node
    unplaced: list[str] = field(default_factory=list)
    moves: list[tuple[str, str, str]] = field(default_factory=list)  # (camera, from node, to node)


def plan(
    cameras: Sequence[CameraSpec],
    nodes: Sequence[NodeSpec],
    current: Mapping[str, str],
    *,
    max_moves: int = 0,
) -> Plan:
    """Assign every camera to a node within capacity (see the module's rules)."""
    capacity = {n.id: n.capacity for n in nodes if n.capacity > 0}
    kp_of = {c.id: c.khu_pho or "" for c in cameras}
    load: Counter[str] = Counter()
    kp_load: dict[str, Counter[str]] = defaultdict(Counter)  # node -> khu phố -> cameras
    assignment: dict[str, str] = {}
    orphans: list[str] = []

    # 1. Keep what runs, up to each node's capacity (if a node shrank, its last cameras by id go).
    for cam in sorted(kp_of):
        node = current.get(cam)
        if node in capacity and load[node] < capacity[node]:
            assignment[cam] = node
            load[node] += 1
            kp_load[node][kp_of[cam]] += 1
        else:
            orphans.append(cam)

    # 2. Orphans: the khu phố's least-used node first, then the least-filled node.
    def rank(node: str, kp: str) -> tuple[int, float, str]:
        return (kp_load[node][kp], load[node] / capacity[node], node)

    unplaced: list[str] = []
    moves: list[tuple[str, str, str]] = []
    # Place the largest khu phố first: they are the hardest to spread.
    kp_size = Counter(kp_of[c] for c in orphans)
    for cam in sorted(orphans, key=lambda c: (-kp_size[kp_of[c]], kp_of[c], c)):
        free = [n for n in capacity if load[n] < capacity[n]]
        if not free:
            unplaced.append(cam)
            continue
        kp = kp_of[cam]
        node = min(free, key=lambda n: rank(n, kp))
        assignment[cam] = node
        load[node] += 1
        kp_load[node][kp] += 1
        if current.get(cam) is not None and current[cam] != node:
            moves.append((cam, current[cam], node))

    # 3. Rebalance: move from the fullest to the emptiest node while that narrows the spread.
    if max_moves > 0 and len(capacity) > 1:
        by_node: dict[str, list[str]] = defaultdict(list)
        for cam, node in assignment.items():
            by_node[node].append(cam)
        for node_cams in by_node.values():
            node_cams.sort()
        moved = 0
        while moved < max_moves:
            fill = {n: load[n] / capacity[n] for n in capacity}
            src = max(capacity, key=lambda n: (fill[n], n))
            dst_candidates = [n for n in capacity if load[n] < capacity[n] and n != src]
            if not dst_candidates or not by_node[src]:
                break
            dst = min(dst_candidates, key=lambda n: (fill[n], n))
            # Only when the move leaves the destination no fuller than the source was after it.
            if (load[dst] + 1) / capacity[dst] > (load[src] - 1) / capacity[src] + 1e-9:
                break
            # The camera whose khu phố is most crowded on the source and least on the destination.
            cam = max(
                by_node[src],
                key=lambda c: (kp_load[src][kp_of[c]] - kp_load[dst][kp_of[c]], c),
            )
            by_node[src].remove(cam)
            by_node[dst].append(cam)
            assignment[cam] = dst
            load[src] -= 1
            load[dst] += 1
            kp_load[src][kp_of[cam]] -= 1
            kp_load[dst][kp_of[cam]] += 1
            moves.append((cam, src, dst))
            moved += 1
    return Plan(assignment, unplaced, moves)


def spread(assignment: Mapping[str, str], cameras: Sequence[CameraSpec]) -> dict[str, int]:
    """For each khu phố: the most cameras any one node holds (1 = fully spread)."""
    per: dict[str, Counter[str]] = defaultdict(Counter)
    kp_of = {c.id: c.khu_pho or "" for c in cameras}
    for cam, node in assignment.items():
        per[kp_of[cam]][node] += 1
    return {kp: max(c.values()) for kp, c in per.items()}
