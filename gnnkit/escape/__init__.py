"""Escapes from plateaus: ``milp`` (GDSolver) and the ones registered beside it."""
from .base import Escape

__all__ = ["Escape"]
