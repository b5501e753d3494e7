r"""The multimodal essay (kexue.fm 9984, "闭门造车"之多模态思路浅谈（一）：无损输入): claims M.1-M.9.

The essay is not a part of the series (whose own part 25 exists), so its claims keep the catalogue's
ids ``M.<n>`` (``shared/claims/parts-21-24-and-essay.md`` §5). It has two numbered equations: (1) a
conditional density integrates to 1; (2) the lossless token budget :math:`L\log_2V\ge64\cdot64\cdot3\cdot3`.
Sections are named as in the English translation, with the original's heading: "Problem background"
(问题背景), "The path of discreteness" (离散之路), "Compression loss" (压缩损失), "Diffusion models"
(扩散模型), "Patch input" (Patch输入).

Images are ``(C, H, W)`` tensors; a tokenizer that downsamples by :math:`f` emits one token per
:math:`f\times f` patch (all channels together), which :func:`diffmath.snr.patchify` lays out as the
patch's :math:`Cf^2` numbers. Every check is exact (integer, rational or float64 arithmetic on the CPU).
The information budget of the toy images is :mod:`diffmath.information`; :data:`TOY` is the chapter's law.
"""

from __future__ import annotations

import math
from fractions import Fraction

import sympy as sp
import torch

from diffmath import information as info
from diffmath import snr
from diffmath.claims._helpers import generator
from diffmath.claims.controls import Plant
from diffmath.claims.registry import CheckResult, Claim, Kind, Measurement, Source, register
from diffmath.images import GaussianImage
from diffmath.symbolic import Derivation, Hypothesis, Step

CHAPTER = "multimodal-lossless-input"
T = "tests/test_essay_multimodal.py::"
ESSAY = "su-multimodal-1"
EXACT = 1e-12  # float64 evaluations of exact expressions (a few ulps)

ARTICLE_BITS_PER_DIM = 3
"""The essay's entropy of ImageNet-64 in bits per subpixel: the measured 3.44 rounded down."""
MEASURED_BITS_PER_DIM = Fraction(344, 100)
"""The Sparse Transformer's ImageNet-64 result, 3.44 bits per subpixel (the essay writes bits/byte)."""
IMAGENET64 = (3, 64, 64)
TOKEN_LENGTHS = (1024, 256)
"""The essay's two sequence lengths, :math:`32\times32` and :math:`16\times16` tokens."""

TOY = {
    "size": 64,  # ImageNet-64's side, so that the toy's budget is comparable with eq. (2)
    "channels": 3,  # independent copies of one law (real RGB channels are strongly correlated)
    "alpha": 2.0,  # power-law spectrum 1/|f|^alpha: natural images have about 2
    "pixel_std": 57.0,  # grey levels: about ImageNet's per-channel std (0.224 x 255)
    "mean": 116.0,  # grey levels: about ImageNet's mean (0.456 x 255); the entropy does not depend on it
    "delta": 1.0,  # the bin of an 8-bit quantiser, in grey levels
}
"""The chapter's toy image law: a stationary Gaussian field in grey levels, quantised to 8 bits."""


def toy_law(alpha: float | None = None, size: int | None = None) -> GaussianImage:
    """The chapter's toy law (:data:`TOY`), optionally with another spectral exponent or side."""
    n = TOY["size"] if size is None else size
    a = TOY["alpha"] if alpha is None else alpha
    return GaussianImage.power_law(n, n, a, variance=TOY["pixel_std"] ** 2, mean=TOY["mean"], channels=TOY["channels"])


def _distinct_image(C: int, n: int) -> torch.Tensor:
    """A ``(C, n, n)`` image whose subpixels are all different (0, 1, 2, ...), to follow them through a reshape."""
    return torch.arange(C * n * n, dtype=torch.float64).reshape(C, n, n)


def _patch_errors(x: torch.Tensor, p: int) -> tuple[tuple[int, ...], float, bool]:
    """``patchify(x, p)``'s shape; the largest difference between its patch (1, 2) and the image block it should
    hold (read off ``x`` by slicing); whether it is a permutation of ``x``'s values."""
    y = snr.patchify(x, p)
    a, b = 1, 2
    block = x[:, p * a : p * a + p, p * b : p * b + p].reshape(-1)
    same = torch.equal(y.reshape(-1).sort().values, x.reshape(-1).sort().values)
    return tuple(y.shape), (y[a, b] - block).abs().max().item(), same


_c, _i, _j, _a, _b = sp.symbols("c i j a b", integer=True)
_n, _m, _f = sp.symbols("n m f", positive=True, integer=True)


def _count(channels, rows, cols) -> sp.Sum:
    """The number of subpixels of a ``channels x rows x cols`` image as an unevaluated sum of ones."""
    return sp.Sum(1, (_c, 1, channels), (_i, 1, rows), (_j, 1, cols))


# --- M.1 an n x n RGB image is a sentence of 3n^2 bytes ---------------------------------------------
def _derive_m1() -> Derivation:
    V = sp.symbols("V", positive=True)
    return Derivation(
        [
            Step(_count(3, _n, _n), 3 * _n**2, why="one number per channel, row and column",
                 lhs_tex=r"\sum_{c=1}^{3}\sum_{i=1}^{n}\sum_{j=1}^{n}1", rhs_tex=r"3n^2"),
            Step(sp.Subs(3 * _n**2, _n, 256), 196608, why="at n = 256", lhs_tex=r"3n^2\big|_{n=256}", rhs_tex=r"196\,608"),
            Step(sp.Subs(sp.log(V, 2), V, 256), 8, why="a vocabulary of 256 values is one byte per subpixel",
                 lhs_tex=r"\log_2 V\big|_{V=256}", rhs_tex=r"8\ \text{bits}"),
        ],
        setting=r"An $n\times n$ RGB image with 8-bit subpixels read as a sentence, one token per subpixel.",
    )


def _check_m1(device) -> CheckResult:
    img = torch.zeros(3, 256, 256, dtype=torch.uint8)
    length = img.reshape(-1).numel()
    vocab = torch.iinfo(torch.uint8).max - torch.iinfo(torch.uint8).min + 1
    article = 200_000  # "20万"
    return CheckResult(
        (
            Measurement("|length of a flattened 3 x 256 x 256 uint8 image - 3 n^2|", abs(length - 3 * 256**2), 0.0),
            Measurement("|values a uint8 subpixel takes - 256|", abs(vocab - 256), 0.0),
            Measurement("|article's 20万 - 196,608| in units of its last digit (10^5)", abs(article - length) / 1e5, 0.5),
        ),
        setting=f"n = 256: {length:,} subpixels; the article's 200,000 is {length:,} rounded to one significant figure "
        f"({(article - length) / length:.1%} above)",
        device="cpu",
    )


register(
    Claim(
        id="M.1",
        devices=("cpu",),  # exact arithmetic
        title="An n×n RGB image is a sentence of 3n² tokens from a vocabulary of 256; 196,608 at n = 256",
        statement=r"An $n\times n$ RGB image is $3n^2$ integers in $[0,255]$: a sentence of length $3n^2$ over a vocabulary "
        r"of $256$. At $n=256$, $3n^2=196\,608$, which the essay rounds to $2\times10^5$ (“20万”) autoregressive steps.",
        source=Source(paper=ESSAY, note="section 'The path of discreteness' (离散之路)"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_m1,
        check=_check_m1,
        tests=(T + "test_sentence_length_property",),
    )
)


# --- M.2 a 4x-downsampling tokenizer shortens the sentence 48-fold ------------------------------------
def _derive_m2() -> Derivation:
    return Derivation(
        [
            Step(_count(3, _f * _m, _f * _m) / sp.Sum(1, (_a, 1, _m), (_b, 1, _m)), 3 * _f**2,
                 why="3n^2 subpixels over (n/f)^2 tokens, n = f m: the ratio does not depend on n",
                 lhs_tex=r"\frac{\sum_{c\le3,\,i,j\le fm}1}{\sum_{a,b\le m}1}", rhs_tex=r"3f^2"),
            Step(sp.Subs(3 * _f**2, _f, 4), 48, why="downsampling each side by f = 4", lhs_tex=r"3f^2\big|_{f=4}", rhs_tex="48"),
        ],
        setting=r"An $n\times n$ RGB image, $n=fm$; a tokenizer emits one token per $f\times f$ patch (the essay's $1/4$ "
        r"resolution: $3n^2\to(n/4)^2$).",
    )


def _check_m2(device) -> CheckResult:
    worst_ratio, worst_patch, all_perm = 0.0, 0.0, True
    for n in (64, 128, 256, 512):
        x = _distinct_image(3, n)
        shape, err, perm = _patch_errors(x, 4)
        worst_ratio = max(worst_ratio, abs(x.numel() / (shape[0] * shape[1]) - 48), abs(shape[2] - 48))
        worst_patch, all_perm = max(worst_patch, err), all_perm and perm
    return CheckResult(
        (
            Measurement("max over n of |subpixels / tokens - 48| and |numbers per token - 48|", worst_ratio, 0.0),
            Measurement("max |patch - image block it comes from|", worst_patch, 0.0),
            Measurement("patchify keeps every subpixel (0 = yes)", 0.0 if all_perm else 1.0, 0.0),
        ),
        setting="images 3 x n x n of distinct values, n in {64, 128, 256, 512}, cut into 4 x 4 patches by diffmath.snr.patchify",
        device="cpu",
    )


register(
    Claim(
        id="M.2",
        devices=("cpu",),
        title="A tokenizer at 1/4 resolution shortens the sentence 48-fold",
        statement=r"A tokenizer that emits one token per $4\times4$ patch turns the $3n^2$ subpixels into $(n/4)^2$ tokens: "
        r"$48$ times fewer, for every $n$ divisible by 4 (in general $3f^2$ for $f\times f$ patches).",
        source=Source(paper=ESSAY, note="section 'The path of discreteness' (离散之路)"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_m2,
        check=_check_m2,
        tests=(T + "test_downsampling_ratio_property",),
        plants=(
            Plant("diffmath.snr:patchify", rel=1e-7, why="every patchified number off by one part in 10^7",
                  fails=("image block it comes from", "keeps every subpixel")),
        ),
    )
)


# --- M.3 the mainstream token grids ------------------------------------------------------------------
def _derive_m3() -> Derivation:
    grid = (_n / _f) ** 2
    return Derivation(
        [
            Step(sp.Subs(grid, (_n, _f), (256, 8)), 1024, why="a 256 x 256 image at f = 8: a 32 x 32 grid",
                 lhs_tex=r"(n/f)^2\big|_{n=256,\,f=8}", rhs_tex=r"1024=32\times32"),
            Step(sp.Subs(grid, (_n, _f), (256, 16)), 256, why="at f = 16: a 16 x 16 grid",
                 lhs_tex=r"(n/f)^2\big|_{n=256,\,f=16}", rhs_tex=r"256=16\times16"),
            Step(_count(3, 256, 256) / 1024, 192, why="each of the 1024 tokens stands for 3 x 8 x 8 subpixels",
                 lhs_tex=r"3\cdot256^2/1024", rhs_tex="192"),
            Step(_count(3, 256, 256) / 256, 768, why="each of the 256 tokens for 3 x 16 x 16",
                 lhs_tex=r"3\cdot256^2/256", rhs_tex="768"),
        ],
        setting=r"A $256\times256$ RGB image tokenized at downsampling factor $f$ (one token per $f\times f$ patch).",
    )


def _check_m3(device) -> CheckResult:
    x = _distinct_image(3, 256)
    errs, patch, perm = [], 0.0, True
    for p, tokens, per_token in ((8, 1024, 192), (16, 256, 768)):
        shape, err, same = _patch_errors(x, p)
        errs += [abs(shape[0] * shape[1] - tokens), abs(shape[2] - per_token), abs(shape[0] - shape[1])]
        patch, perm = max(patch, err), perm and same
    return CheckResult(
        (
            Measurement("max |tokens - (1024, 256)|, |numbers per token - (192, 768)|, |rows - columns|", max(errs), 0.0),
            Measurement("max |patch - image block it comes from|", patch, 0.0),
            Measurement("patchify keeps every subpixel (0 = yes)", 0.0 if perm else 1.0, 0.0),
        ),
        setting="a 3 x 256 x 256 image of distinct values cut into 8 x 8 and 16 x 16 patches by diffmath.snr.patchify",
        device="cpu",
    )


register(
    Claim(
        id="M.3",
        devices=("cpu",),
        title="256² images as 32² = 1024 or 16² = 256 tokens",
        statement=r"The mainstream image tokenizers map $256\times256$ to $32\times32$ or $16\times16$: $L=1024$ tokens (each "
        r"standing for $192$ subpixels) or $L=256$ (each for $768$), the two lengths of eq. (2).",
        source=Source(paper=ESSAY, note="section 'Compression loss' (压缩损失)"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_m3,
        check=_check_m3,
        tests=(T + "test_token_grid_property",),
        plants=(
            Plant("diffmath.snr:patchify", rel=1e-7, why="every patchified number off by one part in 10^7",
                  fails=("image block it comes from", "keeps every subpixel")),
        ),
    )
)


# --- M.4 the lossless budget (2) --------------------------------------------------------------------
def _derive_m4() -> Derivation:
    L, B, V = sp.symbols("L B V", positive=True)
    u = sp.symbols("u", nonnegative=True)
    ratio = B / L
    imagenet = 64 * 64 * 3 * MEASURED_BITS_PER_DIM.numerator / sp.Integer(MEASURED_BITS_PER_DIM.denominator)
    return Derivation(
        [
            Step(sp.Mul(64, 64, 3, 3, evaluate=False), 36864, why="64 x 64 x 3 subpixels at 3 bits each",
                 lhs_tex=r"64\times64\times3\times3", rhs_tex=r"36\,864\ \text{bits}"),
            Step(sp.Derivative(L * sp.log(V, 2), V), sp.S.Zero, ">=", certificate=L / (V * sp.log(2)),
                 why="the capacity L log2 V grows with V ...", lhs_tex=r"\partial_V\,L\log_2V", rhs_tex="0"),
            Step(sp.Derivative(L * sp.log(1 + u, 2), L), sp.S.Zero, ">=", certificate=sp.log(1 + u) / sp.log(2),
                 why="... and with L (for V = 1 + u >= 1)", lhs_tex=r"\partial_L\,L\log_2V", rhs_tex="0"),
            Step(sp.Subs(L * sp.log(V, 2), V, 2**ratio), B,
                 why="V = 2^(B/L) meets (2) with equality; by the monotonicity, (2) holds exactly for V >= 2^(B/L)",
                 lhs_tex=r"L\log_2V\big|_{V=2^{B/L}}", rhs_tex="B"),
            Step(sp.Subs(ratio, (B, L), (36864, 1024)), 36, why="L = 1024: V >= 2^36",
                 lhs_tex=r"\tfrac BL\big|_{B=36864,\,L=1024}", rhs_tex="36"),
            Step(sp.Subs(ratio, (B, L), (36864, 256)), 144, why="L = 256: V >= 2^144",
                 lhs_tex=r"\tfrac BL\big|_{B=36864,\,L=256}", rhs_tex="144"),
            Step(sp.Subs(ratio, (B, L), (imagenet, 1024)), sp.Rational(1032, 25),
                 why="with the measured 3.44 bits per subpixel: V >= 2^41.28 at L = 1024 ...",
                 lhs_tex=r"\tfrac BL\big|_{B=64^2\cdot3\cdot3.44,\,L=1024}", rhs_tex="41.28"),
            Step(sp.Subs(ratio, (B, L), (imagenet, 256)), sp.Rational(4128, 25), why="... and V >= 2^165.12 at L = 256",
                 lhs_tex=r"\tfrac BL\big|_{B=64^2\cdot3\cdot3.44,\,L=256}", rhs_tex="165.12"),
        ],
        setting=r"A source of $B$ bits coded losslessly in $L$ tokens from a vocabulary of $V$: the code's entropy is at "
        r"most $L\log_2V$ (claim M.5), so $L\log_2V\ge B$ is necessary.",
    )


def _check_m4(device) -> CheckResult:
    H, W = IMAGENET64[1:]
    bits3 = H * W * IMAGENET64[0] * ARTICLE_BITS_PER_DIM
    bits344 = H * W * IMAGENET64[0] * MEASURED_BITS_PER_DIM
    exact_err, sharp, float_err, log_err = 0, 0.0, 0.0, 0.0
    for L, expected in zip(TOKEN_LENGTHS, (2**36, 2**144)):
        V = info.min_vocabulary(bits3, L)
        exact_err = max(exact_err, abs(V - expected))
        # minimal: V satisfies (2) and V - 1 does not
        sharp = max(sharp, float(not info.budget_satisfied(L, V, bits3)), float(info.budget_satisfied(L, V - 1, bits3)))
    rounding = max(abs(7e10 - 2**36) / 1e10, abs(2e43 - 2**144) / 1e43)  # the article's "≈7×10^10", "≈2×10^43"
    vmins = []
    for L in TOKEN_LENGTHS:
        V = info.min_vocabulary(bits344, L)
        vmins.append(V)
        sharp = max(sharp, float(not info.budget_satisfied(L, V, bits344)), float(info.budget_satisfied(L, V - 1, bits344)))
        # the integer route against floating point: ceil(2^(B/L)) and log2 of it
        float_err = max(float_err, abs(V - 2.0 ** float(bits344 / L)) / V)
        log_err = max(log_err, abs(math.log2(V) - float(bits344 / L)))
    return CheckResult(
        (
            Measurement("|smallest integer V - 2^36| (L = 1024) and |... - 2^144| (L = 256), 3 bits per subpixel", exact_err, 0.0),
            Measurement("the smallest V meets (2) and V - 1 does not (0 = both), for 3 and 3.44 bits", sharp, 0.0),
            Measurement("article's 7e10 and 2e43 against 2^36 and 2^144, in units of their last digit", rounding, 0.5),
            Measurement("3.44 bits: |integer V_min - 2^(B/L) in floating point| / V_min", float_err, EXACT),
            Measurement("3.44 bits: |log2 V_min - B/L|", log_err, 1e-9),
        ),
        setting=f"B = {bits3:,} bits (3 bits per subpixel) or {float(bits344):,.2f} (3.44); L = 1024 and 256; smallest V with "
        f"3.44 bits: {float(vmins[0]):.3e} and {float(vmins[1]):.3e}; exact integer arithmetic (diffmath.information)",
        device="cpu",
    )


register(
    Claim(
        id="M.4",
        devices=("cpu",),
        title="The lossless budget L·log₂V ≥ 64·64·3·3: V ≥ 2³⁶ at L = 1024, V ≥ 2¹⁴⁴ at L = 256",
        statement=r"Coding a $64\times64$ RGB image of $3$ bits per subpixel, $64\cdot64\cdot3\cdot3=36\,864$ bits, losslessly "
        r"in $L$ tokens from a vocabulary of $V$ requires $L\log_2V\ge36\,864$ (eq. 2). The smallest vocabulary is "
        r"$V=2^{36864/L}$: $2^{36}\approx6.87\times10^{10}$ at $L=1024$ (the essay: $\approx7\times10^{10}$) and "
        r"$2^{144}\approx2.23\times10^{43}$ at $L=256$ (the essay: $\approx2\times10^{43}$). With the measured $3.44$ bits per "
        r"subpixel the exponents are $41.28$ and $165.12$.",
        source=Source(paper=f"{ESSAY}, child2019sparse", equation="(2)", note="section 'Compression loss' (压缩损失)"),
        kind=Kind.INEQUALITY,
        chapter=CHAPTER,
        derive=_derive_m4,
        check=_check_m4,
        tests=(T + "test_budget_is_monotone_property", T + "test_min_vocabulary_is_sharp_property",
               "tests/test_information.py::test_min_vocabulary_against_floating_point_property"),
        remark="The essay writes the Sparse Transformer's ImageNet-64 result as 3.44 bits per byte (比特/字节); the figure is "
        "usually quoted in bits per dimension. An 8-bit subpixel is one byte, so the two units coincide here and the "
        "arithmetic is unaffected. The 3.44 is a model's cross-entropy on held-out images, an upper bound on the data's "
        "entropy, which is why the essay rounds it down to 3 to allow for better models.",
        extension="Section 'Compression loss', eq. (2): both roundings (≈7×10¹⁰ and ≈2×10⁴³) are right to the digit given. "
        "The suite adds the bound with the measured 3.44 bits per subpixel instead of 3 (V ≥ 2^41.28 ≈ 2.7×10¹² at "
        "L = 1024, V ≥ 2^165.12 ≈ 5×10⁴⁹ at L = 256), the smallest vocabularies as exact integers, and a reading of the "
        "exponents: 36 = 12 × 3 and 144 = 48 × 3, each token standing for 12 or 48 subpixels of the 64×64 image, so it "
        "must carry their bits.",
        plants=(
            Plant("diffmath.information:min_vocabulary", add=-1, why="the smallest vocabulary one too small",
                  fails=("smallest integer V", "V - 1 does not")),
            Plant("diffmath.information:min_vocabulary", add=-1e6,
                  why="V_min 10^6 too small (4 parts in 10^7 at 3.44 bits, L = 1024)",
                  fails=("in floating point", "log2 V_min")),
            Plant("diffmath.information:budget_satisfied", rel=-1,
                  why="eq. (2) never reported satisfied", fails=("V - 1 does not",), reads=1),
        ),
    )
)


# --- M.5 entropy sources ------------------------------------------------------------------------------
def _derive_m5() -> Derivation:
    V = sp.symbols("V", positive=True, integer=True)
    k = sp.symbols("k", integer=True)
    w = sp.symbols("w_1:4", positive=True)
    p = [wi / sum(w) for wi in w]
    ell = sp.symbols("ell_1:4", real=True)
    y = sp.symbols("y", positive=True)
    g = sp.log(y) - 1 + 1 / y
    x = sp.symbols("x", real=True)
    s = sp.symbols("sigma", positive=True)
    phi = sp.exp(-(x**2) / (2 * s**2)) / sp.sqrt(2 * sp.pi * s**2)
    hyps = [Hypothesis(ell[i] - 1 + 1 / (3 * p[i]), f"log y >= 1 - 1/y (steps 3-4) at y = 3 p_{i + 1}, with ell_{i + 1} = log(3 p_{i + 1})",
                       tex=rf"\ell_{i + 1}-1+\tfrac1{{3p_{i + 1}}}\ge0") for i in range(3)]
    return Derivation(
        [
            Step(sp.Sum(-(1 / V) * sp.log(1 / V, 2), (k, 1, V)), sp.log(V, 2), why="the uniform law on V symbols has log2 V bits",
                 lhs_tex=r"-\sum_{k=1}^V\tfrac1V\log_2\tfrac1V", rhs_tex=r"\log_2V"),
            Step(-sum(pi * sp.log(pi) for pi in p), sp.log(3) - sum(pi * sp.log(3 * pi) for pi in p),
                 why="V = 3 (in nats): H(p) = log 3 - KL(p || uniform), for any p = w / (w_1 + w_2 + w_3)",
                 lhs_tex=r"-\sum_{i=1}^3p_i\log p_i", rhs_tex=r"\log3-\sum_{i=1}^3p_i\log(3p_i)"),
            Step(sp.Derivative(g, y), (y - 1) / y**2, why="g(y) = log y - 1 + 1/y falls on (0, 1) and rises after ...",
                 lhs_tex=r"\tfrac{d}{dy}\big(\log y-1+\tfrac1y\big)", rhs_tex=r"\tfrac{y-1}{y^2}"),
            Step(sp.Subs(g, y, 1), 0, why="... to 0 at its minimum y = 1: log y >= 1 - 1/y",
                 lhs_tex=r"\big(\log y-1+\tfrac1y\big)_{y=1}", rhs_tex="0"),
            Step(sp.log(3) - sum(p[i] * ell[i] for i in range(3)), sp.log(3), "<=", hypotheses=hyps, variables=ell,
                 why="so KL >= 0 and H(p) <= log 3: the gap is sum_i p_i (ell_i - 1 + 1/(3 p_i)), multipliers p_i >= 0",
                 lhs_tex=r"\log3-\sum_ip_i\ell_i", rhs_tex=r"\log3"),
            Step(sp.Integral(-phi * sp.log(phi), (x, -sp.oo, sp.oo)), sp.log(2 * sp.pi * sp.E * s**2) / 2,
                 why="a continuous source: N(0, sigma^2) has differential entropy (1/2) log(2 pi e sigma^2), every sigma > 0",
                 lhs_tex=r"-\int\varphi_\sigma\log\varphi_\sigma", rhs_tex=r"\tfrac12\log(2\pi e\sigma^2)"),
        ],
        setting=r"(1)-(5) a categorical law $p$ on $V$ symbols (for the inequality $V=3$, $p_i=w_i/\sum_jw_j$ with $w_i>0$; "
        r"the general case is the same computation with $V$ terms). With the chain rule, $H(X_1..X_L)=\sum_tH(X_t\mid X_{<t})"
        r"\le\sum_tH(X_t)\le L\log_2V$: $L$ tokens hold at most $L\log_2V$ bits. (6) the Gaussian entropy source; quantised "
        r"to bins of width $\Delta$ it carries at least $h-d\log_2\Delta$ bits, unbounded as $\Delta\to0$.",
    )


def _check_m5(device) -> CheckResult:
    g = generator("cpu", 5)
    worst_excess, worst_uniform = -math.inf, 0.0
    for V in (2, 3, 10, 256):
        # uniform on the simplex (normalised exponentials) and more peaked laws (their cubes, normalised)
        e = -torch.log(torch.rand(250, V, dtype=torch.float64, generator=g))
        p = torch.cat([e, e**3]) / torch.cat([e, e**3]).sum(-1, keepdim=True)
        worst_excess = max(worst_excess, (info.entropy_bits(p) - math.log2(V)).max().item())
        worst_uniform = max(worst_uniform, abs(info.entropy_bits(torch.full((V,), 1.0 / V, dtype=torch.float64)).item() - math.log2(V)))
    # an autoregressive source: a Markov chain on V = 3 symbols, L = 4, its joint law enumerated
    V, L = 3, 4
    init = torch.rand(V, dtype=torch.float64, generator=g) + 0.1
    init = init / init.sum()
    trans = torch.rand(V, V, dtype=torch.float64, generator=g) + 0.1
    trans = trans / trans.sum(-1, keepdim=True)
    joint = init
    for _ in range(L - 1):
        joint = (joint[..., None] * trans.reshape((1,) * (joint.ndim - 1) + (V, V)))
    H_joint = info.entropy_bits(joint.reshape(-1)).item()
    # the chain rule computed another way: H(X1) + sum_t H(X_t | X_{t-1}), with the marginals propagated
    marg, chain = init, info.entropy_bits(init).item()
    for _ in range(L - 1):
        chain += (marg * info.entropy_bits(trans)).sum().item()
        marg = marg @ trans
    # the Gaussian source, quantised: exact bin sums against h - log2(delta) and the widened-Gaussian value
    gaps, rel, increments = [], [], []
    prev = None
    for k in range(0, 11):
        delta = 2.0**-k
        H = info.quantised_normal_entropy_bits(1.0, delta)
        lower = info.normal_entropy_bits(1.0) - math.log2(delta)
        upper = 0.5 * math.log2(2 * math.pi * math.e * (1 + delta**2 / 12)) - math.log2(delta)
        gaps.append(H - lower)
        rel.append(H - upper)
        if prev is not None:
            increments.append(H - prev)
        prev = H
    return CheckResult(
        (
            Measurement("max over 2000 random categoricals (V = 2, 3, 10, 256) of H(p) - log2 V", worst_excess, 1e-12),
            Measurement("max |H(uniform) - log2 V|", worst_uniform, EXACT),
            Measurement("Markov chain (V = 3, L = 4): H(X_1..X_4) - L log2 V", H_joint - L * math.log2(V), 0.0),
            Measurement("Markov chain: |enumerated joint entropy - chain rule|", abs(H_joint - chain), EXACT),
            Measurement("N(0, 1) quantised, delta = 2^-k, k = 0..10: min of H - (h - log2 delta) (a lower bound)", min(gaps), 0.0, ">="),
            Measurement("... max of H - (widened-Gaussian value) (at most 0, up to aliasing)", max(rel), 1e-9),
            Measurement("... |bits gained by halving delta - 1| for delta <= 1/64", max(abs(i - 1) for i in increments[5:]), 1e-4,
                        note="the leading-order change is 3 delta^2 / (96 ln 2) <= 4.4e-5"),
        ),
        setting=f"random categoricals, 500 per V (uniform on the simplex and peaked); a random 3-state Markov chain (joint entropy {H_joint:.4f} bits "
        f"of at most {L * math.log2(V):.4f}); N(0,1) quantised at delta = 1 to 1/1024 by exact bin sums: from "
        f"{info.quantised_normal_entropy_bits(1.0, 1.0):.3f} to {prev:.3f} bits",
        device="cpu",
    )


register(
    Claim(
        id="M.5",
        devices=("cpu",),
        title="A discrete source holds at most L·log₂V bits; a Gaussian source is unbounded",
        statement=r"A token from a vocabulary of $V$ carries at most $\log_2V$ bits, exactly when it is uniform, so a sequence "
        r"of $L$ tokens carries at most $L\log_2V$: the vocabulary counts only through its logarithm. A continuous "
        r"(Gaussian) source has no such cap: quantised to bins of width $\Delta$, a law with a density on "
        r"$\mathbb R^d$ carries at least $h-d\log_2\Delta$ bits, which grows without bound as $\Delta\to0$.",
        source=Source(paper=ESSAY, note="section 'Diffusion models' (扩散模型)"),
        kind=Kind.INEQUALITY,
        chapter=CHAPTER,
        derive=_derive_m5,
        check=_check_m5,
        tests=(T + "test_entropy_at_most_log_v_property", T + "test_markov_chain_budget_property",
               "tests/test_information.py::test_quantised_normal_against_monte_carlo",
               "tests/test_information.py::test_quantised_entropy_brackets_exact_2d"),
        extension="Section 'Diffusion models': the essay says that a discrete autoregressive model's entropy source is its "
        "length times the log of its vocabulary, and that the Gaussian noise of a flow or diffusion model is in principle "
        "inexhaustible. Both hold. The suite adds how much of that source an 8-bit image uses: quantised at bin width Δ, "
        "a law with a density carries H(Q(x)) = h(x) − d·log₂Δ + D(p‖p̄) ≥ h(x) − d·log₂Δ bits, finite for every Δ and "
        "growing by d bits per halving of Δ; for a Gaussian the gap D is about Δ²·tr(Σ⁻¹)/(24 ln 2). The chapter "
        "computes the figure for a Gaussian image law with a natural-image spectrum.",
        plants=(
            Plant("diffmath.information:entropy_bits", add=1e-9, why="every entropy 10^-9 bit too large",
                  fails=("H(uniform)", "chain rule")),
            Plant("diffmath.information:entropy_bits", rel=1e-4, why="every entropy one part in 10^4 too large",
                  fails=("2000 random categoricals", "H(uniform)")),
            Plant("diffmath.information:entropy_bits", rel=0.1, why="every entropy 10% too large (the chain's slack is 5%)",
                  fails=("Markov chain (V = 3, L = 4)",)),
            Plant("diffmath.information:normal_entropy_bits", rel=1e-6, why="the differential entropy one part in 10^6 too large",
                  fails=("(a lower bound)",)),
            Plant("diffmath.information:quantised_normal_entropy_bits", rel=1e-7,
                  why="the quantised entropy one part in 10^7 too large",
                  fails=("widened-Gaussian",)),
            Plant("diffmath.information:quantised_normal_entropy_bits", rel=1e-3,
                  why="the quantised entropy one part in 10^3 too large",
                  fails=("halving delta",), reads=1e-3),
        ),
    )
)


# --- M.6 the patch shapes of Su's experiment -----------------------------------------------------------
def _derive_m6() -> Derivation:
    per_patch = 3 * (_n / 16) ** 2
    return Derivation(
        [
            Step(_count(3, 16 * _m, 16 * _m) / sp.Sum(1, (_a, 1, 16), (_b, 1, 16)), 3 * _m**2,
                 why="a 16 x 16 grid of patches of an n x n image, n = 16 m: 3 m^2 numbers per patch",
                 lhs_tex=r"\frac{\sum_{c\le3,\,i,j\le16m}1}{16\cdot16}", rhs_tex=r"3m^2"),
            Step(sp.Subs(per_patch, _n, 64), 48, why="64 x 64: 4 x 4 x 3 patches", lhs_tex=r"3(n/16)^2\big|_{n=64}", rhs_tex="48"),
            Step(sp.Subs(per_patch, _n, 128), 192, why="128 x 128: 8 x 8 x 3 patches", lhs_tex=r"3(n/16)^2\big|_{n=128}", rhs_tex="192"),
        ],
        setting=r"An $n\times n$ RGB image reshaped to a $16\times16$ grid of patches of side $n/16$.",
    )


def _check_m6(device) -> CheckResult:
    shape_err, patch, perm = 0, 0.0, True
    for n, expected in ((64, (16, 16, 48)), (128, (16, 16, 192))):
        shape, err, same = _patch_errors(_distinct_image(3, n), n // 16)
        shape_err = max(shape_err, max(abs(a - b) for a, b in zip(shape, expected)))
        patch, perm = max(patch, err), perm and same
    return CheckResult(
        (
            Measurement("max |patchified shape - (16, 16, 48) at 64², (16, 16, 192) at 128²|", shape_err, 0.0),
            Measurement("max |patch - image block it comes from|", patch, 0.0),
            Measurement("patchify keeps every subpixel (0 = yes)", 0.0 if perm else 1.0, 0.0),
        ),
        setting="3 x 64 x 64 and 3 x 128 x 128 images of distinct values, cut into 4 x 4 and 8 x 8 patches by diffmath.snr.patchify",
        device="cpu",
    )


register(
    Claim(
        id="M.6",
        devices=("cpu",),
        title="64² and 128² images as 16×16×48 and 16×16×192 patch grids",
        statement=r"Su's patch-input experiment reshapes $64\times64$ RGB images to $16\times16\times48$ ($4\times4\times3$ "
        r"patches) and $128\times128$ to $16\times16\times192$ ($8\times8\times3$): a $16\times16$ grid of "
        r"$3(n/16)^2$ numbers each.",
        source=Source(paper=ESSAY, note="section 'Patch input' (Patch输入); code github.com/bojone/patch-diffusion"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_m6,
        check=_check_m6,
        tests=(T + "test_patch_grid_property",),
        plants=(
            Plant("diffmath.snr:patchify", rel=1e-7, why="every patchified number off by one part in 10^7",
                  fails=("image block it comes from", "keeps every subpixel")),
        ),
    )
)


# --- M.7 the LDM latent is 1/48 of the pixels -----------------------------------------------------------
def _derive_m7() -> Derivation:
    return Derivation(
        [
            Step(_count(4, _m, _m) / _count(3, 8 * _m, 8 * _m), sp.Rational(1, 48),
                 why="an n x n x 3 image (n = 8 m) against its f = 8 latent of 4 channels, for every n",
                 lhs_tex=r"\frac{4\,(n/8)^2}{3n^2}", rhs_tex=r"\frac1{48}"),
            Step(sp.Mul(3, sp.Pow(8, 2, evaluate=False), sp.Pow(4, -1, evaluate=False), 3, evaluate=False), 144,
                 why="at 3 bits per subpixel, each latent number would have to carry the bits of 3 x 8^2 / 4 = 48 subpixels ...",
                 lhs_tex=r"\tfrac{3\cdot8^2}{4}\times3", rhs_tex=r"144\ \text{bits}"),
            Step(sp.Mul(32, sp.Pow(48, -1, evaluate=False), evaluate=False), sp.Rational(2, 3),
                 why="... while a float32 holds at most 32 bits: lossless only for images of at most 2/3 bit per subpixel",
                 lhs_tex=r"32/48", rhs_tex=r"\tfrac23\ \text{bit per subpixel}"),
        ],
        setting=r"LDM's autoencoder with downsampling factor $f=8$ and $4$ latent channels, on $n\times n$ RGB images.",
    )


def _check_m7(device) -> CheckResult:
    errs, perm = [], True
    for n in (256, 512):
        x = _distinct_image(3, n)
        shape, _, same = _patch_errors(x, 8)
        latent = (n // 8) * (n // 8) * 4
        errs.append(abs(Fraction(latent, shape[0] * shape[1] * shape[2]) - Fraction(1, 48)))
        perm = perm and same
    return CheckResult(
        (
            Measurement("max over n in {256, 512} of |latent numbers / patchified numbers - 1/48| (exact fractions)", float(max(errs)), 0.0),
            Measurement("patchify keeps every subpixel (0 = yes)", 0.0 if perm else 1.0, 0.0),
            Measurement("bits per latent number at 3 bits per subpixel over the 32 of a float32", 48 * ARTICLE_BITS_PER_DIM / 32, 1.0, ">="),
        ),
        setting="3 x n x n images of distinct values patchified at 8 x 8 (the U-ViT/DiT input) against LDM's n/8 x n/8 x 4 latent",
        device="cpu",
    )


register(
    Claim(
        id="M.7",
        devices=("cpu",),
        title="An LDM latent holds 1/48 as many numbers as the image",
        statement=r"LDM's autoencoder ($f=8$, 4 channels) maps $n\times n\times3$ pixels, patchified at $8\times8$ to "
        r"$(n/8)\times(n/8)\times192$, to $(n/8)\times(n/8)\times4$ numbers: $1/48$ as many, at every resolution.",
        source=Source(paper=f"{ESSAY}, rombach2022ldm", note="section 'Patch input' (Patch输入); the ratio is in part 22's review of LDM"),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_m7,
        check=_check_m7,
        tests=(T + "test_latent_ratio_property",),
        remark="The catalogue files this under the essay, whose 'Patch input' section calls the LDM features that U-ViT and DiT "
        "diffuse in a compression with severe information loss; the number itself is from part 22 (claim C22.5, the same "
        "ratio at 512²). It is the 48 of M.2 again: 3·8²/4 = 3·4²/1.",
        extension="The essay's counting argument (eq. 2) is about discrete tokens; a latent of real numbers is not capped by a "
        "vocabulary, so 1/48 as many numbers is not by itself a loss. It becomes one in floating point: a float32 takes at "
        "most 2³² values, so the 1/48 latent can code an image losslessly only if the image carries at most 32/48 = 2/3 bit "
        "per subpixel, well below the 3 bits the essay assumes for ImageNet-64 (larger images carry fewer bits per subpixel, "
        "but the float32 bound holds whatever the resolution).",
        plants=(
            Plant("diffmath.snr:patchify", rel=1e-7,
                  why="every patchified number off by one part in 10^7", fails=("keeps every subpixel",)),
        ),
    )
)


# --- M.8 the anecdotes (documented) --------------------------------------------------------------------
register(
    Claim(
        id="M.8",
        title="Su's patch-diffusion experiment and design preferences",
        statement=r"A standard Pre-Norm Transformer (GAU blocks, 2D-RoPE, the time embedding added to the patches, no long "
        r"skip connections) trained on raw patches converges on CelebA-HQ at $64^2$ and $128^2$ to samples that look like a "
        r"U-Net's, but much more slowly: on one A800 at $128^2$, 1-2 days for a U-Net against more than 10 for the "
        r"Transformer. About 10 sampling steps suffice with current solvers. Raw-patch input (as in Fuyu-8B) avoids the "
        r"isolation between the features of several images that a separate encoder causes. The image part of a "
        r"multimodal model should be generated in parallel, not decoder-only.",
        source=Source(paper=ESSAY, note="sections 'Diffusion models' (扩散模型) and 'Patch input' (Patch输入)"),
        kind=Kind.DOCUMENTED,
        chapter=CHAPTER,
        remark="Not checkable here: one training run per setting judged by eye (the essay computes no FID), wall-clock times "
        "on one GPU, and design preferences. Checking them needs networks trained at scale, which the suite's exact toys do "
        "not model. The step count is the one part with mathematics behind it: the sampler chapter (part 21) measures "
        "solver error against the number of steps on exact toys.",
    )
)


# --- M.9 the conceptual argument (documented) ---------------------------------------------------------
register(
    Claim(
        id="M.9",
        title="Networks approximate functions, not normalised densities",
        statement=r"A conditional density must integrate to one, $\int p(x_t\mid x_1,\dots,x_{t-1})\,dx_t=1$ (eq. 1), which an "
        r"arbitrary network output does not; over a finite vocabulary a softmax makes any output a normalised law. Neural "
        r"networks are therefore universal approximators of functions but not of densities, and continuous generative "
        r"models (VAE, GAN, diffusion; flows excepted) are ways around modelling the density directly.",
        source=Source(paper=ESSAY, equation="(1)", note="section 'Problem background' (问题背景)"),
        kind=Kind.DOCUMENTED,
        chapter=CHAPTER,
        remark="Not checkable: a conceptual argument about modelling practice, with no quantitative statement. For balance: a "
        "normalised family can itself be universal (mixtures of Gaussians whose weights, means and variances a network "
        "outputs approximate any continuous density in L¹, and so do normalising flows, which the essay excepts), so the "
        "difficulty is choosing and training a tractable normalised family rather than an impossibility; a 256-way "
        "softmax per subpixel, as in PixelCNN, is the essay's own discrete way out.",
    )
)
