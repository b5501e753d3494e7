"""Derivations: sympy accepts true steps, rejects false ones, and renders LaTeX."""

import pytest
import sympy as sp

from diffmath.symbolic import Derivation, Hypothesis, Step

x, y = sp.symbols("x y", real=True)
p = sp.symbols("p", positive=True)


def test_true_equality_accepted_false_rejected():
    good = Step((x + y) ** 2, x**2 + 2 * x * y + y**2)
    bad = Step((x + y) ** 2, x**2 + y**2)
    assert good.failure() is None
    assert "does not reduce" in bad.failure()
    d = Derivation([good, bad])
    assert not d.verify() and d.failures()[0].startswith("step 2")


def test_log_identities_need_expand_log():
    assert Step(sp.log(2 * p) - sp.log(p), sp.log(2)).failure() is None


def test_matrix_steps():
    M = sp.Matrix([[x, 0], [0, y]])
    assert Step(sp.MatMul(M, M, evaluate=False), sp.Matrix([[x**2, 0], [0, y**2]])).failure() is None
    assert Step(sp.MatMul(M, M, evaluate=False), sp.Matrix([[x**2, 1], [0, y**2]])).failure() is not None


def test_inequality_certificates():
    ok = Step(2 * x * y, x**2 + y**2, relation="<=", certificate=(x - y) ** 2)
    assert ok.failure() is None
    wrong_cert = Step(2 * x * y, x**2 + y**2, relation="<=", certificate=(x + y) ** 2)
    assert "not equal to the gap" in wrong_cert.failure()
    unsigned = Step(x, x + y, relation="<=", certificate=y)  # y may be negative
    assert "nonnegative" in unsigned.failure()
    with pytest.raises(ValueError, match="certificate"):
        Step(x, y, relation="<=")


def test_latex_rendering():
    d = Derivation([Step(x + x, 2 * x, why="collect", lhs_tex="x+x"), Step(x, x)])
    tex = d.to_latex()
    assert tex.startswith("\\begin{aligned}") and "x+x &= 2 x \\qquad (1)" in tex and "(2)" in tex
    assert d.justifications() == ["(1) collect"]


def test_wide_steps_break_onto_two_lines():
    long = sp.Add(*sp.symbols("a0:40"))
    tex = Step(long, long).to_latex()
    assert tex.startswith("& ") and "\\\\\n&\\quad =" in tex


def test_empty_and_bad_relation_rejected():
    with pytest.raises(ValueError):
        Derivation([])
    with pytest.raises(ValueError, match="relation"):
        Step(x, x, relation="<")


def test_unevaluated_sides_are_computed_by_the_check():
    """A side left unevaluated (a Sum, a Subs of a Derivative, a MatMul of explicit matrices) is computed when
    the step is checked: right results pass, wrong ones fail."""
    import sympy as sp

    from diffmath.symbolic import Step

    i, j = sp.symbols("i j", integer=True)
    total = sp.Sum(sp.KroneckerDelta(i, j), (i, 1, 4), (j, 1, 4)) / 16
    assert Step(total, sp.Rational(1, 4)).failure() is None
    assert Step(total, sp.Rational(1, 2)).failure() is not None
    A = sp.Matrix([[1, 2], [3, 4]])
    assert Step(sp.MatMul(A, A.inv(), evaluate=False), sp.eye(2)).failure() is None
    assert Step(sp.MatMul(A, A, evaluate=False), sp.eye(2)).failure() is not None
    g, u = sp.symbols("g u", positive=True)
    third = sp.Subs(sp.Derivative(sp.tanh(g * u), (g, 3)), g, 0) / 6
    assert Step(third, -(u**3) / 3).failure() is None
    assert Step(third, (u**3) / 3).failure() is not None


def test_a_step_with_identical_sides_derives_nothing_and_fails():
    """Issue 11: ``Step(m - x, m - x)`` and ``(F - F)/rho = 0`` passed every check; now they fail, while the same
    statements with the computation left to the check (an unevaluated derivative) pass."""
    m, rho = sp.symbols("m rho", positive=True)
    F = sp.Function("F")(x)
    assert "same expression" in Step(m - x, m - x).failure()
    assert "same expression" in Step((F - F) / rho, sp.Integer(0)).failure()
    assert "same expression" in Step(sp.Matrix([x, y]), sp.Matrix([x, y])).failure()
    assert "same expression" in Step(x * y, y * x).failure()  # sympy's canonical order: one expression
    assert Step(sp.Derivative(x**2 / 2, x), x).failure() is None
    assert Step(sp.Derivative(x**2, x), x).failure() is not None
    A = sp.Matrix([[1, 1], [0, 1]])
    assert Step(sp.MatMul(A, A, evaluate=False), sp.Matrix([[1, 2], [0, 1]])).failure() is None


def test_assumed_steps_are_stated_not_checked_and_rendered_as_assumed():
    premise = Step(x, y + 1, why="the model", assumed=True)
    assert premise.failure() is None
    assert "same expression" in Step(x, x, assumed=True).failure()  # a premise must say something
    d = Derivation([premise, Step(x - 1, y, relation="=")])
    assert d.assumed_steps() == [1] and d.justifications()[0] == "(1) assumed: the model"
    assert r"\text{1, assumed}" in d.to_latex()
    assert d.steps[1].failure() is not None  # x - 1 = y does not follow without the premise: nothing is carried


def test_inequality_slack_is_derived_from_stated_hypotheses():
    """A one-sided Lipschitz step: <g(y) - g(x), x - y> <= L n follows from the backward condition L n - B >= 0
    (B the inner product), with multiplier 1, and not from the forward one L n + B >= 0: the negative control."""
    B, A = sp.symbols("B A", real=True)  # inner products: no sign
    n = sp.symbols("n", nonnegative=True)  # a squared norm
    L = sp.symbols("L", real=True)
    c = sp.symbols("c", positive=True)
    backward = Hypothesis(L * n - B, "backward one-sided Lipschitz")
    forward = Hypothesis(L * n + B, "forward one-sided Lipschitz")
    lipschitz = Hypothesis(c * n + A, "Lipschitz drift via Cauchy-Schwarz")
    ok = Step(B - A, (L + c) * n, "<=", hypotheses=(backward, lipschitz), variables=(A, B, n))
    assert ok.failure() is None
    wrong = Step(B - A, (L + c) * n, "<=", hypotheses=(forward, lipschitz), variables=(A, B, n))
    assert "multiplier" in wrong.failure() or "no multipliers" in wrong.failure()
    too_strong = Step(B - A, L * n, "<=", hypotheses=(backward, lipschitz), variables=(A, B, n))
    assert too_strong.failure() is not None
    # a multiplier that depends on a parameter of unknown sign is refused
    scaled = Step(L * B, L**2 * n, "<=", hypotheses=(Hypothesis(L * n - B, "h"),), variables=(B, n))
    assert "cannot show" in scaled.failure()
    with pytest.raises(ValueError, match="variables"):
        Step(B, L * n, "<=", hypotheses=(backward,))
    with pytest.raises(ValueError, match="Hypothesis"):
        Step(B, L * n, "<=", hypotheses=(L * n - B,), variables=(B,))
    d = Derivation([ok, Step(B - A, (L + c) * n + 1, "<=", hypotheses=(backward, lipschitz), variables=(A, B, n))])
    assert d.hypotheses() == [backward, lipschitz]


# --- the zero test and the same-expression test, directly (each reduction path must be able to say no) -------------
def test_is_zero_accepts_zeros_on_every_path():
    from diffmath.symbolic import _is_zero

    assert _is_zero(sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1)  # a reducer (simplify)
    assert _is_zero(sp.Integral(2 * x, (x, 0, 1)) - 1)  # an unevaluated integral, computed first
    assert _is_zero(sp.Matrix([[sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1, 0]]))
    A, B = sp.Matrix([[1, 1], [1, 1]]), sp.Matrix([[1, -1], [-1, 1]])
    assert _is_zero(sp.MatMul(A, B, evaluate=False))  # an unevaluated product of explicit matrices


def test_is_zero_rejects_nonzeros_on_every_path():
    from diffmath.symbolic import _is_zero

    assert not _is_zero(sp.Integer(1))
    assert not _is_zero(sp.Integral(1, (x, 0, 1)))  # computes to 1
    assert not _is_zero(sp.Integral(x, (x, 0, 1)))  # computes to 1/2
    assert not _is_zero(sp.sin(x) ** 2 + sp.cos(x) ** 2)
    assert not _is_zero(sp.Matrix([[0, 0], [0, 1]]))
    A = sp.Matrix([[1, 1], [1, 1]])
    assert not _is_zero(sp.MatMul(A, A, evaluate=False))


def test_same_expression_sees_automatic_evaluation_only():
    from diffmath.symbolic import _same_expression

    twice = sp.Add(x, x, evaluate=False)  # written as x + x; sympy's subtraction makes 2x - 2x = 0
    assert twice != 2 * x and _same_expression(twice, 2 * x)
    assert _same_expression(sp.Matrix([[twice, 1]]), sp.Matrix([[2 * x, 1]]))
    assert not _same_expression(sp.Matrix([[twice, 1]]), sp.Matrix([[2 * x, 2]]))
    assert not _same_expression(sp.Matrix([[x, 0]]), sp.Matrix([[x], [0]]))  # shapes differ
    assert not _same_expression(sp.Matrix([x, 0]), sp.Integer(0))  # a matrix against a number: not one expression
    assert not _same_expression((x + 1) ** 2, x**2 + 2 * x + 1)  # equal, but only after expansion
    M = sp.Matrix([[x]])
    assert not _same_expression(sp.MatMul(M, M, evaluate=False), sp.Matrix([[x**2]]))


def test_certificate_must_equal_the_gap():
    assert Step(x**2 + 1, 1, ">=", certificate=x**2).failure() is None
    assert "not equal to the gap" in Step(x**2 + 1, 1, ">=", certificate=2 * x**2).failure()
    assert Step(1, x**2 + 1, "<=", certificate=x**2).failure() is None
    assert "not equal to the gap" in Step(1, x**2 + 1, "<=", certificate=-(x**2)).failure()


def test_hypothesis_latex():
    h = Hypothesis(x - y, "x is at least y")
    assert h.to_latex() == rf"{sp.latex(x - y)} \ge 0"
    assert Hypothesis(x - y, "x is at least y", tex=r"x \ge y").to_latex() == r"x \ge y"


def test_multipliers_of_unused_hypotheses_are_zero():
    """The gap uses only the first hypothesis: the second's multiplier is 0 (not any other value, which would
    leave a residual)."""
    a, b = sp.symbols("a b", real=True)
    step = Step(2 * a, 0, ">=", hypotheses=[Hypothesis(a, "a >= 0"), Hypothesis(b, "b >= 0")], variables=[a, b])
    assert step.failure() is None
    from diffmath.symbolic import _nonnegative_combination

    values, why = _nonnegative_combination(2 * a, [Hypothesis(a, "a >= 0"), Hypothesis(b, "b >= 0")], [a, b])
    assert why is None and values == [2, 0]


@pytest.mark.parametrize("expr, expected", [
    (sp.Integer(1), 1), (sp.Symbol("z1"), 0), (sp.Symbol("z1") ** 3, 0), (sp.Symbol("z1") ** 4, 3), (sp.Symbol("z1") ** 6, 15),
    (sp.Symbol("z1") ** 2 * sp.Symbol("z2") ** 2, 1), (sp.Symbol("z1") * sp.Symbol("z2"), 0), ((1 + sp.Symbol("z1")) ** 2, 2),
])
def test_gaussian_expectation_moments(expr, expected):
    """Standard-normal moments: E z^(2k) = (2k-1)!!, odd moments 0, independence across symbols."""
    from diffmath.symbolic import gaussian_expectation

    assert gaussian_expectation(expr, [sp.Symbol("z1"), sp.Symbol("z2")]) == expected


def test_failures_are_computed_once_per_derivation():
    calls = []

    class Counting(Step):
        def failure(self):
            calls.append(1)
            return super().failure()

    d = Derivation([Counting((x + y) ** 2, x**2 + 2 * x * y + y**2), Counting(x, x + 1)])
    first = d.failures()
    assert first == d.failures() and len(calls) == 2 and len(first) == 1
    first.append("changed by the caller")
    assert len(d.failures()) == 1  # a copy is returned
