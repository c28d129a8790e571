"""Report files of ``spad analyze --report DIR``: per-particle figures, population table and plots.

Figures are drawn from the analysis results as they are (fit curves, levels, histograms), never
recomputed here, so the report shows exactly the numbers the table gives.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display needed (CI, batch nodes)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from spad.analysis.particle import ParticleResult  # noqa: E402
from spad.analysis.schema import CLASSIFICATION_FIELDS, csv_columns  # noqa: E402
from spad.output import replacing  # noqa: E402

CSV_FIELDS = csv_columns()
"""Columns of population.csv, derived from :mod:`spad.analysis.schema`."""


def _spectrum_panel(ax: Any, r: ParticleResult) -> None:
    sp = r.spectrum
    if sp is None:
        ax.text(0.5, 0.5, "no spectrum", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    ax.plot(sp.energy, sp.intensity, ".", ms=2, color="0.4", label="data")
    ax.plot(sp.energy, sp.fit, "-", color="C3", label=f"{sp.model} fit")
    ax.axvline(sp.peak_ev, color="C3", lw=0.6, ls=":")
    ax.set_xlabel("energy (eV)")
    ax.set_ylabel(f"intensity ({sp.unit}/eV)")
    ax.set_title(f"peak {sp.peak_ev:.4f} eV ({sp.peak_nm:.1f} nm), FWHM {sp.fwhm_mev:.1f} meV",
                 fontsize=9)
    ax.legend(fontsize=7)


def _trace_panels(ax: Any, axh: Any, r: ParticleResult) -> None:
    tr = r.photons.trace
    if tr is None or tr.total.size == 0:
        ax.set_axis_off()
        axh.set_axis_off()
        return
    t = tr.bin_edges_s[:-1]
    ax.plot(t, tr.total, lw=0.4, color="C0")
    b = r.photons.blinking
    if b is not None:
        per_bin = b.level_intensity * tr.bin_width_s
        ax.hlines(per_bin, b.level_start, b.level_end, color="C1", lw=1.0, label="levels")
        ax.axhline(b.threshold_rate * tr.bin_width_s, color="k", lw=0.6, ls="--",
                   label="ON/OFF threshold")
        ax.legend(fontsize=7, loc="upper right")
    # Short levels can have extreme rates; scale to the trace, not to them.
    ax.set_ylim(0, 1.15 * max(float(tr.total.max()), 1.0))
    _roi_marks(ax, r)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"counts / {tr.bin_width_s * 1e3:.3g} ms")
    axh.hist(tr.total, bins=min(60, max(10, int(tr.total.max()) + 1)), orientation="horizontal",
             color="C0")
    axh.set_xlabel("bins")
    axh.set_ylim(ax.get_ylim())
    axh.tick_params(labelleft=False)


def _roi_marks(ax: Any, r: ParticleResult) -> None:
    """Grey out what the analyses left out: outside the ROI, and the photon bursts."""
    p = r.photons
    tr = p.trace
    t0, t1 = float(tr.bin_edges_s[0]), float(tr.bin_edges_s[-1])
    marked = False
    if p.roi_source in ("set", "auto"):
        label = f"outside ROI ({p.roi_source}: {p.roi_start_s:.2f}-{p.roi_end_s:.2f} s)"
        if p.roi_start_s > t0:
            ax.axvspan(t0, p.roi_start_s, color="0.6", alpha=0.35, lw=0, label=label)
            label = None
        if p.roi_end_s < t1:
            ax.axvspan(p.roi_end_s, t1, color="0.6", alpha=0.35, lw=0, label=label)
        marked = True
    b = p.blinking
    if b is not None and b.bursts is not None and len(b.bursts):
        for k, (bs, be) in enumerate(zip(b.bursts.start, b.bursts.end, strict=True)):
            ax.axvspan(bs, be, color="C3", alpha=0.5, lw=0,
                       label=f"{len(b.bursts)} burst(s) removed" if k == 0 else None)
        marked = True
    if marked:
        ax.legend(fontsize=7, loc="upper right")


def _residual_panel(ax: Any, r: ParticleResult) -> None:
    """Weighted residuals of the decay fit drawn above it (the bright-state fit whose lifetime
    is quoted, else the whole decay's), with its fit-quality figures."""
    p = r.photons
    quoted = p.lifetime_bright is not None and p.decay_bright is not None
    fit = p.lifetime_bright if quoted else p.lifetime_all
    if fit is None or fit.residuals.size == 0 or p.decay_fitted_edges_s is None:
        ax.set_axis_off()
        return
    edges = p.decay_fitted_edges_s
    centres = 0.5 * (edges[1:] + edges[:-1])
    sel = (centres >= fit.fit_start) & (centres <= fit.fit_stop)
    n = min(int(sel.sum()), fit.residuals.size)
    ax.plot(centres[sel][:n] * 1e9, fit.residuals[:n], ".", ms=1, color="C3")
    ax.axhline(0, color="k", lw=0.5)
    flag = "  residuals correlated" if fit.residuals_correlated else ""
    ax.text(0.01, 0.95, f"χ²/dof {fit.chi2_reduced:.2f}, Durbin-Watson {fit.durbin_watson:.2f} "
            f"(5 % bound {fit.dw_bound_5pct:.2f}, 1 % {fit.dw_bound_1pct:.2f}){flag}",
            transform=ax.transAxes, va="top", fontsize=6)
    ax.set_xlabel("delay after the sync (ns, detectors aligned)")
    ax.set_ylabel("residual (σ)", fontsize=7)


def _decay_panel(ax: Any, r: ParticleResult) -> None:
    """The bright-state decay and the fit whose lifetime is quoted, with its residuals below
    (the whole decay in grey); without a bright-state fit, the whole decay and its fit."""
    p = r.photons
    if p.decay_fitted is None or p.decay_fitted_edges_s is None:
        ax.set_axis_off()
        return
    # The decay as fitted: both detectors summed after aligning their cable delays.
    edges = p.decay_fitted_edges_s
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax.semilogy(centres * 1e9, np.maximum(p.decay_fitted, 0.5), ".", ms=1.5, color="0.7",
                label="all photons")
    quoted = p.lifetime_bright is not None and p.decay_bright is not None
    data = p.decay_bright if quoted else p.decay_fitted
    fit = p.lifetime_bright if quoted else p.lifetime_all
    if quoted:
        ax.semilogy(centres * 1e9, np.maximum(data, 0.5), ".", ms=1.5, color="C0",
                    label="bright state")
    if fit is not None and fit.model.size:
        sel = (centres >= fit.fit_start) & (centres <= fit.fit_stop)
        n = min(int(sel.sum()), fit.model.size)
        x, model = centres[sel][:n], np.asarray(fit.model[:n], dtype=float)
        what = "bright state" if quoted else "whole decay"
        tau = (f"τ = {p.lifetime_ns:.2f} ± {p.lifetime_err_ns:.2f} ns" if quoted
               and p.lifetime_ns is not None else
               f"<τ> = {fit.tau_intensity_mean * 1e9:.1f} ns (not quoted)")
        ax.semilogy(x * 1e9, model, color="C3", label=f"{what} {fit.n_exp}-exp fit, {tau}")
        ax.set_title(f"{what}: {tau}", fontsize=9)
    ax.set_ylabel("counts")
    ax.tick_params(labelbottom=False)
    ax.legend(fontsize=7)


def _coarse(lags_s: np.ndarray, counts: np.ndarray, width_s: float) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """Sum adjacent lag bins to about ``width_s`` so sparse histograms stay readable."""
    k = max(1, int(round(width_s / (lags_s[1] - lags_s[0])))) if lags_s.size > 1 else 1
    n = counts.size // k * k
    return lags_s[:n].reshape(-1, k).mean(axis=1), counts[:n].reshape(-1, k).sum(axis=1)


def _g2_panel(ax: Any, r: ParticleResult) -> None:
    c = r.photons.correlation
    if c is None:
        ax.set_axis_off()
        return
    # Display only: fewer than ~10 pairs per bin at the peaks reads as noise, so bins are
    # summed to 2-8 ns depending on how many pairs there are.
    width = 2e-9 if c.counts.sum() > 1e5 else 8e-9
    lags, counts = _coarse(c.lags_s, c.counts, width)
    ax.step(lags * 1e9, counts, where="mid", lw=0.6, color="C2", label="all photons")
    cg = r.photons.correlation_gated
    if cg is not None:
        lags, counts = _coarse(cg.lags_s, cg.counts, width)
        ax.step(lags * 1e9, counts, where="mid", lw=0.6, color="C4", label="gated")
    g = r.photons
    title = "g2(0) = n/a"
    if g.g2_zero is not None:
        title = f"g2(0) = {g.g2_zero:.3f} ± {g.g2_zero_err:.3f}"
        if g.g2_zero_gated is not None:
            title += f", gated {g.g2_zero_gated:.3f}"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("lag (ns)")
    ax.set_ylabel(f"coincidences / {width * 1e9:g} ns")
    ax.legend(fontsize=7)


def particle_figure(r: ParticleResult, path: str | Path) -> Path:
    """Write the four-panel PNG of one particle: spectrum, trace + histogram (ROI and bursts
    marked), decay with the weighted residuals of its fit, g2."""
    fig = plt.figure(figsize=(11, 7.5), dpi=100)
    gs = fig.add_gridspec(2, 3, width_ratios=[3, 1, 3])
    _spectrum_panel(fig.add_subplot(gs[0, 0:2]), r)
    _g2_panel(fig.add_subplot(gs[0, 2]), r)
    _trace_panels(fig.add_subplot(gs[1, 0]), fig.add_subplot(gs[1, 1]), r)
    sub = gs[1, 2].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.05)
    ax_decay = fig.add_subplot(sub[0])
    _decay_panel(ax_decay, r)
    _residual_panel(fig.add_subplot(sub[1], sharex=ax_decay), r)
    c = r.classification
    verdict = ("" if c is None else f" — {c.label}" + (
        "" if c.probability is None else f" (p = {c.probability:.2f})"))
    fig.suptitle(f"{Path(r.file).name}{verdict}", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def population_csv(records: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write one row per particle (the CSV_FIELDS columns)."""
    path = Path(path)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for rec in records:
            c = rec.get("classification") or {}
            row = {k: rec.get(k) for k in CSV_FIELDS}
            row.update({k: c.get(k) for k in CLASSIFICATION_FIELDS})
            w.writerow(row)
    return path


def _peaks(records: Sequence[dict[str, Any]], label: str) -> np.ndarray:
    """Peak energies (eV) of the particles classified as ``label`` that have a spectrum."""
    return np.array([r["peak_ev"] for r in records
                     if r.get("peak_ev") is not None
                     and (r.get("classification") or {}).get("label") == label], float)


def red_shift(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean peak energies of monomers and dimers and the mean red shift with its error (meV).

    The error is the standard error of the difference of the two means.
    """
    mono, dim = _peaks(records, "monomer"), _peaks(records, "dimer")
    out: dict[str, Any] = {"n_monomers": int(mono.size), "n_dimers": int(dim.size),
                           "monomer_mean_ev": None, "dimer_mean_ev": None,
                           "shift_mev": None, "shift_err_mev": None}
    if mono.size:
        out["monomer_mean_ev"] = float(mono.mean())
    if dim.size:
        out["dimer_mean_ev"] = float(dim.mean())
    if mono.size >= 2 and dim.size >= 2:
        out["shift_mev"] = float((mono.mean() - dim.mean()) * 1e3)
        out["shift_err_mev"] = float(math.sqrt(mono.var(ddof=1) / mono.size
                                               + dim.var(ddof=1) / dim.size) * 1e3)
    return out


def population_figure(records: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Peak-energy histograms of monomers and dimers with the mean red shift."""
    stats = red_shift(records)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    all_peaks = [r["peak_ev"] for r in records if r.get("peak_ev") is not None]
    if all_peaks:
        bins = np.linspace(min(all_peaks) - 0.005, max(all_peaks) + 0.005, 30)
        for label, colour in (("monomer", "C0"), ("dimer", "C3")):
            x = _peaks(records, label)
            if x.size:
                ax.hist(x, bins=bins, alpha=0.6, color=colour, label=f"{label}s (n={x.size})")
                ax.axvline(float(np.mean(x)), color=colour, ls="--", lw=1)
    title = "emission peak of single particles"
    if stats["shift_mev"] is not None:
        title += f": dimer red shift {stats['shift_mev']:.1f} ± {stats['shift_err_mev']:.1f} meV"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("peak energy (eV)")
    ax.set_ylabel("particles")
    if all_peaks:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no spectra", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


# The survey report of ``spad batch``: the whole population at once, from table fields only.

SURVEY_CLASSES = ("monomer", "dimer", "uncertain")


def _values(records: Sequence[dict[str, Any]], key: str, label: str) -> np.ndarray:
    """Finite values of ``key`` of the particles classified as ``label``."""
    x = np.array([r[key] for r in records if r.get(key) is not None
                  and (r.get("classification") or {}).get("label") == label], float)
    return x[np.isfinite(x)]


def _distribution(x: np.ndarray, edges: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {"n": int(x.size), "mean": None, "sd": None, "median": None,
                           "counts": np.histogram(x, edges)[0].tolist()}
    if x.size:
        out.update(mean=float(x.mean()), median=float(np.median(x)))
    if x.size >= 2:
        out["sd"] = float(x.std(ddof=1))
    return out


def _edges(records: Sequence[dict[str, Any]], key: str, n: int = 30) -> np.ndarray:
    x = np.array([r[key] for r in records if r.get(key) is not None], float)
    x = x[np.isfinite(x)]
    if not x.size:
        return np.linspace(0.0, 1.0, n + 1)
    lo, hi = float(x.min()), float(x.max())
    pad = 0.02 * (hi - lo) or 0.01 * max(abs(hi), 1e-3)
    return np.linspace(lo - pad, hi + pad, n + 1)


def survey_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Population statistics of a survey (``survey.json`` of ``spad batch --report``).

    ``records`` are table rows as dicts (at least ``file``, ``classification.label``,
    ``peak_ev``, ``g2_zero``, ``lifetime_ns``, ``error``). Returns the verdict counts, the red
    shift of :func:`red_shift` (mean dimer minus monomer peak energy and its standard error),
    and per class the distribution (n, mean, sd, median, histogram counts on shared bin edges)
    of the peak energy (eV), g2(0) and the bright-state lifetime (ns).
    """
    ok = [r for r in records if not r.get("error")]
    counts = {c: sum((r.get("classification") or {}).get("label") == c for r in ok)
              for c in SURVEY_CLASSES}
    out: dict[str, Any] = {"files": len(records), "failed": len(records) - len(ok),
                           "verdicts": counts, "red_shift": red_shift(ok)}
    for key, name in (("peak_ev", "peak_energy_ev"), ("g2_zero", "g2_zero"),
                      ("lifetime_ns", "lifetime_ns")):
        edges = _edges(ok, key)
        out[name] = {"bin_edges": edges.tolist(),
                     **{c: _distribution(_values(ok, key, c), edges) for c in SURVEY_CLASSES}}
    return out


def survey_figure(records: Sequence[dict[str, Any]], path: str | Path,
                  stats: dict[str, Any] | None = None) -> Path:
    """Four panels: peak-energy histograms of monomers and dimers with the mean red shift ±
    its standard error, g2(0) and lifetime distributions per class, verdict counts."""
    stats = stats or survey_summary(records)
    colours = {"monomer": "C0", "dimer": "C3", "uncertain": "0.5"}
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), dpi=100)
    panels = (("peak_energy_ev", "peak energy (eV)", ("monomer", "dimer")),
              ("g2_zero", "g2(0)", SURVEY_CLASSES), ("lifetime_ns", "bright-state lifetime (ns)",
                                                      SURVEY_CLASSES))
    for ax, (name, xlabel, classes) in zip(axes.flat, panels, strict=False):
        edges = np.asarray(stats[name]["bin_edges"])
        shown = 0
        for c in classes:
            d = stats[name][c]
            if d["n"]:
                ax.stairs(d["counts"], edges, fill=True, alpha=0.5, color=colours[c],
                          label=f"{c}s (n={d['n']})")
                ax.axvline(d["mean"], color=colours[c], ls="--", lw=1)
                shown += d["n"]
        ax.set_xlabel(xlabel)
        ax.set_ylabel("particles")
        if shown:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
    rs = stats["red_shift"]
    title = "emission peak"
    if rs["shift_mev"] is not None:
        title += f": dimer red shift {rs['shift_mev']:.1f} ± {rs['shift_err_mev']:.1f} meV"
    axes[0, 0].set_title(title, fontsize=10)
    ax = axes[1, 1]
    labels = [*SURVEY_CLASSES, "failed"]
    values = [stats["verdicts"][c] for c in SURVEY_CLASSES] + [stats["failed"]]
    bars = ax.bar(labels, values, color=[colours[c] for c in SURVEY_CLASSES] + ["k"])
    ax.bar_label(bars)
    ax.set_ylabel("particles")
    ax.set_title(f"verdicts ({stats['files']} files)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(folder: Path, results: Sequence[ParticleResult],
                 records: Sequence[dict[str, Any]] | None = None) -> Path:
    """The files of ``spad analyze --report`` (also the desktop app's report): a PNG per
    particle, population.csv, population.png and population.json in ``folder``, each written
    whole or not at all. ``records`` default to the results' own."""
    if records is None:
        records = [r.record() for r in results]
    folder.mkdir(parents=True, exist_ok=True)
    # Each file under a temporary name, renamed when whole (spad.output).
    for r in results:
        with replacing(folder / (Path(r.file).stem + ".png")) as (tmp,):
            particle_figure(r, tmp)
    with replacing(folder / "population.csv") as (tmp,):
        population_csv(records, tmp)
    with replacing(folder / "population.png") as (tmp,):
        population_figure(records, tmp)
    with replacing(folder / "population.json") as (tmp,):
        tmp.write_text(json.dumps(red_shift(records), indent=1) + "\n")
    return folder
