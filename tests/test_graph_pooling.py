"""Readouts (issue 24): each pooling equals its per-graph reduction, empty graphs pool to zero."""
from __future__ import annotations

import pytest
import torch

from gnnkit.errors import GnnkitError
from gnnkit.graphs import pool

SIZES = [3, 1, 0, 5, 2]


def _segments():
    torch.manual_seed(0)
    h = torch.randn(sum(SIZES), 4) - 1.0  # mostly negative: a max that starts at 0 would be wrong
    ptr = torch.tensor([0] + SIZES).cumsum(0)
    return h, ptr


@pytest.mark.parametrize("kind, ref", [
    ("sum", lambda s: s.sum(0)),
    ("mean", lambda s: s.mean(0)),
    ("max", lambda s: s.max(0).values),
])
def test_pool_equals_per_graph_reduction(kind, ref):
    h, ptr = _segments()
    out = pool(h, kind, ptr=ptr)
    want = torch.stack([ref(h[ptr[k]:ptr[k + 1]]) if SIZES[k] else torch.zeros(4) for k in range(len(SIZES))])
    torch.testing.assert_close(out, want)
    batch = torch.repeat_interleave(torch.arange(len(SIZES)), torch.tensor(SIZES))
    torch.testing.assert_close(pool(h, kind, batch=batch, num_graphs=len(SIZES)), want)


def test_pool_gradients():
    h, ptr = _segments()
    h.requires_grad_(True)
    pool(h, "mean", ptr=ptr).sum().backward()
    want = torch.repeat_interleave(1.0 / torch.tensor([s for s in SIZES if s], dtype=torch.float),
                                   torch.tensor([s for s in SIZES if s]))
    torch.testing.assert_close(h.grad[:, 0], want)
    h.grad = None
    pool(h, "max", ptr=ptr).sum().backward()
    assert h.grad.sum().item() == pytest.approx(4 * sum(1 for s in SIZES if s))  # one arg-max per graph and column


def test_pool_rejects_bad_input():
    h, ptr = _segments()
    with pytest.raises(GnnkitError, match="unknown pooling"):
        pool(h, "median", ptr=ptr)
    with pytest.raises(GnnkitError, match="cover"):
        pool(h[:-1], "sum", ptr=ptr)
    with pytest.raises(GnnkitError, match="sorted"):
        pool(h[:3], "sum", batch=torch.tensor([1, 0, 1]))
