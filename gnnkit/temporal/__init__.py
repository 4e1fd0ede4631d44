"""Temporal graphs: event streams, TGN memory and embeddings, and the interface a temporal model follows."""
from .interface import TemporalModule

__all__ = ["TemporalModule"]
