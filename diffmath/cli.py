"""The command line: ``diffmath verify`` (the claim ledger), ``diffmath list``, ``diffmath experiments``,
``diffmath bench``, ``diffmath book``.

``diffmath bench SAMPLER ... [--law NAME] [--nfe N ...] [--seeds K] [--points P] [--json PATH]`` runs each sampler
(``diffmath:<name>`` or ``diffusers:<name>``) on a named exact law at the NFE budgets from shared noise and prints
its error against the exact flow, the NFE it spent and its measured order (:mod:`diffmath.bench`).

``diffmath verify [SELECTOR ...] [--json PATH] [--device DEV] [-j N] [--no-cache]`` runs each selected
claim's sympy derivation and numeric check on the best device (cuda when available), prints a line
per claim as it goes and a table at the end, writes the JSON ledger, and exits non-zero if any check
fails. Selectors are claim ids (``C0.3``), parts (``C0``) or chapter names (``toy-lab``). ``-j N``
verifies in N processes (same ledger, same order); outcomes of unchanged code come from the ledger
cache (:mod:`diffmath.cache`) unless ``--no-cache``.

``diffmath experiments list | run [NAME ...] [--device DEV] [--refresh] [--json PATH] | store [NAME ...] | clear [NAME ...]``
lists, computes (or reads from the cache), stores with the code and removes the registered experiments
(:mod:`diffmath.experiments`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from diffmath.device import best_device


def _claims():
    import diffmath.claims as claims  # registers every claim

    return claims


def _code_version() -> str:
    from diffmath.cache import code_version

    return code_version()


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
    jobs = max(1, int(args.jobs or 1))
    use_cache = not args.no_cache
    t_start = time.perf_counter()
    print(f"verifying {len(chosen)} claims on {device}" + (f" in {jobs} processes" if jobs > 1 else ""), flush=True)

    def report(i, claim, outcome):
        note = "cached" if outcome.cached else f"{outcome.seconds:.1f} s"
        print(f"[{i}/{len(chosen)}] {claim.id} {claim.title} ... {outcome.status} ({note})", flush=True)
        if not outcome.passed:
            if outcome.error:
                print(f"    error: {outcome.error}")
            for msg in outcome.derivation_failures:
                print(f"    derivation {msg}")
            if outcome.check is not None:
                for m in outcome.check.measurements:
                    if not m.passed:
                        print(f"    {m.quantity}: {_fmt(m.value)} (needs {m.relation} {_fmt(m.bound)})")

    if jobs == 1:
        outcomes = []
        for i, claim in enumerate(chosen, 1):
            outcome = claims.verify_claim(claim, device, use_cache=use_cache)
            outcomes.append(outcome)
            report(i, claim, outcome)
    else:
        outcomes = _verify_parallel(claims, chosen, str(device), jobs, use_cache, report)
    print(f"\n{len(chosen)} claims in {time.perf_counter() - t_start:.1f} s wall "
          f"({sum(o.cached for o in outcomes)} from the ledger cache)")
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
            "code": _code_version(),
            "claims": [o.as_dict() for o in outcomes],
        }
        path.write_text(json.dumps(ledger, indent=2))
        print(f"ledger written to {path}")
    return 1 if failed else 0


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


def _verify_one(claim_id: str, device: str, use_cache: bool) -> dict:
    claims = _claims()
    return claims.verify_claim(claims.get(claim_id), torch.device(device), use_cache=use_cache).as_dict()


def _verify_parallel(claims, chosen, device: str, jobs: int, use_cache: bool, report) -> list:
    """Verify ``chosen`` in ``jobs`` processes (spawned: each imports the registry); the outcomes come back in
    the claims' order, whatever order they finish in. Each process gets an equal share of the CPU threads."""
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // jobs)
    ctx = multiprocessing.get_context("spawn")
    results: dict[str, object] = {}
    # claims that read an experiment first: a long experiment then overlaps the other claims
    order = sorted(chosen, key=lambda c: not c.experiments)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init, initargs=(threads,)) as pool:
        futures = {pool.submit(_verify_one, c.id, device, use_cache): c for c in order}
        done = 0
        for fut in as_completed(futures):
            claim = futures[fut]
            done += 1
            try:
                outcome = claims.Outcome.from_dict(claim, fut.result())
            except Exception as exc:  # a crashed worker is a failed claim, not a crashed ledger
                outcome = claims.Outcome(claim=claim, derivation_ok=None, error=f"{type(exc).__name__}: {exc}")
            results[claim.id] = outcome
            report(done, claim, outcome)
    return [results[c.id] for c in chosen]


def cmd_experiments(args) -> int:
    from diffmath import experiments as E

    if args.action == "list":
        for exp in E.all_experiments():
            state = "cached" if E.is_cached(exp.name, device=args.device) else "not computed"
            print(f"{exp.name:<20} v{exp.version}  [{state}; stored: {E.stored_state(exp.name)}]  {exp.description}")
        return 0
    if args.action == "clear":
        print(f"removed {E.clear(args.names)} cache files")
        return 0
    if args.action == "store":
        for path in E.store(args.names):
            print(f"stored {path} (commit it with the code that computed it)")
        return 0
    names = args.names or [e.name for e in E.all_experiments()]
    out = {}
    for name in names:
        t0 = time.perf_counter()
        was = E.is_cached(name, device=args.device)
        out[name] = E.result(name, device=args.device, refresh=args.refresh)
        state = "read from the cache" if was and not args.refresh else "computed"
        print(f"{name}: {state} in {time.perf_counter() - t0:.1f} s", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out if len(out) > 1 else out[names[0]], indent=2))
        print(f"written to {args.json}")
    return 0


def cmd_bench(args) -> int:
    from diffmath import bench as B

    try:
        law = B.named_law(args.law)
        samplers = [B.named_sampler(n) for n in args.samplers]
    except ValueError as e:
        print(f"diffmath bench: {e}", file=sys.stderr)
        return 2
    progress = None if args.quiet else (lambda msg: print(f"  {msg}", file=sys.stderr, flush=True))
    out = []
    for s in samplers:
        res = B.bench(s, law, args.nfe, law_name=args.law, seeds=args.seeds, points=args.points, progress=progress)
        print(res.table())
        if res.skipped:
            print(f"(no number of steps fits the budgets {res.skipped})\n")
        out.append(res.to_dict())
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(f"written to {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffmath", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="run the claim checks and write the ledger")
    v.add_argument("selectors", nargs="*", help="claim ids (C0.3), parts (C0) or chapters (toy-lab)")
    v.add_argument("--json", metavar="PATH", help="write the JSON ledger here")
    v.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    v.add_argument("-j", "--jobs", type=int, default=1, help="verify in this many processes (default 1)")
    v.add_argument("--no-cache", action="store_true", help="recompute every claim instead of reading the ledger cache")
    v.set_defaults(func=cmd_verify)
    ex = sub.add_parser("experiments", help="list, run, store or clear the cached experiments")
    ex.add_argument("action", choices=("list", "run", "store", "clear"),
                    help="store: write diffmath/_stored/experiments/NAME.json, the result committed with the code")
    ex.add_argument("names", nargs="*", help="experiment names (default: all)")
    ex.add_argument("--device", default=None, help="cpu (default) or cuda")
    ex.add_argument("--refresh", action="store_true", help="recompute even when cached")
    ex.add_argument("--json", metavar="PATH", help="write the result(s) here")
    ex.set_defaults(func=cmd_experiments)
    ls = sub.add_parser("list", help="list the registered claims")
    ls.add_argument("selectors", nargs="*")
    ls.set_defaults(func=cmd_list)
    bn = sub.add_parser("bench", help="run samplers on an exact law at given NFEs and print their error against the exact flow")
    bn.add_argument("samplers", nargs="+", help="diffmath:<sampler> (euler, heun, dpmpp_2m, ...) or diffusers:<name> (ddim, dpm++2m, ...)")
    bn.add_argument("--law", default="mixture-2d", help="mixture-2d (default), mixture-16d, image-8x8, empirical-2d")
    bn.add_argument("--nfe", type=int, nargs="+", default=[5, 10, 20, 40], help="NFE budgets (default 5 10 20 40)")
    bn.add_argument("--seeds", type=int, default=4, help="noise seeds per budget (default 4)")
    bn.add_argument("--points", type=int, default=128, help="points per seed (default 128)")
    bn.add_argument("--json", metavar="PATH", help="write the results here")
    bn.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    bn.set_defaults(func=cmd_bench)
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
