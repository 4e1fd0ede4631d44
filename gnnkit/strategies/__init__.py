"""Strategies: ``backprop`` and the ones registered beside it."""
from .base import Strategy

__all__ = ["Strategy"]
