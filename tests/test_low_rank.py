"""Low-rank mixtures (GaussianMixture.low_rank): components on affine subspaces.

The denoiser against a transcription written here with dense matrices and torch.distributions (responsibilities
from N(alpha mu_k, alpha^2 A A^T + sigma^2 I), posterior means mu_k + alpha A A^T S^-1 (x - alpha mu_k)); Tweedie
against autograd of the diffused law's density; samples on their subspaces; the exact flow ends on the union of
subspaces; what is undefined at sigma = 0 is refused."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffmath import bench as B
from diffmath.mixture import GaussianMixture
from diffmath.toys import random_low_rank_mixture


def gen(seed):
    return torch.Generator().manual_seed(seed)


def parts(K, d, r, seed):
    g = gen(seed)
    w = torch.rand(K, generator=g, dtype=torch.float64) + 0.2
    return w / w.sum(), torch.randn(K, d, generator=g, dtype=torch.float64), torch.randn(K, d, r, generator=g, dtype=torch.float64)


def dense_denoiser(w, mu, A, x, alpha, sigma):
    """The exact denoiser written out with dense solves (an independent transcription of the formula)."""
    d = mu.shape[1]
    logs, means = [], []
    for k in range(len(w)):
        C = A[k] @ A[k].T
        S = alpha**2 * C + sigma**2 * torch.eye(d, dtype=torch.float64)
        logs.append(torch.log(w[k]) + torch.distributions.MultivariateNormal(alpha * mu[k], S).log_prob(x))
        means.append(mu[k] + (alpha * C @ torch.linalg.solve(S, (x - alpha * mu[k]).T)).T)
    r = torch.softmax(torch.stack(logs, -1), -1)
    return (r[..., None] * torch.stack(means, 1)).sum(1)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(2, 6), st.integers(1, 3), st.floats(0.2, 1.5), st.floats(0.05, 3.0), st.integers(0, 10**6))
def test_denoiser_matches_the_dense_formula_property(K, d, r, alpha, sigma, seed):
    r = min(r, d - 1)
    w, mu, A = parts(K, d, r, seed)
    gm = GaussianMixture.low_rank(w, mu, A)
    assert gm.singular
    x = 2 * torch.randn(9, d, generator=gen(seed + 1), dtype=torch.float64)
    want = dense_denoiser(w, mu, A, x, alpha, sigma)
    assert torch.allclose(gm.denoise(x, alpha, sigma), want, rtol=1e-8, atol=1e-8)


def test_tweedie_by_autograd_on_the_diffused_law():
    """The diffused law has a density for sigma > 0; its autograd score gives the denoiser by Tweedie's formula."""
    w, mu, A = parts(3, 5, 2, 11)
    gm = GaussianMixture.low_rank(w, mu, A)
    x = torch.randn(6, 5, generator=gen(12), dtype=torch.float64, requires_grad=True)
    alpha, sigma = 0.8, 0.3
    logp = gm.diffuse(alpha, sigma).log_prob(x).sum()
    (score,) = torch.autograd.grad(logp, x)
    want = (x.detach() + sigma**2 * score) / alpha
    assert torch.allclose(gm.denoise(x.detach(), alpha, sigma), want, rtol=1e-9, atol=1e-9)
    assert torch.allclose(gm.score_at(x.detach(), alpha, sigma), score, rtol=1e-9, atol=1e-9)


def test_samples_and_the_flow_end_on_the_subspaces():
    """Every sample lies on its component's affine subspace (projection residual at rounding level); the exact
    flow from noise ends on the union of the subspaces, at distance < 1e-6 from one of them."""
    gm = random_low_rank_mixture(3, 8, 2, seed=5)
    proj = []
    for k in range(3):
        U = gm.eigenvectors[k][:, gm.eigenvalues[k] > 0]
        proj.append(torch.eye(8, dtype=torch.float64) - U @ U.T)

    def distance_to_union(x):
        return torch.stack([((x - gm.means[k]) @ proj[k]).norm(dim=-1) for k in range(3)], -1).min(-1).values

    xs = gm.sample(200, generator=gen(1))
    assert distance_to_union(xs).max().item() < 1e-12
    end = B.exact_flow(gm, 30 * torch.randn(40, 8, generator=gen(2), dtype=torch.float64), 30.0, 0.0)
    assert distance_to_union(end).max().item() < 1e-6
    # and a generic point is far from the union: the check can fail
    assert distance_to_union(torch.randn(40, 8, generator=gen(3), dtype=torch.float64)).min().item() > 0.05


def test_what_sigma_zero_refuses_and_bad_input():
    gm = random_low_rank_mixture(2, 4, 1, seed=0)
    x = torch.zeros(3, 4, dtype=torch.float64)
    for call in (lambda: gm.log_prob(x), lambda: gm.score(x), lambda: gm.responsibilities(x), lambda: gm.score_at(x, 1.0, 0.0)):
        with pytest.raises(ValueError, match="low-rank"):
            call()
    assert not gm.diffuse(1.0, 0.1).singular and torch.isfinite(gm.diffuse(1.0, 0.1).log_prob(x)).all()
    w, mu, A = parts(2, 4, 2, 0)
    with pytest.raises(ValueError, match="rank r <= d"):
        GaussianMixture.low_rank(w, mu, torch.randn(2, 4, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="factor is zero"):
        GaussianMixture.low_rank(w, mu, torch.zeros(2, 4, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixture.low_rank(2 * w, mu, A)
    with pytest.raises(ValueError, match="rank must be"):
        random_low_rank_mixture(2, 3, 4)
