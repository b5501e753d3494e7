"""diffmath.snr's helpers against dense or direct computations (the chapter's claims are in tests/test_part22.py)."""

from __future__ import annotations

import pytest
import torch

from diffmath import output_law as ol
from diffmath import resolution as res
from diffmath import snr
from diffmath.images import GaussianImage
from diffmath.schedules import LogSNRCosine, ShiftedSchedule

F64 = torch.float64


@pytest.mark.parametrize("alpha, s", [(0.0, 2), (2.0, 2), (1.0, 4), (3.0, 2)])
def test_expected_pooling_gain_against_dense_matrices(alpha, s):
    law = GaussianImage.power_law(8, 8, alpha)
    C = law.covariance_dense()
    D = res.pool_matrix(8, 8, s)
    dense = s * s * (torch.trace(D @ C @ D.T) / (8 // s) ** 2) / (torch.trace(C) / 64)
    assert snr.expected_pooling_gain(law, s) == pytest.approx(dense.item(), rel=1e-12)


def test_full_loss_averages_the_two_image_axes():
    g = torch.Generator().manual_seed(0)
    eps, hat = torch.randn(2, 3, 4, 5, 6, generator=g, dtype=F64), torch.randn(2, 3, 4, 5, 6, generator=g, dtype=F64)
    got = snr.full_loss(eps, hat)
    assert got.shape == (2, 3, 4)
    assert got[1, 2, 3].item() == pytest.approx(((eps[1, 2, 3] - hat[1, 2, 3]) ** 2).sum().item() / 30, rel=1e-14)


def test_aligned_alpha_ends():
    a, b = snr.aligned_alpha(torch.tensor([0.0, 1.0], dtype=F64), 2.0)
    assert a.tolist() == [0.0, 1.0] and b.tolist() == [1.0, 0.0]


def test_shift_experiment_rows_on_a_tiny_setting():
    """Each row is sampler_law on the law at R with the cosine schedule shifted by R/base (or not), measured at R and
    after pooling by R/base."""
    cfg = {"resolutions": [4, 8], "base": 4, "samplers": ["euler"], "nfe": [3]}
    rows = snr.shift_experiment(cfg)["rows"]
    assert [(r["resolution"], r["shifted"], r["shift"]) for r in rows] == [(4, False, 1.0), (8, False, 1.0), (8, True, 2.0)]
    law = GaussianImage.power_law(8, 8, 2.0, reference=(4, 4))
    out = ol.sampler_law(law, ShiftedSchedule(LogSNRCosine(-15.0, 15.0), 2.0), "euler", 3)
    assert rows[2]["w2"] == pytest.approx(ol.w2_per_pixel(out, law), rel=1e-12)
    assert rows[2]["w2_base"] == pytest.approx(ol.w2_per_pixel(out.pool(2), law.pool(2)), rel=1e-12)
    assert rows[2]["log_spectrum_base"] == pytest.approx(ol.log_spectrum_error(out.pool(2), law.pool(2)), rel=1e-12)
    plain = ol.sampler_law(law, LogSNRCosine(-15.0, 15.0), "euler", 3)
    assert rows[1]["log_spectrum"] == pytest.approx(ol.log_spectrum_error(plain, law), rel=1e-12)
