"""Derivations as data: ordered steps that sympy checks and the book renders.

A :class:`Derivation` is a list of :class:`Step` objects. Each step states ``lhs REL rhs`` with
REL one of ``=``, ``<=``, ``>=``:

* no step may have two sides that are one expression as written (``m - x`` against ``m - x``, or
  ``(F - F)/rho``, which sympy builds as 0, against 0): such a step passes any check and derives
  nothing. The computation belongs in the check: leave a side unevaluated (a ``Derivative``, ``Subs``,
  ``Integral``, ``Sum``, a ``MatMul(..., evaluate=False)`` of explicit matrices) and the check does it;
* an equality is accepted when sympy reduces ``lhs - rhs`` to zero (``simplify``, then
  ``expand``/``cancel``/``trigsimp``/``expand_log``/``doit`` as fall-backs; matrices entry by entry);
* an inequality is accepted when its gap (``rhs - lhs`` for ``<=``, ``lhs - rhs`` for ``>=``) is
  nonnegative for a reason sympy can see. Either the step gives a ``certificate`` equal to the gap
  that sympy shows nonnegative from the symbols' assumptions (a square, a product of positive
  parameters), or it names its :class:`Hypothesis` objects (``h >= 0``, each stated in words: the
  one-sided Lipschitz condition, Cauchy-Schwarz) and the ``variables`` they constrain, and sympy solves
  for multipliers ``lam_i`` with ``gap == sum(lam_i * h_i)`` identically in the variables and shows
  every ``lam_i >= 0``. A slack is thus derived from stated hypotheses, never declared: the same step
  with a hypothesis pointing the other way finds no nonnegative multipliers and fails;
* a step may be ``assumed=True``: a premise the derivation rests on (the article's model, a
  definition), stated but not checked. The book marks it as assumed.

Nothing is checked numerically here; a step that sympy cannot reduce fails, and the failure says
which step and what was left over. The same object renders as a LaTeX ``aligned`` block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import sympy as sp

Expr = Union[sp.Expr, sp.MatrixBase]

_RELATIONS = {"=": "=", "<=": r"\le", ">=": r"\ge"}
_WIDE = 90  # characters of TeX beyond which a step is set on two lines


def _is_zero(expr: Expr) -> bool:
    if isinstance(expr, sp.MatrixExpr) and not isinstance(expr, sp.MatrixBase):
        expr = expr.doit()  # an unevaluated product of explicit matrices: compute it
    if isinstance(expr, sp.MatrixBase):
        return all(_is_zero(e) for e in expr)
    if expr == 0:
        return True
    if expr.has(sp.Integral, sp.Derivative, sp.Subs, sp.Sum, sp.Limit):
        # an unevaluated side: compute it first (simplifying an unevaluated integral first can rewrite it into
        # special functions that no longer cancel)
        try:
            done = expr.doit()
            if done == 0 or sp.simplify(done) == 0 or sp.simplify(sp.expand(done)) == 0:
                return True
        except (TypeError, ValueError, NotImplementedError):
            pass
    reducers = (
        sp.simplify,
        sp.expand,
        sp.cancel,
        sp.trigsimp,
        lambda e: sp.simplify(sp.expand(e)),
        lambda e: sp.simplify(sp.expand(sp.expand_log(e, force=True))),
        lambda e: sp.simplify(e.doit()),  # unevaluated sums, derivatives, substitutions
    )
    for reduce in reducers:
        try:
            if reduce(expr) == 0:
                return True
        except (TypeError, ValueError, NotImplementedError):  # a reducer that does not apply
            continue
    return False


def _same_expression(lhs: Expr, rhs: Expr) -> bool:
    """Whether ``lhs`` and ``rhs`` are one expression as written (sympy's automatic evaluation only).

    ``m - x`` against ``m - x``, or ``(F - F) / rho`` (which sympy builds as 0) against 0: such a step
    would pass any check and derives nothing. An unevaluated side (``Sum``, ``Subs``, ``Derivative``,
    ``MatMul(..., evaluate=False)``) differs from its value here, so computing it is a real step.
    """
    if lhs == rhs:
        return True
    lazy = (sp.MatrixExpr,)
    if any(isinstance(side, lazy) and not isinstance(side, sp.MatrixBase) for side in (lhs, rhs)):
        return False  # an unevaluated matrix product: the check computes it
    if isinstance(lhs, sp.MatrixBase) and isinstance(rhs, sp.MatrixBase):
        return lhs.shape == rhs.shape and all(a == b or (a - b) == 0 for a, b in zip(lhs, rhs))
    try:
        return (lhs - rhs) == 0
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class Hypothesis:
    """A stated hypothesis ``expr >= 0`` that an inequality step may use.

    ``why`` says where it comes from (e.g. "the backward one-sided Lipschitz condition on g");
    ``tex`` is its LaTeX form for the book (default: ``sympy.latex(expr) \\ge 0``).
    """

    expr: sp.Expr
    why: str
    tex: Optional[str] = None

    def to_latex(self) -> str:
        return self.tex if self.tex is not None else rf"{sp.latex(self.expr)} \ge 0"


def _nonnegative_combination(gap: sp.Expr, hypotheses: Sequence[Hypothesis], variables: Sequence[sp.Symbol]):
    """Multipliers ``lam`` (expressions free of ``variables``) with ``gap == sum(lam_i h_i)``
    identically in ``variables`` and every ``lam_i`` provably nonnegative, or a message why not."""
    lams = sp.symbols(f"lambda_0:{len(hypotheses)}")
    residual = sp.expand(gap - sum(lam * h.expr for lam, h in zip(lams, hypotheses)))
    try:
        poly = sp.Poly(residual, *variables)
    except sp.PolynomialError as exc:
        return None, f"the gap is not polynomial in the variables {list(variables)}: {exc}"
    equations = [sp.simplify(c) for c in poly.coeffs()]
    solution = sp.solve(equations, lams, dict=True)
    if not solution:
        return None, "the gap is not a combination of the hypotheses (no multipliers solve it)"
    sol = solution[0]
    values = [sp.simplify(sol.get(lam, sp.Integer(0))) for lam in lams]
    if any(v.free_symbols & set(lams) for v in values):
        # an underdetermined system: set the free multipliers to 0 and check the rest
        values = [sp.simplify(v.subs({lam: 0 for lam in lams})) for v in values]
    left = sp.simplify(sp.expand(gap - sum(v * h.expr for v, h in zip(values, hypotheses))))
    if left != 0:
        return None, f"the multipliers leave {left}"
    for v, h in zip(values, hypotheses):
        if v.is_nonnegative is not True:
            return None, f"the multiplier of the hypothesis ({h.why}) is {v}, which sympy cannot show is nonnegative"
    return values, None


@dataclass(frozen=True)
class Step:
    """One step ``lhs REL rhs`` of a derivation.

    Parameters
    ----------
    lhs, rhs : sympy expressions or matrices
    relation : ``"="``, ``"<="`` or ``">="``
    why : a short justification, shown beside the step in the book
    certificate : for inequalities, an expression equal to ``rhs - lhs`` (``<=``) or
        ``lhs - rhs`` (``>=``) that sympy can see is nonnegative
    hypotheses, variables : for inequalities, instead of (or with) a certificate: stated hypotheses
        ``h >= 0`` and the symbols they constrain; the gap must be a nonnegative combination of them
    assumed : a premise, stated and not checked (rendered as assumed)
    lhs_tex, rhs_tex : optional LaTeX shown instead of ``sympy.latex`` of the sides
    """

    lhs: Expr
    rhs: Expr
    relation: str = "="
    why: str = ""
    certificate: Optional[sp.Expr] = None
    lhs_tex: Optional[str] = None
    rhs_tex: Optional[str] = None
    hypotheses: tuple = ()
    variables: tuple = ()
    assumed: bool = False

    def __post_init__(self):
        if self.relation not in _RELATIONS:
            raise ValueError(f"relation must be one of {list(_RELATIONS)}, got {self.relation!r}")
        object.__setattr__(self, "hypotheses", tuple(self.hypotheses))
        object.__setattr__(self, "variables", tuple(self.variables))
        if not all(isinstance(h, Hypothesis) for h in self.hypotheses):
            raise ValueError("hypotheses must be Hypothesis objects")
        if self.hypotheses and not self.variables:
            raise ValueError("a step with hypotheses needs the variables they constrain")
        if self.hypotheses and self.relation == "=":
            raise ValueError("hypotheses are for inequality steps")
        if self.relation != "=" and self.certificate is None and not self.hypotheses and not self.assumed:
            raise ValueError("an inequality step needs a nonnegative certificate or hypotheses")

    def failure(self) -> Optional[str]:
        """``None`` when sympy verifies the step, else a message saying what failed."""
        if _same_expression(self.lhs, self.rhs):
            return "the two sides are the same expression before any simplification: the step derives nothing"
        if self.assumed:
            return None
        if self.relation == "=":
            diff = self.lhs - self.rhs
            if isinstance(diff, sp.MatrixExpr) and not isinstance(diff, sp.MatrixBase):
                diff = diff.doit()
            if _is_zero(diff):
                return None
            left = diff.applyfunc(sp.simplify) if isinstance(diff, sp.MatrixBase) else sp.simplify(diff)
            return f"lhs - rhs does not reduce to 0 (left with {left})"
        gap = self.rhs - self.lhs if self.relation == "<=" else self.lhs - self.rhs
        if self.hypotheses:
            if self.certificate is not None and not _is_zero(gap - self.certificate):
                return f"certificate {self.certificate} is not equal to the gap {sp.simplify(gap)}"
            _, why = _nonnegative_combination(gap, self.hypotheses, self.variables)
            return None if why is None else f"from the stated hypotheses: {why}"
        if not _is_zero(gap - self.certificate):
            return f"certificate {self.certificate} is not equal to the gap {sp.simplify(gap)}"
        if sp.simplify(self.certificate).is_nonnegative is not True:
            return f"sympy cannot show the certificate {self.certificate} is nonnegative"
        return None

    def to_latex(self, number: Optional[int] = None) -> str:
        """The step as one (or, when wide, two) rows of an ``aligned`` block, tagged ``(number)``.

        The justification ``why`` is not typeset here (it would make the row too wide); see
        :meth:`Derivation.justifications`.
        """
        lhs = self.lhs_tex if self.lhs_tex is not None else sp.latex(self.lhs)
        rhs = self.rhs_tex if self.rhs_tex is not None else sp.latex(self.rhs)
        label = f"{number}, assumed" if self.assumed and number is not None else number
        tag = rf" \qquad (\text{{{label}}})" if self.assumed and number is not None else (rf" \qquad ({number})" if number is not None else "")
        if len(lhs) + len(rhs) > _WIDE:  # too wide for one line of the page: relation on a second line
            return f"& {lhs} \\\\\n&\\quad {_RELATIONS[self.relation]} {rhs}{tag}"
        return f"{lhs} &{_RELATIONS[self.relation]} {rhs}{tag}"


@dataclass(frozen=True)
class Derivation:
    """An ordered list of steps, with the setting they hold in (assumptions, in words)."""

    steps: tuple[Step, ...]
    setting: str = ""

    def __init__(self, steps: Sequence[Step], setting: str = ""):
        if not steps:
            raise ValueError("a derivation needs at least one step")
        object.__setattr__(self, "steps", tuple(steps))
        object.__setattr__(self, "setting", setting)

    def failures(self) -> list[str]:
        """Messages for the steps sympy could not verify (empty when all hold).

        Computed once per derivation object (the steps are immutable; sympy takes seconds on the longest
        derivations, which the claim check, the book and the tests all ask for)."""
        memo = self.__dict__.get("_failures")
        if memo is None:
            memo = []
            for i, step in enumerate(self.steps, 1):
                msg = step.failure()
                if msg is not None:
                    memo.append(f"step {i}: {msg}")
            object.__setattr__(self, "_failures", memo)
        return list(memo)

    def verify(self) -> bool:
        return not self.failures()

    def to_latex(self) -> str:
        """The steps as one LaTeX ``aligned`` environment (for a ``{math}`` block), numbered (1), (2), ..."""
        body = r" \\" + "\n"
        rows = [s.to_latex(i) for i, s in enumerate(self.steps, 1)]
        return "\\begin{aligned}\n" + body.join(rows) + "\n\\end{aligned}"

    def justifications(self) -> list[str]:
        """``"(k) why"`` for each step that has a justification, in order (assumed steps say so)."""
        return [f"({i}) {'assumed: ' if s.assumed else ''}{s.why}" for i, s in enumerate(self.steps, 1) if s.why or s.assumed]

    def assumed_steps(self) -> list[int]:
        """The numbers (from 1) of the steps that are premises, not checked."""
        return [i for i, s in enumerate(self.steps, 1) if s.assumed]

    def hypotheses(self) -> list[Hypothesis]:
        """Every hypothesis the inequality steps use, once each, in order of first use."""
        out: list[Hypothesis] = []
        for s in self.steps:
            for h in s.hypotheses:
                if h not in out:
                    out.append(h)
        return out


def gaussian_expectation(expr: sp.Expr, normals: Sequence[sp.Symbol]) -> sp.Expr:
    r""":math:`\mathbb E[\text{expr}]` for a polynomial in independent standard normals ``normals``.

    Expands ``expr`` and replaces each monomial :math:`\prod_i z_i^{k_i}` by
    :math:`\prod_i \mathbb E z_i^{k_i}` with :math:`\mathbb E z^k = (k-1)!!` for even :math:`k`, 0 for odd.
    Exact; raises ``ValueError`` if ``expr`` is not polynomial in ``normals``.
    """
    try:
        poly = sp.Poly(sp.expand(expr), *normals)
    except sp.PolynomialError as exc:
        raise ValueError(f"expr must be a polynomial in {list(normals)}: {exc}") from None
    total = sp.Integer(0)
    for powers, coeff in poly.terms():
        moment = sp.Integer(1)
        for k in powers:
            moment *= 0 if k % 2 else sp.factorial2(k - 1)
        total += coeff * moment
    return sp.simplify(total)
