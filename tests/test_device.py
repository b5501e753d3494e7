"""Device selection: one helper, with an explicit override and no silent fall-back."""

import pytest
import torch

from diffmath.device import available_devices, best_device


def test_best_device_default():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert best_device().type == expected
    assert available_devices()[0].type == "cpu"


def test_override(monkeypatch):
    monkeypatch.setenv("DIFFMATH_DEVICE", "cpu")
    assert best_device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the error raised where there is no GPU")
def test_cuda_requested_without_gpu(monkeypatch):
    monkeypatch.setenv("DIFFMATH_DEVICE", "cuda")
    with pytest.raises(ValueError, match="no cuda"):
        best_device()
