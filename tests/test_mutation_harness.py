"""benchmarks/mutation.py, the mutation-testing harness: its mutants are real changes of the live code."""

import ast
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
mutation = pytest.importorskip("mutation")


def test_mutants_change_the_live_function_and_only_it():
    """Every mutant of mean_value.exact_gain compiles, is swapped into the live function (so callers that imported
    it see the mutant), and most change its value; restoring the code restores the value."""
    from diffmath import mean_value as mv
    from diffmath.mean_value import exact_gain  # a reference taken before the swap, as another module would hold

    mutants = [m for m in mutation.generate("diffmath.mean_value") if m.function == "exact_gain"]
    kinds = {m.kind for m in mutants}
    assert {"Add->Sub", "Div->Mult"} <= kinds, kinds
    original = exact_gain.__code__
    want = exact_gain(0.3, 1.7, 0.5)
    changed = 0
    try:
        for m in mutants:
            mutation.apply(m)
            try:
                got = exact_gain(0.3, 1.7, 0.5)
            except Exception:
                got = None
            changed += got != want
            exact_gain.__code__ = original
        assert mv.exact_gain(0.3, 1.7, 0.5) == want
    finally:
        exact_gain.__code__ = original
    assert changed >= len(mutants) // 2, (changed, len(mutants))


def test_docstrings_annotations_and_defaults_are_not_mutated():
    mutants = mutation.generate("diffmath.mean_value")
    texts = {m.text for m in mutants}
    assert all("Cauchy" not in t for t in texts)  # docstring prose
    assert not any(m.function == "mean_value_time" and m.text == "200" for m in mutants)  # a default value


def test_ids_are_stable_and_unique():
    a = [m.id for m in mutation.generate("diffmath.samplers")]
    assert a == [m.id for m in mutation.generate("diffmath.samplers")]
    assert len(a) == len(set(a))


def test_summary_counts_equivalent_mutants_out_of_the_score():
    m = mutation.Mutant("diffmath.x", "f", 1, 2, 0, "Add->Sub", "a + b", 0)
    n = mutation.Mutant("diffmath.x", "f", 1, 3, 0, "Lt->LtE", "a < b", 0)
    results = {m.id: {"status": "killed", "mutant": vars(m)}, n.id: {"status": "survived", "mutant": vars(n)}}
    [row] = mutation.summarise(results, {})
    assert row["score"] == 0.5
    [row] = mutation.summarise(results, {n.id: "continuous quantity"})
    assert row["score"] == 1.0 and row["equivalent"] == 1
    # a mutant that no longer applies (its module was edited after the mutants were generated) is left out
    o = mutation.Mutant("diffmath.x", "f", 2, 3, 0, "Lt->LtE", "c < d", 0)
    results[o.id] = {"status": "not applied", "mutant": vars(o)}
    [row] = mutation.summarise(results, {})
    assert row["not applied"] == 1 and row["score"] == 0.5


def test_sample_is_reproducible_uniform_and_in_source_order():
    mutants = mutation.generate("diffmath.samplers")
    a = mutation.sample_mutants(mutants, 40, "0:samplers")
    assert a == mutation.sample_mutants(mutants, 40, "0:samplers") and len(a) == 40
    assert a != mutation.sample_mutants(mutants, 40, "1:samplers")
    index = {m.id: i for i, m in enumerate(mutants)}
    assert [index[m.id] for m in a] == sorted(index[m.id] for m in a)
    assert mutation.sample_mutants(mutants[:5], 40, "0:x") == mutants[:5]
    # uniform: over many keys each mutant is drawn about n/N of the time (5 SE of a binomial)
    counts = [0] * len(mutants)
    keys = 400
    for k in range(keys):
        for m in mutation.sample_mutants(mutants, 40, f"{k}:samplers"):
            counts[index[m.id]] += 1
    p = 40 / len(mutants)
    assert max(abs(c - keys * p) for c in counts) <= 5 * (keys * p * (1 - p)) ** 0.5
    with pytest.raises(ValueError, match="sample size"):
        mutation.sample_mutants(mutants, 0, "0")


@pytest.mark.parametrize("k, n", [(0, 10), (7, 10), (10, 10), (45, 50), (1, 1)])
def test_wilson_interval_matches_scipy(k, n):
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert mutation.wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_sampled_summary_reports_the_interval():
    ms = [mutation.Mutant("diffmath.x", "f", 1, c, 0, "Add->Sub", "a + b", c) for c in range(10)]
    results = {m.id: {"status": "killed" if m.line < 8 else "survived", "mutant": vars(m)} for m in ms}
    [row] = mutation.summarise(results, {}, {"diffmath.x": 100})
    assert row["sampled"] and row["of"] == 100 and row["score"] == 0.8
    assert (row["low"], row["high"]) == mutation.wilson_interval(8, 10)
    [row] = mutation.summarise(results, {}, {"diffmath.x": 10})
    assert not row["sampled"] and row["low"] == row["high"] == 0.8


def test_clear_memos_forgets_derivations_and_function_caches():
    """A memoised derivation would hide a mutant of its builder (and make the coverage map credit the first test only)."""
    from diffmath.claims import part16, registry

    claim = registry._REGISTRY["C16.3"]
    first = claim.derivation
    part16.running_example()
    assert "C16.3" in registry._DERIVATIONS and part16.running_example.cache_info().currsize >= 1
    mutation.clear_memos()
    assert "C16.3" not in registry._DERIVATIONS and part16.running_example.cache_info().currsize == 0
    assert claim.derivation is not first  # built again


def test_seeds_are_not_mutated():
    src = "def f(device):\n    g = generator(device, 218)\n    h = torch.Generator().manual_seed(7 + 1)\n    return 3 * g\n"
    tree = ast.parse(src)
    skip = mutation._skip_nodes(tree.body[0])
    consts = [n for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    assert {n.value for n in consts if id(n) in skip} == {218, 7, 1}
    assert {n.value for n in consts if id(n) not in skip} == {3}


def test_a_mutant_makes_the_stored_results_of_its_own_code_stale(monkeypatch):
    """In a child the mutated module's file counts as changed: a stored result computed by it is not served, one
    computed by other modules still is."""
    from diffmath import cache

    monkeypatch.setattr(cache, "_hash_files", cache._hash_files)  # restored afterwards
    monkeypatch.setattr(cache, "_CODE_VERSION", cache._CODE_VERSION)
    table, whole = cache.code_version(["diffmath.sampler_table"]), cache.code_version()
    mutation._mark_mutated_file(mutation.Mutant("diffmath.claims.part16", "f", 1, 1, 0, "Add->Sub", "a + b", 0))
    assert cache.code_version(["diffmath.sampler_table"]) == table  # the claims are outside the table's code
    assert cache.code_version() != whole
    mutation._mark_mutated_file(mutation.Mutant("diffmath.amed", "f", 1, 1, 0, "Add->Sub", "a + b", 0))
    assert cache.code_version(["diffmath.sampler_table"]) != table  # AMED is inside it
