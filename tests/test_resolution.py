"""Resolution operators (diffmath.resolution): against dense matrices built another way, and torch's own pooling."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from diffmath import resolution as res
from diffmath import strategies as dst


def gen(seed):
    return torch.Generator().manual_seed(seed)


@given(size=dst.image_sizes(factors=(1, 2, 3, 4)))
def test_pool_matches_dense_matrix_property(size):
    """C22.1/C23.5: pool and upsample, applied to the identity basis, are the dense matrices (built from
    index arithmetic); D D^T = I/s^2 and D = U^T/s^2."""
    H, W, s = size
    eye = torch.eye(H * W, dtype=torch.float64).reshape(H * W, H, W)
    D = res.pool(eye, s).reshape(H * W, -1).T  # columns: pooled basis images
    assert torch.equal(D, res.pool_matrix(H, W, s))
    low = torch.eye((H // s) * (W // s), dtype=torch.float64).reshape(-1, H // s, W // s)
    U = res.upsample(low, s).reshape(low.shape[0], -1).T
    assert torch.equal(U, res.upsample_matrix(H // s, W // s, s))
    assert torch.allclose(D @ D.T, torch.eye(D.shape[0], dtype=torch.float64) / s**2, rtol=0, atol=1e-15)
    assert torch.allclose(D, U.T / s**2, rtol=0, atol=0)


@given(size=dst.image_sizes(factors=(2, 3)), seed=st.integers(0, 2**16))
def test_pool_equals_torch_avg_pool(size, seed):
    H, W, s = size
    x = torch.randn(2, 3, H, W, dtype=torch.float64, generator=gen(seed))
    assert torch.allclose(res.pool(x, s), F.avg_pool2d(x, s), rtol=1e-14, atol=1e-15)
    assert torch.equal(res.upsample(res.pool(x, s), s), res.project(x, s))


def test_bilinear_is_not_a_right_inverse():
    y = torch.randn(1, 1, 6, 6, dtype=torch.float64, generator=gen(1))
    back = res.pool(res.upsample_bilinear(y, 2), 2)
    assert (back - y).abs().max() > 0.05
    const = torch.full((1, 1, 6, 6), 2.5, dtype=torch.float64)
    assert torch.allclose(res.pool(res.upsample_bilinear(const, 2), 2), const)  # constants survive


@given(size=dst.image_sizes(factors=(2, 4)), seed=st.integers(0, 2**16))
def test_pooling_gain_bounds(size, seed):
    H, W, s = size
    x = torch.randn(5, H, W, dtype=torch.float64, generator=gen(seed))
    g = res.pooling_gain(x, s)
    assert ((g >= 0) & (g <= s * s * (1 + 1e-12))).all()
    block = res.project(x, s)
    assert torch.allclose(res.pooling_gain(block, s), torch.full((5,), float(s * s), dtype=torch.float64), rtol=1e-12)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_bad_factor(bad):
    with pytest.raises(ValueError, match="s"):
        res.pool(torch.zeros(4, 4), bad)


def test_bad_input():
    with pytest.raises(ValueError, match="divide"):
        res.pool(torch.zeros(5, 4), 2)
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W\)"):
        res.pool(torch.zeros(4), 2)
    with pytest.raises(ValueError, match="NaN"):
        res.pool(torch.full((2, 2), float("nan")), 2)
    with pytest.raises(ValueError, match="identically 0"):
        res.pooling_gain(torch.zeros(1, 4, 4), 2)


def test_upsample_bilinear_keeps_batch_axes():
    """A (2, 3, 4, 5) batch upsamples each 4 x 5 image alone: the same as upsampling the images one by one."""
    x = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = res.upsample_bilinear(x, 2)
    assert out.shape == (2, 3, 8, 10)
    for i in range(2):
        for j in range(3):
            assert torch.equal(out[i, j], res.upsample_bilinear(x[i, j], 2))
    # a constant image stays constant; a horizontal ramp's interior is the linear interpolation (align_corners=False)
    assert torch.allclose(res.upsample_bilinear(torch.full((4, 4), 2.5, dtype=torch.float64), 3), torch.full((12, 12), 2.5, dtype=torch.float64))
    ramp = torch.arange(4, dtype=torch.float64).expand(4, 4)
    up = res.upsample_bilinear(ramp, 2)[0]
    assert torch.allclose(up[1:-1], torch.arange(1, 7, dtype=torch.float64) / 2 - 0.25, atol=1e-14)  # output i samples input i/2 - 1/4
