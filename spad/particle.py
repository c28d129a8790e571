"""The particle file: one particle's photons, its emission spectrum and (if simulated) the truth.

Layout (Photon-HDF5 0.5, measurement_type ``"generic"``, valid for phconvert's checker):

- ``/photon_data``, ``/setup``, ``/identity``, ... : the photon stream, written by
  :class:`spad.formats.photon_hdf5_writer.PhotonHdf5Writer` (markers under ``/user/markers``);
- ``/user/spectrum``: the EMCCD frames and everything needed to read them (see
  :func:`write_spectrum_group`): ``frames`` (ADU, ``(n_frames, [n_rows,] n_columns)``, gzip),
  ``wavelength_m``, ``exposure_s``, ``em_gain``, ``bias_adu``, ``preamp_gain_e_per_adu``,
  ``calibration/`` (method, spectrograph settings, centre wavelength, pixel size),
  ``signal_rows``, ``background_rows`` (``[start, stop)`` frame rows, or None), ``source``,
  ``metadata/`` (read mode, tracks, sensor, frame start times ``frame_start_s``);
- ``/user/ground_truth``: for simulated particles, what was simulated (state timeline,
  parameters, expected g2(0), peak energies, shift...);
- ``/user/analysis``: the results of ``spad analyze --save`` (see
  :func:`write_analysis_group`);
- ``/user/acquisition``: how a recording was made and ended (:data:`ACQUISITION_GROUP`).

This module owns the ``/user`` layout: every group under ``/user`` is written and read here.

With PTU output the photons go to ``FILE.ptu`` and the ``/user`` groups to the sidecar
``FILE.user.h5`` (same ``/user/spectrum`` and ``/user/ground_truth`` layout, so one reader
serves both; the name says what it is: the /user part of FILE). The sidecar has no
``/photon_data`` and is not a photon file on its own.

Files are written under a temporary name and renamed when complete, so a failed or interrupted
write leaves no half file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from spad.errors import FormatError
from spad.formats.repair import ACQUISITION_GROUP as ACQUISITION_GROUP  # one of its groups
from spad.formats.spectra import SPECTRUM_GROUP, read_spectrum_group
from spad.output import replacing
from spad.photons import SYNC, Measurement, PhotonChunk, Timing
from spad.spectrum import SpectrumData

SIDECAR_SUFFIX = ".user.h5"
"""Suffix replacing ``.ptu`` for the spectrum + truth sidecar of a PTU particle file."""

PARTICLE_SUFFIXES = (".h5", ".hdf5", ".ptu", ".pt3", ".pt2", ".ht3", ".ht2", ".t3r", ".spc")
"""Extensions of particle recordings picked up from a directory (sidecars excluded): the
time-tag formats of :data:`spad.formats.FORMATS`, which itself reads content, not extensions."""

TRUTH_GROUP = "ground_truth"
ANALYSIS_GROUP = "analysis"
LAYOUT = "spad particle 1"
"""Version tag stored as ``/user/spectrum/layout``."""

_SCALARS = ("exposure_s", "em_gain", "bias_adu", "preamp_gain_e_per_adu")


@dataclass
class Particle:
    """A particle file read back.

    Attributes
    ----------
    measurement
        The photons and their metadata (``None`` if not loaded).
    spectrum
        The EMCCD frames, or ``None`` if the file has none.
    truth
        Ground truth of a simulated particle (nested dict), or ``None``.
    path
        The photon file.
    """

    measurement: Measurement | None
    spectrum: SpectrumData | None
    truth: dict[str, Any] | None
    path: str


@dataclass
class Written:
    """What :func:`write_particle` wrote: the files, photon count (sync events excluded) and
    the span of the stream in seconds."""

    paths: list[Path]
    n_photons: int
    span_s: float


def sidecar_path(ptu_path: str | os.PathLike[str]) -> Path:
    """The sidecar of a PTU particle file: ``FILE.ptu`` -> ``FILE.user.h5``."""
    p = Path(ptu_path)
    return p.with_name(p.stem + SIDECAR_SUFFIX)


def particle_files(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """The particle recordings in a directory (a session), sorted; ``*.user.h5`` sidecars and
    hidden files excluded."""
    found = Path(folder).rglob("*") if recursive else Path(folder).iterdir()
    return sorted(p for p in found
                  if p.is_file() and p.suffix.lower() in PARTICLE_SUFFIXES
                  and not p.name.endswith(SIDECAR_SUFFIX) and not p.name.startswith("."))


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is None:
        fmt = "ptu" if path.suffix.lower() == ".ptu" else "h5"
    if fmt not in ("h5", "ptu"):
        raise FormatError(path, f"unknown particle file format {fmt!r} (use h5 or ptu)")
    return fmt


def _chunks(photons: Measurement | PhotonChunk | Iterable[PhotonChunk]
            ) -> Iterable[PhotonChunk]:
    if isinstance(photons, Measurement):
        return [photons.photons]
    if isinstance(photons, PhotonChunk):
        return [photons]
    return photons


def write_particle(path: str | os.PathLike[str],
                   photons: Measurement | PhotonChunk | Iterable[PhotonChunk],
                   timing: Timing | None = None, spectrum: SpectrumData | None = None,
                   truth: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
                   *, format: str | None = None,  # noqa: A002
                   description: str = "", record_type: str | None = None,
                   overwrite: bool = False, **h5_fields: Any) -> Written:
    """Write one particle's photons, spectrum and truth.

    Parameters
    ----------
    path
        Output file (``.h5`` / ``.hdf5``: Photon-HDF5; ``.ptu``: PTU plus the
        ``FILE.user.h5`` sidecar).
    photons
        A measurement, one chunk, or an iterable of time-ordered chunks (streamed into the file,
        so a generator keeps memory bounded).
    timing
        Timing of the stream; needed when ``photons`` is an iterable (taken from the data
        otherwise).
    spectrum
        The particle's EMCCD frames, or ``None``.
    truth
        Ground truth (nested dict of numbers, strings, arrays, lists, None), or ``None``, or a
        function returning it, called after the photons are written (a simulation's truth is
        complete only then).
    format
        ``"h5"`` or ``"ptu"``; default from the extension (``.ptu`` -> PTU, else Photon-HDF5).
    description
        Free text (Photon-HDF5 ``/description``, PTU ``File_Comment``).
    record_type
        PTU record type (default HydraHarp2T3 / HydraHarp2T2 for the timing's mode).
    overwrite
        Replace existing files (default: refuse with FileExistsError).
    **h5_fields
        Further keyword arguments of :class:`spad.formats.photon_hdf5_writer.PhotonHdf5Writer`
        (e.g. ``split_channels``, ``excitation_wavelengths``, ``sample_name``).
    """
    path = Path(path)
    fmt = _format_of(path, format)
    if isinstance(photons, Measurement | PhotonChunk):
        timing = photons.timing
    elif timing is None and isinstance(photons, list | tuple) and photons:
        timing = photons[0].timing
    if timing is None:
        raise ValueError("write_particle needs the timing of a stream of chunks")
    targets = [path] + ([sidecar_path(path)] if fmt == "ptu" else [])
    # Temporary files renamed at the end (spad.output): an error or Ctrl-C leaves nothing.
    with replacing(*targets, overwrite=overwrite) as tmps:
        if fmt == "h5":
            n, span = _write_h5_photons(tmps[0], photons, timing, description, h5_fields)
            user_file = tmps[0]
        else:
            n, span = _write_ptu_photons(tmps[0], photons, timing, description, record_type)
            user_file = tmps[1]
        if callable(truth):  # computed once the photons are out (a streamed simulation)
            truth = truth()
        with h5py.File(user_file, "a") as f:
            if fmt == "ptu":
                f.attrs["spad_sidecar_of"] = path.name
                f.attrs["description"] = description
            if spectrum is not None:
                write_spectrum_group(f, spectrum)
            if truth is not None:
                write_truth_group(f, truth)
    return Written(targets, n, span)


def _count(chunk: PhotonChunk, first: float | None) -> tuple[int, float | None, float | None]:
    if not len(chunk):
        return 0, first, None
    t = chunk.timestamps * chunk.timing.timestamp_unit
    return (int(np.count_nonzero(chunk.detectors != SYNC)),
            float(t[0]) if first is None else first, float(t[-1]))


def _write_h5_photons(tmp: Path, photons: Any, timing: Timing, description: str,
                      fields: dict[str, Any]) -> tuple[int, float]:
    from spad.formats.photon_hdf5_writer import PhotonHdf5Writer

    n, first, last = 0, None, None
    writer = PhotonHdf5Writer(tmp, timing, description=description, overwrite=True, **fields)
    try:
        for chunk in _chunks(photons):
            writer.write(chunk)
            k, first, end = _count(chunk, first)
            n, last = n + k, end if end is not None else last
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return n, (last - first) if first is not None and last is not None else 0.0


def _write_ptu_photons(tmp: Path, photons: Any, timing: Timing, description: str,
                       record_type: str | None) -> tuple[int, float]:
    from spad.formats.ptu import PtuWriter

    rectype = record_type or ("HydraHarp2T3" if timing.is_t3 else "HydraHarp2T2")
    n, first, last = 0, None, None
    with PtuWriter(tmp, rectype, timing, comment=description) as writer:
        for chunk in _chunks(photons):
            writer.write(chunk)
            k, first, end = _count(chunk, first)
            n, last = n + k, end if end is not None else last
    return n, (last - first) if first is not None and last is not None else 0.0


# -- /user/spectrum ------------------------------------------------------------------------

def write_spectrum_group(f: h5py.File, spectrum: SpectrumData) -> None:
    """Store ``spectrum`` under ``/user/spectrum`` of an open, writable HDF5 file."""
    from spad.formats.photon_hdf5_writer import write_user_group

    def rows(r: tuple[int, int] | None) -> np.ndarray | None:
        return None if r is None else np.asarray(r, dtype=np.int64)

    fields: dict[str, Any] = {
        "layout": LAYOUT,
        "wavelength_m": spectrum.wavelength_m,
        **{k: None if getattr(spectrum, k) is None else float(getattr(spectrum, k))
           for k in _SCALARS},
        "calibration": storable(dict(spectrum.calibration)),
        "signal_rows": rows(spectrum.signal_rows),
        "background_rows": rows(spectrum.background_rows),
        "source": spectrum.source,
        "metadata": storable(dict(spectrum.metadata)),
    }
    write_user_group(f, SPECTRUM_GROUP, fields)
    g = f["user"][SPECTRUM_GROUP]
    frames = np.asarray(spectrum.frames)
    # One HDF5 chunk per frame: frames compress well (noise around a bias) and read per frame.
    # Extendable along the frames, as a recording writes them: this also takes a series of
    # zero frames (a recording that ended before the first exposure), which a fixed-size
    # dataset cannot hold in frame-sized chunks.
    ds = g.create_dataset("frames", data=frames, chunks=(1,) + frames.shape[1:],
                          maxshape=(None,) + frames.shape[1:],
                          compression="gzip", compression_opts=4, shuffle=True)
    ds.attrs["units"] = "ADU"
    ds.attrs["axes"] = "frame, row, column" if frames.ndim == 3 else "frame, column"
    if spectrum.wavelength_m is not None:
        g["wavelength_m"].attrs["units"] = "m"
    g["exposure_s"].attrs["units"] = "s"


# -- /user/ground_truth --------------------------------------------------------------------

def storable(obj: Any) -> Any:
    """``obj`` made storable by ``write_user_group``: lists of dicts or of ragged/mixed items
    become dicts keyed "0", "1", ...; tuples become lists; numpy scalars stay."""
    if isinstance(obj, Mapping):
        return {str(k): storable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        items = [storable(v) for v in obj]
        if not items:
            return np.zeros(0)
        if all(isinstance(v, str) for v in items):
            return items
        try:
            arr = np.asarray(items)
            if arr.dtype.kind in "biuf":
                return arr
        except ValueError:  # ragged
            pass
        return {str(i): v for i, v in enumerate(items)}
    return obj


def write_truth_group(f: h5py.File, truth: Mapping[str, Any]) -> None:
    """Store the ground truth under ``/user/ground_truth``."""
    from spad.formats.photon_hdf5_writer import write_user_group

    write_user_group(f, TRUTH_GROUP, storable(dict(truth)))


# -- reading -------------------------------------------------------------------------------

def read_particle(path: str | os.PathLike[str], photons: bool = True) -> Particle:
    """Read a particle file (Photon-HDF5, or PTU with its ``FILE.user.h5`` sidecar).

    Parameters
    ----------
    path
        The photon file.
    photons
        Load the photons (False reads only the spectrum and truth).
    """
    from spad.formats.photon_hdf5 import is_photon_hdf5, read_user_group
    from spad.formats.repair import open_repaired

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such file", str(path))
    measurement = None
    if is_photon_hdf5(path):
        user = path
    else:
        user = sidecar_path(path)
        if h5py.is_hdf5(path):
            raise FormatError(path, "an HDF5 file without /photon_data (a sidecar? open the "
                                    "photon file it belongs to)")
    if photons:
        import spad

        with spad.open(path) as reader:
            measurement = reader.read()
    spectrum, truth = None, None
    if user.exists():
        try:
            with open_repaired(user) as f:
                spectrum = read_spectrum_group(f, user)
                if f.get(f"user/{TRUTH_GROUP}") is not None:
                    truth = read_user_group(f, TRUTH_GROUP)
        except OSError as exc:
            raise FormatError(user, f"cannot read the particle's /user groups: {exc}") from None
    return Particle(measurement, spectrum, truth, str(path))


def analysis_path(particle_file: str | os.PathLike[str]) -> Path:
    """Where a particle's results are stored: the file itself if it is HDF5 (a Photon-HDF5
    particle file), else its ``.user.h5`` sidecar (PTU, PT3, HT3 recordings stay untouched)."""
    from spad.formats.photon_hdf5 import is_photon_hdf5

    p = Path(particle_file)
    return p if is_photon_hdf5(p) else sidecar_path(p)


def write_analysis_group(particle_file: str | os.PathLike[str], data: Mapping[str, Any]
                         ) -> Path:
    """Store one particle's analysis results under ``/user/analysis`` (replacing earlier ones).

    Layout (what :func:`spad.analysis.particle.save_result` passes): ``summary/`` (the scalar fields
    of the JSON record, named with their units, as declared in ``analysis/schema.py``),
    ``classification/`` (label, probability, p_dimer, model, ``evidence/``), ``trace/``
    (``bin_edges_s``, ``counts`` per detector), ``decay/`` (``bin_edges_s``, ``counts``),
    ``correlation/`` (``lags_s``, ``counts``), and ``result_json``: everything, as JSON text.
    Nothing else in the file is touched.

    Returns
    -------
    The file written (:func:`analysis_path`).
    """
    from spad.formats.photon_hdf5_writer import write_user_group

    target = analysis_path(particle_file)
    write_user_group(target, ANALYSIS_GROUP, data)
    return target
