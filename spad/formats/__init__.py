"""Time-tag file formats and :func:`open`, which picks the reader from a file's content.

Every format is one row of :data:`FORMATS`: its name, how its first bytes are recognised, and
the reader class (``"module:Class"``, imported only when a file of that kind is opened, so that
``import spad`` stays light). The extension is never looked at. To add a format, write its
reader (a :class:`spad.formats.base.RecordFileReader` subclass for a header followed by 32-bit
TTTR records; copy :mod:`spad.formats.legacy`) and add its row here.

=============  ==========================================  ===================================
format         recognised by                               reader
=============  ==========================================  ===================================
PTU            ``b"PQTTTR\\0\\0"`` at byte 0               :class:`spad.formats.ptu.PtuReader`
PT3, PT2       ident ``"PicoHarp 300"``, mode field        ``legacy.LegacyReader``
HT3, HT2       ident ``"HydraHarp"``, mode field           ``legacy.LegacyReader``
T3R            ident ``"TimeHarp 200"``, TTTR mode (2)     ``legacy.LegacyReader``
Photon-HDF5    HDF5 signature at byte 0, 512, 1024, ...    ``photon_hdf5.PhotonHdf5Reader``
SPC            no magic: header word and records in        ``bh_spc.SpcReader``
               time order (``bh_spc.looks_like_spc``)
=============  ==========================================  ===================================

Readers are in ``spad.formats.<module>``; SPC is tried last, after every format with a magic
number. TimeHarp 200 files in histogram mode (``.thd``) hold histograms, not time tags: they
are refused with a message saying so.
"""

from __future__ import annotations

import importlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from spad.errors import FormatError
from spad.formats.base import Reader

__all__ = ["open", "detect", "Reader", "FORMATS", "Format"]

_PTU_MAGIC = b"PQTTTR\0\0"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

# Other files people may point spad at by mistake, to say what was found instead.
_KNOWN_FOREIGN = (
    (b"PQHISTO\0", "a PicoQuant histogram file (.phu), not time-tagged data"),
    (b"PQ", "a PicoQuant file of a kind other than PTU"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"II*\0", "a TIFF file"),
    (b"MM\0*", "a TIFF file"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"TimeHarp", "a TimeHarp file not in TTTR mode (a .thd histogram file): it holds "
                  "histograms, not time-tagged data"),
    (b"Andor Technology Multi-Channel File", "an Andor .sif spectrum, not time-tagged data"),
)


def _hdf5_offset(fh, size: int) -> int | None:  # noqa: ANN001 - an open binary file
    """Byte offset of the HDF5 superblock (0 or a power of two from 512), or ``None``."""
    offset = 0
    while offset + len(_HDF5_MAGIC) <= size:
        fh.seek(offset)
        if fh.read(len(_HDF5_MAGIC)) == _HDF5_MAGIC:
            return offset
        offset = 512 if offset == 0 else offset * 2
    return None


def _describe(head: bytes, size: int) -> str:
    if size == 0:
        return "the file is empty"
    for magic, what in _KNOWN_FOREIGN:
        if head.startswith(magic):
            return what
    sample = head[:16]
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head[:256])
    if printable == len(head[:256]):
        return f"a text file starting {sample.decode('ascii', 'replace')!r}"
    return f"starts with {sample!r}"


def _legacy(kind: str) -> Callable[[bytes, BinaryIO, int], bool]:
    def match(head: bytes, fh: BinaryIO, size: int) -> bool:
        from spad.formats import legacy

        if not head.startswith((b"PicoHarp", b"HydraHarp", b"TimeHarp")):
            return False
        fh.seek(0)      # the measurement mode lies past the first 256 bytes
        return legacy.identify(fh.read(legacy.HEAD_BYTES)) == kind
    return match


def _spc(head: bytes, fh: BinaryIO, size: int) -> bool:
    from spad.formats import bh_spc

    return bh_spc.looks_like_spc(head, fh, size)


def _photon_hdf5(head: bytes, fh: BinaryIO, size: int) -> bool:
    return _hdf5_offset(fh, size) is not None


@dataclass(frozen=True)
class Format:
    """One time-tag file format spad reads."""

    name: str
    """What :func:`detect` returns, e.g. ``"PTU"``."""
    matches: Callable[[bytes, BinaryIO, int], bool]
    """``matches(head, fh, size)``: the first 256 bytes, the open file and its size."""
    reader: str
    """``"module:Class"`` of the :class:`Reader`, imported when a file is opened."""
    prepare: str | None = None
    """``"module:function"`` called with the path before the reader opens it, if any."""


FORMATS: tuple[Format, ...] = (
    Format("PTU", lambda head, fh, size: head.startswith(_PTU_MAGIC),
           "spad.formats.ptu:PtuReader"),
    Format("PT3", _legacy("PT3"), "spad.formats.legacy:LegacyReader"),
    Format("HT3", _legacy("HT3"), "spad.formats.legacy:LegacyReader"),
    Format("PT2", _legacy("PT2"), "spad.formats.legacy:LegacyReader"),
    Format("HT2", _legacy("HT2"), "spad.formats.legacy:LegacyReader"),
    Format("T3R", _legacy("T3R"), "spad.formats.legacy:LegacyReader"),
    # a recording cut off while written (its writer gone) is repaired before it is read
    Format("Photon-HDF5", _photon_hdf5, "spad.formats.photon_hdf5:PhotonHdf5Reader",
           "spad.formats.repair:repair_cut_off"),
    # no magic number: recognised from its content, after every format that has one
    Format("SPC", _spc, "spad.formats.bh_spc:SpcReader"),
)
"""The formats, in the order they are tried (the formats with a magic number first, the HDF5
scan after them, the content check of SPC files last)."""


def _detect(path: str | os.PathLike[str]) -> Format:
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            # a FIFO would block the read forever, a device feed it endless bytes
            kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else
                    "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket")
            raise FormatError(path, f"is {kind}, not a time-tag file")
        size = os.path.getsize(path)
        with Path(path).open("rb") as fh:
            head = fh.read(256)
            for fmt in FORMATS:
                if fmt.matches(head, fh, size):
                    return fmt
    except IsADirectoryError:
        raise FormatError(path, "is a directory, not a time-tag file") from None
    except FileNotFoundError:
        raise FormatError(path, "no such file") from None
    except OSError as exc:
        raise FormatError(path, f"cannot be read: {exc.strerror or exc}") from None
    raise FormatError(path, f"not a time-tag file this version reads ({_describe(head, size)})")


def detect(path: str | os.PathLike[str]) -> str:
    """The format of a time-tag file from its content: the name of one of :data:`FORMATS`
    (``"PTU"``, ``"PT3"``, ``"HT3"``, ``"PT2"``, ``"HT2"``, ``"T3R"``, ``"Photon-HDF5"``,
    ``"SPC"``).

    Raises
    ------
    FormatError
        The file does not exist, cannot be read, or is of none of these formats (the message
        says what was found).
    """
    return _detect(path).name


def open(path: str | os.PathLike[str]) -> Reader:  # noqa: A001 - the public entry point
    """Open a time-tag file, detecting its format from its content (never its extension).

    Parameters
    ----------
    path
        A file of any of the :data:`FORMATS`.

    Returns
    -------
    Reader
        With ``.meta`` parsed; photons are read by ``.read()`` or streamed by ``.chunks()``.

    Raises
    ------
    FormatError
        Missing or unreadable file, a foreign format, or a corrupt or self-contradictory header
        (every problem a file can have is a FormatError, a ValueError subclass).

    Examples
    --------
    >>> import spad
    >>> with spad.open("particle7.ptu") as f:          # doctest: +SKIP
    ...     print(f.meta.sync_rate, f.meta.n_records)
    ...     for chunk in f.chunks():
    ...         ...
    """
    fmt = _detect(path)
    if fmt.prepare is not None:
        module, func = fmt.prepare.split(":")
        getattr(importlib.import_module(module), func)(path)
    module, cls = fmt.reader.split(":")
    reader: type[Reader] = getattr(importlib.import_module(module), cls)
    return reader(path)
