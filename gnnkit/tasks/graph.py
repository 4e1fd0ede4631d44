"""Graph classification (task ``graph``): it lives in :mod:`gnnkit.graphs` beside its batching and
metrics; importing it here lets ``Task.lookup("graph")`` find it (and registers the ``graph`` sampler)."""
from gnnkit.graphs.task import GraphClassification

__all__ = ["GraphClassification"]
