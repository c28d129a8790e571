"""The particle file while it is recorded: photons and spectrum frames appended, SWMR.

:class:`ParticleRecorder` creates the Photon-HDF5 particle file (layout in
``docs/particle_file.md``) with everything known at the start — rig settings, camera and
spectrograph state, start time under ``/user/acquisition``, the spectrum's calibration under
``/user/spectrum`` — then switches the file to HDF5 SWMR mode: another program can open it
read-only while photons and frames are appended, and what was flushed survives a crash
(``kill -9``) with the file still valid. :meth:`ParticleRecorder.close` finalises it (detector
table, stop reason, frame times).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from spad.formats.photon_hdf5_writer import (
    PhotonHdf5Writer,
    reopen_for_finalising,
    write_user_group,
)
from spad.formats.repair import hold_writer_lock
from spad.output import check_free, free_bytes
from spad.particle import ACQUISITION_GROUP, LAYOUT, SPECTRUM_GROUP, storable
from spad.photons import PhotonChunk, Timing


class ParticleRecorder:
    """One particle file being written.

    Parameters
    ----------
    path
        The new file (must not exist).
    timing
        Timing of the photon stream.
    acquisition
        Nested dict stored under ``/user/acquisition`` (settings, instrument states, start).
    spectrum
        ``None`` for no camera, else a dict with ``frame_shape`` (one frame), ``wavelength_m``,
        ``exposure_s``, ``em_gain``, ``preamp_gain_e_per_adu``, ``bias_adu``, ``calibration``,
        ``metadata``.
    description
        Photon-HDF5 ``/description``.
    compression
        HDF5 filter of the photon datasets (see :class:`PhotonHdf5Writer`).
    """

    def __init__(self, path: str | Path, timing: Timing, acquisition: dict[str, Any],
                 spectrum: dict[str, Any] | None = None, description: str = "",
                 compression: str | None = None) -> None:
        self.path = Path(path)
        self.n_frames = 0
        self._acquisition = acquisition
        self._lock = contextlib.ExitStack()
        self._reserve = self.path.with_name(f".{self.path.name}.reserve")
        _make_reserve(self._reserve)
        self._w = PhotonHdf5Writer(self.path, timing, description=description, swmr=True,
                                   excitation_wavelengths=[405e-9], compression=compression)
        try:
            f = self._w.file
            write_user_group(f, ACQUISITION_GROUP, storable(acquisition))
            self._frames = self._frame_times = None
            if spectrum is not None:
                shape = tuple(int(n) for n in spectrum["frame_shape"])
                write_user_group(f, SPECTRUM_GROUP, storable({
                    "layout": LAYOUT, "wavelength_m": spectrum.get("wavelength_m"),
                    "exposure_s": spectrum.get("exposure_s"), "em_gain": spectrum.get("em_gain"),
                    "bias_adu": spectrum.get("bias_adu"),
                    "preamp_gain_e_per_adu": spectrum.get("preamp_gain_e_per_adu"),
                    "calibration": spectrum.get("calibration") or {},
                    "signal_rows": spectrum.get("signal_rows"),
                    "background_rows": spectrum.get("background_rows"),
                    "source": "spad acquire",
                    "metadata": spectrum.get("metadata") or {}}))
                g = f["user"][SPECTRUM_GROUP]
                # One HDF5 chunk per frame, appended as frames arrive (SWMR allows growth only).
                self._frames = g.create_dataset(
                    "frames", shape=(0, *shape), maxshape=(None, *shape), dtype=np.uint16,
                    chunks=(1, *shape), compression="gzip", compression_opts=4, shuffle=True)
                self._frames.attrs["units"] = "ADU"
                self._frames.attrs["axes"] = ("frame, row, column" if len(shape) == 2
                                              else "frame, column")
                self._frame_times = g.create_dataset(
                    "frame_read_s", shape=(0,), maxshape=(None,), dtype=np.float64,
                    chunks=(256,))
                self._frame_times.attrs["description"] = (
                    "time each frame was read, s after the start of the photon stream")
                if spectrum.get("wavelength_m") is not None:
                    g["wavelength_m"].attrs["units"] = "m"
            self._w.start_swmr()
            # tells spad's repair (spad.formats.repair) that this file's writer is alive
            self._lock.enter_context(hold_writer_lock(self.path))
        except BaseException:
            self._w.abort()
            self.release_reserve()
            raise

    def write_photons(self, chunk: PhotonChunk) -> None:
        """Append a chunk (not flushed yet: see :meth:`flush`)."""
        self._w.write(chunk, flush=False)

    def write_frames(self, frames: np.ndarray, read_s: float) -> None:
        """Append spectrum frames (``(n, *frame_shape)``) read at ``read_s``."""
        if self._frames is None or not len(frames):
            return
        check_free(self.path, frames.size * 2, "the next spectrum frames")
        n = self._frames.shape[0]
        frames = np.clip(frames, 0, 65535).astype(np.uint16, copy=False)
        self._frames.resize((n + len(frames), *self._frames.shape[1:]))
        self._frames[n:] = frames
        self._frame_times.resize((n + len(frames),))
        self._frame_times[n:] = read_s
        self.n_frames = n + len(frames)

    def flush(self) -> None:
        """Everything appended so far to disk (readers see it; a crash keeps it).

        Raises ENOSPC, without flushing, when another program has filled the disk: HDF5
        meeting a full disk half-way through a flush leaves the file damaged. The reserve is
        then released, so that the final flush and :meth:`close` have room."""
        if free_bytes(self.path) < FLUSH_FREE_BYTES:
            self.release_reserve()
            raise OSError(errno.ENOSPC, "no space left on the disk", str(self.path))
        self._w.flush()

    def release_reserve(self) -> None:
        """Give back the disk space kept for finalising the file (see :meth:`flush`)."""
        self._reserve.unlink(missing_ok=True)

    def close(self, final: dict[str, Any] | None = None) -> None:
        """Finalise the file; ``final`` (stop reason, end time, error...) goes to
        ``/user/acquisition/final`` (and as JSON text in ``final_json``)."""
        try:
            self._w.close()
            if final is not None:
                with reopen_for_finalising(self.path) as f:
                    write_user_group(f, ACQUISITION_GROUP, storable(
                        {**self._acquisition, "final": final,
                         "final_json": json.dumps(final, default=str)}))
        finally:
            self._lock.close()
            self.release_reserve()

    def abort(self) -> None:
        """Close without finalising (what was flushed stays)."""
        try:
            self._w.abort()
        finally:
            self._lock.close()
            self.release_reserve()


RESERVE_BYTES = 8 << 20
"""Disk space a recording keeps aside (a hidden ``.FILE.reserve`` next to it) and gives back
when the disk gets full, so that the last flush and the finalisation always have room."""

FLUSH_FREE_BYTES = 1 << 20
"""Below this much free space a flush is not attempted (see :meth:`ParticleRecorder.flush`)."""


def _make_reserve(path: Path) -> None:
    try:
        with open(path, "wb") as fh:
            try:
                os.posix_fallocate(fh.fileno(), 0, RESERVE_BYTES)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise
                fh.write(bytes(RESERVE_BYTES))  # a file system without fallocate
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path.with_name(path.name[1:-8]))) from None
