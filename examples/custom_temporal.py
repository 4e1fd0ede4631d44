"""A temporal link model of one's own, trained by gnnkit's temporal-link task, then asked about links.

The model is a :class:`gnnkit.temporal.interface.TemporalModule`: it declares ``msg_dim`` and
``memory_dim`` and defines TGN's four parts; the task owns the memory state, the neighbor buffers,
the batching in time order and the evaluation protocol. Here the parts are deliberately unlike
gnnkit's TGN:

* message: ``W [s_i ‖ s_j ‖ e ‖ cos(ω Δt)]`` (linear, width ``d``);
* memory: a ``GRUCell`` over the mean of a node's pending messages (``aggregator = "mean"``);
* embedding: ``h_i = s_i + u_i`` (``u_i`` a learned static vector per node, as JODIE's, through the
  ``node_states`` hook; omitted when ``num_nodes`` is not given), then
  ``z_i = ReLU(W_s h_i + mean_j W_l [h_j ‖ e_ij ‖ cos(ω (t_last(i) − t_ij))])`` over the node's last
  links (``edge_index[0] = j -> edge_index[1] = i``), no attention;
* predictor: an MLP of ``z_src ⊙ z_dst``.

Run: ``python examples/custom_temporal.py [--events PATH] [--epochs 3]`` (without ``--events``, a
synthetic stream in which every node keeps writing to the same partner).
"""
from __future__ import annotations

import argparse

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

import gnnkit
from gnnkit import Trainer
from gnnkit.tasks.temporal_link import TemporalLinkPrediction
from gnnkit.temporal.events import load_events, make_stream
from gnnkit.temporal.interface import TemporalModule


class MeanTGN(TemporalModule):
    aggregator = "mean"

    def __init__(self, msg_dim: int, memory_dim: int = 32, time_dim: int = 8, embedding_dim: int = 32,
                 num_nodes: int | None = None):
        super().__init__()
        self.msg_dim, self.memory_dim = msg_dim, memory_dim
        self.static = nn.Embedding(num_nodes, memory_dim) if num_nodes else None
        self.omega = nn.Parameter(10.0 ** -torch.linspace(0, 6, time_dim))  # time scales 1 .. 1e6
        self.msg_fn = nn.Linear(2 * memory_dim + msg_dim + time_dim, memory_dim)
        self.gru = nn.GRUCell(memory_dim, memory_dim)
        self.self_w = nn.Linear(memory_dim, embedding_dim)
        self.link_w = nn.Linear(memory_dim + msg_dim + time_dim, embedding_dim)
        self.mlp = nn.Sequential(nn.Linear(embedding_dim, embedding_dim), nn.ReLU(), nn.Linear(embedding_dim, 1))

    def time(self, dt: Tensor) -> Tensor:
        return torch.cos(dt.float().unsqueeze(-1) * self.omega)

    def message(self, s_node: Tensor, s_other: Tensor, raw_msg: Tensor, dt: Tensor) -> Tensor:
        return self.msg_fn(torch.cat([s_node, s_other, raw_msg, self.time(dt)], -1))

    def update_memory(self, s: Tensor, m: Tensor) -> Tensor:
        return self.gru(m, s)

    def node_states(self, s: Tensor, n_id: Tensor, stream) -> Tensor:
        return s if self.static is None else s + self.static(n_id)

    def embed(self, h: Tensor, last_update: Tensor, edge_index: Tensor, t: Tensor, msg: Tensor) -> Tensor:
        j, i = edge_index
        link = self.link_w(torch.cat([h[j], msg, self.time(last_update[i] - t)], -1))
        return torch.relu(self.self_w(h) + scatter(link, i, dim=0, dim_size=h.size(0), reduce="mean"))

    def predict_link(self, z_src: Tensor, z_dst: Tensor) -> Tensor:
        return self.mlp(z_src * z_dst).view(-1)


def partner_stream(num_nodes: int = 60, num_events: int = 3000, seed: int = 0):
    """Each event ``i -> partner(i)`` from a random source at unit time steps: learnable from memory."""
    g = torch.Generator().manual_seed(seed)
    partner = torch.randperm(num_nodes, generator=g)
    src = torch.randint(num_nodes, (num_events,), generator=g)
    return make_stream(src, partner[src], torch.arange(num_events).double(), torch.zeros(num_events, 0),
                       num_nodes=num_nodes), partner


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", help="a whitespace 'src dst t' file or a JODIE CSV (default: synthetic)")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    gnnkit.seed_everything(0)  # before the model is built: the same figures every run
    if args.events:
        stream, partner = load_events(args.events), None
    else:
        stream, partner = partner_stream()
    trainer = Trainer(task=TemporalLinkPrediction(num_neighbors=5, eval_batch_size=100, metrics=["roc_auc"]),
                      sampler="temporal", max_epochs=args.epochs, lr=1e-2, seed=0, progress=False, device="cpu")
    result = trainer.fit(MeanTGN(stream.msg_dim, num_nodes=stream.num_nodes), stream)
    m = result["metrics"]
    print(f"val AP {m['val_ap']:.4f}  test AP {m['test_ap']:.4f}  inductive test AP {m['test_new_ap']:.4f}  "
          f"test ROC-AUC over all pairs {m['test_roc_auc']:.4f}")
    # score chosen links after the stream: known pairs (each source with its partner; for a file, the
    # stream's last 10 links) against the same sources with a random node
    src, dst = (torch.arange(10), partner[:10]) if partner is not None else (stream.src[-10:], stream.dst[-10:])
    others = torch.randint(stream.num_nodes, (10,), generator=torch.Generator().manual_seed(1))
    t = torch.full((20,), float(stream.t[-1]) + 1.0)
    probs = trainer.predict((torch.cat([src, src]), torch.cat([dst, others]), t))
    print(f"mean probability: known pair {probs[:10].mean():.3f}, random node {probs[10:].mean():.3f}")
    return {"metrics": m, "probs": probs}


if __name__ == "__main__":
    main()
