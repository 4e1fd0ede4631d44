"""Mixed precision (``Trainer(precision=...)``, :mod:`gnnkit.precision`): the sparse product under
autocast, half features gathered by every sampler, training of every sampler and strategy in each
precision, float32 checkpoints, and ``"32"`` unchanged (bit-identical to plain torch)."""
from __future__ import annotations

import warnings

import pytest
import torch

from gnnkit import precision as prec
from gnnkit.context import RunContext
from gnnkit.errors import GnnkitError
from gnnkit.models import GCN, GraphSAGE
from gnnkit.samplers.cluster import ClusterSampler
from gnnkit.samplers.mvs import MVSSampler
from gnnkit.samplers.neighbor import NeighborSampler
from gnnkit.sparse import Adjacency, SparseInputError
from gnnkit.stores import from_data
from gnnkit.strategies.forward import ForwardLearning
from gnnkit.trainer import Trainer

from helpers import two_community_graph

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
HALF = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
# relative tolerance of one product in the half type (8 and 11 significant bits)
TOL = {torch.bfloat16: 2e-2, torch.float16: 2e-3}


def _graph_adj(n=60, e=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    return Adjacency.from_edge_index(ei, n), torch.randn(n, 16, generator=g)


# -- the sparse product ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_spmm_half_matches_float32_with_gradients(dtype):
    adj, x = _graph_adj()
    x32 = x.clone().requires_grad_()
    y32 = adj @ x32
    (y32 * torch.linspace(-1, 1, 16)).sum().backward()
    xh = x.to(dtype).requires_grad_()
    with torch.autocast("cpu", dtype=dtype):
        yh = adj @ xh
    assert yh.dtype == dtype  # activations stay half
    scale = y32.abs().max()
    assert (yh.float() - y32).abs().max() <= TOL[dtype] * scale
    (yh.float() * torch.linspace(-1, 1, 16)).sum().backward()
    assert xh.grad.dtype == dtype
    assert (xh.grad.float() - x32.grad).abs().max() <= TOL[dtype] * x32.grad.abs().max()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_spmm_under_autocast_with_float32_input_and_half_adjacency(dtype):
    """Autocast would cast the sparse operand to a type MKL lacks; spmm switches it off. A half
    adjacency against float32 input computes in float32."""
    adj, x = _graph_adj()
    ref = torch.sparse.mm(adj.csr, x)
    with torch.autocast("cpu", dtype=dtype):
        out = adj @ x
    assert out.dtype == torch.float32 and torch.equal(out, ref)
    half_adj = Adjacency(adj.csr_as(dtype))
    assert (half_adj @ x - ref).abs().max() <= TOL[dtype] * ref.abs().max()
    assert adj.csr_as(dtype) is adj.csr_as(dtype)  # cast once, cached


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_spmm_half_widens_by_column_blocks_with_the_same_values(dtype, monkeypatch):
    """The CPU half path widens ``x`` by blocks of columns (no float32 copy of all of ``x``): the
    product and its gradient equal the one-block ones bit for bit."""
    import importlib

    sp = importlib.import_module("gnnkit.sparse.spmm")  # the module (gnnkit.sparse.spmm is also its function)
    adj, _ = _graph_adj(e=900)
    x = torch.randn(60, 40, generator=torch.Generator().manual_seed(1)).to(dtype)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    w = torch.linspace(-1, 1, 40)
    ya = adj @ xa
    (ya.float() * w).sum().backward()
    widened = []
    real_mm = torch.sparse.mm
    monkeypatch.setattr(sp, "WIDEN_BYTES", 1)  # 8 columns at a time
    monkeypatch.setattr(torch.sparse, "mm", lambda a, b: widened.append(tuple(b.shape)) or real_mm(a, b))
    yb = adj @ xb
    (yb.float() * w).sum().backward()
    assert widened == [(60, 8)] * 10  # 5 blocks forward, 5 backward
    assert yb.dtype == dtype and torch.equal(ya, yb) and torch.equal(xa.grad, xb.grad)


def test_spmm_half_reuses_its_widening_buffer():
    """The CPU half path widens into one reused float32 buffer per thread (no fresh tensor, and
    its page faults, per product); products of different sizes stay correct."""
    import importlib

    sp = importlib.import_module("gnnkit.sparse.spmm")
    adj, x = _graph_adj()
    xs = [x.to(torch.bfloat16), x[:, :5].to(torch.bfloat16).contiguous(), x.to(torch.bfloat16) * 2]
    outs = [adj @ v for v in xs]
    buf = sp._WORK.bufs[torch.float32]
    again = [adj @ v for v in xs]
    assert sp._WORK.bufs[torch.float32] is buf  # grown once to the largest, then reused
    for v, a, b in zip(xs, outs, again):
        ref = torch.sparse.mm(adj.csr, v.float()).to(torch.bfloat16)
        assert torch.equal(a, ref) and torch.equal(b, ref)


def test_spmm_refuses_other_mixes():
    adj, x = _graph_adj()
    with pytest.raises(SparseInputError, match="differs from x dtype"):
        adj @ x.double()


def test_spmm_float32_is_the_plain_product_bitwise():
    """``"32"`` regression: forward and gradient are exactly torch's CSR products."""
    adj, x = _graph_adj()
    x = x.requires_grad_()
    out = adj @ x
    assert torch.equal(out, torch.sparse.mm(adj.csr, x.detach()))
    g = torch.randn_like(out)
    out.backward(g)
    assert torch.equal(x.grad, torch.sparse.mm(adj.csr_t, g))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the cuSPARSE half path not exercised")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_spmm_half_on_cuda(dtype):
    adj, x = _graph_adj()
    adj, x = adj.to("cuda"), x.cuda()
    ref = (adj @ x).cpu()
    xh = x.to(dtype).requires_grad_()
    with torch.autocast("cuda", dtype=dtype):
        yh = adj @ xh
    assert yh.dtype == dtype and (yh.float().cpu() - ref).abs().max() <= TOL[dtype] * ref.abs().max()
    yh.float().sum().backward()
    assert xh.grad.dtype == dtype


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_trains_on_cuda(precision):
    t = Trainer(sampler=NeighborSampler((5, 5), batch_size=16), max_epochs=15, lr=0.02, seed=0, progress=False,
                device="cuda", precision=precision)
    res = t.fit(GraphSAGE(8, 16, 2), two_community_graph(40, 8))
    assert res["test"] >= 0.85 and t.ctx.features.dtype("x") == HALF[precision]


# -- features --------------------------------------------------------------------------------------
def test_feature_store_holds_half_and_32_is_untouched():
    data = two_community_graph(30, 8)
    _, features = from_data(data)
    assert prec.cast_features(features, "32") is features
    assert features.get("x") is data.x
    for name, dtype in HALF.items():
        half = prec.cast_features(features, name)
        assert half.dtype("x") == dtype and half.get("x").dtype == dtype
        ids = torch.tensor([5, 1, 5, 40])
        assert torch.equal(half.get("x", ids), data.x[ids].to(dtype))
        assert half.get("y") is features.get("y")  # other tensors shared, not copied
        assert prec.cast_features(half, "32").get("x").dtype == torch.float32


def test_cast_wrapper_for_other_backends():
    """A backend without its own conversion casts after the read (the default ``with_dtype``)."""
    from gnnkit.stores.features import CastFeatureStore, FeatureStore

    _, mem = from_data(two_community_graph(10, 4))
    wrapped = FeatureStore.with_dtype(mem, "x", torch.bfloat16)
    assert isinstance(wrapped, CastFeatureStore)
    assert wrapped.get("x", torch.tensor([3])).dtype == torch.bfloat16 and wrapped.shape("x") == (20, 4)
    assert wrapped.with_dtype("x", torch.float32).get("x") is mem.get("x")
    with pytest.raises(GnnkitError, match="no tensor"):
        CastFeatureStore(mem, "nope", torch.float16)


def test_half_store_on_disk_trains_and_gathers_half(tmp_path):
    """A store written with bfloat16 features: the run reads them as bfloat16 (half the bytes of a
    float32 store), and under "32" as float32."""
    from gnnkit.stores.ondisk import open_store, write_data

    data = two_community_graph(40, 8)
    write_data(data, tmp_path / "s", feature_dtype="bfloat16")
    graph, features = open_store(tmp_path / "s")
    ids = torch.tensor([7, 3, 70])
    half = prec.cast_features(features, "bf16-mixed")
    assert half.get("x", ids).dtype == torch.bfloat16
    assert torch.equal(half.get("x", ids), data.x[ids].to(torch.bfloat16))
    assert prec.cast_features(features, "32").get("x", ids).dtype == torch.float32
    torch.manual_seed(0)
    t = Trainer(sampler=NeighborSampler((5, 5), batch_size=16), max_epochs=15, lr=0.02, seed=0, progress=False,
                device="cpu", precision="bf16-mixed")
    assert t.fit(GraphSAGE(8, 16, 2), (graph, features))["test"] >= 0.85


def _first_batch(precision, sampler):
    data = two_community_graph(40, 8)
    t = Trainer(sampler=sampler, max_epochs=0, seed=0, progress=False, device="cpu", precision=precision)
    t.fit(GraphSAGE(8, 16, 2), data)
    t.sampler.set_epoch(0)
    return next(iter(t.sampler))


@pytest.mark.parametrize("make", [lambda: None, lambda: NeighborSampler((5, 5), batch_size=16),
                                  lambda: ClusterSampler(num_parts=4, clusters_per_batch=2),
                                  lambda: MVSSampler(batch_size=16)], ids=["full", "neighbor", "cluster", "mvs"])
def test_samplers_gather_half_features(make):
    b32 = _first_batch("32", make())
    for name, dtype in HALF.items():
        bh = _first_batch(name, make())
        assert bh.x.dtype == dtype
        assert bh.x.shape == b32.x.shape
        assert bh.x.nbytes * 2 == b32.x.nbytes  # the bytes gathered per batch halve
        assert torch.equal(bh.x, b32.x.to(dtype))


# -- training ---------------------------------------------------------------------------------------
SAMPLERS = {"full": lambda: None, "cluster": lambda: ClusterSampler(num_parts=4, clusters_per_batch=2),
            "neighbor": lambda: NeighborSampler((5, 5), batch_size=16), "mvs": lambda: MVSSampler(batch_size=16)}


_REF: dict = {}  # float32 results, one run per configuration


def _backprop(p, sampler):
    t = Trainer(sampler=SAMPLERS[sampler](), max_epochs=15, lr=0.02, seed=0, progress=False, device="cpu",
                precision=p)
    torch.manual_seed(0)  # the model's initial weights: the same in every precision
    return t, t.fit(GraphSAGE(8, 16, 2), two_community_graph(40, 8))


def _reference(key, run):
    if key not in _REF:
        _REF[key] = run()
    return _REF[key]


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_backprop_trains_every_sampler(precision, sampler):
    t, res = _backprop(precision, sampler)
    ref = _reference(("backprop", sampler), lambda: _backprop("32", sampler)[1])
    assert res["test"] >= 0.85 and res["test"] >= ref["test"] - 0.1, (res["test"], ref["test"])
    assert all(p.dtype == torch.float32 for p in t.raw_model.parameters())  # weights stay float32
    assert t.predict().dtype == torch.float32
    if precision == "16-mixed":
        assert isinstance(t.strategy.scaler, torch.amp.GradScaler)
    else:
        assert t.strategy.scaler is None


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
@pytest.mark.parametrize("variant,sampler", [("sf", None), ("ff-la", None), ("ff-vn", None), ("sf-top2loss", None),
                                             ("sf", "cluster")])
def test_forward_strategy_trains(precision, variant, sampler):
    def run(p):
        st = ForwardLearning(variant=variant, patience=10, layer_epochs=16)
        s = ClusterSampler(num_parts=4, clusters_per_batch=2) if sampler else None
        t = Trainer(strategy=st, sampler=s, max_epochs=32, lr=0.05, seed=0, progress=False, device="cpu",
                    precision=p, eval_every=4)
        torch.manual_seed(0)
        return t.fit(GCN(8, 16, 16, norm=None), two_community_graph(40, 8))

    res, ref = run(precision), _reference(("forward", variant, sampler), lambda: run("32"))
    assert res["test"] >= ref["test"] - 0.1 and res["test"] > 0.55, (res["test"], ref["test"])


def test_checkpoint_holds_float32_weights_and_scaler(tmp_path):
    t = Trainer(max_epochs=2, seed=0, progress=False, device="cpu", precision="16-mixed", checkpoint_dir=str(tmp_path))
    t.fit(GCN(8, 16, 2), two_community_graph(20, 8))
    state = torch.load(t.last_checkpoint, weights_only=True)
    floats = [v for v in state["model"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float32 for v in floats)
    assert "scaler" in state["components"]["strategy"]
    # resuming restores the scaler's state
    t2 = Trainer(max_epochs=3, seed=0, progress=False, device="cpu", precision="16-mixed",
                 checkpoint_dir=str(tmp_path))
    t2.fit(GCN(8, 16, 2), two_community_graph(20, 8), ckpt_path="last")
    assert t2.resumed_from is not None


def test_model_widens_half_input_outside_autocast():
    """Code that runs a model directly (the MILP escape, ``gnnkit predict``) on half features
    computes in float32."""
    data = two_community_graph(20, 8)
    adj = Adjacency.from_edge_index(data.edge_index, data.num_nodes)
    model = GCN(8, 16, 2).eval()
    ref = model.inference(data.x, adj)
    out = model.inference(data.x.to(torch.bfloat16), adj)
    assert out.dtype == torch.float32
    assert torch.equal(out, model.inference(data.x.to(torch.bfloat16).float(), adj))
    assert (out - ref).abs().max() < 0.05


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_milp_escape_runs_on_float32_copies(precision):
    """The escape runs the model outside autocast on the run's half features: widened to float32,
    its accepted head lowers the training loss as under "32"."""
    pytest.importorskip("mip")
    from test_escape import plateau_graph, plateau_model

    from gnnkit.escape.milp import MILPEscape

    esc = MILPEscape(patience=1, max_calls=1, time_limit=20, nodes=40, radius=0.1, margin=0.05)
    t = Trainer(max_epochs=3, seed=0, progress=False, lr=1e-30, weight_decay=5e-4, escape=esc, device="cpu",
                precision=precision)
    rec = t.fit(plateau_model(), plateau_graph())["escape"][0]
    assert rec["accepted"] and rec["train_loss_after"] < rec["train_loss_before"]
    assert t.raw_model.head.weight.dtype == torch.float32


# -- "32" unchanged ----------------------------------------------------------------------------------
def test_precision_32_is_plain_training_bitwise():
    """``precision="32"``: the trainer's weights after 5 full-batch epochs equal a plain torch loop
    (model forward, cross-entropy on the training rows, the run's Adam) bit for bit."""
    data = two_community_graph(30, 8)
    torch.manual_seed(3)
    model = GCN(8, 16, 2)
    ref = GCN(8, 16, 2)
    ref.load_state_dict(model.state_dict())
    Trainer(max_epochs=5, lr=0.02, seed=7, progress=False, device="cpu", precision="32").fit(model, data)
    torch.manual_seed(7)
    opt = RunContext(device=torch.device("cpu"), lr=0.02).make_optimizer(ref.parameters())  # the run's Adam
    adj = Adjacency.from_edge_index(data.edge_index, data.num_nodes)
    train = data.train_mask.nonzero().view(-1)
    for _ in range(5):
        ref.train()
        loss = torch.nn.functional.cross_entropy(ref(data.x, adj)[train], data.y[train])
        opt.zero_grad()
        loss.backward()
        opt.step()
    for (k, a), b in zip(model.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), k


def test_precision_names_checked():
    with pytest.raises(GnnkitError, match="precision must be one of"):
        prec.check("fp8")
    assert prec.feature_dtype("32") == torch.float32 and prec.make_scaler("bf16-mixed", "cpu") is None
