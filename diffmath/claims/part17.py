r"""Part 17 (kexue.fm 9497): constructing ODEs (part 3), ReFlow. Claims C17.*.

Article 17 keeps data at :math:`t=0` and noise at :math:`t=T=1`: :math:`x_t=\varphi_t(x_0,x_1)`, with the
straight line :math:`(1-t)x_0+tx_1` of its (7) the library's ``RectifiedFlow`` schedule
(:math:`\alpha=1-t`, :math:`\sigma=t`). Equation numbers follow the catalogue
(``shared/claims/parts-16-20.md`` §2): (5) the regression objective, (7)–(10) the straight line,
(11) the continuity equation, (12)–(16) the test-function argument, (17) the mean as a minimiser.
The exact toys are in :mod:`diffmath.reflow`.
"""

from __future__ import annotations

import math

import sympy as sp
import torch

from diffmath import montecarlo
from diffmath import reflow as rf
from diffmath import score_matching as smod
from diffmath import wasserstein as wd
from diffmath.claims._helpers import generator
from diffmath.claims.controls import Plant
from diffmath.claims.registry import (
    CheckResult,
    Claim,
    Kind,
    Measurement,
    Source,
    register,
)
from diffmath.mixture import GaussianMixture
from diffmath.symbolic import Derivation, Step, gaussian_expectation
from diffmath.toys import random_mixture

CHAPTER = "reflow"
EXACT_RTOL = 1e-10  # float64 closed forms after a few matrix products and inversions
AUTOGRAD_RTOL = 1e-10  # the continuity residual by autograd, relative to the size of its three terms
ODE_TOL = 1e-8  # Dormand-Prince tolerance of the transported samples: far below Monte Carlo noise
Z = montecarlo.Z_BOUND
FALSE_ALARM = 1e-4  # per projection; sqrt(n) KS above rf.dkw_threshold(1e-4) = 2.23 has probability <= 1e-4


_gen = generator


def mixture(device=None) -> GaussianMixture:
    """The chapter's running example: a random 3-component mixture in 2-D."""
    return random_mixture(3, 2, seed=17, device=device)


def couplings(gm: GaussianMixture) -> dict:
    """The couplings the checks use: independent (the article's), correlated, and deterministic per component."""
    return {
        "independent": rf.Coupling.independent(gm),
        "correlated (rho=0.8, rotated)": rf.Coupling.root(gm, 0.8, rf.rotation2(1.0, device=gm.device)),
        "deterministic (rho=1)": rf.Coupling.root(gm, 1.0),
    }


INTERPOLANTS = {"linear": rf.Interpolant.linear(), "trigonometric": rf.Interpolant.trigonometric()}

# symbols of the 1-D derivations: data N(m, s^2), noise N(0, 1), cross-covariance c, generic a(t), b(t)
t = sp.symbols("t", positive=True)
x, m, c = sp.symbols("x m c", real=True)
s = sp.symbols("s", positive=True)
z1, z2 = sp.symbols("z_1 z_2", real=True)  # independent standard normals
af, bf = sp.Function("a")(t), sp.Function("b")(t)


def _moments_1d(a, b, cc=c):
    """Variance of x_t, covariance of (u, x_t), variance of u for x_t = a x0 + b x1, u = a' x0 + b' x1."""
    da, db = sp.diff(a, t), sp.diff(b, t)
    S = a**2 * s**2 + b**2 + 2 * a * b * cc
    G = a * da * s**2 + b * db + (da * b + a * db) * cc
    U = da**2 * s**2 + db**2 + 2 * da * db * cc
    return S, G, U


# --- C17.1 the regression target is the conditional mean, and Pythagoras -----------------------------
def _derive_c171() -> Derivation:
    A, B = sp.symbols("A B", real=True)
    x0, x1 = m + s * z1, z2
    xt = (1 - t) * x0 + t * x1
    u = x1 - x0
    V = (1 - t) ** 2 * s**2 + t**2
    k = (t - (1 - t) * s**2) / V
    vstar = lambda y: -m + k * (y - (1 - t) * m)
    L = gaussian_expectation((A * xt + B - u) ** 2, [z1, z2])
    Lstar = gaussian_expectation((vstar(xt) - u) ** 2, [z1, z2])
    excess = gaussian_expectation((A * xt + B - vstar(xt)) ** 2, [z1, z2])
    Bstar = -m - k * (1 - t) * m
    return Derivation(
        [
            Step(sp.diff(L, A).subs({A: k, B: Bstar}), sp.Integer(0), why="the slope of v* is stationary", lhs_tex=r"\partial_A L\big|_{v=v^*}", rhs_tex="0"),
            Step(sp.diff(L, B).subs({A: k, B: Bstar}), sp.Integer(0), why="the offset of v* is stationary", lhs_tex=r"\partial_B L\big|_{v=v^*}", rhs_tex="0"),
            Step(
                L,
                excess + Lstar,
                why="Pythagoras: the cross term has mean zero",
                lhs_tex=r"\mathbb E\|v(x_t)-(x_1-x_0)\|^2",
                rhs_tex=r"\mathbb E\|v(x_t)-v^*(x_t)\|^2+\mathbb E\|v^*(x_t)-(x_1-x_0)\|^2",
            ),
        ],
        setting=r"One dimension, data $x_0=m+sz_1\sim\mathcal N(m,s^2)$, noise $x_1=z_2$ independent, the straight "
        r"line, an affine model $v(x)=Ax+B$, and $v^*(x)=-m+k\,(x-(1-t)m)$ with $k=(t-(1-t)s^2)/((1-t)^2s^2+t^2)$, "
        r"the conditional mean of $x_1-x_0$ given $x_t=x$. All three expectations are exact Gaussian moments. For "
        r"any law the cross term $2\,\mathbb E[(v-v^*)(x_t)\cdot(v^*(x_t)-\partial_t\varphi)]$ vanishes by the tower "
        r"property, since $v^*(x_t)=\mathbb E[\partial_t\varphi\mid x_t]$; so $v^*$ minimises (5) over all "
        r"functions of $x_t$, which is (17) applied at each $x_t$.",
    )


def _check_c171(device) -> CheckResult:
    gm = mixture(device)
    net = smod.mlp_score(2, width=16, seed=171).to(device)
    model = lambda xx, tt: net(xx) + 0.3 * xx
    n, zs_pyth, zs_star, ratios, rows = 40_000, [], [], [], []
    cps = couplings(gm)
    seed = 0
    with torch.no_grad():
        for cname in ("independent", "correlated (rho=0.8, rotated)"):
            for iname, interp in INTERPOLANTS.items():
                for tt in (0.3, 0.7):
                    seed += 1
                    terms = cps[cname].regression_terms(interp, model, tt, n, _gen(device, seed))
                    zs_pyth.append(montecarlo.mean(terms["loss"] - terms["excess"] - terms["loss_star"]).z(0.0).item())
                    zs_star.append(montecarlo.mean(terms["loss_star"] - terms["crossing"]).z(0.0).item())
                    ex = montecarlo.mean(terms["excess"])
                    ratios.append((ex.value / ex.se).item())
                    rows.append(f"{cname[:5]}/{iname[:4]}/t={tt}: L(v)={terms['loss'].mean().item():.3f}, L*={terms['crossing'].mean().item():.3f}")
    return CheckResult(
        (
            Measurement("max z, L(v) - E||v - v*||^2 - L(v*) over 8 settings (paired)", max(zs_pyth), Z),
            Measurement("max z, L(v*) - E tr Cov(u | x_t) (the minimum is the mean conditional variance)", max(zs_star), Z),
            Measurement("min over settings of E||v - v*||^2 / SE (the model is not the minimiser)", min(ratios), Z, relation=">="),
        ),
        setting=f"K=3, d=2 mixture; model = tanh MLP + 0.3 x; n={n} paired draws per setting; independent and "
        "correlated couplings x linear and trigonometric interpolants x t in {0.3, 0.7}: " + "; ".join(rows),
        device=str(device),
    )


register(
    Claim(
        id="C17.1",
        title="The regression target is the conditional mean of the path velocity",
        statement=r"Among all functions $v(\cdot,t)$, the loss (5) $L_t(v)=\mathbb E\|v(x_t,t)-\partial_t\varphi_t(x_0,x_1)\|^2$ is "
        r"minimised by $v^*(x,t)=\mathbb E[\partial_t\varphi_t\mid x_t=x]$, and for every $v$, "
        r"$L_t(v)=\mathbb E\|v(x_t,t)-v^*(x_t,t)\|^2+L_t(v^*)$ with "
        r"$L_t(v^*)=\mathbb E\,\mathrm{tr}\,\mathrm{Cov}(\partial_t\varphi_t\mid x_t)$.",
        source=Source(part=17, equation="(5), (16), (17)", paper="liu2023rectified"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c171,
        check=_check_c171,
        tests=(
            "tests/test_reflow.py::test_pythagoras_property",
            "tests/test_reflow.py::test_velocity_is_pf_ode_velocity_property",
        ),
        remark=r"The objective leaves the law of $t$ unspecified; because $v$ is unconstrained at each $t$, the "
        r"minimiser is the same for any time density with full support. The article writes $\phi$ for its test "
        r"function in (12)–(15) and $\boldsymbol\varphi$ for the path; the two are unrelated.",
        plants=(
            Plant("diffmath.reflow:Coupling.velocity", rel=0.02, why="v* 2% too large", fails=("over 8 settings (paired)",)),
            Plant(
                "diffmath.reflow:Coupling.crossing",
                rel=0.06,
                why="tr Cov(u | x_t) 6% too large",
                fails=("E tr Cov(u | x_t)",),
            ),
        ),
    )
)


# --- C17.2 marginal preservation ----------------------------------------------------------------------
def _derive_c172() -> Derivation:
    S, G, _ = _moments_1d(af, bf)
    y = x - af * m
    logrho = -sp.log(2 * sp.pi * S) / 2 - y**2 / (2 * S)
    v = sp.diff(af, t) * m + G / S * y
    return Derivation(
        [
            Step(sp.diff(S, t), 2 * G, why="the variance of x_t grows at twice the covariance of (u, x_t)", lhs_tex=r"\tfrac{d}{dt}S_t", rhs_tex=r"2G_t"),
            Step(
                sp.diff(logrho, t) + sp.diff(logrho, x) * v + sp.diff(v, x),
                sp.Integer(0),
                why="the continuity equation divided by rho_t",
                lhs_tex=r"\partial_t\log\rho_t+\partial_x\log\rho_t\,v^*+\partial_xv^*",
                rhs_tex="0",
            ),
        ],
        setting=r"One dimension, data $\mathcal N(m,s^2)$, noise $\mathcal N(0,1)$ with cross-covariance $c$, a "
        r"general linear interpolant $x_t=a(t)x_0+b(t)x_1$ ($a,b$ arbitrary smooth functions, kept symbolic). "
        r"Then $x_t\sim\rho_t=\mathcal N(am,S_t)$ with $S_t=a^2s^2+b^2+2abc$, and "
        r"$v^*(x,t)=\dot am+G_tS_t^{-1}(x-am)$ with $G_t=a\dot as^2+b\dot b+(\dot ab+a\dot b)c$. A mixture's "
        r"$\rho_tv^*=\sum_k\pi_k\rho_t^{(k)}v^{*(k)}$ is a sum of such Gaussian terms, each solving the equation, "
        r"in any dimension.",
    )


def _transport_check(cp: rf.Coupling, interp: rf.Interpolant, n: int, device, seed: int):
    """Residual, mean/covariance z-scores and projected KS of the ODE run from exact noise to t = 0."""
    g = _gen(device, seed)
    pts_t = torch.rand(300, generator=g, dtype=torch.float64, device=device)
    pts_x = cp.marginal(interp, 0.5).sample(300, generator=g)  # typical points; the equation holds at every (x, t)
    res, scale = cp.continuity_residual(interp, pts_x, pts_t)
    rel = (res.abs() / scale).max().item()
    x1 = torch.randn(n, cp.dim, generator=g, dtype=torch.float64, device=device)
    out = cp.transport(interp, x1, 1.0, 0.0, rtol=ODE_TOL, atol=ODE_TOL)
    gm = cp.data
    z_mean = montecarlo.mean(out).z(gm.mean()).max().item()
    centred = out - out.mean(0)
    prods = (centred[:, :, None] * centred[:, None, :]).reshape(n, -1) * n / (n - 1)
    z_cov = montecarlo.mean(prods).z(gm.covariance().reshape(-1)).max().item()
    dirs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]], dtype=torch.float64, device=device)
    ks = rf.projected_ks(out, gm, dirs).max().item()
    return rel, z_mean, z_cov, ks


def _check_c172(device) -> CheckResult:
    cp = rf.Coupling.independent(mixture(device))
    n, rels, zm, zc, kss, rows = 2000, [], [], [], [], []
    for i, (iname, interp) in enumerate(INTERPOLANTS.items()):
        rel, z_mean, z_cov, ks = _transport_check(cp, interp, n, device, 172 + i)
        rels.append(rel), zm.append(z_mean), zc.append(z_cov), kss.append(ks)
        rows.append(f"{iname}: z_mean {z_mean:.2f}, z_cov {z_cov:.2f}, sqrt(n) KS {ks:.2f}")
    return CheckResult(
        (
            Measurement("max relative continuity residual by autograd (300 points, t in [0, 1])", max(rels), AUTOGRAD_RTOL),
            Measurement("max z, mean of ODE output vs exact mean of p_0", max(zm), Z),
            Measurement("max z, covariance entries of ODE output vs exact covariance", max(zc), Z),
            Measurement("max sqrt(n) KS over 4 projections vs exact projected p_0 (DKW bound, false alarm 1e-4 each)", max(kss), rf.dkw_threshold(FALSE_ALARM)),
        ),
        setting=f"K=3, d=2 mixture, independent coupling; {n} exact N(0, I) draws integrated from t=1 to t=0 "
        f"(Dormand-Prince, tol {ODE_TOL:g}): " + "; ".join(rows),
        device=str(device),
    )



#: the negative controls shared by C17.2 and C17.5 (two readings of the same ODE output)
_ODE_OUTPUT_PLANTS = (
    Plant(
        "diffmath.reflow:Coupling._terms",
        index=2,
        rel=1e-7,
        why="the conditional means of u off by one part in 10^7",
        fails=("continuity residual",),
    ),
    Plant(
        "diffmath.reflow:Coupling.velocity",
        add=0.3,
        why="v* off by 0.3 in every coordinate",
        fails=("mean of ODE output", "KS over 4 projections"),
    ),
)

register(
    Claim(
        id="C17.2",
        erratum=r"The first-order argument (12)-(16) also needs a well-posed ODE (a locally Lipschitz field with linear growth); near-degenerate data makes the field stiff at the data end (C17.9).",
        title="The ReFlow ODE preserves the interpolation's marginals",
        statement=r"Let $\rho_t$ be the law of $x_t=\varphi_t(x_0,x_1)$. The exact velocity $v^*$ of C17.1 solves the "
        r"continuity equation (11), $\partial_t\rho_t+\nabla\cdot(\rho_tv^*)=0$, so the ODE (16) "
        r"$dx/dt=v^*(x,t)$ started from $x_1\sim p_1$ at $t=1$ and run back to $t=0$ carries $\rho_1$ to "
        r"$\rho_t$ at every $t$; in particular it ends at the data law $p_0$.",
        source=Source(part=17, equation="(11)–(16)", paper="liu2023rectified"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c172,
        check=_check_c172,
        tests=(
            "tests/test_reflow.py::test_continuity_property",
            "tests/test_reflow.py::test_ode_reproduces_marginals",
        ),
        remark=r"The article's argument (12)–(16) is a first-order expansion in $\Delta t$; to conclude that the ODE "
        r"transports $\rho_1$ to $\rho_0$ one also needs the ODE to be well posed (e.g. $v^*$ locally Lipschitz with "
        r"linear growth), which is the content of the marginal-preserving theorem of {cite:t}`liu2023rectified`. For "
        r"mixture data with positive-definite covariances $v^*$ is smooth on all of $[0,1]$, so the check runs the ODE to "
        r"$t=0$ itself. For data concentrated on points or a low-dimensional set the Jacobian of $v^*$ blows up as "
        r"$t\to0$ (the data end), and numerical solvers must stop at some $t=\delta>0$. (A bibliographic note, not an "
        r"erratum: the article cites part 15 of the series as '(十四)（中）'.)",
        plants=(
            *_ODE_OUTPUT_PLANTS,
            Plant("diffmath.reflow:Coupling.velocity", rel=0.2, why="v* 20% too large", fails=("covariance entries",)),
        ),
    )
)


# --- C17.3 (9) and (10) are the same objective ----------------------------------------------------------
def _derive_c173() -> Derivation:
    x0s, x1s, xhat, xts = sp.symbols("x_0 x_1 xhat_0 x_t", real=True)
    phi = (1 - t) * x0s + t * x1s  # the straight line (7)
    return Derivation(
        [
            Step(sp.Derivative(phi, t), x1s - x0s, why="the path velocity (8): differentiate (7) in t", lhs_tex=r"\partial_t\varphi_t", rhs_tex=r"x_1-x_0"),
            Step(
                sp.Subs((xts - x0s) / t, xts, phi),
                x1s - x0s,
                why="substitute (7) for x_t, t > 0: the targets of (9) and (10) agree",
                lhs_tex=r"\frac{x_t-x_0}{t}\Big|_{x_t=(1-t)x_0+tx_1}",
                rhs_tex=r"x_1-x_0",
            ),
            Step(
                sp.Subs(((xts - xhat) / t - (x1s - x0s)) ** 2, xts, phi),
                (xhat - x0s) ** 2 / t**2,
                why="a velocity model written through a data prediction, with (7) substituted for x_t",
                lhs_tex=r"\Big\|\frac{x_t-\hat x_0}{t}-(x_1-x_0)\Big\|^2\Big|_{x_t=(1-t)x_0+tx_1}",
                rhs_tex=r"\frac{\|\hat x_0-x_0\|^2}{t^2}",
            ),
        ],
        setting=r"The straight line (7) with $T=1$; one coordinate (the identities hold coordinatewise). The last "
        r"step is the remark from the article's comments: predicting $v$ with plain MSE equals predicting $x_0$ with "
        r"the weight $1/t^2$.",
    )


def _check_c173(device) -> CheckResult:
    gm = mixture(device)
    x0, x1 = rf.Coupling.independent(gm).sample(10_000, _gen(device, 173))
    g = _gen(device, 1730)
    tt = 0.05 + 0.95 * torch.rand(10_000, 1, generator=g, dtype=torch.float64, device=device)
    xt = (1 - tt) * x0 + tt * x1
    err = (((xt - x0) / tt - (x1 - x0)).abs().max() / (x1 - x0).abs().max()).item()
    xhat = x0 + torch.randn(x0.shape, generator=g, dtype=torch.float64, device=device)
    lhs = (((xt - xhat) / tt - (x1 - x0)) ** 2).sum(-1)
    rhs = ((xhat - x0) ** 2).sum(-1) / tt[:, 0] ** 2
    err2 = ((lhs - rhs).abs() / rhs).max().item()
    small = 1e-8
    xts = (1 - small) * x0 + small * x1
    lost = (((xts - x0) / small - (x1 - x0)).abs().max() / (x1 - x0).abs().max()).item()
    return CheckResult(
        (
            Measurement("max rel. error, (x_t - x_0)/t vs x_1 - x_0 for t in [0.05, 1]", err, EXACT_RTOL),
            Measurement("max rel. error, v-loss vs x0-loss / t^2", err2, EXACT_RTOL),
        ),
        setting=f"K=3, d=2 mixture, 10,000 independent pairs, random t in [0.05, 1]. Not asserted: at t = 1e-8 "
        f"form (10) loses digits to cancellation (rel. error {lost:.1e}), so (9) is the form to compute with near the data end.",
        device=str(device),
    )


register(
    Claim(
        id="C17.3",
        title="The two forms of the straight-line objective agree",
        statement=r"For $\varphi_t=(1-t)x_0+tx_1$, $\partial_t\varphi_t=x_1-x_0=(x_t-x_0)/t$ for $t>0$, so the "
        r"objectives (9) and (10) are the same; writing $v=(x_t-\hat x_0)/t$, "
        r"$\|v-(x_1-x_0)\|^2=\|\hat x_0-x_0\|^2/t^2$.",
        source=Source(part=17, equation="(7)–(10)"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c173,
        check=_check_c173,
        tests=("tests/test_reflow.py::test_straight_line_forms_property",),
        remark=r"In the article, (8) still writes $\varphi_t(x_0,x_T)$ although $T=1$ there. Form (10) divides by "
        r"$t$ and loses precision as $t\to0$; the check reports the size of the loss.",
    )
)


# --- C17.4 the irreducible (crossing) loss -------------------------------------------------------------
def _derive_c174() -> Derivation:
    S, G, U = _moments_1d(af, bf)
    da, db = sp.diff(af, t), sp.diff(bf, t)
    S0, G0, U0 = _moments_1d(1 - t, t, 0)
    return Derivation(
        [
            Step(
                U - G**2 / S,
                (s**2 - c**2) * (af * db - da * bf) ** 2 / S,
                why="a 2x2 Gram determinant",
                lhs_tex=r"\mathrm{Var}(u\mid x_t)=U_t-G_t^2/S_t",
                rhs_tex=r"\frac{(s^2-c^2)\,(a\dot b-\dot ab)^2}{a^2s^2+b^2+2abc}",
            ),
            Step(
                U0 - G0**2 / S0,
                s**2 / ((1 - t) ** 2 * s**2 + t**2),
                why="straight line, independent coupling",
                lhs_tex=r"\mathrm{Var}(x_1-x_0\mid x_t)",
                rhs_tex=r"\frac{s^2}{(1-t)^2s^2+t^2}",
            ),
        ],
        setting=r"One dimension, data $\mathcal N(m,s^2)$, noise $\mathcal N(0,1)$ with cross-covariance $c$ "
        r"($c^2\le s^2$), $u=\dot ax_0+\dot bx_1$, $x_t=ax_0+bx_1$: both are Gaussian, so the conditional variance "
        r"does not depend on $x_t$ and equals the minimum of (5). It vanishes only when $c^2=s^2$ (the pair is a "
        r"deterministic, non-crossing coupling) or $a\dot b=\dot ab$. In $d$ dimensions the minimum is "
        r"$\mathrm{tr}(U-GS^{-1}G^\top)$ per component; for mixtures the spread of the component means adds to it.",
    )


def _check_c174(device) -> CheckResult:
    g = torch.Generator().manual_seed(174)
    gauss_cov = torch.tensor([[1.5, 0.4], [0.4, 0.6]], dtype=torch.float64)
    gauss = GaussianMixture(torch.ones(1, dtype=torch.float64), torch.tensor([[1.0, -0.5]], dtype=torch.float64), gauss_cov[None]).to(device)
    del g
    n, zs, rows, zero = 100_000, [], [], 0.0
    cases = {
        "independent": rf.Coupling.independent(gauss),
        "correlated": rf.Coupling.root(gauss, 0.6, rf.rotation2(0.7, device=device)),
        "OT (rho=1)": rf.Coupling.root(gauss, 1.0),
    }
    zero_model = lambda xx, tt: torch.zeros_like(xx)
    with torch.no_grad():
        for i, (name, cp) in enumerate(cases.items()):
            for iname, interp in INTERPOLANTS.items():
                for tt in (0.2, 0.5, 0.8):
                    closed = cp.component_crossing(interp, tt)[0].item()
                    terms = cp.regression_terms(interp, zero_model, tt, n, _gen(device, 1740 + 10 * i + int(10 * tt)))
                    if name.startswith("OT"):
                        scale = terms["loss"].mean().item()
                        zero = max(zero, terms["loss_star"].max().item() / scale, abs(closed) / scale)
                    else:
                        zs.append(montecarlo.mean(terms["loss_star"]).z(closed).item())
                        if iname == "linear" and tt == 0.5:
                            rows.append(f"{name}: L*(0.5) = {closed:.4f}")
    return CheckResult(
        (
            Measurement("max z, Monte Carlo loss at v* vs closed form tr(U - G S^-1 G^T) (12 settings)", max(zs), Z),
            Measurement("OT coupling: max per-sample loss at v* and closed form, relative to E||u||^2", zero, EXACT_RTOL),
        ),
        setting=f"Gaussian data in 2-D, n={n}; linear and trigonometric interpolants, t in {{0.2, 0.5, 0.8}}: "
        + "; ".join(rows)
        + "; the optimal-transport coupling (x_1 = Sigma^{-1/2}(x_0 - mu)) has straight, non-crossing paths and zero irreducible loss",
        device=str(device),
    )


register(
    Claim(
        id="C17.4",
        title="The irreducible loss is the conditional variance of the path velocity",
        statement=r"$\min_vL_t(v)=\mathbb E\,\mathrm{tr}\,\mathrm{Cov}(\partial_t\varphi_t\mid x_t)$, positive unless "
        r"paths through the same point share their velocity. For data $\mathcal N(m,s^2)$ and independent "
        r"noise on the straight line, $\mathrm{Var}(x_1-x_0\mid x_t)=s^2/((1-t)^2s^2+t^2)$; for a linear "
        r"interpolant and cross-covariance $c$ it is $(s^2-c^2)(a\dot b-\dot ab)^2/S_t$.",
        source=Source(part=17, equation="(5), (17)", note="catalogue addition [X]"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c174,
        check=_check_c174,
        tests=(
            "tests/test_reflow.py::test_crossing_closed_form_1d_property",
            "tests/test_reflow.py::test_crossing_monte_carlo",
        ),
        plants=(
            Plant(
                "diffmath.reflow:Coupling.component_crossing",
                rel=0.05,
                why="the closed-form minimum 5% too large",
                fails=("Monte Carlo loss at v*",),
            ),
            Plant("diffmath.reflow:Coupling.velocity", rel=1e-5, why="v* off by one part in 10^5", fails=("OT coupling",)),
        ),
    )
)


# --- C17.5 the invertibility and independence assumptions are not needed -------------------------------
def _check_c175(device) -> CheckResult:
    gm = mixture(device)
    cps = couplings(gm)
    n, ms, rows = 2000, [], []
    worst = [0.0, 0.0, 0.0, 0.0]
    for j, cname in enumerate(("correlated (rho=0.8, rotated)", "deterministic (rho=1)")):
        for i, (iname, interp) in enumerate(INTERPOLANTS.items()):
            rel, z_mean, z_cov, ks = _transport_check(cps[cname], interp, n, device, 175 + 10 * j + i)
            worst = [max(worst[0], rel), max(worst[1], z_mean), max(worst[2], z_cov), max(worst[3], ks)]
            rows.append(f"{cname.split(' ')[0]}/{iname}: z_mean {z_mean:.2f}, z_cov {z_cov:.2f}, KS {ks:.2f}")
    # the coupling really is correlated, and its noise marginal is still N(0, I)
    x0, x1 = cps["correlated (rho=0.8, rotated)"].sample(50_000, _gen(device, 1750))
    cross = montecarlo.mean(((x0 - gm.mean())[:, :, None] * x1[:, None, :]).reshape(x0.shape[0], -1))
    z_corr = (cross.value.abs() / cross.se).max().item()
    z_noise = max(montecarlo.mean(x1).z(0.0).max().item(), montecarlo.mean((x1[:, :, None] * x1[:, None, :]).reshape(x1.shape[0], -1)).z(torch.eye(2, dtype=torch.float64, device=device).reshape(-1)).max().item())
    ms += [
        Measurement("max relative continuity residual, correlated couplings", worst[0], AUTOGRAD_RTOL),
        Measurement("max z, mean of ODE output vs p_0", worst[1], Z),
        Measurement("max z, covariance of ODE output vs p_0", worst[2], Z),
        Measurement("max sqrt(n) KS over 4 projections (DKW bound)", worst[3], rf.dkw_threshold(FALSE_ALARM)),
        Measurement("max z, E[x_1] = 0 and E[x_1 x_1^T] = I under the correlated coupling", z_noise, Z),
        Measurement("largest |E[(x_0 - m) x_1^T]| / SE (the coupling is not independent)", z_corr, Z, relation=">="),
    ]
    return CheckResult(
        tuple(ms),
        setting=f"K=3, d=2 mixture; {n} exact noise draws per run, integrated from t=1 to t=0: " + "; ".join(rows),
        device=str(device),
    )


register(
    Claim(
        id="C17.5",
        extension=r"The article (section on the general construction) assumes the interpolation can be inverted for the noise and that data and noise are drawn independently. Its conclusion holds without either: the marginals are preserved for correlated and even deterministic couplings, which is what lets ReFlow retrain on its own couplings (C17.6).",
        title="Neither invertibility in the noise nor independence is needed",
        statement=r"C17.1 and C17.2 hold for any coupling $(x_0,x_1)\in\Pi(p_0,p_1)$, independent or not, and any "
        r"interpolant: the step from (13) to (14) is the tower property "
        r"$\mathbb E[h(x_0,x_1)\cdot\nabla\phi(x_t)]=\mathbb E\big[\mathbb E[h\mid x_t]\cdot\nabla\phi(x_t)\big]$, "
        r"which needs no inverse $x_1=\psi_t(x_0,x_t)$.",
        source=Source(part=17, equation="(13)–(14)", note="catalogue addition [X]"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c172,
        check=_check_c175,
        tests=(
            "tests/test_reflow.py::test_continuity_property",
            "tests/test_reflow.py::test_ode_reproduces_marginals",
            "tests/test_reflow.py::test_coupling_moments_property",
        ),
        remark=r"The article assumes that $\varphi_t$ can be solved for $x_T$ given $(x_0,x_t)$, and samples $x_0$ "
        r"and $x_T$ independently. The first fails for the straight line at $t=0$, where the argument is still "
        r"needed; neither is used by the tower property. Dropping independence is what makes rectification "
        r"(C17.6) possible: the second ReFlow step trains on the coupling produced by the first. The derivation "
        r"shown is that of C17.2, whose setting already has a cross-covariance $c$.",
        plants=(
            *_ODE_OUTPUT_PLANTS,
            Plant("diffmath.reflow:Coupling.velocity", rel=0.2, why="v* 20% too large", fails=("covariance of ODE output",)),
            Plant(
                "diffmath.reflow:Coupling.sample",
                index=1,
                rel=0.05,
                why="the noise draws 5% too large",
                fails=("E[x_1] = 0",),
            ),
        ),
    )
)


# --- C17.6 rectification does not increase convex transport costs ---------------------------------------
def _derive_c176() -> Derivation:
    s0, s1 = sp.symbols("s_0 s_1", positive=True)
    V = (1 - t) ** 2 * s0 + t**2 * s1 + 2 * t * (1 - t) * c
    M = (t * s1 - (1 - t) * s0 + (1 - 2 * t) * c) / V
    return Derivation(
        [
            Step(M, sp.diff(sp.log(V), t) / 2, why="the slope of v* is half the log-derivative of the variance", lhs_tex=r"M_t", rhs_tex=r"\tfrac12\tfrac{d}{dt}\log V_t"),
            Step(sp.exp(sp.Integral(M, (t, 0, 1))), sp.sqrt(s1 / s0), why="integrate M_t over [0, 1]", lhs_tex=r"\Phi=\exp\int_0^1M_t\,dt", rhs_tex=r"\sqrt{s_1/s_0}"),
        ],
        setting=r"One dimension, $\mathcal N(m_0,s_0)\to\mathcal N(m_1,s_1)$ (variances $s_0,s_1$) with a jointly Gaussian "
        r"coupling of cross-covariance $c$, $c^2<s_0s_1$ ($c=0$: the independent coupling), and the straight line; "
        r"$V_t=(1-t)^2s_0+t^2s_1+2t(1-t)c$ is the variance of $x_t$ and $v^*(x,t)=m_1-m_0+M_t(x-m_t)$ with "
        r"$M_t=\mathrm{Cov}(x_1-x_0,x_t)/V_t=(ts_1-(1-t)s_0+(1-2t)c)/V_t$. Whatever $c$, the 1-rectified map is "
        r"$x\mapsto m_1+\sqrt{s_1/s_0}(x-m_0)$, the increasing (optimal) map. For any 1-D data the rectified map is "
        r"increasing, because trajectories of a 1-D ODE cannot cross, and an increasing map is optimal for every convex cost.",
    )


def _logcosh(d: torch.Tensor) -> torch.Tensor:
    a = d.abs()
    return a + torch.log1p(torch.exp(-2 * a)) - math.log(2.0)


#: convex costs c(d) of the displacement d = x_1 - x_0 (rows of an (n, 2) tensor)
CONVEX_COSTS = {
    "|d|^2": lambda d: (d**2).sum(-1),
    "|d|_1": lambda d: d.abs().sum(-1),
    "|d|^1.5": lambda d: d.norm(dim=-1) ** 1.5,
    "|d|^3": lambda d: d.norm(dim=-1) ** 3,
    "|d|^4": lambda d: (d**2).sum(-1) ** 2,
    "sum_i log cosh d_i": lambda d: _logcosh(d).sum(-1),
    "2 d_1^2 + d_2^2/2 + (d_1 - d_2/2)^4": lambda d: 2 * d[:, 0] ** 2 + 0.5 * d[:, 1] ** 2 + (d[:, 0] - 0.5 * d[:, 1]) ** 4,
}
#: negative controls, not convex: c(d, mu) with mu = m_1 - m_0, the mean displacement both couplings share
NONCONVEX_COSTS = {
    "-|d|^2 (concave)": lambda d, mu: -(d**2).sum(-1),
    "exp(-|d - mu|^2/2) (a bump)": lambda d, mu: torch.exp(-0.5 * ((d - mu) ** 2).sum(-1)),
}
C176_RHOS = (0.8, -0.6, 0.5, 0.9, -0.9, 0.3)  # correlations of the correlated starting couplings


def gaussian_coupling_cases(device=None, seed: int = 1760, n_pairs: int = 6) -> list:
    r"""The Gaussian problems of C17.6: ``n_pairs`` random 2-D pairs :math:`\mathcal N(m_0,S_0)`, :math:`\mathcal N(m_1,S_1)`,
    each with the independent starting coupling (``C = None``) and a correlated one,
    :math:`C = \rho S_0^{1/2}R(\theta)S_1^{1/2}` with :math:`\rho` from ``C176_RHOS`` and a random rotation (valid:
    :math:`S_1 - C^\top S_0^{-1}C = (1-\rho^2)S_1`). Returns tuples ``(label, m0, S0, m1, S1, C)``."""
    from diffmath.toys import random_spd

    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n_pairs):
        S0, S1 = random_spd(2, generator=g), random_spd(2, generator=g)
        m0, m1 = torch.randn(2, generator=g, dtype=torch.float64), torch.randn(2, generator=g, dtype=torch.float64)
        theta = 2 * math.pi * torch.rand((), generator=g, dtype=torch.float64).item()
        rho = C176_RHOS[i % len(C176_RHOS)]
        C = rho * wd.sqrtm_psd(S0) @ rf.rotation2(theta) @ wd.sqrtm_psd(S1)
        m0, S0, m1, S1, C = (v.to(device) for v in (m0, S0, m1, S1, C))
        out.append((f"pair {i}, independent", m0, S0, m1, S1, None))
        out.append((f"pair {i}, rho={rho:+.1f}", m0, S0, m1, S1, C))
    return out


def sample_gaussian_coupling(m0, S0, m1, S1, C, n: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``n`` draws of :math:`(x_0,x_1)` with joint covariance :math:`\left[\begin{smallmatrix}S_0&C\\C^\top&S_1\end{smallmatrix}\right]`
    (``C = None``: 0), by the Cholesky factor of the joint covariance (not :meth:`diffmath.reflow.Coupling.sample`)."""
    d = m0.shape[0]
    C = torch.zeros_like(S0) if C is None else C
    L = torch.linalg.cholesky(torch.cat([torch.cat([S0, C], 1), torch.cat([C.T, S1], 1)], 0))
    x = torch.randn(n, 2 * d, dtype=S0.dtype, device=S0.device, generator=generator) @ L.T + torch.cat([m0, m1])
    return x[:, :d], x[:, d:]


def rectified_cost_gaps(map_, x0: torch.Tensor, x1: torch.Tensor, mu: torch.Tensor) -> dict:
    r"""Paired Monte Carlo on the common draws ``x0``: for each cost of ``CONVEX_COSTS`` and ``NONCONVEX_COSTS``,
    the estimate of :math:`\mathbb E\,c(x_1-x_0)-\mathbb E\,c(T(x_0)-x_0)` (start minus rectified; ``map_`` is
    :math:`T`) as a :class:`~diffmath.montecarlo.Estimate` of the per-draw differences, and the start's mean cost.
    The theorem says the gap is :math:`\ge0` for the convex costs."""
    d_start, d_rect = x1 - x0, x0 @ map_.M.T + map_.c - x0
    out = {}
    for name, cost in CONVEX_COSTS.items():
        cs = cost(d_start)
        out[name] = (montecarlo.mean(cs - cost(d_rect)), cs.mean().item())
    for name, cost in NONCONVEX_COSTS.items():
        cs = cost(d_start, mu)
        out[name] = (montecarlo.mean(cs - cost(d_rect, mu)), cs.mean().item())
    return out


def _check_c176(device) -> CheckResult:
    # (a) 1-D mixture -> N(0, 1): the rectified map is the monotone (optimal) map
    p0 = wd.gaussian_mixture_1d([0.3, 0.5, 0.2], [-2.0, 0.5, 2.5], [0.2, 0.4, 0.1], device=device)
    q = wd.gaussian_mixture_1d([1.0], [0.0], [1.0], device=device)
    x0 = p0.sample(400, generator=_gen(device, 176))
    T = rf.Coupling.independent(p0).transport(rf.Interpolant.linear(), x0, 0.0, 1.0, rtol=1e-11, atol=1e-11)
    mono = wd.monotone_map_1d(p0, q, x0[:, 0])
    err_1d = (T[:, 0] - mono).abs().max().item()
    # (b) 2-D Gaussians, independent and correlated starting couplings: the rectified map is linear (exact field
    # integrated at tol 1e-12); marginals, the quadratic costs and the Loewner order in closed form; the other
    # costs by paired Monte Carlo on common draws of the starting coupling
    n = 20_000
    eye = torch.eye(2, dtype=torch.float64, device=device)
    push, push_mean, quad = 0.0, 0.0, {"independent": math.inf, "correlated": math.inf}
    loewner, z_orth, z_closed = math.inf, 0.0, 0.0
    margin = {k: math.inf for k in list(CONVEX_COSTS) + list(NONCONVEX_COSTS)}
    rel = dict(margin)
    for k, (label, m0, S0, m1, S1, C) in enumerate(gaussian_coupling_cases(device)):
        r = rf.rectify_gaussians(m0, S0, m1, S1, cross=C)
        Tm = r.map
        push = max(push, r.pushforward_error)
        push_mean = max(push_mean, ((Tm.M @ m0 + Tm.c - m1).abs().max() / (1 + m1.abs().max())).item())
        kind = "independent" if C is None else "correlated"
        quad[kind] = min(quad[kind], (r.cost_start - r.cost) / r.cost_start)
        # Gaussian displacements with a common mean: E c is no larger for every convex c iff the covariances
        # are in Loewner order, Cov(T(x0) - x0) <= Cov(x1 - x0)
        Cz = torch.zeros_like(S0) if C is None else C
        cov_start = S0 + S1 - Cz - Cz.T
        D = Tm.M - eye
        gap = cov_start - D @ S0 @ D.T
        loewner = min(loewner, (torch.linalg.eigvalsh(0.5 * (gap + gap.T))[0] / torch.linalg.eigvalsh(cov_start)[-1]).item())
        x0, x1 = sample_gaussian_coupling(m0, S0, m1, S1, C, n, _gen(device, 1761 + k))
        mu = m1 - m0
        gaps = rectified_cost_gaps(Tm, x0, x1, mu)
        for name, (est, start) in gaps.items():
            sign = 1.0 if name in CONVEX_COSTS else -1.0  # the controls report their violation
            margin[name] = min(margin[name], sign * (est.value / est.se).item())
            rel[name] = min(rel[name], sign * est.value.item() / abs(start))
        # the Monte Carlo against the closed forms: quadratic costs, and the bump's det(I + A)^{-1/2}
        d_start, d_rect = x1 - x0, x0 @ Tm.M.T + Tm.c - x0
        bump = NONCONVEX_COSTS["exp(-|d - mu|^2/2) (a bump)"]
        for vals, truth in (
            ((d_start**2).sum(-1), r.cost_start),
            ((d_rect**2).sum(-1), r.cost),
            (bump(d_start, mu), torch.linalg.det(eye + cov_start).rsqrt().item()),
            (bump(d_rect, mu), torch.linalg.det(eye + D @ S0 @ D.T).rsqrt().item()),
        ):
            z_closed = max(z_closed, montecarlo.mean(vals).z(truth).item())
        # the correlated field is the conditional mean: u - v*(x_t) is orthogonal to every affine function of x_t
        if C is not None:
            B, cvec = rf.rectified_field(m0, S0, m1, S1, C)
            for tt in (0.25, 0.5, 0.75):
                xt = (1 - tt) * x0 + tt * x1
                res = (x1 - x0) - (xt @ B(tt).T + cvec(tt))
                feats = torch.cat([xt, torch.ones_like(xt[:, :1])], 1)
                z_orth = max(z_orth, montecarlo.mean((res[:, :, None] * feats[:, None, :]).reshape(n, -1)).z(0.0).max().item())
    ms = [
        Measurement("1-D mixture -> N(0,1): max |rectified map - monotone map| (400 points)", err_1d, 1e-8),
        Measurement("2-D Gaussians: max rel. error of the pushforward M S_0 M^T vs S_1", push, EXACT_RTOL),
        Measurement("2-D Gaussians: max rel. error of the pushed mean M m_0 + c vs m_1", push_mean, EXACT_RTOL),
        Measurement("independent start: min (cost_start - cost_rect) / cost_start, quadratic cost, closed form", quad["independent"], 0.0, relation=">="),
        Measurement("correlated start: min (cost_start - cost_rect) / cost_start, quadratic cost, closed form", quad["correlated"], 0.0, relation=">="),
        Measurement(
            "min eigenvalue of Cov(x_1 - x_0) - Cov(T(x_0) - x_0), relative (>= 0: every convex cost at once)",
            loewner,
            -EXACT_RTOL,
            relation=">=",
        ),
        Measurement("correlated start: max z, E[(u - v*(x_t)) (x_t, 1)] = 0 at t = 1/4, 1/2, 3/4", z_orth, Z),
        Measurement("max z, Monte Carlo quadratic and bump costs vs closed form", z_closed, Z),
    ]
    for name in CONVEX_COSTS:
        ms.append(Measurement(f"convex c = {name}: min (E c_start - E c_rect) / SE over 12 couplings", margin[name], -Z, relation=">="))
    for name in NONCONVEX_COSTS:
        ms.append(
            Measurement(f"negative control c = {name}: min (E c_rect - E c_start) / SE, the violation", margin[name], Z, relation=">=")
        )
    rels = ", ".join(f"{name} {rel[name]:.3f}" for name in CONVEX_COSTS)
    viol = ", ".join(f"{name} {rel[name]:.3f}" for name in NONCONVEX_COSTS)
    return CheckResult(
        tuple(ms),
        setting="(a) 3-component 1-D mixture, the ODE integrated from t=0 to t=1 at tol 1e-11, monotone map by bisection "
        "of the exact CDFs; (b) six random pairs of 2-D Gaussians with random means, each with the independent starting "
        f"coupling and a correlated one (rho in {C176_RHOS}, random rotation), rectified map from the exact affine field "
        f"integrated at tol 1e-12; {n} paired draws per coupling (common random numbers: the same x_0 for both couplings), "
        f"z from the SE of the paired differences. Smallest relative margin (E c_start - E c_rect) / |E c_start|: {rels}; "
        f"relative violation of the controls: {viol}",
        device=str(device),
    )


register(
    Claim(
        id="C17.6",
        title="Rectification does not increase transport costs; in 1-D it is optimal",
        statement=r"Let $T$ be the map $x_0\mapsto x_1$ of the ODE of C17.2 (the 1-rectified coupling $(x_0,T(x_0))$). "
        r"It has the right marginals and, for every convex cost $c$, $\mathbb E\,c(T(x_0)-x_0)\le\mathbb E\,c(x_1-x_0)$ "
        r"for the coupling it was trained on. In one dimension $T$ is the increasing, hence optimal, transport map.",
        source=Source(part=17, paper="liu2023rectified", note="their convex-cost theorem; not in the article; catalogue [R/X]"),
        kind=Kind.INEQUALITY,
        chapter=CHAPTER,
        derive=_derive_c176,
        check=_check_c176,
        tests=(
            "tests/test_reflow.py::test_rectification_gaussian_property",
            "tests/test_reflow.py::test_rectified_map_1d_is_monotone",
            "tests/test_reflow.py::test_rectified_field_correlated_matches_coupling_velocity",
            "tests/test_reflow.py::test_rectified_field_correlated_is_conditional_mean",
            "tests/test_reflow.py::test_rectification_correlated_property",
            "tests/test_reflow.py::test_rectification_1d_correlated_is_monotone",
            "tests/test_reflow.py::test_convex_costs_not_increased",
            "tests/test_reflow.py::test_nonconvex_cost_control_violates",
        ),
        remark=r"What is checked. The starting coupling is the independent one or a jointly Gaussian one with "
        r"cross-covariance $C$ (Liu et al.'s theorem holds for any coupling, and the second ReFlow step starts from a "
        r"correlated one); its straight-line field is affine, $M_t=\mathrm{Cov}(x_1-x_0,x_t)\,\mathrm{Cov}(x_t)^{-1}$, and "
        r"a Monte Carlo test confirms it is the conditional mean. Both displacements, $x_1-x_0$ and $T(x_0)-x_0$, are "
        r"Gaussian with the same mean $m_1-m_0$, so the inequality for every convex $c$ at once is equivalent to the "
        r"Loewner order $\mathrm{Cov}(T(x_0)-x_0)\preceq\mathrm{Cov}(x_1-x_0)$ (sufficient by Jensen's inequality, adding "
        r"independent centred noise; necessary with $c(d)=(w^\top d)^2$), checked in closed form. Beside the quadratic "
        r"cost, the check measures by paired Monte Carlo on common draws the $\ell_1$ norm, $\|d\|^{p}$ for "
        r"$p=1.5,3,4$, $\sum_i\log\cosh d_i$ and an anisotropic quadratic-plus-quartic cost. As negative controls, a "
        r"concave cost $-\|d\|^2$ and a bump $e^{-\|d-(m_1-m_0)\|^2/2}$ centred at the mean displacement both increase "
        r"under rectification by many standard errors: the convexity hypothesis is needed.",
        plants=(
            Plant("diffmath.reflow:Coupling.velocity", rel=1e-7, why="v* off by one part in 10^7", fails=("1-D mixture",)),
            Plant(
                "diffmath.linear_flows:linear_flow_tv",
                index=0,
                rel=1e-7,
                why="the rectified map's slope off by one part in 10^7",
                fails=("pushforward M S_0", "pushed mean"),
            ),
            Plant(
                "diffmath.linear_flows:linear_flow_tv",
                index=0,
                rel=0.3,
                why="the rectified map's slope 30% too steep",
                fails=(
                    "correlated start: min",
                    "min eigenvalue of Cov",
                    "convex c = |d|^2:",
                    "convex c = |d|_1",
                    "convex c = |d|^1.5",
                    "convex c = |d|^3",
                    "convex c = |d|^4",
                    "convex c = sum_i log cosh",
                    "convex c = 2 d_1^2",
                    "(concave)",
                    "(a bump)",
                ),
            ),
            Plant(
                "diffmath.linear_flows:linear_flow_tv",
                index=0,
                rel=0.6,
                why="the rectified map's slope 60% too steep",
                fails=("independent start",),
            ),
            Plant(
                "diffmath.wasserstein:_mean_cov",
                index=1,
                rel=0.1,
                why="the field built from covariances 10% too large",
                fails=("E[(u - v*(x_t)) (x_t, 1)]",),
            ),
            Plant(
                "diffmath.linear_flows:coupling_cost",
                rel=0.05,
                why="the rectified quadratic cost 5% too large",
                fails=("bump costs vs closed form",),
            ),
        ),
    )
)


# --- C17.7 the link to part 16 ----------------------------------------------------------------------------
def _derive_c177() -> Derivation:
    V = lambda tt: (1 - tt) ** 2 * s**2 + tt**2
    M = (t - (1 - t) * s**2) / V(t)
    u = sp.symbols("u", positive=True)  # the integration variable
    return Derivation(
        [
            Step(M, sp.diff(sp.log(V(t)), t) / 2, why="slope of v*, as in C17.6", lhs_tex=r"M_t", rhs_tex=r"\tfrac12\tfrac{d}{dt}\log V_t"),
            Step(
                sp.exp(-sp.Integral(M.subs(t, u), (u, 0, t))),
                s / sp.sqrt(V(t)),
                why="backward constant L_u = -M_u, integrated over [0, t]",
                lhs_tex=r"I_t=\exp\Big(-\int_0^tM_u\,du\Big)",
                rhs_tex=r"\frac{s}{\sqrt{V_t}}=\Phi_{0\leftarrow t}",
            ),
        ],
        setting=r"One dimension, data $\mathcal N(m,s^2)$, independent noise $\mathcal N(0,1)$, the straight line, and a model "
        r"$g_t=v^*_t+e$ off by a constant; $V_t=(1-t)^2s^2+t^2$ is the variance of $x_t$ and "
        r"$M_t=(t-(1-t)s^2)/V_t$ the slope of $v^*_t$. The backward constant of $g_t$ is $L_t=-M_t$, so the integrating factor $I_t$ "
        r"equals the flow's own sensitivity $\Phi_{0\leftarrow t}=\partial x_0/\partial x_t$: both sides of the bound are "
        r"$|e|\int_0^1s/\sqrt{V_t}\,dt$ and the bound is attained. By C17.1, $F_t^2=\mathbb E_{\rho_t}\|g_t-v^*_t\|^2"
        r"=L_t(g)-L_t^*$, the excess of the model's training loss over its floor.",
    )


def _check_c177(device) -> CheckResult:
    g = torch.Generator().manual_seed(177)
    from diffmath.toys import random_spd

    worst, ratios = -float("inf"), []
    for _ in range(4):
        S0 = random_spd(2, generator=g)
        m0 = torch.randn(2, generator=g, dtype=torch.float64)
        E = 0.3 * torch.randn(2, 2, generator=g, dtype=torch.float64)
        e = 0.3 * torch.randn(2, generator=g, dtype=torch.float64)
        r = rf.w2_bound_affine_model(m0.to(device), S0.to(device), E.to(device), e.to(device))
        worst = max(worst, (r.w2 - r.bound) / r.bound)
        ratios.append(r.w2 / r.bound)
    one = rf.w2_bound_affine_model(torch.tensor([0.7], dtype=torch.float64, device=device), torch.tensor([[0.4]], dtype=torch.float64, device=device), torch.zeros(1, 1, dtype=torch.float64, device=device), torch.tensor([0.25], dtype=torch.float64, device=device))
    return CheckResult(
        (
            Measurement("max (W2 - bound) / bound over 4 random 2-D affine perturbations", worst, 1e-9),
            Measurement("1-D constant shift: |W2 - bound| / bound (the bound is attained)", abs(one.w2 - one.bound) / one.bound, 1e-9),
        ),
        setting="Gaussian data, independent N(0, I) noise, straight line; model = v* + E x + e; W2 by the Bures formula "
        "after integrating the model's affine flow (tol 1e-12); bound by Gauss-Legendre quadrature (8 x 12 nodes). "
        "W2 / bound = " + ", ".join(f"{v:.3f}" for v in ratios) + f"; 1-D: W2 = {one.w2:.6f}, bound = {one.bound:.6f}",
        device=str(device),
    )


register(
    Claim(
        id="C17.7",
        title="A ReFlow model's excess loss bounds the distance of its samples from the data",
        statement=r"With part 16's corrected ODE lemma ({prf:ref}`C16.9 <claim-C16-9>`), a model field $g_t$ run from the "
        r"same noise as the exact ReFlow ODE satisfies $\mathcal W_2[p_0,q_0]\le\int_0^1I_t\,\big(L_t(g)-L_t^*\big)^{1/2}dt$, "
        r"where $L_t(g)-L_t^*=\mathbb E_{\rho_t}\|g_t-v^*_t\|^2$ (C17.1) and $I_t=\exp\int_0^tL_s\,ds$ with $L_s$ the "
        r"backward one-sided Lipschitz constant of $g_s$.",
        source=Source(part=17, note="catalogue addition [X], combining part 16's lemma with C17.1"),
        kind=Kind.INEQUALITY,
        chapter=CHAPTER,
        derive=_derive_c177,
        check=_check_c177,
        tests=("tests/test_reflow.py::test_w2_bound_affine_model_property",),
        plants=(
            Plant(
                "diffmath.linear_flows:backward_one_sided_lipschitz",
                negate=True,
                why="the one-sided Lipschitz constant with its sign flipped (in 1-D the forward constant)",
                fails=("4 random 2-D", "attained"),
            ),
            Plant(
                "diffmath.linear_flows:backward_one_sided_lipschitz",
                rel=1e-5,
                why="the backward constant off by one part in 10^5",
                fails=("attained",),
            ),
            Plant(
                "diffmath.linear_flows:linear_flow_tv",
                index=1,
                rel=1e-7,
                why="the flow's offset off by one part in 10^7",
                fails=("attained",),
            ),
        ),
    )
)


# --- C17.8 Gaussian -> Gaussian: optimal exactly in the commuting case -------------------------------------
def _derive_c178() -> Derivation:
    l1, l2, k1, k2 = sp.symbols("lambda_1 lambda_2 kappa_1 kappa_2", positive=True)
    S0 = sp.diag(l1, l2)
    S1 = sp.diag(k1, k2)
    V = (1 - t) ** 2 * S0 + t**2 * S1
    M = (t * S1 - (1 - t) * S0) * V.inv()
    half_log = sp.diag(sp.log(V[0, 0]) / 2, sp.log(V[1, 1]) / 2)
    flow = sp.diag(*[sp.exp(sp.Integral(M[i, i], (t, 0, 1))) for i in range(2)])  # exp of the integral, entrywise
    half, minus_half = sp.MatPow(S0, sp.Rational(1, 2)), sp.MatPow(S0, sp.Rational(-1, 2))
    A = sp.MatMul(minus_half, sp.MatPow(sp.MatMul(half, S1, half), sp.Rational(1, 2)), minus_half, evaluate=False)
    Phi = sp.diag(sp.sqrt(k1 / l1), sp.sqrt(k2 / l2))  # the value of step 2
    return Derivation(
        [
            Step(M, sp.diff(half_log, t), why="in a common eigenbasis M_t is diagonal", lhs_tex=r"M_t", rhs_tex=r"\tfrac12\tfrac{d}{dt}\log V_t"),
            Step(
                flow,
                A,
                why="the flow, integrated, is the Bures optimal slope",
                lhs_tex=r"\Phi=\exp\int_0^1M_t\,dt",
                rhs_tex=r"S_0^{-1/2}(S_0^{1/2}S_1S_0^{1/2})^{1/2}S_0^{-1/2}",
            ),
            Step(
                sp.MatMul(Phi, S0, Phi.T, evaluate=False),
                S1,
                why="marginal preserved, with Phi = diag(sqrt(kappa_i / lambda_i)), the value of (2)",
                lhs_tex=r"\Phi S_0\Phi^\top",
                rhs_tex=r"S_1",
            ),
        ],
        setting=r"Commuting covariances, written in their common eigenbasis (any commuting pair is diagonal in one "
        r"orthonormal basis, and the rotation commutes with everything here): the ODE decouples into the 1-D "
        r"problems of C17.6, the diagonal matrices $V_t$ commute with their derivatives, so "
        r"$\Phi=\exp\int_0^1M_t\,dt=S_0^{-1/2}S_1^{1/2}$, which is symmetric positive definite and solves "
        r"$\Phi S_0\Phi=S_1$: the optimal map. When $S_0S_1\ne S_1S_0$ the $M_t$ at different times do not commute "
        r"and the time-ordered product need not be symmetric, hence need not be optimal.",
    )


def counterexample():
    r"""The non-commuting pair of the catalogue: :math:`S_0=\mathrm{diag}(0.3,2)`, :math:`S_1=R(0.6)\mathrm{diag}(4,0.2)R(0.6)^\top`."""
    S0 = torch.diag(torch.tensor([0.3, 2.0], dtype=torch.float64))
    R = rf.rotation2(0.6)
    S1 = R @ torch.diag(torch.tensor([4.0, 0.2], dtype=torch.float64)) @ R.T
    return S0, S1


def _check_c178(device) -> CheckResult:
    g = torch.Generator().manual_seed(178)
    worst_cost, worst_map = 0.0, 0.0
    for _ in range(5):
        Q, _r = torch.linalg.qr(torch.randn(2, 2, generator=g, dtype=torch.float64))
        l0, l1 = 0.2 + 2 * torch.rand(2, generator=g, dtype=torch.float64), 0.2 + 2 * torch.rand(2, generator=g, dtype=torch.float64)
        S0, S1 = Q @ torch.diag(l0) @ Q.T, Q @ torch.diag(l1) @ Q.T
        m0, m1 = torch.randn(2, generator=g, dtype=torch.float64), torch.randn(2, generator=g, dtype=torch.float64)
        r = rf.rectify_gaussians(m0.to(device), S0.to(device), m1.to(device), S1.to(device))
        A = wd.gaussian_ot_map(S0, S1).to(device)
        worst_cost = max(worst_cost, abs(r.cost - r.w2_squared) / r.w2_squared)
        worst_map = max(worst_map, ((r.map.M - A).abs().max() / A.abs().max()).item())
    S0, S1 = counterexample()
    zero = torch.zeros(2, dtype=torch.float64, device=device)
    ce = rf.rectify_gaussians(zero, S0.to(device), zero, S1.to(device))
    return CheckResult(
        (
            Measurement("commuting pairs: max |cost_rect - W2^2| / W2^2 (5 random pairs)", worst_cost, EXACT_RTOL),
            Measurement("commuting pairs: max rel. difference of the rectified map and the Bures OT slope", worst_map, EXACT_RTOL),
            Measurement("counterexample: cost_rect - W2^2 (strictly positive)", ce.cost - ce.w2_squared, 0.5, relation=">=",
                        note="asserted near its value on this pair"),
            Measurement("counterexample: asymmetry of the rectified map (an OT map is symmetric)", ce.asymmetry, 0.4, relation=">=",
                        note="asserted near its value on this pair"),
            Measurement("counterexample: pushforward error (marginals still exact)", ce.pushforward_error, EXACT_RTOL),
        ),
        setting=f"counterexample S_0 = diag(0.3, 2), S_1 = R(0.6) diag(4, 0.2) R(0.6)^T, zero means: rectified cost "
        f"{ce.cost:.4f}, W2^2 = {ce.w2_squared:.4f}, independent cost {ce.cost_independent:.4f}; commuting pairs share a random eigenbasis",
        device=str(device),
    )


register(
    Claim(
        id="C17.8",
        title="One rectification of Gaussians is optimal transport when the covariances commute, and not in general",
        statement=r"For $\mathcal N(m_0,S_0)\to\mathcal N(m_1,S_1)$ with the independent coupling and the straight line, "
        r"the 1-rectified map is $x\mapsto m_1+\Phi(x-m_0)$ with $\dot\Phi=M_t\Phi$, "
        r"$M_t=(tS_1-(1-t)S_0)((1-t)^2S_0+t^2S_1)^{-1}$. If $S_0S_1=S_1S_0$, $\Phi$ is the optimal map and its cost "
        r"equals $\mathcal W_2^2$; otherwise the cost can exceed $\mathcal W_2^2$ (e.g. 2.592 against 2.008).",
        source=Source(part=17, paper="liu2023rectified", note="catalogue addition [X], errata item 7"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c178,
        check=_check_c178,
        tests=(
            "tests/test_reflow.py::test_rectification_gaussian_property",
            "tests/test_reflow.py::test_rectification_commuting_is_ot_property",
        ),
        remark=r"So a single rectification straightens the flow but does not in general reach the optimal coupling in "
        r"$d\ge2$; {cite:t}`liu2023rectified` obtain optimal couplings only in the limit of repeated rectification "
        r"with potential (gradient) fields, not after one step.",
        plants=(
            Plant(
                "diffmath.linear_flows:coupling_cost",
                rel=1e-7,
                why="the rectified cost off by one part in 10^7",
                fails=("commuting pairs: max |cost_rect",),
                reads=1e-7,
            ),
            Plant(
                "diffmath.linear_flows:linear_flow_tv",
                index=0,
                rel=1e-7,
                why="the rectified map's slope off by one part in 10^7",
                fails=("Bures OT slope", "pushforward error"),
            ),
            Plant(
                "diffmath.linear_flows:coupling_cost",
                rel=-0.25,
                why="the rectified cost 25% too small",
                fails=("counterexample: cost_rect",),
            ),
        ),
    )
)


# --- C17.9 the data end: the field stiffens as the data concentrates ---------------------------------------
def _derive_c179() -> Derivation:
    eps = sp.symbols("epsilon", positive=True)
    V = (1 - t) ** 2 * eps**2 + t**2
    M = (t - (1 - t) * eps**2) / V
    peak = (1 + eps**2) / (2 * eps)
    tstar = eps * (1 + eps) / (1 + eps**2)
    return Derivation(
        [
            Step(sp.Subs(M, t, 0), sp.Integer(-1), why="at the data end the slope is bounded", lhs_tex=r"M_0", rhs_tex="-1"),
            Step(
                M,
                peak,
                relation="<=",
                certificate=(1 + eps**2) ** 2 * (t - tstar) ** 2 / (2 * eps * V),
                why="the gap is a square over a positive denominator",
                lhs_tex=r"M_t",
                rhs_tex=r"\frac{1+\varepsilon^2}{2\varepsilon}",
            ),
            Step(sp.Subs(M, t, tstar), peak, why="attained at t* = eps(1+eps)/(1+eps^2)", lhs_tex=r"M_{t^*}", rhs_tex=r"\frac{1+\varepsilon^2}{2\varepsilon}"),
        ],
        setting=r"Data $\mathcal N(\mu,\varepsilon^2)$ in one coordinate (or one eigen-direction of $\Sigma$ with eigenvalue "
        r"$\varepsilon^2$), independent noise $\mathcal N(0,1)$, the straight line. The slope of $v^*$ in that direction is "
        r"$M_t=(t-(1-t)\varepsilon^2)/((1-t)^2\varepsilon^2+t^2)$.",
    )


def _check_c179(device) -> CheckResult:
    worst_peak, worst_excess, rows = 0.0, -float("inf"), []
    lin = rf.Interpolant.linear()
    for eps in (0.3, 0.1, 0.03, 0.01):
        gm = GaussianMixture(torch.ones(1, dtype=torch.float64), torch.tensor([[0.5, -1.0]], dtype=torch.float64), torch.tensor([[eps**2, 1.0]], dtype=torch.float64)).to(device)
        cp = rf.Coupling.independent(gm)
        peak = (1 + eps**2) / (2 * eps)
        tstar = eps * (1 + eps) / (1 + eps**2)
        ts = torch.cat([torch.linspace(0.0, 1.0, 401, dtype=torch.float64), torch.tensor([tstar], dtype=torch.float64)]).to(device)
        x = gm.mean().expand(ts.shape[0], 2) + 0.3
        J = cp.jacobian(lin, x, ts)
        top = torch.linalg.eigvalsh(0.5 * (J + J.mT))[:, -1]
        worst_peak = max(worst_peak, abs(top[-1].item() - peak) / peak)
        worst_excess = max(worst_excess, ((top[:-1] - peak) / peak).max().item())
        rows.append(f"eps={eps}: peak {peak:.3f} at t*={tstar:.4f}")
    return CheckResult(
        (
            Measurement("max rel. error, largest eigenvalue of sym. Jacobian (autograd) at t* vs (1+eps^2)/(2 eps)", worst_peak, EXACT_RTOL),
            Measurement("max over a 401-point t-grid of (lambda_max(t) - bound) / bound", worst_excess, EXACT_RTOL),
        ),
        setting="Gaussian data N(mu, diag(eps^2, 1)) in 2-D, independent noise, straight line; Jacobian of the library's "
        "v* by autograd: " + "; ".join(rows),
        device=str(device),
    )


register(
    Claim(
        id="C17.9",
        title="Near-degenerate data makes the field stiff just after the data end",
        statement=r"For data $\mathcal N(\mu,\varepsilon^2)$ and independent standard noise on the straight line, $v^*$ is "
        r"affine with slope $M_t$, $M_0=-1$, and $\max_{t\in[0,1]}M_t=(1+\varepsilon^2)/(2\varepsilon)$, attained at "
        r"$t^*=\varepsilon(1+\varepsilon)/(1+\varepsilon^2)$. As the data concentrates on a point (or, direction by "
        r"direction, on a lower-dimensional set), the one-sided Lipschitz constant of $v^*$ blows up like "
        r"$1/(2\varepsilon)$ within a time $\approx\varepsilon$ of the data end.",
        source=Source(part=17, note="catalogue caveat (singularity at the data end); our sharpening"),
        kind=Kind.INEQUALITY,
        chapter=CHAPTER,
        derive=_derive_c179,
        check=_check_c179,
        tests=("tests/test_reflow.py::test_data_end_stiffness_property",),
        remark=r"For point masses ($\varepsilon=0$) the field is $v^*=(x-\mathbb E[x_0\mid x_t])/t$, singular at $t=0$; the "
        r"article's argument, which needs a well-posed ODE on the whole interval, then holds on $[\delta,1]$ only, and "
        r"samplers stop at $t=\delta$. Its growth factor $\exp\int L_t\,dt$ in the bound of C17.7 grows accordingly.",
        plants=(
            Plant("diffmath.reflow:Coupling.jacobian", rel=1e-7, why="the Jacobian off by one part in 10^7", fails=("at t*",), reads=1e-7),
            Plant("diffmath.reflow:Coupling.velocity", rel=1e-5, why="v* 10^-5 too steep", fails=("401-point",), reads=1e-5),
        ),
    )
)
