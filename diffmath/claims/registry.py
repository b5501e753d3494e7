"""The claim registry: one source of truth for every claim the suite checks.

A :class:`Claim` carries its statement (MyST/LaTeX), its source (article part, equation, paper),
its kind, an optional :class:`~diffmath.symbolic.Derivation` checked by sympy, and an optional
numeric check. The book, the ``diffmath verify`` ledger and pytest all read claims from here;
nothing restates a claim by hand elsewhere.

Ids follow ``C<part>.<n>``: the article's part number and a running number within it, matching
the catalogue in ``shared/claims/`` where a claim comes from there. Part ``0`` is the toy lab, the
library's own foundations (the exact Gaussian-mixture facts every chapter stands on). The multimodal
essay (kexue.fm 9984) is not a part of the series, and the series has a part 25 of its own, so its
claims keep the catalogue's ids ``M.<n>`` and sort after every ``C`` claim. Running numbers start at
1; neither number has a leading zero (so that ``C22.5`` and ``C22.05`` cannot both exist).
"""

from __future__ import annotations

import enum
import math
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import torch

from diffmath.claims.controls import Plant
from diffmath.symbolic import Derivation

_ID = re.compile(r"(?:C(0|[1-9]\d*)|(M))\.([1-9]\d*)")  # used with fullmatch: no trailing newline either
ID_RULE = "'C<part>.<n>' (a part of the series) or 'M.<n>' (the multimodal essay), n >= 1, no leading zeros"
ESSAY = "M"
"""The id prefix (and selector) of the multimodal essay's claims."""
_DERIVATIONS: dict = {}


class Kind(str, enum.Enum):
    """What sort of statement a claim is, and so what its check may assert."""

    IDENTITY = "identity"  #: an exact equality; checked to float64 precision
    INEQUALITY = "inequality"  #: an exact inequality; checked with a stated slack
    LIMIT = "limit"  #: an asymptotic statement; checked along a sequence
    EMPIRICAL = "empirical"  #: measured and reported; only what is guaranteed is asserted
    REFUTED = "refuted"  #: false as stated; the check asserts the counterexample
    DOCUMENTED = "documented"  #: a statement about practice, not mathematics: recorded with its source, not checked


@dataclass(frozen=True)
class Source:
    """Where a claim comes from.

    ``part`` is the article's number in the series (``None`` for the library's own facts),
    ``equation`` the article's equation label as the catalogue numbers it, ``paper`` a citation key
    of ``book/references.bib`` (or free text).
    """

    part: Optional[int] = None
    equation: Optional[str] = None
    paper: Optional[str] = None
    note: Optional[str] = None

    def describe(self) -> str:
        bits = []
        if self.part is not None:
            bits.append(f"part {self.part}")
        if self.equation:
            bits.append(f"eq. {self.equation}")
        if self.paper:
            bits.append(self.paper)
        if self.note:
            bits.append(self.note)
        return ", ".join(bits) if bits else "diffmath"


@dataclass(frozen=True)
class Measurement:
    """One measured quantity of a check and the bound it must respect.

    ``relation`` is ``"<="`` (value ≤ bound: errors, |z|-scores) or ``">="`` (value ≥ bound).
    ``passed`` is computed, never given.
    """

    quantity: str
    value: float
    bound: float
    relation: str = "<="
    note: str = ""

    def __post_init__(self):
        if self.relation not in ("<=", ">="):
            raise ValueError(f"relation must be '<=' or '>=', got {self.relation!r}")

    @property
    def passed(self) -> bool:
        v = float(self.value)
        if not math.isfinite(v):
            return False
        return v <= self.bound if self.relation == "<=" else v >= self.bound

    def as_dict(self) -> dict:
        return {
            "quantity": self.quantity,
            "value": float(self.value),
            "bound": float(self.bound),
            "relation": self.relation,
            "passed": self.passed,
            "note": self.note,
        }


@dataclass(frozen=True)
class CheckResult:
    """What a numeric check measured, on which device, and whether every measurement passed."""

    measurements: tuple[Measurement, ...]
    setting: str = ""
    device: str = "cpu"

    @property
    def passed(self) -> bool:
        return len(self.measurements) > 0 and all(m.passed for m in self.measurements)

    def as_dict(self) -> dict:
        return {
            "setting": self.setting,
            "device": self.device,
            "passed": self.passed,
            "measurements": [m.as_dict() for m in self.measurements],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "CheckResult":
        """The inverse of :meth:`as_dict` (``passed`` is recomputed from the measurements, never read)."""
        ms = tuple(
            Measurement(m["quantity"], m["value"], m["bound"], m.get("relation", "<="), m.get("note", ""))
            for m in d.get("measurements", [])
        )
        return cls(ms, d.get("setting", ""), d.get("device", "cpu"))


CheckFn = Callable[[torch.device], CheckResult]


@dataclass(frozen=True)
class Claim:
    """A mathematical claim with everything needed to check and present it."""

    id: str
    title: str
    statement: str
    source: Source
    kind: Kind
    chapter: str
    derive: Optional[Callable[[], Derivation]] = None
    check: Optional[CheckFn] = None
    tests: tuple[str, ...] = ()
    remark: str = ""
    erratum: str = ""
    """For a claim that holds but that the article states imprecisely (a wrong coefficient, an
    inverted sentence, a missing assumption): what the article says and what is right. Listed on
    the errata page with the refuted claims."""
    extension: str = ""
    """For a claim the article gets right and the suite sharpens or generalises: what the article
    says and what is added. Listed on the errata page in its own group."""
    experiments: tuple[str, ...] = ()
    """Names of the :mod:`diffmath.experiments` whose results the check reads (computed once, cached);
    ``diffmath verify -j`` starts these claims first, so that long experiments overlap the rest."""
    devices: tuple[str, ...] = ("cpu", "cuda")
    """The device types the numeric check computes on. A CPU-only check (exact arithmetic, or work too
    small for a GPU) runs on the CPU whatever device is asked for, and its result records ``cpu``;
    :func:`verify_claim` checks that a result's device is the one asked for when the claim claims it."""
    plants: tuple[Plant, ...] = ()
    """Negative controls (:mod:`diffmath.claims.controls`): small mistakes in library functions the check
    relies on, each of which must make the check fail."""

    def __post_init__(self):
        if not _ID.fullmatch(self.id):
            raise ValueError(f"claim id must look like {ID_RULE}, got {self.id!r}")
        if not isinstance(self.kind, Kind):
            raise ValueError(f"kind must be a diffmath.claims.Kind, got {self.kind!r}")
        if not self.devices or not set(self.devices) <= {"cpu", "cuda"} or "cpu" not in self.devices:
            raise ValueError(f"claim {self.id}: devices must include 'cpu' and be among ('cpu', 'cuda'), got {self.devices!r}")
        if self.kind is Kind.DOCUMENTED:
            if self.derive is not None or self.check is not None:
                raise ValueError(f"claim {self.id} is documented (not checkable): it takes no derivation or check")
        elif self.derive is None and self.check is None:
            raise ValueError(f"claim {self.id} has neither a derivation nor a numeric check")
        if self.plants and self.check is None:
            raise ValueError(f"claim {self.id} has plants but no numeric check for them to fail")
        if not all(isinstance(p, Plant) for p in self.plants):
            raise ValueError(f"claim {self.id}: plants must be diffmath.claims.controls.Plant, got {self.plants!r}")

    @property
    def derivation(self) -> Optional[Derivation]:
        """The claim's sympy derivation, built on first use (building may call sympy)."""
        if self.derive is None:
            return None
        if self.id not in _DERIVATIONS:
            _DERIVATIONS[self.id] = self.derive()
        return _DERIVATIONS[self.id]

    @property
    def sort_key(self) -> tuple[int, int, int]:
        """``(0, part, n)`` for ``C<part>.<n>``, ``(1, 0, n)`` for the essay's ``M.<n>``: the series in
        order of its parts, then the essay (numbers compared as numbers: C23.9 before C23.10)."""
        m = _ID.fullmatch(self.id)
        if m.group(2):
            return 1, 0, int(m.group(3))
        return 0, int(m.group(1)), int(m.group(3))

    @property
    def part(self) -> Optional[int]:
        """The part of the series the id names (``C22.5`` -> 22), ``None`` for the essay's ``M.<n>``."""
        m = _ID.fullmatch(self.id)
        return None if m.group(2) else int(m.group(1))

    @property
    def label(self) -> str:
        """The Sphinx label of the claim's theorem block in the book."""
        return "claim-" + self.id.replace(".", "-")


@dataclass
class Outcome:
    """The result of verifying one claim: its derivation and its numeric check."""

    claim: Claim
    derivation_ok: Optional[bool]
    derivation_failures: list[str] = field(default_factory=list)
    check: Optional[CheckResult] = None
    error: Optional[str] = None
    seconds: float = 0.0
    cached: bool = False
    """Whether this outcome was read from the ledger cache (computed by an earlier run of the same code)."""

    @property
    def passed(self) -> bool:
        if self.error is not None:
            return False
        if self.derivation_ok is False:
            return False
        if self.check is not None and not self.check.passed:
            return False
        return True

    @property
    def status(self) -> str:
        """``verified`` / ``refuted`` (a verified counterexample) / ``empirical`` / ``documented`` / ``failed``."""
        if not self.passed:
            return "failed"
        if self.claim.kind is Kind.DOCUMENTED:
            return "documented"
        if self.claim.kind is Kind.REFUTED:
            return "refuted"
        if self.claim.kind is Kind.EMPIRICAL:
            return "empirical"
        return "verified"

    def as_dict(self) -> dict:
        c = self.claim
        return {
            "id": c.id,
            "title": c.title,
            "chapter": c.chapter,
            "kind": c.kind.value,
            "source": c.source.describe(),
            "status": self.status,
            "passed": self.passed,
            "derivation": None
            if self.derivation_ok is None
            else {"passed": self.derivation_ok, "failures": self.derivation_failures},
            "check": None if self.check is None else self.check.as_dict(),
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "cached": self.cached,
            "tests": list(c.tests),
        }

    @classmethod
    def from_dict(cls, claim: "Claim", d: dict) -> "Outcome":
        """An outcome rebuilt from :meth:`as_dict` for ``claim`` (statuses are recomputed, never read)."""
        if d.get("id") != claim.id:
            raise ValueError(f"outcome of {d.get('id')!r} given for claim {claim.id}")
        der = d.get("derivation")
        return cls(
            claim=claim,
            derivation_ok=None if der is None else bool(der["passed"]),
            derivation_failures=list(der["failures"]) if der else [],
            check=None if d.get("check") is None else CheckResult.from_dict(d["check"]),
            error=d.get("error"),
            seconds=float(d.get("seconds", 0.0)),
            cached=bool(d.get("cached", False)),
        )


_REGISTRY: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    """Add a claim to the registry; a second claim with the same id is an error."""
    if claim.id in _REGISTRY and _REGISTRY[claim.id] is not claim:
        raise ValueError(f"claim id {claim.id} is registered twice")
    _REGISTRY[claim.id] = claim
    return claim


def all_claims() -> list[Claim]:
    """Every registered claim, ordered by part and number."""
    return sorted(_REGISTRY.values(), key=lambda c: c.sort_key)


def get(claim_id: str) -> Claim:
    try:
        return _REGISTRY[claim_id]
    except KeyError:
        raise KeyError(f"no claim with id {claim_id!r}; known: {', '.join(c.id for c in all_claims())}")


def chapters() -> list[str]:
    seen: list[str] = []
    for c in all_claims():
        if c.chapter not in seen:
            seen.append(c.chapter)
    return seen


def select(selectors: Iterable[str] = ()) -> list[Claim]:
    """Claims matching any selector: a claim id (``C0.3``, ``M.4``), a part (``C0`` or ``0``), ``M`` (every
    claim of the multimodal essay) or a chapter name.

    No selector selects every claim. An unknown selector raises ``ValueError``.
    """
    selectors = list(selectors)
    claims = all_claims()
    if not selectors:
        return claims
    chosen: list[Claim] = []
    for s in selectors:
        if s in _REGISTRY:
            hits = [_REGISTRY[s]]
        elif re.fullmatch(r"C?\d+", s):
            part = int(s.lstrip("C"))
            hits = [c for c in claims if c.part == part]
        elif s == ESSAY:
            hits = [c for c in claims if c.part is None]
        else:
            hits = [c for c in claims if c.chapter == s]
        if not hits:
            raise ValueError(
                f"selector {s!r} matches no claim (ids: C<part>.<n> or M.<n>; parts: C<part>; the essay: M; "
                f"chapters: {', '.join(chapters())})"
            )
        chosen.extend(h for h in hits if h not in chosen)
    return sorted(chosen, key=lambda c: c.sort_key)


LEDGER_NAMESPACE = "ledger"


def verify_claim(claim: Claim, device, *, use_cache: bool = True) -> Outcome:
    """A claim's outcome on ``device``: from the ledger cache (:mod:`diffmath.cache`) when this exact code
    already verified it there, else computed by :func:`run_claim`.

    Only passing outcomes are cached (keyed by claim id, device and the library's code version), so a
    failure is always recomputed and any edit of the library recomputes everything. ``use_cache=False``
    (``diffmath verify --no-cache``, ``DIFFMATH_CACHE=off``) always computes."""
    from diffmath import cache

    if not use_cache:
        return run_claim(claim, device)
    key = {"claim": claim.id, "device": str(torch.device(device)), "code": cache.code_version()}
    value, hit = cache.cached(
        LEDGER_NAMESPACE, key, lambda: run_claim(claim, device).as_dict(), keep=lambda d: bool(d["passed"])
    )
    outcome = Outcome.from_dict(claim, value)
    outcome.cached = hit
    return outcome


def run_claim(claim: Claim, device) -> Outcome:
    """Run a claim's derivation (sympy) and numeric check; exceptions become a failed outcome.

    A CPU-only claim (``devices == ("cpu",)``) is run on the CPU whatever ``device`` is; otherwise the
    check's result must say it ran on ``device`` (a result saying ``cpu`` for a cuda request is an error:
    the claim should declare itself CPU-only)."""
    device = torch.device(device)
    if device.type not in claim.devices:
        device = torch.device("cpu")
    t0 = time.perf_counter()
    outcome = Outcome(claim=claim, derivation_ok=None)
    try:
        if claim.derive is not None:
            failures = claim.derivation.failures()
            outcome.derivation_ok = not failures
            outcome.derivation_failures = failures
        if claim.check is not None:
            outcome.check = claim.check(device)
            ran = torch.device(outcome.check.device).type
            if ran != device.type:
                raise ValueError(f"the check was asked to run on {device.type} but says it ran on {ran}; "
                                 "declare devices=('cpu',) on a CPU-only claim")
    except Exception as exc:  # a crashing check is a failed check, reported with its message
        outcome.error = f"{type(exc).__name__}: {exc}"
    outcome.seconds = time.perf_counter() - t0
    return outcome
