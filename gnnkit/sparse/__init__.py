"""Sparse aggregation: :class:`Adjacency` (CSR + cached transpose) and :func:`spmm`."""
from .adjacency import NORMS, Adjacency
from .spmm import SparseInputError, spmm

__all__ = ["Adjacency", "spmm", "NORMS", "SparseInputError"]
