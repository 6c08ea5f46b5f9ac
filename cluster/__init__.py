"""Cluster mode: the same pipeline on a Ray cluster (``cluster:`` in the config).

Where to start reading: ``controller.py`` (placement, loss, fencing, re-homing),
then ``placement.py`` (which node runs which camera), ``leases.py`` (the epoch
that keeps a lost node's actor from writing), ``actors.py`` (a camera's pipeline
and a node's batched detector inside Ray actors), ``ray_runtime.py`` (creating
and watching them) and ``client.py`` (the controller actor, API processes, CLI).
Importing this package does not import Ray.
"""

from cluster.config import CAPACITY_RESOURCE, ClusterConfig

__all__ = ["CAPACITY_RESOURCE", "ClusterConfig"]
