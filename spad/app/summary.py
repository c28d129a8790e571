"""The text summary of one particle's record, as ``spad analyze``, ``spad acquire`` and ``spad
replay`` print it."""

from __future__ import annotations

from typing import Any


def particle_summary(rec: dict[str, Any]) -> str:
    """The lines ``spad analyze`` prints for one particle's record (without ``--json``)."""

    def f(v: Any, fmt: str) -> str:
        return "n/a" if v is None else format(v, fmt)

    c = rec["classification"] or {}
    lines = [
        f"{rec['file']}",
        f"  verdict      {c.get('label', 'n/a')} ("
        + ("" if c.get("label") == "uncertain" else f"p = {f(c.get('probability'), '.2f')}, ")
        + f"P(dimer) = {f(c.get('p_dimer'), '.2f')}, from {c.get('model', 'n/a')})"
        + (f"\n  why          {c['reason']}" if c.get("reason") else ""),
        f"  photons      {rec['photons']} in {f(rec['duration_s'], '.1f')} s "
        f"({f(rec['count_rate_cps'], '.0f')} cps; ROI {f(rec['roi_start_s'], '.2f')}-"
        f"{f(rec['roi_end_s'], '.2f')} s, {rec['roi_source'] or 'n/a'}; "
        f"{f(rec['n_bursts'], 'd')} burst(s) "
        f"removed)",
        f"  g2(0)        {f(rec['g2_zero'], '.3f')} ± {f(rec['g2_zero_err'], '.3f')}   "
        f"gated {f(rec['g2_zero_gated'], '.3f')}",
        f"  lifetime     {f(rec['lifetime_ns'], '.2f')} ± {f(rec['lifetime_err_ns'], '.2f')} ns"
        f" (bright state; chi2/dof {f(rec['lifetime_chi2_reduced'], '.2f')}, Durbin-Watson "
        f"{f(rec['lifetime_durbin_watson'], '.3f')}, 5 % bound "
        f"{f(rec['lifetime_dw_bound_5pct'], '.3f')})",
        f"  blinking     ON fraction {f(rec['on_fraction'], '.2f')}, "
        f"{f(rec['n_levels'], 'd')} levels, "
        f"alpha ON {f(rec['alpha_on'], '.2f')} OFF {f(rec['alpha_off'], '.2f')}, switching "
        f"{f(rec['switching_rate_hz'], '.1f')}/s",
    ]
    if rec["peak_ev"] is not None:
        lines.append(f"  spectrum     peak {rec['peak_ev']:.4f} eV "
                     f"({f(rec['peak_nm'], '.1f')} nm), FWHM {f(rec['fwhm_mev'], '.1f')} meV, "
                     "shift " + ("n/a" if rec["shift_mev"] is None
                                 else f"{rec['shift_mev']:+.1f} meV"))
    else:
        lines.append("  spectrum     none")
    for note in rec["notes"]:
        lines.append(f"  note         {note}")
    return "\n".join(lines)
