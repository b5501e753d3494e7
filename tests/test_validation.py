"""diffmath._validation: the one place where inputs are converted and checked."""

import numpy as np
import pytest
import torch

from diffmath._validation import as_tensor, noise_level, points


def test_as_tensor_dtypes_and_rejections():
    assert as_tensor([1, 2], "x").dtype == torch.float64
    assert as_tensor(np.float32([1.0]), "x").dtype == torch.float32
    assert as_tensor(torch.ones(2, dtype=torch.float32), "x").dtype == torch.float32
    with pytest.raises(ValueError, match="x contains NaN"):
        as_tensor([1.0, float("nan")], "x")
    with pytest.raises(ValueError, match="y must be real"):
        as_tensor(torch.ones(2, dtype=torch.complex64), "y")
    with pytest.raises(ValueError, match="z must be numeric"):
        as_tensor("abc", "z")


def test_noise_level_and_points():
    like = torch.zeros(3, 2, dtype=torch.float64)
    assert noise_level(0.5, "sigma", like=like, batch_shape=(3,), positive=True).ndim == 0
    assert noise_level([0.1, 0.2, 0.3], "sigma", like=like, batch_shape=(3,), positive=True).shape == (3, 1)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        noise_level(0.0, "sigma", like=like, batch_shape=(3,), positive=True)
    with pytest.raises(ValueError, match="batch shape"):
        noise_level([0.1, 0.2], "alpha", like=like, batch_shape=(3,), positive=False)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        points(torch.zeros(3, 4), "x", d=2, dtype=torch.float64, device=torch.device("cpu"))


def test_spd_eigh_is_the_one_rule():
    from diffmath._validation import spd_eigh

    A = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    lam, U = spd_eigh(A, "cov")
    assert torch.allclose(lam, torch.tensor([1.0, 3.0], dtype=torch.float64))
    assert torch.allclose(U @ torch.diag(lam) @ U.T, A)
    with pytest.raises(ValueError, match=r"cov is not symmetric"):
        spd_eigh(torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=torch.float64), "cov")
    with pytest.raises(ValueError, match=r"covs\[1\] is not positive definite"):
        spd_eigh(torch.stack([A, torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))]), "covs")
    singular = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    spd_eigh(singular, "S", allow_singular=True)
    with pytest.raises(ValueError, match="S is not positive definite"):
        spd_eigh(singular, "S")
    with pytest.raises(ValueError, match="square"):
        spd_eigh(torch.zeros(2, 3), "S")


def test_every_module_uses_the_one_spd_rule():
    """The same matrix is rejected with the same words by the mixture, the Gaussian flow, the Wasserstein
    and score-matching helpers."""
    from diffmath import flows, score_matching, wasserstein
    from diffmath.mixture import GaussianMixture

    bad = torch.tensor([[1.0, 0.0], [0.0, -0.5]], dtype=torch.float64)
    calls = [
        lambda: GaussianMixture([1.0], [[0.0, 0.0]], bad[None]),
        lambda: flows.gaussian_flow(torch.zeros(2), bad, torch.zeros(1, 2), 1.0, 1.0, 1.0, 0.5),
        lambda: wasserstein.bures_w2_squared(torch.zeros(2), torch.eye(2), torch.zeros(2), bad),
        lambda: score_matching.gap_gaussian(bad, 0.5, 0.5),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="is not positive (semi)?definite"):
            call()


def test_common_dtype_device():
    from diffmath._validation import common_dtype_device

    assert common_dtype_device(np.float32([1.0]), torch.ones(1, dtype=torch.float32)) == (torch.float32, torch.device("cpu"))
    assert common_dtype_device([1.0], None)[0] == torch.float64
    with pytest.raises(ValueError, match="a and b are on different devices"):
        common_dtype_device(torch.zeros(1), torch.zeros(1, device="meta"), names="a and b")


def test_symmetry_tolerance_depends_on_the_dtype():
    from diffmath._validation import spd_eigh

    S = torch.tensor([[1.0, 0.5], [0.5 + 1e-7, 1.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="not symmetric"):
        spd_eigh(S, "S")  # 1e-7 relative asymmetry: too much for float64 (1e-10) ...
    spd_eigh(S.float(), "S")  # ... within float32's 1e-5


def test_spd_check_on_a_two_level_batch():
    from diffmath._validation import spd_eigh

    S = torch.eye(2, dtype=torch.float64).expand(2, 3, 2, 2).clone()  # batch (2, 3) of 2 x 2
    evals, _ = spd_eigh(S, "S")
    assert evals.shape == (2, 3, 2)
    S[1, 2] = torch.tensor([[1.0, 2.0], [2.0, 1.0]])  # indefinite
    with pytest.raises(ValueError, match=r"S\[5\] is not positive definite"):
        spd_eigh(S, "S")


def test_positive_definite_floor_is_relative_to_the_largest_eigenvalue():
    """diag(1e-14, 1, 1e3): the smallest eigenvalue is below 3 eps * 1e3 (numerically singular), although it is above
    3 eps times the middle one."""
    from diffmath._validation import spd_eigh

    S = torch.diag(torch.tensor([1e-14, 1.0, 1e3], dtype=torch.float64))
    with pytest.raises(ValueError, match="not positive definite"):
        spd_eigh(S, "S")
    spd_eigh(S, "S", allow_singular=True)
    spd_eigh(torch.diag(torch.tensor([1e-11, 1.0, 1e3], dtype=torch.float64)), "S")
