"""Derivations as data: ordered steps that sympy checks and the book renders.

A :class:`Derivation` is a list of :class:`Step` objects. Each step states ``lhs REL rhs`` with
REL one of ``=``, ``<=``, ``>=``:

* an equality is accepted when sympy reduces ``lhs - rhs`` to zero (``simplify``, then
  ``expand``/``cancel``/``trigsimp``/``expand_log``/``doit`` as fall-backs; matrices entry by entry).
  A side may be left unevaluated (a ``Sum``, a ``Derivative``, a ``MatMul(..., evaluate=False)`` of
  explicit matrices) so that the computation happens in the check rather than in the statement;
* an inequality needs a *certificate* ``c``: sympy must show ``(larger) - (smaller) - c == 0`` and
  that ``c`` is nonnegative from the symbols' assumptions (``c.is_nonnegative is True``).

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
    lhs_tex, rhs_tex : optional LaTeX shown instead of ``sympy.latex`` of the sides
    """

    lhs: Expr
    rhs: Expr
    relation: str = "="
    why: str = ""
    certificate: Optional[sp.Expr] = None
    lhs_tex: Optional[str] = None
    rhs_tex: Optional[str] = None

    def __post_init__(self):
        if self.relation not in _RELATIONS:
            raise ValueError(f"relation must be one of {list(_RELATIONS)}, got {self.relation!r}")
        if self.relation != "=" and self.certificate is None:
            raise ValueError("an inequality step needs a nonnegative certificate")

    def failure(self) -> Optional[str]:
        """``None`` when sympy verifies the step, else a message saying what failed."""
        if self.relation == "=":
            diff = self.lhs - self.rhs
            if isinstance(diff, sp.MatrixExpr) and not isinstance(diff, sp.MatrixBase):
                diff = diff.doit()
            if _is_zero(diff):
                return None
            left = diff.applyfunc(sp.simplify) if isinstance(diff, sp.MatrixBase) else sp.simplify(diff)
            return f"lhs - rhs does not reduce to 0 (left with {left})"
        gap = self.rhs - self.lhs if self.relation == "<=" else self.lhs - self.rhs
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
        tag = rf" \qquad ({number})" if number is not None else ""
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
        """Messages for the steps sympy could not verify (empty when all hold)."""
        out = []
        for i, step in enumerate(self.steps, 1):
            msg = step.failure()
            if msg is not None:
                out.append(f"step {i}: {msg}")
        return out

    def verify(self) -> bool:
        return not self.failures()

    def to_latex(self) -> str:
        """The steps as one LaTeX ``aligned`` environment (for a ``{math}`` block), numbered (1), (2), ..."""
        body = r" \\" + "\n"
        rows = [s.to_latex(i) for i, s in enumerate(self.steps, 1)]
        return "\\begin{aligned}\n" + body.join(rows) + "\n\\end{aligned}"

    def justifications(self) -> list[str]:
        """``"(k) why"`` for each step that has a justification, in order."""
        return [f"({i}) {s.why}" for i, s in enumerate(self.steps, 1) if s.why]


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
