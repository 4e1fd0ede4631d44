"""ForwardGNN strategy: augmented graph, no gradient across layers, variants, caching, samplers."""
from __future__ import annotations

import argparse

import pytest
import torch
from helpers import two_community_graph

from gnnkit.errors import GnnkitError
from gnnkit.models import GCN, GraphSAGE
from gnnkit.strategies.forward import ForwardLearning
from gnnkit.strategies.forward_graph import augment_edges, row_normalize, wrong_labels
from gnnkit.trainer import Trainer


def six_node_graph():
    """Path 0-1-2-3-4-5 (both directions), classes [0, 1, 2, 0, 1, 2]::

        0 — 1 — 2 — 3 — 4 — 5        train: 0, 1, 4   val: 2, 3   test: 5
    """
    a = torch.arange(5)
    ei = torch.cat([torch.stack([a, a + 1]), torch.stack([a + 1, a])], 1)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    train = torch.tensor([1, 1, 0, 0, 1, 0], dtype=torch.bool)
    val = torch.tensor([0, 0, 1, 1, 0, 0], dtype=torch.bool)
    from torch_geometric.data import Data

    return Data(x=torch.rand(6, 4), y=y, edge_index=ei, train_mask=train, val_mask=val,
                test_mask=~(train | val), num_classes=3)


def binary_graph():
    """Two communities (helpers.two_community_graph, seed 1) with 0/1 features, like bag-of-words."""
    d = two_community_graph(seed=1)
    d.x = (d.x > 0.4).float()
    return d


def _fit(variant="sf", data=None, model=None, epochs=40, seed=1, sampler=None, **kw):
    data = data if data is not None else binary_graph()
    torch.manual_seed(seed)
    model = model or GCN(data.num_features, 16, 16, num_layers=2, dropout=0.0)
    st = ForwardLearning(variant=variant, **{"patience": 25, "layer_epochs": epochs // 2, **kw})
    t = Trainer(strategy=st, sampler=sampler, max_epochs=epochs, lr=0.05, weight_decay=5e-4, seed=seed,
                progress=False, device="cpu", eval_every=4)
    return t, st, t.fit(model, data)


def test_augmented_graph_six_nodes():
    d = six_node_graph()
    aug = augment_edges(d.edge_index, 6, d.y, d.train_mask)
    extra = {tuple(e) for e in aug[:, d.edge_index.shape[1]:].t().tolist()}
    # training nodes 0 (class 0), 1 (class 1), 4 (class 1) <-> virtual nodes 6 + class
    assert extra == {(0, 6), (6, 0), (1, 7), (7, 1), (4, 7), (7, 4)}
    assert torch.equal(aug[:, :d.edge_index.shape[1]], d.edge_index)
    # through the strategy: a 9 x 9 normalized adjacency; virtual columns touch training rows only
    t, st, _ = _fit("sf", data=d, epochs=4, patience=1)
    view = st._full_view(t)
    dense = view.adj(0).to_dense()
    assert dense.shape == (9, 9) and view.x.shape == (9, 4)
    touching = (dense[:6, 6:] != 0).nonzero().tolist()
    assert sorted(map(tuple, touching)) == [(0, 0), (1, 1), (4, 1)]
    assert torch.equal(dense[:6, 6:] != 0, (dense[6:, :6] != 0).t())  # both directions
    # virtual features: fixed by the seed
    _, st2, _ = _fit("sf", data=d, epochs=4, patience=1)
    assert torch.equal(st.vn, st2.vn)


def test_wrong_labels_and_row_normalize():
    y = torch.tensor([0, 1, 2, 3, -1])
    neg = wrong_labels(y, 4, 3, seed=1)
    assert neg.shape == (5, 3)
    assert not (neg[:4] == y[:4, None]).any()
    assert all(len(set(r)) == 3 for r in neg.tolist())
    x = torch.tensor([[1.0, 3.0], [0.0, 0.5]])
    assert torch.allclose(row_normalize(x, 0.0), torch.tensor([[0.25, 0.75], [0.0, 0.5]]))


def _grads(params):
    return [p.grad.clone() for p in params]


def _trained_view(variant):
    """A 3-layer strategy after a short fit, its full-graph view, the training rows and labels."""
    data = binary_graph()
    t, st, _ = _fit(variant, data=data, model=GCN(8, 16, 16, num_layers=3, dropout=0.0), epochs=6, patience=1)
    return st, st._full_view(t), data.train_mask.nonzero().view(-1), data.y[data.train_mask]


@pytest.mark.parametrize("variant", ["sf", "ff-la", "ff-vn"])
def test_no_gradient_crosses_layers(variant):
    st, view, rows, y = _trained_view(variant)
    ins1 = st.layer_inputs(view, 1)
    for z, zl in ins1:  # layer inputs carry no autograd history
        assert z.grad_fn is None and not z.requires_grad and zl is None
    p0 = st.stack.parameters_of(0)
    for p in st.stack.parameters():
        p.grad = None
    for p in st.stack.net.parameters():
        p.grad = None
    loss0 = st.local_loss(view, st.layer_outputs(view, 0, st.layer_inputs(view, 0)), rows, y)
    loss0.backward()
    alone = _grads(p0)
    for p in p0:
        p.grad = None
    loss0 = st.local_loss(view, st.layer_outputs(view, 0, st.layer_inputs(view, 0)), rows, y)
    loss1 = st.local_loss(view, st.layer_outputs(view, 1, ins1), rows, y)
    (loss0 + loss1).backward()
    for a, b in zip(alone, _grads(p0)):
        assert torch.equal(a, b)
    assert all(p.grad is not None for p in st.stack.parameters_of(1))


def test_top2loss_no_gradient_crosses_layers():
    t, st, _ = _fit("sf-top2loss", model=GCN(8, 16, 16, num_layers=3, dropout=0.0), epochs=4, patience=1)
    st.done, recorded = False, {}
    update = st._update

    def spy(l, loss):
        update(l, loss)
        recorded[l] = _grads(st.stack.parameters_of(l))

    st._update = spy
    st.step(t, t.sampler.batch)
    assert sorted(recorded) == [0, 1, 2]
    for l in range(3):  # the losses of the layers above added nothing to layer l's gradients
        for a, b in zip(recorded[l], _grads(st.stack.parameters_of(l))):
            assert torch.equal(a, b)


@pytest.mark.parametrize("variant", ["sf", "ff-la", "ff-vn", "sf-top2loss"])
def test_variants_learn(variant):
    t, st, r = _fit(variant, epochs=200)
    assert st.done and t.should_stop
    assert r["test"] >= 0.8 and r["val"] >= 0.8, r
    # the Trainer restored and tested the final combined model
    assert t.evaluate("test")["test_accuracy"] == pytest.approx(r["test"])
    assert r["best_epoch"] == r["epochs"] - 1
    for k, v in t.raw_model.state_dict().items():
        assert torch.equal(v.cpu(), t.best_state[k])
    assert t.predict().shape == (40, 2)


def test_sequential_budget_follows_max_epochs():
    t, st, r = _fit("sf", model=GCN(8, 16, 16, num_layers=4, dropout=0.0), epochs=12, patience=100,
                    layer_epochs=1000)
    assert r["epochs"] == 12 and st.done and st.layer == 4  # 3 epochs for each of the 4 layers
    with pytest.raises(GnnkitError, match="max_epochs must be at least 4"):
        _fit("sf", model=GCN(8, 16, 16, num_layers=4, dropout=0.0), epochs=3)


@pytest.mark.parametrize("cls", [GCN, GraphSAGE])
@pytest.mark.parametrize("variant", ["sf", "ff-la", "ff-vn"])
def test_cached_aggregation_matches(cls, variant):
    data = binary_graph()
    torch.manual_seed(0)
    t, st, _ = _fit(variant, data=data, model=cls(8, 16, 16, num_layers=3, dropout=0.0), epochs=6, patience=1)
    view = st._full_view(t)
    for l in range(3):
        ins = st.layer_inputs(view, l)
        assert st.stack.cacheable(l)
        plain = st.layer_outputs(view, l, ins)
        cached = st.layer_outputs(view, l, ins, st._aggregations(view, l, ins))
        for a, b in zip(plain, cached):
            assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("variant", ["sf", "ff-la", "ff-vn"])
def test_cached_loss_on_loss_rows_matches_full_pass(variant):
    """The cached step computes only the rows the loss reads: same loss and gradients as the full pass."""
    st, view, rows, y = _trained_view(variant)
    for l in range(3):
        params = st.stack.parameters_of(l)
        ins = st.layer_inputs(view, l)
        for p in params:
            p.grad = None
        full = st.local_loss(view, st.layer_outputs(view, l, ins), rows, y)
        full.backward()
        g_full = _grads(params)
        for p in params:
            p.grad = None
        cut = st._cached_loss(view, l, st._aggregations(view, l, ins), rows, y, None)
        cut.backward()
        assert torch.allclose(full, cut, atol=1e-6)
        for a, b in zip(g_full, _grads(params)):
            assert torch.allclose(a, b, atol=1e-6)


def test_ff_la_stacked_candidates_match_separate_passes():
    """FF-LA's C candidate passes run as C stacked copies of the graph; each copy must give what a
    pass of its own (one graph, the evaluated rows carrying that class) gives."""
    from gnnkit.strategies.forward_graph import View, l2_normalize, label_rows
    from gnnkit.strategies.forward_losses import goodness

    data = six_node_graph()
    torch.manual_seed(0)
    t, st, _ = _fit("ff-la", data=data, model=GCN(4, 8, 8, num_layers=3, dropout=0.0), epochs=9, patience=1)
    scores = st.predict(t, t.data)
    d = t.data
    xn = row_normalize(d.x, st.shift)
    adj = st._adj(d.edge_index, 6)
    for known, evaluated in ((d.train_mask, d.val_mask), (d.train_mask | d.val_mask, d.test_mask)):
        for c in range(3):
            lab = torch.where(evaluated, torch.full_like(d.y, c), d.y)
            view = View(6, xn, [adj], [label_rows(lab, known | evaluated, 3)])
            (z, zl), total = st._first_input(view, 0), 0.0
            for l in range(3):
                h = st.stack(l, z, adj, zl)
                total, z, zl = total + goodness(h, st.theta), l2_normalize(h), None
            assert torch.allclose(scores[evaluated, c], total[evaluated], atol=1e-5)
    # the stacked training view: copy s of layer 0 is the layer on [x ‖ ℓ_s] alone
    view = st._full_view(t)
    assert view.copies == 3 and view.stacked.num_rows == 18
    out = st.layer_outputs(view, 0, st.layer_inputs(view, 0))[0]
    labels = view.label(0).view(3, 6, 3)
    for s in range(3):
        single = View(6, xn, [adj], [labels[s]])
        z, zl = st._first_input(single, 0)
        assert torch.allclose(out[6 * s:6 * (s + 1)], st.stack(0, z, adj, zl), atol=1e-6)


def test_cache_refused_where_wrong():
    with pytest.raises(GnnkitError, match="top2loss"):
        _fit("sf-top2loss", cache="on", epochs=4)
    with pytest.raises(GnnkitError, match="different subgraph"):
        _fit("sf", cache="on", epochs=4, sampler=_subgraph_sampler())
    with pytest.raises(GnnkitError, match="norm='none'"):
        _fit("sf", model=GCN(8, 16, 16, num_layers=2, norm="batch"))


def _subgraph_sampler():
    """A stand-in subgraph sampler: the even and the odd nodes, two batches per epoch."""
    from torch_geometric.data import Data

    from gnnkit.samplers import Sampler
    from gnnkit.sparse import Adjacency
    from gnnkit.strategies.forward_graph import induced_edges

    class Halves(Sampler):
        def __iter__(self):
            d = self.data
            for n_id in (torch.arange(0, d.num_nodes, 2), torch.arange(1, d.num_nodes, 2)):
                ei = induced_edges(d.edge_index, n_id, d.num_nodes)
                adj = Adjacency.from_edge_index(ei, n_id.numel(), norm="gcn")
                train = d.train_mask[n_id]
                yield Data(x=d.x[n_id], y=d.y[n_id], adj=adj, n_id=n_id, loss_index=train.nonzero().view(-1),
                           num_nodes=n_id.numel())

        def __len__(self):
            return 2

    return Halves()


@pytest.mark.parametrize("variant", ["sf", "ff-la"])
def test_subgraph_batches(variant):
    t, st, r = _fit(variant, epochs=80, sampler=_subgraph_sampler())
    assert st.done and r["test"] >= 0.75, r


def test_cluster_sampler():
    from gnnkit.samplers.cluster import ClusterSampler

    sampler = ClusterSampler(num_parts=4, clusters_per_batch=2, cache_dir=None)
    t, st, r = _fit("sf", epochs=80, sampler=sampler)
    assert st.done and r["test"] >= 0.75, r
    batch = next(iter(sampler))
    view = st._batch_view(t, batch)
    n = batch.n_id.numel()
    assert view.adj(0).num_rows == n + 2 and view.x.shape[0] == n + 2
    linked = (view.adj(0).to_dense()[:n, n:] != 0).any(1)
    assert torch.equal(linked, t.data.train_mask[batch.n_id])


def test_resume_gives_same_model(tmp_path):
    class Stop(Exception):
        pass

    from gnnkit.callbacks import Callback

    class StopAt(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 9:
                raise Stop

    def run(callbacks=(), ckpt=None):
        data = binary_graph()
        torch.manual_seed(0)
        model = GCN(8, 16, 16, num_layers=3, dropout=0.0)
        st = ForwardLearning("ff-la", patience=3, layer_epochs=8)
        t = Trainer(strategy=st, max_epochs=24, lr=0.01, seed=0, progress=False, device="cpu", eval_every=4,
                    callbacks=callbacks, checkpoint_dir=str(tmp_path / "ck"))
        return t, t.fit(model, data, ckpt_path=ckpt)

    t_full, r_full = run()
    import shutil

    shutil.rmtree(tmp_path / "ck")
    with pytest.raises(Stop):
        run([StopAt()])
    t_res, r_res = run([Callback()], ckpt="last")
    assert r_res["test"] == r_full["test"]
    for a, b in zip(t_full.raw_model.state_dict().values(), t_res.raw_model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)


def test_command_line_options():
    p = argparse.ArgumentParser()
    ForwardLearning.add_args(p)
    args = p.parse_args(["--forward-variant", "ff-vn", "--forward-num-negs", "2", "--forward-last-layer-only"])
    st = ForwardLearning.from_args(args)
    assert (st.variant, st.schedule, st.last_layer_only) == ("ff-vn", "sequential", True)
    assert st.num_negs == 2
    st = ForwardLearning.from_args(p.parse_args(["--forward-variant", "sf-top2loss"]))
    assert (st.variant, st.schedule, st.grad_clip) == ("sf", "top2loss", 1.0)
    with pytest.raises(GnnkitError):
        ForwardLearning("ff-la", schedule="top2loss")
    with pytest.raises(GnnkitError):
        ForwardLearning("bp")
