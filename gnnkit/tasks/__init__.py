"""Tasks: ``node`` (node classification) and the ones registered beside it."""
from .base import Task

__all__ = ["Task"]
