r"""Part 19 (kexue.fm 9662): GAN as a diffusion ODE (MonoFlow). Claims C19.*.

Convention of the article, kept here: the generator's law :math:`q_0` sits at :math:`t=0` and the flow
carries it towards the data law :math:`p` as :math:`t\to\infty` (the reverse of the library's diffusion
convention; no noise schedule is involved). The article uses :math:`t` both for flow time and for the
training iteration; here :math:`t` is flow time and :math:`k` the iteration, with :math:`t=k\epsilon`.
:math:`D` is always the logit. Equation numbers follow the catalogue (``shared/claims/parts-16-20.md``
§4): (1) the flow, (2) the particle ODE, (3)–(4) the discriminator, (6) the particle step, (8) the
projection loss, (10) the one-step gradient, (11) the generator loss :math:`-D`, (12) MonoFlow's
:math:`-h(D)`.

C19.1–C19.9 follow the catalogue; C19.10 (LSI rate), C19.11 (slow mixing for separated modes) and
C19.12 (GAN training as a discretised flow, empirical) are additions. Tolerances: float64 identities
``EXACT_RTOL`` (1e-10 relative); RK4 with step 1/400 ``ODE_RTOL`` (1e-8, the method's error is
:math:`O(h^4)`); Monte Carlo within ``montecarlo.Z_BOUND`` (5) standard errors from the same samples.
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
import torch

from diffmath import gan, montecarlo
from diffmath import gradient_flows as gf
from diffmath import linear_flows as lf
from diffmath.claims._helpers import generator, rel_err
from diffmath.claims.controls import Plant
from diffmath.claims.registry import CheckResult, Claim, Kind, Measurement, Source, register
from diffmath.symbolic import Derivation, Step

CHAPTER = "gan-as-ode"
PAPER = "yi2023monoflow"
EXACT_RTOL = 1e-10
ODE_RTOL = 1e-8
Z = montecarlo.Z_BOUND


def _gen(seed: int, device="cpu") -> torch.Generator:
    return generator(device, seed)


_rel = rel_err


def hermite(n: int = 40):
    """Gauss–Hermite nodes and weights for E over z ~ N(0, 1) (exact for polynomials of degree < 2n)."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    return torch.tensor(z), torch.tensor(w / w.sum())


# --- beyond one dimension: the identities that do not depend on d -------------------------------------
DIMS = (2, 3)  # the d-dimensional checks (d = 1 is the rest of each check)


def hermite_nd(n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Product Gauss–Hermite rule for E over z ~ N(0, I_d): nodes (n^d, d), weights (n^d,) (exact for polynomials of
    degree < 2n in each coordinate)."""
    zq, wq = hermite(n)
    nodes = torch.cartesian_prod(*[zq] * d).reshape(-1, d)
    weights = torch.cartesian_prod(*[wq] * d).reshape(-1, d).prod(-1)
    return nodes, weights


def gaussian_case(d: int, seed: int) -> dict:
    """A seeded d-dimensional toy: target N(m, S) and current law N(mq, Sq), both covariances full (non-diagonal;
    S's eigenvalues >= 0.3), and a full, non-triangular matrix L with L L^T = Sq (Sq may be ill-conditioned: L = I + a
    random matrix can be nearly singular, e.g. cond(Sq) = 1.3e8 at d = 2, seed 81)."""
    g = _gen(seed)
    eye = torch.eye(d, dtype=torch.float64)

    def spd():
        a = torch.randn(d, d, generator=g, dtype=torch.float64)
        return a @ a.T / d + 0.3 * eye

    m, mq = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    S = spd()
    L = torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5 + eye
    return {"m": m, "S": S, "mq": mq, "L": L, "Sq": L @ L.T}


def _mvn(mean, cov):
    """torch's own multivariate normal (for its KL divergence)."""
    return torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)


def log_normal_nd(mean, cov):
    """y -> log N(y; mean, cov) for y of shape (n, d), written out with the precision matrix (independent of
    :mod:`diffmath.gradient_flows`; cheap to differentiate twice)."""
    prec = torch.linalg.inv(cov)
    const = -0.5 * (torch.logdet(cov) + mean.shape[0] * math.log(2 * math.pi))
    return lambda y: -0.5 * (((y - mean) @ prec) * (y - mean)).sum(-1) + const


# symbols
x, z = sp.symbols("x z", real=True)
m, mt, mu = sp.symbols("m m_t mu", real=True)
s, st, sg = sp.symbols("s s_t sigma", positive=True)
t = sp.symbols("t", nonnegative=True)


def _normal(xx, mean, sd):
    return sp.exp(-((xx - mean) ** 2) / (2 * sd**2)) / (sp.sqrt(2 * sp.pi) * sd)


def _kl(mq, sq, mp, sp_):
    return sp.log(sp_ / sq) + (sq**2 + (mq - mp) ** 2) / (2 * sp_**2) - sp.Rational(1, 2)


# --- C19.1 the reverse-KL flow, its moment ODE and dissipation ---------------------------------------
_PHI = sp.exp(-(z**2) / 2) / sp.sqrt(2 * sp.pi)  # the standard normal density of z


def _gauss_mean(expr) -> sp.Expr:
    """E over z ~ N(0, 1) of ``expr``, left as unevaluated integrals for the check: the integrand times the
    normal density is expanded and each of its terms c z^k e^{-z^2/2} integrated over the line (one integral
    per term; sympy evaluates those quickly and exactly, while one integral of the whole integrand it first
    refactors into erfc terms it cannot cancel)."""
    return sp.Add(*(sp.Integral(term, (z, -sp.oo, sp.oo)) for term in sp.Add.make_args(sp.expand(expr * _PHI))))


def _derive_c191() -> Derivation:
    q = _normal(x, mt, st)
    v = -(x - m) / s**2 + (x - mt) / st**2  # grad log(p/q), derived in step 1
    dm, ds = (m - mt) / s**2, 1 / st - st / s**2
    # d/dt q_t along the moment ODE (chain rule), plus the divergence of the flux, all left to the check
    continuity = (sp.Derivative(q, mt) * dm + sp.Derivative(q, st) * ds + sp.Derivative(q * v, x)) / q
    fisher = (mt - m) ** 2 / s**4 + (1 / st - st / s**2) ** 2
    kl = _kl(mt, st, m, s)
    return Derivation(
        [
            Step(sp.Derivative(sp.log(_normal(x, m, s) / q), x), v, why="the velocity is affine in $x$",
                 lhs_tex=r"\partial_x\log\frac{p}{q_t}", rhs_tex=r"-\frac{x-m}{s^2}+\frac{x-m_t}{s_t^2}"),
            Step(continuity, sp.Integer(0), why="continuity equation (1) with the moment ODE",
                 lhs_tex=r"\frac{1}{q_t}\Big(\partial_{m_t}q_t\,\dot m_t+\partial_{s_t}q_t\,\dot s_t+\partial_x\big(q_t\,\partial_x\log\tfrac{p}{q_t}\big)\Big)", rhs_tex="0"),
            Step(_gauss_mean(v.subs(x, mt + st * z) ** 2), fisher, why=r"Gaussian integral over $x=m_t+s_tz$, $z\sim\mathcal N(0,1)$",
                 lhs_tex=r"\mathbb E_{q_t}\big|\partial_x\log\tfrac{p}{q_t}\big|^2", rhs_tex=r"\frac{(m_t-m)^2}{s^4}+\Big(\frac1{s_t}-\frac{s_t}{s^2}\Big)^2"),
            Step(sp.Derivative(kl, mt) * dm + sp.Derivative(kl, st) * ds, -fisher,
                 why="chain rule along the moment ODE: the dissipation identity",
                 lhs_tex=r"\frac{d}{dt}\mathrm{KL}(q_t\,\|\,p)=\partial_{m_t}\mathrm{KL}\,\dot m_t+\partial_{s_t}\mathrm{KL}\,\dot s_t",
                 rhs_tex=r"-\mathbb E_{q_t}\big|\partial_x\log\tfrac{p}{q_t}\big|^2"),
        ],
        setting=r"One dimension, $p=\mathcal N(m,s^2)$, $q_t=\mathcal N(m_t,s_t^2)$ with $\dot m_t=(m-m_t)/s^2$, "
        r"$\dot s_t=1/s_t-s_t/s^2$, $\mathrm{KL}(q_t\|p)=\log\frac{s}{s_t}+\frac{s_t^2+(m_t-m)^2}{2s^2}-\frac12$. "
        r"The velocity $\partial_x\log(p/q_t)$ is affine (step 1), so the Gaussian family is invariant "
        r"and (1) reduces exactly to this ODE (step 2). The last step shows the functional that decreases is "
        r"$\mathrm{KL}(q_t\|p)$, with $q_t$ first.",
    )


def _mixture_logp(x):
    return torch.logaddexp(gf.log_normal_1d(x, 2.0, 0.5), gf.log_normal_1d(x, -1.5, 0.7)) - math.log(2)


def _mixture_nd(m, S):
    """log density of ½N(m + u, S) + ½N(m − u, S/2), u = (1.5, −1, 0.5, ...)[:d]: a non-Gaussian target in R^d."""
    d = m.shape[0]
    u = torch.tensor([1.5, -1.0, 0.5][:d], dtype=torch.float64)
    comps = (log_normal_nd(m + u, S), log_normal_nd(m - u, S / 2))
    return lambda y: torch.logsumexp(torch.stack([c(y) for c in comps]), 0) - math.log(2)


def dissipation_nd(d: int, seed: int, *, n: int = 10_000, h: float = 1e-5, times=(0.05, 0.3, 1.0)) -> dict:
    """C19.1 in R^d on :func:`gaussian_case`: the closed-form KL against torch's, the closed-form Fisher information
    against Monte Carlo (autograd of torch's log densities), the central difference of KL along the closed-form flow
    against minus the Fisher information, and the pushforward rate for a two-component mixture target."""
    c = gaussian_case(d, seed)
    m, S, mq, Sq, L = c["m"], c["S"], c["mq"], c["Sq"], c["L"]
    out = {"kl": _rel(gf.gaussian_kl_nd(mq, Sq, m, S), torch.distributions.kl_divergence(_mvn(mq, Sq), _mvn(m, S)))}
    xq = mq + torch.randn(n, d, generator=_gen(seed + 1), dtype=torch.float64) @ L.T
    xx = xq.clone().requires_grad_(True)
    (v,) = torch.autograd.grad((log_normal_nd(m, S)(xx) - log_normal_nd(mq, Sq)(xx)).sum(), xx)
    out["fisher_z"] = montecarlo.mean((v**2).sum(-1)).z(gf.gaussian_fisher_nd(mq, Sq, m, S)).item()
    tt = torch.tensor(times, dtype=torch.float64)
    along = lambda u, fn: torch.stack([fn(a, b, m, S) for a, b in zip(*gf.gaussian_flow_nd(mq, Sq, m, S, u))])
    fd = (along(tt + h, gf.gaussian_kl_nd) - along(tt - h, gf.gaussian_kl_nd)) / (2 * h)
    out["fd"] = _rel(fd, -along(tt, gf.gaussian_fisher_nd))
    lp, lq = _mixture_nd(m, S), log_normal_nd(mq, Sq)
    vel = lambda u: gan.monoflow_velocity(u, lambda y: lp(y) - lq(y), "identity")
    rate = gf.pushforward_kl_rate(xq, lq, lp, vel, 1e-4)
    out["mixture_z"] = montecarlo.mean(rate + (vel(xq) ** 2).sum(-1)).z(0.0).item()
    return out


def _check_c191(device) -> CheckResult:
    # (a) closed-form KL along the closed-form flow: central difference vs minus the Fisher information
    m0, s0, mp, sp_ = -1.0, 1.3, 2.0, 0.5
    tt = torch.linspace(0.05, 1.0, 20, dtype=torch.float64)
    hstep = 1e-5
    kl = lambda u: gf.gaussian_kl_1d(*gf.gaussian_flow(m0, s0, mp, sp_, u), mp, sp_)
    fd = (kl(tt + hstep) - kl(tt - hstep)) / (2 * hstep)
    fisher = gf.gaussian_fisher_1d(*gf.gaussian_flow(m0, s0, mp, sp_, tt), mp, sp_)
    err_fd = _rel(fd, -fisher)
    # (b) a non-Gaussian target: first variation of KL(q||p) along v = grad log(p/q), by exact pushforward, vs -E|v|^2
    n = 200_000
    xq = (0.3 + 1.1 * torch.randn(n, generator=_gen(191), dtype=torch.float64)).to(device)
    lq = lambda u: gf.log_normal_1d(u, 0.3, 1.1)
    vel = lambda u: gan.monoflow_velocity(u, lambda y: _mixture_logp(y) - lq(y), "identity")
    rate = gf.pushforward_kl_rate(xq, lq, _mixture_logp, vel, 1e-4)
    integrand = -vel(xq) ** 2
    zval = montecarlo.mean(rate - integrand).z(0.0).item()
    # (c) the same identities in d = 2, 3 with full covariances (CPU)
    nd = [dissipation_nd(d, 1910 + d) for d in DIMS]
    worst = lambda key: max(r[key] for r in nd)
    return CheckResult(
        (
            Measurement("Gaussian: max rel. error of dKL/dt (central difference, h=1e-5) vs -Fisher", err_fd, 1e-7,
                        note="finite-difference error O(h^2) plus float64 cancellation ~1e-11/h"),
            Measurement("mixture target: z of d/dδ KL((id+δv)#q‖p) − (−E_q|v|²) (paired, n=2e5)", zval, Z),
            Measurement("d=2,3: max rel. error, closed-form KL(N(m_q,Σ_q)‖N(m,S)) vs torch.distributions", worst("kl"), EXACT_RTOL),
            Measurement("d=2,3: max z, Monte Carlo E_q‖∇log(p/q)‖² (autograd, n=1e4) vs closed-form Fisher", worst("fisher_z"), Z),
            Measurement("d=2,3: max rel. error of dKL/dt (central difference, h=1e-5) along the closed-form flow vs −Fisher",
                        worst("fd"), 1e-7),
            Measurement("d=2,3 mixture target: max z of d/dδ KL((id+δv)#q‖p) − (−E_q‖v‖²) (log det by autograd Jacobian)",
                        worst("mixture_z"), Z),
        ),
        setting="(a) p=N(2,0.5²), q0=N(−1,1.3²), 20 times in [0.05,1]; (b) p=½N(2,0.5²)+½N(−1.5,0.7²), "
        "q=N(0.3,1.1²), central difference δ=1e-4 of the exact change-of-variables KL; (c) d=2,3: seeded full covariances "
        "S, Σ_q=LLᵀ (L a full matrix), flow times 0.05, 0.3, 1; mixture ½N(m+u,S)+½N(m−u,S/2), n=1e4 samples of q",
        device=str(device),
    )


register(
    Claim(
        id="C19.1",
        erratum=r"The divergence that the flow decreases is the reverse one, $\mathrm{KL}(q_t\|p)$, and $q_t\to p$ needs conditions (C19.10, C19.11).",
        title="The flow (1) is the Wasserstein gradient flow of the reverse KL, and dissipates it",
        statement=r"Along $\partial_tq_t=-\nabla\cdot(q_t\nabla\log r_t)$, $r_t=p/q_t$, "
        r"$\frac{d}{dt}\mathrm{KL}(q_t\,\|\,p)=-\mathbb E_{q_t}\|\nabla\log r_t\|^2\le0$, with equality only at $q_t=p$. "
        r"For $p=\mathcal N(m,s^2)$ and Gaussian $q_0$ the flow stays Gaussian with $\dot m_t=(m-m_t)/s^2$, "
        r"$\dot s_t=1/s_t-s_t/s^2$; in $\mathbb R^d$, for $p=\mathcal N(m,S)$ and $q_t=\mathcal N(m_t,\Sigma_t)$, "
        r"$\dot m_t=S^{-1}(m-m_t)$ and $\dot\Sigma_t=2I-S^{-1}\Sigma_t-\Sigma_tS^{-1}$.",
        source=Source(part=19, equation="(1)", paper=PAPER, note="background post kexue.fm 9660"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c191,
        check=_check_c191,
        tests=(
            "tests/test_gradient_flows.py::test_dissipation_identity_property",
            "tests/test_gradient_flows.py::test_pushforward_rate_mixture",
            "tests/test_gradient_flows.py::test_gaussian_nd_closed_forms_property",
            "tests/test_gradient_flows.py::test_dissipation_nd",
        ),
        remark=r"The article speaks of 'the KL divergence between $p$ and $q_t$'. The functional is the reverse "
        r"divergence $\mathrm{KL}(q_t\|p)$, and the article's $q_t\to p$ needs conditions: see "
        r"{prf:ref}`C19.10 <claim-C19-10>` and {prf:ref}`C19.11 <claim-C19-11>`.",
        plants=(
            Plant("diffmath.gradient_flows:gaussian_fisher_1d", rel=1e-5, why="the Fisher information off by one part in 10^5",
                  fails=("Gaussian: max rel. error",), reads=1e-5),
            Plant("diffmath.gradient_flows:pushforward_kl_rate", rel=0.04, why="the pushforward KL rate 4% too large",
                  fails=("(paired, n=2e5)", "d=2,3 mixture target")),
            Plant("diffmath.gradient_flows:gaussian_kl_nd", rel=1e-7, why="the d-dimensional KL off by one part in 10^7",
                  fails=("torch.distributions",), reads=1e-7),
            Plant("diffmath.gradient_flows:gaussian_fisher_nd", rel=0.1, why="the d-dimensional Fisher information 10% too large",
                  fails=("Monte Carlo E_q",)),
            Plant("diffmath.gradient_flows:gaussian_fisher_nd", rel=1e-5,
                  why="the d-dimensional Fisher information off by one part in 10^5",
                  fails=("along the closed-form flow",), reads=1e-5),
        ),
    )
)


# --- C19.2 the particle ODE (2): a velocity that depends on the particles' law -------------------------
def _derive_c192() -> Derivation:
    m0, s0 = sp.symbols("m_0 s_0", positive=True)
    mt_ = m + (m0 - m) * sp.exp(-t / s**2)
    vt_ = s**2 + (s0**2 - s**2) * sp.exp(-2 * t / s**2)
    return Derivation(
        [
            Step(sp.Derivative(mt_, t), (m - mt_) / s**2, why="the mean solves its ODE", lhs_tex=r"\dot m_t", rhs_tex=r"\frac{m-m_t}{s^2}"),
            Step(sp.Derivative(vt_, t), 2 * (1 - vt_ / s**2), why="the variance solves $\\dot v=2s_t\\dot s_t=2(1-v/s^2)$",
                 lhs_tex=r"\frac{d}{dt}s_t^2", rhs_tex=r"2\Big(1-\frac{s_t^2}{s^2}\Big)"),
        ],
        setting=r"$m_t=m+(m_0-m)e^{-t/s^2}$, $s_t^2=s^2+(s_0^2-s^2)e^{-2t/s^2}$: the closed-form solution of the "
        r"moment ODE of {prf:ref}`C19.1 <claim-C19-1>`. A cloud of particles moving with "
        r"$\dot x_i=-(x_i-m)/s^2+(x_i-\bar x)/\hat v$ ($\bar x,\hat v$ its own empirical mean and variance) has empirical "
        r"moments that obey the same ODE exactly.",
    )


def closure_particles_nd(d: int, seed: int, *, n: int = 1000, steps: int = 400, t1: float = 1.0) -> dict:
    """C19.2 in R^d on :func:`gaussian_case`: particles moved (RK4) by the Gaussian-closure velocity, their empirical mean
    and covariance at t1 against the closed-form flow started at their empirical moments; and exact Langevin (OU)
    transitions, built with ``linear_flows.expm``, against the same flow (z-scores of the mean and covariance)."""
    c = gaussian_case(d, seed)
    m, S, mq, L = c["m"], c["S"], c["mq"], c["L"]
    Sinv = torch.linalg.inv(S)
    x0 = mq + torch.randn(n, d, generator=_gen(seed + 1), dtype=torch.float64) @ L.T
    traj = gf.simulate_particles(x0, lambda u: gf.gaussian_closure_velocity(u, lambda y: -(y - m) @ Sinv), t1, steps)
    moments = lambda u: (u.mean(0), (u - u.mean(0)).T @ (u - u.mean(0)) / u.shape[0])
    m_emp, S_emp = moments(x0)
    mt, St = gf.gaussian_flow_nd(m_emp, S_emp, m, S, t1)
    m1, S1 = moments(traj[-1])
    out = {"ode": max(_rel(m1, mt), _rel(S1, St))}
    # Langevin dx = ∇log p dt + √2 dW from the exact law N(mq, Sq): OU transition with E = exp(−t S^{-1})
    E = lf.expm(-t1 * Sinv)
    noise = torch.linalg.cholesky(S - E @ S @ E.T)
    xi = torch.randn(20 * n, d, generator=_gen(seed + 2), dtype=torch.float64)
    xs = mq + torch.randn(20 * n, d, generator=_gen(seed + 3), dtype=torch.float64) @ L.T
    lang = m + (xs - m) @ E.T + xi @ noise.T
    mt_exact, St_exact = gf.gaussian_flow_nd(mq, c["Sq"], m, S, t1)
    centred = lang - mt_exact
    out["lang_mean_z"] = montecarlo.mean(lang).z(mt_exact).max().item()
    out["lang_cov_z"] = montecarlo.mean(centred[:, :, None] * centred[:, None, :]).z(St_exact).max().item()
    return out


def _check_c192(device) -> CheckResult:
    mp, sp_, n = 2.0, 0.5, 20_000
    z0 = torch.randn(n, generator=_gen(192), dtype=torch.float64).to(device)
    x0 = -1.0 + z0
    score = lambda u: -(u - mp) / sp_**2
    traj = gf.simulate_particles(x0, lambda u: gf.gaussian_closure_velocity(u, score), 1.0, 400)
    mt_, st_ = gf.gaussian_flow(x0.mean(), x0.std(unbiased=False), mp, sp_, 1.0)
    err = max(_rel(traj[-1].mean(), mt_), _rel(traj[-1].std(unbiased=False), st_))
    # Langevin dynamics (exact OU transition from the same start): same marginal law, different paths
    xi = torch.randn(n, generator=_gen(193), dtype=torch.float64).to(device)
    decay = math.exp(-1.0 / sp_**2)
    lang = mp + (x0 - mp) * decay + sp_ * math.sqrt(1 - decay**2) * xi
    mt_exact, st_exact = gf.gaussian_flow(-1.0, 1.0, mp, sp_, 1.0)
    z_mean = montecarlo.mean(lang).z(mt_exact).item()
    z_var = montecarlo.mean((lang - mt_exact) ** 2).z(st_exact**2).item()
    path_gap = (traj[-1] - lang).pow(2).mean().sqrt().item()
    nd = [closure_particles_nd(d, 1920 + d) for d in DIMS]
    worst = lambda key: max(r[key] for r in nd)
    return CheckResult(
        (
            Measurement("max rel. error, particle moments (RK4, h=1/400) vs closed-form flow", err, ODE_RTOL),
            Measurement("Langevin at t=1: z of the mean vs the flow's m_t", z_mean, Z),
            Measurement("Langevin at t=1: z of the variance vs the flow's s_t²", z_var, Z),
            Measurement("RMS distance between ODE and Langevin particles at t=1 (same start)", path_gap, 0.1, ">=",
                        note="same marginals, different paths"),
            Measurement("d=2,3: max rel. error, particles' empirical mean and covariance (RK4, h=1/400) vs closed-form flow",
                        worst("ode"), ODE_RTOL),
            Measurement("d=2,3, Langevin (exact OU step, expm) at t=1: max z of the mean's entries vs the flow's m_t",
                        worst("lang_mean_z"), Z),
            Measurement("d=2,3, Langevin at t=1: max z of the covariance's entries vs the flow's Σ_t", worst("lang_cov_z"), Z),
        ),
        setting=f"p=N(2,0.5²), q0=N(−1,1), n={n} particles, t ∈ [0,1]; Gaussian closure of the particles' law. "
        "d=2,3: seeded full covariances S, Σ_0=LLᵀ (L a full matrix), 1000 ODE particles, 20000 Langevin samples",
        device=str(device),
    )


register(
    Claim(
        id="C19.2",
        title="The particle ODE (2) realises the flow, with a velocity that depends on the particles' own law",
        statement=r"Particles moving with $\dot x=\nabla\log p(x)-\nabla\log q_t(x)$, $q_t$ their own law, have law "
        r"$q_t$ solving (1). The system is of mean-field (McKean–Vlasov) type; Langevin dynamics "
        r"$dx=\nabla\log p\,dt+\sqrt2\,dW$ has the same marginals but different paths.",
        source=Source(part=19, equation="(2)", paper=PAPER),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c192,
        check=_check_c192,
        tests=(
            "tests/test_gradient_flows.py::test_closure_particles_follow_moment_ode_property",
            "tests/test_gradient_flows.py::test_closure_particles_nd",
        ),
        remark="Unlike a diffusion model's probability-flow ODE, whose velocity is a fixed function of $(x,t)$, "
        "the velocity here can only be evaluated once the current law is known: this is the gap that the "
        "discriminator fills.",
        plants=(
            Plant("diffmath.gradient_flows:gaussian_closure_velocity", rel=1e-5,
                  why="the particle velocity off by one part in 10^5",
                  fails=("particle moments", "particles' empirical mean")),
            Plant("diffmath.gradient_flows:gaussian_flow", index=0, add=0.05, why="the flow's mean off by 0.05 (about 14 SE)",
                  fails=("z of the mean vs",)),
            Plant("diffmath.gradient_flows:gaussian_flow", index=1, rel=0.06, why="the flow's standard deviation 6% too large",
                  fails=("z of the variance vs",)),
            Plant("diffmath.gradient_flows:gaussian_flow_nd", index=0, add=0.05, why="the d-dimensional flow's mean off by 0.05",
                  fails=("z of the mean's entries",)),
            Plant("diffmath.gradient_flows:gaussian_flow_nd", index=1, rel=0.12,
                  why="the d-dimensional flow's covariance 12% too large",
                  fails=("z of the covariance's entries",)),
        ),
    )
)


# --- C19.3 the optimal vanilla-GAN logit -----------------------------------------------------------------
def _derive_c193() -> Derivation:
    a, b = sp.symbols("a b", positive=True)
    D = sp.symbols("D", real=True)
    obj = a * sp.log(1 / (1 + sp.exp(-D))) + b * sp.log(1 - 1 / (1 + sp.exp(-D)))
    d1 = sp.Derivative(obj, D)  # left unevaluated: the check differentiates
    return Derivation(
        [
            Step(d1, (a - (a + b) / (1 + sp.exp(-D))), why="derivative of the pointwise objective",
                 lhs_tex=r"\partial_D\big(a\log\sigma(D)+b\log(1-\sigma(D))\big)", rhs_tex=r"a-(a+b)\,\sigma(D)"),
            Step(sp.Subs(d1, D, sp.log(a / b)), sp.Integer(0), why="stationary at the log-ratio",
                 lhs_tex=r"\partial_D(\cdot)\big|_{D=\log(a/b)}", rhs_tex="0"),
            Step(sp.Subs(sp.Derivative(obj, (D, 2)), D, sp.log(a / b)), -a * b / (a + b), why="strictly concave there",
                 lhs_tex=r"\partial_D^2(\cdot)\big|_{D=\log(a/b)}", rhs_tex=r"-\frac{ab}{a+b}"),
        ],
        setting=r"Pointwise in $x$, with $a=p(x)$, $b=q(x)$; the objective (3) is $\int\big(p\log\sigma(D)+q\log(1-\sigma(D))\big)dx$ "
        r"and $\partial_D^2=-(a+b)\sigma(1-\sigma)<0$ everywhere, so $D^*=\log(p/q)$ is its unique maximiser.",
    )


def _check_c193(device) -> CheckResult:
    mp, sp_, mq, sq, n = 2.0, 0.5, -1.0, 1.0, 50_000
    xp = mp + sp_ * torch.randn(n, generator=_gen(1931), dtype=torch.float64)
    xq = mq + sq * torch.randn(n, generator=_gen(1932), dtype=torch.float64)
    c, cov = gan.fit_quadratic_logit(xp, xq)
    truth = gan.gaussian_log_ratio_coefficients(mp, sp_, mq, sq)
    zmax = ((c - truth).abs() / cov.diag().sqrt()).max().item()
    return CheckResult(
        (Measurement("max z of the fitted logistic coefficients (1, x, x²) vs log N(2,0.5²)/N(−1,1)", zmax, Z,
                     note="asymptotic SE: inverse Hessian of the log-likelihood"),),
        setting=f"n={n} samples of each law; logistic regression by Newton's method (well specified: log p/q is quadratic)",
        device="cpu",
    )


register(
    Claim(
        id="C19.3",
        devices=("cpu",),  # exact or tiny: runs on the CPU whatever device is asked for
        title="The optimal vanilla-GAN discriminator logit is the log density ratio",
        statement=r"The maximiser of $\mathbb E_p[\log\sigma(D)]+\mathbb E_q[\log(1-\sigma(D))]$ over functions $D$ is "
        r"$D^*(x)=\log\frac{p(x)}{q(x)}$.",
        source=Source(part=19, equation="(3)–(4)", paper="goodfellow2014gan", note="proof in kexue.fm 6110"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c193,
        check=_check_c193,
        tests=(
            "tests/test_gan.py::test_optimal_logit_pointwise_property",
            "tests/test_gan.py::test_logistic_fit_recovers_log_ratio",
        ),
        remark="$D$ is the logit (pre-sigmoid output); the particle step (6) uses its gradient.",
        plants=(
            Plant("diffmath.gan:fit_quadratic_logit", index=0, rel=0.2,
                  why="the fitted coefficients 20% too large (about 10 SE for c0)"),
        ),
    )
)


# --- C19.4 f-GAN optimal critics ----------------------------------------------------------------------
_F_SYM = {
    "kl": (lambda u: u * sp.log(u), lambda u: 1 + sp.log(u), lambda T: sp.exp(T - 1)),
    "reverse_kl": (lambda u: -sp.log(u), lambda u: -1 / u, lambda T: -1 - sp.log(-T)),
    "pearson": (lambda u: (u - 1) ** 2, lambda u: 2 * (u - 1), lambda T: T**2 / 4 + T),
    "js": (lambda u: u * sp.log(u) - (u + 1) * sp.log((u + 1) / 2), lambda u: sp.log(2 * u / (1 + u)),
           lambda T: -sp.log(2 - sp.exp(T))),
}


def _derive_c194() -> Derivation:
    r = sp.symbols("r", positive=True)
    T = sp.symbols("T", real=True)
    steps = []
    for name, (f, fp, fstar) in _F_SYM.items():
        tag = name.replace("_", "")
        objective = r * T - fstar(T)  # the pointwise objective r T - f*(T), with the concrete conjugate
        steps.append(Step(sp.Derivative(f(r), r), fp(r), why=f"{name}: differentiate $f$, giving $T^*=f'(r)$",
                          lhs_tex=rf"T^*=f_{{\mathrm{{{tag}}}}}'(r)", rhs_tex=sp.latex(fp(r))))
        steps.append(Step(sp.Subs(sp.Derivative(objective, T), T, fp(r)), sp.Integer(0),
                          why=f"{name}: $rT-f^*(T)$ is stationary at $T^*$",
                          lhs_tex=rf"\partial_T\big(rT-f^*_{{\mathrm{{{tag}}}}}(T)\big)\big|_{{T=T^*}}", rhs_tex="0"))
        steps.append(Step(sp.Subs(objective, T, fp(r)), f(r), why=f"{name}: value at the optimum is $f(r)$ (tight bound)",
                          lhs_tex=rf"r\,T^*-f^*_{{\mathrm{{{tag}}}}}(T^*)", rhs_tex=sp.latex(f(r))))
    return Derivation(
        steps,
        setting=r"$D_f(p\|q)=\mathbb E_q f(p/q)\ge\sup_T\mathbb E_pT-\mathbb E_qf^*(T)$; pointwise (divide by $q$, $r=p/q$) the "
        r"concave function $rT-f^*(T)$ is maximised where $r=f^{*\prime}(T)$, i.e. $T^*=f'(r)$, with value $f(r)$. "
        r"Four divergences: KL ($f=u\log u$), reverse KL ($-\log u$), Pearson $\chi^2$ ($(u-1)^2$), Jensen–Shannon-type "
        r"($u\log u-(u+1)\log\frac{u+1}2$).",
    )


def _check_c194(device) -> CheckResult:
    xs = torch.linspace(-12, 12, 24_001, dtype=torch.float64)
    hx = (xs[1] - xs[0]).item()
    p = torch.exp(gf.log_normal_1d(xs, 0.5, 0.9))
    q = torch.exp(gf.log_normal_1d(xs, -0.3, 1.2))
    worst_tight, worst_pert = 0.0, float("inf")
    for name, (f, fp, fstar) in gan.FGAN.items():
        r = p / q
        T = gan.fgan_optimal_critic(name, r)
        bound = (gan.fgan_objective_density(name, p, q, T).sum() * hx).item()
        div = ((q * f(r)).sum() * hx).item()
        worst_tight = max(worst_tight, abs(bound - div) / abs(div))
        # a perturbed critic gives a strictly smaller bound
        pert = T + 0.05 * torch.sin(xs) * (T.abs().clamp(max=1.0) if name in ("reverse_kl", "js") else 1.0)
        pert_val = (gan.fgan_objective_density(name, p, q, pert).sum() * hx).item()
        worst_pert = min(worst_pert, bound - pert_val)
    return CheckResult(
        (
            Measurement("max rel. gap, variational bound at T*=f'(p/q) vs D_f (quadrature), 4 divergences", worst_tight, 1e-10),
            Measurement("min decrease of the bound under a perturbation of T*", worst_pert, 0.0, ">="),
        ),
        setting="p=N(0.5,0.9²), q=N(−0.3,1.2²); Riemann sum on 24001 points over [−12,12] (same rule for both sides)",
        device="cpu",
    )


register(
    Claim(
        id="C19.4",
        devices=("cpu",),  # exact or tiny: runs on the CPU whatever device is asked for
        title="The f-GAN optimal critic is a function of the density ratio",
        statement=r"For $D_f(p\|q)=\mathbb E_qf(p/q)$ the critic maximising $\mathbb E_pT-\mathbb E_qf^*(T)$ is $T^*=f'(p/q)$, "
        r"and the bound is then tight: KL gives $1+\log r$, reverse KL $-1/r$, Pearson $\chi^2$ $2(r-1)$, "
        r"Jensen–Shannon-type $\log\frac{2r}{1+r}$.",
        source=Source(part=19, note="after (4); kexue.fm 6016, 7210", paper="nowozin2016fgan"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c194,
        check=_check_c194,
        tests=("tests/test_gan.py::test_fgan_critic_pointwise_max_property",),
        plants=(
            Plant("diffmath.gan:fgan_objective_density", rel=1e-7, why="the variational integrand off by one part in 10^7",
                  fails=("max rel. gap",), reads=1e-7),
            Plant("diffmath.gan:fgan_optimal_critic", rel=1e-3,
                  why="T* off by one part in 10^3 (the bound is stationary there: a 1e-6 effect)",
                  fails=("max rel. gap",)),
            Plant("diffmath.gan:fgan_optimal_critic", rel=0.1,
                  why="T* 10% off: no longer the maximiser", fails=("min decrease",)),
        ),
    )
)


# --- C19.5 one-step equivalence of (8) and (11) ------------------------------------------------------------
def _derive_c195() -> Derivation:
    th1, th2, a3, a2, eps = sp.symbols("theta_1 theta_2 a_3 a_2 epsilon", real=True)
    t1, t2 = sp.symbols("theta_1^t theta_2^t", real=True)
    D = lambda u: a3 * u**3 + a2 * u**2
    g = th1 + th2 * z
    gt = t1 + t2 * z
    proj = (g - gt - eps * sp.Subs(sp.Derivative(D(x), x), x, gt)) ** 2  # the target uses grad D at g_{theta_t}(z)
    gl = -D(g)
    at = ((th1, th2), (t1, t2))
    return Derivation(
        [
            Step(sp.Subs(sp.Derivative(proj, th1), *at), 2 * eps * sp.Subs(sp.Derivative(gl, th1), *at),
                 why="$\\partial_{\\theta_1}$ at $\\theta=\\theta_t$",
                 lhs_tex=r"\partial_{\theta_1}\|g_\theta-g_{\theta_t}-\epsilon\nabla D\|^2\big|_{\theta_t}", rhs_tex=r"2\epsilon\,\partial_{\theta_1}[-D(g_\theta)]\big|_{\theta_t}"),
            Step(sp.Subs(sp.Derivative(proj, th2), *at), 2 * eps * sp.Subs(sp.Derivative(gl, th2), *at),
                 why="$\\partial_{\\theta_2}$ at $\\theta=\\theta_t$",
                 lhs_tex=r"\partial_{\theta_2}\|g_\theta-g_{\theta_t}-\epsilon\nabla D\|^2\big|_{\theta_t}", rhs_tex=r"2\epsilon\,\partial_{\theta_2}[-D(g_\theta)]\big|_{\theta_t}"),
        ],
        setting=r"Pointwise in $z$, generator $g_\theta(z)=\theta_1+\theta_2z$, discriminator $D(x)=a_3x^3+a_2x^2$ (frozen). "
        r"In general the gradient of (8) at $\theta_t$ is $-2\epsilon\,J^\top\nabla D(g_{\theta_t}(z))=2\epsilon\nabla_\theta[-D(g_\theta(z))]$.",
    )


def one_step_gradients(seed: int, eps: float, *, k: int = 3, d: int = 2, n: int = 64, width: int = 16):
    """Gradients of (8) and of 2·eps·(11) at theta_t, for a random MLP generator and a random MLP D (float64)."""
    gen = gan.mlp(k, d, width=width, seed=seed)
    D = gan.mlp(d, 1, width=width, seed=seed + 1)
    zz = torch.randn(n, k, generator=_gen(seed + 2), dtype=torch.float64)
    target = gan.projection_targets(gen, zz, lambda u: D(u).reshape(-1), eps)
    g1 = torch.autograd.grad(gan.projection_loss(gen, zz, target), list(gen.parameters()))
    g2 = torch.autograd.grad(2 * eps * gan.generator_loss(gen, zz, lambda u: D(u).reshape(-1)), list(gen.parameters()))
    return torch.cat([a.reshape(-1) for a in g1]), torch.cat([b.reshape(-1) for b in g2])


def _check_c195(device) -> CheckResult:
    worst = 0.0
    for seed in range(5):
        a, b = one_step_gradients(100 * seed, 0.05)
        worst = max(worst, _rel(a, b))
    return CheckResult(
        (Measurement("max rel. error, ∇θ(8) vs 2ε∇θ(11) at θ_t (5 random MLP pairs)", worst, EXACT_RTOL),),
        setting="generator MLP R³→R², D MLP R²→R (tanh, width 16, depth 2, float64), 64 latent samples, ε=0.05",
        device="cpu",
    )


register(
    Claim(
        id="C19.5",
        devices=("cpu",),  # exact or tiny: runs on the CPU whatever device is asked for
        title="One gradient step on the projection loss (8) is one step on the generator loss −D",
        statement=r"At $\theta=\theta_t$, $\nabla_\theta\,\mathbb E_z\|g_\theta(z)-g_{\theta_t}(z)-\epsilon\nabla D(g_{\theta_t}(z))\|^2"
        r"=2\epsilon\,\nabla_\theta\,\mathbb E_z[-D(g_\theta(z))]$ with $D$ frozen: a step of size $\eta$ on (8) is a step of "
        r"size $2\epsilon\eta$ on (11).",
        source=Source(part=19, equation="(9)–(11)", paper=PAPER),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c195,
        check=_check_c195,
        tests=("tests/test_gan.py::test_one_step_equivalence_property",),
        plants=(
            Plant("diffmath.gan:generator_loss", rel=1e-7, why="the generator loss (11) off by one part in 10^7"),
            Plant("diffmath.gan:projection_loss", rel=1e-7, why="the projection loss (8) off by one part in 10^7"),
        ),
    )
)


# --- C19.6 the argmin of (8) is a Gauss–Newton step ---------------------------------------------------------
def _gram(g, params) -> sp.Matrix:
    """E_z[J^T J] for the scalar generator ``g(z)``, J = (dg/dparam_i), as unevaluated derivatives and integrals."""
    J = sp.Matrix([[sp.Derivative(g, th) for th in params]])
    return (J.T * J).applyfunc(lambda e: sp.Integral(e * _PHI, (z, -sp.oo, sp.oo)))


def _derive_c196() -> Derivation:
    Dstar = -((x - m) ** 2) / (2 * s**2) - sp.log(s) + (x - mt) ** 2 / (2 * st**2) + sp.log(st)  # log N(m,s^2)/N(mt,st^2)
    Dp = -(x - m) / s**2 + (x - mt) / st**2  # its gradient, derived in step 2
    xk = mt + st * z
    rho = sp.Symbol("rho", real=True)
    return Derivation(
        [
            Step(_gram(mu + sg * z, (mu, sg)), sp.eye(2), why="$\\mathbb E[J^\\top J]=I$ for $g=\\mu+\\sigma z$: moments of $z$",
                 lhs_tex=r"\mathbb E_z[J^\top J]", rhs_tex=r"I"),
            Step(sp.Derivative(Dstar, x), Dp, why="gradient of the exact logit",
                 lhs_tex=r"\partial_xD^*(x)", rhs_tex=r"-\frac{x-m}{s^2}+\frac{x-\mu_t}{\sigma_t^2}"),
            Step(_gauss_mean(Dp.subs(x, xk)), (m - mt) / s**2, why="the $\\mu$-component of the step equals the mean's velocity",
                 lhs_tex=r"\mathbb E_z[\partial_xD^*(\mu_t+\sigma_tz)]", rhs_tex=r"\frac{m-\mu_t}{s^2}"),
            Step(_gauss_mean(z * Dp.subs(x, xk)), 1 / st - st / s**2, why="the $\\sigma$-component equals the standard deviation's velocity",
                 lhs_tex=r"\mathbb E_z[z\,\partial_xD^*(\mu_t+\sigma_tz)]", rhs_tex=r"\frac1{\sigma_t}-\frac{\sigma_t}{s^2}"),
            Step(_gram(mu + sp.exp(rho) * z, (mu, rho)), sp.diag(1, sp.exp(2 * rho)),
                 why="with $\\sigma=e^\\rho$, $\\mathbb E[J^\\top J]=\\mathrm{diag}(1,\\sigma^2)\\neq I$",
                 lhs_tex=r"\mathbb E_z[J^\top J]\ \text{for}\ g=\mu+e^\rho z", rhs_tex=r"\mathrm{diag}(1,e^{2\rho})"),
        ],
        setting=r"For $g_\theta$ linear in $\theta$, (8) is least squares and its minimiser is exactly "
        r"$\theta_t+\epsilon\,\mathbb E[J^\top J]^{-1}\mathbb E[J^\top\nabla D]$ (for nonlinear $g_\theta$, to first order in $\epsilon$). "
        r"Affine generator $g=\mu+\sigma z$, exact $D^*=\log\mathcal N(m,s^2)/\mathcal N(\mu_t,\sigma_t^2)$: the parameters move "
        r"exactly as the moments of the gradient flow (C19.1). In the log-scale parametrisation the plain gradient step "
        r"scales the $\rho$-velocity by $\sigma^2$ relative to the Gauss–Newton one.",
    )


def gn_vs_lstsq(seed: int, eps: float = 0.05, n: int = 200, nfeat: int = 6):
    """argmin of (8) by least squares vs the Gauss–Newton formula, for a generator linear in its parameters."""
    g = _gen(seed)
    zz = torch.randn(n, 2, generator=g, dtype=torch.float64)
    W1 = torch.randn(2, nfeat, generator=g, dtype=torch.float64)
    phi = torch.tanh(zz @ W1)  # fixed random features; g_theta(z) = phi(z) @ Theta, Theta (nfeat, 2)
    theta_t = torch.randn(nfeat, 2, generator=g, dtype=torch.float64)
    D = gan.mlp(2, 1, width=8, seed=seed)
    xt = phi @ theta_t
    v = gan.input_gradient(lambda u: D(u).reshape(-1), xt)
    sol = torch.linalg.lstsq(phi, xt + eps * v).solution  # argmin of the sample version of (8)
    jac = torch.zeros(n, 2, nfeat * 2, dtype=torch.float64)
    for j in range(2):
        jac[:, j, j::2] = phi  # d g_j / d Theta[:, j] with Theta flattened row-major
    step = gan.gauss_newton_step(jac, v, eps).reshape(nfeat, 2)
    return sol, theta_t + step


def projection_nd(d: int, seed: int, parametrisation: str, *, nodes: int = 3) -> dict:
    """C19.6 in R^d for :class:`gan.AffineGeneratorND` at the law of :func:`gaussian_case` (for ``"isotropic"``/``"log"``,
    N(mq, 0.7² I)), exact D* = log N(m,S)/N(mq,Σq) frozen there. E[JᵀJ] and the argmin of (8) are computed by autograd
    (``gan.flat_jacobian``, ``gan.input_gradient`` of the written-out log densities) under a product Gauss–Hermite rule,
    exact here (degree 2 in z). Returns the metric's error vs the closed form, the step's error vs
    ``gan.affine_parameter_velocity``, and the step's mean and covariance velocities vs ``gf.moment_rhs_nd``."""
    c = gaussian_case(d, seed)
    m, S, mq = c["m"], c["S"], c["mq"]
    iso = parametrisation in ("isotropic", "log")
    if iso:
        L0, Lt = 0.7, 0.7 * torch.eye(d, dtype=torch.float64)
    else:
        Lt = c["L"] if parametrisation == "full" else torch.linalg.cholesky(c["Sq"])
        L0 = Lt
    Sq = Lt @ Lt.T
    gen = gan.AffineGeneratorND(mq, L0, parametrisation)
    zq, wq = hermite_nd(nodes, d)
    root = (wq * len(wq)).sqrt()  # sample means with these factors are the quadrature's expectations
    jac = gan.flat_jacobian(gen, zq) * root[:, None, None]
    metric = torch.einsum("ndp,ndq->pq", jac, jac) / len(wq)
    Dstar = lambda x: log_normal_nd(m, S)(x) - log_normal_nd(mq, Sq)(x)
    with torch.no_grad():
        x = gen(zq)
    step = gan.gauss_newton_step(jac, gan.input_gradient(Dstar, x) * root[:, None], 1.0)  # ε = 1: the velocity
    dmu, dscale = step[:d], step[d:]
    pmu, pscale = gan.affine_parameter_velocity(gen, *gf.gaussian_velocity_nd(mq, Sq, m, S))
    out = {"metric": _rel(metric, gan.affine_gauss_newton_metric(gen)),
           "param": max(_rel(dmu, pmu), _rel(dscale, pscale.reshape(-1)))}
    # the covariance velocity of the step: d/dε (L + ε L̇)(L + ε L̇)^T at ε = 0
    if parametrisation == "full":
        Ldot = dscale.reshape(d, d)
    elif parametrisation == "tril":
        Ldot = torch.zeros(d, d, dtype=torch.float64).index_put(tuple(torch.tril_indices(d, d)), dscale)
    else:
        Ldot = (dscale if parametrisation == "isotropic" else 0.7 * dscale) * torch.eye(d, dtype=torch.float64)
    dm, dS = gf.moment_rhs_nd(mq, Sq, m, S)
    out["mean"] = _rel(dmu, dm)
    out["cov"] = _rel(Ldot @ Lt.T + Lt @ Ldot.T, dS)
    if parametrisation == "log":  # plain gradient step on (11) vs the Gauss–Newton step, ρ-component
        loss = (wq * -Dstar(gen(zq))).sum()
        (grad_rho,) = torch.autograd.grad(loss, [gen.scale])
        out["ratio"] = (-grad_rho / dscale).item()
        out["ratio_closed"] = d * 0.7**2
    return out


def _check_c196(device) -> CheckResult:
    worst = max(_rel(*gn_vs_lstsq(seed)) for seed in range(3))
    zq, wq = hermite(20)
    mp, sp_, mu_t, sig_t, eps = 2.0, 0.5, -1.0, 1.3, 0.01
    Dp = lambda u: -(u - mp) / sp_**2 + (u - mu_t) / sig_t**2
    # scale parametrisation: E[J^T J] = I exactly under the quadrature, and the step is eps * (moment velocity)
    jac = torch.stack([torch.ones_like(zq), zq], -1)[:, None, :] * wq.sqrt()[:, None, None] * len(zq) ** 0.5
    vel = (Dp(mu_t + sig_t * zq) * wq.sqrt() * len(zq) ** 0.5)[:, None]
    step = gan.gauss_newton_step(jac, vel, eps)
    dm, ds = gf.moment_rhs(mu_t, sig_t, mp, sp_)
    err_flow = _rel(step / eps, torch.stack([dm, ds]))
    # log parametrisation: gradient step vs Gauss-Newton step on the rho component
    gen = gan.AffineGenerator(mu_t, sig_t, "log")
    loss = (wq * (-(gf.log_normal_1d(gen(zq), mp, sp_) - gf.log_normal_1d(gen(zq), mu_t, sig_t)))).sum()
    # D frozen at q_t: only the argument g depends on theta, so the gradient is -E[J^T D*'(g)] at theta_t
    grad = torch.autograd.grad(loss, [gen.mu, gen.s])
    plain_rho = -eps * grad[1].item()
    gn_rho = eps * ds.item() / sig_t  # d rho = d sigma / sigma
    ratio = plain_rho / gn_rho
    # (d) g = μ + Lz in d = 2, 3
    nd = {(d, par): projection_nd(d, 1960 + d, par) for d in DIMS for par in gan.AFFINE_PARAMETRISATIONS}
    worst_of = lambda key, pars=gan.AFFINE_PARAMETRISATIONS: max(nd[d, p][key] for d in DIMS for p in pars)
    tril_gap = min(nd[d, "tril"]["cov"] for d in DIMS)
    log_ratio = max(abs(nd[d, "log"]["ratio"] / nd[d, "log"]["ratio_closed"] - 1) for d in DIMS)
    return CheckResult(
        (
            Measurement("max rel. error, least-squares argmin of (8) vs Gauss–Newton step (linear-in-θ generator)", worst, EXACT_RTOL),
            Measurement("rel. error, Gauss–Newton step / ε vs moment velocity of the flow (affine generator)", err_flow, EXACT_RTOL),
            Measurement("log-scale parametrisation: plain-gradient / Gauss–Newton ρ-step, minus σ_t² (=1.69)", abs(ratio - sig_t**2), 1e-10),
            Measurement("d=2,3, g=μ+Lz (L full, triangular, σI, e^ρI): max rel. error, E[JᵀJ] (autograd) vs closed form",
                        worst_of("metric"), EXACT_RTOL),
            Measurement("d=2,3: max rel. error, Gauss–Newton step (autograd) vs affine_parameter_velocity (4 parametrisations)",
                        worst_of("param"), EXACT_RTOL),
            Measurement("d=2,3, L a full matrix: max rel. error, step's mean and covariance velocities vs the flow's",
                        max(worst_of("mean", ("full",)), worst_of("cov", ("full",))), EXACT_RTOL),
            Measurement("d=2,3, L lower triangular: min rel. gap, step's covariance velocity vs the flow's", tril_gap, 0.05, ">=",
                        note="the mean velocity is still exact: max rel. error "
                        f"{worst_of('mean', ('tril',)):.1e}"),
            Measurement("d=2,3, L=e^ρI: max |plain-gradient / Gauss–Newton ρ-step ÷ dσ_t² − 1|", log_ratio, EXACT_RTOL),
        ),
        setting="random-feature generator R²→R² (6 tanh features, 200 samples) with a random MLP D; affine generator with "
        "exact D* for p=N(2,0.5²), q_t=N(−1,1.3²), 20-point Gauss–Hermite (exact here), ε=0.01. d=2,3: seeded full "
        "covariances S and Σ_t=LLᵀ (L a full matrix, or its Cholesky factor for triangular L; σ_t=0.7 for σI and e^ρI), "
        "exact D*, product Gauss–Hermite rule with 3 nodes per axis (exact here)",
        device="cpu",
    )


register(
    Claim(
        id="C19.6",
        extension=r"The article shows that one gradient step on (8) at $\theta_t$ is one on (11). The suite adds what happens when (8) is solved to optimality, as its wording suggests: a Gauss–Newton step, equal to the gradient step only when $\mathbb E[J^\top J]\propto I$ (a factor $\sigma_t^2$ apart for a log-scale parametrisation), and equal to the exact gradient flow for the affine Gaussian generator. In $d\ge2$ that generator needs a full matrix $L$: a lower-triangular $L$ also has $\mathbb E[J^\top J]=I$, but solving (8) then projects the moved samples onto triangular maps, and the covariance no longer moves as the flow's.",
        devices=("cpu",),  # exact or tiny: runs on the CPU whatever device is asked for
        title="The minimiser of (8) is a Gauss–Newton step; for the affine Gaussian generator it is the gradient flow",
        statement=r"The argmin of (8) is $\theta_t+\epsilon\,\mathbb E[J^\top J]^{-1}\mathbb E[J^\top\nabla D]$ (exactly when "
        r"$g_\theta$ is linear in $\theta$), not a gradient step on (11) unless $\mathbb E[J^\top J]\propto I$. For "
        r"$g=\mu+\sigma z$ and exact $D^*$, $\dot\mu=(m-\mu)/s^2$, $\dot\sigma=1/\sigma-\sigma/s^2$: the moment ODE of the flow. "
        r"In $\mathbb R^d$, for $g=\mu+Lz$ with $L$ a full matrix, $\mathbb E[J^\top J]=I$ and $\dot\mu=S^{-1}(m-\mu)$, "
        r"$\dot L=AL$ with $A=\Sigma^{-1}-S^{-1}$, $\Sigma=LL^\top$, so that $\dot\Sigma=2I-S^{-1}\Sigma-\Sigma S^{-1}$, the flow's; "
        r"for lower-triangular $L$, $\mathbb E[J^\top J]=I$ still but $\dot L=\mathrm{tril}(AL)$, whose covariance velocity "
        r"differs from the flow's when $d\ge2$; for $L=e^\rho I$, $\mathbb E[J^\top J]=\mathrm{diag}(I_d,d\sigma^2)$.",
        source=Source(part=19, equation="(8)", paper=PAPER, note="catalogue precision point"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c196,
        check=_check_c196,
        tests=(
            "tests/test_gan.py::test_gauss_newton_is_argmin_property",
            "tests/test_gan.py::test_affine_projection_nd",
            "tests/test_gan.py::test_affine_generator_nd_matches_1d",
        ),
        remark="The article's equivalence of (8) and (11) is a statement about one gradient step at $\\theta_t$. "
        "Solving (8) to optimality is a different update, preconditioned by $\\mathbb E[J^\\top J]^{-1}$; the two agree "
        "only for a parametrisation with orthonormal Jacobian on average (a factor $\\sigma_t^2$ for log-scale, "
        "$d\\sigma_t^2$ for $L=e^\\rho I$ in $\\mathbb R^d$).",
        plants=(
            Plant("diffmath.gan:gauss_newton_step", rel=1e-6, why="the Gauss-Newton step off by one part in 10^6",
                  fails=("least-squares argmin",)),
            Plant("diffmath.gradient_flows:moment_rhs", index=1, rel=1e-7,
                  why="the flow's sigma velocity off by one part in 10^7",
                  fails=("moment velocity of the flow", "minus σ_t²")),
            Plant("diffmath.gan:affine_gauss_newton_metric", rel=1e-7, why="the closed-form E[J^T J] off by one part in 10^7",
                  fails=("E[JᵀJ]",), reads=1e-7),
            Plant("diffmath.gan:affine_parameter_velocity", index=1, rel=1e-7, why="the scale velocity off by one part in 10^7",
                  fails=("vs affine_parameter_velocity",), reads=1e-7),
            Plant("diffmath.gradient_flows:moment_rhs_nd", index=1, rel=1e-7,
                  why="the flow's covariance velocity off by one part in 10^7",
                  fails=("L a full matrix",), reads=1e-7),
            Plant("diffmath.gan:flat_jacobian", rel=1e-7, why="the autograd Jacobian off by one part in 10^7", fails=("dσ_t²",), reads=1e-7),
        ),
    )
)


# --- C19.7 plug-in vs alternating gradients ----------------------------------------------------------------
def plugin_gradients(mu0: float, sig0: float, mp: float, sp_: float, h: str = "identity", nq: int = 80):
    """True gradient of the plug-in objective E_{q_theta}[-h(D*_theta)] and the stop-gradient (alternating) one,
    for the affine generator; expectations by Gauss–Hermite quadrature."""
    zq, wq = hermite(nq)
    hf, hp = gan.H_FAMILY[h]
    gen = gan.AffineGenerator(mu0, sig0)
    xg = gen(zq)

    def dstar(u, mu, sg):
        return gf.log_normal_1d(u, mp, sp_) - (-((u - mu) ** 2) / (2 * sg**2) - torch.log(sg) - 0.5 * math.log(2 * math.pi))

    # plug-in: D* depends on theta through q_theta
    full = (wq * -hf(dstar(xg, gen.mu, gen.sigma))).sum()
    g_full = torch.stack(torch.autograd.grad(full, [gen.mu, gen.s]))
    # alternating: D frozen at theta_t
    mu_t, sg_t = gen.mu.detach(), gen.sigma.detach()
    frozen = (wq * -hf(dstar(gen(zq), mu_t, sg_t))).sum()
    g_alt = torch.stack(torch.autograd.grad(frozen, [gen.mu, gen.s]))
    return g_full, g_alt


def plugin_gradients_nd(d: int, seed: int, h: str = "identity", *, nodes: int = 3) -> dict:
    """C19.7 in R^d: for g = μ + Lz (L a full matrix) at the law of :func:`gaussian_case`, the gradients in (μ, L) of the
    plug-in objective E_z[−h(D*_θ(g_θ(z)))] (D*_θ = log N(m,S) − log N(μ, LLᵀ) moving with θ) and of the stop-gradient
    one (D* frozen at θ_t), by autograd under a product Gauss–Hermite rule, and of KL(q_θ‖p) (``gf.gaussian_kl_nd``)."""
    c = gaussian_case(d, seed)
    m, S = c["m"], c["S"]
    zq, wq = hermite_nd(nodes, d)
    hf = gan.H_FAMILY[h][0]
    gen = gan.AffineGeneratorND(c["mq"], c["L"], "full")
    params = [gen.mu, gen.scale]
    dstar = lambda x, mu, L: log_normal_nd(m, S)(x) - log_normal_nd(mu, L @ L.T)(x)
    flat = lambda grads: torch.cat([g.reshape(-1) for g in grads])
    full = (wq * -hf(dstar(gen(zq), gen.mu, gen.L))).sum()
    frozen = (wq * -hf(dstar(gen(zq), gen.mu.detach(), gen.L.detach()))).sum()
    out = {"plugin": flat(torch.autograd.grad(full, params)), "alternating": flat(torch.autograd.grad(frozen, params))}
    if h == "identity":
        out["kl"] = flat(torch.autograd.grad(gf.gaussian_kl_nd(gen.mu, gen.covariance, m, S), params))
    return out


def _check_c197(device) -> CheckResult:
    mu0, sig0, mp, sp_ = -1.0, 1.3, 2.0, 0.5
    gen = gan.AffineGenerator(mu0, sig0)
    kl = gf.gaussian_kl_1d(gen.mu, gen.sigma, mp, sp_)
    g_kl = torch.stack(torch.autograd.grad(kl, [gen.mu, gen.s]))
    g_full, g_alt = plugin_gradients(mu0, sig0, mp, sp_, "identity")
    e1 = _rel(g_alt, g_kl)
    e2 = _rel(g_full, g_kl)
    n_full, n_alt = plugin_gradients(0.5, 1.0, 0.0, 1.0, "nonsaturating")
    gap = _rel(n_alt, n_full)
    nd = [plugin_gradients_nd(d, 1970 + d) for d in DIMS]
    nd_ns = [plugin_gradients_nd(d, 1970 + d, "nonsaturating", nodes=8) for d in DIMS]
    return CheckResult(
        (
            Measurement("loss −D: rel. error, stop-gradient gradient vs ∇θ KL(q_θ‖p) (closed form)", e1, EXACT_RTOL),
            Measurement("loss −D: rel. error, plug-in gradient vs ∇θ KL(q_θ‖p)", e2, EXACT_RTOL),
            Measurement("non-saturating loss: rel. difference, stop-gradient vs plug-in gradient", gap, 0.25, ">=",
                        note="asserted near its value at this setting"),
            Measurement("d=2,3, g=μ+Lz, loss −D: max rel. error, stop-gradient and plug-in gradients vs ∇θ KL(q_θ‖p)",
                        max(max(_rel(r["alternating"], r["kl"]), _rel(r["plugin"], r["kl"])) for r in nd), EXACT_RTOL),
            Measurement("d=2,3, non-saturating loss: min rel. difference, stop-gradient vs plug-in gradient",
                        min(_rel(r["alternating"], r["plugin"]) for r in nd_ns), 0.07, ">=", note="asserted near its value at these settings"),
        ),
        setting="affine generator g=μ+σz at (−1, 1.3), p=N(2,0.5²) (loss −D); at (0.5, 1), p=N(0,1) (non-saturating); "
        "80-point Gauss–Hermite quadrature. d=2,3: g=μ+Lz (L a full matrix) and p=N(m,S) seeded, full covariances; "
        "product Gauss–Hermite rule, 3 nodes per axis for −D (exact), 8 for the non-saturating loss",
        device="cpu",
    )


register(
    Claim(
        id="C19.7",
        erratum=r"The article (section on MonoFlow's objection) calls the textbook plug-in-$D^*$ derivation inconsistent with alternating training and illustrates it with the generator loss $-D$. For that very loss the two gradients coincide exactly (the extra term has mean zero); the objection is right for other losses, e.g. the non-saturating one.",
        devices=("cpu",),  # exact or tiny: runs on the CPU whatever device is asked for
        title="For the loss −D, alternating training and the plug-in argument give the same gradient",
        statement=r"With $D=D^*_\theta=\log(p/q_\theta)$, $\nabla_\theta\mathrm{KL}(q_\theta\|p)=-\mathbb E_z[J_\theta^\top\nabla D^*(g_\theta(z))]$, "
        r"the gradient of (11) with $D$ frozen, because $\mathbb E_{q_\theta}[\nabla_\theta\log q_\theta]=0$. For the "
        r"non-saturating loss $-\log\sigma(D)$ the frozen-$D$ gradient differs from the gradient of the plug-in objective.",
        source=Source(part=19, equation="(13)–(14)", paper=PAPER, note="section on the meaning of the result"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        check=_check_c197,
        tests=("tests/test_gan.py::test_plugin_equals_alternating_property", "tests/test_gan.py::test_plugin_equals_alternating_nd"),
        remark="The article (after MonoFlow) argues that the usual 'plug in $D^*$' derivation does not describe alternating "
        "training. For the pair it discusses (vanilla $D$, generator loss $-D$) the two gradients coincide exactly; the "
        "inconsistency is real for other generator losses, e.g. the non-saturating one.",
        plants=(
            Plant("diffmath.gradient_flows:gaussian_kl_1d", rel=1e-7, why="the closed-form KL off by one part in 10^7",
                  fails=("stop-gradient gradient vs", "plug-in gradient vs"), reads=1e-7),
            Plant("diffmath.gradient_flows:gaussian_kl_nd", rel=1e-7, why="the d-dimensional KL off by one part in 10^7",
                  fails=("g=μ+Lz, loss −D",), reads=1e-7),
        ),
    )
)


# --- C19.8 MonoFlow's family -----------------------------------------------------------------------------------
def _derive_c198() -> Derivation:
    D = sp.symbols("D", real=True)
    hp = sp.symbols("h'", positive=True)
    lpr = sp.symbols("ell_x", real=True)
    u = sp.symbols("u", real=True)
    sig = 1 / (1 + sp.exp(-D))
    # generic one-dimensional densities q, p, velocity v and increasing h: nothing concrete is assumed
    qf, pf = sp.Function("q", positive=True)(x), sp.Function("p", positive=True)(x)
    vf, h = sp.Function("v", real=True)(x), sp.Function("h", real=True)
    ell, lq = sp.log(pf / qf), sp.log(qf / pf)
    return Derivation(
        [
            Step(-sp.Derivative(qf * vf, x) * (lq + 1), qf * vf * sp.Derivative(lq, x) - sp.Derivative(qf * vf * (lq + 1), x),
                 why="integration by parts (product rule; the exact derivative integrates to 0): the first variation of KL along $v$",
                 lhs_tex=r"\partial_tq\,\Big(\log\frac qp+1\Big)=-\partial_x(qv)\Big(\log\frac qp+1\Big)",
                 rhs_tex=r"q\,v\,\partial_x\log\frac qp-\partial_x\Big[qv\Big(\log\frac qp+1\Big)\Big]"),
            Step(sp.Derivative(h(ell), x) * sp.Derivative(lq, x), -sp.Subs(sp.Derivative(h(u), u), u, ell) * sp.Derivative(ell, x) ** 2,
                 why="chain rule for MonoFlow's velocity $v=\\partial_xh(\\ell)=h'(\\ell)\\partial_x\\ell$, $\\ell=\\log r$",
                 lhs_tex=r"\partial_xh(\ell)\;\partial_x\log\frac qp", rhs_tex=r"-h'(\ell)\,|\partial_x\ell|^2"),
            Step(-hp * lpr**2, sp.Integer(0), relation="<=", certificate=hp * lpr**2, why="$h$ increasing",
                 lhs_tex=r"-h'(\ell)\,|\partial_x\ell|^2", rhs_tex="0"),
            Step(sp.Derivative(sp.log(1 + sp.exp(D)), D), sig, why="minimax loss $\\log(1-\\sigma(D))=-\\mathrm{softplus}(D)$",
                 lhs_tex=r"\mathrm{softplus}'(D)", rhs_tex=r"\sigma(D)"),
            Step(sp.Derivative(sp.log(sig), D), 1 - sig, why="non-saturating loss $-\\log\\sigma(D)$",
                 lhs_tex=r"(\log\sigma)'(D)", rhs_tex=r"1-\sigma(D)"),
        ],
        setting=r"$\frac{d}{dt}\mathrm{KL}(q_t\|p)=\int\partial_tq_t\,(\log\frac{q_t}p+1)\,dx$ with $\partial_tq_t=-\partial_x(q_tv)$; "
        r"integrating step 1 over $x$ (the exact derivative vanishes for decaying densities) gives "
        r"$\mathbb E_{q_t}[v\,\partial_x\log(q_t/p)]$ for any velocity $v$, one-dimensional here (in $\\mathbb R^d$ "
        r"the same product rule, summed over coordinates). With MonoFlow's $v=\nabla h(\log r_t)$ the integrand is $-h'(\ell)|\nabla\ell|^2\le0$. Where fakes are "
        r"confidently rejected ($D\ll0$), the minimax weight $\sigma(D)$ vanishes and the non-saturating weight $1-\sigma(D)$ is near 1.",
    )


def monoflow_nd(d: int, seed: int, h: str, *, n: int = 10_000) -> tuple[float, float]:
    """C19.8 in R^d: q = N(mq, Σq) of :func:`gaussian_case`, target the mixture of :func:`_mixture_nd`; the measured KL
    rate along MonoFlow's velocity (``gf.pushforward_kl_rate``, log-determinant of the autograd Jacobian) against
    −E_q[h'(ℓ)‖∇ℓ‖²], ∇ℓ by autograd of the written-out densities. Returns (z of the difference, rate + 5 SE)."""
    c = gaussian_case(d, seed)
    lp, lq = _mixture_nd(c["m"], c["S"]), log_normal_nd(c["mq"], c["Sq"])
    xq = c["mq"] + torch.randn(n, d, generator=_gen(seed + 1), dtype=torch.float64) @ c["L"].T
    vel = lambda u: gan.monoflow_velocity(u, lambda y: lp(y) - lq(y), h)
    rate = gf.pushforward_kl_rate(xq, lq, lp, vel, 1e-4)
    xx = xq.clone().requires_grad_(True)
    ell = lp(xx) - lq(xx)
    (gr,) = torch.autograd.grad(ell.sum(), xx)
    integrand = -gan.H_FAMILY[h][1](ell.detach()) * (gr**2).sum(-1)
    est = montecarlo.mean(rate)
    return montecarlo.mean(rate - integrand).z(0.0).item(), (est.value + Z * est.se).item()


def _check_c198(device) -> CheckResult:
    n = 200_000
    xq = 0.3 + 1.1 * torch.randn(n, generator=_gen(198), dtype=torch.float64)
    lq = lambda u: gf.log_normal_1d(u, 0.3, 1.1)
    ms = []
    for h in gan.H_FAMILY:
        vel = lambda u, h=h: gan.monoflow_velocity(u, lambda y: _mixture_logp(y) - lq(y), h)
        rate = gf.pushforward_kl_rate(xq, lq, _mixture_logp, vel, 1e-4)
        xx = xq.clone().requires_grad_(True)
        ell = _mixture_logp(xx) - lq(xx)
        (gr,) = torch.autograd.grad(ell.sum(), xx)
        integ = -gan.H_FAMILY[h][1](ell.detach()) * gr**2
        ms.append(Measurement(f"h={h}: z of the measured dKL rate − (−E h'(ℓ)|∇ℓ|²)", montecarlo.mean(rate - integ).z(0.0).item(), Z))
        est = montecarlo.mean(rate)
        ms.append(Measurement(f"h={h}: dKL rate + 5 SE (must be ≤ 0)", (est.value + Z * est.se).item(), 0.0))
    # speeds for separated Gaussians: q = N(-3, 1), p = N(3, 1)
    xs = -3.0 + torch.randn(n, generator=_gen(1981), dtype=torch.float64)
    lr = lambda y: gf.log_normal_1d(y, 3.0, 1.0) - gf.log_normal_1d(y, -3.0, 1.0)
    speed = {h: gan.monoflow_velocity(xs, lr, h).abs().mean().item() for h in ("minimax", "nonsaturating")}
    ms.append(Measurement("separated Gaussians: mean speed minimax / non-saturating", speed["minimax"] / speed["nonsaturating"], 0.01,
                          note=f"minimax {speed['minimax']:.3g}, non-saturating {speed['nonsaturating']:.3g}"))
    nd = [monoflow_nd(d, 1980 + d, h) for d in DIMS for h in gan.H_FAMILY]
    ms.append(Measurement("d=2,3, all three h: max z of the measured dKL rate − (−E h'(ℓ)‖∇ℓ‖²)", max(r[0] for r in nd), Z))
    ms.append(Measurement("d=2,3, all three h: max of dKL rate + 5 SE (must be ≤ 0)", max(r[1] for r in nd), 0.0))
    return CheckResult(tuple(ms), setting="(dissipation) p=½N(2,0.5²)+½N(−1.5,0.7²), q=N(0.3,1.1²), n=2e5, δ=1e-4; "
                       "(speeds) q=N(−3,1), p=N(3,1), exact log-ratio; (d=2,3) p=½N(m+u,S)+½N(m−u,S/2), q=N(m_q,Σ_q), "
                       "full covariances, n=1e4, δ=1e-4", device="cpu")


register(
    Claim(
        id="C19.8",
        devices=("cpu",),  # exact or tiny: runs on the CPU whatever device is asked for
        title="MonoFlow: any increasing h dissipates the reverse KL, at a speed set by h'",
        statement=r"With generator loss $-h(D)$, $h$ increasing, the particles move with $\nabla h(\log r_t)=h'(\log r_t)\nabla\log r_t$ "
        r"and $\frac{d}{dt}\mathrm{KL}(q_t\|p)=-\mathbb E_{q_t}[h'(\log r_t)\|\nabla\log r_t\|^2]\le0$. The minimax loss is "
        r"$h=\mathrm{softplus}$ ($h'=\sigma(D)$, vanishing for confidently rejected fakes); the non-saturating loss is "
        r"$h=\log\sigma$ ($h'=1-\sigma(D)$).",
        source=Source(part=19, equation="(12)", paper=PAPER),
        kind=Kind.INEQUALITY,
        chapter=CHAPTER,
        derive=_derive_c198,
        check=_check_c198,
        tests=("tests/test_gan.py::test_monoflow_dissipation_property", "tests/test_gan.py::test_monoflow_dissipation_nd"),
        remark="The article does not prove this and refers to the paper; the dissipation identity above is the short "
        "proof. Increasing $h$ guarantees descent of the KL but the fixed point $q=p$ is reached only under the "
        "conditions of C19.10–C19.11.",
        plants=(
            Plant("diffmath.gradient_flows:pushforward_kl_rate", rel=0.04, why="the pushforward KL rate 4% too large",
                  fails=("h=identity: z", "h=minimax: z", "h=nonsaturating: z")),
            Plant("diffmath.gradient_flows:pushforward_kl_rate", rel=0.08, why="the pushforward KL rate 8% too large",
                  fails=("all three h: max z",)),
            Plant("diffmath.gradient_flows:pushforward_kl_rate", negate=True, why="the KL rate's sign flipped",
                  fails=("h=identity: dKL rate + 5 SE", "h=minimax: dKL rate + 5 SE", "h=nonsaturating: dKL rate + 5 SE",
                         "max of dKL rate + 5 SE")),
        ),
    )
)


# --- C19.9 many generator steps against a frozen discriminator ----------------------------------------------------
def _derive_c199() -> Derivation:
    Dstar = -((x - m) ** 2) / (2 * s**2) - sp.log(s) + (x - mt) ** 2 / (2 * st**2) + sp.log(st)
    obj = _gauss_mean(-Dstar.subs(x, mu + sg * z))  # E_z[-D*(mu + sigma z)], integrated by the check
    closed = (sg**2 + (mu - m) ** 2) / (2 * s**2) - (sg**2 + (mu - mt) ** 2) / (2 * st**2) + sp.log(s / st)
    return Derivation(
        [
            Step(obj, closed, why="Gaussian integral over $z\\sim\\mathcal N(0,1)$", lhs_tex=r"\mathbb E_z[-D^*(\mu+\sigma z)]",
                 rhs_tex=r"\frac{\sigma^2+(\mu-m)^2}{2s^2}-\frac{\sigma^2+(\mu-\mu_t)^2}{2\sigma_t^2}+\log\frac{s}{\sigma_t}"),
            Step(sp.Derivative(closed, (sg, 2)), 1 / s**2 - 1 / st**2, why="curvature in $\\sigma$: negative when $\\sigma_t<s$",
                 lhs_tex=r"\partial_\sigma^2\,\mathbb E_z[-D^*]", rhs_tex=r"\frac1{s^2}-\frac1{\sigma_t^2}"),
        ],
        setting=r"$D^*=\log\mathcal N(m,s^2)-\log\mathcal N(\mu_t,\sigma_t^2)$ frozen at the generator's law at iteration $t$, "
        r"generator $g=\mu+\sigma z$. The objective is a quadratic in $\sigma$ with leading coefficient "
        r"$\frac1{2s^2}-\frac1{2\sigma_t^2}$: unbounded below if $\sigma_t<s$, minimised at $\sigma=0$ if $\sigma_t>s$.",
    )


def frozen_runs(mu_t: float, sig_t: float, mp: float, sp_: float, *, eps: float = 0.05, lr: float = 0.05, steps: int = 400):
    """Many gradient steps on (11) with D* frozen at (mu_t, sig_t), and on (8) (exact expectations); returns the
    sigma trajectories and the final (mu, sigma) of (8) with its predicted minimiser theta_t + eps * velocity."""
    zq, wq = hermite(20)
    Dp = lambda u: -(u - mp) / sp_**2 + (u - mu_t) / sig_t**2
    target = (mu_t + sig_t * zq) + eps * Dp(mu_t + sig_t * zq)
    runs = {}
    for name in ("generator loss (11)", "projection loss (8)"):
        gen = gan.AffineGenerator(mu_t, sig_t)
        opt = torch.optim.SGD(gen.parameters(), lr=lr)
        sig_path = [sig_t]
        for _ in range(steps):
            if name.startswith("generator"):
                loss = gan.frozen_generator_objective(gen.mu, gen.sigma, mu_t, sig_t, mp, sp_)
            else:
                loss = (wq * (gen(zq) - target) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sig_path.append(abs(gen.sigma.item()))
        runs[name] = (np.array(sig_path), gen.mu.item(), gen.sigma.item())
    dm, ds = gf.moment_rhs(mu_t, sig_t, mp, sp_)
    return runs, (mu_t + eps * dm.item(), sig_t + eps * ds.item())


def frozen_runs_nd(d: int, seed: int, widths, *, lr: float = 0.2, steps: int = 200, nodes: int = 3) -> dict:
    """C19.9 in R^d: p = N(m, S) of :func:`gaussian_case`, the generator's law at iteration t
    Σ_t = S^{1/2} R diag(widths) Rᵀ S^{1/2} (R a seeded rotation): narrower than p along the directions with width < 1,
    wider along the others. D* frozen there; many SGD steps on (11) for g = μ + Lz (L full), the expectation by a
    product Gauss–Hermite rule (exact: −D* is quadratic). Returns the singular values of L before and after, and the
    largest rel. error of ``gan.frozen_generator_objective_nd`` against the quadrature along the run."""
    c = gaussian_case(d, seed)
    m, S = c["m"], c["S"]
    lam, U = torch.linalg.eigh(S)
    root = U @ torch.diag(lam.sqrt()) @ U.T
    R = torch.linalg.qr(torch.randn(d, d, generator=_gen(seed + 1), dtype=torch.float64))[0]
    St = root @ R @ torch.diag(torch.as_tensor(widths, dtype=torch.float64)) @ R.T @ root
    St = 0.5 * (St + St.T)
    mu_t, Lt = c["mq"], torch.linalg.cholesky(St)
    zq, wq = hermite_nd(nodes, d)
    dstar = lambda x: log_normal_nd(m, S)(x) - log_normal_nd(mu_t, St)(x)
    gen = gan.AffineGeneratorND(mu_t, Lt, "full")
    opt = torch.optim.SGD(gen.parameters(), lr=lr)
    err = 0.0
    for k in range(steps):
        loss = (wq * -dstar(gen(zq))).sum()
        if k % 30 == 0:
            closed = gan.frozen_generator_objective_nd(gen.mu.detach(), gen.L.detach(), mu_t, St, m, S)
            err = max(err, _rel(closed, loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"sv0": torch.linalg.svdvals(Lt), "sv": torch.linalg.svdvals(gen.L.detach()), "closed": err}


def _check_c199(device) -> CheckResult:
    runs, pred = frozen_runs(-1.0, 0.3, 2.0, 0.5)
    sig_gen = runs["generator loss (11)"][0][-1]
    _, mu8, sg8 = runs["projection loss (8)"]
    err8 = max(abs(mu8 - pred[0]), abs(sg8 - pred[1])) / max(abs(pred[0]), abs(pred[1]))
    runs2, _ = frozen_runs(-1.0, 0.8, 2.0, 0.5)
    sig_collapse = runs2["generator loss (11)"][0][-1]
    nd = [frozen_runs_nd(2, 1992, (0.5, 2.0)), frozen_runs_nd(3, 1993, (0.5, 2.0, 2.0)),
          frozen_runs_nd(2, 1992, (2.0, 2.0)), frozen_runs_nd(3, 1993, (2.0, 2.0, 2.0))]
    return CheckResult(
        (
            Measurement("σ_t=0.3 < s=0.5: σ after 400 steps on (11), frozen D* (started at 0.3)", sig_gen, 100.0, ">=",
                        note="grows geometrically without bound"),
            Measurement("rel. error, 400 steps on (8) vs its minimiser θ_t+ε·velocity", err8, EXACT_RTOL),
            Measurement("σ_t=0.8 > s=0.5: |σ| after 400 steps on (11) (collapse towards 0)", sig_collapse, 1e-3),
            Measurement("d=2,3: max rel. error, closed-form E_z[−D*(μ+Lz)] vs product Gauss–Hermite, along the runs below",
                        max(r["closed"] for r in nd), EXACT_RTOL),
            Measurement("d=2,3, Σ_t narrower than p in one direction, wider in the others: min over d of the largest "
                        "singular value of L after 200 steps on (11) ÷ before", min((r["sv"][0] / r["sv0"][0]).item() for r in nd[:2]),
                        100.0, ">=", note="one narrow direction suffices: the loss is unbounded below"),
            Measurement("d=2,3, Σ_t wider than p in every direction: max over d of the largest singular value of L after "
                        "200 steps (collapse towards 0)", max(r["sv"][0].item() for r in nd[2:]), 1e-3),
        ),
        setting="p=N(2,0.5²), generator N(−1,σ_t²) with σ_t ∈ {0.3, 0.8}; SGD lr 0.05 on exact expectations; ε=0.05 in (8). "
        "d=2,3: p=N(m,S) seeded (full S), Σ_t=S^{1/2}R diag(w)RᵀS^{1/2} with w=(0.5,2), (0.5,2,2) and w=2 throughout, R a seeded "
        "rotation; g=μ+Lz with L a full matrix, SGD lr 0.2, 200 steps, expectations by a product Gauss–Hermite rule (3 nodes per axis, exact)",
        device="cpu",
    )


register(
    Claim(
        id="C19.9",
        devices=("cpu",),  # exact or tiny: runs on the CPU whatever device is asked for
        title="Against a frozen discriminator the generator loss −D has no useful minimiser",
        statement=r"With $D^*$ frozen at $q_t=\mathcal N(\mu_t,\sigma_t^2)$ and $p=\mathcal N(m,s^2)$, "
        r"$\mathbb E_z[-D^*(\mu+\sigma z)]=\frac{\sigma^2+(\mu-m)^2}{2s^2}-\frac{\sigma^2+(\mu-\mu_t)^2}{2\sigma_t^2}+\log\frac s{\sigma_t}$: "
        r"unbounded below as $\sigma\to\infty$ when $\sigma_t<s$, minimised at $\sigma=0$ when $\sigma_t>s$; the projection "
        r"loss (8) has the well-posed minimiser $g_{\theta_t}+\epsilon\nabla D^*$. In $\mathbb R^d$, for $g=\mu+Lz$, "
        r"$q_t=\mathcal N(\mu_t,\Sigma_t)$ and $p=\mathcal N(m,S)$, the objective's part in $L$ is "
        r"$\tfrac12\mathrm{tr}\big(L^\top(S^{-1}-\Sigma_t^{-1})L\big)$: unbounded below as soon as $q_t$ is narrower than $p$ "
        r"in one direction ($S^{-1}-\Sigma_t^{-1}$ has a negative eigenvalue), minimised at $L=0$ when it is wider in every direction.",
        source=Source(part=19, equation="(8), (11)", paper=PAPER, note="the article's explanation of few generator steps"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c199,
        check=_check_c199,
        tests=(
            "tests/test_gan.py::test_frozen_objective_closed_form_property",
            "tests/test_gan.py::test_frozen_runs_diverge",
            "tests/test_gan.py::test_frozen_objective_nd_closed_form_property",
            "tests/test_gan.py::test_frozen_runs_nd",
        ),
        plants=(
            Plant("diffmath.gan:frozen_generator_objective", negate=True, why="the generator objective's sign flipped",
                  fails=("σ_t=0.3 < s=0.5", "σ_t=0.8 > s=0.5")),
            Plant("diffmath.gradient_flows:moment_rhs", index=0, rel=1e-7, why="the flow's mean velocity off by one part in 10^7",
                  fails=("400 steps on (8)",)),
            Plant("diffmath.gan:frozen_generator_objective_nd", rel=1e-7, why="the closed-form objective off by one part in 10^7",
                  fails=("closed-form E_z[−D*(μ+Lz)]",), reads=1e-7),
        ),
    )
)


# --- C19.10 log-Sobolev rate for Gaussians ------------------------------------------------------------------------------
def _derive_c1910() -> Derivation:
    m0, s0 = sp.symbols("m_0 s_0", positive=True)
    c = sp.exp(-2 * t / s**2)
    mt_ = m + (m0 - m) * sp.exp(-t / s**2)
    st_ = sp.sqrt(s**2 + (s0**2 - s**2) * c)
    u0 = s0**2 / s**2 - 1
    return Derivation(
        [
            Step(sp.Subs(_kl(mt, st, m, s), (mt, st), (mt_, st_)), c * (m0 - m) ** 2 / (2 * s**2) + (c * u0 - sp.log(1 + c * u0)) / 2,
                 why="substitute the exact flow", lhs_tex=r"\mathrm{KL}(q_t\|p)",
                 rhs_tex=r"c\,\frac{(m_0-m)^2}{2s^2}+\tfrac12\big(cu_0-\log(1+cu_0)\big)"),
        ],
        setting=r"$c=e^{-2t/s^2}\in(0,1]$, $u_0=s_0^2/s^2-1>-1$. The mean part decays exactly like $c$. For the variance part, "
        r"$\phi(u)=u-\log(1+u)$ is convex with $\phi(0)=0$, so $\phi(cu_0)\le c\,\phi(u_0)$; hence "
        r"$\mathrm{KL}(q_t\|p)\le e^{-2t/s^2}\mathrm{KL}(q_0\|p)$, the rate the log-Sobolev inequality of $\mathcal N(m,s^2)$ "
        r"(constant $s^2$) predicts, with equality when $s_0=s$.",
    )


def lsi_ratio(m0, s0, mp, sp_, times) -> torch.Tensor:
    """KL(q_t||p) / (e^{-2t/s²} KL(q_0||p)) along the exact Gaussian flow."""
    times = torch.as_tensor(times, dtype=torch.float64)
    kl_t = gf.gaussian_kl_1d(*gf.gaussian_flow(m0, s0, mp, sp_, times), mp, sp_)
    return kl_t / gf.lsi_bound(gf.gaussian_kl_1d(m0, s0, mp, sp_), sp_, times)


def lsi_ratio_nd(m0, S0, m, S, times) -> torch.Tensor:
    """KL(q_t‖p) / (e^{-2t/C} KL(q_0‖p)) along the exact d-dimensional flow, C = λ_max(S) the log-Sobolev constant of
    N(m, S) (eigenvalues by ``torch.linalg.eigvalsh``)."""
    times = torch.as_tensor(times, dtype=torch.float64)
    mt, St = gf.gaussian_flow_nd(m0, S0, m, S, times)
    kl_t = torch.stack([gf.gaussian_kl_nd(a, b, m, S) for a, b in zip(mt, St)])
    C = torch.linalg.eigvalsh(S)[-1]
    return kl_t / gf.lsi_bound(gf.gaussian_kl_nd(m0, S0, m, S), C.sqrt(), times)


def _check_c1910(device) -> CheckResult:
    g = _gen(1910)
    worst = 0.0
    for _ in range(200):
        m0, mp = (4 * torch.rand(2, generator=g, dtype=torch.float64) - 2).tolist()
        s0, sp_ = (0.2 + 2 * torch.rand(2, generator=g, dtype=torch.float64)).tolist()
        worst = max(worst, lsi_ratio(m0, s0, mp, sp_, torch.linspace(0, 5 * sp_**2, 50)).max().item())
    tight = lsi_ratio(-1.0, 0.7, 1.0, 0.7, torch.linspace(0, 2, 20))
    worst_nd, tight_nd = 0.0, 0.0
    for d in DIMS:
        for seed in range(10):
            c = gaussian_case(d, 19100 + 100 * d + seed)
            C = torch.linalg.eigvalsh(c["S"])[-1].item()
            worst_nd = max(worst_nd, lsi_ratio_nd(c["mq"], c["Sq"], c["m"], c["S"], torch.linspace(0, 5 * C, 30)).max().item())
        c = gaussian_case(d, 19100 + 100 * d)
        lam, U = torch.linalg.eigh(c["S"])
        eq = lsi_ratio_nd(c["m"] + 1.3 * U[:, -1], c["S"], c["m"], c["S"], torch.linspace(0, 2, 20))
        tight_nd = max(tight_nd, (eq - 1).abs().max().item())
    return CheckResult(
        (
            Measurement("max over 200 random (m0,s0,m,s) × 50 times of KL_t / (e^{-2t/s²} KL_0)", worst, 1 + EXACT_RTOL),
            Measurement("equal variances: max |KL_t / bound − 1| (tight)", (tight - 1).abs().max().item(), EXACT_RTOL),
            Measurement("d=2,3: max over 10 seeded full-covariance cases each × 30 times of KL_t / (e^{-2t/λmax(S)} KL_0)",
                        worst_nd, 1 + EXACT_RTOL),
            Measurement("d=2,3, Σ_0=S and m_0−m along S's top eigenvector: max |KL_t / bound − 1| (tight)", tight_nd, EXACT_RTOL),
        ),
        setting="m0, m uniform in [−2,2], s0, s uniform in [0.2,2.2], t in [0, 5s²]; d=2,3: the closed-form flow in R^d, "
        "t in [0, 5λmax(S)]",
        device="cpu",
    )


register(
    Claim(
        id="C19.10",
        devices=("cpu",),  # exact or tiny: runs on the CPU whatever device is asked for
        title="Convergence at the log-Sobolev rate for a Gaussian target",
        statement=r"For $p=\mathcal N(m,s^2)$ and Gaussian $q_0$, $\mathrm{KL}(q_t\|p)\le e^{-2t/s^2}\,\mathrm{KL}(q_0\|p)$, "
        r"with equality when $s_0=s$. In $\mathbb R^d$, for $p=\mathcal N(m,S)$, the same holds with $s^2$ replaced by "
        r"$\lambda_{\max}(S)$, with equality when $\Sigma_0=S$ and $m_0-m$ is an eigenvector of $S$ for $\lambda_{\max}$.",
        source=Source(part=19, equation="(1)", note="catalogue addition: convergence needs conditions", paper="jordan1998variational"),
        kind=Kind.INEQUALITY,
        chapter=CHAPTER,
        derive=_derive_c1910,
        check=_check_c1910,
        tests=("tests/test_gradient_flows.py::test_lsi_bound_property", "tests/test_gradient_flows.py::test_lsi_bound_nd_property"),
        plants=(
            Plant("diffmath.gradient_flows:lsi_bound", rel=-1e-7, why="the log-Sobolev bound one part in 10^7 too small",
                  fails=("max over 200 random", "equal variances", "max over 10 seeded", "top eigenvector")),
            Plant("diffmath.gradient_flows:gaussian_flow", index=0, rel=1e-7, why="the flow's mean off by one part in 10^7",
                  fails=("equal variances",)),
            Plant("diffmath.gradient_flows:gaussian_flow_nd", index=0, rel=1e-7,
                  why="the d-dimensional flow's mean off by one part in 10^7",
                  fails=("top eigenvector",)),
        ),
    )
)


# --- C19.11 slow convergence for separated modes -------------------------------------------------------------------------
def separated_modes(a: float, *, h: float = 0.01, width: float = 14.0):
    """Grid, log p for p = ½N(−a,1)+½N(a,1), the grid spectral gap, and the tanh Rayleigh-quotient upper bound."""
    xs = np.arange(-width, width + h / 2, h)
    lp = np.logaddexp(-((xs - a) ** 2) / 2, -((xs + a) ** 2) / 2)
    gap = gf.spectral_gap_1d(lp, h)
    p = np.exp(lp - lp.max())
    p /= p.sum()
    if a == 0:
        f, fp = xs, np.ones_like(xs)
    else:
        f, fp = np.tanh(a * xs), a / np.cosh(a * xs) ** 2
    var = np.sum(p * f**2) - np.sum(p * f) ** 2
    rayleigh = np.sum(p * fp**2) / var
    return xs, lp, gap, rayleigh


def _check_c1911(device) -> CheckResult:
    xs = np.arange(-12, 12.0001, 0.01)
    g_gauss = gf.spectral_gap_1d(-((xs - 0.3) ** 2) / (2 * 0.7**2), 0.01)
    _, _, gap4, ray4 = separated_modes(4.0)
    xs4, lp4, _, _ = separated_modes(4.0)
    kl = gf.grid_kl_curve(lp4, -((xs4 + 4.0) ** 2) / 2, 0.01, [0.0, 20.0])
    return CheckResult(
        (
            Measurement("N(0.3,0.7²): rel. error of the grid spectral gap vs 1/s² (h=0.01)", abs(g_gauss * 0.49 - 1), 1e-4),
            Measurement("½N(±4,1): grid spectral gap (each mode alone: 1)", gap4, 1e-3, note=f"tanh Rayleigh upper bound {ray4:.3g}"),
            Measurement("½N(±4,1): grid gap ≤ tanh Rayleigh quotient (a rigorous upper bound)", ray4 - gap4, 0.0, ">="),
            Measurement("½N(±4,1), q0 = N(−4,1): KL(q_20‖p) / KL(q_0‖p)", kl[1] / kl[0], 0.9, ">=",
                        note=f"KL_0={kl[0]:.4f} (≈ log 2), KL_20={kl[1]:.4f}"),
        ),
        setting="uniform grid h=0.01 on [−14,14]; reversible grid chain for Langevin dynamics (same marginals as (1))",
        device="cpu",
    )


register(
    Claim(
        id="C19.11",
        extension=r"The article states $q_t\to p$ as $t\to\infty$ without conditions; that is right for smooth positive targets. The suite quantifies the rate: it is set by a functional inequality of $p$, and for two modes at distance $2a$ the time needed grows like $e^{ca^2}$.",
        devices=("cpu",),  # exact or tiny: runs on the CPU whatever device is asked for
        title="For well-separated modes the flow converges exponentially slowly",
        statement=r"For $p=\tfrac12\mathcal N(-a,1)+\tfrac12\mathcal N(a,1)$ the relaxation rate of (1) (the spectral gap of the "
        r"Langevin generator, which sets the asymptotic decay of $\mathrm{KL}(q_t\|p)$) falls from 1 at $a=0$ to "
        r"values exponentially small in $a^2$; started in one mode, $q_t$ keeps almost all of $\mathrm{KL}(q_0\|p)\approx\log2$ for a long time.",
        source=Source(part=19, equation="(1)", note="catalogue addition: 'q_t → p' needs conditions"),
        kind=Kind.LIMIT,
        chapter=CHAPTER,
        check=_check_c1911,
        tests=("tests/test_gradient_flows.py::test_spectral_gap_gaussian_and_mixture",),
        remark="The article states $\\lim_{t\\to\\infty}q_t=p$ without conditions. It holds for smooth positive targets, but "
        "the time needed is set by a functional inequality of $p$ and can be astronomically long.",
        plants=(
            Plant("diffmath.gradient_flows:spectral_gap_1d", rel=1e-3, why="the spectral gap one part in 10^3 too large",
                  fails=("N(0.3,0.7²)",), reads=1e-3),
            Plant("diffmath.gradient_flows:langevin_generator_1d", index=1, rel=-1e-7,
                  why="the grid chain's jump rates 10^-7 too small (it leaks)",
                  fails=("each mode alone", "tanh Rayleigh")),
        ),
    )
)


# --- C19.12 GAN training is a discretised gradient flow (empirical) ----------------------------------------------------------
def gan_training(mp=2.0, sp_=0.5, m0=-1.0, s0=1.0, *, n=20_000, eps=0.02, steps=40, seed=0):
    """Alternating training: fit the logistic quadratic D on fresh samples, then (i) move particles by eps·∇D (6), and
    (ii) take one SGD step of size eps on (11) for the affine generator. Returns moment paths of both."""
    g = _gen(seed)
    particles = m0 + s0 * torch.randn(n, generator=g, dtype=torch.float64)
    gen = gan.AffineGenerator(m0, s0)
    opt = torch.optim.SGD(gen.parameters(), lr=eps)
    part_path, gen_path = [(particles.mean().item(), particles.std().item())], [(m0, s0)]
    for _ in range(steps):
        xp = mp + sp_ * torch.randn(n, generator=g, dtype=torch.float64)
        c, _ = gan.fit_quadratic_logit(xp, particles)
        particles = particles + eps * (c[1] + 2 * c[2] * particles)
        part_path.append((particles.mean().item(), particles.std().item()))
        zz = torch.randn(n, generator=g, dtype=torch.float64)
        with torch.no_grad():
            xg = gen(zz)
        xp2 = mp + sp_ * torch.randn(n, generator=g, dtype=torch.float64)
        c2, _ = gan.fit_quadratic_logit(xp2, xg)
        loss = -(c2[0] + c2[1] * gen(zz) + c2[2] * gen(zz) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        gen_path.append((gen.mu.item(), abs(gen.sigma.item())))
    return np.array(part_path), np.array(gen_path)


def _check_c1912(device) -> CheckResult:
    eps, steps = 0.02, 40
    part, genp = gan_training(eps=eps, steps=steps)
    em, es = gf.euler_moments(-1.0, 1.0, 2.0, 0.5, eps, steps)
    tt = torch.arange(steps + 1, dtype=torch.float64) * eps
    fm, fs = gf.gaussian_flow(-1.0, 1.0, 2.0, 0.5, tt)
    dev_part = max(np.abs(part[:, 0] - em).max(), np.abs(part[:, 1] - es).max())
    dev_gen = max(np.abs(genp[:, 0] - em).max(), np.abs(genp[:, 1] - es).max())
    dev_euler = max(np.abs(em - fm.numpy()).max(), np.abs(es - fs.numpy()).max())
    # the Euler moments converge to the flow at first order: halving eps halves the deviation
    em2, es2 = gf.euler_moments(-1.0, 1.0, 2.0, 0.5, eps / 2, 2 * steps)
    tt2 = torch.arange(2 * steps + 1, dtype=torch.float64) * (eps / 2)
    fm2, fs2 = gf.gaussian_flow(-1.0, 1.0, 2.0, 0.5, tt2)
    dev_half = max(np.abs(em2 - fm2.numpy()).max(), np.abs(es2 - fs2.numpy()).max())
    return CheckResult(
        (
            Measurement("particles moved by ε∇D̂: max |moment − Euler moment| over 40 steps", dev_part, 0.1,
                        note="this seeded run; the discriminator's sampling error"),
            Measurement("affine generator, one SGD step on −D̂ per D fit: max |moment − Euler moment|", dev_gen, 0.05,
                        note="this seeded run"),
            Measurement("Euler moments (exact D) vs the flow: deviation at ε over deviation at ε/2 (first order: 2)",
                        dev_euler / dev_half, 1.8, relation=">=",
                        note=f"max deviation {dev_euler:.4f} at ε = {eps}, {dev_half:.4f} at ε/2"),
            Measurement("the same ratio, from above", dev_euler / dev_half, 2.2),
        ),
        setting="p=N(2,0.5²), q0=N(−1,1), n=20000 fresh samples per step, ε=0.02, 40 steps (t=0.8); D: logistic regression on (1,x,x²)",
        device="cpu",
    )


register(
    Claim(
        id="C19.12",
        devices=("cpu",),  # exact or tiny: runs on the CPU whatever device is asked for
        title="GAN training tracks the discretised gradient flow",
        statement=r"Alternating a fitted discriminator with one generator step of size $\epsilon$ on (11) (or moving particles by "
        r"$\epsilon\nabla D$) follows the Euler discretisation of the moment ODE of (1), up to the discriminator's "
        r"estimation error.",
        source=Source(part=19, equation="(5)–(8)", paper=PAPER),
        kind=Kind.EMPIRICAL,
        chapter=CHAPTER,
        check=_check_c1912,
        tests=("tests/test_gan.py::test_gan_training_tracks_flow",),
        remark="The training deviations are asserted near what this seeded run reached, not derived: they are dominated "
        "by the discriminator's sampling error, which shrinks like $n^{-1/2}$. The time discretisation is checked as a "
        "rate: the Euler moments approach the continuous flow at first order in $\\epsilon$.",
        plants=(
            Plant("diffmath.gan:fit_quadratic_logit", index=0, rel=0.2, why="the fitted discriminator 20% too steep",
                  fails=("particles moved by", "affine generator, one SGD step"), reads=0.2),
            Plant("diffmath.gradient_flows:gaussian_flow", index=0, add=0.02, why="the flow's mean off by 0.02",
                  fails=("(first order: 2)",)),
            Plant("diffmath.gradient_flows:gaussian_flow", index=0, add=0.01, why="the flow's mean off by 0.01",
                  fails=("from above",)),
        ),
    )
)
