r"""Error vs NFE of every sampler (diffmath.samplers, diffmath.amed) on exact Gaussian mixtures (issue 5).

The measurement lives in :mod:`diffmath.sampler_table` (its docstring gives the protocol) and is the
``sampler-table`` experiment of :mod:`diffmath.experiments`: computed once per configuration, device
and code version, and cached; the book, claim C21.12 and this script all read it from there. This
script prints the Markdown tables and the paper's orderings, and writes them if asked.

    python benchmarks/bench_samplers.py [--dims 2 16 256] [--nfe 3 5 7 9 15 25] [--points 64]
                                        [--train-points 64] [--frechet-seeds 5] [--frechet-points 256]
                                        [--device cuda] [--refresh]
                                        [--json out.json] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import json

from diffmath import experiments
from diffmath import sampler_table as T


def main(argv=None) -> int:
    d = T.DEFAULTS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", type=int, nargs="+", default=d["dims"])
    p.add_argument("--nfe", type=int, nargs="+", default=d["nfes"])
    p.add_argument("--points", type=int, default=d["points"])
    p.add_argument("--train-points", type=int, default=d["train_points"])
    p.add_argument("--amed-max-nfe", type=int, default=d["amed_max_nfe"])
    p.add_argument("--ref-tol", type=float, default=d["ref_tol"])
    p.add_argument("--frechet-max-dim", type=int, default=d["frechet_max_dim"], help="the Frechet column up to this dimension")
    p.add_argument("--frechet-seeds", type=int, default=d["frechet_seeds"], help="noise sets of the Frechet column")
    p.add_argument("--frechet-points", type=int, default=d["frechet_points"], help="points per noise set of the Frechet column")
    p.add_argument("--device", default=None, help="cpu (default) or cuda")
    p.add_argument("--refresh", action="store_true", help="recompute even if the cache holds this configuration")
    p.add_argument("--json")
    p.add_argument("--markdown")
    args = p.parse_args(argv)
    config = {"dims": args.dims, "nfes": args.nfe, "points": args.points, "train_points": args.train_points,
              "amed_max_nfe": args.amed_max_nfe, "ref_tol": args.ref_tol, "frechet_max_dim": args.frechet_max_dim,
              "frechet_seeds": args.frechet_seeds, "frechet_points": args.frechet_points}
    results = experiments.result("sampler-table", config, args.device, refresh=args.refresh)
    text = experiments.get("sampler-table").markdown(results)
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
