"""Which two detectors to correlate when the user did not say: read off the recording.

A PicoHarp 300 in T2 mode has one sync input and up to four routed channels; many setups wire
the second APD to the sync input (detector 0, :data:`spad.photons.SYNC`), so the default pair
(1, 2) finds no photons on detector 2 and gives no g2. :func:`choose_detectors` keeps the
configured pair whenever both of its detectors recorded something, and otherwise takes the two
channels that recorded the most, the sync input counting only when it is not a laser clock
(:func:`spad.analysis.photon_analysis.sync_periodic_fraction`).

The choice is made on the file's first chunk as its reader yields it
(:func:`detectors_for_file`), so that ``spad analyze``, ``spad replay`` and the desktop app,
which read the same file through the same reader, choose the same pair. A live acquisition's
detectors come from the rig and are never changed.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

import numpy as np
from spad.analysis.photon_analysis import (
    SYNC_PERIODIC_MIN,
    AnalysisSettings,
    sync_periodic_fraction,
)
from spad.analysis.settings import irf_from_file

import spad
from spad.formats.base import Reader
from spad.photons import SYNC, PhotonChunk


def _names(dets: list[int]) -> str:
    return " and ".join(str(d) for d in dets)


def choose_detectors(chunk: PhotonChunk | None, configured: tuple[int, int]
                     ) -> tuple[tuple[int, int], str | None]:
    """The two HBT detectors to correlate, judged from the first chunk of a recording.

    Parameters
    ----------
    chunk
        The recording's first chunk as its reader yields it (``None`` or empty: a recording
        without events).
    configured
        The detectors the settings name (the default pair when the user gave none).

    Returns
    -------
    detectors
        ``configured`` when both of its detectors have events in ``chunk``, or when fewer than
        two channels have any; otherwise the two channels with the most events (ties: the lower
        number), in increasing order. The sync input of a T2 stream (detector 0) counts only
        when it carries no laser clock: when :func:`sync_periodic_fraction` of the chunk is
        known and below :data:`SYNC_PERIODIC_MIN` (a T3 stream has no sync events among its
        detectors).
    note
        ``None`` when the detectors are ``configured``; else one line saying which detectors
        are correlated and why, for the particle's notes.
    """
    if chunk is None or not len(chunk):
        return configured, None
    counts = np.bincount(chunk.detectors, minlength=256)
    silent = [d for d in configured if counts[d] == 0]
    if not silent:
        return configured, None
    if counts[SYNC]:
        periodic = None if chunk.timing.is_t3 else sync_periodic_fraction(chunk)
        if periodic is None or periodic >= SYNC_PERIODIC_MIN:
            counts[SYNC] = 0   # a laser clock (or too few events to tell): not a detector
    held = np.flatnonzero(counts)
    if held.size < 2:
        return configured, None
    # most events first; a stable sort keeps the lower number first among equals
    top = held[np.argsort(-counts[held], kind="stable")[:2]]
    a, b = sorted(int(d) for d in top)
    what = (f"detector {silent[0]} recorded" if len(silent) == 1
            else f"detectors {_names(silent)} recorded")
    return (a, b), (f"detectors {a} and {b} correlated: {what} nothing at the start of the "
                    "file (give --detectors A B to choose)")


def detectors_for_file(path: str | Path, settings: AnalysisSettings | None = None,
                       reader: Reader | None = None) -> tuple[AnalysisSettings, list[str]]:
    """The settings to analyse the recording ``path`` with, its detectors chosen from the data
    when the user did not choose them (:attr:`AnalysisSettings.auto_detectors`).

    Parameters
    ----------
    path
        The time-tag file; its first chunk (``spad.open(path).chunks()``) is read.
    settings
        The analysis settings (default :class:`AnalysisSettings`).
    reader
        ``path`` already open (``spad.open(path)``), to read its first chunk from instead of
        opening the file once more.

    Returns
    -------
    settings
        ``settings`` itself when the detectors stay (or were given), else a copy with the
        detectors of :func:`choose_detectors`. A measured IRF histogrammed per detector
        (:func:`spad.analysis.settings.irf_from_file`) belongs to the configured detectors:
        it is histogrammed again from its recording (``irf_path``) on the chosen ones, or,
        without a recording or without photons of those detectors in it, dropped with a note
        (the fit falls back to a Gaussian IRF).
    notes
        The notes to add to the particle's (empty when nothing changed).
    """
    s = settings or AnalysisSettings()
    if not s.auto_detectors:
        return s, []
    with contextlib.nullcontext(reader) if reader is not None else spad.open(path) as opened:
        chunks = opened.chunks()
        first = next(chunks, None)
        chunks.close()
    chosen, note = choose_detectors(first, s.detectors)
    if note is None:
        return s, []
    notes = [note]
    irf = s.irf
    if irf is not None and np.ndim(irf) == 2:
        irf = None
        # ValueError: the IRF recording has no photons on the chosen detectors
        with contextlib.suppress(ValueError):
            if s.irf_path is not None:
                irf = irf_from_file(s.irf_path, replace(s, detectors=chosen))
        if irf is None:
            notes.append(f"the measured IRF, histogrammed on detectors "
                         f"{_names(list(s.detectors))}, is not used: the lifetime fits a "
                         "Gaussian IRF (give --detectors with --irf)")
    return replace(s, detectors=chosen, irf=irf), notes
