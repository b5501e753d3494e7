"""Score of a Gaussian mixture: diffmath against torch.distributions + autograd, in one run.

Setting (issue 2): K = 16 components, d = 64, full covariances, 20,000 points, float64.
Reference: ``MixtureSameFamily(Categorical, MultivariateNormal)``, score by autograd of log_prob.
Reports the median time of each over interleaved repeats, their ratio, and the largest relative
difference of the two scores. Target: ratio >= 5 and difference <= 1e-10.

    python benchmarks/bench_score.py [--device cuda] [--repeats 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import diffmath as dm
from diffmath.toys import random_mixture


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--points", type=int, default=20_000)
    p.add_argument("--json")
    args = p.parse_args(argv)
    device = torch.device(args.device) if args.device else dm.best_device()

    K, d, n = 16, 64, args.points
    gm = random_mixture(K, d, cov_type="full", seed=0, device=device)
    x = gm.sample(n, generator=torch.Generator(device=device).manual_seed(1))
    D = torch.distributions
    ref = D.MixtureSameFamily(
        D.Categorical(probs=gm.weights), D.MultivariateNormal(gm.means, covariance_matrix=gm.covariances())
    )

    def ours():
        return gm.score(x)

    def theirs():
        xx = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(ref.log_prob(xx).sum(), xx)
        return g

    times = {"diffmath": [], "torch.distributions+autograd": []}
    ours(), theirs()  # warm up (and build the precision stack once, as any caller would)
    for _ in range(args.repeats):
        for name, fn in (("diffmath", ours), ("torch.distributions+autograd", theirs)):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    a, b = ours(), theirs()
    rel = ((a - b).abs().max() / b.abs().max()).item()
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["torch.distributions+autograd"] / med["diffmath"]
    result = {
        "setting": f"K={K}, d={d}, full covariances, {n} points, float64",
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "median_seconds": med,
        "speedup": ratio,
        "max_relative_difference": rel,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
