"""Small graphs for tests, built by hand (no dataset needed)."""
from __future__ import annotations

import torch
from torch_geometric.data import Data


def two_community_graph(n_per: int = 20, num_features: int = 8, seed: int = 0) -> Data:
    """Two classes, dense inside, a few edges across; features carry a weak class signal.

    Nodes ``0..n_per-1`` are class 0, ``n_per..2*n_per-1`` class 1; masks split 40/30/30.
    """
    g = torch.Generator().manual_seed(seed)
    n = 2 * n_per
    y = torch.cat([torch.zeros(n_per), torch.ones(n_per)]).long()
    src = torch.randint(0, n, (6 * n,), generator=g)
    same = torch.rand(6 * n, generator=g) < 0.85
    other = torch.randint(0, n_per, (6 * n,), generator=g) + torch.where(y[src] == 0, 0, n_per)
    flip = torch.randint(0, n_per, (6 * n,), generator=g) + torch.where(y[src] == 0, n_per, 0)
    dst = torch.where(same, other, flip)
    keep = src != dst
    ei = torch.stack([src[keep], dst[keep]])
    ei = torch.cat([ei, ei.flip(0)], 1).unique(dim=1)
    x = torch.randn(n, num_features, generator=g) + 0.8 * y.float().unsqueeze(1)
    perm = torch.randperm(n, generator=g)
    train, val, test = (torch.zeros(n, dtype=torch.bool) for _ in range(3))
    train[perm[: int(0.4 * n)]] = True
    val[perm[int(0.4 * n): int(0.7 * n)]] = True
    test[perm[int(0.7 * n):]] = True
    return Data(x=x, y=y, edge_index=ei, train_mask=train, val_mask=val, test_mask=test, num_classes=2)
