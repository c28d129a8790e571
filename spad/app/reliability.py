"""Calibration of stated probabilities: reliability bins with Wilson intervals, pooled bins,
log loss, the tables and the reliability diagram of :mod:`spad.app.calibrate`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

MIN_PARTICLES_PER_BIN = 20
"""Particles a pooled probability bin holds at least (see :func:`pool_bins`)."""


def wilson(k: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95 % for z = 1.96) of a share k / n (Wilson, J. Am. Stat. Assoc.
    22, 209 (1927)); unlike the normal one it stays inside [0, 1] and is not empty at k = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def _bin_stats(lo: float, hi: float, pd: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    n, k = int(pd.size), float(y.sum())
    w_lo, w_hi = wilson(k, n)
    stated, observed = float(pd.mean()), k / n
    return {"p_lo": round(lo, 2), "p_hi": round(hi, 2), "n": n, "dimers": int(k),
            "stated": stated, "observed": observed, "wilson_lo": w_lo, "wilson_hi": w_hi,
            "within_5_points": abs(observed - stated) <= 0.05,
            "stated_inside_wilson": w_lo <= stated <= w_hi}


def reliability_bins(pd: np.ndarray, y: np.ndarray) -> list[dict[str, Any]]:
    """Stated P(dimer) against the observed share of dimers in bins of 0.1 (the last holds
    1.0), with the 95 % Wilson interval of each observed share; empty bins left out."""
    ok = np.isfinite(pd)
    pd, y = pd[ok], y[ok]
    idx = np.minimum((pd * 10).astype(int), 9)
    return [_bin_stats(i / 10, (i + 1) / 10, pd[idx == i], y[idx == i])
            for i in range(10) if np.any(idx == i)]


def pool_bins(bins: list[dict[str, Any]], min_n: int) -> list[dict[str, Any]]:
    """Neighbouring bins of :func:`reliability_bins` merged, from the middle (0.5) outwards on
    each side, until each holds at least ``min_n`` particles (a last sparse bin on a side joins
    its neighbour), so that no bin rests on a handful of particles. Even so a middle bin of 20-50
    particles has a 95 % interval of +/- 14-22 points (1.96 sqrt(p (1 - p) / n) at p = 0.5):
    a 5-point miss is only told from counting noise above about 400 particles in a bin, and
    :func:`hosmer_lemeshow` judges all bins at once. Stated p is the mean over the pooled
    particles."""
    def merge(group: list[dict[str, Any]]) -> dict[str, Any]:
        n = sum(b["n"] for b in group)
        k = sum(b["dimers"] for b in group)
        stated = sum(b["stated"] * b["n"] for b in group) / n
        w_lo, w_hi = wilson(k, n)
        return {"p_lo": min(b["p_lo"] for b in group), "p_hi": max(b["p_hi"] for b in group),
                "n": n, "dimers": k, "stated": stated, "observed": k / n,
                "wilson_lo": w_lo, "wilson_hi": w_hi,
                "within_5_points": abs(k / n - stated) <= 0.05,
                "stated_inside_wilson": w_lo <= stated <= w_hi}

    out: list[dict[str, Any]] = []
    for side in ([b for b in bins if b["p_lo"] < 0.5][::-1], [b for b in bins
                                                            if b["p_lo"] >= 0.5]):
        # the outermost bin (p < 0.1, p >= 0.9) usually holds most particles: kept apart when
        # full, so that it does not swallow the sparse middle
        outer = [side.pop()] if side and side[-1]["n"] >= min_n and side[-1]["p_lo"] in (
            0.0, 0.9) else []
        groups: list[list[dict[str, Any]]] = []
        cur: list[dict[str, Any]] = []
        for b in side:
            cur.append(b)
            if sum(c["n"] for c in cur) >= min_n:
                groups.append(cur)
                cur = []
        if cur:   # a sparse rest joins the pooled bin next to it, or stands alone (n shown)
            if groups:
                groups[-1].extend(cur)
            else:
                groups.append(cur)
        out.extend(merge(g) for g in [*groups, *([outer] if outer else [])])
    return sorted(out, key=lambda b: b["p_lo"])


def reliability_table(reports: dict[str, dict[str, Any]]) -> str:
    """The pooled reliability bins of each held-out population as a markdown table."""
    rows = ["| held-out population | evidence | P(dimer) bin | particles | stated | observed "
            "(95 % Wilson) | within 5 points |", "|---|---|---|---|---|---|---|"]
    for name, rep in reports.items():
        for which, summ in (("with spectrum", rep["summary"]),
                            ("photons only", rep["photons_only"]["summary"])):
            for b in summ["reliability_pooled"]:
                rows.append(f"| {name} ({rep['n']}) | {which} | {b['p_lo']:.1f}-{b['p_hi']:.1f}"
                             f" | {b['n']} | {b['stated']:.3f} | {b['observed']:.3f} "
                             f"({b['wilson_lo']:.3f}-{b['wilson_hi']:.3f}) | "
                             f"{'yes' if b['within_5_points'] else 'no'} |")
    return "\n".join(rows)


def hosmer_lemeshow(bins: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the stated probabilities hold over all bins at once: the Hosmer-Lemeshow
    statistic sum n (observed - stated)^2 / (stated (1 - stated)) over the (pooled) bins and its
    chi^2 tail probability. On a population no fit saw its degrees of freedom are the number of
    bins (Hosmer & Lemeshow, Commun. Stat. A 9, 1043 (1980); Hosmer, Lemeshow & Sturdivant,
    Applied Logistic Regression, 3rd ed., sec. 5.2.2, on external validation). A small
    ``p_value`` says the stated probabilities are off by more than the bins' counting noise;
    one bin missing by a few points in a bin of 25 particles is such noise (its 95 % interval
    is about +/- 20 points)."""
    from scipy.special import chdtrc

    used = [b for b in bins if 0.0 < b["stated"] < 1.0]
    stat = sum(b["n"] * (b["observed"] - b["stated"]) ** 2 / (b["stated"] * (1 - b["stated"]))
               for b in used)
    return {"statistic": float(stat), "bins": len(used),
            "p_value": float(chdtrc(len(used), stat)) if used else None}


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def reliability_figure(reports: dict[str, dict[str, Any]], path: Path) -> Path:
    """Stated P(dimer) against the observed share of dimers per probability bin (bins of 0.1
    pooled to at least :data:`MIN_PARTICLES_PER_BIN` particles, :func:`pool_bins`), for each
    held-out population with and without the spectrum (error bars: 95 % Wilson intervals;
    numbers: particles in each bin between p = 0.05 and 0.95; open markers off the line: a
    bin still under that count, the last of a small population)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, label="perfect calibration")
    ax.fill_between([0, 1], [-0.05, 0.95], [0.05, 1.05], color="0.9", label="± 5 points")
    for i, (name, rep) in enumerate(reports.items()):
        for which, style in (("with spectrum", "-o"), ("photons only", "--s")):
            b = (rep["summary"] if which == "with spectrum"
                 else rep["photons_only"]["summary"])["reliability_pooled"]
            x = np.array([v["stated"] for v in b])
            y = np.array([v["observed"] for v in b])
            n = np.array([v["n"] for v in b])
            err = np.clip(np.array([[v["observed"] - v["wilson_lo"] for v in b],
                                    [v["wilson_hi"] - v["observed"] for v in b]]), 0.0, None)
            # a bin left with fewer particles (the last of a small population) is drawn open
            # and off the line: a line to a bin of one particle drew the eye to it
            full = n >= MIN_PARTICLES_PER_BIN
            line, marker = style[:-1], style[-1]
            ax.plot(x[full], y[full], line + marker, color=f"C{i}", lw=1, ms=4,
                    label=f"{name}, {which} (n = {rep['n']})")
            ax.errorbar(x, y, err, fmt="none", ecolor=f"C{i}", elinewidth=1, capsize=2)
            if (~full).any():
                ax.plot(x[~full], y[~full], marker, color=f"C{i}", ms=4, mfc="none")
            for xi, yi, ni in zip(x, y, n, strict=True):
                # the outer bins' counts (in the tables) would pile up in the corners
                if 0.05 < xi < 0.95:
                    ax.annotate(str(ni), (xi, yi), fontsize=6, color=f"C{i}",
                                xytext=(3, -8), textcoords="offset points")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("stated P(dimer)")
    ax.set_ylabel("observed share of dimers")
    ax.set_title("verdict calibration on held-out simulated particles\n(bins pooled to "
                 f">= {MIN_PARTICLES_PER_BIN} particles, 95 % Wilson intervals; open: fewer)",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
