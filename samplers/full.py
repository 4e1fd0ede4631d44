"""Full batch: the whole graph is one batch, every epoch.

The batch is the graph itself with ``adj`` the whole graph's normalized adjacency (built once) and
``loss_index`` the training nodes. Under several processes each rank takes a disjoint share of the
training nodes with weights ``1 / n_train`` (the loss is a sum), so that the gradients summed over
ranks equal the single-process gradient (DistributedDataParallel averages, so the weight is
multiplied by the world size).
"""
from __future__ import annotations

import torch
from torch_geometric.data import Data

from gnnkit.errors import GnnkitError

from .base import Sampler


class FullBatchSampler(Sampler):
    name = "full"

    def setup(self, trainer, data) -> None:
        super().setup(trainer, data)
        train = data.train_mask.nonzero().view(-1)
        if train.numel() == 0:
            raise GnnkitError("the graph has no training nodes (train_mask is all False)")
        w = trainer.world_size
        if w > 1:
            mine = train[trainer.rank::w]
            weight = torch.full((mine.numel(),), float(w) / train.numel(), device=train.device)
        else:
            mine, weight = train, None
        self.batch = Data(x=data.x, y=data.y, adj=trainer.full_adjacency(data), n_id=None,
                          loss_index=mine, loss_weight=weight, num_nodes=data.num_nodes)

    def __iter__(self):
        yield self.batch

    def __len__(self) -> int:
        return 1
