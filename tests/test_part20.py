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


def test_logit_normal_density_is_the_pushforward_of_a_normal():
    """Against scipy: the normal density of logit(t) times the Jacobian 1/(t(1-t)); and it integrates to one."""
    import numpy as np
    from scipy import integrate, stats

    t = torch.linspace(0.01, 0.99, 97, dtype=torch.float64)
    for m, s in ((0.0, 1.0), (0.7, 0.5)):
        tn = t.numpy()
        want = stats.norm.pdf(np.log(tn) - np.log1p(-tn), loc=m, scale=s) / (tn * (1 - tn))
        assert np.allclose(part20.logit_normal_density(t, m, s).numpy(), want, rtol=1e-12, atol=0)
        total, _ = integrate.quad(lambda u: part20.logit_normal_density(torch.tensor(u, dtype=torch.float64), m, s).item(), 0, 1)
        assert abs(total - 1) < 1e-8
