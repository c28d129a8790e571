"""Build and drive the fake PicoQuant libraries of tests/fake_picoquant (shared by the tests)."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
from spad.simulators.detection import Detection
from spad.simulators.emitter import monomer
from spad.simulators.tagger import SimulatedTagger

from spad.formats.records import Decoder, Encoder
from spad.photons import PhotonChunk, Timing

SOURCE = Path(__file__).parent / "fake_picoquant" / "fakepq.c"
HEADERS = Path(__file__).parent / "fake_picoquant" / "vendor"
"""PicoQuant's published headers, one folder per family (see vendor/README.md)."""
PREFIX = {"hydraharp": "HH", "multiharp": "MH", "picoharp": "PH"}

# Fault codes of PQFAKE_Inject (fakepq.c)
FIFOFULL, SYNC_LOST, UNPLUGGED, SYSERROR, NO_DEVICE, CNTS_DROPPED, REF_LOST = range(1, 8)


def build(family: str, outdir: Path, source: Path = SOURCE) -> Path:
    """Compile the fake library of ``family`` against PicoQuant's headers for it (a definition
    that differs from the vendor's declaration is an error) with the system C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler (cc) on this machine")
    out = outdir / f"libfake{PREFIX[family].lower()}.so"
    # -Wmissing-prototypes: a function the vendor header does not declare is an error too
    done = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-Wall", "-Wmissing-prototypes",
                           "-Werror", f"-DFAM_{PREFIX[family]}", f"-I{HEADERS / family}",
                           "-o", str(out), str(source)], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the fake {family} library does not compile against PicoQuant's "
                           f"headers:\n{done.stderr}")
    return out


class Fake:
    """Controls of one loaded fake library (same process, same handle as the driver's)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lib = ctypes.CDLL(str(path))
        self.lib.PQFAKE_SetDevice.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_double,
                                              ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        self.lib.PQFAKE_Reset()

    def load(self, words: np.ndarray, tmp: Path) -> None:
        f = tmp / "records.bin"
        np.asarray(words, dtype="<u4").tofile(f)
        assert self.lib.PQFAKE_Load(str(f).encode()) == len(words)

    def device(self, serial: str = "1021234", n_channels: int = 2, base_ps: float = 1.0,
               sync_rate: int = 20_000_000, rates: tuple[int, ...] = (30000, 29000)) -> None:
        arr = (ctypes.c_int * 8)(*rates)
        self.lib.PQFAKE_SetDevice(serial.encode(), n_channels, base_ps, sync_rate, arr)

    def inject(self, kind: int, after_reads: int = 0) -> None:
        self.lib.PQFAKE_Inject(kind, after_reads)

    def words_per_read(self, n: int) -> None:
        self.lib.PQFAKE_SetWordsPerRead(n)

    def calls(self) -> list[str]:
        buf = ctypes.create_string_buffer(65536)
        self.lib.PQFAKE_GetCallLog(buf, len(buf))
        return buf.value.decode().split()


def simulated_records(mode: str, duration_s: float = 0.2, binning: int = 4,
                      seed: int = 3) -> tuple[np.ndarray, Timing]:
    """HydraHarp v2 records of a simulated blinking dot at 20 MHz, and their timing."""
    tagger = SimulatedTagger(monomer(), Detection(), seed=seed)
    tagger.open()
    tagger.configure(mode=mode, binning=binning if mode == "T3" else 0)
    tagger.start(duration_s)
    parts = []
    while (w := tagger.read()) is not None:
        parts.append(w)
    return np.concatenate(parts), tagger.timing


def as_picoharp_t2(words: np.ndarray, timing: Timing) -> tuple[np.ndarray, Timing]:
    """Re-encode HydraHarp T2 records at 1 ps as PicoHarp T2 records at 4 ps."""
    chunk = Decoder("HydraHarp2T2", timing).decode(words)
    ph = Timing("T2", 4e-12, sync_period=timing.sync_period)
    out = PhotonChunk(ph, chunk.timestamps // 4, chunk.detectors)
    return Encoder("PicoHarpT2", ph).encode(out), ph
