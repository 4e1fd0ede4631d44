"""An encoder and its edge decoder as one model, so a learned decoder trains with the encoder.

The loop optimizes ``model.parameters()``; :class:`LinkModel` holds the encoder (any gnnkit
model: ``forward(x, adj) -> z`` ``[N, d]``, ``inference`` for whole-graph evaluation) and the
decoder (:mod:`gnnkit.link.decoders`) as submodules. ``forward``/``inference`` are the encoder's;
the ``link`` task scores edges with ``model.decoder``. ``adj_norm``/``diag_lambda`` are the
encoder's operator.
"""
from __future__ import annotations

from torch import Tensor, nn

from gnnkit.errors import GnnkitError


class LinkModel(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        if not callable(getattr(encoder, "inference", None)):
            raise GnnkitError(f"{type(encoder).__name__} cannot encode a whole graph (no inference method)")
        self.encoder, self.decoder = encoder, decoder

    @property
    def adj_norm(self) -> str:
        return self.encoder.adj_norm

    @property
    def diag_lambda(self) -> float:
        return self.encoder.diag_lambda

    def forward(self, x: Tensor, adj, **kwargs) -> Tensor:
        """``z = encoder(x, adj)`` ``[N, d]``."""
        return self.encoder(x, adj, **kwargs)

    def inference(self, *args, **kwargs) -> Tensor:
        """The encoder's whole-graph output (chunked as the encoder does it)."""
        return self.encoder.inference(*args, **kwargs)
