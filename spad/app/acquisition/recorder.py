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
import ctypes
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
from spad.output import check_free
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
        self._room: _Preallocated | None = None
        try:
            self._room = _Preallocated(self.path)
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
            self._release_room()
            self.release_reserve()
            raise

    def write_photons(self, chunk: PhotonChunk) -> None:
        """Append a chunk (not flushed yet: see :meth:`flush`)."""
        self._room.ensure()
        self._w.write(chunk, flush=False)

    def write_frames(self, frames: np.ndarray, read_s: float) -> None:
        """Append spectrum frames (``(n, *frame_shape)``) read at ``read_s``."""
        if self._frames is None or not len(frames):
            return
        check_free(self.path, frames.size * 2, "the next spectrum frames")
        self._room.ensure()
        n = self._frames.shape[0]
        frames = np.clip(frames, 0, 65535).astype(np.uint16, copy=False)
        self._frames.resize((n + len(frames), *self._frames.shape[1:]))
        self._frames[n:] = frames
        self._frame_times.resize((n + len(frames),))
        self._frame_times[n:] = read_s
        self.n_frames = n + len(frames)

    def flush(self) -> None:
        """Everything appended so far to disk (readers see it; a crash keeps it).

        Raises ENOSPC, without flushing, when the disk is full (another program may fill it
        at any moment): the flush then waits for the end of the recording, which has room
        (see :class:`_Preallocated`)."""
        self._room.ensure()
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
            self._release_room()
            self.release_reserve()

    def abort(self) -> None:
        """Close without finalising (what was flushed stays)."""
        try:
            self._w.abort()
        finally:
            self._lock.close()
            self._release_room()
            self.release_reserve()

    def _release_room(self) -> None:
        if self._room is not None:
            self._room.release()
            self._room = None


PREALLOCATED_BYTES = 32 << 20
"""Disk space kept allocated past the end of a file being recorded (see :class:`_Preallocated`):
well over what a flush interval writes (0.5 s at 2 M photons/s is 11 MB)."""


class _Preallocated:
    """Keeps :data:`PREALLOCATED_BYTES` of disk allocated past the end of the file, without
    changing its size (``fallocate`` with ``FALLOC_FL_KEEP_SIZE``, Linux ``fallocate(2)``).

    HDF5 meeting a full disk in the middle of a write or flush leaves its caches
    inconsistent: every later call fails and closing the file can crash the process, with the
    file damaged. Another program can fill the disk at any moment, between any two checks of
    the free space. Writing into blocks already allocated never fails for lack of space, so
    the recording's writes always land there: :meth:`ensure` tops the allocation up before
    each write and flush, and when the disk cannot give more it raises ENOSPC (once) before
    HDF5 has written anything, while what is left of the allocation holds the last flush and
    the final metadata. :meth:`release` gives back what was not used. Where the file system
    cannot preallocate, nothing is kept (the free-space checks still apply)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR)
        self._fallocate = _fallocate_function()
        self._full = False
        self.ensure()

    def ensure(self) -> None:
        if self._fallocate is None or self._full:
            return
        size = os.fstat(self._fd).st_size
        if self._fallocate(self._fd, 1, size, PREALLOCATED_BYTES) == 0:  # 1: KEEP_SIZE
            return
        code = ctypes.get_errno()
        if code != errno.ENOSPC:  # not supported here (EOPNOTSUPP, ENOSYS...): no help
            self._fallocate = None
            return
        self._full = True
        raise OSError(errno.ENOSPC, "no space left on the disk", str(self.path))

    def release(self) -> None:
        """Free what is allocated past the end of the file (a truncation to its own size)."""
        try:
            os.ftruncate(self._fd, os.fstat(self._fd).st_size)
        except OSError:
            pass
        finally:
            os.close(self._fd)


def _fallocate_function() -> Any:
    """libc's ``fallocate``, or None where there is none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.fallocate
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    fn.restype = ctypes.c_int
    return fn


RESERVE_BYTES = 8 << 20
"""Disk space a recording keeps aside (a hidden ``.FILE.reserve`` next to it) and gives back
when the disk gets full, so that the last flush and the finalisation always have room."""



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
