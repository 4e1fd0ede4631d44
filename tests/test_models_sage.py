"""GraphSAGE's fused layer product and the head input's backward against the plain formulas."""
import pytest
import torch

from gnnkit.models import build_model
from gnnkit.models.sage import _MeanAndRoot
from gnnkit.precision import autocast
from gnnkit.sparse import Adjacency


def _blocks(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    n0, n1, n2 = 300, 40, 8
    e0 = torch.stack([torch.randint(0, n0, (700,), generator=g), torch.randint(0, n1, (700,), generator=g)])
    e1 = torch.stack([torch.randint(0, n1, (90,), generator=g), torch.randint(0, n2, (90,), generator=g)])
    return [Adjacency.from_edge_index(e0, n0, norm="mean", num_rows=n1, dtype=dtype),
            Adjacency.from_edge_index(e1, n1, norm="mean", num_rows=n2, dtype=dtype)]


def _reference(model, x, adjs):
    """``relu(W_l A h + b + W_r h_root)`` per layer and the head on ``[A h ‖ h_root]``, spelled out."""
    h = x
    for conv, a in zip(model.layers, adjs):
        h = torch.relu(conv.lin_l(a @ h) + conv.lin_r(h[: a.num_rows]))
    a = adjs[-1]
    return model.head(torch.cat([a @ h, h[: a.num_rows]], dim=1))


def test_sage_step_matches_the_plain_formulas_and_gradients():
    torch.manual_seed(0)
    adjs = _blocks()
    model = build_model("sage", 12, 5, hidden=16, num_layers=2, dropout=0.0)
    x = torch.randn(300, 12)
    out, ref = model(x, adjs), _reference(model, x, adjs)
    assert torch.allclose(out, ref, atol=1e-5)
    g = torch.randn_like(out)
    params = list(model.parameters())
    for a, b in zip(torch.autograd.grad(out, params, g), torch.autograd.grad(ref, params, g)):
        assert torch.allclose(a, b, atol=1e-5)


def test_mean_and_root_gradcheck():
    adj = _blocks(torch.float64)[1]
    h = torch.randn(40, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _MeanAndRoot.apply(t, adj), (h,))


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_sage_step_under_autocast_close_to_float32(precision):
    torch.manual_seed(1)
    adjs = _blocks()
    model = build_model("sage", 12, 5, hidden=16, num_layers=2, dropout=0.0)
    x = torch.randn(300, 12)
    with autocast(precision, "cpu"):
        out = model(x.to(torch.bfloat16 if precision == "bf16-mixed" else torch.float16), adjs)
    out.sum().backward()
    assert out.dtype == torch.float32
    assert torch.allclose(out, _reference(model, x, adjs), atol=0.1)
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())
