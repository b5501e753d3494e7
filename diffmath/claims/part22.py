r"""Part 22 (kexue.fm 10047): SNR and high-resolution generation (simple diffusion). Claims C22.1-C22.8.

Convention: Su's :math:`\bar\alpha_t, \bar\beta_t` are the library's VP :math:`\alpha_t, \sigma_t`
(data at :math:`t = 0`); images :math:`H\times W` pooled to :math:`H/s\times W/s` by
:func:`diffmath.resolution.pool`. Equation numbers follow the article (7 equation blocks; the
catalogue ``shared/claims/parts-21-24-and-essay.md`` §2.1). The English translation writes
:math:`r^2` for :math:`s^2` in (5); the Chinese original has :math:`s^2`.
"""

from __future__ import annotations

import math

import sympy as sp
import torch

from diffmath import resolution as res
from diffmath import snr
from diffmath.claims._helpers import generator
from diffmath.claims.controls import Plant
from diffmath.claims.registry import CheckResult, Claim, Kind, Measurement, Source, register
from diffmath.images import GaussianImage
from diffmath.schedules import LogSNRCosine, RectifiedFlow, ShiftedSchedule, VPCosine, sd3_time_shift
from diffmath.symbolic import Derivation, Step

CHAPTER = "snr-resolution"
EXACT = 1e-12  # float64 identities evaluated two ways (a few ulps times small condition numbers)
T = "tests/test_part22.py::"


def _sym_pool_matrix(H: int, W: int, s: int) -> sp.Matrix:
    """D as a sympy matrix, built from its definition (the mean of each s x s block), for the derivations."""
    h, w = H // s, W // s
    return sp.Matrix(h * w, H * W, lambda a, p: sp.Rational(1, s * s) if (p // W) // s * w + (p % W) // s == a else 0)


# --- C22.1 pooling divides the variance of i.i.d. noise by s^2 (eq. 3) ---------------------------
def _block_mean_variance(s: int) -> sp.Expr:
    r""":math:`\mathbb E(\text{mean of an } s\times s \text{ block})^2 = \frac1{s^4}\sum_{i,j}\mathbb E\,\varepsilon_i\varepsilon_j`
    for independent standard normals (:math:`\mathbb E\,\varepsilon_i\varepsilon_j=\delta_{ij}`), left unevaluated so that
    sympy does the double sum when it checks the step."""
    i, j = sp.symbols("i j", integer=True)
    n = s * s
    return sp.Sum(sp.KroneckerDelta(i, j), (i, 1, n), (j, 1, n)) / n**2


def _derive_c221() -> Derivation:
    D = _sym_pool_matrix(4, 6, 2)
    return Derivation(
        [
            Step(_block_mean_variance(2), sp.Rational(1, 4), why="E of the squared mean of the 4 pixels of a 2 x 2 block: (1/16) sum_ij delta_ij",
                 lhs_tex=r"\mathbb E\Big(\tfrac14\sum_{i=1}^{4}\varepsilon_i\Big)^2", rhs_tex=r"\tfrac14=\tfrac1{s^2}"),
            Step(_block_mean_variance(3), sp.Rational(1, 9), why="the same for a 3 x 3 block",
                 lhs_tex=r"\mathbb E\Big(\tfrac19\sum_{i=1}^{9}\varepsilon_i\Big)^2", rhs_tex=r"\tfrac19=\tfrac1{s^2}"),
            Step(sp.MatMul(D, D.T, evaluate=False), sp.eye(6) / 4, why="the same as matrices: D D^T = I/s^2 (here a 4 x 6 image, s = 2: pooled pixels are independent)",
                 lhs_tex=r"\mathcal D\mathcal D^\top\ (4\times6,\ s=2)", rhs_tex=r"\tfrac14 I_6"),
        ],
        setting=r"$\varepsilon$ with i.i.d. $\mathcal N(0,1)$ pixels; $\mathcal D$ the $s\times s$ mean. The pooled pixels are "
        r"jointly Gaussian with covariance $\mathcal D\mathcal D^\top$, so $\mathcal D\varepsilon\sim\mathcal N(0, I/s^2)$.",
    )


def _check_c221(device) -> CheckResult:
    worst = 0.0
    for s, (H, W) in ((2, (6, 8)), (3, (9, 6)), (4, (8, 12))):
        D = res.pool_matrix(H, W, s)
        worst = max(worst, (D @ D.T - torch.eye(D.shape[0], dtype=torch.float64) / s**2).abs().max().item() * s**2)
    # Monte Carlo with the library's pool on white noise: variance and neighbour correlation
    g = generator(device, 221)
    zs = []
    for s in (2, 4):
        eps = torch.randn(250, 64, 64, dtype=torch.float64, device=device, generator=g)
        y = res.pool(eps, s).reshape(-1)
        N = y.numel()
        v = (y * y).mean()
        se = (y * y).std() / math.sqrt(N)
        zs.append(abs(v.item() - 1 / s**2) / se.item())
        p = res.pool(eps, s)
        prod = (p[:, :, :-1] * p[:, :, 1:]).reshape(-1)
        zs.append(abs(prod.mean().item()) / (prod.std().item() / math.sqrt(prod.numel())))
    # correlated noise: a power-law field pooled keeps far more than 1/s^2 of its variance
    law = GaussianImage.power_law(32, 32, 2.0)
    kept = law.pool(2).eigenvalues.mean().item() / law.eigenvalues.mean().item()
    return CheckResult(
        (
            Measurement("max |s^2 D D^T - I| (dense D, s = 2, 3, 4)", worst, EXACT),
            Measurement("max |z| of pooled white-noise variance vs 1/s^2 and of neighbour covariance vs 0 (s = 2, 4)", max(zs), 5.0),
            Measurement("fraction of variance kept by 2x2 pooling of a correlated (alpha = 2) field", kept, 0.5, relation=">="),
        ),
        setting="dense pooling matrices for 6x8 (s=2), 9x6 (s=3), 8x12 (s=4); 250 white 64x64 images per s "
        f"({250 * 64 * 64 // 4} and {250 * 64 * 64 // 16} pooled pixels); the 1/s^2 law needs independent pixels: "
        f"a 32x32 power-law field (alpha = 2) keeps {kept:.3f} of its variance, not 0.25",
        device=str(device),
    )


register(
    Claim(
        id="C22.1",
        title="Average pooling divides the variance of i.i.d. noise by s²",
        statement=r"If $\varepsilon$ has i.i.d. $\mathcal N(0,1)$ pixels, its $s\times s$ average pooling $\mathcal D\varepsilon$ "
        r"has i.i.d. $\mathcal N(0,1/s^2)$ pixels.",
        source=Source(part=22, equation="(3)", paper="hoogeboom2023simple"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c221,
        check=_check_c221,
        tests=(T + "test_pooled_white_noise_covariance_property", "tests/test_resolution.py::test_pool_matches_dense_matrix_property"),
        remark="The independence of the noise pixels is essential: for correlated noise (last measurement) pooling keeps "
        "a larger share of the variance.",
        plants=(
            Plant("diffmath.resolution:pool_matrix", rel=1e-7, why="D off by one part in 10^7", fails=("s^2 D D^T",)),
            Plant("diffmath.resolution:pool", rel=0.03, why="pooled images 3% too large", fails=("pooled white-noise variance",)),
            Plant(
                "diffmath.images:_box_response",
                rel=-0.1,
                why="the pooling box's response 10% too small",
                fails=("fraction of variance kept",),
            ),
        ),
    )
)


# --- C22.2 the SNR x s^2 of (4), and what the signal really gains -------------------------------
def _derive_c222() -> Derivation:
    a, sg, s = sp.symbols(r"\bar\alpha \bar\beta s", positive=True)
    x = sp.symbols("x_1:5", real=True)
    m = sum(x) / 4
    return Derivation(
        [
            Step(a**2 / (sg**2 * _block_mean_variance(2)), 4 * a**2 / sg**2,
                 why="pooling keeps the signal coefficient; the pooled noise has variance beta^2/s^2 (C22.1), so the SNR gains s^2 = 4",
                 lhs_tex=r"\frac{\bar\alpha^2}{\bar\beta^2\,\mathbb E(\mathcal D\varepsilon)^2}", rhs_tex=r"s^2\,\frac{\bar\alpha^2}{\bar\beta^2}"),
            Step(m**2, sum(xi**2 for xi in x) / 4, "<=", certificate=sum((xi - m) ** 2 for xi in x) / 4,
                 why="per block, the squared mean is at most the mean square; the gap is the block's variance (Jensen)",
                 lhs_tex=r"\Big(\tfrac14\sum_{i=1}^4x_i\Big)^2", rhs_tex=r"\tfrac14\sum_{i=1}^4x_i^2"),
        ],
        setting=r"(1) the schedule SNR of $\mathcal Dx_t=\bar\alpha\mathcal Dx_0+\bar\beta\mathcal D\varepsilon$, $s=2$; (2) one $2\times2$ "
        r"block, $x_1..x_4$ real. Summing (2) over blocks gives $P(\mathcal Dx)\le P(x)$, so the signal-power gain "
        r"$g=s^2P(\mathcal Dx)/P(x)\le s^2$, with equality iff every block is constant; $g\ge0$ trivially.",
    )


def _check_c222(device) -> CheckResult:
    s, H = 2, 16
    D = res.pool_matrix(H, H, s)
    gains, dense_err = [], 0.0
    for alpha in (0.0, 1.0, 2.0, 3.0):
        law = GaussianImage.power_law(H, H, alpha)
        g = snr.expected_pooling_gain(law, s)
        C = law.covariance_dense()
        dense = s * s * (torch.trace(D @ C @ D.T) / (H // s) ** 2) / (torch.trace(C) / H**2)
        dense_err = max(dense_err, abs(g - dense.item()) / dense.item())
        gains.append(g)
    gen = generator(device, 222)
    low = torch.randn(64, 1, H // s, H // s, dtype=torch.float64, device=device, generator=gen)
    block = res.pooling_gain(res.upsample(low, s), s)
    white = torch.randn(64, 1, H, H, dtype=torch.float64, device=device, generator=gen)
    checker = (-1.0) ** (torch.arange(H)[:, None] + torch.arange(H)[None, :]).to(torch.float64)
    # images near the equality case (block-constant plus 10% white noise): the per-image bound is tested where it is tight
    rand_gain = res.pooling_gain(res.upsample(low, s) + 0.1 * white, s)
    # Monte Carlo of the expected gain of the alpha = 2 field: ratio of means, delta-method SE
    law = GaussianImage.power_law(H, H, 2.0).to(device)
    x = law.sample(4000, generator=gen)
    p_hi, p_lo = res.signal_power(x).reshape(-1), res.signal_power(res.pool(x, s)).reshape(-1)
    ratio = s * s * p_lo.mean() / p_hi.mean()
    resid = s * s * p_lo - ratio * p_hi
    se = resid.std() / math.sqrt(len(resid)) / p_hi.mean()
    z = abs(ratio.item() - gains[2]) / se.item()
    return CheckResult(
        (
            Measurement("expected gain: spectra vs dense tr(D C D^T), max rel. error", dense_err, EXACT),
            Measurement("|gain - 1| for white images (alpha = 0)", abs(gains[0] - 1), EXACT),
            Measurement("max |gain - s^2| for block-constant images", (block - s * s).abs().max().item(), EXACT),
            Measurement("gain of a checkerboard (pooled to 0)", res.pooling_gain(checker[None], s).item(), EXACT),
            Measurement("min over alpha in {1,2,3} of consecutive gain increments (gain grows with correlation)",
                        min(b - a for a, b in zip(gains, gains[1:])), 0.5, relation=">="),
            Measurement("max gain over alpha in {0..3} (stays below s^2 = 4)", max(gains), 3.25),
            Measurement("max gain over 64 images near the equality case (block + 10% white; per image <= s^2)",
                        rand_gain.max().item(), s * s, note=f"smallest {rand_gain.min().item():.3f}: the bound is tight"),
            Measurement("|z| of Monte Carlo expected gain at alpha = 2 (4000 images)", z, 5.0),
        ),
        setting="16x16 power-law fields, s = 2; expected gains for alpha = 0, 1, 2, 3: "
        + ", ".join(f"{g:.4f}" for g in gains)
        + f"; MC at alpha = 2: {ratio.item():.4f}",
        device=str(device),
    )


register(
    Claim(
        id="C22.2",
        title="SNR × s² after pooling: exact for the schedule, between 0 and s² for the signal",
        statement=r"Pooling $x_t=\bar\alpha_tx_0+\bar\beta_t\varepsilon$ by $s\times s$ multiplies the schedule's SNR "
        r"$\bar\alpha_t^2/\bar\beta_t^2$ by $s^2$ (eq. 4). The signal-to-noise *power* ratio grows by "
        r"$g=s^2P(\mathcal Dx_0)/P(x_0)\in[0,s^2]$ ($P$ the mean square), with $g=s^2$ exactly for block-constant "
        r"$x_0$; for a stationary law the expected gain is 1 for white images and grows towards $s^2$ with the "
        r"correlation length.",
        source=Source(part=22, equation="(2)-(4)", paper="hoogeboom2023simple"),
        kind=Kind.INEQUALITY,
        chapter=CHAPTER,
        derive=_derive_c222,
        check=_check_c222,
        tests=(T + "test_pooling_gain_bounds_property", T + "test_expected_gain_matches_monte_carlo"),
        extension=r"Article 22 (section on SNR, eq. 4) defines the SNR given $x_0$ as the schedule ratio "
        r"$\bar\alpha_t^2/\bar\beta_t^2$, and in that sense pooling multiplies it by exactly $s^2$. A reader (JimmySue, "
        r"comments of 2024-04-28 and 2024-05-06) objected that pooling also low-passes the signal; Su (2024-05-07) "
        r"agreed the wording was loose and kept the conclusion for natural images. The suite makes both precise: the "
        r"gain in signal-to-noise power is $s^2P(\mathcal Dx_0)/P(x_0)$, anywhere in $[0,s^2]$ per image, $s^2$ only for "
        r"block-constant images and 1 on average for white ones; for power-law fields it lies in between and grows with "
        r"the exponent (the check's setting lists the values).",
        plants=(
            Plant(
                "diffmath.images:_box_response",
                rel=1e-7,
                why="the pooling box's response off by one part in 10^7",
                fails=("spectra vs dense", "white images (alpha = 0)"),
            ),
            Plant("diffmath.resolution:pool", rel=1e-7, why="pooling off by one part in 10^7", fails=("block-constant",)),
            Plant("diffmath.resolution:signal_power", add=1e-9, why="the signal power off by 1e-9", fails=("checkerboard",)),
            Plant(
                "diffmath.snr:expected_pooling_gain",
                rel=-1.0,
                add=1.0,
                why="the expected gain stuck at its white-noise value 1",
                fails=("consecutive gain increments",),
            ),
            Plant(
                "diffmath.snr:expected_pooling_gain",
                rel=0.05,
                why="the expected gain 5% too large",
                fails=("stays below", "Monte Carlo expected gain"),
            ),
        ),
    )
)


# --- C22.3 the alignment (5) under VP: a log-SNR shift ------------------------------------------
def _derive_c223() -> Derivation:
    A, a2, s, u = sp.symbols("A a s u", positive=True)
    sol = sp.solve(sp.Eq(s**2 * A / (1 - A), a2 / (1 - a2)), A)
    t = sp.symbols("t", positive=True)
    c = sp.cos(sp.pi * t / 2)
    P, Q = sp.symbols("P Q", positive=True)
    hi = P / (P + s**2 * Q)
    return Derivation(
        [
            Step(sp.numer(sp.together(s**2 * A / (1 - A) - a2 / (1 - a2))), A * (s**2 * (1 - a2) + a2) - a2,
                 why="clearing denominators, (5) is linear in A = alpha_hi^2 with a positive coefficient: exactly one root",
                 lhs_tex=r"\text{numerator of (5)}", rhs_tex=r"A\,(s^2\bar\beta_{\rm lo}^2+\bar\alpha_{\rm lo}^2)-\bar\alpha_{\rm lo}^2"),
            Step(sol[0], a2 / (a2 + s**2 * (1 - a2)), why="the solution", lhs_tex=r"\bar\alpha_{\rm hi}^2",
                 rhs_tex=r"\frac{\bar\alpha_{\rm lo}^2}{\bar\alpha_{\rm lo}^2+s^2\bar\beta_{\rm lo}^2}"),
            Step(sol[0] / (1 - sol[0]), a2 / (1 - a2) / s**2,
                 why="its SNR is the low-resolution one over s^2: lambda_hi = lambda_lo - 2 log s",
                 lhs_tex=r"\frac{\bar\alpha_{\rm hi}^2}{1-\bar\alpha_{\rm hi}^2}", rhs_tex=r"\frac1{s^2}\,\frac{\bar\alpha_{\rm lo}^2}{1-\bar\alpha_{\rm lo}^2}"),
            Step((sol[0] / (1 - sol[0])).subs(a2, c**2), sp.cot(sp.pi * t / 2) ** 2 / s**2,
                 why="cosine schedule: SNR_hi(t) = cot^2(pi t/2)/s^2", lhs_tex=r"\mathrm{SNR}_{\rm hi}(t)\big|_{\bar\alpha_{\rm lo}=\cos\frac{\pi t}2}",
                 rhs_tex=r"\cot^2(\pi t/2)/s^2"),
            Step(sp.diff(sol[0], a2), s**2 / (a2 + s**2 * (1 - a2)) ** 2, why="increasing in alpha_lo^2: the shifted schedule is monotone when the base is",
                 lhs_tex=r"\partial\bar\alpha_{\rm hi}^2/\partial\bar\alpha_{\rm lo}^2", rhs_tex=r"s^2/(\bar\alpha_{\rm lo}^2+s^2\bar\beta_{\rm lo}^2)^2"),
            Step(hi.subs(s, 1 + u), P / (P + Q), "<=",
                 certificate=P * Q * u * (u + 2) / ((P + Q) * (P + Q * (1 + u) ** 2)),
                 why="with s = 1 + u, u >= 0 (a higher resolution): alpha_hi <= alpha_lo (more noise at every time)",
                 lhs_tex=r"\bar\alpha_{\rm hi}^2=\frac{P}{P+s^2Q}", rhs_tex=r"\frac{P}{P+Q}=\bar\alpha_{\rm lo}^2"),
        ],
        setting=r"Unknown $A=\bar\alpha_{\rm hi}^2\in(0,1)$, $a=\bar\alpha_{\rm lo}^2\in(0,1)$, VP on both sides ($\bar\beta^2=1-\bar\alpha^2$). "
        r"Last step: $P=\bar\alpha_{\rm lo}^2$, $Q=\bar\beta_{\rm lo}^2$ with $P+Q=1$, and the hypothesis $s\ge1$ written as $s=1+u$, $u\ge0$.",
    )


def _check_c223(device) -> CheckResult:
    t = torch.linspace(0.0, 1.0, 401, dtype=torch.float64)
    inner = t[1:-1]
    worst_cos, worst_shift, worst_sd, worst_interp, worst_solve, mono = 0.0, 0.0, 0.0, 0.0, 0.0, math.inf
    for s in (1.5, 2.0, 4.0, 8.0):
        base, sh = VPCosine(s=0.0), ShiftedSchedule(VPCosine(s=0.0), s)
        c2, s2 = torch.cos(math.pi * t / 2) ** 2, torch.sin(math.pi * t / 2) ** 2
        worst_cos = max(worst_cos, (sh.alpha(t) ** 2 - c2 / (c2 + s * s * s2)).abs().max().item())
        ah, _ = snr.aligned_alpha(base.alpha(t), s)
        worst_cos = max(worst_cos, (ah - sh.alpha(t)).abs().max().item())
        worst_shift = max(worst_shift, (sh.log_snr(inner) - base.log_snr(inner) + 2 * math.log(s)).abs().max().item())
        mono = min(mono, (sh.alpha(t)[:-1] - sh.alpha(t)[1:]).min().item())
        # (5) solved numerically by bisection on alpha_hi in (0, 1), against the closed form
        target = (base.alpha(inner) / base.sigma(inner)) ** 2
        lo, hi = torch.zeros_like(inner), torch.ones_like(inner)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            big = s * s * mid**2 / (1 - mid**2) > target
            lo, hi = torch.where(big, lo, mid), torch.where(big, mid, hi)
        worst_solve = max(worst_solve, (0.5 * (lo + hi) - sh.alpha(inner)).abs().max().item())
    # simple diffusion, transcribed from its definition (logsnr in [-15, 15], base resolution 64)
    t_min, t_max = math.atan(math.exp(-7.5)), math.atan(math.exp(7.5))
    lam = -2 * torch.log(torch.tan(t_min + t * (t_max - t_min)))
    for d in (128, 256, 512):
        sd = ShiftedSchedule(LogSNRCosine(), d / 64)
        worst_sd = max(worst_sd, (sd.log_snr(t) - (lam + 2 * math.log(64 / d))).abs().max().item())
        interp = ShiftedSchedule(LogSNRCosine(), (d / 256, d / 32))
        ref = t * (lam + 2 * math.log(32 / d)) + (1 - t) * (lam + 2 * math.log(256 / d))
        worst_interp = max(worst_interp, (interp.log_snr(t) - ref).abs().max().item())
    return CheckResult(
        (
            Measurement("shifted cosine alpha^2 vs cos^2/(cos^2 + s^2 sin^2) and vs aligned_alpha, max abs error", worst_cos, EXACT),
            Measurement("max |lambda_shifted - lambda + 2 log s| (interior times)", worst_shift, 1e-11),
            Measurement("(5) solved by bisection vs the closed form, max abs error", worst_solve, 1e-12),
            Measurement("min decrease of the shifted alpha between grid times (monotone)", mono, 0.0, relation=">="),
            Measurement("simple diffusion's shifted cosine (d/64) vs ShiftedSchedule, max |log-SNR error|", worst_sd, 1e-11),
            Measurement("simple diffusion's interpolated schedule (32 -> 256) vs ShiftedSchedule, max |log-SNR error|", worst_interp, 1e-11),
        ),
        setting="VPCosine(s=0) shifted by s in {1.5, 2, 4, 8} on 401 times; LogSNRCosine(-15, 15) shifted for d in {128, 256, 512}; "
        "the interpolated schedule as lucidrains' code writes it (shift 256 at the data end t = 0, 32 at the noise end t = 1)",
        device="cpu",
    )


register(
    Claim(
        id="C22.3",
        devices=("cpu",),  # exact or tiny: runs on the CPU whatever device is asked for
        title="The alignment (5) under VP has one solution: a log-SNR shift by −2 log s",
        statement=r"With $\bar\alpha^2+\bar\beta^2=1$ at both resolutions, (5) has the unique solution "
        r"$(\bar\alpha_t^{\rm hi})^2=\frac{(\bar\alpha_t^{\rm lo})^2}{(\bar\alpha_t^{\rm lo})^2+s^2(\bar\beta_t^{\rm lo})^2}$, i.e. "
        r"$\lambda_{\rm hi}(t)=\lambda_{\rm lo}(t)-2\log s$: simple diffusion's shifted schedule. It is monotone in $t$ when the "
        r"base is, has $\bar\alpha^{\rm hi}_t\le\bar\alpha^{\rm lo}_t$ for $s\ge1$, and for the cosine schedule "
        r"$\mathrm{SNR}_{\rm hi}(t)=\cot^2(\pi t/2)/s^2$.",
        source=Source(part=22, equation="(5)", paper="hoogeboom2023simple"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c223,
        check=_check_c223,
        tests=(
            T + "test_aligned_alpha_property",
            "tests/test_schedules.py::test_shifted_schedule_derivatives_property",
            "tests/test_schedules.py::test_shifted_schedule_roundtrip_property",
        ),
        remark=r"The network's time input is unchanged; only $\bar\alpha_t,\bar\beta_t$ change (Su's reply in the comments, "
        r"2024-05-24). simple diffusion also *interpolates* the shift over time; in lucidrains' implementation the data end "
        r"uses the 256 reference and the noise end the 32 one (the library's `ShiftedSchedule(base, (d/256, d/32))`). "
        r"Secondary transcriptions of the paper's eq. 6 read the other way round; we follow the code. The machine "
        r"translation of the article prints $r^2$ in (5); the original has $s^2$.",
        plants=(
            Plant(
                "diffmath.schedules:ShiftedSchedule.alpha",
                rel=1e-7,
                why="the shifted alpha off by one part in 10^7",
                fails=("shifted cosine alpha^2", "bisection"),
            ),
            Plant(
                "diffmath.snr:aligned_alpha",
                index=0,
                rel=1e-7,
                why="alpha_hi off by one part in 10^7",
                fails=("aligned_alpha",),
                reads=1e-7,
            ),
            Plant(
                "diffmath.schedules:ShiftedSchedule.log_snr",
                rel=1e-8,
                why="the shifted log-SNR off by one part in 10^8",
                fails=("lambda_shifted", "(d/64)", "interpolated schedule"),
            ),
            Plant(
                "diffmath.schedules:ShiftedSchedule.alpha",
                negate=True,
                why="the shifted alpha's sign flipped",
                fails=("monotone",),
            ),
        ),
    )
)


# --- C22.4 the multiscale loss (7) ---------------------------------------------------------------
def _derive_c224() -> Derivation:
    e = sp.symbols("e_1:5", real=True)
    m = sum(e) / 4
    return Derivation(
        [
            Step(m**2, sum(ei**2 for ei in e) / 4, "<=", certificate=sum((ei - m) ** 2 for ei in e) / 4,
                 why="one block of the error: the pooled square is at most the mean square; zero gap iff the block is constant",
                 lhs_tex=r"(\mathcal De)_{\rm block}^2", rhs_tex=r"\tfrac14\sum_{\rm block}e_i^2"),
            Step(_block_mean_variance(2), sp.Rational(1, 4), why="white error of unit variance: E (D e)^2 = 1/s^2 with s^2 = 4 pixels per block",
                 lhs_tex=r"\mathbb E(\mathcal De)_{\rm block}^2", rhs_tex=r"\tfrac14=\tfrac1{s^2}\,\mathbb E e_i^2"),
        ],
        setting=r"$e=\varepsilon-\epsilon_\theta$, $s=2$. Averaging step (1) over the $(w/s)(h/s)$ blocks gives "
        r"$\mathcal L_{s\times s}\le\mathcal L$; step (2) gives $\mathbb E\mathcal L_{s\times s}=\mathbb E\mathcal L/s^2$ for white errors.",
    )


def _check_c224(device) -> CheckResult:
    gen = generator(device, 224)
    eps = torch.randn(400, 1, 32, 32, dtype=torch.float64, device=device, generator=gen)
    hat = torch.randn(400, 1, 32, 32, dtype=torch.float64, device=device, generator=gen)
    ratios = []
    zs = []
    for s in (2, 4):
        # errors near the equality case (block-constant plus 10% white noise), where the bound L_s <= L is tight
        near = res.upsample(eps[:, :, ::s, ::s], s) + 0.1 * hat
        ratios.append((snr.multiscale_loss(near, torch.zeros_like(near), s) / snr.full_loss(near, torch.zeros_like(near))).max().item())
        L, Ls = snr.full_loss(eps, hat), snr.multiscale_loss(eps, hat, s)
        # white error (variance 2 per pixel): E L_s = E L / s^2
        r = (Ls - L / s**2).reshape(-1)
        zs.append(abs(r.mean().item()) / (r.std().item() / math.sqrt(r.numel())))
    low = torch.randn(50, 1, 8, 8, dtype=torch.float64, device=device, generator=gen)
    block = res.upsample(low, 4)
    eq = (snr.multiscale_loss(block, torch.zeros_like(block), 4) / snr.full_loss(block, torch.zeros_like(block)) - 1).abs().max().item()
    smooth = GaussianImage.power_law(32, 32, 3.0).to(device).sample(400, generator=gen)
    smooth_ratio = (snr.multiscale_loss(smooth, 0 * smooth, 2).mean() / snr.full_loss(smooth, 0 * smooth).mean()).item()
    white_ratio = (snr.multiscale_loss(eps, hat, 2).mean() / snr.full_loss(eps, hat).mean()).item()
    return CheckResult(
        (
            Measurement("max over 400 errors near the equality case (block + 10% white) of L_s / L (s = 2, 4)", max(ratios), 1.0,
                        note="the bound where it is tight: " + ", ".join(f"{r:.4f}" for r in ratios)),
            Measurement("max |L_s / L - 1| for block-constant errors (equality case)", eq, EXACT),
            Measurement("max |z| of E L_s - E L / s^2 for white errors (s = 2, 4)", max(zs), 5.0),
            Measurement("L_2 / L for smooth (alpha = 3) errors: most of the error survives pooling", smooth_ratio, 0.75, relation=">="),
            Measurement("L_2 / L for white errors (1/s^2)", white_ratio, 0.27),
        ),
        setting=f"400 pairs of 32x32 images; white-error ratio {white_ratio:.4f} (1/s^2 = 0.25), smooth-error ratio {smooth_ratio:.4f}",
        device=str(device),
    )


register(
    Claim(
        id="C22.4",
        title="The multiscale loss (7) is at most the loss (6); white errors count 1/s²",
        statement=r"For any error $e=\varepsilon-\epsilon_\theta$, $\mathcal L_{s\times s}\le\mathcal L$, with equality exactly when $e$ "
        r"is constant on every $s\times s$ block; for white $e$, $\mathbb E\mathcal L_{s\times s}=\mathbb E\mathcal L/s^2$. The "
        r"low-resolution terms therefore weight low-frequency error up relative to high-frequency error.",
        source=Source(part=22, equation="(6), (7)", paper="hoogeboom2023simple"),
        kind=Kind.INEQUALITY,
        chapter=CHAPTER,
        derive=_derive_c224,
        check=_check_c224,
        tests=(T + "test_multiscale_loss_property",),
        extension=r"Article 22 states (7) and that the paper averages it over several $s$; it draws no inequality. The "
        r"properties here follow from the definitions. On the weights: three independent transcriptions of the paper "
        r"(not the paper itself, which we could not read) give $\sum_{s\in\{32,64,\dots,d\}}\frac1s\mathcal L^{s\times s}$, "
        r"i.e. more weight at lower resolution, rather than a plain average.",
        plants=(
            Plant(
                "diffmath.snr:multiscale_loss",
                rel=1e-7,
                why="the multiscale loss off by one part in 10^7",
                fails=("block-constant errors",),
                reads=1e-7,
            ),
            Plant(
                "diffmath.snr:multiscale_loss",
                rel=0.15,
                why="the multiscale loss 15% too large",
                fails=("max |z| of E L_s", "for white errors (1/s^2)"),
            ),
            Plant("diffmath.snr:multiscale_loss", rel=-0.25, why="the multiscale loss 25% too small", fails=("smooth",)),
        ),
    )
)


# --- C22.5 the LDM compression arithmetic ----------------------------------------------------------
def _derive_c225() -> Derivation:
    return Derivation(
        [
            Step(sp.Mul(512, sp.Pow(8, -1, evaluate=False), evaluate=False), 64, why="8 x 8 patches of a 512 x 512 image: a 64 x 64 grid", lhs_tex=r"512/8", rhs_tex="64"),
            Step(sp.Mul(3, sp.Pow(8, 2, evaluate=False), evaluate=False), 192, why="each patch holds 3 channels x 64 pixels", lhs_tex=r"3\cdot8^2", rhs_tex="192"),
            Step(sp.Mul(64 * 64 * 4, sp.Pow(64 * 64 * 192, -1, evaluate=False), evaluate=False), sp.Rational(1, 48), why="the 64 x 64 x 4 latent over the patchified image",
                 lhs_tex=r"\frac{64\cdot64\cdot4}{64\cdot64\cdot192}", rhs_tex=r"\frac1{48}"),
        ],
        setting="LDM's autoencoder (f = 8, 4 latent channels) against patchifying the pixels.",
    )


def _check_c225(device) -> CheckResult:
    x = torch.arange(3 * 512 * 512, dtype=torch.float64).reshape(3, 512, 512)
    y = snr.patchify(x, 8)
    H, W, Cp = y.shape
    # patch (a, b) holds channels x rows x columns of the block at rows 8a.., cols 8b..
    a, b = 17, 41
    direct = x[:, 8 * a : 8 * a + 8, 8 * b : 8 * b + 8].reshape(-1)
    mismatch = (y[a, b] - direct).abs().max().item()
    same_values = torch.equal(y.reshape(-1).sort().values, x.reshape(-1).sort().values)
    ratio = (64 * 64 * 4) / (H * W * Cp)
    return CheckResult(
        (
            Measurement("patchified shape (64, 64, 192): sum of |shape - expected|", abs(H - 64) + abs(W - 64) + abs(Cp - 192), 0.0),
            Measurement("patch (17, 41) vs the image block it comes from, max abs difference", mismatch, 0.0),
            Measurement("patchify is a permutation of the pixels (0 = yes)", 0.0 if same_values else 1.0, 0.0),
            Measurement("|latent / patchified size - 1/48|", abs(ratio - 1 / 48), 1e-15),
        ),
        setting="a 3 x 512 x 512 image of distinct values, patchified at 8 x 8 by diffmath.snr.patchify",
        device="cpu",
    )


register(
    Claim(
        id="C22.5",
        devices=("cpu",),  # exact or tiny: runs on the CPU whatever device is asked for
        title="A 512×512×3 image patchified at 8×8 is 64×64×192; LDM's 64×64×4 latent is 1/48 of it",
        statement=r"Patchifying $512\times512\times3$ pixels into $8\times8$ patches gives $64\times64\times192$ numbers; the LDM "
        r"latent $64\times64\times4$ has $4/192=1/48$ as many.",
        source=Source(part=22, note="section 'LDM review'", paper="rombach2022ldm"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c225,
        check=_check_c225,
        tests=(T + "test_patchify_is_a_permutation_property",),
        plants=(
            Plant(
                "diffmath.snr:patchify",
                rel=1e-7,
                why="patch values off by one part in 10^7",
                fails=("patch (17, 41)", "permutation"),
            ),
        ),
    )
)


# --- C22.6 the architecture remarks (documented, not checkable) ----------------------------------
register(
    Claim(
        id="C22.6",
        title="simple diffusion's architecture choices",
        statement=r"simple diffusion downsamples right after the first layer (to $128^2$ or $64^2$) and upsamples only before "
        r"the last; it puts the added capacity at the $16\times16$ level; it applies dropout only at low resolution; its "
        r"largest experiments are at $1024^2$ (appendix).",
        source=Source(part=22, note="section 'architecture scaling'", paper="hoogeboom2023simple"),
        kind=Kind.DOCUMENTED,
        chapter=CHAPTER,
        remark="Design choices reported from the paper, not mathematical statements: the suite records them and checks "
        "nothing. The cost argument behind them (a convolution's cost grows with the number of pixels it runs on) is "
        "arithmetic.",
    )
)


# --- C22.7 Stable Diffusion 3's shift is the same log-SNR shift -----------------------------------
def _derive_c227() -> Derivation:
    t, s = sp.symbols("t s", positive=True)
    tp = s * t / (1 + (s - 1) * t)
    twice = tp.subs(t, tp)
    return Derivation(
        [
            Step((1 - tp) / tp, (1 - t) / (s * t), why="the shifted line's noise-to-signal ratio is s times the original",
                 lhs_tex=r"\frac{1-t'}{t'}", rhs_tex=r"\frac{1-t}{s\,t}"),
            Step(sp.log(((1 - tp) / tp) ** 2), sp.log(((1 - t) / t) ** 2) - 2 * sp.log(s),
                 why="so lambda' = lambda - 2 log s on the rectified-flow line (alpha = 1 - t, sigma = t)",
                 lhs_tex=r"\lambda(t')", rhs_tex=r"\lambda(t)-2\log s"),
            Step(twice, s**2 * t / (1 + (s**2 - 1) * t), why="applying the shift twice is the shift by s^2, not by s",
                 lhs_tex=r"t''", rhs_tex=r"\frac{s^2t}{1+(s^2-1)t}"),
        ],
        setting=r"SD3: $t'=\frac{st}{1+(s-1)t}$ on $x_t=(1-t)x_0+t\varepsilon$ (noise at $t=1$), $s=\sqrt{m/n}$ for $m$ and $n$ pixels.",
    )


def _check_c227(device) -> CheckResult:
    t = torch.linspace(0.0, 1.0, 401, dtype=torch.float64)
    inner = t[1:-1]
    worst, worst_lam, gap_twice = 0.0, 0.0, math.inf
    for s in (1.5, 2.0, 3.0, 4.0):
        sh = ShiftedSchedule(RectifiedFlow(), s)
        worst = max(worst, (sh.sigma(t) - sd3_time_shift(t, s)).abs().max().item(), (sh.alpha(t) - (1 - sd3_time_shift(t, s))).abs().max().item())
        worst_lam = max(worst_lam, (sh.log_snr(inner) - RectifiedFlow().log_snr(inner) + 2 * math.log(s)).abs().max().item())
        twice = sd3_time_shift(sd3_time_shift(t, s), s)
        worst = max(worst, (twice - sd3_time_shift(t, s * s)).abs().max().item())
        gap_twice = min(gap_twice, (twice - sd3_time_shift(t, s)).abs().max().item())
    return CheckResult(
        (
            Measurement("SD3's formula vs ShiftedSchedule(RectifiedFlow(), s), and twice vs s^2, max abs error", worst, EXACT),
            Measurement("max |lambda' - lambda + 2 log s| on the rectified-flow line", worst_lam, 1e-11),
            Measurement("min over s of max_t |shift applied twice - shift once| (detectably different)", gap_twice, 0.05, relation=">="),
        ),
        setting="s in {1.5, 2, 3, 4}, 401 times in [0, 1]",
        device="cpu",
    )


register(
    Claim(
        id="C22.7",
        devices=("cpu",),  # exact or tiny: runs on the CPU whatever device is asked for
        title="Stable Diffusion 3's timestep shift is the same log-SNR shift, on the rectified-flow line",
        statement=r"On $x_t=(1-t)x_0+t\varepsilon$ the shift $t'=\frac{st}{1+(s-1)t}$ gives $\lambda(t')=\lambda(t)-2\log s$: the "
        r"same resolution shift as (5) and simple diffusion, written in rectified-flow time. Applying it twice is the shift by $s^2$.",
        source=Source(part=22, note="comment thread (2024-04-18/19, SD3)", paper="esser2024sd3"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c227,
        check=_check_c227,
        tests=("tests/test_schedules.py::test_sd3_shift_twice_is_detectably_different_property",),
        remark="Su's reply in the comments (2024-04-25) notes that SD3 applies its shift in training as well; the identity "
        "above is about the schedules only. Since a shift is a time reparametrisation of the schedule, it changes the "
        "sampler's grid, not the probability-flow ODE (claim C0.9).",
        plants=(
            Plant(
                "diffmath.schedules:ShiftedSchedule.sigma",
                rel=1e-7,
                why="the shifted sigma off by one part in 10^7",
                fails=("SD3's formula",),
                reads=1e-7,
            ),
            Plant(
                "diffmath.schedules:ShiftedSchedule.log_snr",
                rel=1e-8,
                why="the shifted log-SNR off by one part in 10^8",
                fails=("lambda' - lambda",),
            ),
        ),
    )
)


# --- C22.8 does the shift keep quality constant across resolutions? ------------------------------
def _check_c228(device) -> CheckResult:
    from diffmath import experiments

    rows = experiments.result("resolution-shift")["rows"]  # the chapter's experiment, computed once

    def at(R, shifted, n, key):
        return next(r[key] for r in rows if r["resolution"] == R and r["shifted"] == shifted and r["nfe"] == n
                    and r["sampler"] == "euler")

    base16 = {n: at(16, False, n, "w2_base") for n in (10, 25)}
    spread_shift = max(at(R, R != 16, 10, "w2_base") for R in (16, 32, 64)) / min(at(R, R != 16, 10, "w2_base") for R in (16, 32, 64))
    spread_plain = at(64, False, 10, "w2_base") / base16[10]
    detail = min(at(64, True, n, "log_spectrum") / at(64, False, n, "log_spectrum") for n in (10, 25))
    return CheckResult(
        (
            Measurement("Euler, 10 NFE: max/min over R in {16, 32, 64} of the pooled-to-16 W2, shifted schedule", spread_shift, 1.1),
            Measurement("the same ratio, unshifted: pooled W2 at 64 over that at 16", spread_plain, 2.0, relation=">="),
            Measurement("at 64x64, 10 and 25 NFE: full-resolution log-spectrum error, shifted over unshifted (fine detail suffers)", detail, 1.4, relation=">="),
        ),
        setting="power-law field (alpha = 2) seen at 16, 32, 64 pixels; simple diffusion's cosine tuned at 16, shifted by R/16 or not; "
        "Euler (DDIM) on a uniform time grid with the exact denoiser, exact output laws (the 'resolution-shift' experiment)",
        device="cpu",
    )


register(
    Claim(
        id="C22.8",
        experiments=("resolution-shift",),
        devices=("cpu",),  # exact or tiny: runs on the CPU whatever device is asked for
        title="With the shift, the low-resolution content keeps its quality across resolutions; the fine detail does not",
        statement=r"Sampling the same power-law field at $16^2$, $32^2$ and $64^2$ with a schedule tuned at $16^2$: shifted by "
        r"$s=R/16$, the error of the samples *pooled to* $16^2$ stays constant across resolutions at equal NFE, while "
        r"unshifted it grows with the resolution; at full resolution the shift moves steps away from low noise, and the "
        r"fine-scale power spectrum is reproduced worse.",
        source=Source(part=22, equation="(5)", paper="hoogeboom2023simple", note="an experiment of this suite"),
        kind=Kind.EMPIRICAL,
        chapter=CHAPTER,
        check=_check_c228,
        tests=(T + "test_sampler_law_matches_monte_carlo", T + "test_shift_experiment_is_json"),
        remark="Measured with exact denoisers, so only the sampler's discretisation differs between the runs; the quality "
        "numbers are exact (no Monte Carlo): for Gaussian data the sampler's output law is Gaussian and computed from its "
        "impulse responses (diffmath.output_law). A trained network adds its own errors, which this toy does not model.",
    )
)
