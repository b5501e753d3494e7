r"""Part 24 (kexue.fm 10077): Skip-Tuning, on a trained toy U-Net. Claims C24.1-C24.8.

Convention: the :math:`k+1` long skips are numbered from the bottom (:math:`i=0`, the deepest, the first the
decoder pops) to the top (:math:`i=k`, nearest the input and output); :math:`\rho_i` scales skip :math:`i`
(:mod:`diffmath.skip_tuning`). The article has no numbered equations; the formulas are those of Ma et al.
2024 (Definition 3.1, §3, App. C), as the catalogue (§4.1) transcribes them. The toy is the small EDM U-Net
of :mod:`diffmath.unet` trained on the Gaussian-image mixture of :mod:`diffmath.skip_toy` (experiment
``skip-unet``); the sweeps are the experiment ``skip-tuning`` (:mod:`diffmath.skip_sweep`).
"""

from __future__ import annotations

from fractions import Fraction

import sympy as sp
import torch
import torch.nn.functional as F

from diffmath import experiments
from diffmath import skip_tuning as stn
from diffmath import unet
from diffmath.claims._helpers import generator
from diffmath.claims.controls import Plant
from diffmath.claims.registry import CheckResult, Claim, Kind, Measurement, Source, register
from diffmath.symbolic import Derivation, Step

CHAPTER = "skip-tuning"
T = "tests/test_skip_tuning.py::"
PAPER = "ma2024skiptuning"


# --- C24.1 the rho schedule ----------------------------------------------------------------------------
def _derive_c241() -> Derivation:
    i, k = sp.symbols("i k", positive=True, integer=True)
    rb, rt = sp.symbols(r"\rho_{bottom} \rho_{top}", positive=True)
    rho = lambda j: rb + j * (rt - rb) / k  # noqa: E731  (Definition 3.1 of the paper)
    return Derivation(
        [
            Step(sp.Subs(rho(i), i, 0), rb, why="i = 0 is the bottom skip", lhs_tex=r"\rho_0", rhs_tex=r"\rho_{bottom}"),
            Step(sp.Subs(rho(i), i, k), rt, why="i = k is the top skip", lhs_tex=r"\rho_k", rhs_tex=r"\rho_{top}"),
            Step(rho(i + 1) - rho(i), (rt - rb) / k, why="consecutive skips differ by one constant step: an arithmetic progression",
                 lhs_tex=r"\rho_{i+1}-\rho_i", rhs_tex=r"\Delta\rho=\frac{\rho_{top}-\rho_{bottom}}k"),
            Step(sp.factor(rho(i).subs(rt, 1) - rb), i * (1 - rb) / k,
                 why="with rho_top = 1: rho_i - rho_bottom = (i/k)(1 - rho_bottom) >= 0 when rho_bottom <= 1",
                 lhs_tex=r"\rho_i-\rho_{bottom}\ (\rho_{top}=1)", rhs_tex=r"\tfrac ik(1-\rho_{bottom})"),
            Step(sp.factor(1 - rho(i).subs(rt, 1)), (k - i) * (1 - rb) / k,
                 why="and 1 - rho_i = (1 - i/k)(1 - rho_bottom) >= 0 for i <= k: every rho_i lies in [rho_bottom, 1]",
                 lhs_tex=r"1-\rho_i\ (\rho_{top}=1)", rhs_tex=r"\tfrac{k-i}k(1-\rho_{bottom})"),
        ],
        setting=r"$\rho_i=\rho_{bottom}+i\,\Delta\rho$, $i=0,\dots,k$ (Ma et al. 2024, Definition 3.1; $k+1$ skips).",
    )


def _check_c241(device) -> CheckResult:
    worst = 0.0
    for k in (1, 2, 5, 15, 30):
        for rb, rt in ((Fraction(1, 2), Fraction(1)), (Fraction(3, 10), Fraction(9, 10)), (Fraction(7, 10), Fraction(7, 10))):
            got = stn.rho_schedule(k, float(rb), float(rt))
            want = [rb + i * (rt - rb) / k for i in range(k + 1)]
            worst = max(worst, max(abs(Fraction(g) - w) for g, w in zip(got, want)) / rt)
    # the convention on the toy's architecture (freshly initialised: the order does not depend on the weights): scaling
    # only rho_j changes exactly the j-th popped skip, and the first popped (j = 0, rho_bottom) is the deepest
    # (smallest resolution), the last (rho_top) the input convolution's
    from diffmath import skip_toy

    with torch.random.fork_rng():
        torch.manual_seed(241)
        net = skip_toy.build_net(skip_toy.TRAIN_DEFAULTS)
    x = torch.randn(2, 1, 16, 16, generator=generator("cpu", 241))
    c = torch.zeros(2)
    plain = []
    net(x, c, record=plain)
    wrong = 0
    for j in range(net.n_skips):
        scales = [1.0] * net.n_skips
        scales[j] = 0.5
        rec = []
        net(x, c, skip_scales=scales, record=rec)
        first_changed = next(m for m in range(net.n_skips) if not torch.equal(rec[m][2], plain[m][2]))
        wrong += int(first_changed != j or not torch.allclose(rec[j][2], 0.5 * plain[j][2]))
    sizes = [d.shape[-1] for _, _, d in plain]
    return CheckResult(
        (
            Measurement("rho_schedule vs exact rational arithmetic, max error relative to rho_top", float(worst), 1e-15),
            Measurement("skips whose rho_j scales another skip than the j-th popped (of 6)", wrong, 0),
            Measurement("resolution of the skip rho_bottom scales over the top skip's (the bottom is the deepest)", sizes[0] / sizes[-1], 0.25),
            Measurement("the skip rho_top scales is the input convolution's (1 = yes)", float(plain[-1][0] == "conv_in"), 1, relation=">="),
        ),
        setting=f"k = 1, 2, 5, 15, 30 and three (rho_bottom, rho_top) pairs against fractions; the toy U-Net's "
        f"skips in pop order: {', '.join(n for n, _, _ in plain)} at resolutions {sizes}",
        device="cpu",
    )


register(
    Claim(
        id="C24.1",
        devices=("cpu",),  # exact or tiny: runs on the CPU whatever device is asked for
        title="The linear ρ schedule, bottom to top",
        statement=r"With $k+1$ skips numbered from the bottom ($i=0$, the deepest) to the top ($i=k$, nearest the input), "
        r"$\rho_i=\rho_{bottom}+i\,\frac{\rho_{top}-\rho_{bottom}}k$ is an arithmetic progression from $\rho_{bottom}$ to "
        r"$\rho_{top}$; with $\rho_{top}=1>\rho_{bottom}$ every $\rho_i$ lies in $[\rho_{bottom},1]$. In an EDM U-Net the "
        r"decoder pops the skips in reverse order, so $\rho_0$ belongs to the first skip it pops.",
        source=Source(part=24, equation="Definition 3.1 (paper)", paper=PAPER),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c241,
        check=_check_c241,
        tests=(T + "test_rho_schedule_property", T + "test_skip_tuned_uses_the_schedule_bottom_first",
               "tests/test_unet.py::test_skip_stack_push_and_pop_order"),
        plants=(
            Plant("diffmath.skip_tuning:rho_schedule", index=0, rel=1e-9, why="rho_bottom off by one part in 10^9",
                  fails=("rho_schedule vs exact",), reads=1e-9),
        ),
    )
)


# --- C24.2 GroupNorm: where the scaling survives --------------------------------------------------------
def _derive_c242() -> Derivation:
    rho, eps, v = sp.symbols(r"\rho \epsilon v", positive=True)
    z1, z2, z3 = sp.symbols("z_1 z_2 z_3", real=True)
    zs = [z1, z2, z3]
    mean = lambda w: sum(w) / 3  # noqa: E731
    var = lambda w: sum((wi - mean(w)) ** 2 for wi in w) / 3  # noqa: E731
    scaled = [rho * z for z in zs]
    ratio = sp.sqrt(v + eps) / sp.sqrt(v + eps / rho**2)
    return Derivation(
        [
            Step(mean(scaled), rho * mean(zs), why="a group's mean scales with rho", lhs_tex=r"\mu(\rho z)", rhs_tex=r"\rho\,\mu(z)"),
            Step(var(scaled), rho**2 * var(zs), why="and its (biased) variance with rho^2",
                 lhs_tex=r"\mathrm{var}(\rho z)", rhs_tex=r"\rho^2\mathrm{var}(z)"),
            Step((scaled[0] - mean(scaled)) / sp.sqrt(rho**2 * v), (z1 - mean(zs)) / sp.sqrt(v),
                 why="so with eps = 0 a group that lies inside the skip's channels normalises rho z to the same values as z",
                 lhs_tex=r"\frac{\rho z_1-\mu(\rho z)}{\sqrt{\rho^2v}}", rhs_tex=r"\frac{z_1-\mu(z)}{\sqrt v}"),
            Step(((scaled[0] - mean(scaled)) / sp.sqrt(rho**2 * v + eps)) / ((z1 - mean(zs)) / sp.sqrt(v + eps)), ratio,
                 why="with eps > 0 the two differ by the factor sqrt(v + eps)/sqrt(v + eps/rho^2)",
                 lhs_tex=r"\mathrm{GN}_\epsilon(\rho z)/\mathrm{GN}_\epsilon(z)", rhs_tex=r"\sqrt{\frac{v+\epsilon}{v+\epsilon/\rho^2}}"),
            Step(sp.series(ratio, eps, 0, 2).removeO(), 1 - eps * (1 / rho**2 - 1) / (2 * v),
                 why="to first order in eps: a relative change of eps (1/rho^2 - 1)/(2 v)",
                 lhs_tex=r"\sqrt{\frac{v+\epsilon}{v+\epsilon/\rho^2}}", rhs_tex=r"1-\frac{\epsilon(\rho^{-2}-1)}{2v}+O(\epsilon^2)"),
        ],
        setting=r"A GroupNorm group of channel values $z$ with mean $\mu$ and biased variance $v$; "
        r"$\mathrm{GN}_\epsilon(z)=(z-\mu)/\sqrt{v+\epsilon}$ (three values stand for any number).",
    )


def _check_c242(device) -> CheckResult:
    """On the trained toy's decoder blocks, with their real inputs: GroupNorm on cat(u, rho d) against cat(u, d)."""
    from diffmath import skip_toy

    D = skip_toy.model_from_result(experiments.result("skip-unet"))
    net = D.net
    law = skip_toy.toy_law()
    g = generator("cpu", 242)
    x = law.sample(16, generator=g)
    x = (x + torch.randn(x.shape, generator=g, dtype=x.dtype)).to(torch.float32)
    _, _, c_in, c_noise = unet.edm_preconditioning(torch.ones(16), D.sigma_data)
    rec = []
    with torch.no_grad():
        net(c_in.reshape(-1, 1, 1, 1) * x, c_noise, record=rec)
    rho, mismatched, inside_u, eps_ratio, straddle_min = 0.5, 0, 0.0, 0.0, float("inf")
    per_block = []
    for j, (name, u, d) in enumerate(rec):
        block = net.dec[j]
        groups, eps = block.norm0.num_groups, block.norm0.eps
        a = F.group_norm(torch.cat([u, d], 1).double(), groups, eps=eps)
        b = F.group_norm(torch.cat([u, rho * d], 1).double(), groups, eps=eps)
        full = torch.cat([u, d], 1).double()
        cu, size = u.shape[1], full.shape[1] // groups
        predicted = stn.straddling_groups(cu, d.shape[1], groups)
        changed = []
        for k in range(groups):
            sl = slice(k * size, (k + 1) * size)
            rel = ((b[:, sl] - a[:, sl]).abs().amax((1, 2, 3)) / a[:, sl].abs().amax((1, 2, 3))).max().item()
            if (k + 1) * size <= cu:  # inside u
                inside_u = max(inside_u, rel)
            elif k * size >= cu:  # inside d: the eps bound of the derivation
                var = full[:, sl].flatten(1).var(1, unbiased=False)
                bound = (eps * (1 / rho**2 - 1) / (2 * var)).max().item()
                eps_ratio = max(eps_ratio, rel / bound)
            else:
                straddle_min = min(straddle_min, rel)
            if rel > 1e-3:
                changed.append(k)
        mismatched += int(changed != predicted)
        per_block.append(f"{name}: {cu}+{d.shape[1]} ch, {groups} groups, straddling {predicted}")
    return CheckResult(
        (
            Measurement("GroupNorm groups inside u: max relative change", inside_u, 0.0),
            Measurement("groups inside d: max relative change over the eps bound eps(1/rho^2 - 1)/(2 var)", eps_ratio, 1.01),
            Measurement("straddling groups: min relative change", straddle_min, 0.05, relation=">="),
            Measurement("decoder blocks whose changed groups (> 1e-3) differ from straddling_groups' prediction (of 6)", mismatched, 0),
        ),
        setting="the trained toy U-Net's six decoder blocks at sigma = 1 (16 images), rho = 0.5 on each popped skip, "
        "eps = 1e-5, in float64: " + "; ".join(per_block),
        device="cpu",
    )


register(
    Claim(
        id="C24.2",
        devices=("cpu",),  # exact or tiny: runs on the CPU whatever device is asked for
        experiments=("skip-unet",),
        title="GroupNorm undoes the skip's scaling except in one straddling group and the 1×1 residual path",
        statement=r"A decoder block normalises $\mathrm{cat}(u,\rho d)$ by GroupNorm before anything else reads it. A group "
        r"that lies entirely in $d$'s channels gives the same output for every $\rho$ (exactly when $\epsilon=0$; to a "
        r"relative $\epsilon(\rho^{-2}-1)/2v$ otherwise), a group inside $u$ does not see $\rho$, and only the one group "
        r"that straddles the boundary (when the group size does not divide $u$'s channels) changes. The scaling also "
        r"reaches the block's output through its residual 1×1 convolution, which reads the concatenation unnormalised.",
        source=Source(part=24, equation="App. C (paper)", paper=PAPER),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        derive=_derive_c242,
        check=_check_c242,
        tests=(T + "test_groupnorm_scale_invariance_property", T + "test_block_paths_the_scaling_survives_on",
               T + "test_straddling_groups_examples"),
        remark="Ma et al. (App. C) report on ImageNet-64 with 39 NFE that scaling only the residual path's input gives FID "
        "1.58, scaling only the normalised path 1.57, and both (Skip-Tuning) 1.57; the toy cannot check those numbers. "
        "With EDM's 32 groups and its channel counts, most decoder concatenations have a straddling group "
        "(e.g. 256 + 128 channels in groups of 12).",
    )
)


# --- C24.3 can rho be absorbed into the weights? ---------------------------------------------------------
def _check_c243(device) -> CheckResult:
    rho = 0.6
    # (a) a U-Net whose every decoder concatenation is aligned with its groups: the absorbed model is the tuned one
    torch.manual_seed(243)
    net = unet.UNet(channels=8, channel_mult=(1, 1), groups=8)
    for m in net.modules():  # eps = 0: the statement is about the exact GroupNorm
        if isinstance(m, torch.nn.GroupNorm):
            m.eps = 0.0
    D = unet.EDMDenoiser(net, 0.5)
    straddles = sum(len(stn.straddling_groups(b.norm0.num_channels - c, c, b.norm0.num_groups))
                    for b, c in zip(net.dec, reversed(net.skip_channels)))
    absorbed = stn.absorbed_denoiser(D, rho).net
    x = torch.randn(8, 1, 16, 16, generator=generator("cpu", 2431))
    c = torch.zeros(8)
    with torch.no_grad():
        tuned, plain = net(x, c, stn.rho_schedule(net.n_skips - 1, rho)), net(x, c)
        gap_aligned = ((tuned - absorbed(x, c)).norm() / (tuned - plain).norm()).item()
    # (b) the trained toy: the share of the tuning's effect on D that the absorbed model does not reproduce
    rows = [r for r in experiments.result("skip-tuning")["denoiser"] if abs(r["rho"] - rho) < 1e-12]
    shares = {r["sigma"]: r["not_absorbed"] / r["effect"] for r in rows}
    return CheckResult(
        (
            Measurement("aligned groups everywhere, eps = 0: |tuned - absorbed| / |tuned - plain|", gap_aligned, 3e-5),
            Measurement("straddling groups in that U-Net's decoder", straddles, 0),
            Measurement("trained toy: share of the effect not absorbed, max over sigma (little absorbed at high noise)", max(shares.values()), 0.8, relation=">="),
            Measurement("trained toy: share of the effect not absorbed, min over sigma (about half absorbed at low noise)", min(shares.values()), 0.35, relation=">="),
            Measurement("trained toy: share not absorbed at sigma <= 2, max (the rescaling reproduces 40-60% there)",
                        max(v for s_, v in shares.items() if s_ <= 2.0), 0.65),
        ),
        setting=f"rho_bottom = {rho}; (a) a random 16x16 U-Net with channels 8, one resolution change, 8 groups (all "
        "boundaries aligned), GroupNorm's eps set to 0, in float32; (b) the trained toy (two of six decoder blocks straddle), E||D_tuned - D_absorbed|| over "
        "E||D_tuned - D|| at sigma = " + ", ".join(f"{s:g}: {v:.2f}" for s, v in shares.items()),
        device="cpu",
    )


register(
    Claim(
        id="C24.3",
        devices=("cpu",),  # exact or tiny: runs on the CPU whatever device is asked for
        experiments=("skip-tuning",),
        title="Part of Skip-Tuning is a weight rescaling; the straddling groups carry the rest",
        statement=r"In an EDM decoder block, scaling the popped skip by $\rho$ acts (C24.2) through the residual 1×1 "
        r"convolution, where it is exactly the same as multiplying that convolution's columns for $d$ by $\rho$, and through "
        r"the straddling GroupNorm group, where it cannot be folded into any weight. When no group straddles, the whole of "
        r"Skip-Tuning is a weight rescaling; on the trained toy (two of six decoder blocks straddle, in groups of "
        r"twelve channels) the rescaling reproduces about half of the tuning's effect on the denoiser at low and "
        r"middle noise levels and little of it at the highest.",
        source=Source(part=24, equation="Remark 3.2 (paper)", paper=PAPER),
        kind=Kind.IDENTITY,
        chapter=CHAPTER,
        check=_check_c243,
        tests=(T + "test_rescaled_residual_weights_absorb_rho_property", T + "test_block_paths_the_scaling_survives_on",
               T + "test_straddling_group_is_not_absorbed_by_a_fit", T + "test_absorbed_denoiser_matches_an_aligned_network"),
        erratum="The paper's Remark 3.2 (as the catalogue records it) says ρ cannot be absorbed into the weights because "
        "GroupNorm and SiLU come before the convolution. That holds for the block's main path, but EDM's decoder blocks "
        "also read the concatenation through a 1×1 residual convolution, before any normalisation, and there ρ is "
        "exactly a rescaling of that convolution's weights; on the main path GroupNorm removes ρ altogether except in a "
        "group that straddles the boundary. So ρ is not absorbable only because of the straddling groups (and "
        "GroupNorm's ε); the paper's own App. C ablation, in which the residual path alone reproduces the FID gain, is "
        "consistent with this.",
    )
)


# --- C24.8 Su's interpretations (documented) -------------------------------------------------------------
register(
    Claim(
        id="C24.8",
        title="Su's reading of Skip-Tuning: skips as a linear bias, FreeU's frequencies, ODE against SDE, DiT's residuals",
        statement=r"Su's interpretations, none of them a mathematical statement: long skips act as an inductive bias "
        r"towards simple, nearly linear predictions, so weakening them adds non-linearity that few-step samplers lack; "
        r"after FreeU, skips carry high-frequency detail and the backbone denoises, so ODE samplers, noisy at few "
        r"steps, gain from smaller $\rho$, while SDE samplers, too smooth at few steps, might want $\rho>1$; "
        r"$\rho_{top}$ stays at 1 because the skip nearest the input shapes the output most; networks without long "
        r"skips (DiT) could tune their residual branches the same way.",
        source=Source(part=24, equation="§ Personal thoughts", paper=PAPER),
        kind=Kind.DOCUMENTED,
        chapter=CHAPTER,
        remark="Interpretations, recorded as such: they are about trained networks at scale and about what a "
        "network's internals 'do', and none states a quantity. The chapter reports, next to each, what the toy "
        "showed; a toy cannot confirm or refute an interpretation of large models. Su says his ODE/SDE "
        "observations come from his own experiments.",
    )
)


# --- the sweep's findings (C24.4-C24.7), empirical ------------------------------------------------------------
def _cells(res: dict) -> dict:
    """{(sampler, nfe): {rho: row}} of the sweep's grid."""
    out: dict = {}
    for r in res["grid"]:
        out.setdefault((r["sampler"], r["nfe"]), {})[r["rho"]] = r
    return out


def _significant(v: dict) -> bool:
    """A paired difference whose 95% interval excludes 0."""
    return abs(v["mean"]) > v["half"]


def _check_c244(device) -> CheckResult:
    rows = experiments.result("skip-tuning")["complexity"]
    lo = min(float(k) for k in rows[0]["grad"])
    up, down, biggest = [], [], 0.0
    for r in rows:
        d, se = r["grad_vs_rho1"][str(lo)]
        (up if d > 5 * se else down if d < -5 * se else []).append(r["sigma"])
        biggest = max(biggest, abs(d) / r["grad"]["1.0"])
    ratios = [sum(v for _, v in r["ratios"]) / len(r["ratios"]) for r in rows]
    return CheckResult(
        (
            Measurement(f"noise levels where the proxy at rho = {lo:g} exceeds rho = 1's by > 5 SE (the paper's direction)", len(up), 0),
            Measurement("noise levels where it is lower by > 5 SE (the opposite)", len(down), 3, relation=">="),
            Measurement("of those, levels that are not among the three lowest (the statement's 'three lowest')",
                        len(set(down) - set(sorted(r["sigma"] for r in rows)[:3])), 0),
            Measurement("largest relative change of the proxy over the levels", biggest, 0.03),
        ),
        setting=f"trained toy, E||grad_x U|| over {len(rows)} noise levels (sigma = "
        + ", ".join(f"{r['sigma']:g}" for r in rows) + f"), rho_bottom = {lo:g} against 1, paired over the same images "
        f"and probes: higher at sigma = {up}, lower at sigma = {down}. The paper's norm ratio, mean over the skips at "
        "rho = 1: " + ", ".join(f"{v:.2f}" for v in ratios) + " by sigma (EDM on ImageNet-64: 0.446)",
        device="cpu",
    )


register(
    Claim(
        id="C24.4",
        devices=("cpu",),  # reads the sweep: runs on the CPU whatever device is asked for
        experiments=("skip-tuning",),
        title="Weaker skips, a more complex network? Not on the toy",
        statement=r"The paper reports (Fig. 3) that $\mathbb E_x\|\nabla_xU(x)\|$ of EDM's trained network grows "
        r"steadily as $\rho$ decreases. On the trained toy the proxy changes by at most 3%, and where the change is "
        r"clear (more than five standard errors: the three lowest of five noise levels) it goes the other way: "
        r"$\rho_{bottom}=0.3$ gives a *smaller* Jacobian than $\rho=1$. Only at the highest noise level is it larger, "
        r"by three standard errors.",
        source=Source(part=24, equation="eq. (3) (paper)", paper=PAPER),
        kind=Kind.EMPIRICAL,
        chapter=CHAPTER,
        check=_check_c244,
        tests=(T + "test_gradient_norm_against_the_dense_jacobian", T + "test_norm_ratios_against_the_recorded_tensors"),
        remark="The proxy is the Frobenius norm of the network's input-output Jacobian, by Hutchinson's estimator; the "
        "paper does not say which norm of the Jacobian it uses. A toy trained on a law whose denoiser is nearly linear "
        "within each component need not behave like a large network on natural images; the catalogue already "
        "expected no guarantee here.",
    )
)


def _check_c245(device) -> CheckResult:
    res = experiments.result("skip-tuning")
    cells = _cells(res)
    rhos = sorted(next(iter(cells.values())))
    samplers = sorted({s for s, _ in cells})
    nfes = sorted({n for _, n in cells})
    monotone = sum(all(cells[(s, a)][r]["fd"]["mean"] > cells[(s, b)][r]["fd"]["mean"] for a, b in zip(nfes, nfes[1:]))
                   for s in samplers for r in rhos)
    best = {k: min(v, key=lambda r: v[r]["fd"]["mean"]) for k, v in cells.items()}
    u_shaped = sum(1 for k, b in best.items() if rhos[0] < b < 1.0 and _significant(cells[k][b]["vs_rho1"]["fd"]))
    falls = {s for s in samplers if all(cells[(s, a)][r]["fd"]["mean"] > cells[(s, b)][r]["fd"]["mean"]
                                        for r in rhos for a, b in zip(nfes, nfes[1:]))}
    falls_mismatch = len(falls ^ {"euler", "heun", "dpmpp_2m"})
    helped = sorted(k for k, v in cells.items() if any(r < 1.0 and v[r]["vs_rho1"]["fd"]["mean"] < 0 and _significant(v[r]["vs_rho1"]["fd"])
                                                    for r in rhos))
    effect = max(abs(v[r]["vs_rho1"]["fd"]["mean"]) / v[1.0]["fd"]["mean"] for v in cells.values() for r in rhos)
    more_hf = sum(1 for v in cells.values() if v[rhos[0]]["vs_rho1"]["high"]["mean"] > 0 and _significant(v[rhos[0]]["vs_rho1"]["high"]))
    return CheckResult(
        (
            Measurement("(sampler, rho) pairs whose FD falls with every NFE step, share", monotone / (len(samplers) * len(rhos)), 0.75, relation=">="),
            Measurement("samplers other than Euler, Heun and DPM-Solver++(2M) whose FD falls with NFE at every rho, or of those "
                        "three, ones whose FD does not (the statement's 'three of four, not iPNDM')", falls_mismatch, 0),
            Measurement("cells (sampler, NFE) with an interior optimum below rho = 1 (a U-shape), significant", u_shaped, 0),
            Measurement("cells where some rho < 1 improves FD significantly", len(helped), 2),
            Measurement("of those, cells other than Heun and DPM-Solver++(2M) at the smallest NFE", len(set(helped) - {("heun", nfes[0]), ("dpmpp_2m", nfes[0])}), 0),
            Measurement("largest change of FD from rho = 1's, relative", effect, 0.06),
            Measurement(f"cells where rho = {rhos[0]:g} raises the high-frequency power significantly, share",
                        more_hf / len(cells), 1.0, relation=">="),
        ),
        setting=f"trained toy; {', '.join(samplers)} at NFE {nfes} from shared noises ({res['grid'][0]['fd']['values'].__len__()} "
        f"seeds); rho_bottom in {rhos}; best rho per cell: "
        + "; ".join(f"{s} {n}: {best[(s, n)]:g}" for s, n in sorted(cells)),
        device="cpu",
    )


register(
    Claim(
        id="C24.5",
        devices=("cpu",),  # reads the sweep: runs on the CPU whatever device is asked for
        experiments=("skip-tuning",),
        title="The paper's regularities on the toy: NFE helps, Skip-Tuning barely moves the samples",
        statement=r"The paper reports that at fixed $\rho$ quality improves with NFE, that each NFE has a U-shaped optimum "
        r"in $\rho<1$, and that the optimum moves towards 1 as NFE grows. On the trained toy, quality (the Fréchet "
        r"distance of the samples' pooled features to the exact law) improves with NFE for three samplers of four "
        r"(iPNDM is best at the smallest budget); there is no U-shaped optimum below 1 in any cell, Skip-Tuning "
        r"improves the samples significantly in two cells of twelve (at the edge of the grid, where the sampler's error "
        r"is largest), and it changes the distance by under 6% anywhere. What it does consistently is add "
        r"high-frequency power: in every cell, $\rho_{bottom}=0.3$ gives the samples more fine-scale power than "
        r"$\rho=1$, which helps only the sampler whose samples are too smooth (Euler, in the spectrum).",
        source=Source(part=24, equation="§4 (paper)", paper=PAPER),
        kind=Kind.EMPIRICAL,
        chapter=CHAPTER,
        check=_check_c245,
        tests=("tests/test_skip_toy.py::test_sample_metrics_on_exact_and_wrong_samples",
               "tests/test_skip_toy.py::test_steps_and_grids_spend_the_stated_nfe"),
        remark="An honest negative on a toy, not a verdict on the paper: the toy network is within a few percent of the "
        "exact denoiser, and the samplers' own discretisation error dominates what Skip-Tuning could correct. With the "
        "optimum at the edge of the grid, whether it moves with NFE cannot be read off.",
    )
)


def _check_c246(device) -> CheckResult:
    rows = experiments.result("skip-tuning")["windows"]
    every = next(r for r in rows if r["window"] == "everywhere")
    windows = [r for r in rows if isinstance(r["window"], list)]
    ramps = {r["window"]: r for r in rows if isinstance(r["window"], str) and r["window"].startswith("ramp")}
    best = min(windows, key=lambda r: r["vs_rho1"]["spectrum"]["mean"])
    share = best["vs_rho1"]["spectrum"]["mean"] / every["vs_rho1"]["spectrum"]["mean"]
    high, low = ramps["ramp, strongest at high noise"], ramps["ramp, strongest at low noise"]
    return CheckResult(
        (
            Measurement("spectrum: share of rho-everywhere's change carried by the best single window", share, 0.5, relation=">="),
            Measurement("the best window differs from the statement's 0.3 <= sigma < 1.5 (1 = yes)", float(best["window"] != [0.3, 1.5]), 0),
            Measurement("largest FD change of any window or ramp, relative to rho = 1's FD",
                        max(abs(r["vs_rho1"]["fd"]["mean"]) for r in rows) / (every["fd"]["mean"] - every["vs_rho1"]["fd"]["mean"]), 0.03),
        ),
        setting="trained toy, Euler with 9 NFE; rho_bottom = 0.6 inside one log-sigma window, 1 outside; change of the "
        "power-spectrum error from rho = 1 (paired): everywhere " + f"{every['vs_rho1']['spectrum']['mean']:+.4f}; "
        + "; ".join(f"[{r['window'][0]:g}, {r['window'][1]:g}) ({r['steps_inside']} steps) {r['vs_rho1']['spectrum']['mean']:+.4f}" for r in windows)
        + f"; ramp strongest at high noise {high['vs_rho1']['spectrum']['mean']:+.4f} (FD {high['vs_rho1']['fd']['mean']:+.4f}), "
        f"at low noise {low['vs_rho1']['spectrum']['mean']:+.4f} (FD {low['vs_rho1']['fd']['mean']:+.4f})",
        device="cpu",
    )


register(
    Claim(
        id="C24.6",
        devices=("cpu",),  # reads the sweep: runs on the CPU whatever device is asked for
        experiments=("skip-tuning",),
        title="Where in time Skip-Tuning acts",
        statement=r"The paper's window search (§5.2) finds intermediate noise levels the most useful place to tune the "
        r"skips. On the toy (Euler, 9 NFE, $\rho_{bottom}=0.6$ in one window of five), the single window "
        r"$0.3\le\sigma<1.5$ carries most of the tuning's effect on the power spectrum; no window or ramp changes the "
        r"Fréchet distance by more than 3%.",
        source=Source(part=24, equation="§5.2 (paper)", paper=PAPER),
        kind=Kind.EMPIRICAL,
        chapter=CHAPTER,
        check=_check_c246,
        tests=(T + "test_time_dependent_rho_window", T + "test_ramp_rho_is_linear_in_log_sigma"),
        remark="A reduced search: five windows instead of the paper's thirteen, one sampler and budget, and the two "
        "linear ramps in log sigma (strongest at high noise, which the paper prefers for EDM's data prediction, and the "
        "reverse) reported in the setting.",
    )
)


def _check_c247(device) -> CheckResult:
    rows = {r["rho"]: r for r in experiments.result("skip-tuning")["losses"]}
    points = experiments.config_of("skip-tuning")["loss_points"]
    lo = min(rows)
    r = rows[lo]
    above = {k: v for k, v in rows.items() if k > 1.0}
    hi = max(above) if above else None
    return CheckResult(
        (
            Measurement(f"pixel loss, rho = {lo:g} minus rho = 1, in standard errors", r["pixel_vs_rho1"] / r["pixel_vs_rho1_se"], 5, relation=">="),
            Measurement(f"feature loss, rho = {lo:g} minus rho = 1, in standard errors (the paper: lower)", r["feature_vs_rho1"] / r["feature_vs_rho1_se"], 4, relation=">="),
            Measurement("rho with the smallest feature loss (>= 1: a fit of rho to it would not choose Skip-Tuning)",
                        min(rows, key=lambda k: rows[k]["feature"]), 1.0, relation=">="),
        ),
        setting=f"trained toy; EDM-weighted losses on one fixed set of {points} (x0, sigma, noise) draws, sigma from "
        "the training distribution; feature map: 4x4 block means. Excess over the exact denoiser's loss, by rho: "
        + "; ".join(f"{k:g}: pixel {v['pixel'] - v['exact_pixel']:.5f}, feature {v['feature'] - v['exact_feature']:.5f}" for k, v in sorted(rows.items()))
        + ("" if hi is None else f"; rho = {hi:g} against 1: feature {rows[hi]['feature_vs_rho1']:+.2e} ± {rows[hi]['feature_vs_rho1_se']:.1e}"),
        device="cpu",
    )


register(
    Claim(
        id="C24.7",
        devices=("cpu",),  # reads the sweep: runs on the CPU whatever device is asked for
        experiments=("skip-tuning",),
        title="Pixel loss up, feature loss — also up on the toy",
        statement=r"The paper reports (Table 8, $\rho=0.8$) that Skip-Tuning raises the pixel-space denoising loss and "
        r"lowers a feature-space one, and that tuning $\rho$ on the feature loss picks $\rho>1$. On the toy, with the "
        r"4×4 block means as features, $\rho_{bottom}=0.3$ raises both losses (by more than five and four standard "
        r"errors), and the feature loss is smallest at $\rho\ge1$ — which agrees with the paper's second observation, "
        r"not its first.",
        source=Source(part=24, equation="Table 8 (paper)", paper=PAPER),
        kind=Kind.EMPIRICAL,
        chapter=CHAPTER,
        check=_check_c247,
        tests=("tests/test_skip_toy.py::test_features_are_block_means",),
        remark="The feature map is ours: block means are the coarse structure a classifier's features respond to and "
        "what the chapter's Fréchet distance measures; the paper's features come from a pretrained network. The pixel "
        "loss rising is guaranteed in spirit (the network was trained at rho = 1 to minimise it), not in fact.",
    )
)
