"""Photon-HDF5 (photon-hdf5.org, spec 0.5): reader, streaming writer and /user helpers.

Layout written (single spot, measurement_type ``"generic"``):

- ``/photon_data/timestamps`` int64, ``/photon_data/detectors`` uint8 and in T3
  ``/photon_data/nanotimes`` uint16: resizable chunked datasets that grow with every
  :meth:`PhotonHdf5Writer.write`, flushed after each chunk.
- ``timestamps_specs/timestamps_unit`` (s), ``nanotimes_specs/tcspc_unit`` (s),
  ``tcspc_num_bins``, ``tcspc_range`` (s), ``measurement_specs`` with ``laser_repetition_rate``
  (Hz) and ``detectors_specs/split_chN`` (HBT: one APD per beamsplitter output).
- In T2, laser sync events stay in the photon stream as detector 0 (:data:`spad.photons.SYNC`),
  listed in ``detectors_specs/non_photon_id1`` and labelled ``"sync"`` in ``/setup/detectors``.
- Markers have no standard place in Photon-HDF5: ``/user/markers/times`` (int64, timestamp units)
  and ``/user/markers/channels`` (uint8).
- Every field the spec defines carries the spec's description as its ``TITLE`` attribute, as
  phconvert's validator requires.

Files written by other software (phconvert, FRETBursts tools, ...) are read too: their photon
detector ids are shifted to start at 1 when they use detector 0 for a photon detector, and events
with ids listed in ``non_photon_id`` become markers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from spad.errors import FormatError
from spad.formats.base import DEFAULT_CHUNK_RECORDS, Reader
from spad.photons import SYNC, Measurement, Meta, PhotonChunk, Timing

FORMAT_NAME = "Photon-HDF5"
FORMAT_VERSION = "0.5"
FORMAT_URL = "http://photon-hdf5.org/"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

# Official field descriptions of Photon-HDF5 0.5 (the spec requires them as TITLE attributes).
_PD = "/photon_data"
_MS = _PD + "/measurement_specs"
_TITLES: dict[str, str] = {
    "/": "A file format for photon-counting detector based single-molecule spectroscopy "
         "experiments.",
    "/acquisition_duration": "Measurement duration in seconds.",
    "/description": "A user-defined comment describing the data file.",
    "/format_name": "Name of the file format.",
    "/format_version": "Version for the Photon-HDF5 format.",
    _PD: "Group containing arrays of photon-data.",
    _PD + "/timestamps": "Array of photon timestamps. Units specified in timestamps_units "
                         "(defined in timestamps_specs/).",
    _PD + "/detectors": "Array of pixel IDs for each timestamp.",
    _PD + "/nanotimes": "TCSPC photon arrival time (nanotimes). Units and other specifications "
                        "are in nanotimes_specs group.",
    _PD + "/timestamps_specs": "Specifications for timestamps.",
    _PD + "/timestamps_specs/timestamps_unit": "Value of 1-unit timestamp-increment in seconds.",
    _PD + "/nanotimes_specs": "Group for nanotime-specific data.",
    _PD + "/nanotimes_specs/tcspc_unit": "Value of 1-unit nanotime-increment in seconds "
                                         "(TCSPC bin size).",
    _PD + "/nanotimes_specs/tcspc_num_bins": "Number of TCSPC bins.",
    _PD + "/nanotimes_specs/tcspc_range": "TCSPC full-scale range in seconds.",
    _MS: "Metadata necessary for interpretation of the particular type of measurement.",
    _MS + "/measurement_type": "Name of the measurement the data represents.",
    _MS + "/laser_repetition_rate": "Repetition rate of the pulsed excitation laser (in Hertz).",
    _MS + "/detectors_specs": "Mapping between the pixel IDs and the detection channels.",
    "/setup": "Information about the experimental setup.",
    "/setup/num_pixels": "Total number of detector pixels.",
    "/setup/num_spots": 'Number of excitation (or detection) "spots" in the sample.',
    "/setup/num_spectral_ch": "Number of distinct spectral bands which are acquired.",
    "/setup/num_polarization_ch": "Number of distinct polarization states which are acquired.",
    "/setup/num_split_ch": "Number of distinct detection channels detecting the same spectral "
                           "band and polarization. This value is > 1 when using a non-polarizing "
                           "beam splitter.",
    "/setup/modulated_excitation": "True (i.e. 1) if there is any form of excitation modulation "
                                   "of excitation wavelength (as in us-ALEX or PAX) or "
                                   "polarization. This field is also True for pulse-interleaved "
                                   "excitation (PIE) or ns-ALEX measurements.",
    "/setup/excitation_alternated": "New in version 0.5. Indicates whether each excitation "
                                    "source is alternated (True, or 1) or not alternated "
                                    "(False, or 0).",
    "/setup/lifetime": "True (i.e. 1) if the measurement includes a nanotimes array of photon "
                       "arrival times with respect to a laser pulse (as in TCSPC measurements).",
    "/setup/excitation_wavelengths": "List of excitation wavelengths (center wavelength if "
                                     "broad-band) in increasing order (unit: meter).",
    "/setup/excitation_cw": "For each excitation source, this field indicates whether excitation "
                            "is continuous wave (CW), True (i.e. 1), or pulsed, False (i.e. 0).",
    "/setup/laser_repetition_rates": "Repetition rates in Hz for each laser. CW lasers have a "
                                     "value of 0.",
    "/setup/detection_wavelengths": "Reference wavelengths (units: meter) for each detected "
                                    "spectral band.",
    "/setup/detection_split_ch_ratios": 'Power fraction detected by each "beam-split" channel '
                                        "(i.e. independent detection channels obtained through "
                                        "a non-polarizing beam splitter).",
    "/setup/detectors": "Metadata relative to each detector's pixel. Each field is an array with "
                        "size equal to the number of the detectors.",
    "/setup/detectors/id": "Detector IDs as they appear on /photon_data/detectors.",
    "/setup/detectors/label": "Labels (strings) describing each detector.",
    "/setup/detectors/counts": "Total number of counts detected by each detector.",
    "/identity": "Information about the Photon-HDF5 data file.",
    "/identity/author": "Author of the current data file.",
    "/identity/author_affiliation": "Company or institution the author is affiliated with.",
    "/identity/creator": "Creator of the current Photon-HDF5 file.",
    "/identity/creator_affiliation": "Company or institution the creator is affiliated with.",
    "/identity/filename": "Original file name of the current Photon-HDF5 file (i.e. file name "
                          "at creation time).",
    "/identity/filename_full": "Original file name (with full path) of the current Photon-HDF5 "
                               "file (i.e. full file name at creation time).",
    "/identity/creation_time": "Creation time of the current Photon-HDF5 file.",
    "/identity/software": "Name of the software used to create the current Photon-HDF5 file.",
    "/identity/software_version": "Version of the software used to create current the "
                                  "Photon-HDF5 file.",
    "/identity/format_name": "Name of the file format.",
    "/identity/format_version": "Version for the Photon-HDF5 format.",
    "/identity/format_url": "Official URL for the Photon-HDF5 format.",
    "/identity/license": "The license under which the data is released.",
    "/provenance": "Information about the original data file.",
    "/provenance/filename": "File name of the original data file before conversion to "
                            "Photon-HDF5.",
    "/provenance/filename_full": "File name (with full path) of the original data file before "
                                 "conversion to Photon-HDF5.",
    "/provenance/creation_time": "Creation time of the original data file.",
    "/provenance/modification_time": "Time of last modification of the original data file.",
    "/provenance/software": "Software used to save the original data file.",
    "/provenance/software_version": "Version of the software used to save the original data "
                                    "file.",
    "/sample": "Information about the measured sample.",
    "/sample/sample_name": "A descriptive name for the sample.",
}
_NTH = {1: "first", 2: "second", 3: "thrid", 4: "fourth", 5: "fifth", 6: "sixth",
        7: "seventh", 8: "eighth", 9: "ninth", 10: "tenth"}  # "thrid" is the spec's spelling

_IDENTITY_FIELDS = ("author", "author_affiliation", "creator", "creator_affiliation", "license")
_PROVENANCE_FIELDS = ("filename", "filename_full", "creation_time", "modification_time",
                      "software", "software_version")
_DATASET_CHUNK = 1 << 16  # HDF5 chunk (elements) of the growing photon datasets


def _title(path: str) -> str:
    """Spec description of ``path``, including the enumerated detectors_specs fields."""
    if path in _TITLES:
        return _TITLES[path]
    name = path.rsplit("/", 1)[-1]
    if name.startswith("split_ch"):
        n = int(name[len("split_ch"):])
        return (f"Pixel IDs for the {_NTH.get(n, str(n))} channel split through a "
                "non-polarizing beam splitter.")
    if name.startswith("non_photon_id"):
        # Spec text, including its spelling.
        return "Detector ids of non photon events as they apppear in /photon_data/detectors"
    raise KeyError(path)


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
    Such a file is opened in SWMR read mode instead, which HDF5 allows while a writer may be
    active, and which reads everything the writer flushed.
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


def _put(group: h5py.Group, name: str, value: Any, *, title: bool = True) -> h5py.Dataset:
    """Write one field: str -> fixed-length byte string scalar (the spec's string type)."""
    if isinstance(value, str):
        value = np.bytes_(value.encode("utf-8"))
    elif isinstance(value, bool):
        value = np.int8(value)  # the spec stores booleans as integers
    ds = group.create_dataset(name, data=value)
    _pytables_attrs(ds)
    if title:
        ds.attrs["TITLE"] = np.bytes_(_title(ds.name))
    return ds


def _pytables_attrs(ds: h5py.Dataset, growing: bool = False) -> None:
    """Attributes PyTables (and so phconvert's validator) uses to read a dataset back as the
    Python object it was: a scalar string reads as ``bytes``, not a 0-d array."""
    if growing:
        ds.attrs.update({"CLASS": np.bytes_(b"EARRAY"), "VERSION": np.bytes_(b"1.1"),
                         "EXTDIM": np.int32(0)})
    else:
        ds.attrs.update({"CLASS": np.bytes_(b"ARRAY"), "VERSION": np.bytes_(b"2.4"),
                         "FLAVOR": np.bytes_(b"python" if ds.ndim == 0 else b"numpy")})


def _group(parent: h5py.Group, name: str) -> h5py.Group:
    g = parent.require_group(name)
    g.attrs["TITLE"] = np.bytes_(_title(g.name))
    return g


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
        specs = f.get(_MS.lstrip("/") + "/detectors_specs")
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
        rate = _scalar(self._f, _MS.lstrip("/") + "/laser_repetition_rate")
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

        for field in ("acquisition_duration", "description", "setup", "identity"):
            if field not in f:
                warn.append(f"missing mandatory Photon-HDF5 field /{field}")
        meas_type = _scalar(f, _MS.lstrip("/") + "/measurement_type")
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
# Writer


class PhotonHdf5Writer:
    """Stream photons into a new Photon-HDF5 0.5 file (measurement_type ``"generic"``).

    Every mandatory field is written when the file is created and ``acquisition_duration`` is
    updated after each chunk, and the file is flushed after each :meth:`write`: if the program
    dies, the file holds every chunk written before the last one and is still readable.

    Parameters
    ----------
    path
        The new file.
    timing
        Timing of the stream (every chunk written must carry the same).
    description
        Free text stored in ``/description`` (the spec requires the field; default "").
    split_channels
        Photon detector ids behind each output of the non-polarizing beamsplitter; the default
        ``((1,), (2,))`` is the HBT setup (``num_split_ch = 2``). ``((1,),)`` is one detector.
    lifetime
        Whether the file carries nanotimes; default: True for T3. Must agree with the timing.
    laser_repetition_rates
        Laser repetition rate(s) in Hz. Default: ``1 / timing.sync_period``. Unknown without
        a sync period (T2 without sync; B&H SPC files): stored as NaN, never guessed from the
        timestamp unit, which in T3 is not always the laser period (TimeHarp 200, B&H SPC).
    excitation_wavelengths, detection_wavelengths
        Optional, in metres.
    detection_split_ch_ratios
        Optional power fraction to each beamsplitter output.
    detector_labels
        Labels for ``/setup/detectors/label`` by detector id; default "detector N" and "sync"
        for detector 0 in T2.
    software, software_version, author, author_affiliation, creator, creator_affiliation, license
        ``/identity`` fields (software defaults to spad and its version).
    provenance
        ``/provenance`` fields describing the original recording: filename, filename_full,
        creation_time, modification_time, software, software_version.
    sample_name
        Optional ``/sample/sample_name``.
    acquisition_duration
        Duration in s to store instead of the span of the timestamps (e.g. the acquisition time
        stated by the original file).
    user
        Nested dict stored under ``/user`` with :func:`write_user_group` (one group per key).
    overwrite
        Replace an existing file (default: refuse with ``FileExistsError``).
    compression
        HDF5 filter for the photon datasets: ``"gzip"`` (level 1, after the byte shuffle:
        about 3 bytes per photon instead of 11 at ~10 M photons/s per core, and readable by
        any HDF5 library), ``"lzf"`` (h5py's own filter, faster, slightly larger, read only
        where the filter is installed) or None.
    swmr
        Write the file in the HDF5 1.10 format so that :meth:`start_swmr` can switch it to
        single-writer/multiple-reader mode: other programs may then open it read-only
        (``h5py.File(path, "r", libver="latest", swmr=True)``) while photons are appended.
        Groups and datasets (``user``, the spectrum's) must be created before that.
    """

    def __init__(self, path: str | os.PathLike[str], timing: Timing, *,
                 description: str = "",
                 split_channels: Sequence[Sequence[int]] = ((1,), (2,)),
                 lifetime: bool | None = None,
                 laser_repetition_rates: float | Sequence[float] | None = None,
                 excitation_wavelengths: Sequence[float] | None = None,
                 detection_wavelengths: Sequence[float] | None = None,
                 detection_split_ch_ratios: Sequence[float] | None = None,
                 detector_labels: Mapping[int, str] | None = None,
                 software: str = "spad", software_version: str | None = None,
                 author: str | None = None, author_affiliation: str | None = None,
                 creator: str | None = None, creator_affiliation: str | None = None,
                 license: str | None = None,  # noqa: A002 - the spec's field name
                 provenance: Mapping[str, str] | None = None,
                 sample_name: str | None = None,
                 acquisition_duration: float | None = None,
                 user: Mapping[str, Any] | None = None,
                 overwrite: bool = False,
                 compression: str | None = None,
                 swmr: bool = False) -> None:
        self.path = str(path)
        self.timing = timing
        lifetime = timing.is_t3 if lifetime is None else bool(lifetime)
        if lifetime != timing.is_t3:
            raise ValueError("lifetime=True needs T3 timing (nanotimes) and vice versa")
        split = [sorted({int(d) for d in ch}) for ch in split_channels]
        if not split or any(not ch for ch in split):
            raise ValueError("split_channels needs at least one non-empty list of detector ids")
        if any(d < 1 or d > 255 for ch in split for d in ch):
            raise ValueError("photon detector ids in split_channels must be 1..255")
        if laser_repetition_rates is None:
            period = timing.sync_period
            rates = [1.0 / period if period else math.nan]
        else:
            rates = [float(r) for r in np.atleast_1d(laser_repetition_rates)]
        self._fixed_duration = acquisition_duration
        self._labels = dict(detector_labels or {})
        self._split = split
        self._counts = np.zeros(256, np.int64)
        self._first: int | None = None
        self._last: int | None = None
        self._closed = False
        if provenance is not None:
            unknown = set(provenance) - set(_PROVENANCE_FIELDS)
            if unknown:
                raise ValueError(f"unknown provenance fields {sorted(unknown)}; "
                                 f"allowed: {_PROVENANCE_FIELDS}")

        f = h5py.File(self.path, "w" if overwrite else "w-",
                      **({"libver": "latest"} if swmr else {}))
        self._f = f
        try:
            self._write_header(description, lifetime, rates, excitation_wavelengths,
                               detection_wavelengths, detection_split_ch_ratios, software,
                               software_version, dict(author=author,
                                                      author_affiliation=author_affiliation,
                                                      creator=creator,
                                                      creator_affiliation=creator_affiliation,
                                                      license=license),
                               provenance, sample_name, compression)
            for name, data in (user or {}).items():
                write_user_group(f, name, data)
            f.flush()
        except BaseException:
            f.close()
            raise

    def _write_header(self, description: str, lifetime: bool, rates: list[float],
                      exc_wl: Sequence[float] | None, det_wl: Sequence[float] | None,
                      ratios: Sequence[float] | None, software: str,
                      software_version: str | None, identity: dict[str, str | None],
                      provenance: Mapping[str, str] | None, sample_name: str | None,
                      compression: str | None) -> None:
        import spad

        f, timing = self._f, self.timing
        f.attrs["TITLE"] = np.bytes_(_TITLES["/"])
        f.attrs.update({"format_name": np.bytes_(FORMAT_NAME.encode()),
                        "format_version": np.bytes_(FORMAT_VERSION.encode()),
                        "format_url": np.bytes_(FORMAT_URL.encode())})
        # Root copies of the format fields: redundant with /identity but named by the spec.
        _put(f, "format_name", FORMAT_NAME)
        _put(f, "format_version", FORMAT_VERSION)
        _put(f, "description", description if description else " ")
        _put(f, "acquisition_duration", float(self._fixed_duration or 0.0))

        pd = _group(f, "photon_data")
        opts: dict[str, Any] = dict(maxshape=(None,), chunks=(_DATASET_CHUNK,))
        if compression is not None:
            # the shuffle groups the bytes of the timestamps by significance: the high ones
            # hardly change, and then compress to almost nothing
            opts.update(compression=compression, shuffle=True,
                        compression_opts=1 if compression == "gzip" else None)
        for name, dtype in (("timestamps", np.int64), ("detectors", np.uint8),
                            *((("nanotimes", np.uint16),) if timing.is_t3 else ())):
            ds = pd.create_dataset(name, shape=(0,), dtype=dtype, **opts)
            _pytables_attrs(ds, growing=True)
            ds.attrs["TITLE"] = np.bytes_(_title(ds.name))
        _put(_group(pd, "timestamps_specs"), "timestamps_unit", float(timing.timestamp_unit))
        if timing.is_t3:
            ns = _group(pd, "nanotimes_specs")
            _put(ns, "tcspc_unit", float(timing.nanotime_unit))
            bins = timing.tcspc_num_bins or 1 << 16
            _put(ns, "tcspc_num_bins", int(bins))
            _put(ns, "tcspc_range", float(bins * timing.nanotime_unit))
        ms = _group(pd, "measurement_specs")
        _put(ms, "measurement_type", "generic")
        _put(ms, "laser_repetition_rate", rates[0])
        specs = _group(ms, "detectors_specs")
        for i, ids in enumerate(self._split, 1):
            _put(specs, f"split_ch{i}", np.asarray(ids, np.uint8))
        if not timing.is_t3:
            _put(specs, "non_photon_id1", np.asarray([SYNC], np.uint8))

        setup = _group(f, "setup")
        n_pixels = sum(len(ch) for ch in self._split)
        for name, value in (("num_pixels", n_pixels), ("num_spots", 1), ("num_spectral_ch", 1),
                            ("num_polarization_ch", 1), ("num_split_ch", len(self._split)),
                            ("modulated_excitation", False), ("lifetime", lifetime)):
            _put(setup, name, value)
        n_lasers = len(rates)
        _put(setup, "excitation_alternated", np.zeros(n_lasers, np.int8))
        _put(setup, "excitation_cw", np.zeros(n_lasers, np.int8))  # pulsed laser(s)
        _put(setup, "laser_repetition_rates", np.asarray(rates, float))
        if exc_wl is not None:
            _put(setup, "excitation_wavelengths", np.sort(np.asarray(exc_wl, float)))
        if det_wl is not None:
            _put(setup, "detection_wavelengths", np.asarray(det_wl, float))
        if ratios is not None:
            _put(setup, "detection_split_ch_ratios", np.asarray(ratios, float))

        ident = _group(f, "identity")
        path = Path(self.path)
        for name, value in (
                ("format_name", FORMAT_NAME), ("format_version", FORMAT_VERSION),
                ("format_url", FORMAT_URL), ("software", software),
                ("software_version", software_version or spad.__version__),
                ("creation_time", datetime.now().isoformat(sep=" ", timespec="seconds")),
                ("filename", path.name), ("filename_full", str(path.resolve())),
                *identity.items()):
            if value is not None:
                _put(ident, name, str(value))
        if provenance:
            prov = _group(f, "provenance")
            for name in _PROVENANCE_FIELDS:
                if provenance.get(name) is not None:
                    _put(prov, name, str(provenance[name]))
        if sample_name is not None:
            _put(_group(f, "sample"), "sample_name", sample_name)

        mk = f.require_group("user").create_group("markers")
        t = mk.create_dataset("times", shape=(0,), dtype=np.int64, **opts)
        t.attrs["units"] = "timestamps_unit"
        t.attrs["timestamps_unit"] = float(timing.timestamp_unit)
        t.attrs["description"] = ("marker times in units of /photon_data/timestamps_specs/"
                                  "timestamps_unit seconds")
        c = mk.create_dataset("channels", shape=(0,), dtype=np.uint8, **opts)
        c.attrs["units"] = "marker channel (bit pattern as recorded)"

    @property
    def file(self) -> h5py.File:
        """The open HDF5 file (to add groups before :meth:`start_swmr`)."""
        return self._f

    def start_swmr(self) -> None:
        """Switch to SWMR mode (the writer must have been made with ``swmr=True``): from now
        on the file can be read while it grows; no new group or dataset can be added."""
        self._f.flush()
        self._f.swmr_mode = True

    def flush(self) -> None:
        """Push everything written so far to the file on disk."""
        self._f.flush()

    def write(self, chunk: PhotonChunk, flush: bool = True) -> None:
        """Append a chunk (photons and markers) and flush the file (unless ``flush`` is False:
        then the caller calls :meth:`flush`, e.g. once per second at high rates)."""
        if self._closed:
            raise ValueError(f"{self.path}: writer is closed")
        if chunk.timing != self.timing:
            raise ValueError(f"{self.path}: chunk timing {chunk.timing} differs from the "
                             f"file's {self.timing}")
        ts = chunk.timestamps
        if len(ts):
            if np.any(np.diff(ts) < 0) or (self._last is not None and ts[0] < self._last):
                raise FormatError(self.path, "photon timestamps must not decrease "
                                             "(chunks must be written in time order)")
            self._first = int(ts[0]) if self._first is None else self._first
            self._last = int(ts[-1])
            self._counts += np.bincount(chunk.detectors, minlength=256)
            if self.timing.is_t3 and self._counts[SYNC]:
                raise FormatError(self.path, "detector 0 is the T2 sync input; T3 photon "
                                             "detectors are numbered from 1")
        pd = self._f["photon_data"]
        arrays = [("timestamps", ts), ("detectors", chunk.detectors)]
        if self.timing.is_t3:
            arrays.append(("nanotimes", chunk.nanotimes))
        for name, data in arrays:
            _append(pd[name], data)
        if len(chunk.marker_times):
            _append(self._f["user/markers/times"], chunk.marker_times)
            _append(self._f["user/markers/channels"], chunk.marker_channels)
        if self._fixed_duration is None and self._first is not None:
            self._f["acquisition_duration"][()] = self._span()
        if flush:
            self._f.flush()

    def _span(self) -> float:
        if self._first is None:
            return 0.0
        return float((self._last - self._first) * self.timing.timestamp_unit)

    def close(self) -> None:
        """Finalise: acquisition_duration and the /setup/detectors table, then close."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._f.swmr_mode:
                # SWMR forbids new datasets (the detectors table): reopen to finalise.
                self._f.close()
                self._f = h5py.File(self.path, "a", libver="latest")
            f = self._f
            f["acquisition_duration"][()] = (float(self._fixed_duration)
                                             if self._fixed_duration is not None
                                             else self._span())
            configured = {d for ch in self._split for d in ch}
            ids = sorted(configured | set(np.flatnonzero(self._counts).tolist()))
            det = _group(f["setup"], "detectors")
            _put(det, "id", np.asarray(ids, np.uint8))
            _put(det, "counts", self._counts[ids].astype(np.int64))
            labels = [self._labels.get(i, "sync" if i == SYNC and not self.timing.is_t3
                                       else f"detector {i}") for i in ids]
            _put(det, "label", np.asarray([s.encode("utf-8") for s in labels]))
            f.flush()
        finally:
            self._f.close()

    def abort(self) -> None:
        """Close without finalising (the file keeps what was flushed)."""
        self._closed = True
        if self._f.id.valid:
            self._f.close()

    def __enter__(self) -> PhotonHdf5Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _append(ds: h5py.Dataset, data: np.ndarray) -> None:
    n = ds.shape[0]
    ds.resize((n + len(data),))
    ds[n:] = data


def write_photon_hdf5(path: str | os.PathLike[str], data: Measurement | PhotonChunk,
                      **fields: Any) -> None:
    """Write a whole measurement (or one chunk) to a new Photon-HDF5 file.

    Parameters
    ----------
    path
        The new file.
    data
        A :class:`~spad.photons.Measurement` (its metadata fills description, provenance and
        acquisition duration unless given in ``fields``) or a :class:`~spad.photons.PhotonChunk`.
    **fields
        Keyword arguments of :class:`PhotonHdf5Writer`.
    """
    if isinstance(data, Measurement):
        m = data.meta
        fields.setdefault("description", m.comment or "")
        if m.acquisition_time is not None:
            fields.setdefault("acquisition_duration", m.acquisition_time)
        if m.sync_rate:
            fields.setdefault("laser_repetition_rates", m.sync_rate)
        prov = {"filename": os.path.basename(m.path), "filename_full": os.path.abspath(m.path),
                "creation_time": m.creation_time, "software": m.software,
                "software_version": m.software_version}
        fields.setdefault("provenance", {k: v for k, v in prov.items() if v})
        chunk = data.photons
    else:
        chunk = data
    with PhotonHdf5Writer(path, chunk.timing, **fields) as w:
        w.write(chunk)


# --------------------------------------------------------------------------------------------
# /user groups


def write_user_group(h5file_or_path: h5py.File | str | os.PathLike[str], name: str,
                     data: Mapping[str, Any]) -> None:
    """Store a nested dict under ``/user/<name>`` (replacing a group of that name).

    Values may be dicts (sub-groups), numpy arrays or lists/tuples of numbers (datasets, read
    back as arrays), lists of strings, numbers, bools, strings and None. Keys must be non-empty
    strings without '/'.

    Parameters
    ----------
    h5file_or_path
        An open, writable :class:`h5py.File` or a path (opened in append mode, created if
        absent).
    name
        Group name under ``/user``.
    data
        The dict to store.
    """
    if isinstance(h5file_or_path, h5py.File):
        _write_user(h5file_or_path, name, data)
        return
    with h5py.File(h5file_or_path, "a") as f:
        _write_user(f, name, data)


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key or "/" in key or key in (".", ".."):
        raise ValueError(f"user group keys must be non-empty strings without '/', not {key!r}")
    return key


def _write_user(f: h5py.File, name: str, data: Mapping[str, Any]) -> None:
    _check_key(name)
    user = f.require_group("user")
    # Written under a temporary name and moved into place, so an error or an interruption
    # never leaves a half-written group (a complete old one stays until the new one is whole).
    part = f".{name}.part"
    if part in user:
        del user[part]
    try:
        _write_dict(user.create_group(part), data)
    except BaseException:
        del user[part]
        raise
    if name in user:
        del user[name]
    user.move(part, name)


def _write_dict(group: h5py.Group, data: Mapping[str, Any]) -> None:
    if not isinstance(data, Mapping):
        raise TypeError(f"user data must be a dict, not {type(data).__name__}")
    for key, value in data.items():
        key = _check_key(key)
        if isinstance(value, Mapping):
            _write_dict(group.create_group(key), value)
        elif value is None:
            group.create_dataset(key, data=h5py.Empty("f8")).attrs["spad_type"] = "none"
        elif isinstance(value, str):
            # Fixed-length UTF-8 bytes rather than variable-length strings: PyTables (used by
            # phconvert and FRETBursts) cannot read the latter.
            ds = group.create_dataset(key, data=np.bytes_(value.encode("utf-8")))
            ds.attrs["spad_type"] = "str"
        elif isinstance(value, bool | np.bool_):
            ds = group.create_dataset(key, data=np.int8(value))
            ds.attrs["spad_type"] = "bool"
        elif isinstance(value, list | tuple) and value and all(isinstance(v, str)
                                                               for v in value):
            ds = group.create_dataset(key, data=np.array([v.encode("utf-8") for v in value]))
            ds.attrs["spad_type"] = "list_str"
        else:
            arr = np.asarray(value)
            if arr.dtype.kind in "OUSV":
                if arr.dtype.kind == "V" and arr.dtype.names:  # structured arrays are fine
                    group.create_dataset(key, data=arr)
                    continue
                raise TypeError(f"cannot store {key!r} of type {type(value).__name__} "
                                "in a user group")
            group.create_dataset(key, data=arr)


def read_user_group(h5file_or_path: h5py.File | str | os.PathLike[str], name: str
                    ) -> dict[str, Any]:
    """Read back what :func:`write_user_group` stored under ``/user/<name>``.

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
