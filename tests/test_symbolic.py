"""Derivations: sympy accepts true steps, rejects false ones, and renders LaTeX."""

import pytest
import sympy as sp

from diffmath.symbolic import Derivation, Step

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
    assert Step(M * M, sp.Matrix([[x**2, 0], [0, y**2]])).failure() is None
    assert Step(M * M, sp.Matrix([[x**2, 1], [0, y**2]])).failure() is not None


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
