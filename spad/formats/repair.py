"""Recover a Photon-HDF5 file whose writer was cut off (``kill -9``, a crash, a power cut).

A recording (``spad acquire``) is written in HDF5 SWMR mode and flushed twice a second, so
what was flushed survives the writer's death with the file's structure intact. Two things are
missing afterwards:

- HDF5's "open for write" marks (the file consistency flags of the superblock, HDF5 File
  Format Specification 3.0, section II.A, "File Consistency Flags") stay set, so a plain
  read-only open (``h5py.File(path, "r")``, HDFView, phconvert, PyTables) refuses the file
  with "file is already open for write";
- the final metadata the writer writes when it closes: ``/setup/detectors`` (ids, labels,
  counts), ``/acquisition_duration`` and, for a particle file, ``/user/acquisition/final``.

:func:`repair` clears the marks (what HDF5's ``h5clear -s`` does: flags set to 0 and the
superblock checksum recomputed, Jenkins' lookup3 as HDF5 uses it) and writes the final
metadata from what is in the file. :func:`spad.open` and the particle readers call it through
:func:`open_repaired` / :func:`repair_cut_off` when they meet such a file (so spad repairs a cut
file the next time it opens it); ``spad repair FILE`` calls it on demand. This module sits
above the Photon-HDF5 reader and writer, whose helpers it uses; neither imports it.

A file that is being recorded right now looks the same. The recorder holds a shared
``flock`` on the file for as long as it writes (:func:`hold_writer_lock`); :func:`repair` takes
it exclusively first and refuses (:class:`FileInUse`) while anyone holds it. The kernel drops
the lock when the writer dies, however it died.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import struct
from datetime import datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from spad.errors import FormatError

ACQUISITION_GROUP = "acquisition"
"""``/user/acquisition`` of a recording (``spad acquire``): settings, instrument states, start;
``final`` (stop reason, end, photons, error) when it ends, or from :func:`repair` when it was
cut off. Defined here, below the particle file (:mod:`spad.particle`), which uses it too."""

REPAIRED_ATTR = "spad_repaired"
"""Root attribute set by :func:`repair`: when, and what was done (text)."""


_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_CHUNK = 1 << 22  # photons read at once when counting (memory bounded)


class FileInUse(FormatError):
    """The file is held open by its writer (still being recorded)."""


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & 0xFFFFFFFF


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``, the checksum of HDF5's version 2/3 superblocks
    (``H5_checksum_lookup3``)."""
    m = 0xFFFFFFFF
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & m

    def word(i: int) -> int:
        return int.from_bytes(data[i:i + 4].ljust(4, b"\0"), "little")

    i = 0
    while length - i > 12:
        a, b, c = (a + word(i)) & m, (b + word(i + 4)) & m, (c + word(i + 8)) & m
        a = ((a - c) & m) ^ _rot(c, 4)
        c = (c + b) & m
        b = ((b - a) & m) ^ _rot(a, 6)
        a = (a + c) & m
        c = ((c - b) & m) ^ _rot(b, 8)
        b = (b + a) & m
        a = ((a - c) & m) ^ _rot(c, 16)
        c = (c + b) & m
        b = ((b - a) & m) ^ _rot(a, 19)
        a = (a + c) & m
        c = ((c - b) & m) ^ _rot(b, 4)
        b = (b + a) & m
        i += 12
    if length - i == 0:
        return c
    tail = data[i:]  # 1..12 bytes, zero-padded: the missing bytes add nothing
    a = (a + int.from_bytes(tail[0:4].ljust(4, b"\0"), "little")) & m
    b = (b + int.from_bytes(tail[4:8].ljust(4, b"\0"), "little")) & m
    c = (c + int.from_bytes(tail[8:12].ljust(4, b"\0"), "little")) & m
    c = ((c ^ b) - _rot(b, 14)) & m
    a = ((a ^ c) - _rot(c, 11)) & m
    b = ((b ^ a) - _rot(a, 25)) & m
    c = ((c ^ b) - _rot(b, 16)) & m
    a = ((a ^ c) - _rot(c, 4)) & m
    b = ((b ^ a) - _rot(a, 14)) & m
    c = ((c ^ b) - _rot(b, 24)) & m
    return c


def _superblock(fh: Any) -> tuple[int, int, int] | None:
    """(offset, version, size of offsets) of the superblock, or None if there is none."""
    size = os.fstat(fh.fileno()).st_size
    offset = 0
    while offset + 12 <= size:
        fh.seek(offset)
        head = fh.read(12)
        if head[:8] == _SIGNATURE:
            return offset, head[8], head[9]
        offset = 512 if offset == 0 else 2 * offset
    return None


def open_for_write_marked(path: str | os.PathLike[str]) -> bool:
    """True if the file's superblock still carries HDF5's "open for write" marks."""
    try:
        with open(path, "rb") as fh:
            sb = _superblock(fh)
            if sb is None or sb[1] < 2:
                return False
            fh.seek(sb[0] + 11)
            return fh.read(1) != b"\0"
    except OSError:
        return False


def _clear_marks(fh: Any, path: object) -> bool:
    """Clear the consistency flags of a version 2/3 superblock; True if there were any."""
    sb = _superblock(fh)
    if sb is None:
        raise FormatError(path, "not an HDF5 file (no superblock)")
    offset, version, size_of_offsets = sb
    if version < 2:
        return False
    n = 12 + 4 * size_of_offsets          # fields covered by the checksum
    fh.seek(offset)
    block = bytearray(fh.read(n + 4))
    if len(block) < n + 4:
        raise FormatError(path, "the HDF5 superblock is cut off")
    if struct.unpack("<I", bytes(block[n:n + 4]))[0] != lookup3(bytes(block[:n])):
        raise FormatError(path, "the HDF5 superblock is damaged (checksum mismatch); "
                                "the file cannot be repaired")
    if block[11] == 0:
        return False
    block[11] = 0
    block[n:n + 4] = struct.pack("<I", lookup3(bytes(block[:n])))
    fh.seek(offset)
    fh.write(bytes(block))
    fh.flush()
    os.fsync(fh.fileno())
    return True


@contextlib.contextmanager
def hold_writer_lock(path: str | os.PathLike[str]) -> Any:
    """Hold a shared ``flock`` on ``path`` while it is being written (``spad acquire``): it
    tells :func:`repair` the writer is alive. The kernel releases it when the process ends,
    however it ends."""
    fd = os.open(path, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # a file system without flock: no protection
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def _counts(f: h5py.File) -> tuple[np.ndarray, int | None, int | None]:
    """Photons per detector id, first and last timestamp (read in bounded pieces)."""
    det, ts = f["photon_data/detectors"], f["photon_data/timestamps"]
    counts = np.zeros(256, np.int64)
    n = min(det.shape[0], ts.shape[0])
    for i in range(0, n, _CHUNK):
        counts += np.bincount(det[i:min(n, i + _CHUNK)], minlength=256)[:256]
    first = int(ts[0]) if n else None
    last = int(ts[n - 1]) if n else None
    return counts, first, last


def _finalise(f: h5py.File, path: Path) -> list[str]:
    """Write what a cut-off writer did not: the detectors table, the duration, the acquisition's
    final record. Returns what was done."""
    from spad.formats.photon_hdf5 import read_user_group
    from spad.formats.photon_hdf5_writer import put_field, spec_group, write_user_group
    from spad.photons import SYNC

    done = []
    if "photon_data/timestamps" not in f or "photon_data/detectors" not in f:
        return done
    counts, first, last = _counts(f)
    unit = f.get("photon_data/timestamps_specs/timestamps_unit")
    span = (0.0 if first is None or unit is None
            else float((last - first) * float(unit[()])))
    is_t3 = "photon_data/nanotimes" in f
    if "setup" in f and "detectors" not in f["setup"]:
        specs = f.get("photon_data/measurement_specs/detectors_specs")
        configured = set()
        if isinstance(specs, h5py.Group):
            for name, ds in specs.items():
                if name.startswith("split_ch"):
                    configured |= {int(x) for x in np.atleast_1d(ds[()])}
        ids = sorted(configured | set(np.flatnonzero(counts).tolist()))
        det = spec_group(f["setup"], "detectors")
        put_field(det, "id", np.asarray(ids, np.uint8))
        put_field(det, "counts", counts[ids].astype(np.int64))
        labels = ["sync" if i == SYNC and not is_t3 else f"detector {i}" for i in ids]
        put_field(det, "label", np.asarray([s.encode("utf-8") for s in labels]))
        done.append("detectors table written")
    if "acquisition_duration" in f:
        f["acquisition_duration"][()] = span
    acq = f.get(f"user/{ACQUISITION_GROUP}")
    if isinstance(acq, h5py.Group) and "final" not in acq:
        frames = f.get("user/spectrum/frames")
        photons = int(counts.sum() - (0 if is_t3 else counts[SYNC]))
        final = {"stop_reason": "cut off", "photons": photons, "recorded_s": span,
                 "frames": 0 if frames is None else int(frames.shape[0]),
                 "error": "the recording was cut off (its program ended without closing "
                          "the file); spad repaired it from what was flushed",
                 "end_time": datetime.fromtimestamp(path.stat().st_mtime).astimezone()
                 .isoformat(timespec="milliseconds")}
        data = read_user_group(f, ACQUISITION_GROUP)
        data.update(final=final, final_json=json.dumps(final))
        write_user_group(f, ACQUISITION_GROUP, data)
        done.append("/user/acquisition/final written")
    return done


def repair_cut_off(path: str | os.PathLike[str]) -> None:
    """Repair ``path`` if it carries HDF5's "open for write" marks and its writer is gone. A
    file still being recorded, on a read-only medium or damaged beyond repair is left as it
    is: it is read in SWMR mode, what the writer flushed
    (:func:`spad.formats.photon_hdf5.open_hdf5`)."""
    if open_for_write_marked(path):
        with contextlib.suppress(OSError, FormatError):
            repair(path)


def open_repaired(path: str | os.PathLike[str]) -> h5py.File:
    """:func:`spad.formats.photon_hdf5.open_hdf5` after :func:`repair_cut_off`."""
    from spad.formats.photon_hdf5 import open_hdf5

    repair_cut_off(path)
    return open_hdf5(path)


def repair(path: str | os.PathLike[str]) -> list[str]:
    """Recover a file cut off while written (see the module docstring).

    Returns
    -------
    What was done (empty if the file was closed properly: nothing to do).

    Raises
    ------
    FileInUse
        The file's writer is still running.
    FormatError
        The file is not HDF5, or damaged beyond what this repairs.
    OSError
        The file cannot be written (read-only file system, permissions).
    """
    from spad.formats.photon_hdf5_writer import reopen_for_finalising

    path = Path(path)
    with open(path, "r+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise FileInUse(path, "in use by another program (still being recorded?); "
                                  "it can be repaired once that has ended") from None
        if not _clear_marks(fh, path):
            return []
        done = ["HDF5 open-for-write marks cleared"]
        try:
            with reopen_for_finalising(path) as f:
                done += _finalise(f, path)
                f.attrs[REPAIRED_ATTR] = np.bytes_(
                    f"{datetime.now().astimezone().isoformat(timespec='seconds')}: "
                    + "; ".join(done))
        except OSError as exc:
            raise FormatError(path, f"cut off and damaged beyond repair: {exc}") from None
        return done
