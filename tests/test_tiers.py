"""The quick tier (``-m "not slow"``) still touches every module of the library.

Every module of ``diffmath/`` is imported by some test file that has at least one test not marked
slow, and every claim module has at least one claim whose check runs in the quick tier.
"""

import re
from pathlib import Path

from diffmath.claims import all_claims

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "diffmath"


def _quick_test_files() -> dict[str, str]:
    """Test files with at least one test function not marked slow (text of each)."""
    out = {}
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        text = path.read_text()
        if re.search(r"^pytestmark\s*=.*slow", text, re.M):
            continue
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("def test_"):
                decorators = []
                j = i - 1
                while j >= 0 and (lines[j].startswith("@") or lines[j].startswith("    ") or lines[j].startswith(")")):
                    decorators.append(lines[j])
                    j -= 1
                if not any("mark.slow" in d for d in decorators):
                    out[path.name] = text
                    break
    return out


def test_every_module_is_exercised_by_the_quick_tier():
    quick = _quick_test_files()
    modules = [p.stem for p in PKG.glob("*.py") if p.stem not in ("__init__", "__main__")]
    missing = []
    for mod in modules:
        pattern = re.compile(rf"diffmath\.{mod}\b|from diffmath import [^\n]*\b{mod}\b|from diffmath\.{mod} import")
        if not any(pattern.search(text) for text in quick.values()):
            missing.append(mod)
    assert not missing, f"modules no quick test imports: {missing}"


def test_every_claim_module_has_a_quick_claim():
    from tests.test_claims import SLOW

    by_module = {}
    for c in all_claims():
        fn = c.check or c.derive
        if fn is None:
            continue
        by_module.setdefault(fn.__module__, []).append(c.id)
    lonely = [m for m, ids in by_module.items() if all(i in SLOW for i in ids)]
    assert not lonely, f"claim modules whose every claim is slow: {lonely}"
