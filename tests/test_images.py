"""Gaussian images (diffmath.images): every formula against the dense GaussianMixture on the same law,
the Fourier and polyphase representations against each other, and sampling by Monte Carlo."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffmath import resolution as res
from diffmath import samplers
from diffmath import strategies as dst
from diffmath.denoisers import edm_denoiser
from diffmath.images import GaussianImage, ImageMixture, power_law_spectrum
from diffmath.mixture import GaussianMixture

EXACT = 1e-11  # float64 FFTs against dense eigendecompositions, d <= 128


def gen(seed, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


def dense(law: GaussianImage) -> GaussianMixture:
    """The same law as a one-component dense mixture (channels independent: block-diagonal covariance)."""
    C = law.shape[0]
    cov = torch.block_diag(*[law.covariance_dense()] * C)
    return GaussianMixture([1.0], law.mean.reshape(1, -1), cov[None])


@given(law=dst.gaussian_images(pinched=True), seed=st.integers(0, 2**16), level=dst.noise_levels(log10_sigma=(-1.0, 1.0)))
def test_law_matches_dense_mixture_property(law, seed, level):
    a, s = level
    gm = dense(law)
    x = law.sample(3, generator=gen(seed))
    flat = x.reshape(3, -1)
    scale = 1 + gm.score_at(flat, a, s).abs().max().item()
    assert (law.score_at(x, a, s).reshape(3, -1) - gm.score_at(flat, a, s)).abs().max().item() <= EXACT * scale
    assert torch.allclose(law.log_prob_at(x, a, s), gm.diffuse(a, s).log_prob(flat), rtol=1e-11, atol=1e-9)
    assert torch.allclose(law.denoise(x, a, s).reshape(3, -1), gm.denoise(flat, a, s), rtol=1e-10, atol=1e-10)


def test_covariance_is_the_spectrum():
    """The dense covariance of a stationary law is circulant with eigenvalues the spectrum."""
    law = GaussianImage.power_law(8, 6, 2.5, variance=1.7)
    C = law.covariance_dense()
    assert torch.allclose(C.diagonal(), torch.full((48,), 1.7, dtype=torch.float64), rtol=1e-13)
    ev = torch.linalg.eigvalsh(C)
    assert torch.allclose(ev.sort().values, law.eigenvalues.reshape(-1).sort().values, rtol=1e-12, atol=1e-13)
    shift = torch.roll(torch.arange(48).reshape(8, 6), shifts=(1, 2), dims=(0, 1)).reshape(-1)
    assert torch.allclose(C[shift][:, shift], C, rtol=0, atol=1e-14)  # stationary: shift-invariant


@given(law=dst.gaussian_images(sizes=dst.image_sizes(factors=(2, 3))), seed=st.integers(0, 2**16))
def test_polyphase_representation_is_the_same_law_property(law, seed):
    H, W = law.shape[-2:]
    s = 2 if H % 2 == 0 and W % 2 == 0 else 3
    if H % s or W % s:
        return
    pp = law.to_polyphase(s)
    # backward-stable rounding is relative to the covariance's norm, not to each entry: the small
    # eigenvalues of a law whose largest is ~400 carry errors of a few eps * 400 (measured worst over
    # 300 draws: 5, 12 and 5 eps * scale for the three lines below; the bound is 64 eps * scale)
    tol = 64 * torch.finfo(torch.float64).eps
    lam_max = law.eigenvalues.max()
    assert (pp.covariance_dense() - law.covariance_dense()).abs().max() <= tol * lam_max
    assert (pp.power_spectrum() - law.eigenvalues).abs().max() <= tol * lam_max
    x = law.sample(2, generator=gen(seed))
    ref = law.denoise(x, 0.7, 0.5)
    assert (pp.denoise(x, 0.7, 0.5) - ref).abs().max() <= tol * (ref.abs().max() + x.abs().max())


@given(law=dst.gaussian_images(pinched=True))
def test_pooled_law_is_dense_pooling_property(law):
    H, W = law.shape[-2:]
    s = law.basis.s if law.basis.s > 1 else (2 if H % 2 == 0 and W % 2 == 0 else 1)
    D = res.pool_matrix(H, W, s)
    low = law.pool(s)
    assert torch.allclose(low.covariance_dense(), D @ law.covariance_dense() @ D.T, rtol=0, atol=1e-13)
    assert torch.allclose(low.mean, res.pool(law.mean, s), rtol=0, atol=1e-15)


@given(law=dst.gaussian_images(sizes=dst.image_sizes(factors=(2,))), c=st.floats(0.0, 1.0))
def test_pinched_law_property(law, c):
    H, W = law.shape[-2:]
    P = res.upsample_matrix(H // 2, W // 2, 2) @ res.pool_matrix(H, W, 2)
    Q = torch.eye(H * W, dtype=torch.float64) - P
    C = law.covariance_dense()
    Cc = law.pinched(2, c).covariance_dense()
    assert torch.allclose(P @ Cc @ Q, c * (P @ C @ Q), rtol=0, atol=1e-13)
    assert torch.allclose(Cc, P @ C @ P + Q @ C @ Q + c * (P @ C @ Q + Q @ C @ P), rtol=0, atol=1e-13)


def test_sampling_matches_covariance_by_monte_carlo():
    """Sample covariance entries within 5 standard errors (estimated from the same samples)."""
    law = GaussianImage.power_law(6, 6, 2.0, mean=0.3).pinched(2, 0.3)
    x = law.sample(40_000, generator=gen(3)).reshape(40_000, -1)
    C = law.covariance_dense()
    xc = x - law.mean.reshape(-1)
    prods = xc[:, :, None] * xc[:, None, :]
    se = prods.std(0) / math.sqrt(len(x))
    z = ((prods.mean(0) - C) / se).abs().max().item()
    assert z < 5.0  # the largest of 1296 |z|-scores: about 4 when the law is right
    zm = ((x.mean(0) - law.mean.reshape(-1)) / (x.std(0) / math.sqrt(len(x)))).abs().max().item()
    assert zm < 5.0


@given(mix=dst.image_mixtures(), seed=st.integers(0, 2**16), level=dst.noise_levels(log10_sigma=(-1.0, 1.0)))
def test_image_mixture_matches_dense_mixture_property(mix, seed, level):
    a, s = level
    covs = torch.stack([c.covariance_dense() for c in mix.components])
    gm = GaussianMixture(mix.weights, torch.stack([c.mean.reshape(-1) for c in mix.components]), covs)
    x = mix.sample(3, generator=gen(seed))
    flat = x.reshape(3, -1)
    assert torch.allclose(mix.denoise(x, a, s).reshape(3, -1), gm.denoise(flat, a, s), rtol=1e-9, atol=1e-9)
    assert torch.allclose(mix.score_at(x, a, s).reshape(3, -1), gm.score_at(flat, a, s), rtol=1e-9, atol=1e-9)
    assert torch.allclose(mix.log_prob(x), gm.log_prob(flat), rtol=1e-11, atol=1e-9)
    low = mix.pool(2) if all(n % 2 == 0 for n in mix.shape[-2:]) else None
    if low is not None:
        assert torch.allclose(low.weights, mix.weights)


def test_per_image_levels_and_samplers_run_on_images(device):
    law = GaussianImage.power_law(8, 8, 2.0, mean=0.2, channels=3).to(device)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64, device=device, generator=gen(5, device))
    sig = torch.tensor([0.1, 0.5, 1.0, 5.0], dtype=torch.float64, device=device)
    per = law.denoise(x, 1.0, sig)
    for i in range(4):
        assert torch.allclose(per[i], law.denoise(x[i : i + 1], 1.0, sig[i].item())[0], rtol=1e-13, atol=1e-13)
    D = edm_denoiser(law)
    grid = torch.tensor([80.0, 10.0, 1.0, 0.1, 0.0], dtype=torch.float64)
    out = samplers.sample_heun(D, 80 * x, grid)
    assert out.shape == x.shape and torch.isfinite(out).all() and D.nfe == 7


def test_float32_laws_compute_in_float32():
    S = power_law_spectrum(8, 8, 2.0).to(torch.float32)
    law = GaussianImage.stationary(S)
    x = law.sample(2, generator=gen(0))
    assert x.dtype == torch.float32 and law.denoise(x, 1.0, 0.5).dtype == torch.float32
    ref = GaussianImage.stationary(S.double())
    assert torch.allclose(law.denoise(x, 1.0, 0.5).double(), ref.denoise(x.double(), 1.0, 0.5), rtol=1e-5, atol=1e-5)


def test_power_law_spectrum_reference_resolution():
    """The same continuum field at two resolutions: per-coefficient power scales with the pixel count
    at shared frequencies, and the pixel variance at the reference resolution is the one asked for."""
    S16 = power_law_spectrum(16, 16, 2.0, reference=(16, 16))
    S32 = power_law_spectrum(32, 32, 2.0, reference=(16, 16))
    assert abs(S16.mean().item() - 1.0) < 1e-12
    assert torch.allclose(S32[:8, :8], 4 * S16[:8, :8], rtol=1e-12)
    white = power_law_spectrum(4, 4, 0.0, variance=2.0)
    assert torch.allclose(white, torch.full((4, 4), 2.0, dtype=torch.float64))


def test_singular_laws():
    law = GaussianImage.power_law(4, 4, 2.0)
    M = law.blocks(2)
    ones = torch.ones(4, 4, dtype=M.dtype)
    sing = GaussianImage.from_blocks(M[..., :1, :1].real.to(M.dtype) * ones, 2, allow_singular=True)
    assert torch.isfinite(sing.denoise(torch.zeros(1, 1, 4, 4, dtype=torch.float64), 1.0, 0.5)).all()
    with pytest.raises(ValueError, match="singular"):
        sing.score(torch.zeros(1, 1, 4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="positive definite"):
        GaussianImage.from_blocks(M[..., :1, :1].real.to(M.dtype) * ones, 2)


def test_bad_input():
    with pytest.raises(ValueError, match="symmetric"):
        GaussianImage.stationary(torch.rand(4, 4, dtype=torch.float64, generator=gen(0)) + 0.1)
    with pytest.raises(ValueError, match="> 0"):
        GaussianImage.stationary(torch.zeros(4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="alpha"):
        power_law_spectrum(4, 4, -1.0)
    law = GaussianImage.power_law(4, 4, 1.0)
    with pytest.raises(ValueError, match="shape"):
        law.denoise(torch.zeros(2, 1, 4, 5), 1.0, 0.5)
    with pytest.raises(ValueError, match="batch shape"):
        law.denoise(torch.zeros(2, 1, 4, 4), 1.0, torch.ones(3))
    with pytest.raises(ValueError, match="sigma"):
        law.denoise(torch.zeros(2, 1, 4, 4), 1.0, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        law.score(torch.full((1, 1, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="c must"):
        law.pinched(2, 1.5)
    with pytest.raises(ValueError, match="Hermitian|conj"):
        GaussianImage.from_blocks(torch.randn(2, 2, 4, 4, dtype=torch.complex128, generator=gen(1)), 2)
    with pytest.raises(ValueError, match="one image shape"):
        ImageMixture([0.5, 0.5], [law, GaussianImage.power_law(8, 8, 1.0)])
    with pytest.raises(ValueError, match="sum to 1"):
        ImageMixture([0.5, 0.6], [law, law])
    with pytest.raises(ValueError, match="period"):
        GaussianImage.power_law(6, 6, 1.0).pinched(2, 0.0).pool(3)


def test_mixture_of_stationary_and_block_laws_with_per_image_levels():
    """Components in different bases (no shared transform) and one noise level per image, against dense."""
    a = GaussianImage.power_law(6, 6, 2.0, mean=0.5)
    b = GaussianImage.power_law(6, 6, 1.0, mean=-0.3).pinched(2, 0.2)
    mix = ImageMixture([0.4, 0.6], [a, b])
    gm = GaussianMixture([0.4, 0.6], torch.stack([a.mean.reshape(-1), b.mean.reshape(-1)]),
                         torch.stack([a.covariance_dense(), b.covariance_dense()]))
    x = mix.sample(4, generator=gen(12))
    sig = torch.tensor([0.2, 0.7, 1.5, 4.0], dtype=torch.float64)
    alpha = torch.tensor([1.0, 0.9, 0.5, 0.2], dtype=torch.float64)
    flat = x.reshape(4, -1)
    assert torch.allclose(mix.denoise(x, alpha, sig).reshape(4, -1), gm.denoise(flat, alpha, sig), rtol=1e-10, atol=1e-10)
    assert torch.allclose(mix.score_at(x, alpha, sig).reshape(4, -1), gm.score_at(flat, alpha, sig), rtol=1e-10, atol=1e-10)


def test_mixture_of_stationary_laws_on_a_batch_grid_with_per_image_levels():
    """Stationary components share one real FFT; with nonzero means, one level per image and a (2, 3) batch the
    denoiser and score equal the dense mixture's."""
    a = GaussianImage.power_law(6, 6, 2.0, mean=0.5)
    b = GaussianImage.power_law(6, 6, 1.0, mean=-0.8)
    mix = ImageMixture([0.3, 0.7], [a, b])
    gm = GaussianMixture([0.3, 0.7], torch.stack([a.mean.reshape(-1), b.mean.reshape(-1)]),
                         torch.stack([a.covariance_dense(), b.covariance_dense()]))
    x = mix.sample(6, generator=gen(13)).reshape(2, 3, 1, 6, 6)
    sig = torch.tensor([[0.2, 0.7, 1.5], [4.0, 0.5, 1.0]], dtype=torch.float64)
    alpha = torch.tensor([[1.0, 0.9, 0.5], [0.2, 0.8, 0.6]], dtype=torch.float64)
    flat = x.reshape(2, 3, -1)
    assert torch.allclose(mix.denoise(x, alpha, sig).reshape(2, 3, -1), gm.denoise(flat, alpha, sig), rtol=1e-10, atol=1e-10)
    assert torch.allclose(mix.score_at(x, alpha, sig).reshape(2, 3, -1), gm.score_at(flat, alpha, sig), rtol=1e-10, atol=1e-10)
    y = mix.sample(3, generator=gen(14))
    assert torch.allclose(mix.score(y).reshape(3, -1), gm.score_at(y.reshape(3, -1), 1.0, 0.0), rtol=1e-10, atol=1e-10)
