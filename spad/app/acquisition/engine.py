"""The acquisition of one particle: a threaded measurement with a live verdict.

See :mod:`spad.app.acquisition` for the manual. The loop (:meth:`Acquisition.run`) polls the
tagger FIFO, decodes each read into a :class:`~spad.photons.PhotonChunk`, appends it to the
particle file (flushed every ``flush_s``) and feeds it to the same
:class:`spad.analysis.photon_analysis.PhotonAccumulators` that ``spad analyze`` uses; spectrum
frames are polled from the camera and appended as they come. Every ``update_s`` of recorded
time the photons so far are analysed and classified: the live verdict. Time is the photon
stream's own clock (the last timestamp), so a replay at any speed takes the same decisions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import math
import multiprocessing
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from spad.analysis.classify import Classification, Classifier, load_classifier
from spad.analysis.particle import ParticleResult, classify_session
from spad.analysis.photon_analysis import AnalysisSettings, PhotonAccumulators, finish
from spad.app.acquisition.recorder import ParticleRecorder
from spad.app.safe_output import shutdown_pool, signals_held, worker_init
from spad.errors import DeviceError
from spad.formats.records import Decoder
from spad.output import user_os_error
from spad.photons import SYNC, PhotonChunk

STATUSES = ("idle", "running", "stopping", "done", "aborted", "failed")

EVENTS_KEPT = 1000
"""Most events :attr:`Acquisition.events` holds; past that the oldest is dropped."""


@dataclass
class AcquisitionSettings:
    """What one particle's recording does (times in seconds).

    Attributes
    ----------
    duration_s
        Longest recording.
    until_confident
        Stop as soon as the live verdict's probability has stayed at or above this for
        ``confident_updates`` consecutive updates and the g2(0) error is at most
        ``g2_err_max``; ``None``: always record ``duration_s``.
    confident_updates, g2_err_max
        See ``until_confident``.
    update_s
        Interval of the live analysis and verdict, in recorded time.
    flush_s
        Longest time photons stay in memory before they are flushed to the file.
    exposure_s, em_gain, read_mode
        Camera settings of the spectrum series (``read_mode`` of
        :data:`spad.drivers.interfaces.camera.READ_MODES`).
    compress
        Compress the photons in the file (HDF5 gzip level 1 after the byte shuffle: ~3 bytes
        per photon instead of 11, for ~0.2 core at 2 M photons/s). For long, bright
        recordings: an hour at 2 M photons/s is 79 GB uncompressed, 22 GB compressed.
    analysis
        The photon analysis settings (as ``spad analyze`` takes them).
    """

    duration_s: float = 60.0
    until_confident: float | None = None
    confident_updates: int = 3
    g2_err_max: float = 0.05
    update_s: float = 1.0
    flush_s: float = 0.5
    exposure_s: float = 1.0
    em_gain: float = 100.0
    read_mode: str = "single_track"
    compress: bool = False
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)

    def __post_init__(self) -> None:
        if not (self.duration_s > 0 and math.isfinite(self.duration_s)):
            raise ValueError(f"duration must be positive seconds, not {self.duration_s!r}")
        if self.until_confident is not None and not 0.5 < self.until_confident < 1:
            raise ValueError(f"--until-confident is a probability between 0.5 and 1, not "
                             f"{self.until_confident!r}")
        if not (math.isfinite(self.g2_err_max) and 0 < self.g2_err_max <= 1):
            raise ValueError(f"--g2-err-max must be within 0-1 (an error of g2(0)), not "
                             f"{self.g2_err_max!r}")
        for name, value, low, high in (("exposure", self.exposure_s, 1e-4, 60.0),
                                       ("em-gain", self.em_gain, 1.0, 1000.0)):
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"--{name} must be within {low:g}-{high:g}, not {value!r}")
        if not (self.update_s > 0 and self.flush_s > 0 and self.flush_s <= 1.0):
            raise ValueError("update_s must be > 0 and flush_s in (0, 1] s")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["analysis"] = {k: v for k, v in d["analysis"].items() if k != "irf"}
        return d


@dataclass(frozen=True)
class LiveState:
    """A consistent picture of the running acquisition (see the package manual)."""

    status: str = "idle"
    elapsed_s: float = 0.0
    photons: int = 0
    rates_hz: dict[int, float] = field(default_factory=dict)
    g2_zero: float | None = None
    g2_zero_err: float | None = None
    verdict: str | None = None
    probability: float | None = None
    p_dimer: float | None = None
    evidence: dict[str, float] = field(default_factory=dict)
    inputs: dict[str, list[float | None]] = field(default_factory=dict)
    no_information: list[str] = field(default_factory=list)
    reason: str = ""
    verdict_age_s: float | None = None
    frames: int = 0
    path: str | None = None
    error: str | None = None
    stop_reason: str | None = None

    def line(self) -> str:
        """The one-line live display of ``spad acquire``."""
        def f(v: float | None, fmt: str) -> str:
            return "n/a" if v is None else format(v, fmt)
        rates = " ".join(f"D{d} {r / 1e3:.1f}k" for d, r in sorted(self.rates_hz.items()))
        verdict = ("…" if self.verdict is None
                   else f"{self.verdict} p={f(self.probability, '.2f')}")
        return (f"{self.elapsed_s:6.1f} s | {rates or 'no counts'} cps | {self.photons} photons"
                f" | g2(0) {f(self.g2_zero, '.3f')} ± {f(self.g2_zero_err, '.3f')} | {verdict}")


@dataclass(frozen=True)
class Event:
    """Something the acquisition reports: ``kind`` is ``"progress"``, ``"verdict"``,
    ``"error"`` or ``"finished"``."""

    kind: str
    state: LiveState
    message: str = ""


@dataclass
class Outcome:
    """How one particle's acquisition ended."""

    path: Path
    result: ParticleResult | None
    stop_reason: str
    error: str | None
    state: LiveState
    recording_wall_s: float = 0.0
    """Wall time from the start to the file closed (before the final analysis)."""


def _device_name(device: Any, fallback: str) -> str:
    return str(getattr(device, "name", None) or fallback)


class LivePipeline:
    """Chunks in, live state out: the part of an acquisition that ``spad replay`` shares.

    Feeds every chunk to :class:`PhotonAccumulators`, counts photons per detector, keeps the
    stream's clock, and every ``update_s`` of recorded time analyses the photons so far and
    classifies them (:meth:`update`).

    Memory is bounded: the accumulators keep at most
    :data:`spad.analysis.photon_analysis.PHOTON_BUDGET` photons. Past that, the live updates have
    the streaming results only (trace, decays, g2; the blinking, the bright-state lifetime and
    the gated g2 are null, with a note, and carry no evidence: the verdict rests on g2(0) and the
    intensity variance), and :meth:`final` reads the recorded file again for the whole-trace
    analyses.
    """

    def __init__(self, settings: AcquisitionSettings, classifier: Classifier | None = None
                 ) -> None:
        self.settings = settings
        self.classifier = classifier or load_classifier()
        self.acc = PhotonAccumulators(settings.analysis)
        self.counts = np.zeros(256, np.int64)
        self.elapsed_s = 0.0
        self.streak = 0
        self._t0: int | None = None
        self._next = settings.update_s
        self._last_counts = self.counts.copy()
        self._last_t = 0.0
        self.verdict_at_s: float | None = None

    @property
    def photons(self) -> int:
        return int(self.counts.sum() - self.counts[SYNC])

    def feed(self, chunk: PhotonChunk) -> None:
        """Add a decoded chunk."""
        if not len(chunk):
            return
        if self._t0 is None:
            self._t0 = int(chunk.timestamps[0])
        self.acc.update(chunk)
        self.counts += np.bincount(chunk.detectors, minlength=256)
        self.elapsed_s = (int(chunk.timestamps[-1]) - self._t0) * chunk.timing.timestamp_unit

    def due(self) -> bool:
        """True when an update of the live analysis is due."""
        return self.elapsed_s >= self._next

    @property
    def confident(self) -> bool:
        """The stop-when-sure rule is met."""
        s = self.settings
        return s.until_confident is not None and self.streak >= s.confident_updates

    def update(self) -> dict[str, Any]:
        """Analyse and classify the photons so far; returns the :class:`LiveState` fields."""
        out, gathered = self.begin_update()
        if gathered is not None:
            out.update(self.finish_update(gathered))
        return out

    def begin_update(self, gather: bool = True) -> tuple[dict[str, Any], Any]:
        """The cheap half of :meth:`update` (counts, rates, a copy of the accumulators), done
        in the thread that feeds; :meth:`finish_update` of the copy may run in another."""
        s = self.settings
        self._next = (math.floor(self.elapsed_s / s.update_s) + 1) * s.update_s
        dt = self.elapsed_s - self._last_t
        rates = ({int(d): float(self.counts[d] - self._last_counts[d]) / dt
                  for d in np.flatnonzero(self.counts) if d != SYNC} if dt > 0 else {})
        self._last_counts, self._last_t = self.counts.copy(), self.elapsed_s
        out: dict[str, Any] = {"elapsed_s": self.elapsed_s, "photons": self.photons,
                               "rates_hz": rates}
        # without the FLID: each update copies the whole trace's per-bin arrays (to the worker
        # and back), which grows with the recording; the FLID would double it for nothing
        # live (the final result has it)
        gathered = (None if self.acc.timing is None or not gather
                    else (self.elapsed_s, self.acc.gather(flid=False)))
        return out, gathered

    def finish_update(self, gathered: Any) -> dict[str, Any]:
        """Analyse and classify a copy from :meth:`begin_update`."""
        at, g = gathered
        return self.classify(finish(g, self.settings.analysis), at)

    def classify(self, photons: Any, at: float) -> dict[str, Any]:
        """The verdict fields for the analysis of the photons up to ``at`` (s); updates the
        streak of the stop-when-sure rule."""
        s = self.settings
        c: Classification = self.classifier.classify(photons.features())
        sure = (s.until_confident is not None and c.label in ("monomer", "dimer")
                and c.probability >= s.until_confident and photons.g2_zero_err is not None
                and photons.g2_zero_err <= s.g2_err_max)
        self.streak = self.streak + 1 if sure else 0
        self.verdict_at_s = at
        return {"g2_zero": photons.g2_zero, "g2_zero_err": photons.g2_zero_err,
                "verdict": c.label, "probability": c.probability, "p_dimer": c.p_dimer,
                "evidence": dict(c.evidence), "inputs": dict(c.inputs),
                "no_information": list(c.no_information), "reason": c.reason,
                "verdict_age_s": self.elapsed_s - at}

    def final(self, path: str | Path) -> ParticleResult:
        """The result of the whole particle: what ``spad analyze path`` gives.

        Beyond :data:`spad.analysis.photon_analysis.PHOTON_BUDGET` photons the accumulators kept
        only their count, and the whole-trace analyses read the recorded file ``path`` again
        in windows, as ``spad analyze`` does."""
        from spad.analysis.particle import Recorded, analyze_particle

        result = analyze_particle(Recorded(path, self.acc))
        classify_session([result], classifier=self.classifier)
        return result


class Acquisition:
    """Record one particle (see :mod:`spad.app.acquisition`).

    Parameters
    ----------
    rig
        The open instruments (:class:`spad.app.rig.Instruments`: ``.tagger``, ``.camera`` or
        ``None``, ``.spectrograph`` or ``None``).
    settings
        What to do.
    path
        The particle file to write (must not exist). Give this or ``session``.
    session
        A :class:`~spad.app.acquisition.session.Session`: the file is named there and the
        start and end are logged.
    name
        Particle name (default: the session's next, or the file's stem).
    classifier
        Default: the one shipped with spad.
    analysis_worker
        Run the live analyses in the worker process (default), so that a slow fit never holds
        up the FIFO reads. ``False`` runs each one in the acquisition thread before the next
        read: every update then gets its verdict, whatever the machine's load, which makes
        the decisions a function of the photons alone (tests; a replay does the same).
    clock
        Seconds of a monotonic clock, read once per FIFO read to time the flushes (default
        :func:`time.monotonic`; a test gives a simulated clock to check the flush cadence
        whatever the machine's speed).
    """

    def __init__(self, rig: Any, settings: AcquisitionSettings | None = None, *,
                 path: str | Path | None = None, session: Any = None,
                 name: str | None = None, classifier: Classifier | None = None,
                 analysis_worker: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if (path is None) == (session is None):
            raise ValueError("give either path or session")
        self.rig = rig
        self.settings = settings or AcquisitionSettings()
        self.session = session
        if session is not None:
            self.name = name or session.next_name()
            self.path = session.file_for(self.name)
        else:
            self.path = Path(path)
            self.name = name or self.path.stem
        if self.path.exists():
            raise FileExistsError(17, "file exists (choose another name)", str(self.path))
        self.classifier = classifier or load_classifier()
        self.analysis_worker = analysis_worker
        self.clock = clock
        if analysis_worker:
            _analysis_pool()     # the worker starts and imports while the rig is set up
        # bounded: a program that follows the callbacks or snapshot() and never reads the
        # queue must not grow by two events a second for as long as it records
        self.events: queue.Queue[Event] = queue.Queue(EVENTS_KEPT)
        self.interrupted = False
        self._aborted = False
        self._abort_reason = "aborted"
        self._callbacks: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()
        self._state = LiveState(path=str(self.path))
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self.exception: Exception | None = None
        """Why the thread failed before recording anything (:meth:`run` raised)."""
        self._outcome: Outcome | None = None
        # (recorded s, results of the accumulators) of the last live analysis handed to the
        # worker: the decay and coincidences a display draws, without recomputing them.
        # Replaced whole (one assignment), so any thread reads a consistent pair.
        self.gathered: tuple[float, Any] | None = None
        # (recorded s, PhotonAnalysis) of the last live analysis that finished: the fits,
        # threshold and gated g2 a display draws. Replaced whole, like ``gathered``.
        self.analysed: tuple[float, Any] | None = None
        self._photon_sinks: list[deque] = []
        self._frame_sinks: list[deque] = []

    # -- control (any thread) -------------------------------------------------------------

    def publish_to(self, photons: deque | None = None, frames: deque | None = None) -> None:
        """Append each decoded photon chunk to ``photons`` and each batch of camera frames to
        ``frames`` as they are recorded (from the acquisition thread; deque appends are
        thread-safe). What a live display draws comes from the engine's one read loop, decoded
        once: the display neither reads the devices nor decodes their records. Call before
        :meth:`start`."""
        if photons is not None:
            self._photon_sinks.append(photons)
        if frames is not None:
            self._frame_sinks.append(frames)

    def add_callback(self, fn: Callable[[Event], None]) -> None:
        """Call ``fn(event)`` (from the acquisition thread) for every event."""
        self._callbacks.append(fn)

    def start(self) -> None:
        """Run in a new thread; returns at once."""
        if self._thread is not None:
            raise RuntimeError("an Acquisition runs once; make a new one per particle")
        self._thread = threading.Thread(target=self._run_safe, name=f"acquire {self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish cleanly at the next FIFO read: file closed, final analysis and verdict."""
        self.interrupted = True

    def abort(self, reason: str = "aborted") -> None:
        """Stop at once: the file is finalised with what was acquired (``reason`` is its stop
        reason, e.g. ``"SIGTERM"``), no final analysis."""
        self._abort_reason = reason
        self._aborted = True
        self.interrupted = True

    def wait(self, timeout: float | None = None) -> Outcome | None:
        """Block until the thread has ended (``None`` on timeout or if it failed).

        Waits on an event rather than ``Thread.join``: a Ctrl-C that interrupts a join marks
        a still running thread as ended (CPython 3.11, bpo-45274's fix), and the caller
        would then close the instruments under it."""
        if self._thread is not None and not self._done.wait(timeout):
            return None
        return self._outcome

    @property
    def finished(self) -> bool:
        """The thread started by :meth:`start` has ended (the file is closed)."""
        return self._done.is_set()

    def snapshot(self) -> LiveState:
        """The live state (thread-safe, immutable)."""
        with self._lock:
            return self._state

    # -- the measurement ------------------------------------------------------------------

    def _set(self, **changes: Any) -> LiveState:
        with self._lock:
            self._state = dataclasses.replace(self._state, **changes)
            return self._state

    def _emit(self, kind: str, message: str = "") -> None:
        ev = Event(kind, self.snapshot(), message)
        if self.events.full():
            # the oldest goes (only this thread puts): a reader behind wants the latest
            with contextlib.suppress(queue.Empty):
                self.events.get_nowait()
        self.events.put_nowait(ev)
        for fn in self._callbacks:
            fn(ev)

    def _run_safe(self) -> None:
        try:
            self.run()
        except Exception as exc:  # noqa: BLE001 - reported as an event, the thread ends
            self.exception = exc
            self._set(status="failed", error=str(exc))
            self._emit("error", str(exc))
        finally:
            self._done.set()

    def run(self) -> Outcome:
        """Record the particle in the calling thread; returns how it ended.

        Raises
        ------
        DeviceError
            Only if an instrument fails before anything is recorded (setting up); a fault
            during the recording ends it cleanly and is reported in the outcome.
        """
        s = self.settings
        tagger, camera, spectrograph = (self.rig.tagger, getattr(self.rig, "camera", None),
                                        getattr(self.rig, "spectrograph", None))
        started = datetime.now().astimezone()
        spectrum = self._setup_camera(camera, spectrograph) if camera is not None else None
        acquisition = {
            "particle": self.name, "start_time": started.isoformat(timespec="milliseconds"),
            "settings": s.to_dict(), "tagger": _tagger_state(tagger),
            "camera": None if spectrum is None else spectrum["state"],
            "spectrograph": _spectrograph_state(spectrograph)}
        stage = getattr(self.rig, "stage", None)
        if stage is not None:    # where the particle is on the slide (spad survey)
            acquisition["stage"] = {"name": _device_name(stage, "stage"), **{
                f"{a}_m": v for a, v in self._device_call(stage, "stage",
                                                          stage.get_position).items()}}
        if self.session is not None:
            self.session.log_start(self.name, self.path, acquisition)
        try:
            rec = ParticleRecorder(self.path, tagger.timing, acquisition, spectrum,
                                   description=f"particle {self.name}, spad acquire",
                                   compression="gzip" if s.compress else None)
        except OSError as exc:  # h5py's text holds HDF5 internals: the errno, plainly
            raise user_os_error(exc, {str(self.path): str(self.path)}) from None
        self._set(status="running")
        stop_reason, error = "duration", None
        live = LivePipeline(s, self.classifier)
        wall0 = time.monotonic()
        pending: Future | None = None
        pending_at = 0.0
        decoder = Decoder(tagger.record_type, tagger.timing)
        last_flush = self.clock()
        try:
            try:
                tagger.start(s.duration_s)
                if camera is not None:
                    camera.start_acquisition()
            except DeviceError:
                raise
            except OSError as exc:
                raise DeviceError(_device_name(tagger, "time tagger"), str(exc)) from None
            while True:
                if self.interrupted:
                    stop_reason = self._abort_reason if self._aborted else "stopped"
                    break
                words = self._device_call(tagger, "time tagger", tagger.read)
                if words is None:
                    break
                if decoder.n_invalid:
                    raise DeviceError(_device_name(tagger, "time tagger"),
                                      f"{decoder.n_invalid} invalid records in the stream")
                chunk = None
                if words.size:
                    chunk = decoder.decode(words)
                    if len(chunk):
                        rec.write_photons(chunk)
                        for sink in self._photon_sinks:
                            sink.append(chunk)
                now = self.clock()
                if now - last_flush >= s.flush_s:
                    rec.flush()
                    last_flush = now
                if chunk is not None:
                    live.feed(chunk)
                if camera is not None:
                    frames = self._device_call(camera, "camera", camera.read_multiple_images)
                    if len(frames):
                        rec.write_frames(frames, live.elapsed_s)
                        for sink in self._frame_sinks:
                            sink.append(frames)
                if live.confident:
                    stop_reason = "confident"
                    break
                if live.due():
                    if spectrograph is not None:
                        self._check_spectrograph(spectrograph, acquisition["spectrograph"])
                    fields, gathered = live.begin_update(gather=pending is None)
                    if live.verdict_at_s is not None:
                        fields["verdict_age_s"] = live.elapsed_s - live.verdict_at_s
                    self._set(frames=rec.n_frames, **fields)
                    self._emit("progress")
                    # The fits run in another process: a slow analysis (numba holds the GIL)
                    # never holds up the FIFO reads or the flushes. An update due while one
                    # runs is skipped.
                    if gathered is not None and pending is None:
                        self.gathered = gathered
                        if self.analysis_worker:
                            pending = _analysis_pool().submit(live_finish, gathered[1],
                                                              s.analysis)
                        else:
                            pending = Future()
                            try:
                                pending.set_result(live_finish(gathered[1], s.analysis))
                            except (ValueError, RuntimeError) as exc:
                                pending.set_exception(exc)
                        pending_at = gathered[0]
                if pending is not None and pending.done():
                    self._verdict(live, pending, pending_at)
                    pending = None
                if live.elapsed_s >= s.duration_s:
                    break
        except DeviceError as exc:
            stop_reason, error = "device error", str(exc)
            self._set(error=error)
            self._emit("error", error)
        except OSError as exc:  # the file: a full disk (refused before HDF5 meets it)
            exc = user_os_error(exc, {str(self.path): str(self.path)})
            stop_reason = "disk full" if exc.errno == errno.ENOSPC else "write error"
            error = f"{exc.filename or self.path}: {exc.strerror}; the recording was stopped"
            self._set(error=error)
            self._emit("error", error)
        finally:
            for dev, what in ((tagger, tagger.stop), (camera, getattr(camera, "stop_acquisition",
                                                                      None))):
                if dev is not None and what is not None:
                    try:
                        what()
                    except (DeviceError, OSError) as exc:
                        error = error or str(exc)
            try:
                if camera is not None and error is None:
                    frames = camera.read_multiple_images()
                    rec.write_frames(frames, live.elapsed_s)
                    if len(frames):
                        for sink in self._frame_sinks:
                            sink.append(frames)
            except (DeviceError, OSError):
                pass
            if stop_reason == "disk full":
                rec.release_reserve()   # room for the session log and the final metadata
            try:
                rec.flush()
            except OSError:             # the disk got full just now: flush into the room kept
                rec.release_reserve()
                rec.flush()
            if pending is not None:
                pending.cancel()
        n_photons, elapsed = live.photons, live.elapsed_s
        final = {"stop_reason": stop_reason, "error": error, "photons": n_photons,
                 "recorded_s": elapsed, "frames": rec.n_frames,
                 "end_time": datetime.now().astimezone().isoformat(timespec="milliseconds")}
        rec.close(final)
        recording_wall_s = time.monotonic() - wall0
        self._set(status="stopping")   # the file is closed; the final analysis runs
        result = None
        if not self._aborted and live.acc.timing is not None:
            result = live.final(self.path)
        state = self._set(status="aborted" if self._aborted else "done", elapsed_s=elapsed,
                          photons=n_photons, frames=rec.n_frames, stop_reason=stop_reason)
        if result is not None and result.classification is not None:
            c = result.classification
            state = self._set(verdict=c.label, probability=c.probability, p_dimer=c.p_dimer,
                              evidence=dict(c.evidence), inputs=dict(c.inputs),
                              no_information=list(c.no_information), reason=c.reason,
                              g2_zero=result.photons.g2_zero,
                              g2_zero_err=result.photons.g2_zero_err, verdict_age_s=0.0)
        if self.session is not None:
            self.session.log_end(self.name, self.path, final,
                                 None if result is None else result.record())
        self._outcome = Outcome(self.path, result, stop_reason, error, state, recording_wall_s)
        self._emit("finished", stop_reason)
        return self._outcome

    def _verdict(self, live: LivePipeline, done: Future, at: float) -> None:
        """A live analysis has finished: classify it and publish the verdict."""
        try:
            photons = done.result()
        except (ValueError, RuntimeError) as exc:  # too little data for some fit so far
            self._emit("verdict", f"no verdict yet: {exc}")
            return
        self.analysed = (at, photons)
        fields = live.classify(photons, at)
        self._set(**fields)
        self._emit("verdict", fields["verdict"])

    def _check_spectrograph(self, spectrograph: Any, start: dict[str, Any]) -> None:
        """The spectrograph still answers and has not moved: a grating that turned during
        the recording would make the stored wavelength calibration wrong."""
        name = _device_name(spectrograph, "spectrograph")
        here = self._device_call(spectrograph, "spectrograph",
                                 spectrograph.get_centre_wavelength)
        if abs(here - start["centre_wavelength_m"]) > 0.05e-9:
            raise DeviceError(name, f"centre wavelength moved during the recording "
                                    f"({start['centre_wavelength_m'] * 1e9:.2f} -> "
                                    f"{here * 1e9:.2f} nm)")

    def _device_call(self, device: Any, kind: str, fn: Callable[[], Any]) -> Any:
        """Call a device; a lost connection (OSError) becomes a DeviceError naming it."""
        try:
            return fn()
        except DeviceError:
            raise
        except OSError as exc:
            raise DeviceError(_device_name(device, kind), f"connection lost: {exc}") from None

    def _setup_camera(self, camera: Any, spectrograph: Any) -> dict[str, Any]:
        s = self.settings
        cam = _device_name(camera, "camera")
        try:
            camera.set_read_mode(s.read_mode)
            camera.set_exposure(s.exposure_s)
            camera.set_em_gain(s.em_gain)
            camera.set_acquisition_mode("cont")
            shape = camera.read_multiple_images().shape[1:]
            info = camera.get_device_info()
            state = {"name": cam, "device_info": {k: v for k, v in info.items()
                                                   if isinstance(v, int | float | str)},
                     "exposure_s": camera.get_exposure(), "em_gain": camera.get_em_gain(),
                     "read_mode": camera.get_read_mode(),
                     "temperature_c": camera.get_temperature(),
                     "temperature_status": camera.get_temperature_status(),
                     "preamp_gain_e_per_adu": camera.get_preamp_gain()}
            wavelength, calibration = None, {}
            if spectrograph is not None:
                optics = spectrograph.get_optics()
                centre = spectrograph.get_centre_wavelength()
                n_cols = int(shape[-1])
                pixel = camera.get_pixel_size()
                wavelength = optics.wavelengths(centre, n_cols, pixel)
                calibration = {"method": "grating", **optics.to_dict(),
                               "centre_wavelength_m": centre, "pixel_size_m": pixel,
                               "n_pixels": n_cols, "centre_pixel": (n_cols - 1) / 2}
        except OSError as exc:
            raise DeviceError(cam, f"connection lost: {exc}") from None
        return {"frame_shape": shape, "wavelength_m": wavelength, "exposure_s": s.exposure_s,
                "em_gain": state["em_gain"], "bias_adu": info.get("bias_adu"),
                "preamp_gain_e_per_adu": state["preamp_gain_e_per_adu"],
                "calibration": calibration, "state": state,
                "metadata": {"read_mode": state["read_mode"], "sensor": state["device_info"]}}


_POOL: ProcessPoolExecutor | None = None


WARM_UP_S = 1.0
"""Seconds of simulated particle the warm-up analyses: enough photons for every step (change
points, bursts, fits, g2) to run once, so that each of their kernels is compiled."""


def warm_up(settings: AnalysisSettings | None = None) -> float:
    """Compile the analysis kernels, or load them from numba's cache, before the first photon.

    A short simulated monomer goes the way a recording's photons go: fed chunk by chunk to
    :class:`PhotonAccumulators`, analysed as a live update (:meth:`PhotonAccumulators.gather`,
    :func:`finish`) and as the final result. On the first run after an install numba compiles
    the kernels (tens of seconds); without this, the first particle's live views would show
    nothing ("g2(0) n/a") while they compiled. With the cache filled it costs well under a
    second. Returns the seconds it took.
    """
    from spad.simulators.recipe import build
    from spad.simulators.stream import simulate

    t0 = time.perf_counter()
    emitters, detection = build("monomer", 0)
    acc = PhotonAccumulators(settings or AnalysisSettings())
    for chunk in simulate(emitters, detection, WARM_UP_S, 0, chunk_s=0.5).chunks():
        acc.update(chunk)
    finish(acc.gather(flid=False), acc.settings)
    acc.result()
    return time.perf_counter() - t0


def prepare(settings: AnalysisSettings | None = None,
            progress: Callable[[str], None] | None = None) -> None:
    """Get the analysis ready before the first photon: compile (or load) its kernels here
    (:func:`warm_up`, behind a progress line if ``progress`` is given), which fills numba's
    cache, then start the live-analysis worker process (it takes a few seconds to import),
    e.g. when the application starts, so that the first particle's verdicts come from its
    first seconds. Programs using the engine need the ``if __name__ == "__main__":`` guard of
    :mod:`multiprocessing` (the worker is spawned, not forked: forking a process with running
    device threads and open HDF5 files is unsafe)."""
    if progress is not None:
        progress("preparing the analysis (the first run after an install compiles it, which "
                 "takes a while)…")
    seconds = warm_up(settings)
    if progress is not None:
        progress(f"analysis ready ({seconds:.1f} s)")
    _analysis_pool()     # the live-analysis worker starts


def _analysis_pool() -> ProcessPoolExecutor:
    """One worker process for the live analyses, started on first use and kept for the next
    particles (starting it costs the imports, ~1 s)."""
    global _POOL
    if _POOL is None:
        # the initializer lives in a light module: a spawned worker imports it first, so it
        # watches for its parent's death while it still imports the analysis
        _POOL = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=worker_init, initargs=(os.getpid(), True))
        with signals_held():    # the worker starts at the first submit: a task of no work
            _POOL.submit(_warm)
    return _POOL


def shutdown_workers() -> None:
    """Stop the live-analysis worker now (it is terminated, not waited for: a live analysis
    in flight is of no use any more). Called when a program using the engine ends, however it
    ends (``spad acquire``, the GUI); the next :class:`Acquisition` starts a new one."""
    global _POOL
    pool, _POOL = _POOL, None
    if pool is not None:
        shutdown_pool(pool, abort=True)


def live_finish(gathered: Any, settings: AnalysisSettings) -> Any:
    """:func:`~spad.analysis.photon_analysis.finish` for a live update, in the worker: the analysis
    comes back without its intensity trace, which grows with the recording and which neither
    the verdict nor a live view needs from it (a display bins its own rolling trace)."""
    photons = finish(gathered, settings)
    photons.trace = None
    return photons


def _warm() -> None:
    """Nothing: the worker has imported the analysis on the way, and loads each kernel from
    numba's cache (filled by :func:`prepare`'s :func:`warm_up` in the main process) at its
    first live update. A warm-up of its own would run beside the first seconds of the
    recording and take their CPU (measured: a real-time recording on two busy cores fell
    1.7 s behind in 5 s)."""


def _tagger_state(tagger: Any) -> dict[str, Any]:
    cfg = tagger.config
    return {"name": _device_name(tagger, "time tagger"), "record_type": tagger.record_type,
            "mode": cfg.mode, "sync_divider": cfg.sync_divider, "binning": cfg.binning,
            "offsets_s": list(cfg.offsets_s), "sync_offset_s": cfg.sync_offset_s,
            "sync_rate_hz": float(tagger.sync_rate_hz()),
            "resolution_s": float(tagger.timing.nanotime_unit or tagger.base_resolution_s)}


def _spectrograph_state(spectrograph: Any) -> dict[str, Any] | None:
    if spectrograph is None:
        return None
    optics = spectrograph.get_optics()
    return {"name": _device_name(spectrograph, "spectrograph"),
            "grating": spectrograph.get_grating(),
            "groove_density_per_m": optics.groove_density_per_m,
            "focal_length_m": optics.focal_length_m,
            "centre_wavelength_m": spectrograph.get_centre_wavelength()}
