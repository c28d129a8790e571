"""The plot panels of the desktop app, shared by the live and the analysis modes.

Each panel draws numbers it is given (arrays from the accumulators and fits of ``analysis/``)
and computes nothing but display conveniences (bin summing for readability, normalised
residuals of a fit it is handed). Units are in every axis label; values that were not measured
show as "n/a", never as a number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtGui, QtWidgets
from spad.analysis.level_grouping import BIC_MARGIN
from spad.analysis.schema import BY_NAME

pg.setConfigOptions(antialias=False, background="w", foreground="k")

LABEL_COLOURS = {"monomer": (31, 119, 180), "dimer": (214, 39, 40), "uncertain": (127, 127, 127)}
"""Colour of each verdict in every view (monomer blue, dimer red, uncertain grey)."""

GROUP_COLOURS = [(255, 127, 14), (44, 160, 44), (227, 119, 194), (140, 86, 75),
                 (188, 189, 34), (23, 190, 207), (148, 103, 189), (90, 90, 90)]
"""Colour of each intensity state's levels on the trace (state 0 the dimmest): none blue or red,
which are the trace's and the verdicts' colours."""


def fmt(value: Any, spec: str, unit: str = "") -> str:
    """A number for display, or ``n/a`` when it was not measured (None or not finite)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, spec) + (f" {unit}" if unit else "")


def no_si_prefix(plot: pg.PlotItem) -> None:
    """Units are in the labels: no automatic "(x0.001)" rescaling of the tick values."""
    for name in ("left", "bottom"):
        plot.getAxis(name).enableAutoSIPrefix(False)


class IntegerAxis(pg.AxisItem):
    """An axis of counts (particles, states): ticks on whole numbers only, never 0.5 (while
    ``integer`` is set; unset, the usual ticks)."""

    def __init__(self, orientation: str, integer: bool = True, **kwargs: Any) -> None:
        super().__init__(orientation, **kwargs)
        self.integer = integer

    def tickValues(self, minVal: float, maxVal: float,  # noqa: N802, N803 - pyqtgraph's names
                   size: float) -> list[tuple[float, list[float]]]:
        levels = super().tickValues(minVal, maxVal, size)
        if not self.integer:
            return levels
        if levels and levels[0][0] >= 1:
            return [(step, [v for v in values if float(v).is_integer()])
                    for step, values in levels if step >= 1]
        return [(1.0, [float(v) for v in range(math.ceil(minVal), math.floor(maxVal) + 1)])]


def _plot(title: str = "", axis_items: dict[str, pg.AxisItem] | None = None) -> pg.PlotWidget:
    w = pg.PlotWidget(axisItems=axis_items)
    w.setMinimumSize(160, 110)
    no_si_prefix(w.getPlotItem())
    w.showGrid(x=True, y=True, alpha=0.2)
    return w


class Info(QtWidgets.QLabel):
    """The numbers of a panel, above its plot: wraps instead of being clipped like a title."""

    def __init__(self, text: str = "") -> None:
        super().__init__(text)
        self.setWordWrap(True)
        self.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.setContentsMargins(4, 0, 4, 0)


def _stack(widget: QtWidgets.QWidget, *items: QtWidgets.QWidget) -> None:
    """Lay out ``items`` top to bottom: the leading labels and controls at their size, the last
    (the plot) taking the room left."""
    lay = QtWidgets.QVBoxLayout(widget)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(1)
    *head, plot = items
    for w in head:
        if isinstance(w, QtWidgets.QComboBox):  # a list at its own width, not stretched
            lay.addWidget(w, 0, QtCore.Qt.AlignLeft)
        else:
            lay.addWidget(w)
    lay.addWidget(plot, 1)


def coarse(lags_s: np.ndarray, counts: np.ndarray, width_s: float) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """Sum adjacent lag bins to about ``width_s`` (display only: sparse histograms read as
    noise otherwise; the g2(0) values come from the full-resolution histogram)."""
    k = max(1, int(round(width_s / (lags_s[1] - lags_s[0])))) if lags_s.size > 1 else 1
    n = counts.size // k * k
    return lags_s[:n].reshape(-1, k).mean(axis=1), counts[:n].reshape(-1, k).sum(axis=1)


class SpectrumPanel(QtWidgets.QWidget):
    """The emission spectrum in eV with its fitted line, peak, FWHM and red shift."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = _plot("spectrum")
        self.plot.setLabel("bottom", "photon energy (eV)")
        self.plot.setLabel("left", "intensity (ADU / eV)")
        self.plot.addLegend(offset=(-10, 10), labelTextSize="8pt")
        self.data = self.plot.plot([], [], pen=None, symbol="o", symbolSize=3,
                                   symbolBrush=(90, 90, 90), symbolPen=None, name="data")
        self.fit = self.plot.plot([], [], pen=pg.mkPen((214, 39, 40), width=2), name="fit")
        self.peak = pg.InfiniteLine(angle=90, pen=pg.mkPen((214, 39, 40), style=QtCore.Qt.DotLine))
        self.reference = pg.InfiniteLine(angle=90, pen=pg.mkPen((31, 119, 180),
                                                                style=QtCore.Qt.DashLine))
        self.plot.addItem(self.peak)
        self.plot.addItem(self.reference)
        self.peak.hide()
        self.reference.hide()
        self.info = Info()
        _stack(self, self.info, self.plot)

    def _show_fit(self, energy: np.ndarray | None, fit: np.ndarray | None) -> None:
        """The fitted line, and its legend entry only while there is one (a live spectrum has
        no fit: "fit" in the legend would claim one)."""
        legend = self.plot.getPlotItem().legend
        shown = any(sample.item is self.fit for sample, _label in legend.items)
        if energy is None:
            self.fit.setData([], [])
            if shown:
                legend.removeItem(self.fit)
        else:
            self.fit.setData(energy, fit)
            if not shown:
                legend.addItem(self.fit, "fit")

    def clear(self, message: str = "no spectrum") -> None:
        self.data.setData([], [])
        self._show_fit(None, None)
        self.peak.hide()
        self.reference.hide()
        self.info.setText(message)

    def show_result(self, sp: Any, shift_mev: float | None = None,
                    reference_ev: float | None = None) -> None:
        """Draw an :class:`spad.analysis.spectra.SpectrumResult` (or ``None``)."""
        if sp is None:
            self.clear()
            return
        unit = {"e": "e⁻", "adu": "ADU"}.get(sp.unit, sp.unit)
        self.plot.setLabel("left", f"intensity ({unit} / eV)")
        self.data.setData(sp.energy, sp.intensity)
        self._show_fit(sp.energy, sp.fit)
        if math.isfinite(sp.peak_ev):
            self.peak.setValue(sp.peak_ev)
            self.peak.show()
        if reference_ev is not None:
            self.reference.setValue(reference_ev)
            self.reference.show()
        else:
            self.reference.hide()
        title = (f"peak {fmt(sp.peak_ev, '.4f', 'eV')} ({fmt(sp.peak_nm, '.1f', 'nm')}), "
                 f"FWHM {fmt(sp.fwhm_mev, '.1f', 'meV')}, red shift "
                 f"{fmt(shift_mev, '+.1f', 'meV')}")
        if reference_ev is None:
            title += " (no monomer reference yet)"
        self.info.setText(title)

    def show_live(self, energy_ev: np.ndarray, intensity: np.ndarray, unit: str = "ADU") -> None:
        """A raw live spectrum (no fit yet): a fit, peak or reference of a particle shown
        before is cleared, as it does not belong to these data."""
        self.plot.setLabel("left", f"intensity ({unit} / eV)")
        self.data.setData(energy_ev, intensity)
        self._show_fit(None, None)
        self.peak.hide()
        self.reference.hide()
        self.info.setText("live spectrum: peak, FWHM and red shift when the particle is "
                          "finished")


class TracePanel(QtWidgets.QWidget):
    """Intensity trace with its histogram beside it, the ON/OFF threshold, the resolved levels
    (coloured by their BIC group) and a draggable region of interest."""

    roi_changed = QtCore.pyqtSignal(float, float)

    def __init__(self, roi: bool = True, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.trace_widget = _plot()
        self.hist_widget = _plot()
        self.hist_widget.setMinimumWidth(90)
        self.trace = self.trace_widget.getPlotItem()
        self.hist = self.hist_widget.getPlotItem()
        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        self.splitter.addWidget(self.trace_widget)
        self.splitter.addWidget(self.hist_widget)
        self.splitter.setStretchFactor(0, 5)
        self.splitter.setStretchFactor(1, 1)
        self.trace.setLabel("bottom", "time (s)")
        self.trace.setLabel("left", "counts / 10 ms")
        self.trace.showGrid(x=True, y=True, alpha=0.2)
        self.hist.setLabel("bottom", "bins")
        self.hist.setYLink(self.trace)
        self.hist.getAxis("left").setStyle(showValues=False)
        self.hist.getAxis("left").setWidth(8)
        self.curve = self.trace.plot([], [], pen=pg.mkPen((31, 119, 180), width=1))
        # long traces: draw at most ~ one point per pixel (peak-preserving)
        self.curve.setDownsampling(auto=True, method="peak")
        self.curve.setClipToView(True)
        self.hist_curve = self.hist.plot([], [], pen=pg.mkPen((31, 119, 180)),
                                         fillLevel=0, brush=(31, 119, 180, 100))
        self.threshold = pg.InfiniteLine(angle=0, pen=pg.mkPen("k", style=QtCore.Qt.DashLine),
                                         label="ON/OFF threshold",
                                         # right end, above the line, on white: readable over
                                         # the trace and never under the axis
                                         labelOpts={"position": 0.98, "color": "k",
                                                    "fill": (255, 255, 255, 210),
                                                    "anchors": [(1, 1), (1, 1)]})
        self.hist_threshold = pg.InfiniteLine(angle=0, pen=pg.mkPen("k",
                                                                    style=QtCore.Qt.DashLine))
        for plot, line in ((self.trace, self.threshold), (self.hist, self.hist_threshold)):
            plot.addItem(line)
            line.hide()
        self.levels: list[pg.PlotCurveItem] = []
        self.roi: pg.LinearRegionItem | None = None
        if roi:
            self.roi = pg.LinearRegionItem(brush=(255, 200, 0, 18),
                                           pen=pg.mkPen((200, 140, 0), width=2))
            self.roi.setZValue(-10)
            self.trace.addItem(self.roi)
            self.roi.hide()
            self.roi.sigRegionChangeFinished.connect(self._roi_moved)
        self.info = Info()
        _stack(self, self.info, self.splitter)

    def _roi_moved(self) -> None:
        lo, hi = self.roi.getRegion()
        self.roi_changed.emit(float(lo), float(hi))

    def show_trace(self, t_s: np.ndarray, counts: np.ndarray, bin_s: float,
                   threshold_per_bin: float | None = None) -> None:
        """The binned trace (``t_s`` bin starts) and its intensity histogram."""
        self.trace.setLabel("left", f"counts / {bin_s * 1e3:.3g} ms")
        self.curve.setData(t_s, counts, stepMode=None)
        if counts.size:
            top = int(counts.max())
            h = np.bincount(counts.astype(np.int64), minlength=top + 1)
            y = np.arange(top + 1)
            self.hist_curve.setData(h, y)
            self.trace.setYRange(0, 1.1 * max(top, 1), padding=0)
        for line in (self.threshold, self.hist_threshold):
            if threshold_per_bin is None:
                line.hide()
            else:
                line.setValue(threshold_per_bin)
                line.show()

    def show_levels(self, start: np.ndarray, end: np.ndarray, per_bin: np.ndarray,
                    group: np.ndarray | None = None) -> None:
        """Resolved levels as Full SMS draws them: each level a horizontal segment at its
        intensity over its dwell, coloured by its intensity state (BIC group), joined in time
        order by a thin staircase so that short levels read as steps, not as loose dots."""
        for item in self.levels:
            self.trace.removeItem(item)
        self.levels = []
        if start.size == 0:
            return
        order = np.argsort(start, kind="stable")
        start, end, per_bin = (np.asarray(a, float)[order] for a in (start, end, per_bin))
        groups = np.zeros(start.size, int) if group is None else np.asarray(group, int)[order]
        x = np.column_stack([start, end]).ravel()
        y = np.repeat(per_bin, 2)
        steps = pg.PlotCurveItem(x, y, pen=pg.mkPen((40, 40, 40, 170), width=1))
        self.trace.addItem(steps)
        self.levels.append(steps)
        for g in np.unique(groups):
            sel = np.repeat(groups == g, 2)
            item = pg.PlotCurveItem(x[sel], y[sel], connect="pairs",
                                    pen=pg.mkPen(GROUP_COLOURS[g % len(GROUP_COLOURS)], width=3))
            self.trace.addItem(item)
            self.levels.append(item)

    def clear_particle(self) -> None:
        """Take away what belonged to the particle shown before (levels, threshold, ROI)."""
        self.show_levels(np.empty(0), np.empty(0), np.empty(0))
        for line in (self.threshold, self.hist_threshold):
            line.hide()
        if self.roi is not None:
            self.roi.hide()

    def set_roi(self, lo: float, hi: float) -> None:
        if self.roi is None:
            return
        self.roi.blockSignals(True)
        self.roi.setRegion((lo, hi))
        self.roi.setBounds((lo, hi))
        self.roi.blockSignals(False)
        self.roi.show()


class BicPanel(QtWidgets.QWidget):
    """ΔBIC of the level grouping against the number of intensity states: how far each
    number of states lies below the best BIC, with the band of :data:`BIC_MARGIN` in which the
    fewest states are chosen. The absolute BIC spans tens of thousands (2 ln L of every photon)
    and hides that rule; the differences show it. Numbers of states far below the best are
    drawn as triangles on the top edge (their values are in the panel's text)."""

    TOP = 5 * BIC_MARGIN
    """Initial height of the ΔBIC axis: the band and its neighbours, not the 1-state outlier."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = _plot("level grouping", {"bottom": IntegerAxis("bottom")})
        self.plot.setLabel("bottom", "intensity states")
        self.plot.setLabel("left", "ΔBIC below the best")
        self.band = pg.LinearRegionItem((0, BIC_MARGIN), orientation="horizontal",
                                        movable=False, brush=(44, 160, 44, 40),
                                        pen=pg.mkPen(None))
        self.band.setZValue(-10)
        self.plot.addItem(self.band)
        self.curve = self.plot.plot([], [], pen=pg.mkPen("k"), symbol="o", symbolSize=6)
        self.off_scale = self.plot.plot([], [], pen=None, symbol="t1", symbolSize=10,
                                        symbolBrush=(90, 90, 90))
        self.best = self.plot.plot([], [], pen=None, symbol="o", symbolSize=11,
                                   symbolBrush=(214, 39, 40))
        self.info = Info()
        _stack(self, self.info, self.plot)

    def show_bic(self, bic: np.ndarray | None, n_states: int | None) -> None:
        if bic is None or len(bic) == 0 or not np.isfinite(np.asarray(bic, float)).any():
            for c in (self.curve, self.best, self.off_scale):
                c.setData([], [])
            self.info.setText("level grouping: n/a")
            return
        b = np.asarray(bic, float)
        g = np.arange(1, b.size + 1)
        ok = np.isfinite(b)
        delta = np.nanmax(b) - b            # 0 at the best, positive below it
        top = max(self.TOP, 1.15 * float(np.max(delta[ok & (delta <= self.TOP)])))
        shown = np.minimum(delta, top)      # off-scale values on the top edge
        self.curve.setData(g[ok], shown[ok])
        far = ok & (delta > top)
        self.off_scale.setData(g[far], np.full(int(far.sum()), top))
        if n_states is not None and 1 <= n_states <= b.size and ok[n_states - 1]:
            self.best.setData([n_states], [shown[n_states - 1]])
        else:
            self.best.setData([], [])
        self.plot.setXRange(0.5, b.size + 0.5, padding=0)
        self.plot.setYRange(-0.04 * top, top * 1.04, padding=0)
        text = (f"level grouping: {fmt(n_states, 'd')} states, the fewest within "
                f"{BIC_MARGIN:g} of the best BIC (green)")
        if far.any():
            text += "; off scale (ΔBIC): " + ", ".join(f"{k}: {delta[k - 1]:,.0f}"
                                                       for k in g[far])
        self.info.setText(text)


class DecayPanel(QtWidgets.QWidget):
    """The decay on a log scale with its fit, lifetimes and the normalised residuals."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.glw = pg.GraphicsLayoutWidget()
        # tall enough for the decay on a log scale and its residuals, each with a readable
        # axis label (below ~260 px their labels overlap)
        self.glw.setMinimumSize(200, 260)
        self.decay = self.glw.addPlot(row=0, col=0)
        self.resid = self.glw.addPlot(row=1, col=0)
        no_si_prefix(self.decay)
        no_si_prefix(self.resid)
        self.glw.ci.layout.setRowStretchFactor(0, 3)
        self.glw.ci.layout.setRowStretchFactor(1, 1)
        # the residuals' plot carries the x axis and its label: never squeezed below them
        self.resid.setMinimumHeight(100)
        for plot in (self.decay, self.resid):   # equal axis widths keep the x axes aligned
            plot.getAxis("left").setWidth(55)
        self.decay.setLogMode(y=True)
        self.decay.setLabel("left", "counts / bin")
        self.decay.showGrid(x=True, y=True, alpha=0.2)
        self.decay.hideAxis("bottom")
        self.resid.setXLink(self.decay)
        self.resid.setLabel("bottom", "delay after the sync (ns)")
        self.resid.setLabel("left", "resid. (σ)")
        self.resid.addLine(y=0, pen=pg.mkPen((120, 120, 120)))
        self.data = self.decay.plot([], [], pen=None, symbol="o", symbolSize=2,
                                    symbolBrush=(90, 90, 90), symbolPen=None)
        self.fit = self.decay.plot([], [], pen=pg.mkPen((214, 39, 40), width=2))
        self.res_curve = self.resid.plot([], [], pen=pg.mkPen((90, 90, 90)))
        self.info = Info()
        # which decay: all photons, the bright state, or one intensity state of the grouping
        self.choice = QtWidgets.QComboBox()
        # wide enough for "level 36: 0.42-0.65 s, 34.8 kcps (state 3)", but its longest entry
        # sets no minimum width (that held a 1366 px window 1757 px wide); the open list
        # shows the names whole
        self.choice.setSizeAdjustPolicy(
            QtWidgets.QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.choice.setMinimumContentsLength(20)
        self.choice.view().setMinimumWidth(self.choice.fontMetrics().averageCharWidth() * 48)
        self.choice.setToolTip("the decay shown: all photons, the bright (ON) state, one "
                               "intensity state of the level grouping (Levels panel), or one "
                               "single resolved level (the steps on the trace)")
        self.choice.setMaxVisibleItems(30)
        self.choice.hide()
        self.choice.currentIndexChanged.connect(self._choose)
        # None for a heading of the list (not a decay)
        self._sources: list[tuple[np.ndarray | None, np.ndarray | None, Any, str] | None] = []
        self._period_s: float | None = None
        # a fit's title takes two lines, three in a dock 600 px wide (a 1366 px screen): room
        # for them from the start, since a dock does not grow when its label wraps later (the
        # residuals' axis below would be clipped)
        self.info.setMinimumHeight(3 * self.info.fontMetrics().lineSpacing() + 4)
        _stack(self, self.choice, self.info, self.glw)

    def show_decays(self, sources: list[tuple[str, np.ndarray | None, np.ndarray | None, Any,
                                              str | None]],
                    period_s: float | None = None) -> None:
        """Offer several decays, each ``(name, edges_s, counts, fit, title)``; the one chosen in
        the panel's list is drawn (the same name as before stays chosen). An entry whose title
        is ``None`` is a heading of the list: shown, not selectable. ``period_s``: the laser
        period the decays were fitted over (see :meth:`show_decay`)."""
        self._period_s = period_s
        before = self.choice.currentText()
        self._sources = [None if src[4] is None else src[1:] for src in sources]
        self.choice.blockSignals(True)
        self.choice.clear()
        self.choice.addItems([src[0] for src in sources])
        for i, src in enumerate(self._sources):
            if src is None:
                self.choice.model().item(i).setEnabled(False)
        names = [src[0] for src in sources]
        self.choice.setCurrentIndex(names.index(before) if before in names else 0)
        self.choice.blockSignals(False)
        self.choice.setVisible(len(sources) > 1)
        self._choose(self.choice.currentIndex())

    def _choose(self, index: int) -> None:
        if 0 <= index < len(self._sources):
            src = self._sources[index]
            if src is not None:
                self.show_decay(*src)

    def show_decay(self, edges_s: np.ndarray | None, counts: np.ndarray | None,
                   fit: Any = None, title: str = "") -> None:
        """``counts`` on ``edges_s``; ``fit`` an :class:`spad.analysis.lifetimes.LifetimeResult`
        fitted to exactly these bins (its ``model`` covers ``fit_start..fit_stop``)."""
        if edges_s is None or counts is None or len(counts) == 0:
            for c in (self.data, self.fit, self.res_curve):
                c.setData([], [])
            self.info.setText("no decay (no laser period)")
            return
        centres = 0.5 * (edges_s[1:] + edges_s[:-1])
        # A fit window that starts just before a pulse early in the period wraps: it runs from
        # late in one period into the next (edges 190-390 ns at 200 ns). Drawn one period
        # earlier it reads as it is, from just before the sync (-10 ns) to the next pulse.
        period = self._period_s
        lead = period if period and edges_s[0] >= period / 2 else 0.0
        y = np.asarray(counts, float)
        pos = y > 0
        self.data.setData((centres[pos] - lead) * 1e9, y[pos])
        if fit is not None and getattr(fit, "model", np.empty(0)).size:
            sel = (centres >= fit.fit_start) & (centres <= fit.fit_stop)
            n = min(int(sel.sum()), fit.model.size)
            x = centres[sel][:n] - lead
            m = np.asarray(fit.model[:n], float)
            ok = m > 0
            self.fit.setData(x[ok] * 1e9, m[ok])
            # Pearson residuals: (data - model) / sqrt(model), ~N(0, 1) for a good Poisson fit
            r = (y[sel][:n][ok] - m[ok]) / np.sqrt(m[ok])
            self.res_curve.setData(x[ok] * 1e9, r)
            self.resid.show()
            self.resid.setMaximumHeight(16777215)
        else:
            self.fit.setData([], [])
            self.res_curve.setData([], [])
            self.resid.hide()       # no fit, no residuals: the space goes to the decay
            self.resid.setMaximumHeight(0)
        if self.resid.isVisible():
            self.decay.hideAxis("bottom")
        else:
            self.decay.setLabel("bottom", "delay after the sync (ns)")
        self.info.setText(title)


def lifetime_title(fit: Any, label: str) -> str:
    """Lifetimes of a fit, its intensity-weighted mean and its quality (χ²/dof, and the
    Durbin-Watson statistic against its 5 % bound: below it the residuals are correlated) for
    a panel title."""
    if fit is None:
        return f"{label}: no fit"
    taus = ", ".join(f"{t * 1e9:.2f}" for t in fit.taus)
    dw = fmt(getattr(fit, "durbin_watson", None), ".2f")
    bound = getattr(fit, "dw_bound_5pct", None)
    if dw != "n/a" and fmt(bound, ".2f") != "n/a":
        dw += f" (5 % bound {bound:.2f})"
    return (f"{label}: τ = {taus} ns, ⟨τ⟩ = {fit.tau_intensity_mean * 1e9:.2f} ± "
            f"{fit.tau_intensity_mean_err * 1e9:.2f} ns, χ²/dof = {fmt(fit.chi2_reduced, '.2f')}, "
            f"Durbin-Watson {dw}")


class G2Panel(QtWidgets.QWidget):
    """The coincidence histogram, raw and time-gated, with g2(0) ± its error."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = _plot("g2")
        self.plot.setLabel("bottom", "lag τ (ns)")
        self.plot.setLabel("left", "coinc. / bin")
        self.plot.addLegend(offset=(-10, 10), labelTextSize="8pt")
        self.raw = self.plot.plot([], [], pen=pg.mkPen((44, 160, 44), width=1), name="all photons")
        self.gated = self.plot.plot([], [], pen=pg.mkPen((148, 103, 189), width=1), name="gated")
        self.info = Info()
        _stack(self, self.info, self.plot)

    def show_g2(self, lags_s: np.ndarray | None, counts: np.ndarray | None,
                gated: np.ndarray | None, g2: float | None, g2_err: float | None,
                g2_gated: float | None = None, g2_gated_err: float | None = None) -> None:
        if lags_s is None or counts is None or len(counts) == 0:
            self.raw.setData([], [])
            self.gated.setData([], [])
            self.info.setText("g2(0) = n/a")
            return
        width = 2e-9 if counts.sum() > 1e5 else 8e-9
        lags, c = coarse(np.asarray(lags_s), np.asarray(counts), width)
        self.raw.setData(lags * 1e9, c, stepMode=None)
        if gated is not None and len(gated):
            lg, cg = coarse(np.asarray(lags_s), np.asarray(gated), width)
            self.gated.setData(lg * 1e9, cg)
        else:
            self.gated.setData([], [])
        # short: the g2 dock is low, and a longer label is clipped by the plot's height
        self.plot.setLabel("left", f"coinc. / {width * 1e9:g} ns")
        title = f"g2(0) = {fmt(g2, '.3f')} ± {fmt(g2_err, '.3f')}"
        if g2_gated is not None:
            title += f",  gated {fmt(g2_gated, '.3f')} ± {fmt(g2_gated_err, '.3f')}"
        self.info.setText(title)


class VerdictPanel(QtWidgets.QWidget):
    """Monomer / dimer / uncertain with its probability and each feature's evidence."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QtWidgets.QLabel("no verdict yet")
        f = self.label.font()
        f.setPointSize(16)
        f.setBold(True)
        self.label.setFont(f)
        self.detail = QtWidgets.QLabel("")
        self.detail.setWordWrap(True)
        self.detail.setAlignment(QtCore.Qt.AlignLeft | QtCore.Qt.AlignTop)
        self.plot = _plot()
        self.plot.setMinimumHeight(150)
        self.plot.setLabel("bottom", "log-odds for dimer")
        ax = self.plot.getPlotItem().getAxis("left")
        ax.setWidth(95)
        font = QtGui.QFont()
        font.setPointSize(8)
        # one label per bar: let the labels fill the axis (pyqtgraph drops some at 80 %)
        ax.setStyle(hideOverlappingLabels=False, textFillLimits=[(0, 1.0)], tickFont=font)
        self.bars = pg.BarGraphItem(x0=[], y=[], height=0.6, width=[], brush="k")
        self.plot.addItem(self.bars)
        self.plot.addLine(x=0, pen=pg.mkPen("k"))
        self._labels: list[str] = []
        # the labels' lines follow the room each row has
        self.plot.getPlotItem().vb.sigResized.connect(self._label_axis)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        # the notes can run to many lines: they scroll, so that the evidence plot keeps the
        # room its feature labels need (pyqtgraph drops labels that do not fit)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidget(self.detail)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.NoFrame)
        # whole lines: a part of the fifth line showing reads as text cut off
        scroll.setFixedHeight(4 * self.detail.fontMetrics().lineSpacing())
        lay.addWidget(self.label)
        lay.addWidget(scroll)
        lay.addWidget(self.plot, 1)

    def show_verdict(self, label: str | None, probability: float | None,
                     p_dimer: float | None, evidence: Mapping[str, float] | None,
                     model: str = "", extra: str = "",
                     inputs: Mapping[str, Sequence[float | None]] | None = None,
                     no_information: Sequence[str] = (), reason: str = "") -> None:
        """Show a verdict; each evidence bar is labelled with its feature's value ± error
        (``inputs``) and, for the features in ``no_information``, marked as carrying none. For
        ``uncertain`` the first clause of ``reason`` says why (p may be high: a verdict must
        also hold with the blinking statistics at their fitted weight)."""
        if label is None:
            self.label.setText("no verdict yet")
            self.label.setStyleSheet("")
            self.detail.setText(extra)
            self.bars.setOpts(x0=[], y=[], width=[])
            return
        colour = LABEL_COLOURS.get(label, (0, 0, 0))
        likelier = ("" if label != "uncertain" or p_dimer is None
                    else "dimer, " if p_dimer >= 0.5 else "monomer, ")
        self.label.setText(f"{label}  ({likelier}p = {fmt(probability, '.2f')})")
        self.label.setStyleSheet("color: rgb({},{},{})".format(*colour))
        why = reason.split("; ")[0] if label == "uncertain" and reason else ""
        self.detail.setText(f"P(dimer) = {fmt(p_dimer, '.2f')}; model: {model}"
                            + (f"\nuncertain: {why}" if why else "")
                            + (f"\n{extra}" if extra else ""))
        ev = dict(evidence or {})
        names = list(ev)
        vals = np.array([ev[n] for n in names], float)
        y = np.arange(len(names))
        brushes = [pg.mkBrush(LABEL_COLOURS["dimer"] if v > 0 else LABEL_COLOURS["monomer"])
                   for v in vals]
        self.bars.setOpts(x0=np.minimum(vals, 0), y=y, width=np.abs(vals), brushes=brushes)
        self._labels = [evidence_label(n, (inputs or {}).get(n), n in no_information)
                        for n in names]
        self._label_axis()
        if names:
            self.plot.setYRange(-0.7, len(names) - 0.3, padding=0)

    def _label_axis(self) -> None:
        """Label the bars: name over value where each row has room for two lines, else one
        line each (a short dock at 1366×768 overlapped the two-line labels). pyqtgraph drops
        a label wider than its axis, so the axis takes the widest line."""
        ax = self.plot.getPlotItem().getAxis("left")
        metrics = QtGui.QFontMetrics(ax.style["tickFont"])
        rows = max(len(self._labels), 1)
        two = self.plot.getPlotItem().vb.height() / rows >= 2.2 * metrics.lineSpacing()
        texts = [t if two else t.replace("\n", " ") for t in self._labels]
        ax.setTicks([list(enumerate(texts))])
        widest = max((metrics.horizontalAdvance(line) for t in texts
                      for line in t.split("\n")), default=0)
        pad = max(0, ax.style["tickLength"]) + ax.style["tickTextOffset"][0] + 8
        ax.setWidth(max(95, widest + pad))


def evidence_label(name: str, value: Sequence[float | None] | None, none: bool) -> str:
    """The label of one evidence bar: the feature's short name, its value ± error, and
    "no info" when it carried no evidence."""
    text = (BY_NAME[name].label if name in BY_NAME else "") or name
    if value is not None and value[0] is not None:
        v, e = value[0], value[1]
        text += f"\n{v:.3g}" + ("" if e is None else f" ± {e:.2g}")
    elif value is not None:
        text += "\nn/a"
    return text + (" (no info)" if none else "")


class PeakHistogramPanel(QtWidgets.QWidget):
    """Peak-energy histograms of the session's monomers and dimers with the mean red shift."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = _plot("emission peaks", {"left": IntegerAxis("left")})
        self.plot.setLabel("bottom", "peak energy (eV)")
        self.plot.setLabel("left", "particles")
        # one row, top left, above the bars (see show_peaks' y range)
        self.plot.addLegend(offset=(10, 5), labelTextSize="8pt", colCount=2)
        self.items: list[Any] = []
        self.info = Info()
        _stack(self, self.info, self.plot)

    def show_peaks(self, peaks: Mapping[str, Sequence[float]], stats: Mapping[str, Any]) -> None:
        """``peaks[label]``: peak energies (eV); ``stats``: :func:`spad.app.report.red_shift`."""
        for it in self.items:
            self.plot.removeItem(it)
        self.items = []
        legend = self.plot.getPlotItem().legend
        if legend is not None:
            legend.clear()
        every = [p for v in peaks.values() for p in v]
        top = 0
        if every:
            bins = np.linspace(min(every) - 0.005, max(every) + 0.005, 25)
            for label in ("monomer", "dimer"):
                x = np.asarray(peaks.get(label, []), float)
                if x.size == 0:
                    continue
                h, e = np.histogram(x, bins=bins)
                top = max(top, int(h.max()))
                c = LABEL_COLOURS[label]
                item = pg.PlotDataItem(e, h, stepMode="center", fillLevel=0,
                                       brush=(*c, 110), pen=pg.mkPen(c),
                                       name=f"{label}s (n={x.size})")
                self.plot.addItem(item)
                line = pg.InfiniteLine(float(x.mean()), angle=90,
                                       pen=pg.mkPen(c, style=QtCore.Qt.DashLine))
                self.plot.addItem(line)
                self.items += [item, line]
        title = "emission peaks"
        if stats.get("shift_mev") is not None:
            title += (f": mean dimer red shift {stats['shift_mev']:.1f} ± "
                      f"{stats['shift_err_mev']:.1f} meV")
        elif every:
            title += ": red shift needs ≥ 2 monomers and ≥ 2 dimers with spectra"
        else:
            title += ": no spectra yet"
        self.info.setText(title)
        self.plot.setVisible(bool(every))  # empty axes (0-1 eV) would only mislead
        if top:
            # room above the bars for the legend, which sits top left
            self.plot.setYRange(0, 1.8 * top, padding=0)


SCATTER_FEATURES = {
    "g2_zero": "g2(0)", "g2_zero_gated": "g2(0), gated", "lifetime_ns": "lifetime (ns)",
    "on_fraction": "ON fraction", "n_levels": "intensity states", "fano_factor": "Fano factor",
    "peak_ev": "peak energy (eV)", "fwhm_mev": "FWHM (meV)", "shift_mev": "red shift (meV)",
    "count_rate_cps": "count rate (counts/s)",
}


INTEGER_FEATURES = {"n_levels"}
"""Features that are counts: their axes tick on whole numbers."""


class ScatterPanel(QtWidgets.QWidget):
    """Two features of every particle against each other, coloured by verdict; a click on a
    point selects that particle (``picked`` gives its index)."""

    picked = QtCore.pyqtSignal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.x = QtWidgets.QComboBox()
        self.y = QtWidgets.QComboBox()
        for box, default in ((self.x, "lifetime_ns"), (self.y, "g2_zero")):
            for k, v in SCATTER_FEATURES.items():
                box.addItem(v, k)
            box.setCurrentIndex(list(SCATTER_FEATURES).index(default))
            box.currentIndexChanged.connect(self._redraw)
            # the longest name sets no minimum: the plot keeps its width in a narrow dock
            box.setSizeAdjustPolicy(QtWidgets.QComboBox.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(5)
        self.plot = _plot("", {"bottom": IntegerAxis("bottom", False),
                               "left": IntegerAxis("left", False)})
        self.info = Info()
        self.scatter = pg.ScatterPlotItem(size=9, pen=pg.mkPen("k", width=0.5))
        self.scatter.sigClicked.connect(self._clicked)
        self.plot.addItem(self.scatter)
        self.records: list[Mapping[str, Any]] = []
        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("x"))
        top.addWidget(self.x, 1)
        top.addWidget(QtWidgets.QLabel("y"))
        top.addWidget(self.y, 1)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(top)
        lay.addWidget(self.info)
        lay.addWidget(self.plot, 1)

    def show_records(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.records = list(records)
        self._redraw()

    def _redraw(self) -> None:
        kx, ky = self.x.currentData(), self.y.currentData()
        self.plot.setLabel("bottom", SCATTER_FEATURES[kx])
        self.plot.setLabel("left", SCATTER_FEATURES[ky])
        for side, key in (("bottom", kx), ("left", ky)):   # numbers of states are whole
            self.plot.getAxis(side).integer = key in INTEGER_FEATURES
        spots = []
        for i, r in enumerate(self.records):
            vx, vy = r.get(kx), r.get(ky)
            if vx is None or vy is None:
                continue
            label = (r.get("classification") or {}).get("label", "uncertain")
            spots.append({"pos": (vx, vy), "data": i,
                          "brush": pg.mkBrush(LABEL_COLOURS.get(label, (0, 0, 0)))})
        self.scatter.setData(spots)
        shown = len(spots)
        self.info.setText(
            f"population: {shown} of {len(self.records)} particles "
            "(blue monomer, red dimer, grey uncertain)")

    def _clicked(self, _item: Any, points: Any, *_: Any) -> None:
        if len(points):
            self.picked.emit(int(points[0].data()))
