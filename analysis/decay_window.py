"""Where a decay histogram is fitted: the observed part of one laser period from just before
the pulse, wherever the pulse lies in the TCSPC range (docs/methods.md, "Decays and lifetimes").

A reverse start-stop card (TimeHarp 200) or a cable delay puts the pulse anywhere in the range,
and the range may be longer than the period (TimeHarp 200: 287.7 ns at a 200 ns period) or the
card may record only part of it. :func:`decay_window` finds the window, :meth:`DecayWindow.fold`
puts a full-range histogram on its bins and :func:`wrap_delays` does the same to single photons'
delays, so that the whole decay, the bright state's and each level's share one window. Fits are
:func:`spad.analysis.lifetimes.fit_decay`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = ["DecayWindow", "decay_window", "wrap_delays"]

#: Share of the photons left out at either end when measuring the span the delays occupy.
_SPAN_TAIL = 0.005
#: How much longer than the stated period the occupied span may be before the header is
#: taken to contradict the data (plus two bins of jitter).
_SPAN_SLACK = 1.02


@dataclass(frozen=True)
class DecayWindow:
    """The stretch of a decay histogram that is fitted: the observed part of one laser period
    from just before the pulse.

    Attributes
    ----------
    start_bin
        First bin of the window in the histogram's own bins.
    n_bins
        Bins in the window: at most one period.
    bin_width_s
        Histogram bin width (s).
    period_s
        The period the fit models: the stated sync period, or the TCSPC range when the delays
        occupy more than the stated period (a header that contradicts the data).
    wrap_bins
        Delays are taken modulo this many bins from ``start_bin``: one period when the TCSPC
        range covers it (a photon one period after the window's start belongs to its start),
        else the whole range (rolled within itself, as before alignment).
    note
        Why the stated period was not used (``None`` when it was).
    """

    start_bin: int
    n_bins: int
    bin_width_s: float
    period_s: float
    wrap_bins: int
    note: str | None = None

    @property
    def edges(self) -> np.ndarray:
        """Bin edges (s after the sync) of the window, ``n_bins + 1``."""
        return (self.start_bin + np.arange(self.n_bins + 1)) * self.bin_width_s

    @property
    def wrap_s(self) -> float:
        """The wrapping length of delays (s), for :func:`wrap_delays`."""
        return self.wrap_bins * self.bin_width_s

    def fold(self, row: np.ndarray, shift_bins: int = 0) -> np.ndarray:
        """A full-range histogram on the window's bins, moved ``shift_bins`` earlier first
        (a detector's cable delay) and wrapped as :func:`wrap_delays` wraps delays."""
        row = np.asarray(row, dtype=np.float64)
        idx = np.mod(np.arange(row.size) - shift_bins - self.start_bin, self.wrap_bins)
        keep = idx < self.n_bins
        return np.bincount(idx[keep], weights=row[keep], minlength=self.n_bins)


def wrap_delays(delays_s: np.ndarray, edges: np.ndarray, wrap_s: float | None = None
                ) -> np.ndarray:
    """Delays (s, already moved by their detector's shift) wrapped by ``wrap_s`` (default: the
    edges' span) to lie from ``edges[0]``, as :meth:`DecayWindow.fold` wraps a histogram;
    delays that then lie beyond ``edges[-1]`` fall outside the window's bins."""
    lo = float(edges[0])
    span = float(edges[-1]) - lo if wrap_s is None else float(wrap_s)
    x = np.asarray(delays_s, dtype=np.float64) - lo
    # np.mod of a float is slow (~70 ns a photon). It returns a value in [0, span) unchanged
    # and one in [-span, 0) plus span (the usual case: the pulse late in the TCSPC range puts
    # most delays before the window's start), the same float either way; only the rest need it
    far = None
    if x.size and (x.min() < -span or x.max() >= span):
        far = (x < -span) | (x >= span)
        far_x = np.mod(x[far], span)
    np.add(x, span, out=x, where=x < 0.0)
    if far is not None:
        x[far] = far_x
    x += lo
    return x


def _observed(y: np.ndarray, p_zero: float = 1e-3, near: int = 20) -> tuple[int, int]:
    """Bins ``[a, b)`` of a window left after cutting runs of empty bins at either end that
    the counts around them make too unlikely to be chance (probability below ``p_zero``):
    stretches the card does not record (a TimeHarp 200 records about 194 ns of a 200 ns
    period). The expected counts of such a bin are taken as the lower of the window's median
    and the mean of the ``near`` bins next to the run."""
    nz = np.nonzero(y)[0]
    if nz.size == 0:
        return 0, y.size
    median = float(np.median(y))
    first, last = int(nz[0]), int(nz[-1])

    def chance(run: int, level: float) -> bool:
        return run * min(median, level) < -np.log(p_zero)

    a = 0 if chance(first, float(y[first:first + near].mean())) else first
    tail = y.size - 1 - last
    b = y.size if chance(tail, float(y[max(last + 1 - near, 0):last + 1].mean())) else last + 1
    return a, b


def decay_window(counts: np.ndarray, bin_width_s: float, period_s: float,
                 margin_s: float = 10e-9) -> DecayWindow:
    """Where to fit a decay: the observed part of one laser period from just before the pulse.

    The photons of a TCSPC histogram need not start at bin 0: a reverse start-stop card
    (TimeHarp 200) or a cable delay puts the pulse anywhere in the range, and the range may be
    longer than the period (TimeHarp 200: 287.7 ns at a 200 ns period). The window starts
    ``min(margin_s, period / 20)`` before the rising edge of the summed decay and spans one
    period; where the range is longer, delays wrap by one period into it. Empty stretches at
    either end that the background rules out as chance are not fitted (the card did not record
    there).

    Parameters
    ----------
    counts
        Decay histogram over the whole TCSPC range (detectors aligned and summed).
    bin_width_s
        Bin width (s).
    period_s
        Stated sync period (s).
    margin_s
        Largest stretch fitted before the rising edge.

    Returns
    -------
    DecayWindow
        With ``note`` set when the photons occupy more than the stated period: the header
        contradicts the data, and the TCSPC range is modelled as the period.
    """
    y = np.asarray(counts, dtype=np.float64)
    w = float(bin_width_s)
    n_range = y.size
    total = float(y.sum())
    n_period = max(1, int(round(period_s / w)))
    note = None
    if total > 0:
        c = np.cumsum(y)
        lo = int(np.searchsorted(c, _SPAN_TAIL * total))
        hi = int(np.searchsorted(c, (1 - _SPAN_TAIL) * total))
        if hi - lo + 1 > _SPAN_SLACK * n_period + 2:
            note = (f"the delays occupy {(hi - lo + 1) * w * 1e9:.4g} ns, more than the stated "
                    f"laser period of {period_s * 1e9:.4g} ns: the header contradicts the "
                    f"data, so the decay is fitted over the whole TCSPC range "
                    f"({n_range * w * 1e9:.4g} ns) taken as the period")
            n_period = n_range
    if n_range <= n_period or total <= 0:
        # the range is at most one period: every bin is a distinct delay
        period = period_s if note is None else n_range * w
        whole = DecayWindow(0, n_range, w, max(period, n_range * w * (1 - 1e-9)), n_range, note)
    else:
        peak = int(np.argmax(y))
        below = np.nonzero(y[:peak + 1] < y[peak] / 2)[0]
        rise = int(below[-1]) + 1 if below.size else peak
        margin = int(round(min(margin_s, n_period * w / 20) / w))
        start = rise - margin if rise >= margin else rise - margin + n_period
        whole = DecayWindow(start, n_period, w, n_period * w, n_period, note)
    a, b = _observed(whole.fold(y))
    return replace(whole, start_bin=whole.start_bin + a, n_bins=b - a)
