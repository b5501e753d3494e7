r"""Wasserstein gradient flows of the reverse KL divergence, as particle systems.

Article 19 of the series (kexue.fm 9662, equations (1)–(2)), after {Yi, Zhu, Liu 2023, MonoFlow}
and the JKO picture of Fokker–Planck equations (Jordan, Kinderlehrer, Otto 1998).

**Convention.** As in the article, the flow runs *towards* the data: :math:`q_0` is the
generator's (or the noise's) law and :math:`q_t\to p`, the data law, as :math:`t\to\infty`.
This is the reverse of the library's diffusion convention (data at :math:`t=0`); the flow time
:math:`t` here is not a noise level, and no schedule is involved. The functional is the
**reverse** KL divergence

.. math:: F[q]=\mathrm{KL}(q\,\|\,p)=\int q\log\frac qp ,\qquad
          \partial_t q_t=-\nabla\cdot\big(q_t\,\nabla\log r_t\big),\quad r_t=p/q_t ,

realised by particles moving with :math:`\dot x=\nabla\log r_t(x)=\nabla\log p(x)-\nabla\log q_t(x)`,
a velocity that depends on the particles' own law :math:`q_t` (a McKean–Vlasov system). The
dissipation identity is :math:`\tfrac{d}{dt}\mathrm{KL}(q_t\|p)=-\mathbb E_{q_t}\|\nabla\log r_t\|^2`.

For a Gaussian target :math:`p=\mathcal N(m,s^2)` and Gaussian :math:`q_0` everything is closed form
(one dimension; the functions below act elementwise on tensors of parameters):

.. math:: \dot m_t=\frac{m-m_t}{s^2},\qquad \dot s_t=\frac1{s_t}-\frac{s_t}{s^2},\qquad
          m_t=m+(m_0-m)e^{-t/s^2},\quad s_t^2=s^2+(s_0^2-s^2)e^{-2t/s^2},

and the log-Sobolev inequality of :math:`p` (constant :math:`s^2`) gives
:math:`\mathrm{KL}(q_t\|p)\le e^{-2t/s^2}\,\mathrm{KL}(q_0\|p)`.

The same holds in :math:`\mathbb R^d` (the ``*_nd`` functions, one law at a time, covariances
:math:`S,\Sigma` symmetric positive definite): for :math:`p=\mathcal N(m,S)` and
:math:`q_t=\mathcal N(m_t,\Sigma_t)` the velocity :math:`\nabla\log(p/q_t)` is affine, the flow stays
Gaussian, and

.. math:: \dot m_t=S^{-1}(m-m_t),\qquad \dot\Sigma_t=2I-S^{-1}\Sigma_t-\Sigma_tS^{-1},\qquad
          m_t=m+E_t(m_0-m),\quad \Sigma_t=S+E_t(\Sigma_0-S)E_t,\quad E_t=e^{-tS^{-1}},

which for :math:`d=1` is the system above (:math:`\Sigma=s_q^2`, :math:`\frac{d}{dt}s_q^2=2s_q\dot s_q`).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from diffmath._validation import as_tensor, spd_eigh

Score = Callable[[torch.Tensor], torch.Tensor]


def _positive(value, name):
    t = as_tensor(value, name)
    if (t <= 0).any():
        raise ValueError(f"{name} must be > 0")
    return t


def gaussian_kl_1d(mq, sq, m, s) -> torch.Tensor:
    r""":math:`\mathrm{KL}(\mathcal N(m_q,s_q^2)\,\|\,\mathcal N(m,s^2))=\log\frac s{s_q}+\frac{s_q^2+(m_q-m)^2}{2s^2}-\frac12`.

    Note the order: the first law is the moving one (the generator's), the second the target.
    """
    mq, m = as_tensor(mq, "mq"), as_tensor(m, "m")
    sq, s = _positive(sq, "sq"), _positive(s, "s")
    return torch.log(s / sq) + (sq**2 + (mq - m) ** 2) / (2 * s**2) - 0.5


def gaussian_fisher_1d(mq, sq, m, s) -> torch.Tensor:
    r"""Relative Fisher information :math:`\mathbb E_q\|\nabla\log(p/q)\|^2=\frac{(m_q-m)^2}{s^4}+\big(\frac1{s_q}-\frac{s_q}{s^2}\big)^2`
    for :math:`q=\mathcal N(m_q,s_q^2)`, :math:`p=\mathcal N(m,s^2)`: minus the rate of change of
    :math:`\mathrm{KL}(q_t\|p)` along the flow (article 19, (1))."""
    mq, m = as_tensor(mq, "mq"), as_tensor(m, "m")
    sq, s = _positive(sq, "sq"), _positive(s, "s")
    return (mq - m) ** 2 / s**4 + (1 / sq - sq / s**2) ** 2


def moment_rhs(mq, sq, m, s) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The moment ODE of the reverse-KL flow for Gaussians: :math:`(\dot m_q,\dot s_q)=\big(\frac{m-m_q}{s^2},\ \frac1{s_q}-\frac{s_q}{s^2}\big)`."""
    mq, m = as_tensor(mq, "mq"), as_tensor(m, "m")
    sq, s = _positive(sq, "sq"), _positive(s, "s")
    return (m - mq) / s**2, 1 / sq - sq / s**2


def gaussian_flow(m0, s0, m, s, t) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact solution of the moment ODE: :math:`m_t=m+(m_0-m)e^{-t/s^2}`, :math:`s_t^2=s^2+(s_0^2-s^2)e^{-2t/s^2}` (``t >= 0``)."""
    m0, m = as_tensor(m0, "m0"), as_tensor(m, "m")
    s0, s = _positive(s0, "s0"), _positive(s, "s")
    t = as_tensor(t, "t")
    if (t < 0).any():
        raise ValueError("t must be >= 0 (the flow runs forward from q_0)")
    decay = torch.exp(-t / s**2)
    return m + (m0 - m) * decay, torch.sqrt(s**2 + (s0**2 - s**2) * decay**2)


def _gaussian_nd(mean, cov, mname: str, cname: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate one d-dimensional Gaussian: ``mean`` of shape (d,), ``cov`` (d, d) symmetric positive definite."""
    mu = as_tensor(mean, mname)
    if mu.ndim != 1 or mu.shape[0] < 1:
        raise ValueError(f"{mname} must have shape (d,), got {tuple(mu.shape)}")
    d = mu.shape[0]
    C = as_tensor(cov, cname, dtype=mu.dtype, device=mu.device)
    if tuple(C.shape) != (d, d):
        raise ValueError(f"{cname} must have shape ({d}, {d}) to match {mname}, got {tuple(C.shape)}")
    spd_eigh(C.detach(), cname)
    return mu, 0.5 * (C + C.T)


def _pair_nd(mq, Sq, m, S):
    mq, Sq = _gaussian_nd(mq, Sq, "mq", "Sq")
    m, S = _gaussian_nd(m, S, "m", "S")
    if m.shape != mq.shape:
        raise ValueError(f"m must have the dimension of mq ({mq.shape[0]}), got {m.shape[0]}")
    return mq, Sq, m.to(mq), S.to(Sq)


def gaussian_kl_nd(mq, Sq, m, S) -> torch.Tensor:
    r""":math:`\mathrm{KL}(\mathcal N(m_q,\Sigma_q)\,\|\,\mathcal N(m,S))
    =\tfrac12\big(\mathrm{tr}(S^{-1}\Sigma_q)+(m_q-m)^\top S^{-1}(m_q-m)-d+\log\det S-\log\det\Sigma_q\big)`,
    the moving law first (the :math:`d`-dimensional :func:`gaussian_kl_1d`, with covariances instead of
    standard deviations). Differentiable in all arguments."""
    mq, Sq, m, S = _pair_nd(mq, Sq, m, S)
    d = mq.shape[0]
    Ls = torch.linalg.cholesky(S)
    tr = torch.cholesky_solve(Sq, Ls).diagonal().sum()
    diff = (mq - m)[:, None]
    maha = (diff * torch.cholesky_solve(diff, Ls)).sum()
    logdet = 2 * Ls.diagonal().log().sum() - torch.linalg.slogdet(Sq)[1]
    return 0.5 * (tr + maha - d + logdet)


def gaussian_velocity_nd(mq, Sq, m, S) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The particle velocity of (2) for :math:`q=\mathcal N(m_q,\Sigma_q)`, :math:`p=\mathcal N(m,S)`: it is affine,

    .. math:: \nabla\log\frac pq(x)=b+A\,(x-m_q),\qquad b=S^{-1}(m-m_q),\quad A=\Sigma_q^{-1}-S^{-1}\ (\text{symmetric}).

    Returns ``(b, A)`` (article 19, (2); also the gradient of the optimal logit :math:`D^*=\log(p/q)`)."""
    mq, Sq, m, S = _pair_nd(mq, Sq, m, S)
    Sinv, Sqinv = torch.linalg.inv(S), torch.linalg.inv(Sq)
    return Sinv @ (m - mq), 0.5 * ((Sqinv - Sinv) + (Sqinv - Sinv).T)


def gaussian_fisher_nd(mq, Sq, m, S) -> torch.Tensor:
    r"""Relative Fisher information :math:`\mathbb E_q\|\nabla\log(p/q)\|^2` for :math:`q=\mathcal N(m_q,\Sigma_q)`,
    :math:`p=\mathcal N(m,S)`: with :math:`b,A` of :func:`gaussian_velocity_nd`,

    .. math:: \|b\|^2+\mathrm{tr}(A\Sigma_qA)=\|S^{-1}(m_q-m)\|^2+\mathrm{tr}\big(\Sigma_q^{-1}-2S^{-1}+S^{-1}\Sigma_qS^{-1}\big),

    minus the rate of change of :math:`\mathrm{KL}(q_t\|p)` along the flow (article 19, (1)); :func:`gaussian_fisher_1d`
    for :math:`d=1`."""
    mq, Sq, m, S = _pair_nd(mq, Sq, m, S)
    Sinv, Sqinv = torch.linalg.inv(S), torch.linalg.inv(Sq)
    b = Sinv @ (mq - m)
    return (b**2).sum() + (Sqinv - 2 * Sinv + Sinv @ Sq @ Sinv).diagonal().sum()


def moment_rhs_nd(mq, Sq, m, S) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The moment ODE of the reverse-KL flow for :math:`d`-dimensional Gaussians: the mean and covariance velocities
    :math:`\dot m_q=\mathbb E_q[b+A(x-m_q)]=S^{-1}(m-m_q)` and
    :math:`\dot\Sigma_q=A\Sigma_q+\Sigma_qA=2I-S^{-1}\Sigma_q-\Sigma_qS^{-1}` (an affine velocity :math:`x\mapsto b+A(x-m_q)`
    moves the covariance by :math:`A\Sigma_q+\Sigma_qA^\top`). For :math:`d=1`, :math:`\dot\Sigma_q=2s_q\dot s_q` of :func:`moment_rhs`."""
    mq, Sq, m, S = _pair_nd(mq, Sq, m, S)
    Sinv = torch.linalg.inv(S)
    eye = torch.eye(mq.shape[0], dtype=Sq.dtype, device=Sq.device)
    return Sinv @ (m - mq), 2 * eye - Sinv @ Sq - Sq @ Sinv


def gaussian_flow_nd(m0, S0, m, S, t) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact solution of :func:`moment_rhs_nd`: with :math:`E_t=e^{-tS^{-1}}` (from the eigendecomposition of :math:`S`),
    :math:`m_t=m+E_t(m_0-m)` and :math:`\Sigma_t=S+E_t(\Sigma_0-S)E_t` (``t >= 0`` of any shape; the results have shapes
    ``t.shape + (d,)`` and ``t.shape + (d, d)``). :math:`\Sigma_t-S` solves :math:`\dot X=-(S^{-1}X+XS^{-1})`."""
    m0, S0 = _gaussian_nd(m0, S0, "m0", "S0")
    m, S = _gaussian_nd(m, S, "m", "S")
    if m.shape != m0.shape:
        raise ValueError(f"m must have the dimension of m0 ({m0.shape[0]}), got {m.shape[0]}")
    m, S = m.to(m0), S.to(S0)
    t = as_tensor(t, "t", dtype=m0.dtype, device=m0.device)
    if (t < 0).any():
        raise ValueError("t must be >= 0 (the flow runs forward from q_0)")
    lam, U = torch.linalg.eigh(S)
    E = (U * torch.exp(-t[..., None] / lam)[..., None, :]) @ U.T  # U diag(e^{-t/lam}) U^T, batched over t
    mt = m + (E @ (m0 - m)[:, None])[..., 0]
    St = S + E @ (S0 - S) @ E
    return mt, 0.5 * (St + St.transpose(-1, -2))


def euler_moments(m0, s0, m, s, eps: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    r"""The moments of the *discrete* particle map :math:`x\mapsto x+\epsilon\nabla\log r_k(x)` (article 19, (6))
    with the exact log-ratio, started at :math:`\mathcal N(m_0,s_0^2)`: it is affine, so the law stays Gaussian and
    :math:`m_{k+1}=m_k+\epsilon\frac{m-m_k}{s^2}`, :math:`s_{k+1}=s_k+\epsilon\big(\frac1{s_k}-\frac{s_k}{s^2}\big)`.
    Returns arrays of length ``steps + 1``."""
    if eps <= 0:
        raise ValueError("eps must be > 0")
    if steps < 0:
        raise ValueError("steps must be >= 0")
    if s0 <= 0 or s <= 0:
        raise ValueError("s0 and s must be > 0")
    ms, ss = [float(m0)], [float(s0)]
    for _ in range(steps):
        mk, sk = ms[-1], ss[-1]
        ms.append(mk + eps * (m - mk) / s**2)
        ss.append(sk + eps * (1 / sk - sk / s**2))
    return np.array(ms), np.array(ss)


def lsi_bound(kl0, s, t) -> torch.Tensor:
    r"""The log-Sobolev bound :math:`e^{-2t/C}\,\mathrm{KL}(q_0\|p)` with :math:`C=s^2` (the LSI constant of :math:`\mathcal N(m,s^2)`)."""
    s = _positive(s, "s")
    return as_tensor(kl0, "kl0") * torch.exp(-2 * as_tensor(t, "t") / s**2)


def gaussian_closure_velocity(x: torch.Tensor, target_score: Score) -> torch.Tensor:
    r"""The particle velocity :math:`\nabla\log p(x)-\nabla\log\hat q(x)` where :math:`\hat q=\mathcal N(\bar x,\hat\Sigma)` is the
    Gaussian with the particles' own empirical mean and (biased) covariance: a velocity that depends on the
    particles' law. ``x`` of shape ``(n,)`` (one dimension, :math:`\hat\Sigma=\hat v`) or ``(n, d)`` with ``n > d``;
    then :math:`\nabla\log\hat q(x)=-\hat\Sigma^{-1}(x-\bar x)` and ``target_score`` maps ``(n, d)`` to ``(n, d)``."""
    x = as_tensor(x, "x")
    if x.ndim == 1:
        if x.shape[0] < 2:
            raise ValueError("x must have shape (n,) with n >= 2")
        mean, var = x.mean(), x.var(unbiased=False)
        return target_score(x) + (x - mean) / var
    if x.ndim != 2 or x.shape[0] <= x.shape[1]:
        raise ValueError("x must have shape (n,) with n >= 2 or (n, d) with n > d")
    centred = x - x.mean(0)
    cov = centred.T @ centred / x.shape[0]
    chol, info = torch.linalg.cholesky_ex(cov)
    if info.item() != 0:
        raise ValueError("x must have a nonsingular empirical covariance (particles spanning R^d)")
    return target_score(x) + torch.cholesky_solve(centred.T, chol).T


def simulate_particles(x0, velocity: Callable[[torch.Tensor], torch.Tensor], t1: float, steps: int) -> list[torch.Tensor]:
    r"""Integrate :math:`\dot x=\text{velocity}(x)` for the whole particle cloud with classical RK4 (``steps`` equal steps
    on :math:`[0,t_1]`); ``velocity`` sees all particles, so law-dependent fields are allowed. Returns the states."""
    x = as_tensor(x0, "x0")
    if t1 <= 0 or steps < 1:
        raise ValueError("t1 must be > 0 and steps >= 1")
    h = t1 / steps
    out = [x]
    for _ in range(steps):
        k1 = velocity(x)
        k2 = velocity(x + 0.5 * h * k1)
        k3 = velocity(x + 0.5 * h * k2)
        k4 = velocity(x + h * k3)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        out.append(x)
    return out


def pushforward_kl_rate(x, log_q: Score, log_p: Score, velocity: Score, delta: float = 1e-4) -> torch.Tensor:
    r"""Per-sample terms whose mean is :math:`\frac{d}{d\delta}\mathrm{KL}\big((\mathrm{id}+\delta v)_\#q\,\|\,p\big)\big|_{\delta=0}`,
    by a central difference in :math:`\delta` of the exact change of variables

    .. math:: \mathrm{KL}_\delta=\mathbb E_{x\sim q}\big[\log q(x)-\log|\det(I+\delta\,\nabla v(x))|-\log p(x+\delta v(x))\big]

    (``x`` of shape ``(n,)``, one dimension, where the determinant is :math:`1+\delta v'(x)`, or ``(n, d)``; ``log_q``,
    ``log_p`` map the samples to ``(n,)`` and ``velocity`` to the samples' shape, one sample at a time). The samples
    must come from ``q``; the Jacobian :math:`\nabla v` is taken by autograd. Error :math:`O(\delta^2)`.
    Its mean should equal :math:`\mathbb E_q[v\cdot\nabla\log(q/p)]` (first variation of the KL).
    """
    x = as_tensor(x, "x")
    if x.ndim not in (1, 2):
        raise ValueError("x must have shape (n,) or (n, d)")
    if delta <= 0:
        raise ValueError("delta must be > 0")
    x = x.detach().requires_grad_(True)
    v = velocity(x)
    if v.shape != x.shape:
        raise ValueError(f"velocity must return the samples' shape {tuple(x.shape)}, got {tuple(v.shape)}")
    if x.ndim == 1:
        (dv,) = torch.autograd.grad(v.sum(), x)
        x, v, dv = x.detach(), v.detach(), dv.detach()

        def kl_terms(d):
            return log_q(x) - torch.log(torch.abs(1 + d * dv)) - log_p(x + d * v)

        return (kl_terms(delta) - kl_terms(-delta)) / (2 * delta)
    dim = x.shape[1]
    rows = [torch.autograd.grad(v[:, i].sum(), x, retain_graph=i < dim - 1)[0] for i in range(dim)]
    jac = torch.stack(rows, 1).detach()  # (n, d, d): jac[k, i, j] = d v_i / d x_j at sample k
    x, v = x.detach(), v.detach()
    eye = torch.eye(dim, dtype=x.dtype, device=x.device)

    def kl_terms_nd(d):
        return log_q(x) - torch.linalg.slogdet(eye + d * jac)[1] - log_p(x + d * v)

    return (kl_terms_nd(delta) - kl_terms_nd(-delta)) / (2 * delta)


def langevin_generator_1d(log_p_values: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    r"""The symmetrised generator of Langevin dynamics :math:`dx=\nabla\log p\,dt+\sqrt2\,dW` on a uniform grid of
    spacing ``h``, as a tridiagonal matrix (diagonal, off-diagonal).

    The grid chain jumps :math:`i\to i\pm1` at rate :math:`h^{-2}\sqrt{p_{i\pm1}/p_i}` (reversible for :math:`p`,
    consistent with :math:`Lf=f''+(\log p)'f'`); conjugated by :math:`\sqrt p` it is symmetric with off-diagonal
    :math:`h^{-2}`. Langevin dynamics and the flow (1) share their marginals, so this operator governs the
    decay of :math:`\mathrm{KL}(q_t\|p)`.
    """
    lp = np.asarray(log_p_values, dtype=np.float64)
    if lp.ndim != 1 or lp.shape[0] < 3 or not np.all(np.isfinite(lp)):
        raise ValueError("log_p_values must be a finite 1-D array of length >= 3")
    if h <= 0:
        raise ValueError("h must be > 0")
    up = np.exp(0.5 * (lp[1:] - lp[:-1]))  # sqrt(p_{i+1}/p_i)
    diag = np.zeros_like(lp)
    diag[:-1] -= up
    diag[1:] -= 1 / up
    return diag / h**2, np.full(lp.shape[0] - 1, 1 / h**2)


def spectral_gap_1d(log_p_values: np.ndarray, h: float) -> float:
    r"""The spectral gap (Poincaré constant's inverse) of the grid Langevin generator for :math:`p`: the smallest nonzero
    eigenvalue of :math:`-L`. For :math:`\mathcal N(m,s^2)` it tends to :math:`1/s^2` as :math:`h\to0`; the asymptotic
    decay rate of :math:`\mathrm{KL}(q_t\|p)` is twice the gap."""
    from scipy.linalg import eigh_tridiagonal

    diag, off = langevin_generator_1d(log_p_values, h)
    vals = eigh_tridiagonal(-diag, -off, eigvals_only=True, select="i", select_range=(0, 1))
    return float(vals[1])


def grid_kl_curve(log_p_values: np.ndarray, log_q0_values: np.ndarray, h: float, times) -> np.ndarray:
    r""":math:`\mathrm{KL}(q_t\|p)` on a grid along the flow (1) (equivalently Langevin dynamics), by exact
    exponentiation of the grid generator: with :math:`u=q/\sqrt p`, :math:`u_t=e^{tS}u_0` (:math:`S` symmetric)."""
    from scipy.linalg import eigh_tridiagonal

    lp = np.asarray(log_p_values, dtype=np.float64)
    lq = np.asarray(log_q0_values, dtype=np.float64)
    if lq.shape != lp.shape:
        raise ValueError("log_q0_values must have the shape of log_p_values")
    diag, off = langevin_generator_1d(lp, h)
    lam, vec = eigh_tridiagonal(diag, off)
    p = np.exp(lp - lp.max())
    p /= p.sum()
    q = np.exp(lq - lq.max())
    q /= q.sum()
    coef = vec.T @ (q / np.sqrt(p))
    out = []
    for t in np.atleast_1d(np.asarray(times, dtype=np.float64)):
        qt = np.sqrt(p) * (vec @ (np.exp(lam * t) * coef))
        qt = np.clip(qt, 1e-300, None)
        qt /= qt.sum()
        out.append(float(np.sum(qt * (np.log(qt) - np.log(p)))))
    return np.array(out)


def log_normal_1d(x, m: float, s: float) -> torch.Tensor:
    r""":math:`\log\mathcal N(x;m,s^2)`."""
    return -((x - m) ** 2) / (2 * s**2) - math.log(s) - 0.5 * math.log(2 * math.pi)
