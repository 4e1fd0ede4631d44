"""Samplers (installed as ``gnnkit.samplers``): one class per file, registered by ``name``."""
from .base import Sampler

__all__ = ["Sampler"]
