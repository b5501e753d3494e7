r"""Independent transcriptions of the published samplers, for checks that must not share code with the library.

Each function follows its paper's own formulation (not :mod:`diffmath.samplers`' shared direction helper,
grid checks or weight tables), on one state at a time in plain loops:

* Euler / DDIM: Song et al. 2021 (ICLR), eq. (13) with eta = 0, in the noise-prediction form
  :math:`x_{t-1} = x_0\text{-pred} + \sigma_{t-1}\hat\epsilon` with :math:`\alpha = 1` (EDM coordinates);
* Heun: Karras et al. 2022 (EDM), Algorithm 1 with :math:`S_\text{churn}=0`, :math:`s(t)=1`, :math:`\sigma(t)=t`;
* DPM-Solver-2: Lu et al. 2022 (NeurIPS), Algorithm 1 (DPM-Solver-2 with :math:`r_1`), noise prediction,
  :math:`\lambda = -\log\sigma`, :math:`\alpha = 1`: exponential weights :math:`e^{h}-1`;
* DPM-Solver++(2M): Lu et al. 2022b (arXiv 2211.01095), Algorithm 2, data prediction, :math:`\alpha = 1`;
* iPNDM: Zhang & Chen 2023 (DEIS), the improved PNDM: Adams–Bashforth on :math:`dx/d\sigma` with the
  textbook weights as exact fractions, warm-up of increasing order;
* the analytic first step of AMED (Zhou et al. 2024): the first denoiser output is replaced by
  :math:`x\,(1-\sigma_0/\sqrt{1+\sigma_0^2})`.

A step to :math:`\sigma = 0` returns the denoiser's output (every method's last step is the Euler step).
These exist only to be compared with the library (claims C21.3, C21.4, C21.14 and ``tests/test_transcriptions.py``).
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch

#: Adams–Bashforth weights of orders 1-4 for y' = f, newest value first (Hairer, Nørsett & Wanner, I.III.1)
AB = {
    1: [Fraction(1)],
    2: [Fraction(3, 2), Fraction(-1, 2)],
    3: [Fraction(23, 12), Fraction(-4, 3), Fraction(5, 12)],
    4: [Fraction(55, 24), Fraction(-59, 24), Fraction(37, 24), Fraction(-3, 8)],
}


def _denoise(D, x, sigma: float, first: bool, afs: bool):
    if first and afs:
        return x * (1.0 - sigma / math.sqrt(1.0 + sigma * sigma))
    return D(x, torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device))


def ddim(D, x, sigmas, afs=False):
    s = [float(v) for v in sigmas]
    for i in range(len(s) - 1):
        x0 = _denoise(D, x, s[i], i == 0, afs)
        eps = (x - x0) / s[i]
        x = x0 + s[i + 1] * eps
    return x


def heun(D, x, sigmas, afs=False):
    t = [float(v) for v in sigmas]
    for i in range(len(t) - 1):
        d_i = (x - _denoise(D, x, t[i], i == 0, afs)) / t[i]
        x_next = x + (t[i + 1] - t[i]) * d_i
        if t[i + 1] != 0:
            d_prime = (x_next - _denoise(D, x_next, t[i + 1], False, afs)) / t[i + 1]
            x_next = x + (t[i + 1] - t[i]) * (0.5 * d_i + 0.5 * d_prime)
        x = x_next
    return x


def dpm_solver_2(D, x, sigmas, r1=0.5, afs=False):
    s = [float(v) for v in sigmas]
    for i in range(len(s) - 1):
        x0 = _denoise(D, x, s[i], i == 0, afs)
        eps = (x - x0) / s[i]
        if s[i + 1] == 0:
            x = x0
            continue
        lam_s, lam_t = -math.log(s[i]), -math.log(s[i + 1])
        h = lam_t - lam_s
        s1 = math.exp(-(lam_s + r1 * h))  # sigma at lambda_s + r1 h
        u = x - s1 * math.expm1(r1 * h) * eps
        eps_u = (u - _denoise(D, u, s1, False, afs)) / s1
        x = x - s[i + 1] * math.expm1(h) * eps - s[i + 1] / (2 * r1) * math.expm1(h) * (eps_u - eps)
    return x


def dpmpp_2m(D, x, sigmas, afs=False):
    s = [float(v) for v in sigmas]
    prev = None  # (data prediction, lambda) of the previous step
    for i in range(len(s) - 1):
        x0 = _denoise(D, x, s[i], i == 0, afs)
        if s[i + 1] == 0:
            x = x0
            continue
        lam, lam_next = -math.log(s[i]), -math.log(s[i + 1])
        h = lam_next - lam
        if prev is None:
            D_hat = x0
        else:
            r = (lam - prev[1]) / h
            D_hat = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * prev[0]
        x = (s[i + 1] / s[i]) * x - math.expm1(-h) * D_hat
        prev = (x0, lam)
    return x


def ipndm(D, x, sigmas, afs=False, max_order=4):
    s = [float(v) for v in sigmas]
    ds: list = []
    for i in range(len(s) - 1):
        x0 = _denoise(D, x, s[i], i == 0, afs)
        if s[i + 1] == 0:
            x = x0
            continue
        ds.append((x - x0) / s[i])
        order = min(len(ds), max_order)
        w = AB[order]
        slope = sum(float(w[j]) * ds[-1 - j] for j in range(order))
        x = x + (s[i + 1] - s[i]) * slope
    return x
