"""Spectrum importers: Andor .sif, Princeton .spe (WinSpec 2.x, LightField 3.0), CSV, particle HDF5.

Every importer returns a :class:`spad.spectrum.SpectrumData` with raw counts and, when the file
carries one, the wavelength calibration converted to metres. :func:`open_spectrum` recognises the
format from the file's content, not its name. Anything a reader cannot make sense of raises
:class:`spad.errors.FormatError` naming the file.

SPE is read by a small reader of our own: the binary header is a fixed 4100-byte block whose
offsets are published by Princeton Instruments ("SPE 3.0 File Format Specification"), and the
3.0 XML footer only needs the standard library. The packages on PyPI either read only one of the
two versions or are young and pull in heavy dependencies for what is a few dozen lines.
"""

from __future__ import annotations

import csv
import io
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from spad.errors import FormatError
from spad.optics import energy_to_wavelength
from spad.spectrum import SpectrumData

SIF_MAGIC = b"Andor Technology Multi-Channel File"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
SPE_HEADER_SIZE = 4100
SPE_LASTVALUE = 0x5555

# WinSpec/LightField pixel data types (header offset 108).
_SPE_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"), 1: np.dtype("<i4"), 2: np.dtype("<i2"), 3: np.dtype("<u2"),
    5: np.dtype("<f8"), 6: np.dtype("u1"), 8: np.dtype("<u4"),
}
_SPE3_PIXEL_FORMATS: dict[str, np.dtype] = {
    "MonochromeUnsigned16": np.dtype("<u2"), "MonochromeUnsigned32": np.dtype("<u4"),
    "MonochromeFloating32": np.dtype("<f4"),
}
# Units of the WinSpec x-calibration polynomial (xcalibration.polynom_unit).
_SPE_UNIT_NM, _SPE_UNIT_WAVENUMBER, _SPE_UNIT_RAMAN = 4, 5, 6

# Andor EMCCD heads (iXon DU-8xx, Newton EM DU-970/971): only for these is the SIF "gain" an EM
# gain. On an iStar ICCD (DH...) it is the MCP gain; on a conventional CCD it is unused.
_ANDOR_EMCCD = re.compile(r"^DU-?(8\d\d|97\d)", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# Format detection


def detect_spectrum_format(path: str | Path) -> str:
    """Name the format of a spectrum file from its content.

    Returns
    -------
    One of ``"sif"``, ``"spe"``, ``"hdf5"``, ``"csv"``.

    Raises
    ------
    FormatError
        Empty file, or binary content that is none of the known formats.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(SPE_HEADER_SIZE)
    except OSError as e:
        raise FormatError(path, f"cannot read file: {e.strerror or e}") from e
    if size == 0:
        raise FormatError(path, "empty file")
    if head.startswith(SIF_MAGIC):
        return "sif"
    # HDF5 allows a user block of 0, 512, 1024, 2048... bytes before the superblock.
    if any(head[o:o + 8] == HDF5_MAGIC for o in (0, 512, 1024, 2048)):
        return "hdf5"
    if _looks_like_spe(head):
        return "spe"
    if b"\x00" not in head:
        return "csv"
    raise FormatError(path, "not a spectrum file (no SIF/HDF5 magic, no SPE header, not text)")


def _looks_like_spe(head: bytes) -> bool:
    """An SPE header: full length, the 0x5555 end marker, sane dimensions and data type."""
    if len(head) < SPE_HEADER_SIZE:
        return False
    last = struct.unpack_from("<H", head, 4098)[0]
    xdim = struct.unpack_from("<H", head, 42)[0]
    dtype = struct.unpack_from("<h", head, 108)[0]
    return last == SPE_LASTVALUE and xdim > 0 and dtype in _SPE_DTYPES


def open_spectrum(path: str | Path) -> SpectrumData:
    """Read any supported spectrum file (format recognised from its content).

    Parameters
    ----------
    path
        An Andor .sif, Princeton .spe (WinSpec 2.x or LightField 3.0), a particle HDF5 file with a
        ``/user/spectrum`` group, or a CSV/text file of (wavelength, counts...) columns.

    Returns
    -------
    SpectrumData
        Raw counts with the file's wavelength calibration in metres (``None`` if it has none).
    """
    kind = detect_spectrum_format(path)
    try:
        return {"sif": read_sif, "spe": read_spe, "hdf5": read_particle_spectrum,
                "csv": read_spectrum_csv}[kind](path)
    except FormatError:
        raise
    except ValueError as exc:  # what the file holds breaks the data model (SpectrumData)
        raise FormatError(path, str(exc)) from None


# --------------------------------------------------------------------------------------------
# Andor SIF


class _StrictReader(io.BufferedReader):
    """A file whose ``read`` raises at end of file instead of returning nothing.

    sif_parser reads header words byte by byte until a space; at the end of a truncated file it
    would loop forever on the empty reads. Raising turns that into a clean error.
    """

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        if size is not None and size > 0 and not data:
            raise EOFError("unexpected end of file")
        return data


def read_sif(path: str | Path) -> SpectrumData:
    """Read an Andor Solis .sif file (single, kinetic series, or image).

    Frames come out as ``(n_frames, n_columns)`` when each frame is one row (FVB or single
    track), else ``(n_frames, n_rows, n_columns)``. The wavelength calibration polynomial of the
    file (coefficients in ascending powers of the 1-based pixel number, in nm) is converted to a
    polynomial of the 0-based column index in metres.
    """
    import sif_parser  # imported here: the other formats do not need it

    path = Path(path)
    size = path.stat().st_size
    try:
        with _StrictReader(io.FileIO(str(path), "rb")) as f:
            data, info = sif_parser.np_open(f)
    except (EOFError, SyntaxError, ValueError, IndexError, UnicodeDecodeError,
            UnboundLocalError) as e:
        raise FormatError(path, f"corrupt or truncated SIF file ({e})") from e
    n_frames = int(info["NumberOfFrames"])
    width, height = (int(v) for v in info["size"])
    expected = int(info["offset"]) + 4 * n_frames * width * height
    if size < expected or data.shape[0] != n_frames:
        raise FormatError(path, f"truncated SIF file: {size} bytes, the header describes "
                                f"{n_frames} frames of {height}x{width} needing {expected}")
    frames = np.asarray(data, dtype=np.float64)
    if frames.shape[1] == 1:
        frames = frames[:, 0, :]

    wavelength_m = None
    calibration: dict[str, Any] = {}
    coeffs = info.get("Calibration_data")
    frame_axis = _text(info.get("FrameAxis", b""))
    if coeffs and frame_axis.lower().startswith("wavelength") and any(coeffs[1:]):
        # Ascending powers of the 1-based pixel number p = column + 1, in nm.
        p_nm = np.poly1d(np.asarray(coeffs, dtype=float)[::-1])
        p_col_m = p_nm(np.poly1d([1.0, 1.0])) * 1e-9
        wavelength_m = p_col_m(np.arange(width, dtype=float))
        calibration = {"method": "polynomial", "coefficients_m": p_col_m.coeffs.tolist(),
                       "source": "sif"}

    detector = str(info.get("DetectorType", ""))
    em_gain = float(info.get("GainDAC", 1.0)) if _ANDOR_EMCCD.match(detector) else 1.0
    data_type = _text(info.get("DataType", b""))
    metadata = {
        "format": "sif", "sif_version": info.get("SifVersion"), "detector_type": detector,
        "detector_temperature_c": info.get("DetectorTemperature"),
        "cycle_time_s": info.get("CycleTime"), "data_type": data_type,
        "frame_axis": frame_axis, "gain_dac": info.get("GainDAC"),
        "binning": (info.get("ybin"), info.get("xbin")),
        "original_filename": _text(info.get("OriginalFilename", b"")),
    }
    # Solis can store background-corrected counts; then there is no bias left to remove.
    bias = 0.0 if "bg corrected" in data_type.lower() else None
    return SpectrumData(frames=frames, wavelength_m=wavelength_m,
                        exposure_s=float(info["ExposureTime"]), em_gain=max(em_gain, 1.0),
                        bias_adu=bias, calibration=calibration, source=str(path),
                        metadata=metadata)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------------------------
# Princeton SPE


def read_spe(path: str | Path) -> SpectrumData:
    """Read a Princeton Instruments .spe file, WinSpec 2.x or LightField 3.0.

    Version 2.x: the x-calibration polynomial of the header (ascending powers of the 1-based
    pixel number, in nm, cm⁻¹ or Raman shift) gives the wavelengths. Version 3.0: the
    ``WavelengthMapping`` of the XML footer (nm per sensor pixel), cut and binned to the region
    that was read out. Only single-region files are supported.
    """
    path = Path(path)
    raw = path.read_bytes()
    if not _looks_like_spe(raw[:SPE_HEADER_SIZE]):
        raise FormatError(path, "not an SPE file (header too short or end marker missing)")
    h = _SpeHeader(raw)
    version = h.f32(1992)
    xdim, ydim, n_frames = h.u16(42), h.u16(656), h.i32(1446)
    dtype = _SPE_DTYPES[h.i16(108)]
    if ydim == 0 or n_frames <= 0:
        raise FormatError(path, f"SPE header gives {n_frames} frames of {ydim}x{xdim} pixels")
    metadata: dict[str, Any] = {"format": "spe", "spe_version": round(float(version), 3)}
    exposure_s: float | None = float(h.f32(10))
    em_gain = 1.0
    wavelength_m = None
    calibration: dict[str, Any] = {}
    frame_stride = xdim * ydim * dtype.itemsize

    if version >= 3.0:
        xml_offset = struct.unpack_from("<Q", raw, 678)[0]
        if not SPE_HEADER_SIZE < xml_offset <= len(raw):
            raise FormatError(path, f"SPE 3.0 XML footer offset {xml_offset} outside the file "
                                    f"of {len(raw)} bytes (truncated?)")
        try:
            root = ET.fromstring(raw[xml_offset:].decode("utf-8"))
        except (ET.ParseError, UnicodeDecodeError) as e:
            raise FormatError(path, f"SPE 3.0 XML footer unreadable ({e})") from e
        try:
            info = _spe3_footer(root, path)
        except FormatError:
            raise
        except (ValueError, TypeError, KeyError, IndexError) as e:  # a number that is not one
            raise FormatError(path, f"SPE 3.0 XML footer holds an unreadable value ({e})") from e
        xdim, ydim, n_frames = info["width"], info["height"], info["count"]
        dtype = info["dtype"]
        frame_stride = info["stride"]
        exposure_s = info.get("exposure_s")
        em_gain = info.get("em_gain", 1.0)
        wavelength_m = info.get("wavelength_m")
        if wavelength_m is not None:
            calibration = {"method": "table", "source": "spe3 WavelengthMapping"}
        metadata.update(info["metadata"])
    else:
        wavelength_m, calibration = _spe2_calibration(h, xdim)
        metadata.update({"centre_wavelength_nm": float(h.f32(72)),
                         "detector_temperature_c": float(h.f32(36))})

    frame_bytes = xdim * ydim * dtype.itemsize
    need = SPE_HEADER_SIZE + (n_frames - 1) * frame_stride + frame_bytes
    if len(raw) < need:
        raise FormatError(path, f"truncated SPE file: {len(raw)} bytes, {n_frames} frames of "
                                f"{ydim}x{xdim} need {need}")
    frames = np.empty((n_frames, ydim, xdim), dtype=np.float64)
    for i in range(n_frames):
        start = SPE_HEADER_SIZE + i * frame_stride
        frames[i] = np.frombuffer(raw, dtype, xdim * ydim, start).reshape(ydim, xdim)
    if ydim == 1:
        frames = frames[:, 0, :]
    return SpectrumData(frames=frames, wavelength_m=wavelength_m, exposure_s=exposure_s,
                        em_gain=em_gain, calibration=calibration, source=str(path),
                        metadata=metadata)


class _SpeHeader:
    """Little-endian field access into the 4100-byte SPE header."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def u8(self, o: int) -> int:
        return self.raw[o]

    def u16(self, o: int) -> int:
        return struct.unpack_from("<H", self.raw, o)[0]

    def i16(self, o: int) -> int:
        return struct.unpack_from("<h", self.raw, o)[0]

    def i32(self, o: int) -> int:
        return struct.unpack_from("<i", self.raw, o)[0]

    def f32(self, o: int) -> float:
        return struct.unpack_from("<f", self.raw, o)[0]

    def f64s(self, o: int, n: int) -> np.ndarray:
        return np.frombuffer(self.raw, "<f8", n, o).copy()


def _spe2_calibration(h: _SpeHeader, xdim: int) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Wavelengths from the WinSpec x-calibration structure at offset 3000."""
    base = 3000
    valid, unit, order = h.u8(base + 98), h.u8(base + 100), h.u8(base + 101)
    if not valid or not 1 <= order <= 5:
        return None, {}
    coeffs = h.f64s(base + 263, order + 1)  # ascending powers of the 1-based pixel number
    laser = float(h.f64s(base + 311, 1)[0])
    values = np.polynomial.polynomial.polyval(np.arange(1, xdim + 1, dtype=float), coeffs)
    if unit == _SPE_UNIT_NM:
        wl_m = values * 1e-9
    elif unit == _SPE_UNIT_WAVENUMBER:
        wl_m = 1e-2 / values
    elif unit == _SPE_UNIT_RAMAN and laser > 0:
        # Raman shift in cm⁻¹ below the laser line (laser_position in nm).
        wl_m = 1e-2 / (1e7 / laser - values)
    else:
        return None, {}
    if not np.all(np.isfinite(wl_m)) or np.any(wl_m <= 0):
        return None, {}
    calibration: dict[str, Any] = {"method": "spe2 polynomial",
                                   "coefficients_ascending_1based": coeffs.tolist(),
                                   "polynom_unit": int(unit)}
    if unit == _SPE_UNIT_NM:
        # Same polynomial in the project's convention: 0-based column, metres, highest first.
        p = np.poly1d(coeffs[::-1])(np.poly1d([1.0, 1.0])) * 1e-9
        calibration = {"method": "polynomial", "coefficients_m": p.coeffs.tolist(),
                       "source": "spe2"}
    return wl_m, calibration


def _spe3_footer(root: ET.Element, path: Path) -> dict[str, Any]:
    """Layout, wavelengths and camera settings from a LightField 3.0 XML footer."""

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    def find(elem: ET.Element, name: str) -> ET.Element | None:
        for e in elem.iter():
            if local(e.tag) == name:
                return e
        return None

    def find_all(elem: ET.Element, name: str) -> list[ET.Element]:
        return [e for e in elem.iter() if local(e.tag) == name]

    frame = next((e for e in find_all(root, "DataBlock") if e.get("type") == "Frame"), None)
    if frame is None:
        raise FormatError(path, "SPE 3.0 footer has no Frame DataBlock")
    regions = [e for e in frame if local(e.tag) == "DataBlock" and e.get("type") == "Region"]
    if len(regions) != 1:
        raise FormatError(path, f"SPE 3.0 file with {len(regions)} regions of interest; only "
                                f"single-region files are supported")
    region = regions[0]
    pixel_format = frame.get("pixelFormat", "")
    if pixel_format not in _SPE3_PIXEL_FORMATS:
        raise FormatError(path, f"unsupported SPE 3.0 pixel format {pixel_format!r}")
    try:
        width, height = int(region.get("width", "")), int(region.get("height", ""))
        count = int(frame.get("count", ""))
        stride = int(frame.get("stride", frame.get("size", "")))
    except ValueError as e:
        raise FormatError(path, f"SPE 3.0 DataBlock attributes unreadable ({e})") from e
    out: dict[str, Any] = {"width": width, "height": height, "count": count, "stride": stride,
                           "dtype": _SPE3_PIXEL_FORMATS[pixel_format], "metadata": {}}

    mapping = find(root, "WavelengthMapping")
    wl_elem = None if mapping is None else next(
        (e for e in mapping if local(e.tag) in ("Wavelength", "WavelengthError")), None)
    if wl_elem is not None and wl_elem.text:
        table = wl_elem.text.strip()
        if local(wl_elem.tag) == "WavelengthError":
            # "wavelength,error wavelength,error ...": keep the wavelengths.
            wl_nm = np.array([float(p.split(",")[0]) for p in table.split()])
        else:
            wl_nm = np.array([float(v) for v in table.split(",")])
        sensor_map = find(root, "SensorMapping")
        x0, xbin = 0, 1
        if sensor_map is not None:
            x0, xbin = int(sensor_map.get("x", 0)), int(sensor_map.get("xBinning", 1))
        if wl_nm.size == width:
            out["wavelength_m"] = wl_nm * 1e-9
        elif wl_nm.size >= x0 + width * xbin:
            # Mapping per sensor pixel: cut to the region and average over the binning.
            cut = wl_nm[x0:x0 + width * xbin].reshape(width, xbin)
            out["wavelength_m"] = cut.mean(axis=1) * 1e-9
        else:
            raise FormatError(path, f"SPE 3.0 wavelength mapping has {wl_nm.size} values for "
                                    f"{width} columns")

    exposure = find(root, "ExposureTime")
    if exposure is not None and exposure.text:
        out["exposure_s"] = float(exposure.text) * 1e-3  # LightField stores ms
    gain = find(root, "EMGain")
    quality = find(root, "Quality")
    if gain is not None and gain.text and quality is not None \
            and quality.text == "ElectronMultiplied":
        out["em_gain"] = max(float(gain.text), 1.0)
    camera = find(root, "Camera")
    centre = find(root, "CenterWavelength")
    out["metadata"] = {
        "camera_model": None if camera is None else camera.get("model"),
        "centre_wavelength_nm": None if centre is None or not centre.text else float(centre.text),
        "region": {k: region.get(k) for k in ("width", "height")},
    }
    return out


# --------------------------------------------------------------------------------------------
# CSV

# Plausible ranges of an optical spectrum's axis in each unit (UV to near-IR).
_AXIS_RANGES = {"nm": (100.0, 3000.0), "m": (1e-7, 3e-6), "ev": (0.4, 12.4)}


def read_spectrum_csv(path: str | Path) -> SpectrumData:
    """Read a text table: first column the spectral axis, further columns counts (one per frame).

    Delimiter comma, semicolon, tab or whitespace; ``#`` comment lines and one header line are
    allowed. The axis unit is read from the header (``nm``, ``m``, ``eV``, e.g. ``wavelength_nm``
    or ``Wavelength (nm)``) or else from the values: 100-3000 is nm, 1e-7-3e-6 is m, 0.4-12.4 is
    eV. An axis whose unit cannot be told, or whose header unit contradicts its values, is refused.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as e:
        raise FormatError(path, f"not a readable text file ({e})") from e
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise FormatError(path, "no data lines in text file")
    delimiter = _guess_delimiter(lines[0] if len(lines) == 1 else lines[1])
    rows = [_split(ln, delimiter) for ln in lines]
    header: list[str] | None = None
    if not _is_numeric_row(rows[0]):
        header, rows = rows[0], rows[1:]
    if not rows:
        raise FormatError(path, "header but no data rows")
    n_cols = len(rows[0])
    if n_cols < 2:
        raise FormatError(path, "need at least two columns (spectral axis, counts)")
    try:
        table = np.array([[float(v) for v in r] for r in rows], dtype=float)
    except ValueError as e:
        raise FormatError(path, f"non-numeric value in data ({e})") from e
    except Exception as e:  # ragged rows make a ragged list
        raise FormatError(path, f"rows of unequal length ({e})") from e
    if table.ndim != 2 or table.shape[1] != n_cols:
        raise FormatError(path, "rows of unequal length")
    if not np.all(np.isfinite(table[:, 0])):
        raise FormatError(path, "non-finite value in the spectral axis")
    axis = table[:, 0]
    unit = _axis_unit(path, axis, None if header is None else header[0])
    if unit == "nm":
        wavelength_m = axis * 1e-9
    elif unit == "m":
        wavelength_m = axis
    else:
        wavelength_m = np.asarray(energy_to_wavelength(axis))
    frames = table[:, 1:].T  # one frame per counts column
    return SpectrumData(frames=frames, wavelength_m=wavelength_m,
                        calibration={"method": "table", "source": f"csv axis in {unit}"},
                        source=str(path),
                        metadata={"format": "csv", "axis_unit": unit,
                                  "columns": header if header is not None else []})


def _guess_delimiter(line: str) -> str | None:
    for d in (",", ";", "\t"):
        if d in line:
            return d
    return None  # whitespace


def _split(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    return [v.strip() for v in next(csv.reader([line], delimiter=delimiter))]


def _is_numeric_row(row: list[str]) -> bool:
    try:
        [float(v) for v in row]
    except ValueError:
        return False
    return True


def _axis_unit(path: Path, axis: np.ndarray, name: str | None) -> str:
    by_values = [u for u, (lo, hi) in _AXIS_RANGES.items()
                 if lo <= np.min(axis) and np.max(axis) <= hi]
    by_name = None
    if name:
        tokens = re.findall(r"[a-zµ]+", name.lower())
        for unit, keys in (("nm", {"nm", "nanometer", "nanometers", "nanometre",
                                   "nanometres"}),
                           ("ev", {"ev", "energy"}),
                           ("m", {"m", "meter", "meters", "metre", "metres"})):
            if keys & set(tokens):
                by_name = unit
                break
    if by_name is not None:
        if by_name not in by_values:
            raise FormatError(path, f"axis header {name!r} says {by_name} but values "
                                    f"{np.min(axis):g}-{np.max(axis):g} do not fit that unit")
        return by_name
    if len(by_values) != 1:
        raise FormatError(path, f"cannot tell the unit of the spectral axis "
                                f"({np.min(axis):g}-{np.max(axis):g}); name it in a header "
                                f"(nm, m or eV)")
    return by_values[0]


# --------------------------------------------------------------------------------------------
# Particle HDF5 (/user/spectrum)

SPECTRUM_GROUP = "spectrum"
"""The group under ``/user`` of a particle file that holds its spectrum."""


def read_spectrum_group(f: Any, path: object = None) -> SpectrumData | None:
    """The :class:`SpectrumData` under ``/user/spectrum``, or ``None`` if there is none."""
    from spad.formats.photon_hdf5 import read_user_group

    if f.get(f"user/{SPECTRUM_GROUP}") is None:
        return None
    d = read_user_group(f, SPECTRUM_GROUP)
    if "frames" not in d:
        raise FormatError(path, "/user/spectrum has no frames")

    def rows(r: Any) -> tuple[int, int] | None:
        if r is None:
            return None
        r = np.asarray(r).ravel()
        if r.size != 2:
            raise FormatError(path, "/user/spectrum rows must be [start, stop]")
        return int(r[0]), int(r[1])

    try:
        return SpectrumData(
            frames=d["frames"], wavelength_m=d.get("wavelength_m"),
            exposure_s=d.get("exposure_s"), em_gain=float(d.get("em_gain") or 1.0),
            bias_adu=d.get("bias_adu"), preamp_gain_e_per_adu=d.get("preamp_gain_e_per_adu"),
            calibration=d.get("calibration") or {}, signal_rows=rows(d.get("signal_rows")),
            background_rows=rows(d.get("background_rows")), source=d.get("source") or "",
            metadata=d.get("metadata") or {})
    except ValueError as exc:
        raise FormatError(path, f"/user/spectrum: {exc}") from None



def read_particle_spectrum(path: str | Path) -> SpectrumData:
    """Read the ``/user/spectrum`` group of a particle file (Photon-HDF5 + spectrum).

    The layout is the one :mod:`spad.particle` writes (:func:`read_spectrum_group`).
    """

    from spad.formats.repair import open_repaired

    path = Path(path)
    try:
        with open_repaired(path) as f:
            data = read_spectrum_group(f, path)
    except FormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise FormatError(path, f"unreadable particle file ({e})") from e
    if data is None:
        raise FormatError(path, "HDF5 file has no /user/spectrum group")
    data.source = str(path)
    data.metadata = {"format": "particle-hdf5", **data.metadata}
    return data
