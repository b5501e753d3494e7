"""diffmath: a verified mathematical companion to Su Jianlin's diffusion-model series.

The exact toy lab (Gaussian-mixture oracles, schedules, conversions, the probability-flow ODE),
sympy-checked derivations, and the claim registry behind the book and ``diffmath verify``.

Convention everywhere: :math:`x_t = \\alpha_t x_0 + \\sigma_t\\varepsilon`, data at :math:`t = 0`.
"""

from diffmath import denoisers, flows, parametrisation, samplers, schedules, symbolic
from diffmath.device import available_devices, best_device
from diffmath.mixture import GaussianMixture

__version__ = "0.2.0"

__all__ = [
    "GaussianMixture",
    "available_devices",
    "best_device",
    "denoisers",
    "flows",
    "parametrisation",
    "samplers",
    "schedules",
    "symbolic",
]
