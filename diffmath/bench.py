r"""A test bench for samplers: run one on an exact law at several NFE budgets and compare with the exact flow.

A sampler integrates the probability-flow ODE (or an SDE) of a law it only knows through a trained network. On an
*exact* law of this library (:data:`diffmath.denoisers.EXACT_LAWS`: mixtures, Gaussian images, empirical laws) the
network can be replaced by the true denoiser, so the sampler's only error is its discretisation, and that error can be
measured against the exact flow from the same starting point, solved to :math:`10^{-10}` by an adaptive
Dormand–Prince method (:func:`diffmath.flows.solve_pf_ode`). :func:`bench` does this for a list of budgets from shared
noise and returns a :class:`BenchResult`:

* **error** per budget: the RMS per coordinate of :math:`x_{\rm end} - \Phi(x_{\rm start})` in EDM coordinates
  (:math:`x/\alpha`, the k-diffusion convention, so that every sampler is measured on the same scale), with its mean
  and a 95% Student-t interval over seeds;
* **order**: the least-squares slope :math:`p` of :math:`\log{\rm error} = c - p\log{\rm NFE}` over the budgets (a
  sampler of order :math:`p` has global error :math:`O(h^p)` and :math:`h\propto 1/{\rm NFE}`);
* **NFE counted**: the denoiser calls the sampler actually made (the budget is what was asked for);
* **mode flips**: points whose nearest mode at the end differs from the exact flow's (mixtures, empirical laws);
* for every sampler, and the only comparison that means something for a **stochastic** one, the **Fréchet
  distance** of its outputs to the exact law at the end level, beside the same statistic for the exact flow from the
  same starts and for exact samples of the same size (the statistic's own noise floor).

A *sampler* here is anything with the small interface of :class:`Sampler`: :class:`KSampler` wraps a k-diffusion-style
function ``sample(model, x, sigmas, **kw)`` (the convention of :mod:`diffmath.samplers` and of Crowson's k-diffusion),
:func:`step_sampler` a one-step update, and :class:`diffmath.diffusers_bench.DiffusersSampler` a diffusers scheduler.

On top, pytest-friendly assertions: :meth:`BenchResult.assert_order`, :meth:`BenchResult.assert_error_below`, and
:func:`assert_same` (two samplers agree on the exact model). The chapter "Testing a sampler against the exact flow"
(``book/sampler-bench.md``) shows the table of the diffusers schedulers measured this way.

Convention: the law is in the library's convention (data at :math:`\sigma = 0`); the bench works in EDM coordinates
:math:`\tilde x = x_t/\alpha_t`, :math:`\tilde\sigma = \sigma_t/\alpha_t` (:func:`diffmath.denoisers.vp_to_edm`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol, Sequence

import torch

from diffmath import sampler_table
from diffmath._validation import as_tensor, count
from diffmath.denoisers import _check_law, edm_denoiser
from diffmath.empirical import EmpiricalLaw
from diffmath.flows import solve_pf_ode
from diffmath.images import GaussianImage, ImageMixture
from diffmath.mixture import GaussianMixture
from diffmath.schedules import edm_rho_grid

#: the level the reference flow is solved to before the exact denoiser takes it to sigma = 0: the flow moves by
#: O(sigma^2) below it, so the reference's error from stopping there is about 1e-12 relative on unit-scale laws
REFERENCE_FLOOR = 1e-6


# ------------------------------------------------------------------------------------------------
# what a sampler gives the bench
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trajectory:
    """One sampler run, in EDM coordinates: where it started (``x_start`` at ``sigma_start``), where it ended
    (``x_end`` at ``sigma_end``), the denoiser calls it made (``nfe``), its steps (``steps``) and the level its last
    step starts from (``sigma_last``, ``None`` when unknown)."""

    x_start: torch.Tensor
    sigma_start: float
    x_end: torch.Tensor
    sigma_end: float
    nfe: int
    steps: int
    sigma_last: Optional[float] = None


class Sampler(Protocol):
    """What :func:`bench` needs of a sampler.

    ``name``; ``stochastic`` (its output is random given the start); ``steps_for(budget)``, the number of steps that
    spends at most ``budget`` denoiser calls (``None`` when no number does); and ``run(law, z, steps, generator)``,
    which starts from the standard normal noise ``z`` (batch, \\*event) — scaled to its own first level as it would be
    in practice —, integrates with the law's exact denoiser and returns a :class:`Trajectory`.
    """

    name: str
    stochastic: bool

    def steps_for(self, budget: int) -> Optional[int]: ...

    def run(self, law, z: torch.Tensor, steps: int, generator: torch.Generator) -> Trajectory: ...


def check_law(law) -> None:
    """ValueError unless ``law`` is an exact law of the library (:func:`diffmath.denoisers.edm_denoiser`'s check)."""
    _check_law(law)


def event_shape(law) -> tuple:
    """The shape of one draw of ``law``: ``(d,)`` for points, ``(C, H, W)`` for images."""
    check_law(law)
    return tuple(law.shape) if hasattr(law, "shape") else (law.dim,)


def karras_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """EDM's grid (Karras et al. 2022, eq. 5) with ``steps`` steps from ``sigma_max`` to ``sigma_min``, then 0 —
    k-diffusion's ``get_sigmas_karras(steps, sigma_min, sigma_max, rho)``."""
    g = edm_rho_grid(count(steps, "steps"), sigma_min, sigma_max, rho)
    return torch.cat([g, g.new_zeros(1)])


class KSampler:
    """A k-diffusion-style sampler ``fn(model, x, sigmas, **kwargs)`` on a noise-level grid.

    ``grid(steps)`` gives the decreasing levels (default :func:`karras_sigmas`, ending at 0); the start is
    ``z * sigmas[0]`` (``init="sigma"``, k-diffusion's) or ``z * sqrt(1 + sigmas[0]**2)`` (``init="vp"``: unit-variance
    noise in VP coordinates, where diffusers' VP schedulers start). ``evaluations`` is the denoiser calls per step (1 for Euler-like samplers, 2 for Heun-like,
    whose last step to 0 is an Euler step: ``2 * steps - 1`` calls); it only maps budgets to steps — the bench counts
    the calls actually made. A stochastic sampler draws its noise from torch's global generator (as k-diffusion's do),
    which the bench seeds.
    """

    def __init__(self, fn: Callable, *, name: Optional[str] = None, evaluations: int = 1, stochastic: bool = False,
                 grid: Callable[[int], torch.Tensor] = karras_sigmas, last_step_euler: bool = True, init: str = "sigma",
                 **kwargs):
        if not callable(fn):
            raise ValueError("fn must be a callable sample(model, x, sigmas, **kwargs)")
        if evaluations not in (1, 2, 3, 4):
            raise ValueError(f"evaluations must be 1 to 4 denoiser calls per step, got {evaluations!r}")
        if init not in ("sigma", "vp"):
            raise ValueError(f"init must be 'sigma' or 'vp', got {init!r}")
        self.fn, self.grid, self.kwargs, self.init = fn, grid, kwargs, init
        self.name = name or getattr(fn, "__name__", "sampler")
        self.evaluations, self.stochastic, self.last_step_euler = int(evaluations), bool(stochastic), bool(last_step_euler)

    def __repr__(self) -> str:
        return f"KSampler({self.name}, evaluations={self.evaluations})"

    def steps_for(self, budget: int) -> Optional[int]:
        budget = count(budget, "budget")
        e = self.evaluations
        n = (budget + (e - 1)) // e if (self.last_step_euler and e > 1) else budget // e
        return n if n >= 1 else None

    def run(self, law, z, steps, generator) -> Trajectory:
        sigmas = torch.as_tensor(self.grid(steps), dtype=torch.float64)
        D = edm_denoiser(law)
        s0 = float(sigmas[0])
        x = z * (s0 if self.init == "sigma" else math.sqrt(1 + s0 * s0))
        state = torch.random.get_rng_state()
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        try:
            out = self.fn(D, x.clone(), sigmas.to(z.device), **self.kwargs)
        finally:
            torch.random.set_rng_state(state)
        return Trajectory(x, float(sigmas[0]), out, float(sigmas[-1]), D.nfe, steps, float(sigmas[-2]))


def step_sampler(step: Callable, *, name: str, evaluations: int = 1, stochastic: bool = False,
                 grid: Callable[[int], torch.Tensor] = karras_sigmas) -> KSampler:
    """A sampler from one step ``step(model, x, sigma, sigma_next) -> x_next`` (``model(x, sigma)`` the denoiser,
    ``sigma`` numbers), run over the grid's consecutive levels."""
    if not callable(step):
        raise ValueError("step must be callable step(model, x, sigma, sigma_next)")

    def sample(model, x, sigmas, **_):
        s = sigmas.tolist()
        for a, b in zip(s, s[1:]):
            x = step(model, x, a, b)
        return x

    return KSampler(sample, name=name, evaluations=evaluations, stochastic=stochastic, grid=grid, last_step_euler=False)


# ------------------------------------------------------------------------------------------------
# the reference and the measures
# ------------------------------------------------------------------------------------------------


def exact_flow(law, x, sigma_from: float, sigma_to: float, *, tol: float = 1e-10) -> torch.Tensor:
    r"""The exact PF-ODE map :math:`\Phi_{\sigma_{\rm from}\to\sigma_{\rm to}}(x)` in EDM coordinates.

    Solved by :func:`~diffmath.flows.solve_pf_ode` (``rtol = atol = tol``); to reach :math:`\sigma = 0` it solves to
    :data:`REFERENCE_FLOOR` and applies the exact denoiser there, whose distance to the flow's end is
    :math:`O(\sigma^2)` (the flow's velocity :math:`(x - D)/\sigma = -\sigma\nabla\log p_\sigma` vanishes at 0).
    """
    check_law(law)
    x = as_tensor(x, "x")
    s0, s1 = float(sigma_from), float(sigma_to)
    if not (s0 > 0 and math.isfinite(s0)) or not (0 <= s1 < s0):
        raise ValueError(f"need sigma_from > sigma_to >= 0 (finite), got {sigma_from!r}, {sigma_to!r}")
    flat = _flatten(law, x)
    den = lambda y, a, s: _flatten(law, law.denoise(_unflatten(law, y), a, s))  # noqa: E731
    target = max(s1, REFERENCE_FLOOR)
    y = solve_pf_ode(den, flat, s0, target, rtol=tol, atol=tol) if target < s0 else flat
    if s1 == 0.0:
        y = den(y, 1.0, target)
    return _unflatten(law, y)


def _flatten(law, x):
    return x.reshape(x.shape[0], -1) if not isinstance(law, (GaussianMixture, EmpiricalLaw)) else x


def _unflatten(law, y):
    return y.reshape(y.shape[0], *event_shape(law)) if not isinstance(law, (GaussianMixture, EmpiricalLaw)) else y


def modes(law, x, sigma: float) -> Optional[torch.Tensor]:
    """The index of each point's most responsible component of the law noised to ``sigma`` (EDM level): mixture
    components, or training points for an :class:`~diffmath.empirical.EmpiricalLaw`; ``None`` for a single Gaussian."""
    if isinstance(law, GaussianMixture):
        if sigma == 0 and law.singular:  # a low-rank mixture has no density at 0: the nearest subspace, in effect
            sigma = REFERENCE_FLOOR
        return (law.diffuse(1.0, sigma) if sigma > 0 else law).responsibilities(x).argmax(-1)
    if isinstance(law, EmpiricalLaw):
        if sigma > 0:
            return law.diffuse(1.0, sigma).responsibilities(x).argmax(-1)
        return ((x[:, None, :] - law.points) ** 2).sum(-1).argmin(-1)
    if isinstance(law, ImageMixture):
        return law.responsibilities(x, 1.0, sigma).argmax(-1)
    return None


def moments(law, sigma: float) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """Mean and covariance (flattened) of the law noised to EDM level ``sigma``; ``None`` where not closed form here."""
    if isinstance(law, GaussianMixture):
        m, C = law.mean(), law.covariance()
    elif isinstance(law, EmpiricalLaw):
        m, C = law.points.mean(0), torch.cov(law.points.T, correction=0).reshape(law.dim, law.dim)
    elif isinstance(law, GaussianImage):
        m, C = law.mean.reshape(-1), law.covariance_dense()
    else:
        return None
    return m, C + sigma**2 * torch.eye(C.shape[0], dtype=C.dtype, device=C.device)


def frechet_distance(samples: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> float:
    """:func:`diffmath.sampler_table.frechet_distance` (W2 of the Gaussian fit of the samples and N(mean, cov); FID is
    its square on network features) for samples of any shape (n, ...), flattened."""
    return sampler_table.frechet_distance(samples.reshape(samples.shape[0], -1), mean, cov)


def interval(values: Sequence[float]) -> dict:
    """:func:`diffmath.sampler_table.interval` (mean and half-width of the 95% Student-t interval), which needs two
    values; for one value the half-width is NaN."""
    v = [float(a) for a in values]
    if not v:
        raise ValueError("need at least one value")
    return sampler_table.interval(v) if len(v) > 1 else {"mean": v[0], "half": float("nan"), "values": v}


def fit_order(nfe: Sequence[float], error: Sequence[float]) -> float:
    r"""The least-squares slope :math:`p` of :math:`\log e = c - p\log N` (at least two budgets, positive errors)."""
    pairs = [(math.log(n), math.log(e)) for n, e in zip(nfe, error) if e > 0 and n > 0]
    if len({a for a, _ in pairs}) < 2:
        raise ValueError("need positive errors at two distinct NFE to estimate an order")
    mx = sum(a for a, _ in pairs) / len(pairs)
    my = sum(b for _, b in pairs) / len(pairs)
    sxy = sum((a - mx) * (b - my) for a, b in pairs)
    sxx = sum((a - mx) ** 2 for a, _ in pairs)
    return -sxy / sxx


# ------------------------------------------------------------------------------------------------
# the bench
# ------------------------------------------------------------------------------------------------


@dataclass
class BenchRow:
    """One budget: what was asked (``budget``), what was spent (``nfe``, ``steps``), the error against the exact
    flow (mean and 95% half-width over seeds, and per seed), mode flips (summed over seeds), the Fréchet distances
    (sampler, exact flow from the same starts, exact samples) averaged over seeds, the levels run between and the
    level the last step starts from."""

    budget: int
    steps: int
    nfe: int
    error: float
    error_half: float
    errors: list
    flips: Optional[int]
    frechet: Optional[float]
    frechet_flow: Optional[float]
    frechet_exact: Optional[float]
    sigma_start: float
    sigma_end: float
    sigma_last: Optional[float] = None


@dataclass
class BenchResult:
    """The result of :func:`bench`: ``rows`` (one :class:`BenchRow` per budget that some number of steps fits),
    ``order`` (:func:`fit_order` on the mean errors against the NFE counted, deterministic samplers only) and the
    setting. ``to_dict()`` is JSON-ready; ``table()`` is Markdown."""

    sampler: str
    law: str
    stochastic: bool
    points: int
    seeds: int
    rows: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    @property
    def order(self) -> Optional[float]:
        rows = [r for r in self.rows if r.error > 0]
        if self.stochastic or len({r.nfe for r in rows}) < 2:
            return None
        return fit_order([r.nfe for r in rows], [r.error for r in rows])

    def order_over(self, last: int) -> Optional[float]:
        """The fitted order over the ``last`` largest budgets."""
        rows = self.rows[-int(last):]
        if self.stochastic or len({r.nfe for r in rows}) < 2:
            return None
        return fit_order([r.nfe for r in rows], [r.error for r in rows])

    def to_dict(self) -> dict:
        return {"sampler": self.sampler, "law": self.law, "stochastic": self.stochastic, "points": self.points,
                "seeds": self.seeds, "order": self.order, "skipped": list(self.skipped),
                "rows": [dict(vars(r)) for r in self.rows]}

    def table(self) -> str:
        head = "| budget | NFE | steps | error | ± | flips | Fréchet | exact flow | exact samples |\n|---|---|---|---|---|---|---|---|---|\n"
        f = lambda v: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"  # noqa: E731
        body = "".join(f"| {r.budget} | {r.nfe} | {r.steps} | {f(r.error)} | {f(r.error_half)} | {'–' if r.flips is None else r.flips} "
                       f"| {f(r.frechet)} | {f(r.frechet_flow)} | {f(r.frechet_exact)} |\n" for r in self.rows)
        order = self.order
        return f"**{self.sampler}** on {self.law}" + ("" if order is None else f" (order {order:.2f})") + "\n\n" + head + body

    # -- assertions for a test suite -----------------------------------------------------------------
    def assert_order(self, p: float, *, last: Optional[int] = None, slack: float = 0.2) -> None:
        """Fail unless the fitted order (over the ``last`` largest budgets, default all) is at least ``p - slack``."""
        got = self.order if last is None else self.order_over(last)
        if got is None:
            raise AssertionError(f"{self.sampler}: no order to check (stochastic, or fewer than two budgets)\n{self.table()}")
        if got < p - slack:
            raise AssertionError(f"{self.sampler} on {self.law}: measured order {got:.3f} < {p} - {slack}\n{self.table()}")

    def assert_error_below(self, tol: float, *, budget: Optional[int] = None) -> None:
        """Fail unless the mean error at ``budget`` (default the largest) is below ``tol``."""
        rows = [r for r in self.rows if budget is None or r.budget == budget]
        if not rows:
            raise AssertionError(f"{self.sampler}: no row for budget {budget}")
        r = rows[-1]
        if not r.error < tol:
            raise AssertionError(f"{self.sampler} on {self.law}: error {r.error:.3g} at NFE {r.nfe} is not below {tol:g}\n{self.table()}")


def bench(sampler: Sampler, law, budgets: Sequence[int], *, law_name: Optional[str] = None, seeds: int = 4,
          points: int = 256, tol: float = 1e-10, seed: int = 0, progress: Optional[Callable[[str], None]] = None,
          references: Optional[dict] = None) -> BenchResult:
    """Run ``sampler`` on ``law`` at each NFE budget from shared noise and measure it (module docstring).

    Seed ``k`` of ``seeds`` draws the noise ``z`` (``points`` draws, float64, on the law's device) from
    ``torch.Generator().manual_seed(seed + k)``, so two samplers benched with the same ``seed`` start from the same
    noise; stochastic samplers draw their own noise from a generator seeded from that one. A budget that no number of
    steps fits is listed in ``skipped``; a run whose counted NFE exceeds its budget is an error.

    ``references``: a dict to keep the exact-flow solutions in, keyed by the start and end levels and the seed, for
    the budgets and samplers that share them (pass one dict per law to share them between samplers; a hit is used
    only when the start state is identical). Without it, the budgets of this call share theirs.
    """
    check_law(law)
    budgets = [count(b, "budget") for b in budgets]
    if not budgets or sorted(set(budgets)) != budgets:
        raise ValueError(f"budgets must be a non-empty increasing list of distinct integers, got {budgets}")
    seeds, points = count(seeds, "seeds"), count(points, "points")
    shape = event_shape(law)
    res = BenchResult(getattr(sampler, "name", type(sampler).__name__), law_name or repr(law), bool(sampler.stochastic), points, seeds)
    mom_cache: dict = {}
    references = {} if references is None else references
    for b in budgets:
        steps = sampler.steps_for(b)
        if steps is None:
            res.skipped.append(b)
            continue
        errs, flips, fd, fd_flow, fd_exact, nfes, levels = [], 0, [], [], [], set(), set()
        for k in range(seeds):
            g = torch.Generator().manual_seed(seed + k)
            z = torch.randn(points, *shape, generator=g, dtype=law.dtype).to(law.device)
            tr = sampler.run(law, z, steps, torch.Generator().manual_seed(10_000 + 7919 * (seed + k) + b))
            if tr.nfe > b:
                raise RuntimeError(f"{res.sampler} spent {tr.nfe} denoiser calls for a budget of {b} ({steps} steps)")
            ref = _reference(references, law, tr, (seed + k, points, tol), tol)
            errs.append((tr.x_end - ref).pow(2).mean().sqrt().item())
            m_out, m_ref = modes(law, tr.x_end, tr.sigma_end), modes(law, ref, tr.sigma_end)
            flips = None if m_out is None else flips + int((m_out != m_ref).sum())
            key = round(tr.sigma_end, 12)
            if key not in mom_cache:
                mom_cache[key] = moments(law, tr.sigma_end)
            mom = mom_cache[key]
            if mom is not None and points > 1:
                fd.append(frechet_distance(tr.x_end, *mom))
                fd_flow.append(frechet_distance(ref, *mom))
                exact = law.sample(points, generator=torch.Generator().manual_seed(20_000 + seed + k)).to(law.device)
                exact = exact + tr.sigma_end * torch.randn(exact.shape, generator=g, dtype=law.dtype).to(law.device)
                fd_exact.append(frechet_distance(exact, *mom))
            nfes.add(tr.nfe)
            levels.add((tr.sigma_start, tr.sigma_end, tr.sigma_last))
        if len(nfes) != 1 or len(levels) != 1:
            raise RuntimeError(f"{res.sampler} spent {sorted(nfes)} calls / ran between {sorted(levels)} on different seeds")
        ci = interval(errs)
        mean = lambda v: sum(v) / len(v) if v else None  # noqa: E731
        (s0, s1, s_last), = levels
        res.rows.append(BenchRow(b, steps, nfes.pop(), ci["mean"], ci["half"], errs, flips, mean(fd), mean(fd_flow), mean(fd_exact),
                                 s0, s1, s_last))
        if progress is not None:
            progress(f"{res.sampler}: budget {b} -> NFE {res.rows[-1].nfe}, error {ci['mean']:.3g}")
    return res


def _reference(store: Optional[dict], law, tr: Trajectory, tag: tuple, tol: float) -> torch.Tensor:
    if store is None:
        return exact_flow(law, tr.x_start, tr.sigma_start, tr.sigma_end, tol=tol)
    key = (tag, tr.sigma_start, tr.sigma_end)
    hit = store.get(key)
    if hit is not None and torch.equal(hit[0], tr.x_start):
        return hit[1]
    ref = exact_flow(law, tr.x_start, tr.sigma_start, tr.sigma_end, tol=tol)
    store[key] = (tr.x_start.clone(), ref)
    return ref


def assert_same(a: Sampler, b: Sampler, law, budget: int, *, tol: float, points: int = 64, seed: int = 0) -> float:
    """Fail unless samplers ``a`` and ``b`` end within ``tol`` (max abs difference, EDM coordinates) of each other
    from the same noise at ``budget``, having started from the same state; returns the difference."""
    check_law(law)
    z = torch.randn(count(points, "points"), *event_shape(law), generator=torch.Generator().manual_seed(seed), dtype=law.dtype).to(law.device)
    runs = []
    for s in (a, b):
        n = s.steps_for(budget)
        if n is None:
            raise AssertionError(f"{s.name} has no number of steps within {budget} calls")
        runs.append(s.run(law, z, n, torch.Generator().manual_seed(seed)))
    ta, tb = runs
    start = (ta.x_start - tb.x_start).abs().max().item()
    if abs(ta.sigma_start - tb.sigma_start) > 1e-9 * ta.sigma_start or abs(ta.sigma_end - tb.sigma_end) > 1e-12 + 1e-9 * ta.sigma_end:
        raise AssertionError(f"{a.name} runs {ta.sigma_start:.6g} -> {ta.sigma_end:.6g}, {b.name} {tb.sigma_start:.6g} -> {tb.sigma_end:.6g}")
    if start > tol:
        raise AssertionError(f"{a.name} and {b.name} start {start:.3g} apart")
    diff = (ta.x_end - tb.x_end).abs().max().item()
    if not diff <= tol:
        raise AssertionError(f"{a.name} and {b.name} differ by {diff:.3g} > {tol:g} at budget {budget} (NFE {ta.nfe} and {tb.nfe})")
    return diff


# ------------------------------------------------------------------------------------------------
# named laws and samplers (the command line and the book's table)
# ------------------------------------------------------------------------------------------------


def named_law(name: str):
    """A law of the kit by name: ``mixture-2d`` (4 components), ``mixture-16d`` (8 components; both
    :func:`~diffmath.toys.random_mixture` with unit-scale means), ``lowrank-16d`` (4 components on random planes of
    R^16, :meth:`~diffmath.mixture.GaussianMixture.low_rank`), ``image-8x8`` (a power-law Gaussian image,
    exponent 2), ``empirical-2d`` (16 training points)."""
    from diffmath.toys import random_low_rank_mixture, random_mixture

    if name == "mixture-2d":
        return random_mixture(4, 2, seed=2, spread=1.0)
    if name == "mixture-16d":
        return random_mixture(8, 16, seed=16, spread=1.0)
    if name == "lowrank-16d":
        return random_low_rank_mixture(4, 16, 2, seed=16)
    if name == "image-8x8":
        return GaussianImage.power_law(8, 8, 2.0)
    if name == "empirical-2d":
        return EmpiricalLaw(torch.randn(16, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    raise ValueError(f"no law {name!r}; known: {', '.join(LAW_NAMES)}")


LAW_NAMES = ("mixture-2d", "mixture-16d", "lowrank-16d", "image-8x8", "empirical-2d")


def named_sampler(name: str):
    """A sampler by name: ``diffmath:<sampler>`` for a sampler of :mod:`diffmath.samplers` on EDM's grid (k-diffusion's
    convention; its evaluations per step from :data:`~diffmath.samplers.SPECS`), or ``diffusers:<name>`` for an entry
    of :data:`diffmath.diffusers_bench.SCHEDULERS`, or ``k-diffusion:<name>`` for a sampler of k-diffusion
    (:data:`diffmath.kdiffusion.SAMPLERS`; a bare name is looked up in diffmath, then diffusers)."""
    from diffmath import samplers as S

    kind, _, bare = name.rpartition(":")
    if kind in ("", "diffmath") and bare in S.SPECS and not bare.startswith("amed"):
        spec = S.SPECS[bare]
        return KSampler(spec.fn, name=f"diffmath:{bare}", evaluations=spec.evaluations)
    if kind in ("", "diffusers"):
        from diffmath.diffusers_bench import SCHEDULERS, DiffusersSampler

        if bare in SCHEDULERS:
            return DiffusersSampler(bare, name=f"diffusers:{bare}")
    if kind == "k-diffusion":
        from diffmath import kdiffusion

        if bare in kdiffusion.SAMPLERS:
            return kdiffusion.sampler(bare)
    raise ValueError(f"no sampler {name!r}; known: diffmath:<{'|'.join(n for n in S.SPECS if not n.startswith('amed'))}>, "
                     "diffusers:<a name of diffmath.diffusers_bench.SCHEDULERS>, k-diffusion:<a name of diffmath.kdiffusion.SAMPLERS>")
