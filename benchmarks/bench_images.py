"""Exact scores of Gaussian images: the FFT route of diffmath.images against the dense GaussianMixture.

A K = 4 mixture of 64x64 stationary power-law fields (different exponents and means), 1,000 images,
float64: ``ImageMixture.score_at`` (one forward and one inverse FFT for all components) against
``GaussianMixture.score_at`` on the same law with its four 4096 x 4096 covariances (built once from the
dense circulant matrices; its eigendecomposition time is reported separately). Both timed in the same
run, median of ``--repeats`` interleaved repeats; the largest relative difference between the two
scores is reported too.

    python benchmarks/bench_images.py [--n 1000] [--size 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from diffmath.images import GaussianImage, ImageMixture
from diffmath.mixture import GaussianMixture


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    H = args.size
    laws = [GaussianImage.power_law(H, H, al, mean=m) for al, m in ((1.0, -0.5), (2.0, 0.0), (2.5, 0.4), (3.0, 1.0))]
    mix = ImageMixture([0.1, 0.2, 0.3, 0.4], laws)
    x = mix.sample(args.n, generator=torch.Generator().manual_seed(0))
    alpha, sigma = 0.8, 0.6

    t0 = time.perf_counter()
    gm = GaussianMixture(mix.weights, torch.stack([c.mean.reshape(-1) for c in laws]),
                         torch.stack([c.covariance_dense() for c in laws]))
    build = time.perf_counter() - t0

    flat = x.reshape(args.n, -1)
    fast, slow = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        a = mix.score_at(x, alpha, sigma)
        fast.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = gm.score_at(flat, alpha, sigma)
        slow.append(time.perf_counter() - t0)
    diff = ((a.reshape(args.n, -1) - b).abs().max() / b.abs().max()).item()
    tf, ts = statistics.median(fast), statistics.median(slow)
    print(f"K = 4 mixture of {H}x{H} stationary fields, {args.n} images, float64, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"  diffmath.images (FFT):           {tf:.4f} s")
    print(f"  dense GaussianMixture:           {ts:.4f} s   (+ {build:.1f} s once to build and diagonalise)")
    print(f"  ratio dense / FFT:               {ts / tf:.1f}x")
    print(f"  max relative difference:         {diff:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
