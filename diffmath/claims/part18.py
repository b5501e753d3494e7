r"""Part 18 (kexue.fm 9509): score matching = conditional score matching. Claims C18.*.

Article 18 keeps data at :math:`t=0` and writes the kernel as :math:`p_t(x_t\mid x_0)`; with the
Gaussian kernel :math:`x_t=\alpha x_0+\sigma\varepsilon` this is the library's convention, and the
conditional score is :math:`-\varepsilon/\sigma` (claim C0.5). Equation numbers follow the
catalogue (``shared/claims/parts-16-20.md`` §3): (1) SM loss, (3) ratio identity, (4) CSM loss,
(5) posterior-mean identity, (6) Jensen, (9) the constant difference.
"""

from __future__ import annotations

import sympy as sp
import torch

from diffmath import montecarlo, quadrature
from diffmath import score_matching as smod
from diffmath.claims._helpers import generator
from diffmath.claims.controls import Plant
from diffmath.claims.registry import CheckResult, Claim, Kind, Measurement, Source, register
from diffmath.mixture import GaussianMixture
from diffmath.symbolic import Derivation, Step, gaussian_expectation
from diffmath.toys import random_mixture, random_spd

CHAPTER = "score-matching"
EXACT_RTOL = 1e-10
QUAD_RTOL = 1e-9  # tensor-grid trapezoid quadrature against the closed forms
Z = montecarlo.Z_BOUND


_gen = generator


# symbols shared by the derivations: a two-atom prior (weights w1, w2 at y1, y2) and a generic kernel
x, y1, y2 = sp.symbols("x y_1 y_2", real=True)
w1, w2 = sp.symbols("w_1 w_2", positive=True)
kern = sp.Function("k")  # k(x, y) = p_t(x | x_0 = y), any positive differentiable kernel


# --- C18.1 the ratio identity (3) -----------------------------------------------------------------
def _derive_c181() -> Derivation:
    p = w1 * kern(x, y1) + w2 * kern(x, y2)
    return Derivation(
        [
            Step(
                sp.Derivative(sp.log(p), x),
                (w1 * sp.diff(kern(x, y1), x) + w2 * sp.diff(kern(x, y2), x)) / p,
                why="differentiate the log of the prior average, under the sum",
                lhs_tex=r"\nabla_{x_t}\log\mathbb E_{x_0}\big[p_t(x_t\mid x_0)\big]",
                rhs_tex=r"\frac{\mathbb E_{x_0}\big[\nabla_{x_t}p_t(x_t\mid x_0)\big]}{\mathbb E_{x_0}\big[p_t(x_t\mid x_0)\big]}",
            )
        ],
        setting=r"A prior with two atoms and an arbitrary positive kernel $k(x_t,x_0)$ (sympy keeps $k$ "
        r"symbolic); for a general prior the same step is differentiation under the integral, which needs "
        r"$p_t>0$ and a dominating bound on $\nabla k$ (true for the Gaussian kernel).",
    )


def _check_c181(device) -> CheckResult:
    gm = random_mixture(3, 2, seed=181, device=device)
    alpha, sigma = 0.8, 0.5
    pts = gm.diffuse(alpha, sigma).sample(6, generator=_gen(device, 1))
    # numerator and denominator of (3) as prior expectations, by quadrature on a grid of x0
    ratio = quadrature.posterior_expectation(gm, pts, alpha, sigma, lambda g, xx: (alpha * g[None] - xx[:, None, :]) / sigma**2)
    exact = gm.score_at(pts, alpha, sigma)
    err = ((ratio - exact).abs().max() / exact.abs().max()).item()
    return CheckResult(
        (Measurement("max rel. error, ratio (3) by 2-D quadrature vs closed-form score", err, QUAD_RTOL),),
        setting="K=3, d=2 mixture, alpha=0.8, sigma=0.5, 6 points; a 401 x 401 trapezoid grid over x0 per point",
        device=str(device),
    )


register(
    Claim(
        id="C18.1",
        title="The score as a ratio of two prior expectations",
        statement=r"$\nabla\log p_t(x_t)=\dfrac{\mathbb E_{x_0\sim p_0}[\nabla_{x_t}p_t(x_t\mid x_0)]}"
        r"{\mathbb E_{x_0\sim p_0}[p_t(x_t\mid x_0)]}$.",
        source=Source(part=18, equation="(3)"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c181,
        check=_check_c181,
        tests=(
            "tests/test_score_matching.py::test_ratio_identity_quadrature_property",
            "tests/test_score_matching.py::test_plugin_estimator_consistent",
        ),
        plants=(
            Plant("diffmath.mixture:GaussianMixture.score_at", rel=1e-7, why="the score off by one part in 10^7"),
        ),
    )
)


# --- C18.2 the posterior-mean identity (5) ----------------------------------------------------------
def _derive_c182() -> Derivation:
    p = w1 * kern(x, y1) + w2 * kern(x, y2)
    post1, post2 = w1 * kern(x, y1) / p, w2 * kern(x, y2) / p  # Bayes
    return Derivation(
        [
            Step(
                sp.diff(sp.log(p), x),
                post1 * sp.diff(sp.log(kern(x, y1)), x) + post2 * sp.diff(sp.log(kern(x, y2)), x),
                why="Bayes: posterior weights times conditional scores",
                lhs_tex=r"\nabla_{x_t}\log p_t(x_t)",
                rhs_tex=r"\mathbb E_{x_0\sim p_t(x_0\mid x_t)}\big[\nabla_{x_t}\log p_t(x_t\mid x_0)\big]",
            )
        ],
        setting=r"Two-atom prior, arbitrary positive kernel; for the Gaussian kernel the right side is "
        r"$\mathbb E[-(x_t-\alpha x_0)/\sigma^2\mid x_t]$, i.e. Tweedie's formula (C0.4).",
    )


def _check_c182(device) -> CheckResult:
    gm = random_mixture(3, 2, seed=182, device=device)
    alpha, sigma = 0.6, 0.7
    pts = gm.diffuse(alpha, sigma).sample(6, generator=_gen(device, 2))
    avg = quadrature.posterior_expectation(gm, pts, alpha, sigma, lambda g, xx: -(xx[:, None, :] - alpha * g[None]) / sigma**2)
    exact = gm.score_at(pts, alpha, sigma)
    err = ((avg - exact).abs().max() / exact.abs().max()).item()
    # and by Monte Carlo from the exact posterior's closed form is C0.5; here an independent MC:
    n = 200_000
    prior = gm.sample(n, generator=_gen(device, 3))
    zs = []
    for i in range(pts.shape[0]):
        logw = -((pts[i] - alpha * prior) ** 2).sum(-1) / (2 * sigma**2)
        est = montecarlo.self_normalised(-(pts[i] - alpha * prior) / sigma**2, logw)
        zs.append(est.z(exact[i]).max().item())
    return CheckResult(
        (
            Measurement("max rel. error, posterior average (5) by quadrature vs score", err, QUAD_RTOL),
            Measurement("max z, posterior average by importance sampling vs score", max(zs), Z),
        ),
        setting=f"K=3, d=2, alpha={alpha}, sigma={sigma}, 6 points; 401^2 grid per point; {n} prior samples",
        device=str(device),
    )


register(
    Claim(
        id="C18.2",
        title="The score is the posterior mean of the conditional score",
        statement=r"$\nabla\log p_t(x_t)=\mathbb E_{x_0\sim p_t(x_0\mid x_t)}\big[\nabla_{x_t}\log p_t(x_t\mid x_0)\big]$.",
        source=Source(part=18, equation="(5)", note="Tweedie's formula for the Gaussian kernel"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c182,
        check=_check_c182,
        tests=(
            "tests/test_mixture.py::test_conditional_score_posterior_average_property",
            "tests/test_score_matching.py::test_posterior_average_quadrature_2d",
        ),
        plants=(
            Plant("diffmath.mixture:GaussianMixture.score_at", rel=1e-7, why="the score off by one part in 10^7", fails=("by quadrature",), reads=1e-7),
            Plant("diffmath.mixture:GaussianMixture.sample", add=0.05, why="every draw of x0 off by 0.05", fails=("importance sampling",)),
        ),
    )
)


# --- C18.3 SM <= CSM (Jensen) ----------------------------------------------------------------------
def _derive_c183() -> Derivation:
    a1, a2, s = sp.symbols("a_1 a_2 s", real=True)
    u, v = sp.symbols("u v", positive=True)
    p1, p2 = u / (u + v), v / (u + v)  # posterior weights of a two-point conditional law
    return Derivation(
        [
            Step(
                (p1 * a1 + p2 * a2 - s) ** 2,
                p1 * (a1 - s) ** 2 + p2 * (a2 - s) ** 2,
                relation="<=",
                certificate=u * v * (a1 - a2) ** 2 / (u + v) ** 2,
                why="the gap is the conditional variance",
                lhs_tex=r"\big\|\mathbb E[c\mid x_t]-s_\theta\big\|^2",
                rhs_tex=r"\mathbb E\big[\|c-s_\theta\|^2\mid x_t\big]",
            )
        ],
        setting=r"$c=\nabla_{x_t}\log p_t(x_t\mid x_0)$ with a two-point conditional law (weights "
        r"$u/(u+v)$, $v/(u+v)$) in one coordinate; the gap is exactly $\mathrm{Var}(c\mid x_t)\ge0$, which "
        r"holds for any law and sums over coordinates. Averaging over $x_t$ gives $L_{SM}\le L_{CSM}$.",
    )


def _models(d: int):
    g = torch.Generator().manual_seed(183)
    return {
        "affine A": smod.AffineScore(d, generator=g),
        "affine B": smod.AffineScore(d, generator=g, scale=2.0),
        "tanh MLP": smod.mlp_score(d, seed=183),
    }


def _paired(gm, alpha, sigma, n, device, seed):
    x0, eps, xt = smod.sample_pairs(gm, alpha, sigma, n, _gen(device, seed))
    return x0, eps, xt


def _check_c183(device) -> CheckResult:
    gm = random_mixture(3, 2, seed=18, device=device)
    alpha, sigma, n = 0.8, 0.5, 100_000
    x0, eps, xt = _paired(gm, alpha, sigma, n, device, 4)
    # the slack of the inequality, computed another way: C_t = E tr Cov[x0 | x_t] alpha^2 / sigma^4 >= 0 pointwise
    gap = smod.gap_per_sample(gm, alpha, sigma, xt)
    worst = float("inf")
    with torch.no_grad():
        for model in _models(2).values():
            model.to(device)
            sm, csm = smod.per_sample_losses(model, gm, alpha, sigma, x0, eps)
            est = montecarlo.mean(csm - sm - gap)
            worst = min(worst, (est.value / est.se).item())  # signed: below -5 would mean L_CSM - L_SM < C_t
    c_hat = montecarlo.mean(gap)
    return CheckResult(
        (
            Measurement("min over 3 models of ((L_CSM - L_SM) - C_t) / SE (paired, signed)", worst, -Z, relation=">=",
                        note=f"C_t = {c_hat.value.item():.4g} ± {c_hat.se.item():.2g} > 0"),
        ),
        setting=f"K=3, d=2, alpha={alpha}, sigma={sigma}, n={n} paired samples; two affine models and a tanh MLP. The "
        "inequality holds with slack exactly C_t (C18.4): each model's difference is asserted to be at least C_t, "
        "estimated from the same samples, minus 5 standard errors",
        device=str(device),
    )


register(
    Claim(
        id="C18.3",
        title="Conditional score matching bounds score matching from above",
        statement=r"$L_{SM}(\theta)\le L_{CSM}(\theta)$ for every model $s_\theta$.",
        source=Source(part=18, equation="(6)", note="also part 16, eq. (5)"),
        kind=Kind.INEQUALITY,
        chapter=CHAPTER,
        derive=_derive_c183,
        check=_check_c183,
        tests=("tests/test_score_matching.py::test_sm_le_csm_property",),
        plants=(
            Plant("diffmath.score_matching:gap_per_sample", rel=0.05, why="C_t 5% too large"),
        ),
    )
)


# --- C18.4 equivalence: L_CSM - L_SM = C_t -------------------------------------------------------------
def _derive_c184() -> Derivation:
    m, A, B = sp.symbols("m A B", real=True)
    a, s, v = sp.symbols("alpha sigma v", positive=True)
    u, e = sp.symbols("u epsilon", real=True)  # independent standard normals
    x0 = m + sp.sqrt(v) * u
    xt = a * x0 + s * e
    model = A * xt + B
    score = -(xt - a * m) / (a**2 * v + s**2)
    L_csm = gaussian_expectation((-e / s - model) ** 2, [u, e])
    L_sm = gaussian_expectation((score - model) ** 2, [u, e])
    gap = a**2 * v / (s**2 * (a**2 * v + s**2))
    return Derivation(
        [
            Step(L_csm - L_sm, gap, why="exact Gaussian moments", lhs_tex=r"L_{CSM}-L_{SM}", rhs_tex=r"\frac{\alpha^2v}{\sigma^2(\alpha^2v+\sigma^2)}"),
            Step(gap, 1 / s**2 - 1 / (a**2 * v + s**2), why="partial fractions", lhs_tex=r"C_t", rhs_tex=r"\frac1{\sigma^2}-\frac1{\alpha^2v+\sigma^2}"),
            Step(sp.Derivative(L_csm, A), sp.Derivative(L_sm, A), why="same gradient in the slope", lhs_tex=r"\partial_AL_{CSM}", rhs_tex=r"\partial_AL_{SM}"),
            Step(sp.Derivative(L_csm, B), sp.Derivative(L_sm, B), why="same gradient in the offset", lhs_tex=r"\partial_BL_{CSM}", rhs_tex=r"\partial_BL_{SM}"),
        ],
        setting=r"One dimension, data $\mathcal N(m,v)$, affine model $s_\theta(x)=Ax+B$; both losses are "
        r"computed as exact Gaussian expectations over $x_0=m+\sqrt v\,u$ and $\varepsilon$. In general the "
        r"difference is article 18's (9), $C_t=\mathbb E\|{-\varepsilon/\sigma}-\nabla\log p_t(x_t)\|^2"
        r"=\tfrac{\alpha^2}{\sigma^4}\mathbb E_{x_t}\mathrm{tr}\,\mathrm{Cov}(x_0\mid x_t)$.",
    )


def _check_c184(device) -> CheckResult:
    ms = []
    # (a) Gaussian data: the closed form d/sigma^2 - tr S^{-1} against the conditional-variance form
    g = torch.Generator().manual_seed(184)
    cov = random_spd(3, generator=g).to(device)
    mu = torch.randn(3, generator=g, dtype=torch.float64).to(device)
    gauss = GaussianMixture(torch.ones(1, dtype=torch.float64, device=device), mu[None], cov[None])
    worst = 0.0
    for alpha, sigma in ((1.0, 0.01), (0.8, 0.5), (0.3, 2.0)):
        xt = gauss.diffuse(alpha, sigma).sample(4, generator=_gen(device, 5))
        closed = smod.gap_gaussian(cov, alpha, sigma)
        worst = max(worst, ((smod.gap_per_sample(gauss, alpha, sigma, xt) - closed).abs().max() / closed).item())
        A = torch.randn(3, 3, generator=g, dtype=torch.float64).to(device)
        b = torch.randn(3, generator=g, dtype=torch.float64).to(device)
        sm, csm = smod.affine_losses_gaussian(mu, cov, alpha, sigma, A, b)
        worst = max(worst, ((csm - sm - closed).abs() / closed).item())
    ms.append(Measurement("max rel. error, Gaussian C_t: closed form vs conditional variance vs affine losses", worst, EXACT_RTOL))
    # (b) a mixture: the paired difference for three models against C_t estimated from the same samples
    gm = random_mixture(3, 2, seed=18, device=device)
    alpha, sigma, n = 0.8, 0.5, 200_000
    x0, eps, xt = _paired(gm, alpha, sigma, n, device, 6)
    gap = smod.gap_per_sample(gm, alpha, sigma, xt)
    diffs, zs = [], []
    with torch.no_grad():
        for model in _models(2).values():
            model.to(device)
            sm, csm = smod.per_sample_losses(model, gm, alpha, sigma, x0, eps)
            diffs.append(montecarlo.mean(csm - sm).value.item())
            zs.append(montecarlo.mean(csm - sm - gap).z(0.0).item())
    c_hat = montecarlo.mean(gap)
    ms.append(Measurement("max z, (L_CSM - L_SM) - C_t over 3 models (paired)", max(zs), Z))
    spread = max(diffs) - min(diffs)
    # (c) gradients: d/dtheta of L_CSM and L_SM agree for a tanh MLP (batch means over 50 batches)
    net = smod.mlp_score(2, seed=1840).to(device)
    per_batch = []
    for xb0, eb in zip(x0.chunk(50), eps.chunk(50)):
        sm, csm = smod.per_sample_losses(net, gm, alpha, sigma, xb0, eb)
        g_sm = torch.autograd.grad(sm.mean(), list(net.parameters()), retain_graph=True)
        g_csm = torch.autograd.grad(csm.mean(), list(net.parameters()))
        per_batch.append(torch.cat([(b - a).reshape(-1) for a, b in zip(g_sm, g_csm)]))
        if len(per_batch) == 1:
            first_sm = torch.cat([a.reshape(-1) for a in g_sm])
    est = montecarlo.mean(torch.stack(per_batch))
    ms.append(Measurement("max z over all MLP parameters, grad L_CSM - grad L_SM", est.z(0.0).max().item(), Z))
    ms.append(
        Measurement(
            "largest |grad L_SM| / its batch SE (the gradients are not trivially zero)",
            (first_sm.abs().max() / est.se.max()).item(),
            Z,
            relation=">=",
        )
    )
    return CheckResult(
        tuple(ms),
        setting=f"(a) d=3 Gaussian, three noise levels; (b) K=3, d=2 mixture, alpha={alpha}, sigma={sigma}, n={n}: "
        f"differences {', '.join(f'{v:.4f}' for v in diffs)} (spread {spread:.2g}), C_t = {c_hat.value.item():.4f} "
        f"± {c_hat.se.item():.4f}; (c) tanh MLP with {est.value.numel()} parameters",
        device=str(device),
    )


register(
    Claim(
        id="C18.4",
        title="Score matching and conditional score matching differ by a constant",
        statement=r"$L_{CSM}(\theta)-L_{SM}(\theta)=C_t$ does not depend on $\theta$: the two losses have the same "
        r"gradients and minimisers. For the Gaussian kernel $C_t=\tfrac{\alpha^2}{\sigma^4}\,\mathbb E_{x_t}\,"
        r"\mathrm{tr}\,\mathrm{Cov}(x_0\mid x_t)$, and for data $\mathcal N(\mu,\Sigma)$, "
        r"$C_t=d/\sigma^2-\mathrm{tr}\big((\alpha^2\Sigma+\sigma^2I)^{-1}\big)$.",
        source=Source(part=18, equation="(9)", paper="vincent2011connection"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c184,
        check=_check_c184,
        tests=(
            "tests/test_score_matching.py::test_affine_gap_is_constant_property",
            "tests/test_score_matching.py::test_mixture_gap_property",
            "tests/test_score_matching.py::test_gradients_agree",
        ),
        plants=(
            Plant("diffmath.score_matching:gap_gaussian", rel=1e-7, why="the Gaussian C_t off by one part in 10^7", fails=("Gaussian C_t",), reads=1e-7),
            Plant("diffmath.score_matching:per_sample_losses", index=1, add=0.3, why="a constant 0.3 added to the per-sample CSM loss", fails=("(L_CSM - L_SM) - C_t",)),
            Plant("diffmath.score_matching:per_sample_losses", index=1, rel=0.01, why="the CSM loss 1% too large, so its gradient too", fails=("grad L_CSM - grad L_SM",)),
        ),
    )
)


# --- C18.5 estimator facts --------------------------------------------------------------------------
def _check_c185(device) -> CheckResult:
    ms = []
    # (i) the plug-in score (3) is biased, with bias c/N + O(1/N^2); c from the delta method by quadrature
    gm = GaussianMixture([0.3, 0.7], [[-2.0], [1.5]], [0.3, 0.5]).to(device)
    alpha, sigma = 0.8, 0.6
    x = torch.tensor([[0.7]], dtype=torch.float64, device=device)
    truth = gm.score_at(x, alpha, sigma)[0, 0].item()
    grid = torch.linspace(-12, 12, 200_001, dtype=torch.float64, device=device)
    prior = gm.log_prob(grid[:, None]).exp()
    w = torch.exp(-((x[0, 0] - alpha * grid) ** 2) / (2 * sigma**2))
    h = (alpha * grid - x[0, 0]) / sigma**2

    def E(f):
        return torch.trapezoid(prior * f, grid).item()

    mean_w = E(w)
    c = (truth * E(w * w) - E(w * w * h)) / mean_w**2  # Var/Cov terms of the ratio's delta method
    reps = 20_000
    g = _gen(device, 7)
    bias_at, zs = {}, []
    for N in (4, 16, 64, 256):
        x0 = gm.sample(reps * N, generator=g).reshape(reps, N, 1)
        est = montecarlo.mean(smod.plugin_score(x.expand(reps, 1), x0, alpha, sigma)[:, 0])
        bias_at[N] = (est.value.item() - truth, est.se.item())
        if N >= 16:
            zs.append(abs(est.value.item() - truth - c / N) / est.se.item())
    ms.append(Measurement("max z, plug-in bias - c/N for N in {16, 64, 256}", max(zs), Z))
    ms.append(Measurement("|bias| / SE at N = 4 (the plug-in estimator is biased)", abs(bias_at[4][0]) / bias_at[4][1], Z, relation=">="))
    # (ii) the per-sample CSM loss is unbiased; (iii) so is a batch-size-1 CSM gradient for grad L_SM
    gcov = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=torch.float64, device=device)
    gmu = torch.tensor([0.5, -1.0], dtype=torch.float64, device=device)
    gauss = GaussianMixture(torch.ones(1, dtype=torch.float64, device=device), gmu[None], gcov[None])
    a2, s2 = 0.7, 0.6
    A = torch.tensor([[-0.8, 0.2], [0.1, -1.1]], dtype=torch.float64, device=device, requires_grad=True)
    b = torch.tensor([0.3, -0.2], dtype=torch.float64, device=device, requires_grad=True)
    L_sm, L_csm = smod.affine_losses_gaussian(gmu, gcov, a2, s2, A, b)
    grad_sm = torch.cat([t.reshape(-1) for t in torch.autograd.grad(L_sm, (A, b))])
    n = 100_000
    x0, eps, xt = smod.sample_pairs(gauss, a2, s2, n, _gen(device, 8))
    with torch.no_grad():
        resid = smod.conditional_score(eps, s2) - (xt @ A.T + b)  # per-sample CSM residual
    csm_i = (resid**2).sum(-1)
    ms.append(Measurement("z, mean per-sample CSM loss vs exact L_CSM", montecarlo.mean(csm_i).z(L_csm.detach()).item(), Z))
    # batch size 1: d/dA ||r||^2 = -2 r x_t^T, d/db = -2 r
    per_grad = torch.cat([(-2 * resid[:, :, None] * xt[:, None, :]).reshape(n, -1), -2 * resid], 1)
    ms.append(Measurement("max z, batch-size-1 CSM gradient vs exact grad L_SM", montecarlo.mean(per_grad).z(grad_sm).max().item(), Z))
    # contrast: SM with the plug-in score at N = 4 draws per point gives a biased gradient
    prior4 = gauss.sample(n * 4, generator=_gen(device, 9)).reshape(n, 4, 2)
    plug = smod.plugin_score(xt, prior4, a2, s2)
    with torch.no_grad():
        resid_plug = plug - (xt @ A.T + b)
    plug_grad = torch.cat([(-2 * resid_plug[:, :, None] * xt[:, None, :]).reshape(n, -1), -2 * resid_plug], 1)
    ms.append(
        Measurement(
            "max z, plug-in (N = 4) SM gradient vs exact grad L_SM (biased)",
            montecarlo.mean(plug_grad).z(grad_sm).max().item(),
            Z,
            relation=">=",
        )
    )
    return CheckResult(
        tuple(ms),
        setting=(
            f"(i) 1-D mixture, x_t = 0.7, alpha={alpha}, sigma={sigma}, 20,000 repetitions per N; c = {c:.4f}; "
            + ", ".join(f"N={N}: N*bias = {N * bv:.3f} ± {N * se:.3f}" for N, (bv, se) in bias_at.items())
            + f". (ii)-(iii) 2-D Gaussian, affine model, n={n}"
        ),
        device=str(device),
    )


register(
    Claim(
        id="C18.5",
        extension=r"Article 18 (the discussion after the equivalence, and a reply in its comments of 2024-09-20) says that the two objectives, equal as expectations, are different statistics, equivalent exactly only as the number of sampled points grows. That is right of the plug-in estimator (3) of the score and of the variance of any estimator. The suite sharpens it: the CSM gradient is an unbiased estimate of $\nabla_\theta L_{SM}$ already with a batch of one, so for the gradient no large batch is needed.",
        title="What is biased and what is not",
        statement=r"(i) The plug-in score from (3) with $N$ draws of $x_0$ is biased, with bias "
        r"$c/N+O(N^{-2})$ (delta method for a ratio of means). (ii) The per-sample CSM loss is unbiased for "
        r"$L_{CSM}$. (iii) Hence a CSM minibatch gradient is an unbiased estimate of $\nabla_\theta L_{SM}$ at "
        r"**any** batch size, even one.",
        source=Source(part=18, note="the article's closing remarks and a reply in its comments (2024-09-20)"),
        kind=Kind.LIMIT,
        chapter=CHAPTER,
        check=_check_c185,
        tests=(
            "tests/test_score_matching.py::test_plugin_estimator_consistent",
            "tests/test_score_matching.py::test_csm_gradient_unbiased_batch_one",
        ),
        remark="The article says the CSM objective 'does not rely on a large batch size'. A reply in the comments "
        "says the two are equivalent only as the batch size grows. That is true of the plug-in estimator (3), "
        "whose bias the first measurement shows, and of the variance of any estimator. It is not true of the "
        "bias of the CSM gradient: (iii) holds for a single sample.",
        plants=(
            Plant("diffmath.score_matching:plugin_score", add=0.01, why="the plug-in score off by 0.01", fails=("plug-in bias - c/N",)),
            Plant("diffmath.score_matching:conditional_score", rel=0.05, why="the conditional score 5% too large", fails=("per-sample CSM loss", "batch-size-1 CSM gradient")),
        ),
    )
)


# --- C18.6 the small-noise floor (our addition) -----------------------------------------------------
def _derive_c186() -> Derivation:
    lam, s, a = sp.symbols("lambda sigma alpha", positive=True)
    post_var = lam - (a * lam) ** 2 / (a**2 * lam + s**2)  # Var(x_0 | x_t) in one eigen-direction, Gaussian conditioning
    term = a**2 / s**4 * post_var  # that direction's C_t, by (9)
    return Derivation(
        [
            Step(
                s**2 * term,
                1 - s**2 / (a**2 * lam + s**2),
                why="(9) with the Gaussian posterior variance, in epsilon-units",
                lhs_tex=r"\sigma^2C_t^{(i)}=\sigma^2\,\frac{\alpha^2}{\sigma^4}\Big(\lambda_i-\frac{\alpha^2\lambda_i^2}{\alpha^2\lambda_i+\sigma^2}\Big)",
                rhs_tex=r"1-\frac{\sigma^2}{\alpha^2\lambda_i+\sigma^2}",
            ),
            Step(sp.Limit(s**2 * term, s, 0), sp.Integer(1), why="small noise", lhs_tex=r"\lim_{\sigma\to0}\sigma^2C_t^{(i)}", rhs_tex="1"),
            Step(sp.Limit(s**2 * term, s, sp.oo), sp.Integer(0), why="large noise", lhs_tex=r"\lim_{\sigma\to\infty}\sigma^2C_t^{(i)}", rhs_tex="0"),
            Step(
                s**2 * term,
                sp.Integer(1),
                relation="<=",
                certificate=s**2 / (a**2 * lam + s**2),
                why="never above one per direction",
                lhs_tex=r"\sigma^2C_t^{(i)}",
                rhs_tex="1",
            ),
        ],
        setting=r"Gaussian data, one eigen-direction $\lambda_i$ of $\Sigma$ ($C_t$ is the sum over $i$). For any "
        r"data law, $\sigma^2C_t=\tfrac{\alpha^2}{\sigma^2}\,\mathrm{MMSE}\le d$ because the posterior mean "
        r"is at least as good as the estimator $x_t/\alpha$, whose error is $d\sigma^2/\alpha^2$.",
    )


def _check_c186(device) -> CheckResult:
    gm = random_mixture(4, 2, seed=186, device=device)
    d, n = gm.dim, 50_000
    values, worst_excess, worst_small = [], -float("inf"), 0.0
    for sigma in (3.0, 1.0, 0.3, 0.1, 0.03, 0.01):
        xt = gm.diffuse(1.0, sigma).sample(n, generator=_gen(device, 10))
        est = montecarlo.mean(sigma**2 * smod.gap_per_sample(gm, 1.0, sigma, xt))
        values.append((sigma, est.value.item(), est.se.item()))
        worst_excess = max(worst_excess, ((est.value - d) / est.se.clamp_min(1e-300)).item())
    small = values[-1]
    worst_small = d - small[1]  # at sigma = 0.01 the floor is within O(sigma^2 / lambda_min) of d
    lam_min = gm.eigenvalues.min().item()
    return CheckResult(
        (
            Measurement("max over sigma of (sigma^2 C_t - d) / SE (never above d)", worst_excess, Z),
            Measurement(
                "d - sigma^2 C_t at sigma = 0.01, against d * sigma^2 / lambda_min (the O(sigma^2) approach to d)",
                worst_small,
                d * 0.01**2 / lam_min + Z * small[2],
            ),
        ),
        setting="K=4, d=2 mixture, alpha=1; sigma^2 C_t = "
        + ", ".join(f"{v:.4f}±{se:.1g} (σ={s})" for s, v, se in values),
        device=str(device),
    )


register(
    Claim(
        id="C18.6",
        title="The irreducible CSM loss grows like d/σ² at small noise",
        statement=r"$0\le\sigma_t^2C_t\le d$, with $\sigma_t^2C_t\to d$ as $\sigma_t\to0$ and $\to0$ as "
        r"$\sigma_t\to\infty$: in $\varepsilon$-units the CSM loss has a floor close to $d$ at small noise, so raw "
        r"CSM losses at different $t$ cannot be compared without subtracting $C_t$.",
        source=Source(part=18, note="catalogue addition [X]; consequence of (9)"),
        kind=Kind.LIMIT,
        chapter=CHAPTER,
        derive=_derive_c186,
        check=_check_c186,
        tests=("tests/test_score_matching.py::test_gap_floor_property",),
        plants=(
            Plant("diffmath.score_matching:gap_per_sample", rel=0.01, why="C_t 1% too large", fails=("never above d",)),
            Plant("diffmath.score_matching:gap_per_sample", rel=-0.01, why="C_t 1% too small", fails=("O(sigma^2) approach",)),
        ),
    )
)
