"""ForwardGNN: augmented graph, no gradient across layers, variants, schedule control, caching,
subgraph batches, checkpoints; through the strategy protocol (``configure``/``step``/
``on_epoch_end``/``predict``) and through ``Trainer.fit``."""
from __future__ import annotations

import argparse

import pytest
import torch
from helpers import two_community_graph
from torch_geometric.data import Data

from gnnkit import Trainer
from gnnkit.context import RunContext
from gnnkit.errors import GnnkitError
from gnnkit.models import GCN, GraphSAGE
from gnnkit.samplers.batch import Batch
from gnnkit.sparse import Adjacency
from gnnkit.sparse.subgraph import induced_edges
from gnnkit.stores import from_data
from gnnkit.strategies.forward import ForwardLearning
from gnnkit.strategies.forward.graphs import GraphViews, LabelSetup, augment_edges
from gnnkit.strategies.forward.inputs import feature_shift, l2_normalize, row_normalize, wrong_labels
from gnnkit.strategies.forward.layers import LayerStack
from gnnkit.strategies.forward.passes import LayerPasses


def six_node_graph():
    """Path 0-1-2-3-4-5 (both directions), classes [0, 1, 2, 0, 1, 2]::

        0 — 1 — 2 — 3 — 4 — 5        train: 0, 1, 4   val: 2, 3   test: 5
    """
    a = torch.arange(5)
    ei = torch.cat([torch.stack([a, a + 1]), torch.stack([a + 1, a])], 1)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    train = torch.tensor([1, 1, 0, 0, 1, 0], dtype=torch.bool)
    val = torch.tensor([0, 0, 1, 1, 0, 0], dtype=torch.bool)
    return Data(x=torch.rand(6, 4, generator=torch.Generator().manual_seed(0)), y=y, edge_index=ei,
                train_mask=train, val_mask=val, test_mask=~(train | val), num_classes=3)


def binary_graph():
    """Two communities (helpers.two_community_graph, seed 1) with 0/1 features, like bag-of-words."""
    d = two_community_graph(seed=1)
    d.x = (d.x > 0.4).float()
    return d


def gcn(in_dim=8, layers=3, cls=GCN, seed=0):
    torch.manual_seed(seed)
    return cls(in_dim, 16, 16, num_layers=layers, dropout=0.0)


# -- the loop's side of the protocol, minimal -------------------------------------------------------
def context(data, model, seed=1, max_epochs=40, lr=0.05):
    graph, features = from_data(data)
    return RunContext(device=torch.device("cpu"), seed=seed, graph=graph, features=features, data=data,
                      adj_norm=model.adj_norm, lr=lr, weight_decay=5e-4, max_epochs=max_epochs,
                      monitor="val_accuracy", higher_is_better=True)


def full_batch(ctx):
    d = ctx.data
    return Batch(x=d.x, y=d.y, adj=ctx.graph.adjacency(ctx.adj_norm), n_id=None,
                 loss_index=d.train_mask.nonzero().view(-1), num_nodes=d.num_nodes)


def halves(ctx):
    """Two subgraph batches per epoch: the even and the odd nodes."""
    d, out = ctx.data, []
    for n_id in (torch.arange(0, d.num_nodes, 2), torch.arange(1, d.num_nodes, 2)):
        adj = Adjacency.from_edge_index(induced_edges(d.edge_index, n_id, d.num_nodes), n_id.numel(),
                                        norm=ctx.adj_norm)
        out.append(Batch(x=d.x[n_id], y=d.y[n_id], adj=adj, n_id=n_id,
                         loss_index=d.train_mask[n_id].nonzero().view(-1), num_nodes=n_id.numel()))
    return out


def accuracy_of(st, ctx, model):
    def evaluate(splits):
        pred = st.predict(ctx, model).argmax(1)
        d = ctx.data
        return {f"{s}_accuracy": float((pred == d.y)[getattr(d, f"{s}_mask")].float().mean()) for s in splits}
    return evaluate


def drive(st, model, data, epochs, batches=None, start=0, configure=True, **ctx_kw):
    """configure, then per epoch: ``step`` on every batch, ``on_epoch_end``; stops at ``Control.stop``.
    Returns ``(ctx, [(epoch, Control), ...])``."""
    ctx = context(data, model, max_epochs=ctx_kw.pop("max_epochs", epochs), **ctx_kw)
    if configure:
        st.configure(ctx, model)
    evaluate, controls = accuracy_of(st, ctx, model), []
    for epoch in range(start, epochs):
        for b in (batches or (lambda c: [full_batch(c)]))(ctx):
            st.step(ctx, model, b, None)
        c = st.on_epoch_end(ctx, model, epoch, evaluate)
        if c is not None:
            controls.append((epoch, c))
            if c.stop:
                break
    return ctx, controls


def fit(variant="sf", data=None, model=None, epochs=40, sampler=None, **kw):
    data = data if data is not None else binary_graph()
    model = model or gcn(layers=2)
    st = ForwardLearning(variant=variant, **{"patience": 25, "layer_epochs": epochs // 2, **kw})
    t = Trainer(strategy=st, sampler=sampler, max_epochs=epochs, lr=0.05, weight_decay=5e-4, seed=1,
                progress=False, device="cpu", eval_every=4)
    return t, st, t.fit(model, data)


# -- graphs and inputs ------------------------------------------------------------------------------
def test_augmented_graph_six_nodes():
    d = six_node_graph()
    aug = augment_edges(d.edge_index, 6, d.y, d.train_mask)
    extra = {tuple(e) for e in aug[:, d.edge_index.shape[1]:].t().tolist()}
    # training nodes 0 (class 0), 1 (class 1), 4 (class 1) <-> virtual nodes 6 + class
    assert extra == {(0, 6), (6, 0), (1, 7), (7, 1), (4, 7), (7, 4)}
    assert torch.equal(aug[:, :d.edge_index.shape[1]], d.edge_index)
    # the SF view of the whole graph: 9 x 9, virtual columns touch training rows only, both ways
    model = gcn(4, 2)
    vn = torch.randn(3, 4)
    view = GraphViews(context(d, model), LabelSetup("sf", 3, None, vn, None, feature_shift(d.x))).full()
    dense = view.adj(0).to_dense()
    assert dense.shape == (9, 9) and torch.equal(view.x[6:], vn)
    assert sorted(map(tuple, (dense[:6, 6:] != 0).nonzero().tolist())) == [(0, 0), (1, 1), (4, 1)]
    assert torch.equal(dense[:6, 6:] != 0, (dense[6:, :6] != 0).t())


def test_wrong_labels_and_row_normalize():
    y = torch.tensor([0, 1, 2, 3, -1])
    neg = wrong_labels(y, 4, 3, seed=1)
    assert neg.shape == (5, 3)
    assert not (neg[:4] == y[:4, None]).any()
    assert all(len(set(r)) == 3 for r in neg.tolist())
    assert torch.equal(neg, wrong_labels(y, 4, 3, seed=1))  # drawn from the seed alone
    x = torch.tensor([[1.0, 3.0], [0.0, 0.5]])
    assert torch.allclose(row_normalize(x, 0.0), torch.tensor([[0.25, 0.75], [0.0, 0.5]]))
    with pytest.raises(GnnkitError, match="negative labels"):
        wrong_labels(y, 4, 4, seed=1)


# -- no gradient crosses layers ---------------------------------------------------------------------
def _backward_counts(params):
    """Counts, per parameter, how many backward passes reached it."""
    counts = [0] * len(params)
    for i, p in enumerate(params):
        p.register_hook(lambda g, i=i: counts.__setitem__(i, counts[i] + 1))
    return counts


@pytest.mark.parametrize("variant", ["sf", "ff-la", "ff-vn", "sf-top2loss"])
def test_each_update_reaches_its_own_layer_only(variant):
    """Sequential: a step's backward reaches the layer in training only. top2loss: every layer is
    updated every step, each by exactly one backward (its own loss): none crosses into another."""
    data, model = binary_graph(), gcn()
    st = ForwardLearning(variant, patience=100, layer_epochs=2 if variant != "sf-top2loss" else 6)
    ctx, _ = drive(st, model, data, 2, max_epochs=6)  # sequential: layer 0 trained (2 epochs), layer 1 in training
    stack = LayerStack(model)
    per_layer = [stack.parameters_of(l) for l in range(3)]
    counts = [_backward_counts(ps) for ps in per_layer]
    st.step(ctx, model, full_batch(ctx), None)
    expected = [1, 1, 1] if variant == "sf-top2loss" else [0, 1, 0]
    assert [set(c) for c in counts] == [{e} for e in expected]


# -- variants, schedule and selection ---------------------------------------------------------------
@pytest.mark.parametrize("variant", ["sf", "ff-la", "ff-vn", "sf-top2loss"])
def test_variants_learn(variant):
    t, st, r = fit(variant, epochs=200)
    assert st.state_dict()["done"]
    assert r["test"] >= 0.8 and r["val"] >= 0.8, r
    # the strategy's final model is the selected one, restored and tested by the loop
    assert t.evaluate("test")["test_accuracy"] == pytest.approx(r["test"])
    assert r["best_epoch"] == r["epochs"] - 1
    assert t.predict().shape == (40, 2)


def test_schedule_ends_with_control_selecting_the_final_model():
    data, model = binary_graph(), gcn()
    st = ForwardLearning("sf", patience=100, layer_epochs=1000)
    ctx, controls = drive(st, model, data, 12)
    # 12 epochs for 3 layers: 4 each, then one Control that stops and selects the final model's figures
    assert [e for e, _ in controls] == [11] and controls[0][1].stop
    figures = controls[0][1].select
    assert set(figures) == {"train_accuracy", "val_accuracy", "test_accuracy"}
    assert figures == accuracy_of(st, ctx, model)(("train", "val", "test"))
    assert st.state_dict()["layer"] == 3 and st.on_epoch_end(ctx, model, 12, None) is None
    assert st.step(ctx, model, full_batch(ctx), None) == {"loss": 0.0}  # done: no more updates
    with pytest.raises(GnnkitError, match="max_epochs must be at least 3"):
        drive(ForwardLearning("sf"), gcn(), data, 2)


def test_layer_early_stop_restores_its_best_weights():
    """patience 1 with a check every epoch: a layer stops at its first check without improvement
    and goes back to the weights of its best check (the one before)."""
    data, model = binary_graph(), gcn(layers=2)
    st = ForwardLearning("sf", patience=1, val_every=1, layer_epochs=50)
    ctx = context(data, model, max_epochs=100)
    st.configure(ctx, model)
    evaluate, params, snaps = accuracy_of(st, ctx, model), LayerStack(model).parameters_of(0), []
    for epoch in range(50):
        st.step(ctx, model, full_batch(ctx), None)
        snaps.append([p.detach().clone() for p in params])
        st.on_epoch_end(ctx, model, epoch, evaluate)
        if st.state_dict()["layer"] == 1:
            break
    assert st.state_dict()["layer"] == 1 and len(snaps) >= 2, "layer 0 never stopped"
    assert all(torch.equal(p, s) for p, s in zip(params, snaps[-2]))
    assert not all(torch.equal(p, s) for p, s in zip(params, snaps[-1]))


def test_model_attributes_untouched():
    """The strategy never assigns to the model: every module keeps its attributes and parameters."""
    data, model = binary_graph(), gcn()
    before = {k: (dict(vars(m)), dict(m._parameters)) for k, m in model.named_modules()}
    drive(ForwardLearning("ff-la", patience=2, layer_epochs=4), model, data, 12)
    for k, m in model.named_modules():
        attrs, params = before[k]
        assert vars(m).keys() == attrs.keys() and all(vars(m)[a] is v for a, v in attrs.items()), k
        assert all(m._parameters[n] is p for n, p in params.items()), k


# -- cached aggregation -----------------------------------------------------------------------------
def _passes(variant, cls=GCN, data=None):
    """A trained 3-layer strategy's layer passes over the whole graph (and its training rows)."""
    data = data if data is not None else binary_graph()
    model = gcn(cls=cls)
    st = ForwardLearning(variant, patience=1, layer_epochs=2)
    ctx, _ = drive(st, model, data, 6)
    C = 2
    k = None if variant == "sf" else 1
    vn = torch.randn(C, data.num_features) if variant != "ff-la" else None
    neg = wrong_labels(data.y, C, k, seed=3) if k else None
    stack = LayerStack(model, label_dim=C if variant == "ff-la" else 0)
    views = GraphViews(ctx, LabelSetup(variant, C, k, vn, neg, feature_shift(data.x)))
    rows = data.train_mask.nonzero().view(-1)
    return LayerPasses(stack, views, 2.0, "auto"), views.full(), rows, data.y[rows]


@pytest.mark.parametrize("cls", [GCN, GraphSAGE])
@pytest.mark.parametrize("variant", ["sf", "ff-la", "ff-vn"])
def test_cached_aggregation_matches(cls, variant):
    passes, view, _, _ = _passes(variant, cls)
    for l in range(3):
        ins = passes.layer_inputs(view, l)
        assert passes.stack.cacheable(l)
        plain = passes.layer_outputs(view, l, ins)
        cached = passes.layer_outputs(view, l, None, passes.aggregations(view, l, ins))
        for a, b in zip(plain, cached):
            assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("variant", ["sf", "ff-la", "ff-vn"])
def test_cached_loss_on_loss_rows_matches_full_pass(variant):
    """The cached step computes only the rows the loss reads: same loss and gradients as the full pass."""
    passes, view, rows, y = _passes(variant)
    for l in range(3):
        params = passes.stack.parameters_of(l)
        ins = passes.layer_inputs(view, l)
        full = passes.local_loss(view, passes.layer_outputs(view, l, ins), rows, y)
        g_full = torch.autograd.grad(full, params)
        cut = passes.cached_loss(view, l, passes.aggregations(view, l, ins), rows, y, None)
        g_cut = torch.autograd.grad(cut, params)
        assert torch.allclose(full, cut, atol=1e-6)
        for a, b in zip(g_full, g_cut):
            assert torch.allclose(a, b, atol=1e-6)


def test_cache_on_refused_where_wrong():
    data = binary_graph()
    with pytest.raises(GnnkitError, match="top2loss"):
        drive(ForwardLearning("sf-top2loss", cache="on"), gcn(), data, 4)
    with pytest.raises(GnnkitError, match="different subgraph"):
        drive(ForwardLearning("sf", cache="on"), gcn(), data, 4, batches=halves)
    with pytest.raises(GnnkitError, match="norm='none'"):
        drive(ForwardLearning("sf"), GCN(8, 16, 16, num_layers=2, norm="batch"), data, 4)


def test_cache_off_gives_the_same_model():
    """Cached aggregation changes only the order of float operations, not what is learned."""
    runs = []
    for cache in ("auto", "off"):
        model = gcn()
        st = ForwardLearning("ff-la", patience=3, layer_epochs=8, cache=cache)
        ctx, _ = drive(st, model, binary_graph(), 24)
        runs.append((model, st.predict(ctx, model)))
    for a, b in zip(runs[0][0].parameters(), runs[1][0].parameters()):
        assert torch.allclose(a, b, atol=1e-4)
    assert torch.equal(runs[0][1].argmax(1), runs[1][1].argmax(1))


# -- prediction -------------------------------------------------------------------------------------
def test_ff_la_prediction_is_goodness_of_each_candidate_pass():
    """FF-LA's score for class c is the goodness summed over layers in a pass where the evaluated
    rows carry c (validation rows: training labels known; test rows: training and validation)."""
    data = six_node_graph()
    model = GCN(4, 8, 8, num_layers=3, dropout=0.0)
    st = ForwardLearning("ff-la", patience=1, layer_epochs=3)
    ctx, _ = drive(st, model, data, 9)
    scores = st.predict(ctx, model)
    stack, d, C = LayerStack(model, label_dim=3), data, 3
    stack.label_lin.load_state_dict(st.state_dict()["label_lin"])
    xn = row_normalize(d.x, feature_shift(d.x))
    adj = Adjacency.from_edge_index(d.edge_index, 6, norm="gcn")
    for known, evaluated in ((d.train_mask, d.val_mask), (d.train_mask | d.val_mask, d.test_mask)):
        for c in range(C):
            lab = torch.where(evaluated, torch.full_like(d.y, c), d.y)
            onehot = torch.nn.functional.one_hot(lab, C).float()
            block = torch.where((known | evaluated)[:, None], onehot, torch.full_like(onehot, 1 / C))
            z = torch.cat([xn, block], 1)
            z = z / (z.norm(dim=1, keepdim=True) + 1e-8)
            zx, zl, total = z[:, :4], z[:, 4:], 0.0
            for l in range(3):
                h = stack(l, zx, adj, zl)
                total, zx, zl = total + h.pow(2).sum(1) - 2.0, l2_normalize(h), None
            assert torch.allclose(scores[evaluated, c], total[evaluated], atol=1e-5)


# -- subgraph batches -------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["sf", "ff-la"])
def test_subgraph_batches(variant):
    data, model = binary_graph(), gcn(layers=2)
    st = ForwardLearning(variant, patience=25, layer_epochs=40)
    ctx, controls = drive(st, model, data, 80, batches=halves)
    assert controls and controls[-1][1].stop
    assert controls[-1][1].select["test_accuracy"] >= 0.75, controls


def test_subgraph_view_links_its_training_nodes_to_virtual_nodes():
    data, model = binary_graph(), gcn(layers=2)
    ctx = context(data, model)
    views = GraphViews(ctx, LabelSetup("sf", 2, None, torch.randn(2, 8), None, feature_shift(data.x)))
    batch = halves(ctx)[1]
    view = views.batch(batch)
    n = batch.n_id.numel()
    assert view.adj(0).num_rows == n + 2 and view.x.shape[0] == n + 2
    linked = (view.adj(0).to_dense()[:n, n:] != 0).any(1)
    assert torch.equal(linked, data.train_mask[batch.n_id])


def test_cluster_sampler(tmp_path):
    from gnnkit.samplers.cluster import ClusterSampler

    sampler = ClusterSampler(num_parts=4, clusters_per_batch=2, cache_dir=str(tmp_path / "metis"))
    _, st, r = fit("sf", epochs=80, sampler=sampler)
    assert st.state_dict()["done"] and r["test"] >= 0.75, r


# -- checkpoints and options ------------------------------------------------------------------------
def test_resume_from_state_dict_gives_same_model():
    data = binary_graph()
    model_a = gcn()
    st_a = ForwardLearning("ff-la", patience=3, layer_epochs=8)
    drive(st_a, model_a, data, 24)
    model_b = gcn()
    st_b = ForwardLearning("ff-la", patience=3, layer_epochs=8)
    drive(st_b, model_b, data, 10, max_epochs=24)
    saved = {"model": {k: v.clone() for k, v in model_b.state_dict().items()}, "strategy": st_b.state_dict()}
    model_c = gcn(seed=5)  # different initial weights: everything comes from the checkpoint
    st_c = ForwardLearning("ff-la", patience=3, layer_epochs=8)
    ctx = context(data, model_c, max_epochs=24)
    st_c.configure(ctx, model_c)
    model_c.load_state_dict(saved["model"])
    st_c.load_state_dict(saved["strategy"])
    drive(st_c, model_c, data, 24, start=10, configure=False)
    for a, b in zip(model_a.state_dict().values(), model_c.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(GnnkitError, match="checkpoint holds forward variant ff-la"):
        sf = ForwardLearning("sf")
        sf.configure(ctx, gcn())
        sf.load_state_dict(saved["strategy"])


def test_resume_through_the_trainer_gives_same_model(tmp_path):
    """A run stopped at epoch 9 and resumed from its last checkpoint ends with the same weights."""
    from gnnkit.callbacks import Callback

    class Stop(Exception):
        pass

    class StopAt(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 9:
                raise Stop

    class Epochs(Callback):
        def __init__(self):
            self.seen = []

        def on_epoch_start(self, trainer, epoch):
            self.seen.append(epoch)

    def run(folder, callbacks=(), ckpt=None):
        model = gcn()
        t = Trainer(strategy=ForwardLearning("ff-la", patience=3, layer_epochs=8), max_epochs=24, lr=0.01, seed=0,
                    progress=False, device="cpu", eval_every=4, callbacks=callbacks,
                    checkpoint_dir=str(tmp_path / folder))
        return t.fit(model, binary_graph(), ckpt_path=ckpt), model

    r_full, m_full = run("full")
    with pytest.raises(Stop):
        run("stopped", [StopAt()])
    epochs = Epochs()
    r_res, m_res = run("stopped", [epochs], ckpt="last")
    assert epochs.seen[0] == 9 and epochs.seen[-1] == 23  # resumed after the last finished epoch
    assert r_res["test"] == r_full["test"] and r_res["best_epoch"] == r_full["best_epoch"]
    for a, b in zip(m_full.state_dict().values(), m_res.state_dict().values()):
        assert torch.equal(a, b)


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


def test_forward_refuses_edge_weights_instead_of_ignoring_them():
    data = two_community_graph()
    data.edge_weight = torch.rand(data.edge_index.shape[1], generator=torch.Generator().manual_seed(0))
    with pytest.raises(GnnkitError, match="edge weights"):
        Trainer(strategy=ForwardLearning("sf"), max_epochs=2, progress=False, device="cpu").fit(GCN(8, 16, 2), data)
