r"""Linear (affine) vector fields, their exact flows, and the ODE lemma of part 16.

Part 16 of Su's series (kexue.fm 9467) bounds :math:`\mathcal W_2` between the end points of two
ODE flows. Its **time convention**, used throughout this module: the flows start at :math:`t = T`
and are integrated *backward* to :math:`t = 0` (sampling), while the fields are written as
forward-time velocities,

.. math::

    \frac{dx_t}{dt} = f_t(x_t),\qquad \frac{dy_t}{dt} = g_t(y_t),\qquad x_T\sim p_T,\ y_T\sim q_T .

For affine fields :math:`v(x) = Bx + b` everything is exact:

* the flow from :math:`s` to :math:`t` is the affine map :math:`x\mapsto Mx + c` read off the
  matrix exponential (:func:`expm`) of the augmented matrix, :math:`\exp\big((t-s)\left[\begin{smallmatrix}B&b\\0&0\end{smallmatrix}\right]\big)`
  (:func:`linear_flow`); for time-dependent :math:`B_t, b_t` the augmented matrix ODE is integrated
  (:func:`linear_flow_tv`);
* Gaussians stay Gaussian: :math:`\mathcal N(m,S)\mapsto\mathcal N(Mm+c, MSM^\top)` (:func:`push_gaussian`);
* two flows started from the *same* sample :math:`z\sim\mathcal N(m,S)` (the synchronous coupling
  of the article's (11)–(12)) have the cost
  :math:`\mathbb E\|x-y\|^2 = \|(M_1-M_2)m + c_1-c_2\|^2 + \operatorname{tr}\big((M_1-M_2)S(M_1-M_2)^\top\big)`
  (:func:`coupling_cost`).

Lipschitz notions for :math:`v(x) = Bx + b` (claim C16.2):

* :func:`lipschitz`: :math:`\|B\|_2`, the smallest :math:`L` with :math:`\|v(x)-v(y)\|\le L\|x-y\|`;
* :func:`one_sided_lipschitz`: :math:`\lambda_{\max}\big(\tfrac{B+B^\top}{2}\big)`, the smallest
  :math:`L` with :math:`\langle v(x)-v(y),x-y\rangle\le L\|x-y\|^2` — the article's condition (10);
* :func:`backward_one_sided_lipschitz`: :math:`\lambda_{\max}\big(-\tfrac{B+B^\top}{2}\big)`, the
  smallest :math:`L` with :math:`\langle v(y)-v(x),x-y\rangle\le L\|x-y\|^2`, i.e. the one-sided
  constant of the backward-time field :math:`-v`. This is the condition the backward-time proof
  of the ODE lemma needs (claims C16.3 and C16.9).

The lemma's right-hand side (article (18)/(20), corrected in claim C16.9),

.. math::

    \int_0^T I_t\,F_t\,dt + I_T\,\mathcal W_2[p_T,q_T],\qquad I_t = \exp\Big(\int_0^tL_s\,ds\Big),
    \quad F_t = \big(\mathbb E_{x\sim p_t}\|f_t(x)-g_t(x)\|^2\big)^{1/2},

is computed by :func:`lemma_bound` with composite Gauss–Legendre quadrature.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from diffmath import flows
from diffmath._validation import as_tensor
from diffmath.schedules import Schedule


class AffineMap(NamedTuple):
    """The affine map :math:`x\\mapsto Mx + c` (``M`` (d, d), ``c`` (d,))."""

    M: torch.Tensor
    c: torch.Tensor

    def __call__(self, x) -> torch.Tensor:
        x = as_tensor(x, "x", dtype=self.M.dtype, device=self.M.device)
        if x.shape[-1] != self.M.shape[0]:
            raise ValueError(f"x must have shape (..., {self.M.shape[0]}), got {tuple(x.shape)}")
        return x @ self.M.T + self.c

    def then(self, other: AffineMap) -> AffineMap:
        """The composition ``other ∘ self`` (apply ``self`` first)."""
        return AffineMap(other.M @ self.M, other.M @ self.c + other.c)


def _field(B, b, *, name: str = "B") -> tuple[torch.Tensor, torch.Tensor]:
    from diffmath.wasserstein import common_dtype_device

    dtype, device = common_dtype_device(B, b)
    B = as_tensor(B, name, dtype=dtype, device=device)
    if B.ndim != 2 or B.shape[0] != B.shape[1] or B.shape[0] == 0:
        raise ValueError(f"{name} must be a square (d, d) matrix, got shape {tuple(B.shape)}")
    d = B.shape[0]
    if b is None:
        b = torch.zeros(d, dtype=B.dtype, device=B.device)
    b = as_tensor(b, "b", dtype=B.dtype, device=B.device)
    if tuple(b.shape) != (d,):
        raise ValueError(f"b must have shape ({d},) to match {name}, got {tuple(b.shape)}")
    return B, b


_EXPM_THETA = 0.25  # scale until the 1-norm is at most this, then Taylor to degree 16
_EXPM_DEGREE = 16


def expm(A: torch.Tensor) -> torch.Tensor:
    r"""The matrix exponential of ``A`` (..., d, d), to about machine precision, on ``A``'s device and dtype.

    Scaling and squaring with a truncated Taylor series (Moler & Van Loan, "Nineteen dubious ways to
    compute the exponential of a matrix", SIAM Review 2003, method 3): with
    :math:`s = \max(0,\lceil\log_2(\|A\|_1/\theta)\rceil)`, :math:`\theta = 1/4`,
    :math:`e^A = \big(T_{16}(A/2^s)\big)^{2^s}`, :math:`T_{16}(X) = \sum_{k\le16}X^k/k!` evaluated by Horner's
    rule. The truncation error is at most :math:`\theta^{17}/17!\,e^\theta < 10^{-24}` relative, far
    below float64 rounding. One :math:`s` serves the whole batch (the largest norm).

    Why not ``torch.linalg.matrix_exp``: in float64 (torch 2.13, CPU) its result is off by up to
    :math:`1.4\times10^{-12}` relative to the largest entry at :math:`\|A\|_1\approx0.02` and
    :math:`6\times10^{-13}` at 5 (measured against ``scipy.linalg.expm`` on random 3 x 3 matrices), and a
    small entry of the result such as the offset of a short affine flow can be wrong in its tenth
    digit: the exact flows of this module then miss their closed forms (the C16.3 counterexample's
    :math:`\mathcal W_2` by :math:`8\times10^{-10}` relative). ``tests/test_linear_flows.py`` checks this
    function against scipy and against closed forms.
    """
    A = torch.as_tensor(A)
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"A must be a square matrix or a batch of them, (..., d, d), got shape {tuple(A.shape)}")
    if not A.is_floating_point():
        raise ValueError(f"A must be a floating-point tensor, got dtype {A.dtype}")
    if not torch.isfinite(A).all():
        raise ValueError("A contains NaN or Inf")
    if A.numel() == 0:
        return A.clone()
    norm = A.abs().sum(-2).amax().item()  # the largest 1-norm (column sums) in the batch
    s = max(0, int(np.ceil(np.log2(norm / _EXPM_THETA)))) if norm > 0 else 0
    X = A / 2.0**s
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device).expand_as(A)
    E = eye.clone()
    for k in range(_EXPM_DEGREE, 0, -1):
        E = eye + (X @ E) / k
    for _ in range(s):
        E = E @ E
    return E


def _augmented(B: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = B.shape[0]
    aug = torch.zeros(d + 1, d + 1, dtype=B.dtype, device=B.device)
    aug[:d, :d] = B
    aug[:d, d] = b
    return aug


def linear_flow(B, b=None, t_from: float = 1.0, t_to: float = 0.0) -> AffineMap:
    r"""Exact flow map of :math:`dx/dt = Bx + b` from time ``t_from`` to ``t_to`` (either direction).

    :math:`\left[\begin{smallmatrix}M&c\\0&1\end{smallmatrix}\right] = \exp\big((t_{to}-t_{from})\left[\begin{smallmatrix}B&b\\0&0\end{smallmatrix}\right]\big)`.
    In part 16's convention a sampler runs from ``t_from = T`` down to ``t_to = 0``.
    """
    B, b = _field(B, b)
    d = B.shape[0]
    E = expm(float(t_to - t_from) * _augmented(B, b))
    return AffineMap(E[:d, :d], E[:d, d])


def linear_flow_tv(
    B_fn: Callable[[float], torch.Tensor],
    b_fn: Callable[[float], torch.Tensor],
    t_from: float,
    t_to: float,
    *,
    rtol: float = 1e-12,
    atol: float = 1e-12,
) -> AffineMap:
    r"""Flow map of the time-dependent affine field :math:`dx/dt = B_tx + b_t` from ``t_from`` to ``t_to``.

    Integrates the augmented matrix ODE :math:`\dot\Phi = \left[\begin{smallmatrix}B_t&b_t\\0&0\end{smallmatrix}\right]\Phi`,
    :math:`\Phi(t_{from}) = I`, with the library's reference Dormand–Prince solver
    (:func:`diffmath.flows.integrate`). ``B_fn(t)`` returns (d, d), ``b_fn(t)`` returns (d,).
    """
    B0, _ = _field(B_fn(float(t_from)), b_fn(float(t_from)), name="B_fn(t_from)")
    d = B0.shape[0]

    def rhs(t, phi):
        B, b = _field(B_fn(float(t)), b_fn(float(t)), name="B_fn(t)")
        return _augmented(B, b) @ phi

    eye = torch.eye(d + 1, dtype=B0.dtype, device=B0.device)
    phi = flows.integrate(rhs, eye, float(t_from), float(t_to), rtol=rtol, atol=atol)
    return AffineMap(phi[:d, :d], phi[:d, d])


def push_gaussian(flow: AffineMap, mean, cov) -> tuple[torch.Tensor, torch.Tensor]:
    """The image of :math:`\\mathcal N(m,S)` under :math:`x\\mapsto Mx+c`: mean :math:`Mm+c`, covariance :math:`MSM^\\top`."""
    m = as_tensor(mean, "mean", dtype=flow.M.dtype, device=flow.M.device)
    S = as_tensor(cov, "cov", dtype=flow.M.dtype, device=flow.M.device)
    d = flow.M.shape[0]
    if tuple(m.shape) != (d,) or tuple(S.shape) != (d, d):
        raise ValueError(f"mean must have shape ({d},) and cov ({d}, {d}); got {tuple(m.shape)}, {tuple(S.shape)}")
    C = flow.M @ S @ flow.M.T
    return flow.M @ m + flow.c, 0.5 * (C + C.T)


def coupling_cost(first: AffineMap, second: AffineMap, mean, cov) -> torch.Tensor:
    r""":math:`\mathbb E\|(M_1z+c_1)-(M_2z+c_2)\|^2` for :math:`z\sim\mathcal N(m,S)`, in closed form.

    With :math:`D = M_1 - M_2`: :math:`\|Dm + c_1 - c_2\|^2 + \operatorname{tr}(DSD^\top)`. For two
    flows started from the same sample this is the article's :math:`\tilde{\mathcal W}_2^2` (12);
    to start the second flow from the optimal coupling of two Gaussians instead (article (19)),
    compose it first with the optimal map (``AffineMap(A, m2 - A m1).then(second)``).
    """
    m = as_tensor(mean, "mean", dtype=first.M.dtype, device=first.M.device)
    S = as_tensor(cov, "cov", dtype=first.M.dtype, device=first.M.device)
    if first.M.shape != second.M.shape:
        raise ValueError("the two maps act on different dimensions")
    D = first.M - second.M
    shift = D @ m + first.c - second.c
    return (shift**2).sum() + torch.trace(D @ S @ D.T)


# --- Lipschitz constants -------------------------------------------------------------------------
def _sym(B) -> torch.Tensor:
    B, _ = _field(B, None)
    return 0.5 * (B + B.T)


def lipschitz(B) -> torch.Tensor:
    """:math:`\\|B\\|_2`: the Lipschitz constant of :math:`x\\mapsto Bx+b`."""
    B, _ = _field(B, None)
    return torch.linalg.matrix_norm(B, ord=2)


def one_sided_lipschitz(B) -> torch.Tensor:
    r""":math:`\lambda_{\max}((B+B^\top)/2)`: the best :math:`L` in :math:`\langle v(x)-v(y),x-y\rangle\le L\|x-y\|^2`.

    This is the article's condition (10) for :math:`v(x) = Bx+b` (it may be negative; it never
    exceeds :func:`lipschitz`, claim C16.2).
    """
    return torch.linalg.eigvalsh(_sym(B))[-1]


def backward_one_sided_lipschitz(B) -> torch.Tensor:
    r""":math:`\lambda_{\max}(-(B+B^\top)/2)`: the best :math:`L` in :math:`\langle v(y)-v(x),x-y\rangle\le L\|x-y\|^2`.

    The one-sided constant of the backward-time field :math:`-v`, which the corrected ODE lemma
    (claim C16.9) needs for the model field :math:`g_t` when sampling runs from :math:`T` to 0.
    """
    return -torch.linalg.eigvalsh(_sym(B))[0]


# --- the bound of the ODE lemma ------------------------------------------------------------------
def _gauss_legendre(a: float, b: float, panels: int, nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Composite Gauss–Legendre nodes and weights on [a, b]; also each node's panel start."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    edges = np.linspace(a, b, panels + 1)
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    t = (mid[:, None] + half[:, None] * x[None]).ravel()
    wt = (half[:, None] * w[None]).ravel()
    starts = np.repeat(edges[:-1], nodes)
    return t, wt, starts


def _values(fn, t: np.ndarray, name: str) -> np.ndarray:
    out = fn(t)
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu().numpy()
    out = np.asarray(out, dtype=np.float64)
    if out.shape == ():
        out = np.full_like(t, float(out))
    if out.shape != t.shape:
        raise ValueError(f"{name}(t) must return one value per time, shape {t.shape}, got {out.shape}")
    if not np.isfinite(out).all():
        raise ValueError(f"{name}(t) returned NaN or Inf")
    return out


def cumulative_integral(L: Callable, t, *, nodes: int = 24, panels: int = 1) -> np.ndarray:
    r""":math:`\Lambda(t) = \int_0^t L_s\,ds` at each time in ``t`` (composite Gauss–Legendre on [0, t]).

    ``L`` takes a numpy array of times and returns an array of the same shape (or a tensor).
    """
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    if (t < 0).any():
        raise ValueError("times must be >= 0")
    x, w = np.polynomial.legendre.leggauss(nodes)
    out = np.zeros_like(t)
    for p in range(panels):
        a, b = t * p / panels, t * (p + 1) / panels
        pts = 0.5 * (a + b)[:, None] + 0.5 * (b - a)[:, None] * x[None]
        vals = _values(L, pts.ravel(), "L").reshape(pts.shape)
        out += (0.5 * (b - a)[:, None] * w[None] * vals).sum(1)
    return out


def integrating_factor(L: Callable, t, *, nodes: int = 24, panels: int = 1) -> np.ndarray:
    """:math:`I_t = \\exp(\\int_0^t L_s ds)` at the times ``t`` (see :func:`cumulative_integral`)."""
    return np.exp(cumulative_integral(L, t, nodes=nodes, panels=panels))


def lemma_bound(
    L: Callable,
    F: Callable,
    T: float,
    w_T: float = 0.0,
    *,
    panels: int = 16,
    nodes: int = 16,
) -> float:
    r"""The right-hand side of the ODE lemma, :math:`\int_0^T I_tF_t\,dt + I_T\,w_T`, :math:`I_t = e^{\int_0^tL_s ds}`.

    ``L`` and ``F`` are callables taking a numpy array of times in :math:`[0,T]` and returning
    arrays of the same shape: ``L`` the one-sided constant (for the corrected lemma, claim C16.9,
    the *backward* constant :math:`\langle g_t(y)-g_t(x),x-y\rangle\le L_t\|x-y\|^2`; passing the
    article's forward constant (10) gives the literal bound of (18)/(20), refuted in claim C16.3),
    ``F`` the root-mean-square field gap :math:`(\mathbb E_{p_t}\|f_t-g_t\|^2)^{1/2}`. ``w_T`` is
    :math:`\mathcal W_2[p_T,q_T]`. Outer and inner integrals use composite Gauss–Legendre rules
    (``panels`` × ``nodes`` points): about machine precision for smooth integrands.
    """
    T = float(T)
    if not (T > 0 and np.isfinite(T)):
        raise ValueError(f"T must be a finite number > 0, got {T}")
    if not (w_T >= 0 and np.isfinite(w_T)):
        raise ValueError(f"w_T (a Wasserstein distance) must be finite and >= 0, got {w_T}")
    t, wt, starts = _gauss_legendre(0.0, T, panels, nodes)
    x, w = np.polynomial.legendre.leggauss(nodes)
    # Lambda(t) = (integral of L over the whole panels before t) + (from t's panel start to t)
    edges = np.linspace(0.0, T, panels + 1)
    mids, halves = 0.5 * (edges[1:] + edges[:-1]), 0.5 * np.diff(edges)
    pts = mids[:, None] + halves[:, None] * x[None]
    panel_int = (halves[:, None] * w[None] * _values(L, pts.ravel(), "L").reshape(pts.shape)).sum(1)
    before = np.concatenate([[0.0], np.cumsum(panel_int)])
    idx = np.repeat(np.arange(panels), nodes)
    a, b = starts, t
    inner = 0.5 * (a + b)[:, None] + 0.5 * (b - a)[:, None] * x[None]
    partial = (0.5 * (b - a)[:, None] * w[None] * _values(L, inner.ravel(), "L").reshape(inner.shape)).sum(1)
    lam = before[idx] + partial
    Fv = _values(F, t, "F")
    if (Fv < 0).any():
        raise ValueError("F(t) (a root-mean-square gap) must be >= 0")
    integral = float((wt * np.exp(lam) * Fv).sum())
    return integral + float(np.exp(before[-1])) * float(w_T)


@dataclass(frozen=True)
class LinearLemma:
    """The quantities of the ODE lemma for two affine fields (see :func:`lemma_on_linear_fields`)."""

    w2: float  #: the true W2[p_0, q_0] (Bures)
    wtilde: float  #: the coupling cost of the article's (12)/(19), square-rooted
    w2_start: float  #: W2[p_T, q_T]
    bound_corrected: float  #: (20) with the backward one-sided constant of g (claim C16.9)
    bound_literal: float  #: (20) with the article's forward constant (10) (claim C16.3)


def lemma_on_linear_fields(A, a, B, b, T: float, mean_p, cov_p, mean_q=None, cov_q=None, **quad) -> LinearLemma:
    r"""Both sides of the ODE lemma (article (20)) for :math:`f(x) = Ax+a`, :math:`g(y) = By+b`, exactly.

    The flows run backward from :math:`T` to 0 (part 16's convention) from :math:`p_T = \mathcal N(m_p,S_p)`
    and :math:`q_T = \mathcal N(m_q,S_q)` (default :math:`q_T = p_T`, the synchronous coupling (11));
    different laws are coupled by their optimal map, as in (19). :math:`p_t` is Gaussian with moments
    from :func:`push_gaussian`, so :math:`F_t^2 = \|(A-B)m_t+a-b\|^2+\operatorname{tr}((A-B)S_t(A-B)^\top)`;
    :math:`L` is :func:`backward_one_sided_lipschitz` of :math:`B` (corrected) or :func:`one_sided_lipschitz`
    (literal). Quadrature options ``quad`` go to :func:`lemma_bound`.
    """
    from diffmath import wasserstein as wd

    dtype, device = wd.common_dtype_device(A, a, B, b, mean_p, cov_p, mean_q, cov_q)
    conv = lambda v, name: None if v is None else as_tensor(v, name, dtype=dtype, device=device)
    A, a = _field(conv(A, "A"), conv(a, "a"), name="A")
    B, b = _field(conv(B, "B"), conv(b, "b"))
    if A.shape != B.shape:
        raise ValueError("the two fields act on different dimensions")
    T = float(T)
    if not T > 0:
        raise ValueError(f"T must be > 0, got {T}")
    mp, Sp = wd._mean_cov(mean_p, cov_p, "p_T", dtype=A.dtype, device=A.device)
    if mean_q is None and cov_q is None:
        mq, Sq, same = mp, Sp, True
    else:
        mq, Sq = wd._mean_cov(mean_q, cov_q, "q_T", dtype=A.dtype, device=A.device)
        same = False
    fx, gy = linear_flow(A, a, T, 0.0), linear_flow(B, b, T, 0.0)
    m0p, S0p = push_gaussian(fx, mp, Sp)
    m0q, S0q = push_gaussian(gy, mq, Sq)
    w2 = wd.bures_w2(m0p, S0p, m0q, S0q).item()
    second = gy
    if not same:
        Aot = wd.gaussian_ot_map(Sp, Sq)
        second = AffineMap(Aot, mq - Aot @ mp).then(gy)
    wt = coupling_cost(fx, second, mp, Sp).clamp_min(0).sqrt().item()
    w2T = 0.0 if same else wd.bures_w2(mp, Sp, mq, Sq).item()
    D, e = A - B, a - b
    aug = _augmented(A, a)
    d = A.shape[0]

    def F(ts):
        E = expm(torch.as_tensor(np.asarray(ts) - T, dtype=A.dtype, device=A.device)[:, None, None] * aug)
        M, c = E[:, :d, :d], E[:, :d, d]
        mt = (M @ mp) + c
        St = M @ Sp @ M.transpose(-1, -2)
        shift = mt @ D.T + e
        return ((shift**2).sum(-1) + torch.einsum("ij,njk,ik->n", D, St, D)).clamp_min(0).sqrt()

    Lc, Ll = backward_one_sided_lipschitz(B).item(), one_sided_lipschitz(B).item()
    return LinearLemma(
        w2=w2,
        wtilde=wt,
        w2_start=w2T,
        bound_corrected=lemma_bound(lambda ts: np.full_like(ts, Lc), F, T, w2T, **quad),
        bound_literal=lemma_bound(lambda ts: np.full_like(ts, Ll), F, T, w2T, **quad),
    )


# --- schedules: SDE coefficients and the PF-ODE field of a Gaussian -------------------------------
def sde_coefficients(schedule: Schedule, t) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Drift rate :math:`f_t = \dot\alpha_t/\alpha_t` and :math:`g_t^2 = \tfrac{d}{dt}\sigma_t^2 - 2f_t\sigma_t^2`.

    The forward SDE :math:`dx = f_tx\,dt + g_t\,dw` has the marginals of
    :math:`\alpha_tx_0+\sigma_t\varepsilon` (claim C0.6). For VP schedules :math:`f_t = -\beta_t/2`
    and :math:`g_t^2 = \beta_t`, also at :math:`t = 0`.
    """
    t = schedule.times(t)
    a, s, da = schedule.alpha(t), schedule.sigma(t), schedule.dalpha(t)
    f = da / a
    # d(sigma^2)/dt: for variance-preserving schedules (alpha^2 + sigma^2 = 1) it is -2 alpha alpha',
    # which stays finite at sigma = 0 where sigma' itself blows up
    vp = torch.all((a**2 + s**2 - 1).abs() <= 1e-12).item()
    dvar = -2 * a * da if vp else 2 * s * schedule.dsigma(t)
    g2 = dvar - 2 * f * s**2
    return f, g2


def gaussian_pf_field(schedule: Schedule, mean, cov, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The PF-ODE velocity of Gaussian data :math:`\mathcal N(\mu,\Sigma)` as an affine field :math:`B_tx+b_t`.

    :math:`f_tx - \tfrac12g_t^2\nabla\log p_t(x)` with :math:`\nabla\log p_t(x) = -S_t^{-1}(x-\alpha_t\mu)`,
    :math:`S_t = \alpha_t^2\Sigma+\sigma_t^2I`, so :math:`B_t = f_tI + \tfrac12g_t^2S_t^{-1}` and
    :math:`b_t = -\tfrac12g_t^2S_t^{-1}\alpha_t\mu`. Valid wherever :math:`S_t` is invertible
    (also at :math:`\sigma_t = 0`).
    """
    from diffmath.wasserstein import common_dtype_device

    dtype, device = common_dtype_device(mean, cov)
    mu = as_tensor(mean, "mean", dtype=dtype, device=device)
    if mu.ndim != 1:
        raise ValueError(f"mean must have shape (d,), got {tuple(mu.shape)}")
    d = mu.shape[0]
    C = as_tensor(cov, "cov", dtype=mu.dtype, device=mu.device)
    if tuple(C.shape) != (d, d):
        raise ValueError(f"cov must have shape ({d}, {d}), got {tuple(C.shape)}")
    f, g2 = (v.item() for v in sde_coefficients(schedule, float(t)))
    a, s = schedule.alpha(float(t)).item(), schedule.sigma(float(t)).item()
    eye = torch.eye(d, dtype=mu.dtype, device=mu.device)
    P = torch.linalg.inv(a**2 * C + s**2 * eye)
    P = 0.5 * (P + P.T)
    return f * eye + 0.5 * g2 * P, -0.5 * g2 * a * (P @ mu)


__all__ = [
    "AffineMap",
    "LinearLemma",
    "backward_one_sided_lipschitz",
    "coupling_cost",
    "cumulative_integral",
    "gaussian_pf_field",
    "integrating_factor",
    "lemma_bound",
    "lemma_on_linear_fields",
    "linear_flow",
    "linear_flow_tv",
    "lipschitz",
    "one_sided_lipschitz",
    "push_gaussian",
    "sde_coefficients",
]
