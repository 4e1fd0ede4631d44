"""gnnkit.models.dropout: the keep rate, scaling, gradient, seeding and dtypes of the CPU dropout."""
import math

import pytest
import torch

from gnnkit.models import build_model
from gnnkit.models.dropout import bits_for, dropout, keep_probability

N = 200_003  # odd, so the last byte of random bits is partly used


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9, 0.25, 0.3])
def test_keep_rate_within_binomial_tolerance(p):
    torch.manual_seed(0)
    y = dropout(torch.ones(N), p, True)
    kept = int((y != 0).sum())
    q = 1.0 - p
    assert abs(kept - N * q) < 5 * math.sqrt(N * q * (1 - q))
    assert torch.allclose(y[y != 0], torch.full((kept,), 1.0 / q))


def test_keep_probability_exact_for_dyadic_and_close_otherwise():
    assert keep_probability(0.5) == 0.5 and bits_for(0.5) == 1
    assert keep_probability(0.75) == 0.25 and bits_for(0.75) == 2
    assert bits_for(3 / 256) == 8 and keep_probability(3 / 256) == 1 - 3 / 256
    assert bits_for(0.1) == 32 and abs(keep_probability(0.1) - 0.9) < 2 ** -32


def test_fields_are_independent_and_unbiased():
    """Each of the 8 lanes of a random byte (p=0.5) and each 2-bit field (p=0.25) keeps at 1-p."""
    torch.manual_seed(1)
    for p, lanes in ((0.5, 8), (0.25, 4)):
        y = dropout(torch.ones(lanes * 40_000), p, True).view(-1, lanes) != 0
        rate = y.float().mean(0)
        assert (rate - (1 - p)).abs().max() < 5 * math.sqrt(p * (1 - p) / 40_000)
        both = (y[:, 0] & y[:, 1]).float().mean()
        assert abs(float(both) - (1 - p) ** 2) < 0.01


def test_p0_identity_p1_zeros_eval_identity():
    x = torch.randn(50, 7)
    assert dropout(x, 0.0, True) is x
    assert dropout(x, 0.5, False) is x
    assert torch.equal(dropout(x, 1.0, True), torch.zeros_like(x))
    with pytest.raises(ValueError):
        dropout(x, 1.5, True)


@pytest.mark.parametrize("p", [0.5, 0.1, 0.75])
def test_gradient_is_mask_over_keep(p):
    torch.manual_seed(2)
    x = torch.randn(300, 33, requires_grad=True)
    y = dropout(x, p, True)
    g = torch.randn_like(y)
    y.backward(g)
    mask = (y != 0).float()
    assert torch.allclose(x.grad, g * mask / keep_probability(p), rtol=1e-6, atol=0)
    assert torch.allclose(y.detach(), x.detach() * mask / keep_probability(p), rtol=1e-6, atol=0)


@pytest.mark.parametrize("p", [0.5, 0.1])
def test_same_seed_same_mask_and_generator(p):
    x = torch.ones(1000)
    torch.manual_seed(7)
    a = dropout(x, p, True)
    torch.manual_seed(7)
    b = dropout(x, p, True)
    c = dropout(x, p, True)
    assert torch.equal(a, b) and not torch.equal(b, c)
    g = torch.Generator().manual_seed(3)
    d = dropout(x, p, True, generator=g)
    g.manual_seed(3)
    assert torch.equal(d, dropout(x, p, True, generator=g))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("p", [0.5, 0.1, 3 / 256])
def test_dtype_preserved_and_scaled_like_torch(dtype, p):
    torch.manual_seed(4)
    x = torch.randn(2000, 3).to(dtype).requires_grad_()
    y = dropout(x, p, True)
    assert y.dtype == dtype and y.shape == x.shape
    kept = y != 0
    expect = x.detach() * (1 / keep_probability(p))  # scalar product in float opmath, as torch
    assert torch.equal(y.detach()[kept], expect[kept])
    y.sum().backward()
    assert x.grad.dtype == dtype and torch.equal(x.grad != 0, kept)


def test_non_contiguous_and_empty():
    torch.manual_seed(5)
    x = torch.randn(40, 30).t()
    y = dropout(x, 0.5, True)
    assert y.shape == x.shape and torch.equal(y[y != 0], 2 * x[y != 0])
    assert dropout(torch.empty(0, 4), 0.5, True).shape == (0, 4)


def test_models_use_it_and_same_seed_same_training_output():
    model = build_model("sage", 8, 3, hidden=16, num_layers=2, dropout=0.5).train()
    x = torch.randn(20, 8)
    from gnnkit.sparse import Adjacency
    adj = Adjacency.from_edge_index(torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]), 20, norm="mean")
    torch.manual_seed(9)
    a = model(x, adj)
    torch.manual_seed(9)
    b = model(x, adj)
    assert torch.equal(a, b) and not torch.equal(a, model.eval()(x, adj))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("p", [0.5, 3 / 256, 0.1])
def test_relu_dropout_equals_dropout_of_relu_with_the_same_stream(dtype, p):
    from gnnkit.models.dropout import relu_dropout

    z = torch.randn(500, 17).to(dtype)
    z[0, :3] = 0.0
    za, zb = z.clone().requires_grad_(), z.clone().requires_grad_()
    torch.manual_seed(11)
    a = relu_dropout(za, p, True)
    after_a = torch.rand(1)
    torch.manual_seed(11)
    b = dropout(torch.relu(zb), p, True)
    assert torch.rand(1) == after_a  # the same number of draws
    assert a.dtype == dtype and torch.equal(a, b)
    g = torch.randn_like(a)
    a.backward(g)
    b.backward(g)
    assert torch.equal(za.grad, zb.grad)
    assert torch.equal(relu_dropout(z, p, False), torch.relu(z))
