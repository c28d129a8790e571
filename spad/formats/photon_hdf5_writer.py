"""Photon-HDF5 writer (photon-hdf5.org, spec 0.5): :class:`PhotonHdf5Writer`,
:func:`write_photon_hdf5` and :func:`write_user_group`.

The reader, format detection and :func:`~spad.formats.photon_hdf5.read_user_group` are in
:mod:`spad.formats.photon_hdf5`.

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
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from spad.errors import FormatError
from spad.formats.photon_hdf5 import FORMAT_NAME, FORMAT_URL, FORMAT_VERSION
from spad.formats.photon_hdf5 import MEASUREMENT_SPECS as _MS
from spad.formats.photon_hdf5 import PHOTON_DATA as _PD
from spad.output import check_free
from spad.photons import SYNC, Measurement, PhotonChunk, Timing

# Official field descriptions of Photon-HDF5 0.5 (the spec requires them as TITLE attributes).
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
SWMR_LIBVER = ("v110", "v110")
"""HDF5 file format of the files written in SWMR mode: the 1.10 format, the first with SWMR.
``"latest"`` would be the newest format of the HDF5 spad runs with (2.0), which older HDF5
libraries, and so PyTables, phconvert and HDFView built on them, cannot read."""


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
# Small HDF5 helpers of the writer


def put_field(group: h5py.Group, name: str, value: Any, *, title: bool = True) -> h5py.Dataset:
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


def spec_group(parent: h5py.Group, name: str) -> h5py.Group:
    """The group ``name`` of ``parent``, created if missing, with the TITLE the spec's
    reference files carry."""
    g = parent.require_group(name)
    g.attrs["TITLE"] = np.bytes_(_title(g.name))
    return g


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
                      **({"libver": SWMR_LIBVER} if swmr else {}))
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
        from spad.version import VERSION

        f, timing = self._f, self.timing
        f.attrs["TITLE"] = np.bytes_(_TITLES["/"])
        f.attrs.update({"format_name": np.bytes_(FORMAT_NAME.encode()),
                        "format_version": np.bytes_(FORMAT_VERSION.encode()),
                        "format_url": np.bytes_(FORMAT_URL.encode())})
        # Root copies of the format fields: redundant with /identity but named by the spec.
        put_field(f, "format_name", FORMAT_NAME)
        put_field(f, "format_version", FORMAT_VERSION)
        put_field(f, "description", description if description else " ")
        put_field(f, "acquisition_duration", float(self._fixed_duration or 0.0))

        pd = spec_group(f, "photon_data")
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
        put_field(spec_group(pd, "timestamps_specs"), "timestamps_unit",
                  float(timing.timestamp_unit))
        if timing.is_t3:
            ns = spec_group(pd, "nanotimes_specs")
            put_field(ns, "tcspc_unit", float(timing.nanotime_unit))
            bins = timing.tcspc_num_bins or 1 << 16
            put_field(ns, "tcspc_num_bins", int(bins))
            put_field(ns, "tcspc_range", float(bins * timing.nanotime_unit))
        ms = spec_group(pd, "measurement_specs")
        put_field(ms, "measurement_type", "generic")
        put_field(ms, "laser_repetition_rate", rates[0])
        specs = spec_group(ms, "detectors_specs")
        for i, ids in enumerate(self._split, 1):
            put_field(specs, f"split_ch{i}", np.asarray(ids, np.uint8))
        if not timing.is_t3:
            put_field(specs, "non_photon_id1", np.asarray([SYNC], np.uint8))

        setup = spec_group(f, "setup")
        n_pixels = sum(len(ch) for ch in self._split)
        for name, value in (("num_pixels", n_pixels), ("num_spots", 1), ("num_spectral_ch", 1),
                            ("num_polarization_ch", 1), ("num_split_ch", len(self._split)),
                            ("modulated_excitation", False), ("lifetime", lifetime)):
            put_field(setup, name, value)
        n_lasers = len(rates)
        put_field(setup, "excitation_alternated", np.zeros(n_lasers, np.int8))
        put_field(setup, "excitation_cw", np.zeros(n_lasers, np.int8))  # pulsed laser(s)
        put_field(setup, "laser_repetition_rates", np.asarray(rates, float))
        if exc_wl is not None:
            put_field(setup, "excitation_wavelengths", np.sort(np.asarray(exc_wl, float)))
        if det_wl is not None:
            put_field(setup, "detection_wavelengths", np.asarray(det_wl, float))
        if ratios is not None:
            put_field(setup, "detection_split_ch_ratios", np.asarray(ratios, float))

        ident = spec_group(f, "identity")
        path = Path(self.path)
        for name, value in (
                ("format_name", FORMAT_NAME), ("format_version", FORMAT_VERSION),
                ("format_url", FORMAT_URL), ("software", software),
                ("software_version", software_version or VERSION),
                ("creation_time", datetime.now().isoformat(sep=" ", timespec="seconds")),
                ("filename", path.name), ("filename_full", str(path.resolve())),
                *identity.items()):
            if value is not None:
                put_field(ident, name, str(value))
        if provenance:
            prov = spec_group(f, "provenance")
            for name in _PROVENANCE_FIELDS:
                if provenance.get(name) is not None:
                    put_field(prov, name, str(provenance[name]))
        if sample_name is not None:
            put_field(spec_group(f, "sample"), "sample_name", sample_name)

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
        # refused while there is room to close the file cleanly (spad.output.DISK_RESERVE_BYTES)
        check_free(self.path, len(ts) * (11 if self.timing.is_t3 else 9), "the next chunk")
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
                # SWMR forbids new datasets (the detectors table): reopen to finalise. Without
                # HDF5's file lock: a reader that holds the file open in SWMR mode (which the
                # recording invites) would otherwise make the reopening fail and leave the
                # file unfinished.
                self._f.close()
                self._f = reopen_for_finalising(self.path)
            f = self._f
            f["acquisition_duration"][()] = (float(self._fixed_duration)
                                             if self._fixed_duration is not None
                                             else self._span())
            configured = {d for ch in self._split for d in ch}
            ids = sorted(configured | set(np.flatnonzero(self._counts).tolist()))
            det = spec_group(f["setup"], "detectors")
            put_field(det, "id", np.asarray(ids, np.uint8))
            put_field(det, "counts", self._counts[ids].astype(np.int64))
            labels = [self._labels.get(i, "sync" if i == SYNC and not self.timing.is_t3
                                       else f"detector {i}") for i in ids]
            put_field(det, "label", np.asarray([s.encode("utf-8") for s in labels]))
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


def reopen_for_finalising(path: str | os.PathLike[str]) -> h5py.File:
    """Open a file this process has just written and closed, to finalise it, even while
    other programs read it: HDF5's advisory lock would refuse while a SWMR reader holds the
    file, though only this process writes it."""
    return h5py.File(path, "a", libver=SWMR_LIBVER, locking=False)


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
    try:
        f = h5py.File(h5file_or_path, "a")
    except OSError as exc:  # h5py names no file and quotes HDF5's internals
        from spad.output import user_os_error

        path = str(h5file_or_path)
        raise user_os_error(exc, {path: path}) from None
    with f:
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
