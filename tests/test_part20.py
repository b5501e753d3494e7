"""Chapter 20's own helpers (diffmath/claims/part20.py): the critic's test-function bases of C20.8."""

import torch

from diffmath.claims import part20


def _autograd(f, pts):
    pts = pts.clone().requires_grad_(True)
    return torch.autograd.grad(f(pts).sum(), pts)[0]


def test_test_function_gradients_match_autograd():
    g = torch.Generator().manual_seed(208)
    pts = torch.randn(50, 2, generator=g, dtype=torch.float64)
    deg, r, centre = 3, 0.7, (0.3, -0.2)
    mono = part20._monomial_gradients(pts, deg)
    bump = part20._bump_gradients(pts, deg, r, centre)
    pairs = [(i, j) for i in range(deg + 1) for j in range(deg + 1 - i)]
    assert mono.shape == (50, 2, len(pairs) - 1) and bump.shape == (50, 2, len(pairs))
    for k, (i, j) in enumerate(p for p in pairs if p != (0, 0)):
        want = _autograd(lambda p, i=i, j=j: p[:, 0] ** i * p[:, 1] ** j, pts)
        assert torch.allclose(mono[..., k], want, rtol=1e-12, atol=1e-12), (i, j)
    for k, (i, j) in enumerate(pairs):

        def f(p, i=i, j=j):
            x, y = p[:, 0] - centre[0], p[:, 1] - centre[1]
            return x**i * y**j * torch.exp(-(x**2 + y**2) / (2 * r * r))

        assert torch.allclose(bump[..., k], _autograd(f, pts), rtol=1e-12, atol=1e-12), (i, j)
