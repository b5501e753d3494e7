"""EDM denoiser, VP <-> EDM coordinates, and the DDPM epsilon-model wrapper (diffmath.denoisers)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffmath import samplers as S
from diffmath.denoisers import (
    CountingDenoiser,
    ddpm_eps_model,
    edm_denoiser,
    edm_to_vp,
    vp_to_edm,
)
from diffmath.schedules import DDPMDiscrete, VPCosine, VPLinear
from diffmath.toys import random_mixture


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_edm_denoiser_matches_mixture_and_counts():
    gm = random_mixture(4, 3, seed=0)
    D = edm_denoiser(gm)
    x = 2 * torch.randn(5, 3, generator=gen(1), dtype=torch.float64)
    sig = torch.tensor([0.1, 0.5, 1.0, 3.0, 10.0], dtype=torch.float64)
    per_point = D(x, sig)
    for i in range(5):
        assert torch.allclose(per_point[i], gm.denoise(x[i : i + 1], 1.0, sig[i].item())[0], rtol=1e-13, atol=1e-13)
    assert torch.equal(D(x, 0.5), gm.denoise(x, 1.0, 0.5))
    assert D.nfe == 2
    D.reset()
    assert D.nfe == 0
    with pytest.raises(ValueError):
        edm_denoiser("not a mixture")
    with pytest.raises(ValueError):
        CountingDenoiser(3)


@given(t=st.floats(0.01, 0.99), seed=st.integers(0, 2**16), cosine=st.booleans())
def test_vp_edm_roundtrip_property(t, seed, cosine):
    """x_EDM = x/alpha, sigma_EDM = sigma/alpha, and back (1e-12 relative: one division, one root)."""
    sch = VPCosine() if cosine else VPLinear()
    x = torch.randn(4, 2, generator=gen(seed), dtype=torch.float64)
    xe, se = vp_to_edm(sch, x, t)
    assert torch.allclose(xe * sch.alpha(t), x, rtol=1e-14, atol=0)
    assert abs(se.item() - (sch.sigma(t) / sch.alpha(t)).item()) <= 1e-14 * se.item()
    xb, tb = edm_to_vp(sch, xe, se)
    assert abs(tb.item() - t) <= 1e-10
    assert torch.allclose(xb, x, rtol=1e-12, atol=1e-14)


def test_ddpm_eps_model_is_posterior_noise():
    """eps(x_t, n) = (x_t - alpha_n D)/sigma_n, also with a (batch,) tensor of timesteps."""
    gm = random_mixture(3, 2, seed=4)
    sch = DDPMDiscrete()
    model = ddpm_eps_model(gm, sch)
    x = torch.randn(3, 2, generator=gen(5), dtype=torch.float64)
    steps = torch.tensor([10.0, 500.0, 999.0], dtype=torch.float64)
    batched = model(x, steps)
    for i, n in enumerate(steps.tolist()):
        a = sch.alphas_cumprod[int(n)].sqrt().item()
        s = (1 - sch.alphas_cumprod[int(n)]).sqrt().item()
        expected = (x[i] - a * gm.denoise(x[i : i + 1], a, s)[0]) / s
        assert torch.allclose(batched[i], expected, rtol=1e-12, atol=1e-12)
        assert torch.allclose(model(x[i : i + 1], n)[0], expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError):
        model(x, 10.5)  # DDPM steps are integers
    with pytest.raises(ValueError):
        ddpm_eps_model(gm, VPLinear())


@pytest.mark.parametrize("n_steps", (1, 5, 20))
def test_ddim_equals_euler_in_edm_coordinates(n_steps):
    """DDIM (eta = 0) on the discrete DDPM schedule = Euler on dx/dsigma in EDM coordinates,
    x_EDM = x_VP / alpha, sigma_EDM = sigma / alpha, ending at sigma = 0 (article 21 eq. 1).
    Agreement to 1e-12: the two are the same arithmetic up to float64 rounding."""
    gm = random_mixture(8, 4, seed=6)
    sch = DDPMDiscrete()
    timesteps = torch.linspace(999, 0, n_steps + 1).round().long().tolist()[:-1] if n_steps > 1 else [999]
    x_T = torch.randn(16, 4, generator=gen(7), dtype=torch.float64)
    ddim = S.sample_ddim_discrete(ddpm_eps_model(gm, sch), x_T, timesteps, sch)
    sig = torch.tensor([sch.edm_sigma(float(n)).item() for n in timesteps] + [0.0], dtype=torch.float64)
    euler = S.sample_euler(edm_denoiser(gm), x_T / sch.alpha(float(timesteps[0])), sig)
    assert (ddim - euler).abs().max().item() <= 1e-12 * (1 + euler.abs().max().item())


def test_eps_to_denoiser_inverts_exact_eps_model():
    """An exact eps-model turned into an EDM denoiser is the law's EDM denoiser (two routes)."""
    from diffmath.denoisers import eps_to_denoiser, exact_eps_model
    from diffmath.images import GaussianImage
    from diffmath.schedules import LogSNRCosine

    for law, shape in ((random_mixture(3, 2, seed=8), (4, 2)), (GaussianImage.power_law(6, 6, 2.0, mean=0.1), (4, 1, 6, 6))):
        sch = LogSNRCosine()
        D = eps_to_denoiser(exact_eps_model(law, sch), sch)
        x = torch.randn(*shape, dtype=torch.float64, generator=gen(9))
        sig = torch.tensor([0.05, 0.5, 2.0, 20.0], dtype=torch.float64)
        assert torch.allclose(D(x, sig), edm_denoiser(law)(x, sig), rtol=1e-10, atol=1e-10)
        assert D.nfe == 1
    with pytest.raises(ValueError, match="callable"):
        eps_to_denoiser(3, sch)
    with pytest.raises(ValueError, match="law must be"):
        exact_eps_model("law", sch)


def test_ddpm_eps_model_drives_ddim_on_image_laws():
    """The DDPM wrapper accepts image laws; DDIM on it equals Euler in EDM coordinates (as for mixtures)."""
    from diffmath.images import GaussianImage

    law = GaussianImage.power_law(8, 8, 2.0, mean=0.2)
    sch = DDPMDiscrete()
    timesteps = [999, 700, 400, 100]
    x_T = torch.randn(3, 1, 8, 8, generator=gen(13), dtype=torch.float64)
    ddim = S.sample_ddim_discrete(ddpm_eps_model(law, sch), x_T, timesteps, sch)
    sig = torch.tensor([sch.edm_sigma(float(n)).item() for n in timesteps] + [0.0], dtype=torch.float64)
    euler = S.sample_euler(edm_denoiser(law), x_T / sch.alpha(float(timesteps[0])), sig)
    assert (ddim - euler).abs().max().item() <= 1e-12 * (1 + euler.abs().max().item())


def test_vp_to_edm_refuses_alpha_zero():
    """Issue 11's mutation run: at alpha = 0 (rectified flow at t = 1) there is no EDM state."""
    from diffmath.denoisers import vp_to_edm
    from diffmath.schedules import RectifiedFlow

    with pytest.raises(ValueError, match="alpha"):
        vp_to_edm(RectifiedFlow(), torch.ones(2, 3, dtype=torch.float64), 1.0)
