"""The ``cluster:`` section: run the same pipeline on a Ray cluster instead of in one process.

In YAML::

    cluster:
      address: 10.0.0.5:6379      # the Ray head (its GCS port), as given to ``ray start --address``
      rehome_after_s: 5           # a node silent this long loses its cameras to the others

Capacity is declared by each node when it joins, as a Ray resource, so nodes may
differ: ``ray start --address=HEAD --resources='{"khupho_cameras": 8}'`` (8: the
live capacity ``khupho bench`` measured on that hardware). Nodes without it host
no cameras (the head, API-only hosts). Storage must be shared by every node:
PostgreSQL for events and S3 for objects (checked at start-up).
"""

from __future__ import annotations

from pydantic import Field

from ingest.config import ConfigModel

CAPACITY_RESOURCE = "khupho_cameras"
"""The Ray resource a node offers for cameras: one unit per camera it can analyse live."""


class ClusterConfig(ConfigModel):
    address: str = Field(min_length=1, description="Ray head address host:port")
    namespace: str = Field("khupho", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    # This host's address in the cluster, when Ray would guess wrong (several interfaces; loopback
    # clusters in tests use 127.0.0.2); null lets Ray choose.
    node_ip_address: str | None = None
    # A node whose detector has not answered for this long is treated as lost: its cameras are
    # fenced off (their old actors can no longer write) and started on other nodes.
    rehome_after_s: float = Field(5.0, ge=1.0, le=120.0)
    poll_interval_s: float = Field(1.0, gt=0.05, le=30.0)
    # Cameras moved per round when a node joins and the others are above their fair share; a
    # moved camera is away for its restart (a few seconds), so joins rebalance gently.
    max_moves_per_round: int = Field(2, ge=0, le=1000)
