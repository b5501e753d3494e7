r"""Part 0, the toy lab: the exact facts about Gaussian-mixture diffusion that every chapter uses.

Each claim has a sympy derivation (in one dimension, or with symbolic functions of time; the
statement in :math:`d` dimensions follows coordinate-wise in each eigenbasis) and a numeric check
in :math:`d \ge 2` with full covariances against an independent computation: scipy, autograd,
Monte Carlo (5 standard errors from the same samples), or a second route through the library.

Tolerances: float64 identities within a relative error of ``EXACT_RTOL`` (1e-10); ODE solutions
within ``ODE_RTOL`` (1e-9) of the closed form; Monte Carlo within ``montecarlo.Z_BOUND`` (5) SE.
"""

from __future__ import annotations


import numpy as np
import sympy as sp
import torch
from scipy import stats as scipy_stats

from diffmath import flows, montecarlo, parametrisation, schedules
from diffmath.claims._helpers import generator, rel_err
from diffmath.claims.controls import Plant
from diffmath.claims.registry import CheckResult, Claim, Kind, Measurement, Source, register
from diffmath.symbolic import Derivation, Step
from diffmath.toys import random_mixture

CHAPTER = "toy-lab"
EXACT_RTOL = 1e-10
ODE_RTOL = 1e-9
Z = montecarlo.Z_BOUND


_gen = generator


# --- shared sympy symbols ------------------------------------------------------------------------
x, y, m, eps = sp.symbols("x y m epsilon", real=True)
a, s, v = sp.symbols("alpha sigma v", positive=True)


def log_normal(z, mu, var):
    """:math:`\\log\\mathcal N(z;\\mu,\\mathrm{var})` in one dimension."""
    return -((z - mu) ** 2) / (2 * var) - sp.log(2 * sp.pi * var) / 2


S1 = a**2 * v + s**2  # variance of alpha x0 + sigma eps for x0 ~ N(m, v)
POST_VAR = v * s**2 / S1
POST_MEAN = m + a * v * (x - a * m) / S1


# --- C0.1 the diffused mixture ----------------------------------------------------------------------
def _derive_c01() -> Derivation:
    return Derivation(
        [
            Step(
                log_normal(x, a * y, s**2) + log_normal(y, m, v),
                log_normal(x, a * m, S1) + log_normal(y, POST_MEAN, POST_VAR),
                why="complete the square in the data point",
                lhs_tex=r"\log\mathcal N(x;\alpha x_0,\sigma^2)+\log\mathcal N(x_0;\mu,v)",
                rhs_tex=r"\log\mathcal N(x;\alpha\mu,\alpha^2v+\sigma^2)+\log\mathcal N(x_0;m_{\rm post},v_{\rm post})",
            ),
            Step(
                sp.integrate(sp.exp(log_normal(y, POST_MEAN, POST_VAR)), (y, -sp.oo, sp.oo)),
                sp.Integer(1),
                why="integrate out the data point",
                lhs_tex=r"\int\mathcal N(x_0;m_{\rm post},v_{\rm post})\,dx_0",
                rhs_tex="1",
            ),
        ],
        setting=r"One component in one dimension, $x_0\sim\mathcal N(\mu,v)$, with "
        r"$m_{\rm post}=\mu+\alpha v(x-\alpha\mu)/(\alpha^2v+\sigma^2)$ and $v_{\rm post}=v\sigma^2/(\alpha^2v+\sigma^2)$; "
        r"in $d$ dimensions the same "
        r"computation runs in the eigenbasis of $\Sigma_k$, and a mixture is handled component by component.",
    )


def _check_c01(device: torch.device) -> CheckResult:
    gm = random_mixture(3, 2, cov_type="full", seed=1, device=device)
    alpha, sigma, n = 0.6, 0.8, 200_000
    g = _gen(device, 11)
    x0 = gm.sample(n, generator=g)
    xt = alpha * x0 + sigma * torch.randn(x0.shape, generator=g, dtype=x0.dtype, device=device)
    gt = gm.diffuse(alpha, sigma)
    z_mean = montecarlo.mean(xt).z(gt.mean()).max().item()
    second = gt.covariance() + torch.outer(gt.mean(), gt.mean())
    idx = [(0, 0), (0, 1), (1, 1)]
    prods = torch.stack([xt[:, i] * xt[:, j] for i, j in idx], 1)
    z_second = montecarlo.mean(prods).z(torch.stack([second[i, j] for i, j in idx])).max().item()
    # half-space probabilities P(u.x <= c), exact from each component's normal law, with thresholds in the tails (where
    # P depends most on the variances): the 2%, 98% and 5% quantiles of an independent sample's projections
    u = torch.randn(3, 2, generator=_gen(device, 12), dtype=x0.dtype, device=device)
    g2 = _gen(device, 13)
    scout = alpha * gm.sample(20_000, generator=g2)
    scout = scout + sigma * torch.randn(scout.shape, generator=g2, dtype=x0.dtype, device=device)
    levels = torch.tensor([0.02, 0.98, 0.05], dtype=x0.dtype, device=device)
    c = torch.stack([torch.quantile(scout @ u[j], levels[j]) for j in range(3)])
    proj_mean = gt.means @ u.T  # (K, 3)
    proj_var = torch.einsum("ji,kil,jl->kj", u, gt.covariances(), u)
    cdf = torch.special.ndtr((c[None] - proj_mean) / proj_var.sqrt())
    exact = gt.weights @ cdf
    hits = ((xt @ u.T) <= c[None]).to(x0.dtype)
    z_half = montecarlo.mean(hits).z(exact).max().item()
    return CheckResult(
        (
            Measurement("max z, mean of x_t (2 coordinates)", z_mean, Z),
            Measurement("max z, second moments of x_t (3 entries)", z_second, Z),
            Measurement("max z, P(u.x_t <= c) (3 half-planes in the tails)", z_half, Z),
        ),
        setting=f"K=3, d=2, full covariances, alpha={alpha}, sigma={sigma}, n={n} samples",
        device=str(device),
    )


register(
    Claim(
        id="C0.1",
        title="A diffused Gaussian mixture is a Gaussian mixture",
        statement=r"If $x_0\sim\sum_k\pi_k\mathcal N(\mu_k,\Sigma_k)$ and $\varepsilon\sim\mathcal N(0,I)$ is "
        r"independent of $x_0$, then $x_t=\alpha x_0+\sigma\varepsilon\sim\sum_k\pi_k\mathcal N(\alpha\mu_k,\,"
        r"\alpha^2\Sigma_k+\sigma^2 I)$.",
        source=Source(note="standard Gaussian convolution; the toy lab's foundation", paper="ho2020ddpm"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c01,
        check=_check_c01,
        plants=(
            Plant(
                "diffmath.mixture:GaussianMixture.mean",
                add=0.05,
                why="the mixture's mean off by 0.05",
                fails=("mean of x_t",),
            ),
            Plant(
                "diffmath.mixture:GaussianMixture.covariance",
                rel=0.05,
                why="the mixture's covariance 5% too large",
                fails=("second moments",),
            ),
            Plant(
                "diffmath.mixture:GaussianMixture.covariances",
                rel=0.1,
                why="the component covariances 10% too large",
                fails=("half-planes",),
            ),
        ),
        tests=(
            "tests/test_mixture.py::test_diffuse_matches_monte_carlo",
            "tests/test_mixture.py::test_diffuse_parameters_property",
        ),
    )
)


# --- C0.2 the score of a mixture ------------------------------------------------------------------
def _derive_c02() -> Derivation:
    p1, p2 = sp.symbols("pi_1 pi_2", positive=True)
    m1, m2 = sp.symbols("mu_1 mu_2", real=True)
    v1, v2 = sp.symbols("v_1 v_2", positive=True)
    n1, n2 = sp.exp(log_normal(x, m1, v1)), sp.exp(log_normal(x, m2, v2))
    p = p1 * n1 + p2 * n2
    r1, r2 = p1 * n1 / p, p2 * n2 / p
    return Derivation(
        [
            Step(
                sp.diff(log_normal(x, m1, v1), x),
                -(x - m1) / v1,
                why="score of one component",
                lhs_tex=r"\partial_x\log\mathcal N(x;\mu_k,v_k)",
                rhs_tex=r"-(x-\mu_k)/v_k",
            ),
            Step(
                sp.diff(sp.log(p), x),
                -r1 * (x - m1) / v1 - r2 * (x - m2) / v2,
                why="chain rule, responsibilities as weights",
                lhs_tex=r"\partial_x\log\sum_k\pi_k\mathcal N(x;\mu_k,v_k)",
                rhs_tex=r"-\sum_k r_k(x)\,(x-\mu_k)/v_k",
            ),
        ],
        setting="Two components in one dimension (the sum over k is written out); the d-dimensional "
        r"gradient $-\Sigma_k^{-1}(x-\mu_k)$ of each component is checked numerically against autograd.",
    )


def _check_c02(device: torch.device) -> CheckResult:
    ms = []
    worst_score, worst_logp, worst_routes = 0.0, 0.0, 0.0
    for cov_type in ("full", "diagonal", "isotropic"):
        gm = random_mixture(4, 5, cov_type=cov_type, seed=2, device=device)
        pts = gm.sample(64, generator=_gen(device, 21))
        pts = torch.cat([pts, 6 * pts])  # include points far in the tails
        xg = pts.clone().requires_grad_(True)
        (auto,) = torch.autograd.grad(gm.log_prob(xg).sum(), xg)
        worst_score = max(worst_score, rel_err(gm.score(pts), auto))
        covs = gm.covariances().cpu().numpy()
        ref = scipy_stats_logpdf(pts.cpu().numpy(), gm.weights.cpu().numpy(), gm.means.cpu().numpy(), covs)
        worst_logp = max(worst_logp, rel_err(gm.log_prob(pts).cpu(), torch.as_tensor(ref)))
        worst_routes = max(worst_routes, rel_err(gm.score_at(pts, 1.0, 0.0), gm.score(pts)))
    ms.append(Measurement("max rel. error, score vs autograd of log p", worst_score, EXACT_RTOL))
    ms.append(Measurement("max rel. error, log p vs scipy.stats", worst_logp, EXACT_RTOL))
    ms.append(Measurement("max rel. error, eigenbasis route vs precision route", worst_routes, EXACT_RTOL))
    return CheckResult(tuple(ms), setting="K=4, d=5, full/diagonal/isotropic, 128 points (half in the tails)", device=str(device))


def scipy_stats_logpdf(pts: np.ndarray, w: np.ndarray, mu: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """Mixture log-density by scipy.stats (an independent implementation), with log-sum-exp."""
    comps = np.stack([scipy_stats.multivariate_normal(mu[k], covs[k]).logpdf(pts) for k in range(len(w))], -1)
    comps = comps.reshape(len(pts), len(w)) + np.log(w)
    top = comps.max(-1, keepdims=True)
    return (top + np.log(np.exp(comps - top).sum(-1, keepdims=True)))[:, 0]


register(
    Claim(
        id="C0.2",
        title="The score of a Gaussian mixture",
        statement=r"$\nabla\log p(x)=-\sum_k r_k(x)\,\Sigma_k^{-1}(x-\mu_k)$ with responsibilities "
        r"$r_k(x)=\pi_k\mathcal N(x;\mu_k,\Sigma_k)/p(x)$; the diffused score is the same formula with "
        r"$\alpha\mu_k$ and $S_k=\alpha^2\Sigma_k+\sigma^2I$.",
        source=Source(note="the closed form every exact check in the suite relies on"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c02,
        check=_check_c02,
        plants=(
            Plant(
                "diffmath.mixture:GaussianMixture.score",
                rel=1e-7,
                why="the score off by one part in 10^7",
                fails=("autograd",),
                reads=1e-7,
            ),
            Plant("diffmath.mixture:GaussianMixture.log_prob", rel=1e-7, why="log p off by one part in 10^7", fails=("scipy",), reads=1e-7),
            Plant(
                "diffmath.mixture:GaussianMixture.score_at",
                rel=1e-7,
                why="the eigenbasis score off by one part in 10^7",
                fails=("eigenbasis",),
                reads=1e-7,
            ),
        ),
        tests=(
            "tests/test_mixture.py::test_score_matches_autograd",
            "tests/test_mixture.py::test_log_prob_matches_scipy",
        ),
    )
)


# --- C0.3 the exact denoiser ----------------------------------------------------------------------
def _derive_c03() -> Derivation:
    return Derivation(
        [
            Step(
                sp.diff(log_normal(x, a * y, s**2) + log_normal(y, m, v) - log_normal(y, POST_MEAN, POST_VAR), y),
                sp.Integer(0),
                why="joint and posterior differ by a function of x only",
                lhs_tex=r"\partial_{x_0}\big[\log p(x\mid x_0)+\log p(x_0)-\log\mathcal N(x_0;m_{\rm post},v_{\rm post})\big]",
                rhs_tex="0",
            ),
            Step(
                POST_MEAN,
                POST_VAR * (m / v + a * x / s**2),
                why="precision-weighted form",
                lhs_tex=r"m_{\rm post}=\mu+\frac{\alpha v(x-\alpha\mu)}{\alpha^2 v+\sigma^2}",
                rhs_tex=r"v_{\rm post}\Big(\frac{\mu}{v}+\frac{\alpha x}{\sigma^2}\Big)",
            ),
        ],
        setting=r"One component in one dimension; for a mixture the posterior is "
        r"$\sum_k r_k(x)\,\mathcal N(m_k,P_k)$ with the responsibilities of the diffused mixture, so "
        r"$\mathbb E[x_0\mid x]=\sum_k r_k m_k$.",
    )


def _check_c03(device: torch.device) -> CheckResult:
    gm = random_mixture(3, 2, cov_type="full", seed=3, device=device)
    alpha, sigma, n = 0.8, 0.6, 400_000
    g = _gen(device, 31)
    prior = gm.sample(n, generator=g)
    pts = gm.diffuse(alpha, sigma).sample(4, generator=g)
    exact = gm.denoise(pts, alpha, sigma)
    zs = []
    for i in range(pts.shape[0]):
        logw = -((pts[i] - alpha * prior) ** 2).sum(-1) / (2 * sigma**2)
        zs.append(montecarlo.self_normalised(prior, logw).z(exact[i]).max().item())
    return CheckResult(
        (Measurement("max z, E[x0|x_t] vs self-normalised importance sampling (4 points x 2 coords)", max(zs), Z),),
        setting=f"K=3, d=2, full covariances, alpha={alpha}, sigma={sigma}, n={n} prior samples",
        device=str(device),
    )


register(
    Claim(
        id="C0.3",
        title="The exact denoiser of a Gaussian mixture",
        statement=r"$\mathbb E[x_0\mid \alpha x_0+\sigma\varepsilon=x]=\sum_k r_k(x)\big(\mu_k+\alpha\Sigma_k S_k^{-1}"
        r"(x-\alpha\mu_k)\big)$, $S_k=\alpha^2\Sigma_k+\sigma^2I$, with $r_k$ the responsibilities of the "
        r"diffused mixture.",
        source=Source(note="Gaussian conjugacy", paper="efron2011tweedie"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c03,
        check=_check_c03,
        plants=(
            Plant("diffmath.mixture:GaussianMixture.denoise", add=0.02, why="the denoiser off by 0.02"),
        ),
        tests=(
            "tests/test_mixture.py::test_denoise_matches_importance_sampling",
            "tests/test_mixture.py::test_denoise_matches_quadrature_property",
        ),
    )
)


# --- C0.4 Tweedie ------------------------------------------------------------------------------------
def _derive_c04() -> Derivation:
    kernel = sp.exp(log_normal(x, a * y, s**2))
    score1 = sp.diff(log_normal(x, a * m, S1), x)
    return Derivation(
        [
            Step(
                sp.diff(kernel, x),
                (a * y - x) / s**2 * kernel,
                why="differentiate the Gaussian kernel",
                lhs_tex=r"\nabla_x\,\mathcal N(x;\alpha x_0,\sigma^2 I)",
                rhs_tex=r"\frac{\alpha x_0-x}{\sigma^2}\,\mathcal N(x;\alpha x_0,\sigma^2I)",
            ),
            Step(
                score1,
                (a * POST_MEAN - x) / s**2,
                why="check on one Gaussian: both sides in closed form",
                lhs_tex=r"\nabla\log\mathcal N(x;\alpha\mu,\alpha^2v+\sigma^2)",
                rhs_tex=r"\frac{\alpha\,m_{\rm post}(x)-x}{\sigma^2}",
            ),
        ],
        setting=r"Integrating the first step against $p_0(x_0)$ and dividing by $p_t(x)$ gives "
        r"$\nabla\log p_t(x)=(\alpha\,\mathbb E[x_0\mid x_t=x]-x)/\sigma^2$ for any data law with finite mean; "
        r"the second step confirms it on a Gaussian.",
    )


def _check_c04(device: torch.device) -> CheckResult:
    # The identity is sigma^2 grad log p_t = alpha D - x, whose terms are of the size of x; at small
    # sigma both sides are a small difference of such terms, so the error is measured against |x|.
    gm = random_mixture(5, 8, cov_type="full", seed=4, device=device)
    worst_tweedie, worst_auto = 0.0, 0.0
    for alpha, sigma in ((1.0, 1e-3), (0.9, 0.3), (0.5, 1.0), (0.1, 10.0), (1.0, 1e3)):
        gt = gm.diffuse(alpha, sigma)
        pts = gt.sample(100, generator=_gen(device, 41))
        lhs = alpha * gm.denoise(pts, alpha, sigma) - pts
        scale = pts.abs().max()
        worst_tweedie = max(worst_tweedie, ((lhs - sigma**2 * gt.score(pts)).abs().max() / scale).item())
        xg = pts.clone().requires_grad_(True)
        (auto,) = torch.autograd.grad(gt.log_prob(xg).sum(), xg)
        worst_auto = max(worst_auto, ((lhs - sigma**2 * auto).abs().max() / scale).item())
    return CheckResult(
        (
            Measurement("max |alpha D - x - sigma^2 score| / max |x|, closed-form diffused score", worst_tweedie, EXACT_RTOL),
            Measurement("max |alpha D - x - sigma^2 score| / max |x|, score by autograd of log p_t", worst_auto, EXACT_RTOL),
        ),
        setting="K=5, d=8, full covariances; (alpha, sigma) from (1, 1e-3) to (1, 1e3); 100 points each",
        device=str(device),
    )


register(
    Claim(
        id="C0.4",
        title="Tweedie's formula",
        statement=r"$\nabla\log p_t(x)=\dfrac{\alpha\,\mathbb E[x_0\mid x_t=x]-x}{\sigma^2}$ for $x_t=\alpha x_0+\sigma\varepsilon$.",
        source=Source(note="used by every article of the series", paper="efron2011tweedie"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c04,
        check=_check_c04,
        plants=(
            Plant(
                "diffmath.mixture:GaussianMixture.denoise",
                rel=1e-7,
                why="the denoiser off by one part in 10^7",
                fails=("closed-form", "autograd"),
                reads=1e-7,
            ),
            Plant(
                "diffmath.mixture:GaussianMixture.score",
                rel=1e-7,
                why="the diffused score off by one part in 10^7",
                fails=("closed-form",),
                reads=1e-7,
            ),
            Plant(
                "diffmath.mixture:GaussianMixture.log_prob",
                rel=1e-7,
                why="log p_t off by one part in 10^7",
                fails=("autograd",),
                reads=1e-7,
            ),
        ),
        tests=(
            "tests/test_mixture.py::test_tweedie_property",
            "tests/test_mixture.py::test_denoise_finite_over_noise_range",
        ),
    )
)


# --- C0.5 the conditional score -----------------------------------------------------------------
def _derive_c05() -> Derivation:
    return Derivation(
        [
            Step(
                sp.Subs(sp.Derivative(log_normal(x, a * y, s**2), x), x, a * y + s * eps),
                -eps / s,
                why="differentiate the Gaussian log-density in x_t, then substitute the forward process",
                lhs_tex=r"\nabla_{x_t}\log p(x_t\mid x_0)\big|_{x_t=\alpha x_0+\sigma\varepsilon}",
                rhs_tex=r"-\varepsilon/\sigma",
            ),
            Step(
                -(x - a * POST_MEAN) / s**2,
                sp.diff(log_normal(x, a * m, S1), x),
                why="posterior average, Gaussian case",
                lhs_tex=r"\mathbb E\big[-(x_t-\alpha x_0)/\sigma^2\mid x_t\big]",
                rhs_tex=r"\nabla\log p_t(x_t)",
            ),
        ],
        setting="One dimension; the second step is C0.4 read as a conditional expectation.",
    )


def _check_c05(device: torch.device) -> CheckResult:
    gm = random_mixture(3, 2, cov_type="full", seed=5, device=device)
    alpha, sigma, n = 0.7, 0.5, 200_000
    g = _gen(device, 51)
    x0 = gm.sample(n, generator=g)
    e = torch.randn(x0.shape, generator=g, dtype=x0.dtype, device=device)
    xt = (alpha * x0 + sigma * e).requires_grad_(True)
    cond = -((xt - alpha * x0) ** 2).sum(-1) / (2 * sigma**2)
    (auto,) = torch.autograd.grad(cond.sum(), xt)
    exact_err = rel_err(auto, -e / sigma)
    xt = xt.detach()
    resid = -e / sigma - gm.score_at(xt, alpha, sigma)  # conditional minus marginal score
    tests = torch.cat([torch.ones(n, 1, dtype=xt.dtype, device=device), xt, torch.tanh(xt)], 1)  # h(x_t)
    prods = (resid[:, :, None] * tests[:, None, :]).reshape(n, -1)
    z = montecarlo.mean(prods).z(0.0).max().item()
    return CheckResult(
        (
            Measurement("max rel. error, autograd of log p(x_t|x_0) vs -eps/sigma", exact_err, EXACT_RTOL),
            Measurement("max z, E[(cond. score - score) h(x_t)] = 0 (2 coords x 5 test functions)", z, Z),
        ),
        setting=f"K=3, d=2, alpha={alpha}, sigma={sigma}, n={n}",
        device=str(device),
    )


register(
    Claim(
        id="C0.5",
        title="The conditional score is -ε/σ, and its posterior average is the score",
        statement=r"$\nabla_{x_t}\log p(x_t\mid x_0)=-(x_t-\alpha x_0)/\sigma^2=-\varepsilon/\sigma$, and "
        r"$\mathbb E[-\varepsilon/\sigma\mid x_t]=\nabla\log p_t(x_t)$: the residual "
        r"$-\varepsilon/\sigma-\nabla\log p_t(x_t)$ is orthogonal to every function of $x_t$.",
        source=Source(note="the basis of denoising score matching (part 18)", paper="vincent2011connection"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c05,
        check=_check_c05,
        plants=(
            Plant(
                "diffmath.mixture:GaussianMixture.score_at",
                rel=0.1,
                why="the diffused score 10% too large",
                fails=("cond. score",),
            ),
        ),
        tests=(
            "tests/test_mixture.py::test_conditional_score_residual_orthogonal",
            "tests/test_mixture.py::test_conditional_score_posterior_average_property",
        ),
    )
)


# --- C0.6 the probability-flow ODE --------------------------------------------------------------
t_sym = sp.symbols("t", real=True)
A_f, S_f = sp.Function("alpha")(t_sym), sp.Function("sigma")(t_sym)


def _derive_c06() -> Derivation:
    D = sp.symbols("D", real=True)
    dA, dS = sp.diff(A_f, t_sym), sp.diff(S_f, t_sym)
    score = (A_f * D - x) / S_f**2
    f_drift = dA / A_f  # f_t of the forward SDE dx = f x dt + g dw
    g2 = sp.diff(S_f**2, t_sym) - 2 * f_drift * S_f**2  # g_t^2 = d(sigma^2)/dt - 2 f sigma^2
    vel = dA * D + dS * (x - A_f * D) / S_f
    return Derivation(
        [
            Step(
                f_drift * x - g2 / 2 * score,
                vel,
                why="Song et al., with Tweedie for the score",
                lhs_tex=r"f_t x-\tfrac12 g_t^2\nabla\log p_t(x)",
                rhs_tex=r"\dot\alpha D+\dot\sigma\,\frac{x-\alpha D}{\sigma}",
            ),
            Step(
                sp.Subs(vel, (x, D), (A_f * sp.Symbol("x_0") + S_f * eps, sp.Symbol("x_0"))),
                dA * sp.Symbol("x_0") + dS * eps,
                why="the conditional velocity: substitute D = x_0 and x = alpha x_0 + sigma eps",
                lhs_tex=r"v\big|_{D=x_0,\;x=\alpha x_0+\sigma\varepsilon}",
                rhs_tex=r"\dot\alpha x_0+\dot\sigma\varepsilon",
            ),
        ],
        setting=r"$f_t=\dot\alpha/\alpha$, $g_t^2=\tfrac{d}{dt}\sigma^2-2f_t\sigma^2$ make the SDE "
        r"$dx=f_tx\,dt+g_t\,dw$ have the marginals of $\alpha_t x_0+\sigma_t\varepsilon$; $D=\mathbb E[x_0\mid x_t=x]$.",
    )


def _check_c06(device: torch.device) -> CheckResult:
    gm = random_mixture(3, 2, cov_type="full", seed=6, device=device)
    sched = schedules.VPCosine()
    velocity = flows.pf_ode_velocity(sched, gm.denoise)
    worst = 0.0
    g = _gen(device, 61)
    for t_val in (0.1, 0.4, 0.7, 0.95):
        t = torch.tensor(t_val, dtype=torch.float64, device=device, requires_grad=True)
        gt = gm.diffuse(sched.alpha(t), sched.sigma(t))
        pts = gt.sample(8, generator=g).detach()
        for i in range(pts.shape[0]):
            xi = pts[i : i + 1].clone().requires_grad_(True)
            logp = gm.diffuse(sched.alpha(t), sched.sigma(t)).log_prob(xi).sum()
            dt_logp, score = torch.autograd.grad(logp, (t, xi))
            vel = velocity(xi, t_val)
            div = sum(torch.autograd.grad(vel[0, j], xi, retain_graph=True)[0][0, j] for j in range(2))
            transport = (vel * score).sum()
            resid = dt_logp + div + transport
            scale = dt_logp.abs() + div.abs() + transport.abs()
            worst = max(worst, (resid.abs() / scale).item())
    return CheckResult(
        (Measurement("max |d_t log p + div v + v.grad log p| / (sum of |terms|)", worst, EXACT_RTOL),),
        setting="K=3, d=2, full covariances, cosine VP schedule, t in {0.1, 0.4, 0.7, 0.95}, 8 points each; "
        "all derivatives by autograd",
        device=str(device),
    )


register(
    Claim(
        id="C0.6",
        title="The probability-flow ODE and its continuity equation",
        statement=r"The velocity $v(x,t)=\dot\alpha_t D+\dot\sigma_t\,(x-\alpha_tD)/\sigma_t$, "
        r"$D=\mathbb E[x_0\mid x_t=x]$, equals Song et al.'s $f_tx-\tfrac12g_t^2\nabla\log p_t(x)$ and transports "
        r"the marginals: $\partial_tp_t+\nabla\cdot(p_tv)=0$.",
        source=Source(part=None, note="Su's parts 6 and 12 derive it; parts 16-21 use it", paper="song2021sde"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c06,
        check=_check_c06,
        plants=(
            Plant("diffmath.mixture:GaussianMixture.denoise", rel=1e-7, why="the denoiser off by one part in 10^7"),
            Plant("diffmath.schedules:VPCosine.dsigma", rel=1e-7, why="dsigma/dt off by one part in 10^7"),
        ),
        tests=(
            "tests/test_flows.py::test_continuity_equation",
            "tests/test_flows.py::test_continuity_equation_property",
        ),
    )
)


# --- C0.7 the exact flow of a Gaussian ----------------------------------------------------------
def _derive_c07() -> Derivation:
    z = sp.symbols("z", real=True)
    dA, dS = sp.diff(A_f, t_sym), sp.diff(S_f, t_sym)
    var_t = A_f**2 * v + S_f**2
    x_t = A_f * m + sp.sqrt(var_t) * z  # claimed trajectory, z fixed along it
    D = m + A_f * v * (x_t - A_f * m) / var_t  # Gaussian denoiser at x_t
    return Derivation(
        [
            Step(
                sp.diff(x_t, t_sym),
                dA * D + dS * (x_t - A_f * D) / S_f,
                why="the trajectory solves the PF-ODE",
                lhs_tex=r"\frac{d}{dt}\Big(\alpha_t\mu+\sqrt{\alpha_t^2v+\sigma_t^2}\,z\Big)",
                rhs_tex=r"\dot\alpha_t D+\dot\sigma_t\frac{x_t-\alpha_t D}{\sigma_t}",
            ),
        ],
        setting=r"One dimension, $x_0\sim\mathcal N(\mu,v)$, $D(x)=\mu+\alpha v(x-\alpha\mu)/(\alpha^2v+\sigma^2)$; "
        r"in $d$ dimensions the same holds in the eigenbasis of $\Sigma$, which gives the matrix form.",
    )


def _check_c07(device: torch.device) -> CheckResult:
    g = _gen(device, 71)
    d = 4
    A = torch.randn(d, d, generator=g, dtype=torch.float64, device=device)
    cov = A @ A.T / d + 0.1 * torch.eye(d, dtype=torch.float64, device=device)
    mu = torch.randn(d, generator=g, dtype=torch.float64, device=device)
    from diffmath.mixture import GaussianMixture

    gauss = GaussianMixture(torch.ones(1, dtype=torch.float64, device=device), mu[None], cov[None])
    x_hi = mu + 80.0 * torch.randn(64, d, generator=g, dtype=torch.float64, device=device)
    sol, stats = flows.solve_pf_ode(gauss.denoise, x_hi, 80.0, 0.002, return_stats=True)
    exact = flows.gaussian_flow(mu, cov, x_hi, 1.0, 80.0, 1.0, 0.002)
    err_edm = rel_err(sol, exact)
    sched = schedules.VPCosine()
    x_t = gauss.diffuse(sched.alpha(0.95), sched.sigma(0.95)).sample(64, generator=g)
    sol_vp = flows.solve_schedule(sched, gauss.denoise, x_t, 0.95, 0.02)
    exact_vp = flows.gaussian_flow(mu, cov, x_t, sched.alpha(0.95), sched.sigma(0.95), sched.alpha(0.02), sched.sigma(0.02))
    err_vp = rel_err(sol_vp, exact_vp)
    return CheckResult(
        (
            Measurement("max rel. error, reference solver vs closed form (EDM sigma 80 -> 0.002)", err_edm, ODE_RTOL),
            Measurement("max rel. error, reference solver vs closed form (cosine VP t 0.95 -> 0.02)", err_vp, ODE_RTOL),
        ),
        setting=f"d={d}, full covariance, 64 points; solver took {stats.accepted} steps, {stats.evaluations} denoiser calls",
        device=str(device),
    )


register(
    Claim(
        id="C0.7",
        title="The exact probability flow of a Gaussian",
        statement=r"For $x_0\sim\mathcal N(\mu,\Sigma)$ the PF-ODE maps $x_s$ to "
        r"$x_t=\alpha_t\mu+(\alpha_t^2\Sigma+\sigma_t^2I)^{1/2}(\alpha_s^2\Sigma+\sigma_s^2I)^{-1/2}(x_s-\alpha_s\mu)$; "
        r"the library's reference solver reproduces it to $10^{-9}$.",
        source=Source(note="the closed-form trajectories used by parts 16, 21 and 23", paper="karras2022edm"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c07,
        check=_check_c07,
        plants=(
            Plant(
                "diffmath.mixture:GaussianMixture.denoise",
                rel=1e-7,
                why="the denoiser off by one part in 10^7",
                fails=("EDM", "cosine VP"),
            ),
            Plant(
                "diffmath.flows:gaussian_flow",
                rel=1e-7,
                why="the closed-form flow off by one part in 10^7",
                fails=("EDM", "cosine VP"),
                reads=1e-7,
            ),
            Plant(
                "diffmath.schedules:VPCosine.edm_sigma",
                rel=1e-7,
                why="the EDM level sigma/alpha off by one part in 10^7",
                fails=("cosine VP",),
                reads=1e-7,
            ),
        ),
        tests=(
            "tests/test_flows.py::test_reference_solver_matches_gaussian_flow",
            "tests/test_flows.py::test_gaussian_flow_solves_pf_ode_property",
            "tests/test_flows.py::test_gaussian_flow_composes_and_inverts",
        ),
    )
)


# --- C0.8 parametrisations ------------------------------------------------------------------------
def _derive_c08() -> Derivation:
    x0s, da, ds = sp.symbols("x_0 alphadot sigmadot", real=True)
    xs = a * x0s + s * eps
    nrm, det = a**2 + s**2, a * ds - s * da
    # kind: (its definition in terms of (x0, eps), the explicit inverse of (x0, eps) -> (x, prediction), TeX)
    kinds = {
        "x0": (x0s, sp.Matrix([[0, 1], [1 / s, -a / s]]), r"\begin{pmatrix}0&1\\1/\sigma&-\alpha/\sigma\end{pmatrix}", r"\hat x_0"),
        "eps": (eps, sp.Matrix([[1 / a, -s / a], [0, 1]]), r"\begin{pmatrix}1/\alpha&-\sigma/\alpha\\0&1\end{pmatrix}", r"\hat\varepsilon"),
        "score": (-eps / s, sp.Matrix([[1 / a, s**2 / a], [0, -s]]), r"\begin{pmatrix}1/\alpha&\sigma^2/\alpha\\0&-\sigma\end{pmatrix}", "s"),
        "v": (a * eps - s * x0s, sp.Matrix([[a, -s], [s, a]]) / nrm,
              r"\frac1{\alpha^2+\sigma^2}\begin{pmatrix}\alpha&-\sigma\\\sigma&\alpha\end{pmatrix}", "v"),
        "velocity": (da * x0s + ds * eps, sp.Matrix([[ds, -s], [-da, a]]) / det,
                     r"\frac1{\alpha\dot\sigma-\sigma\dot\alpha}\begin{pmatrix}\dot\sigma&-\sigma\\-\dot\alpha&\alpha\end{pmatrix}", "u"),
    }
    assert set(kinds) == set(parametrisation.KINDS)
    steps = [
        Step(
            sp.MatMul(inverse, sp.Matrix([xs, pred]), evaluate=False),
            sp.Matrix([x0s, eps]),
            why=f"{kind}: the inverse of the 2x2 linear map (x0, eps) -> (x, prediction) recovers the pair",
            lhs_tex=rf"{inv_tex}\begin{{pmatrix}}x\\{name}\end{{pmatrix}}",
            rhs_tex=r"\begin{pmatrix}x_0\\\varepsilon\end{pmatrix}",
        )
        for kind, (pred, inverse, inv_tex, name) in kinds.items()
    ]
    return Derivation(
        steps,
        setting=r"Symbols $x_0,\varepsilon$, $\alpha,\sigma>0$, $\dot\alpha,\dot\sigma$; $x=\alpha x_0+\sigma\varepsilon$ and "
        r"each prediction is linear in $(x_0,\varepsilon)$: $\hat x_0=x_0$, $\hat\varepsilon=\varepsilon$, $s=-\varepsilon/\sigma$, "
        r"$v=\alpha\varepsilon-\sigma x_0$, $u=\dot\alpha x_0+\dot\sigma\varepsilon$. Each step multiplies the pair "
        r"$(x,\text{prediction})$, written in $(x_0,\varepsilon)$, by the explicit inverse of that $2\times2$ map (the "
        r"library's conversion formulas) and recovers $(x_0,\varepsilon)$; for $u$ it needs "
        r"$\alpha\dot\sigma-\sigma\dot\alpha\neq0$. The check runs the library's conversions on a mixture.",
    )


def _check_c08(device: torch.device) -> CheckResult:
    gm = random_mixture(4, 3, cov_type="full", seed=8, device=device)
    sched = schedules.VPCosine()
    t = 0.4
    al, si, da, ds = (float(f(t)) for f in (sched.alpha, sched.sigma, sched.dalpha, sched.dsigma))
    pts = gm.diffuse(al, si).sample(200, generator=_gen(device, 81))
    D = gm.denoise(pts, al, si)
    conv = dict(x=pts, alpha=al, sigma=si, dalpha=da, dsigma=ds)
    score = parametrisation.convert(D, "x0", "score", **conv)
    vel = parametrisation.convert(D, "x0", "velocity", **conv)
    err_score = rel_err(score, gm.score_at(pts, al, si))
    err_vel = rel_err(vel, flows.pf_ode_velocity(sched, gm.denoise)(pts, t))
    worst = 0.0
    for src in parametrisation.KINDS:
        val = parametrisation.convert(D, "x0", src, **conv)
        for dst in parametrisation.KINDS:
            there = parametrisation.convert(val, src, dst, **conv)
            worst = max(worst, rel_err(parametrisation.convert(there, dst, src, **conv), val))
    return CheckResult(
        (
            Measurement("max rel. error, score from the exact x0 vs closed-form score", err_score, EXACT_RTOL),
            Measurement("max rel. error, velocity from the exact x0 vs PF-ODE velocity", err_vel, EXACT_RTOL),
            Measurement("max rel. error over all 25 round trips", worst, EXACT_RTOL),
        ),
        setting="K=4, d=3, cosine VP at t=0.4, 200 points",
        device=str(device),
    )


register(
    Claim(
        id="C0.8",
        title="x0-, ε-, score-, v- and velocity-prediction determine one another",
        statement=r"Given $x=\alpha x_0+\sigma\varepsilon$: $\hat\varepsilon=(x-\alpha\hat x_0)/\sigma$, "
        r"$s=-\hat\varepsilon/\sigma$, $v=\alpha\hat\varepsilon-\sigma\hat x_0$, $u=\dot\alpha\hat x_0+\dot\sigma\hat\varepsilon$, "
        r"and each is inverted by an affine map (for $u$ when $\alpha\dot\sigma-\sigma\dot\alpha\neq0$).",
        source=Source(note="v-prediction: Salimans & Ho; velocity: rectified flow / flow matching", paper="salimans2022progressive"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c08,
        check=_check_c08,
        plants=(
            Plant(
                "diffmath.mixture:GaussianMixture.score_at",
                rel=1e-7,
                why="the closed-form score off by one part in 10^7",
                fails=("closed-form score",),
                reads=1e-7,
            ),
            Plant(
                "diffmath.parametrisation:_to_x0_eps",
                index=0,
                rel=1e-7,
                why="the recovered x0 off by one part in 10^7",
                fails=("velocity", "round trips"),
            ),
            Plant(
                "diffmath.parametrisation:_from_x0_eps",
                rel=1e-7,
                why="every converted prediction off by one part in 10^7",
                fails=("closed-form score", "velocity", "round trips"),
            ),
        ),
        tests=(
            "tests/test_parametrisation.py::test_round_trips_property",
            "tests/test_parametrisation.py::test_oracle_conversions_agree",
        ),
    )
)


# --- C0.9 schedule invariance ---------------------------------------------------------------------
def _derive_c09() -> Derivation:
    D, xt = sp.symbols("D xtilde", real=True)
    dA, dS = sp.diff(A_f, t_sym), sp.diff(S_f, t_sym)
    x_val = A_f * xt
    vel = dA * D + dS * (x_val - A_f * D) / S_f
    ratio = S_f / A_f
    return Derivation(
        [
            Step(
                vel / A_f - dA * x_val / A_f**2,
                (xt - D) * sp.diff(ratio, t_sym) / ratio,
                why="quotient rule",
                lhs_tex=r"\frac{d}{dt}\frac{x_t}{\alpha_t}",
                rhs_tex=r"\big(\tilde x-D\big)\,\frac{\dot s}{s},\quad s=\sigma_t/\alpha_t",
            ),
        ],
        setting=r"$D=\mathbb E[x_0\mid x_t=x]=\mathbb E[x_0\mid x_0+s\varepsilon=\tilde x]$ depends only on "
        r"$(\tilde x,s)$, so $d\tilde x/ds=(\tilde x-D(\tilde x;s))/s$ whatever the schedule.",
    )


def _check_c09(device: torch.device) -> CheckResult:
    gm = random_mixture(3, 2, cov_type="full", seed=9, device=device)
    s_from, s_to = 5.0, 0.05
    x_edm = gm.diffuse(1.0, s_from).sample(32, generator=_gen(device, 91))
    ref = flows.solve_pf_ode(gm.denoise, x_edm, s_from, s_to)
    worst = 0.0
    for sched in (schedules.VPCosine(), schedules.VPLinear(), schedules.RectifiedFlow()):
        t0, t1 = sched.t_of_edm_sigma(s_from).item(), sched.t_of_edm_sigma(s_to).item()
        velocity = flows.pf_ode_velocity(sched, gm.denoise)
        x_start = sched.alpha(t0).item() * x_edm
        direct = flows.integrate(lambda t, xx: velocity(xx, t), x_start, t0, t1)
        worst = max(worst, rel_err(direct / sched.alpha(t1).item(), ref))
    return CheckResult(
        (
            Measurement(
                "max rel. error, x_t/alpha_t integrated in t (cosine VP, linear VP, rectified flow) vs EDM-variable solution",
                worst,
                ODE_RTOL,
            ),
        ),
        setting="K=3, d=2, EDM level 5 -> 0.05, 32 points; each schedule's ODE integrated in its own time",
        device=str(device),
    )


register(
    Claim(
        id="C0.9",
        title="PF-ODE trajectories depend on the schedule only through σ/α",
        statement=r"With $\tilde x=x/\alpha$ and $s=\sigma/\alpha$ the PF-ODE of every schedule becomes "
        r"$d\tilde x/ds=(\tilde x-D(\tilde x;1,s))/s$; two schedules give the same $\tilde x$ at the same $s$.",
        source=Source(note="EDM's reparametrisation; used by parts 21-23", paper="karras2022edm"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c09,
        check=_check_c09,
        plants=(
            Plant("diffmath.schedules:VPLinear.dsigma", rel=1e-7, why="the linear VP's dsigma/dt off by one part in 10^7"),
            Plant(
                "diffmath.schedules:RectifiedFlow.t_of_edm_sigma",
                rel=1e-7,
                why="the time of an EDM level off by one part in 10^7",
            ),
        ),
        tests=(
            "tests/test_flows.py::test_schedule_invariance",
            "tests/test_flows.py::test_schedule_invariance_gaussian_property",
        ),
    )
)
