"""diffmath.output_law: W2 against an independent dense computation (scipy sqrtm), the radial profile,
and the impulse-response law of an affine map."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from diffmath import output_law as ol
from diffmath import resolution as res
from diffmath.images import GaussianImage


def dense_w2(p, q):
    A, B = p.covariance_dense().numpy(), q.covariance_dense().numpy()
    rA = scipy.linalg.sqrtm(A).real
    cross = scipy.linalg.sqrtm(rA @ B @ rA).real
    C = p.shape[0]
    return math.sqrt(((p.mean - q.mean) ** 2).sum().item() + C * float(np.trace(A + B - 2 * cross)))


def test_w2_matches_dense():
    p = GaussianImage.power_law(6, 6, 2.0, mean=0.2)
    q = GaussianImage.power_law(6, 6, 1.0, mean=-0.1).pinched(2, 0.3)
    assert abs(ol.w2(p, q) - dense_w2(p, q)) < 1e-9
    assert abs(ol.w2(p, p)) < 1e-6
    r = GaussianImage.power_law(6, 6, 3.0, variance=0.5)
    assert abs(ol.w2(p, r) - dense_w2(p, r)) < 1e-9  # both stationary: s = 1
    assert ol.w2_per_pixel(p, r) == pytest.approx(ol.w2(p, r) / 6)


def test_affine_output_law_of_a_known_map():
    """For the affine map y = 2 P x + 0.5 (I - P) x + 1, the law's covariance is A Sigma A^T exactly."""
    law = GaussianImage.power_law(8, 8, 2.0, mean=0.3)
    run = lambda x: 2 * res.project(x, 2) + 0.5 * (x - res.project(x, 2)) + 1.0  # noqa: E731
    out = ol.affine_output_law(run, law, 2)
    P = res.upsample_matrix(4, 4, 2) @ res.pool_matrix(8, 8, 2)
    A = 2 * P + 0.5 * (torch.eye(64, dtype=torch.float64) - P)
    assert torch.allclose(out.covariance_dense(), A @ law.covariance_dense() @ A.T, rtol=0, atol=1e-12)
    assert torch.allclose(out.mean, run(law.mean[None])[0], atol=1e-14)


def test_radial_profile_and_log_spectrum_error():
    P = torch.ones(8, 8, dtype=torch.float64)
    r, prof = ol.radial_profile(P)
    assert torch.allclose(prof, torch.ones_like(prof)) and r[0] == 0
    p = GaussianImage.stationary(P)
    q = GaussianImage.stationary(math.e * P)
    assert ol.log_spectrum_error(p, q) == pytest.approx(1.0)


def test_bad_input():
    with pytest.raises(ValueError, match="one shape"):
        ol.w2(GaussianImage.power_law(4, 4, 1.0), GaussianImage.power_law(8, 8, 1.0))
    law = GaussianImage.power_law(4, 4, 1.0)
    with pytest.raises(ValueError, match="shape"):
        ol.affine_output_law(lambda x: x[:, :, :2], law, 2)


def test_euler_sampler_law_is_the_product_of_per_mode_gains():
    """On a stationary law every Euler step acts on each Fourier mode as the number
    g_i = 1 + (sigma_(i+1) - sigma_i) sigma_i / (lambda + sigma_i^2) (the exact denoiser shrinks a mode by
    lambda / (lambda + sigma^2)); started from N(mu, lambda + sigma_0^2) the output's spectrum is
    (lambda + sigma_0^2) prod g_i^2 and its mean is mu."""
    from diffmath.schedules import LogSNRCosine

    law = GaussianImage.power_law(6, 6, 2.0, mean=0.4)
    sched = LogSNRCosine(-10.0, 10.0)
    n = 5
    out = ol.sampler_law(law, sched, "euler", n)
    sig = ol.time_grid_sigmas(sched, n).tolist()
    lam = law.eigenvalues
    spec = lam + sig[0] ** 2
    for a, b in zip(sig[:-1], sig[1:]):
        spec = spec * (1 + (b - a) * a / (lam + a * a)) ** 2
    assert torch.allclose(out.power_spectrum(), spec, rtol=1e-10, atol=1e-14)
    assert torch.allclose(out.mean, law.mean, atol=1e-12)


def test_radial_profile_bins():
    """Fewer bins than radii: the outer radii share the last bin; more bins than radii: the empty ones are dropped."""
    from diffmath.images import frequencies

    P = torch.rand(8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.5
    f1, f2 = frequencies(8, 8, dtype=torch.float64)
    radius = torch.sqrt(f1**2 + f2**2).round()
    r, prof = ol.radial_profile(P, bins=3)
    assert r.tolist() == [0.0, 1.0, 2.0]
    assert prof[2].item() == pytest.approx(P[radius >= 2].mean().item(), rel=1e-14)
    assert prof[1].item() == pytest.approx(P[radius == 1].mean().item(), rel=1e-14)
    r, prof = ol.radial_profile(P, bins=20)
    assert r.tolist() == sorted(set(radius.reshape(-1).tolist())) and torch.isfinite(prof).all()


def test_log_spectrum_error_refuses_a_zero_radial_power():
    from diffmath.images import FourierBasis

    eig = torch.ones(8, 8, dtype=torch.float64)
    eig[0, 0] = 0.0  # the DC mode alone is radius 0
    p = GaussianImage(torch.zeros(1, 8, 8, dtype=torch.float64), FourierBasis(8, 8), eig, allow_singular=True)
    q = GaussianImage.stationary(torch.ones(8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="zero at some radius"):
        ol.log_spectrum_error(p, q)
    with pytest.raises(ValueError, match="zero at some radius"):
        ol.log_spectrum_error(q, p)
