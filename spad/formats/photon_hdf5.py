"""Photon-HDF5 (photon-hdf5.org, spec 0.4/0.5): format detection, the reader and
:func:`read_user_group`.

The writer (:class:`~spad.formats.photon_hdf5_writer.PhotonHdf5Writer`,
:func:`~spad.formats.photon_hdf5_writer.write_photon_hdf5`,
:func:`~spad.formats.photon_hdf5_writer.write_user_group`), with the layout it writes, is in
:mod:`spad.formats.photon_hdf5_writer`.

The reader takes what that writer writes: photons in ``/photon_data``, markers in
``/user/markers/times`` and ``/user/markers/channels``, the T2 sync as detector 0. Files written
by other software (phconvert, FRETBursts tools, ...) are read too: their photon detector ids are
shifted to start at 1 when they use detector 0 for a photon detector, and events with ids listed
in ``non_photon_id`` become markers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import h5py
import numpy as np

from spad.errors import FormatError
from spad.formats.base import DEFAULT_CHUNK_RECORDS, Reader
from spad.photons import SYNC, Meta, PhotonChunk, Timing

FORMAT_NAME = "Photon-HDF5"
FORMAT_VERSION = "0.5"
FORMAT_URL = "http://photon-hdf5.org/"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

# Paths of the spec's groups.
PHOTON_DATA = "/photon_data"
MEASUREMENT_SPECS = PHOTON_DATA + "/measurement_specs"


# --------------------------------------------------------------------------------------------
# Detection


def _has_hdf5_signature(path: str | os.PathLike[str]) -> bool:
    """HDF5 signature at byte 0 or, after a user block, at 512, 1024, 2048, ..."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        offset = 0
        while offset + len(HDF5_MAGIC) <= size:
            fh.seek(offset)
            if fh.read(len(HDF5_MAGIC)) == HDF5_MAGIC:
                return True
            offset = 512 if offset == 0 else 2 * offset
    return False


def open_hdf5(path: str | os.PathLike[str]) -> h5py.File:
    """Open an HDF5 file read-only, also one still being written or cut off while written.

    A file written in SWMR mode (``spad acquire``) keeps HDF5's "open for write" mark until it is
    closed; if the writer was killed the mark stays, and a plain read-only open refuses the file.
    Such a file is opened in SWMR read mode, which reads everything the writer flushed.
    :func:`spad.open` and the particle readers repair a cut-off file first, when its writer is
    gone (:func:`spad.formats.repair.open_repaired`), after which any HDF5 reader opens it.
    """
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if "already open for write" not in str(exc):
            raise
    return h5py.File(path, "r", libver="latest", swmr=True)


def is_photon_hdf5(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is an HDF5 file with a ``/photon_data`` group.

    Also True for a file with the HDF5 signature that HDF5 cannot open (truncated or corrupt):
    it may be a damaged Photon-HDF5 file, and :class:`PhotonHdf5Reader` then says what is wrong
    instead of calling it a foreign format. Never raises; returns False for missing, unreadable
    or foreign files.
    """
    try:
        if not _has_hdf5_signature(path):
            return False
    except OSError:
        return False
    try:
        with open_hdf5(path) as f:
            return isinstance(f.get("photon_data", getlink=False), h5py.Group)
    except (OSError, ValueError):
        return True


# --------------------------------------------------------------------------------------------
# Small HDF5 helpers


def _text(value: Any) -> str:
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _scalar(f: h5py.File, path: str) -> Any:
    """Python value of a scalar dataset, ``None`` if absent (strings decoded)."""
    node = f.get(path)
    if not isinstance(node, h5py.Dataset):
        return None
    value = node[()]
    if isinstance(value, bytes | np.bytes_ | str):
        return _text(value)
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return None
        value = value.reshape(-1)[0]
    return value.item() if isinstance(value, np.generic) else value




def _iso_time(text: str | None) -> str | None:
    if not text:
        return None
    text = text.strip()
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return text
    # Keep the precision as written (milliseconds stay milliseconds).
    spec = "milliseconds" if stamp.microsecond % 1000 == 0 and stamp.microsecond else "auto"
    return stamp.isoformat(timespec=spec)


# --------------------------------------------------------------------------------------------
# Reader


class PhotonHdf5Reader(Reader):
    """Reader of single-spot Photon-HDF5 files (spec 0.4/0.5).

    Parameters
    ----------
    path
        The file. Raises :class:`~spad.errors.FormatError` for a non-HDF5 file, an HDF5 file
        without ``/photon_data``, missing timestamps or units, or arrays of unequal length;
        non-monotonic timestamps are reported by :meth:`chunks` when met.

    Notes
    -----
    ``meta.n_records`` is the length of the photon stream (``/photon_data/timestamps``);
    ``chunks(n)`` yields ``n`` of those entries at a time, with the markers that fall before the
    next chunk's first timestamp.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        # Plain open first: a missing file gives FileNotFoundError carrying the file name.
        with open(self.path, "rb"):
            pass
        if not _has_hdf5_signature(self.path):
            raise FormatError(self.path, "not an HDF5 file (no HDF5 signature)")
        try:
            self._f = open_hdf5(self.path)
        except OSError as exc:
            raise FormatError(self.path, f"cannot open as HDF5 (truncated or corrupt): "
                                         f"{exc}") from None
        try:
            self._setup_streams()
            self.meta = self._read_meta()
        except (KeyError, OSError, RuntimeError, UnicodeDecodeError) as exc:
            self._f.close()
            raise FormatError(self.path, f"unreadable HDF5 content: {exc}") from None
        except BaseException:
            self._f.close()
            raise

    # -- structure ------------------------------------------------------------------------

    def _fail(self, problem: str) -> FormatError:
        return FormatError(self.path, problem)

    def _setup_streams(self) -> None:
        f = self._f
        if "photon_data" not in f:
            spots = sorted(k for k in f if k.startswith("photon_data"))
            if spots:
                raise self._fail(f"multi-spot Photon-HDF5 ({', '.join(spots)}) is not supported")
            raise self._fail("HDF5 file without a /photon_data group: not Photon-HDF5")
        pd = f["photon_data"]
        if not isinstance(pd, h5py.Group):
            raise self._fail("/photon_data is not a group: not Photon-HDF5")
        ts = pd.get("timestamps")
        if not isinstance(ts, h5py.Dataset):
            raise self._fail("missing mandatory field /photon_data/timestamps")
        if ts.ndim != 1 or ts.dtype.kind not in "iu":
            raise self._fail(f"/photon_data/timestamps must be a 1-D integer array, "
                             f"not {ts.ndim}-D {ts.dtype}")
        self._ts = ts
        n = ts.shape[0]
        self._det = pd.get("detectors")
        self._nt = pd.get("nanotimes")
        for name, ds in (("detectors", self._det), ("nanotimes", self._nt)):
            if ds is None:
                continue
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.dtype.kind not in "iu":
                raise self._fail(f"/photon_data/{name} must be a 1-D integer array")
            if ds.shape[0] != n:
                raise self._fail(f"/photon_data/{name} has {ds.shape[0]} entries but "
                                 f"/photon_data/timestamps has {n}")
        self._mk_t = self._mk_c = None
        mk = f.get("user/markers")
        if isinstance(mk, h5py.Group):
            t, c = mk.get("times"), mk.get("channels")
            if not (isinstance(t, h5py.Dataset) and isinstance(c, h5py.Dataset)):
                raise self._fail("/user/markers needs both 'times' and 'channels' datasets")
            if t.ndim != 1 or c.ndim != 1 or t.shape != c.shape:
                raise self._fail(f"/user/markers/times ({t.shape}) and channels ({c.shape}) "
                                 "must be 1-D of equal length")
            self._mk_t, self._mk_c = t, c

    def _ids(self, path: str) -> set[int]:
        ds = self._f.get(path)
        if not isinstance(ds, h5py.Dataset):
            return set()
        return {int(v) for v in np.atleast_1d(ds[()]).ravel()}

    def _classify_detectors(self, warn: list[str]) -> None:
        """Decide which ids are sync, markers (non-photon) and whether to shift photon ids."""
        f = self._f
        labels: dict[int, str] = {}
        det_ids = self._ids("setup/detectors/id")
        lab = f.get("setup/detectors/label")
        if isinstance(lab, h5py.Dataset) and lab.shape == (len(det_ids),) and det_ids:
            ids = np.atleast_1d(f["setup/detectors/id"][()])
            labels = {int(i): _text(s).strip().lower() for i, s in zip(ids, lab[()], strict=True)}
        specs = f.get(MEASUREMENT_SPECS.lstrip("/") + "/detectors_specs")
        non_photon: set[int] = set()
        channel_ids: set[int] = set()
        if isinstance(specs, h5py.Group):
            for key in specs:
                if isinstance(key, bytes):  # a name h5py cannot decode (a damaged file)
                    key = key.decode("utf-8", "replace")
                if key.startswith("non_photon_id"):
                    non_photon |= self._ids(specs[key].name)
                elif "_ch" in key:  # spectral_chN, split_chN, polarization_chN
                    channel_ids |= self._ids(specs[key].name)
        self._sync_ids = {i for i, s in labels.items() if s == "sync"}
        if self.mode == "T3":
            self._sync_ids = set()
        self._marker_ids = non_photon - self._sync_ids
        self._sync_id = next(iter(self._sync_ids)) if self._sync_ids else None
        if len(self._sync_ids) > 1:
            raise self._fail(f"/setup/detectors labels several detectors 'sync': "
                             f"{sorted(self._sync_ids)}")
        # Photon detectors are numbered from 1 in spad; files that number them from 0 (as
        # phconvert does for PicoQuant data) are shifted so detector 0 is never a photon.
        zero_is_photon = False
        if SYNC not in self._sync_ids and SYNC not in self._marker_ids:
            if det_ids:
                zero_is_photon = SYNC in det_ids
            elif channel_ids:
                zero_is_photon = SYNC in channel_ids
            elif self._det is not None:
                zero_is_photon = self._scan_for_zero()
            else:
                zero_is_photon = False
        self._shift = 1 if zero_is_photon else 0
        if self._shift:
            warn.append("photon detectors are numbered from 0 in this file; "
                        "shifted by +1 (spad numbers photon detectors from 1)")
        if self._marker_ids:
            warn.append(f"events with detector ids {sorted(self._marker_ids)} "
                        "(non_photon_id) are returned as markers")

    def _scan_for_zero(self) -> bool:
        step = DEFAULT_CHUNK_RECORDS
        for i in range(0, self._det.shape[0], step):
            if np.any(self._det[i:i + step] == 0):
                return True
        return False

    def _laser_rate(self) -> float | None:
        rate = _scalar(self._f, MEASUREMENT_SPECS.lstrip("/") + "/laser_repetition_rate")
        if rate is None:
            ds = self._f.get("setup/laser_repetition_rates")
            if isinstance(ds, h5py.Dataset) and ds.size:
                rates = np.atleast_1d(ds[()]).astype(float)
                rates = rates[np.isfinite(rates) & (rates > 0)]
                rate = float(rates[0]) if rates.size else None
        if rate is None:
            return None
        rate = float(rate)
        return rate if math.isfinite(rate) and rate > 0 else None

    def _read_meta(self) -> Meta:
        f = self._f
        warn: list[str] = []
        unit = _scalar(f, "photon_data/timestamps_specs/timestamps_unit")
        if unit is None:
            raise self._fail("missing mandatory field /photon_data/timestamps_specs/"
                             "timestamps_unit")
        self.mode = "T3" if self._nt is not None else "T2"
        rate = self._laser_rate()
        tcspc_unit = tcspc_bins = None
        if self.mode == "T3":
            tcspc_unit = _scalar(f, "photon_data/nanotimes_specs/tcspc_unit")
            tcspc_bins = _scalar(f, "photon_data/nanotimes_specs/tcspc_num_bins")
            if tcspc_unit is None:  # spec alternative: per-detector units in /setup/detectors
                units = f.get("setup/detectors/tcspc_units")
                if isinstance(units, h5py.Dataset) and units.size:
                    u = np.unique(units[()])
                    if u.size > 1:
                        raise self._fail(f"/setup/detectors/tcspc_units differ between "
                                         f"detectors ({u.tolist()}); not supported")
                    tcspc_unit = float(u[0])
            if tcspc_unit is None:
                raise self._fail("nanotimes present but missing mandatory field "
                                 "/photon_data/nanotimes_specs/tcspc_unit")
        try:
            timing = Timing(self.mode, float(unit),
                            None if tcspc_unit is None else float(tcspc_unit),
                            None if rate is None else 1.0 / rate,
                            None if tcspc_bins is None else int(tcspc_bins))
        except (TypeError, ValueError) as exc:
            raise self._fail(f"bad timestamps_unit/tcspc_unit: {exc}") from None
        self._classify_detectors(warn)
        if self._f.swmr_mode:
            warn.append("the file was not closed by its writer (still being recorded, or the "
                        "recording was cut off): read what was flushed")
        elif f.attrs.get("spad_repaired") is not None:
            warn.append("the file was not closed by its writer (the recording was cut off); "
                        f"repaired by spad on {_text(f.attrs['spad_repaired'])}")

        for field in ("acquisition_duration", "description", "setup", "identity"):
            if field not in f:
                warn.append(f"missing mandatory Photon-HDF5 field /{field}")
        meas_type = _scalar(f, MEASUREMENT_SPECS.lstrip("/") + "/measurement_type")
        comment = _scalar(f, "description")
        comment = comment.strip() if isinstance(comment, str) and comment.strip() else None
        # Acquisition facts come from the original recording (provenance) when there is one.
        src = "provenance" if _scalar(f, "provenance/software") else "identity"
        creation = _scalar(f, "provenance/creation_time") or _scalar(f, "identity/creation_time")
        duration = _scalar(f, "acquisition_duration")
        n_pixels = _scalar(f, "setup/num_pixels")
        return Meta(
            path=self.path, format=FORMAT_NAME,
            record_type=meas_type if isinstance(meas_type, str) else "generic",
            record_type_code=None, mode=self.mode, timing=timing,
            global_resolution=timing.timestamp_unit, resolution=timing.nanotime_unit,
            sync_rate=rate,
            acquisition_time=None if duration is None else float(duration),
            n_channels=None if n_pixels is None else int(n_pixels),
            n_records=int(self._ts.shape[0]),
            creation_time=_iso_time(creation),
            software=_scalar(f, f"{src}/software"),
            software_version=_scalar(f, f"{src}/software_version"),
            comment=comment, tags=self._tags(), warnings=warn)

    def _tags(self) -> dict[str, Any]:
        """Flat dict of every scalar field, keyed by its path without the leading '/'."""
        tags: dict[str, Any] = {}

        def visit(name: str, node: h5py.HLObject) -> None:
            if isinstance(node, h5py.Dataset) and node.shape == ():
                tags[name] = _scalar(self._f, name)

        self._f.visititems(visit)
        return tags

    # -- streaming ------------------------------------------------------------------------

    def chunks(self, n_records: int = DEFAULT_CHUNK_RECORDS) -> Iterator[PhotonChunk]:
        if n_records < 1:
            raise ValueError("n_records must be at least 1")
        timing = self.meta.timing
        n = self._ts.shape[0]
        markers = _MarkerCursor(self, n_records)
        prev_last: int | None = None
        for start in range(0, n, n_records):
            stop = min(start + n_records, n)
            ts = self._ts[start:stop].astype(np.int64, copy=False)
            bad = np.flatnonzero(np.diff(ts) < 0)
            if bad.size or (prev_last is not None and ts[0] < prev_last):
                i = start + (int(bad[0]) + 1 if bad.size else 0)
                raise self._fail(f"/photon_data/timestamps decrease at index {i} "
                                 "(timestamps must be monotonic)")
            prev_last = int(ts[-1])
            det = (np.ones(ts.shape, np.uint8) if self._det is None
                   else self._det[start:stop].astype(np.int64))
            nt = None
            if self._nt is not None:
                nt = self._nt[start:stop]
                if nt.size and (int(nt.max()) > 0xFFFF or int(nt.min()) < 0):
                    raise self._fail("/photon_data/nanotimes outside 0..65535")
                nt = nt.astype(np.uint16)
            # Markers from the photon stream (foreign files) and from /user/markers.
            mt, mc = markers.take_before(int(self._ts[stop]) if stop < n else None)
            if self._marker_ids:
                is_mk = np.isin(det, list(self._marker_ids))
                if is_mk.any():
                    mt = np.concatenate([mt, ts[is_mk]])
                    mc = np.concatenate([mc, det[is_mk].astype(np.uint8)])
                    order = np.argsort(mt, kind="stable")
                    mt, mc = mt[order], mc[order]
                    keep = ~is_mk
                    ts, det = ts[keep], det[keep]
                    nt = None if nt is None else nt[keep]
            det = self._map_detectors(det, start)
            yield PhotonChunk(timing, ts, det, nt, mt, mc)
        if n == 0:
            mt, mc = markers.take_before(None)
            if mt.size:
                yield PhotonChunk(timing, marker_times=mt, marker_channels=mc)

    def _map_detectors(self, det: np.ndarray, start: int) -> np.ndarray:
        if self._sync_id is not None:
            is_sync = det == self._sync_id
        else:
            is_sync = np.zeros(det.shape, bool)
        if self._shift:
            det = np.where(is_sync, det, det + self._shift)
        if self._sync_id not in (None, SYNC):
            det = np.where(is_sync, SYNC, det)
        if det.size and (det.max() > 255 or det.min() < 0):
            raise self._fail(f"/photon_data/detectors near index {start} outside 0..255")
        if self.mode == "T3" and det.size and np.any(det == SYNC):
            raise self._fail("/photon_data/detectors uses id 0 for photons in a T3 file that "
                             "also numbers detectors from 1")
        return det.astype(np.uint8)

    def close(self) -> None:
        """Close the HDF5 file."""
        if self._f.id.valid:
            self._f.close()


class _MarkerCursor:
    """Reads /user/markers in blocks and hands out the markers before a given time."""

    def __init__(self, reader: PhotonHdf5Reader, block: int) -> None:
        self.reader = reader
        self.t_ds, self.c_ds = reader._mk_t, reader._mk_c
        self.n = 0 if self.t_ds is None else self.t_ds.shape[0]
        self.block = block
        self.pos = 0
        self.buf_t = np.empty(0, np.int64)
        self.buf_c = np.empty(0, np.uint8)
        self.last: int | None = None

    def _load(self) -> bool:
        if self.pos >= self.n:
            return False
        stop = min(self.pos + self.block, self.n)
        t = self.t_ds[self.pos:stop].astype(np.int64)
        c = self.c_ds[self.pos:stop]
        if t.size and (np.any(np.diff(t) < 0) or (self.last is not None and t[0] < self.last)):
            raise self.reader._fail("/user/markers/times are not in time order")
        if c.size and (int(c.max()) > 255 or int(c.min()) < 0):
            raise self.reader._fail("/user/markers/channels outside 0..255")
        self.last = int(t[-1])
        self.pos = stop
        self.buf_t = np.concatenate([self.buf_t, t])
        self.buf_c = np.concatenate([self.buf_c, c.astype(np.uint8)])
        return True

    def take_before(self, t: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Markers with time < ``t`` (all remaining ones if ``t`` is None)."""
        while (t is None or not self.buf_t.size or self.buf_t[-1] < t) and self._load():
            pass
        k = self.buf_t.size if t is None else int(np.searchsorted(self.buf_t, t, "left"))
        out = self.buf_t[:k], self.buf_c[:k]
        self.buf_t, self.buf_c = self.buf_t[k:], self.buf_c[k:]
        return out


# --------------------------------------------------------------------------------------------
# /user groups


def read_user_group(h5file_or_path: h5py.File | str | os.PathLike[str], name: str
                    ) -> dict[str, Any]:
    """Read back what :func:`~spad.formats.photon_hdf5_writer.write_user_group` stored under
    ``/user/<name>``.

    Scalars come back as Python numbers, bools, strings or None; arrays as numpy arrays;
    lists of strings as lists of str. Raises ``KeyError`` if the group does not exist.
    """
    if isinstance(h5file_or_path, h5py.File):
        return _read_dict(h5file_or_path["user"][name])
    with open_hdf5(h5file_or_path) as f:
        if f.get(f"user/{name}") is None:
            raise KeyError(f"{h5file_or_path}: no /user/{name} group")
        return _read_dict(f["user"][name])


def _read_dict(group: h5py.Group) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, node in group.items():
        if isinstance(node, h5py.Group):
            out[key] = _read_dict(node)
            continue
        kind = node.attrs.get("spad_type")
        if kind == "none":
            out[key] = None
        elif kind == "bool":
            out[key] = bool(node[()])
        elif kind == "list_str":
            out[key] = [_text(s) for s in node[()]]
        elif node.ndim == 0:
            value = node[()]
            out[key] = _text(value) if isinstance(value, bytes | str) else value.item()
        else:
            out[key] = node[()]
    return out
