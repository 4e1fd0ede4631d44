"""Samplers (installed as ``gnnkit.samplers``): one class per file, registered by ``name``; every
sampler yields :class:`~samplers.batch.Batch` objects and draws its seeds through :mod:`samplers.loader`."""
from .base import Sampler
from .batch import Batch

__all__ = ["Sampler", "Batch"]
