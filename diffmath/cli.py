"""The command line: ``diffmath verify`` (the claim ledger), ``diffmath list``, ``diffmath book``.

``diffmath verify [SELECTOR ...] [--json PATH] [--device DEV]`` runs each selected claim's sympy
derivation and numeric check on the best device (cuda when available), prints a line per claim as
it goes and a table at the end, writes the JSON ledger, and exits non-zero if any check fails.
Selectors are claim ids (``C0.3``), parts (``C0``) or chapter names (``toy-lab``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch

from diffmath.device import best_device


def _claims():
    import diffmath.claims as claims  # registers every claim

    return claims


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _slack(m) -> float:
    """How far a measurement is from its bound, relative to the bound (smaller = tighter)."""
    gap = m.bound - m.value if m.relation == "<=" else m.value - m.bound
    return gap / abs(m.bound) if m.bound else gap


def cmd_list(args) -> int:
    claims = _claims()
    chosen = claims.select(args.selectors)
    width = max(len(c.id) for c in chosen)
    for c in chosen:
        print(f"{c.id:<{width}}  {c.kind.value:<10}  {c.chapter:<10}  {c.title}")
    print(f"{len(chosen)} claims")
    return 0


def cmd_verify(args) -> int:
    claims = _claims()
    try:
        chosen = claims.select(args.selectors)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    device = torch.device(args.device) if args.device else best_device()
    print(f"verifying {len(chosen)} claims on {device}", flush=True)
    outcomes = []
    for i, claim in enumerate(chosen, 1):
        print(f"[{i}/{len(chosen)}] {claim.id} {claim.title} ...", end=" ", flush=True)
        outcome = claims.verify_claim(claim, device)
        outcomes.append(outcome)
        print(f"{outcome.status} ({outcome.seconds:.1f} s)", flush=True)
        if not outcome.passed:
            if outcome.error:
                print(f"    error: {outcome.error}")
            for msg in outcome.derivation_failures:
                print(f"    derivation {msg}")
            if outcome.check is not None:
                for m in outcome.check.measurements:
                    if not m.passed:
                        print(f"    {m.quantity}: {_fmt(m.value)} (needs {m.relation} {_fmt(m.bound)})")
    print()
    print(f"{'claim':<7} {'kind':<10} {'status':<9} {'sympy':<6} {'worst measurement (value / bound)'}")
    for o in outcomes:
        sym = "-" if o.derivation_ok is None else ("ok" if o.derivation_ok else "FAIL")
        worst = ""
        if o.check is not None and o.check.measurements:
            m = min(o.check.measurements, key=lambda m: (m.passed, _slack(m)))
            worst = f"{_fmt(m.value)} {m.relation} {_fmt(m.bound)}  {m.quantity}"
        print(f"{o.claim.id:<7} {o.claim.kind.value:<10} {o.status:<9} {sym:<6} {worst}")
    failed = [o for o in outcomes if not o.passed]
    counts = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    print("\n" + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        ledger = {
            "device": str(device),
            "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__,
            "claims": [o.as_dict() for o in outcomes],
        }
        path.write_text(json.dumps(ledger, indent=2))
        print(f"ledger written to {path}")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffmath", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="run the claim checks and write the ledger")
    v.add_argument("selectors", nargs="*", help="claim ids (C0.3), parts (C0) or chapters (toy-lab)")
    v.add_argument("--json", metavar="PATH", help="write the JSON ledger here")
    v.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    v.set_defaults(func=cmd_verify)
    ls = sub.add_parser("list", help="list the registered claims")
    ls.add_argument("selectors", nargs="*")
    ls.set_defaults(func=cmd_list)
    bk = sub.add_parser("book", help="generate the claim pages or build the book (see python -m diffmath.book -h)")
    bk.add_argument("book_args", nargs=argparse.REMAINDER, help="generate|build [options]")
    bk.set_defaults(func=cmd_book)
    return parser


def cmd_book(args) -> int:
    from diffmath import book

    return book.main(args.book_args)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
