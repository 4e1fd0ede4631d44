"""The ``transformer`` layer's hand-written attention (``_LinkAttention``) against the same math in
plain autograd (:func:`attend` on ``key = table[rows, :o] + f``, ``val = table[rows, o:] + f``):
values and gradients in float64, with and without dropout (same mask: the same RNG draws)."""
import pytest
import torch

from gnnkit.temporal.embedding import _LinkAttention, attend, valid_links


def _inputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    Q, k, n, H, c = 7, 4, 9, 2, 3
    o = H * c
    mask = torch.rand(Q, k, generator=g) < 0.6
    mask[2] = False  # a query without links: output 0, no NaN
    nbr = torch.randint(n, (Q, k), generator=g)
    flat, qi, rows = valid_links(nbr, mask)
    P = flat.numel()
    q = torch.randn(Q, o, generator=g, dtype=torch.float64, requires_grad=True)
    table = torch.randn(n, 2 * o, generator=g, dtype=torch.float64, requires_grad=True)
    f = torch.randn(P, o, generator=g, dtype=torch.float64, requires_grad=True)
    return (q, table, f), (rows, flat, qi), (Q, k, H, c, o)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_link_attention_matches_autograd_reference(dropout):
    (q, table, f), (rows, flat, qi), (Q, k, H, c, o) = _inputs(0)
    w = torch.randn(Q, o, dtype=torch.float64)
    torch.manual_seed(5)
    out = _LinkAttention.apply(q, table, f, rows, flat, qi, k, H, dropout)
    grads = torch.autograd.grad((out * w).sum(), (q, table, f))
    torch.manual_seed(5)  # the reference draws its dropout mask with the same call on the same shape
    kv = table.index_select(0, rows)
    key, val = kv[:, :o] + f, kv[:, o:] + f
    ref = attend(q.view(Q, H, c), key.view(-1, H, c), val.view(-1, H, c), flat, qi, k, dropout, dropout > 0)
    ref_grads = torch.autograd.grad((ref * w).sum(), (q, table, f))
    assert out.shape == (Q, o) and bool((out[2] == 0).all())
    assert torch.allclose(out, ref, atol=1e-12)
    for got, want in zip(grads, ref_grads):
        assert torch.allclose(got, want, atol=1e-10)


def test_link_attention_gradcheck():
    (q, table, f), (rows, flat, qi), (Q, k, H, c, o) = _inputs(1)
    assert torch.autograd.gradcheck(lambda a, b, e: _LinkAttention.apply(a, b, e, rows, flat, qi, k, H, 0.0),
                                    (q, table, f))
