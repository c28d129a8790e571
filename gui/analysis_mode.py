"""Analysis of recorded particles: what ``spad analyze`` does, in a window.

The particles of a session (files or a directory) are listed with check boxes; the checked
ones, or all, are (re-)analysed in a background thread with the settings of the panel, exactly
as the CLI does (:func:`spad.analysis.particle.analyze_particle`, then
:func:`spad.analysis.particle.classify_session` over the whole session), so the window and
``spad analyze`` give the same numbers for the same files. A region of interest dragged on the
trace re-analyses that particle's photons inside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PyQt5 import QtCore, QtWidgets
from spad.gui.panels import lifetime_title


class AnalysisWorker(QtCore.QThread):
    """Analyses particles off the GUI thread; stops between particles when interrupted.

    Each job is ``(path, roi)`` with ``roi`` ``None`` (whole recording) or ``(t0_s, t1_s)``.
    """

    progress = QtCore.pyqtSignal(int, int, str)
    result = QtCore.pyqtSignal(str, object)
    failed = QtCore.pyqtSignal(str, str)

    def __init__(self, jobs: Sequence[tuple[str, tuple[float, float] | None]], settings: Any,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.jobs = list(jobs)
        self.settings = settings
        self.interrupted = False

    def run(self) -> None:
        from dataclasses import replace

        from spad.analysis.particle import analyze_particle

        from spad.errors import SpadError

        n = len(self.jobs)
        for i, (path, roi) in enumerate(self.jobs):
            if self.interrupted:
                break
            self.progress.emit(i, n, path)
            try:
                # a region of interest is a setting, as spad analyze --roi: the whole trace
                # is kept and drawn, the analyses read the ROI's photons
                settings = self.settings if roi is None else replace(self.settings, roi=roi)
                self.result.emit(path, analyze_particle(path, settings))
            except (SpadError, ValueError, OSError, RuntimeError) as exc:
                text = str(exc)
                self.failed.emit(path, text if text.startswith(path) else f"{path}: {text}")
        self.progress.emit(n, n, "")


TABLE_COLUMNS = (("file", "particle"), ("label", "verdict"), ("probability", "p"),
                 ("g2_zero", "g2(0)"), ("g2_zero_err", "± g2"), ("lifetime_ns", "τ (ns)"),
                 ("on_fraction", "ON frac."), ("n_levels", "states"), ("peak_ev", "peak (eV)"),
                 ("fwhm_mev", "FWHM (meV)"), ("shift_mev", "shift (meV)"),
                 ("count_rate_cps", "rate (cps)"))

_FORMATS = {"probability": ".2f", "g2_zero": ".3f", "g2_zero_err": ".3f", "lifetime_ns": ".2f",
            "on_fraction": ".2f", "n_levels": "d", "peak_ev": ".4f", "fwhm_mev": ".1f",
            "shift_mev": "+.1f", "count_rate_cps": ".0f"}


def record_cells(rec: dict[str, Any]) -> list[str]:
    """The table row of one particle's record (``n/a`` for what was not measured)."""
    from spad.gui.panels import fmt

    c = rec.get("classification") or {}
    cells = []
    for key, _ in TABLE_COLUMNS:
        if key == "file":
            cells.append(Path(rec["file"]).name)
        elif key == "label":
            cells.append(c.get("label") or "n/a")
        elif key == "probability":
            cells.append(fmt(c.get("probability"), ".2f"))
        else:
            cells.append(fmt(rec.get(key), _FORMATS[key]))
    return cells


class SessionTable(QtWidgets.QTableWidget):
    """One row per particle with its results."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(0, len(TABLE_COLUMNS), parent)
        self.setHorizontalHeaderLabels([h for _, h in TABLE_COLUMNS])
        self.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeToContents)

    def show_records(self, records: Sequence[dict[str, Any]]) -> None:
        self.setRowCount(len(records))
        for i, rec in enumerate(records):
            for j, text in enumerate(record_cells(rec)):
                item = QtWidgets.QTableWidgetItem(text)
                if j:
                    item.setTextAlignment(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)
                self.setItem(i, j, item)


class ParticleList(QtWidgets.QWidget):
    """The session's particles with check boxes, the analysis settings and the actions."""

    selected = QtCore.pyqtSignal(str)
    analyse = QtCore.pyqtSignal(str)   # "current", "checked" or "all"
    roi_typed = QtCore.pyqtSignal(float, float)   # start, end (s) for the selected particle

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QtWidgets.QListWidget()
        self.list.setMinimumHeight(48)
        self.list.currentItemChanged.connect(self._current)
        self.bin_ms = QtWidgets.QDoubleSpinBox()
        self.bin_ms.setRange(0.1, 1000.0)
        self.bin_ms.setDecimals(1)
        self.bin_ms.setValue(10.0)
        self.bin_ms.setSuffix(" ms")
        self.gate_ns = QtWidgets.QDoubleSpinBox()
        self.gate_ns.setRange(0.0, 100.0)
        self.gate_ns.setDecimals(1)
        self.gate_ns.setValue(5.0)
        self.gate_ns.setSuffix(" ns")
        # spad analyze's defaults (--no-auto-roi and --keep-bursts uncheck them)
        self.auto_roi = QtWidgets.QCheckBox("end at a bleached tail")
        self.auto_roi.setChecked(True)
        self.auto_roi.setToolTip("end the region of interest automatically where a bleached or "
                                 "dead tail begins (spad analyze's default; --no-auto-roi "
                                 "unchecks it)")
        self.remove_bursts = QtWidgets.QCheckBox("remove photon bursts")
        self.remove_bursts.setChecked(True)
        self.remove_bursts.setToolTip("leave out the photons of short bursts far above the "
                                      "emitter's levels (spad analyze's default; --keep-bursts "
                                      "unchecks it)")
        self.roi = QtWidgets.QLineEdit()
        self.roi.setPlaceholderText("start:end (s), Enter")
        self.roi.setToolTip("region of interest of the selected particle, as spad analyze "
                            "--roi START:END (or drag its edges on the trace); Enter "
                            "re-analyses the particle inside it")
        self.roi.returnPressed.connect(self._roi_typed)
        form = QtWidgets.QFormLayout()
        form.addRow("ROI", self.roi)
        # one row for the two numbers: the panel and the Verdict below it fit a 768 px screen
        numbers = QtWidgets.QHBoxLayout()
        numbers.addWidget(self.bin_ms, 1)
        gate = QtWidgets.QLabel("g2 gate")
        gate.setToolTip("g2 time gate: photons this soon after the laser pulse are left out of "
                        "the gated g2(0)")
        numbers.addWidget(gate)
        numbers.addWidget(self.gate_ns, 1)
        form.addRow("trace bin", numbers)
        form.addRow("auto ROI", self.auto_roi)
        form.addRow("bursts", self.remove_bursts)
        buttons = QtWidgets.QHBoxLayout()
        for text, what in (("Analyse", "current"), ("Checked", "checked"), ("All", "all")):
            b = QtWidgets.QPushButton(text)
            b.setToolTip(f"(re-)analyse the {what} particle{'s' if what != 'current' else ''} "
                         "with these settings, in the background")
            b.clicked.connect(lambda _=False, w=what: self.analyse.emit(w))
            buttons.addWidget(b)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setFormat("%v / %m")
        self.progress.setValue(0)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.list, 1)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)

    def show_roi(self, start_s: float | None, end_s: float | None) -> None:
        """The selected particle's region of interest in the ROI box."""
        self.roi.setStyleSheet("")
        self.roi.setText("" if start_s is None or end_s is None
                         else f"{start_s:.2f}:{end_s:.2f}")

    def _roi_typed(self) -> None:
        from spad.analysis.roi import parse_roi

        try:
            lo, hi = parse_roi(self.roi.text())   # as spad analyze --roi reads it
            if lo is None or hi is None:
                raise ValueError("type both ends, START:END in seconds, e.g. 0:25.5")
        except ValueError as exc:
            # not a region: say so where it was typed, keep the particle as it is
            self.roi.setStyleSheet("border: 1px solid red")
            self.roi.setToolTip(str(exc))
            return
        self.roi.setStyleSheet("")
        self.roi_typed.emit(lo, hi)

    def add_files(self, paths: Sequence[str | Path]) -> None:
        have = set(self.paths())
        for p in paths:
            p = str(p)
            if p in have:
                continue
            item = QtWidgets.QListWidgetItem(Path(p).name)
            item.setData(QtCore.Qt.UserRole, p)
            item.setToolTip(p)
            item.setFlags(item.flags() | QtCore.Qt.ItemIsUserCheckable)
            item.setCheckState(QtCore.Qt.Checked)
            self.list.addItem(item)
        if self.list.currentRow() < 0 and self.list.count():
            self.list.setCurrentRow(0)

    def paths(self, checked_only: bool = False) -> list[str]:
        out = []
        for i in range(self.list.count()):
            item = self.list.item(i)
            if not checked_only or item.checkState() == QtCore.Qt.Checked:
                out.append(item.data(QtCore.Qt.UserRole))
        return out

    def current(self) -> str | None:
        item = self.list.currentItem()
        return None if item is None else item.data(QtCore.Qt.UserRole)

    def set_current(self, path: str) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(QtCore.Qt.UserRole) == path:
                self.list.setCurrentRow(i)
                return

    def mark(self, path: str, label: str | None) -> None:
        """Show the verdict next to the particle's name."""
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(QtCore.Qt.UserRole) == path:
                item.setText(Path(path).name + (f"  [{label}]" if label else ""))

    def _current(self, item: QtWidgets.QListWidgetItem | None, *_: Any) -> None:
        if item is not None:
            self.selected.emit(item.data(QtCore.Qt.UserRole))


def settings_from(bin_ms: float, gate_ns: float, auto_roi: bool = True,
                  remove_bursts: bool = True) -> Any:
    """The photon-analysis settings of the panel, as ``spad analyze`` makes them from its
    options (``--bin-ms``, ``--gate-ns``, ``--no-auto-roi``, ``--keep-bursts``; the same
    defaults and checks: :meth:`spad.analysis.settings.AnalysisSettings.from_user`).

    The one addition: the Decay panel's fits, of each intensity state's decay and of up to
    :data:`spad.analysis.level_decays.MAX_LEVEL_FITS` single levels; no field of the record
    depends on them.
    """
    from spad.analysis.level_decays import MAX_LEVEL_FITS
    from spad.analysis.settings import AnalysisSettings

    return AnalysisSettings.from_user(bin_ms=bin_ms, gate_ns=gate_ns, auto_roi=auto_roi,
                                      remove_bursts=remove_bursts, max_level_fits=MAX_LEVEL_FITS,
                                      state_fits=True)


def peaks_by_label(records: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    """Peak energies (eV) of the particles with a spectrum, by verdict."""
    out: dict[str, list[float]] = {"monomer": [], "dimer": []}
    for r in records:
        label = (r.get("classification") or {}).get("label")
        if r.get("peak_ev") is not None and label in out:
            out[label].append(float(r["peak_ev"]))
    return out


def decay_sources(p: Any) -> list[tuple[str, Any, Any, Any, str | None]]:
    """The decays of a :class:`PhotonAnalysis` the Decay panel offers, each ``(name, edges_s,
    counts, fit, title)``: all photons, the bright state, each intensity state of the level
    grouping (brightest first) with its fit where it has enough photons, and the single levels
    that were fitted (time order) under a heading (title ``None``) saying which they are."""
    edges = p.decay_fitted_edges_s
    title = lifetime_title(p.lifetime_all, "all photons")
    if p.lifetime_ns is not None:
        title += f"; bright state ⟨τ⟩ = {p.lifetime_ns:.2f} ± {p.lifetime_err_ns:.2f} ns"
    out = [("all photons", edges, p.decay_fitted, p.lifetime_all, title)]
    if p.decay_bright is not None:
        out.append(("bright (ON) state", edges, p.decay_bright, p.lifetime_bright,
                    lifetime_title(p.lifetime_bright, "bright (ON) state")))
    b = p.blinking  # state decays exist only with a level grouping
    for state in sorted(p.state_decays, reverse=True):
        counts = p.state_decays[state]
        name = (f"state {state + 1}: {b.state_intensity[state] / 1e3:.1f} kcps, "
                f"{b.state_time_fraction[state] * 100:.0f} % of the time")
        fit = p.state_lifetimes.get(state)
        label = f"{name}, {int(counts.sum())} photons"
        out.append((name, edges, counts, fit,
                    lifetime_title(fit, label) if fit is not None
                    else f"{label}: too few photons for a fit" if state in p.state_lifetimes
                    else f"{label}: not fitted (AnalysisSettings.state_fits)"))
    out += _level_sources(p, edges)
    return out


def _level_sources(p: Any, edges: Any) -> list[tuple[str, Any, Any, Any, str | None]]:
    """The fitted single levels of :func:`decay_sources`, after a heading."""
    from spad.analysis.level_decays import FIT_MIN_PHOTONS

    ld, b = p.level_decays, p.blinking
    if ld is None or b is None or not b.level_start.size:
        return []
    enough = f"≥ {FIT_MIN_PHOTONS:,} photons"
    if not ld.decays:
        heading = f"— no single level has {enough} —"
    elif ld.n_skipped:
        heading = (f"— single levels: the {len(ld.decays)} with the most photons, of "
                   f"{ld.n_enough} with {enough} —")
    else:
        heading = f"— single levels with {enough} ({len(ld.decays)}) —"
    out: list[tuple[str, Any, Any, Any, str | None]] = [(heading, None, None, None, None)]
    for i, counts in ld.decays.items():
        t0, t1 = float(b.level_start[i]), float(b.level_end[i])
        name = (f"level {i + 1}: {t0:.2f}-{t1:.2f} s, {b.level_intensity[i] / 1e3:.1f} kcps "
                f"(state {int(b.level_state[i]) + 1})")
        label = f"{name}, {int(counts.sum())} photons"
        fit = ld.fits.get(i)
        out.append((name, edges, counts, fit, lifetime_title(fit, label) if fit is not None
                    else f"{label}: the fit failed"))
    return out


def trace_levels_of(p: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Levels of a :class:`PhotonAnalysis` as (start s, end s, counts per trace bin, group)."""
    b = p.blinking
    tr = p.trace
    if b is None or tr is None:
        return None
    return (np.asarray(b.level_start), np.asarray(b.level_end),
            np.asarray(b.level_intensity) * tr.bin_width_s, np.asarray(b.level_state))
