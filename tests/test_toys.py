"""Toy problems: valid, reproducible, on the requested device and dtype."""

import pytest
import torch

from diffmath.toys import COV_TYPES, random_mixture, random_spd


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_random_mixture(cov_type, device):
    a = random_mixture(3, 4, cov_type=cov_type, seed=7, device=device)
    b = random_mixture(3, 4, cov_type=cov_type, seed=7, device=device)
    assert a.cov_type == cov_type and a.device.type == device.type
    assert torch.equal(a.means, b.means) and torch.equal(a.eigenvalues, b.eigenvalues)
    assert abs(a.weights.sum().item() - 1) < 1e-12


def test_random_spd_is_spd():
    m = random_spd(6, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(m, m.T) and torch.linalg.eigvalsh(m).min() >= 0.2 - 1e-12


def test_float32_toy():
    assert random_mixture(2, 3, dtype=torch.float32).dtype == torch.float32


def test_bad_cov_type():
    with pytest.raises(ValueError, match="cov_type"):
        random_mixture(2, 2, cov_type="banded")
