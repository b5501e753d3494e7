r"""Error vs NFE of every sampler (diffmath.samplers, diffmath.amed) on exact Gaussian mixtures (issue 5).

The measurement itself lives in :mod:`diffmath.sampler_table` (its docstring gives the protocol);
this script runs it, prints the Markdown tables and the paper's orderings, and writes them for the
book (``python -m diffmath.book build`` runs it and includes ``--markdown`` and ``--json``).

    python benchmarks/bench_samplers.py [--dims 2 16 256] [--nfe 3 5 7 9 15 25] [--points 64]
                                        [--train-points 64] [--json out.json] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import json

from diffmath import sampler_table as T


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", type=int, nargs="+", default=[2, 16, 256])
    p.add_argument("--nfe", type=int, nargs="+", default=[3, 5, 7, 9, 15, 25])
    p.add_argument("--points", type=int, default=64)
    p.add_argument("--train-points", type=int, default=64)
    p.add_argument("--amed-max-nfe", type=int, default=9)
    p.add_argument("--ref-tol", type=float, default=1e-8)
    p.add_argument("--device", default=None, help="cpu (default) or cuda")
    p.add_argument("--json")
    p.add_argument("--markdown")
    args = p.parse_args(argv)
    results = T.run(args.dims, args.nfe, args.points, args.train_points, args.amed_max_nfe, args.ref_tol, args.device)
    results["orderings"] = T.orderings(results)
    text = T.markdown(results) + "\n**The article's orderings, as measured in this run**\n\n" + T.summary(results) + "\n"
    print(text)
    for o in results["orderings"]:
        print(o)
    for key, rows in results["train_seconds"].items():
        print(key, "AMED training seconds:", {k: {n: round(s, 2) for n, s in v.items()} for k, v in rows.items()})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
