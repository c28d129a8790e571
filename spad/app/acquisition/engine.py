"""The acquisition of one particle: a threaded measurement with a live verdict.

See :mod:`spad.app.acquisition` for the manual. The loop (:meth:`Acquisition.run`) polls the
tagger FIFO, decodes each read into a :class:`~spad.photons.PhotonChunk`, appends it to the
particle file (flushed every ``flush_s``) and feeds it to the same
:class:`analysis.photon_analysis.PhotonAccumulators` that ``spad analyze`` uses; spectrum
frames are polled from the camera and appended as they come. Every ``update_s`` of recorded
time the photons so far are analysed and classified: the live verdict. Time is the photon
stream's own clock (the last timestamp), so a replay at any speed takes the same decisions.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from analysis.classify import Classification, Classifier, load_classifier
from analysis.particle import ParticleResult, classify_session
from analysis.photon_analysis import AnalysisSettings, PhotonAccumulators, finish
from spad.app.acquisition.recorder import ParticleRecorder
from spad.errors import DeviceError
from spad.formats.records import Decoder
from spad.photons import SYNC

STATUSES = ("idle", "running", "stopping", "done", "aborted", "failed")


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
        :data:`drivers.interfaces.camera.READ_MODES`).
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
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)

    def __post_init__(self) -> None:
        if not (self.duration_s > 0 and math.isfinite(self.duration_s)):
            raise ValueError(f"duration must be positive seconds, not {self.duration_s!r}")
        if self.until_confident is not None and not 0.5 < self.until_confident < 1:
            raise ValueError(f"--until-confident is a probability between 0.5 and 1, not "
                             f"{self.until_confident!r}")
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


def _device_name(device: Any, fallback: str) -> str:
    return str(getattr(device, "name", None) or fallback)


class Acquisition:
    """Record one particle (see :mod:`spad.app.acquisition`).

    Parameters
    ----------
    rig
        Object with ``.tagger``, ``.camera`` (or ``None``) and ``.spectrograph`` (or ``None``).
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
    """

    def __init__(self, rig: Any, settings: AcquisitionSettings | None = None, *,
                 path: str | Path | None = None, session: Any = None,
                 name: str | None = None, classifier: Classifier | None = None) -> None:
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
        self.events: queue.Queue[Event] = queue.Queue()
        self.interrupted = False
        self._aborted = False
        self._callbacks: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()
        self._state = LiveState(path=str(self.path))
        self._thread: threading.Thread | None = None
        self._outcome: Outcome | None = None

    # -- control (any thread) -------------------------------------------------------------

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

    def abort(self) -> None:
        """Stop at once: the file keeps what was acquired, no final analysis."""
        self._aborted = True
        self.interrupted = True

    def wait(self, timeout: float | None = None) -> Outcome | None:
        """Block until the thread has ended (``None`` on timeout)."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return None
        return self._outcome

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
        self.events.put(ev)
        for fn in self._callbacks:
            fn(ev)

    def _run_safe(self) -> None:
        try:
            self.run()
        except Exception as exc:  # noqa: BLE001 - reported as an event, the thread ends
            self._set(status="failed", error=str(exc))
            self._emit("error", str(exc))

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
        if self.session is not None:
            self.session.log_start(self.name, self.path, acquisition)
        rec = ParticleRecorder(self.path, tagger.timing, acquisition, spectrum,
                               description=f"particle {self.name}, spad acquire")
        self._set(status="running")
        stop_reason, error = "duration", None
        acc = PhotonAccumulators(s.analysis)
        decoder = Decoder(tagger.record_type, tagger.timing)
        unit = tagger.timing.timestamp_unit
        counts = np.zeros(256, np.int64)
        last_counts, last_t = counts.copy(), 0.0
        t0: int | None = None
        elapsed, next_update, streak = 0.0, s.update_s, 0
        last_flush = time.monotonic()
        n_photons = 0
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
                    stop_reason = "aborted" if self._aborted else "stopped"
                    break
                words = self._device_call(tagger, "time tagger", tagger.read)
                if words is None:
                    break
                if decoder.n_invalid:
                    raise DeviceError(_device_name(tagger, "time tagger"),
                                      f"{decoder.n_invalid} invalid records in the stream")
                if words.size:
                    chunk = decoder.decode(words)
                    if len(chunk):
                        if t0 is None:
                            t0 = int(chunk.timestamps[0])
                        rec.write_photons(chunk)
                        acc.update(chunk)
                        counts += np.bincount(chunk.detectors, minlength=256)
                        elapsed = (int(chunk.timestamps[-1]) - t0) * unit
                if camera is not None:
                    frames = self._device_call(camera, "camera", camera.read_multiple_images)
                    if len(frames):
                        rec.write_frames(frames, elapsed)
                now = time.monotonic()
                if now - last_flush >= s.flush_s:
                    rec.flush()
                    last_flush = now
                if elapsed >= next_update:
                    next_update = (math.floor(elapsed / s.update_s) + 1) * s.update_s
                    n_photons = int(counts.sum() - counts[SYNC])
                    dt = elapsed - last_t
                    rates = {d: float(counts[d] - last_counts[d]) / dt
                             for d in np.flatnonzero(counts) if d != SYNC} if dt > 0 else {}
                    last_counts, last_t = counts.copy(), elapsed
                    self._set(elapsed_s=elapsed, photons=n_photons, rates_hz=rates,
                              frames=rec.n_frames)
                    streak = self._live_verdict(acc, elapsed, streak)
                    self._emit("progress")
                    if (s.until_confident is not None and streak >= s.confident_updates):
                        stop_reason = "confident"
                        break
                if elapsed >= s.duration_s:
                    break
        except DeviceError as exc:
            stop_reason, error = "device error", str(exc)
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
                    rec.write_frames(camera.read_multiple_images(), elapsed)
            except (DeviceError, OSError):
                pass
            rec.flush()
        n_photons = int(counts.sum() - counts[SYNC])
        final = {"stop_reason": stop_reason, "error": error, "photons": n_photons,
                 "recorded_s": elapsed, "frames": rec.n_frames,
                 "end_time": datetime.now().astimezone().isoformat(timespec="milliseconds")}
        rec.close(final)
        result = None
        if not self._aborted and acc.timing is not None:
            result = self._final_result(acc)
        state = self._set(status="aborted" if self._aborted else "done", elapsed_s=elapsed,
                          photons=n_photons, frames=rec.n_frames, stop_reason=stop_reason)
        if result is not None and result.classification is not None:
            c = result.classification
            state = self._set(verdict=c.label, probability=c.probability, p_dimer=c.p_dimer,
                              evidence=dict(c.evidence), g2_zero=result.photons.g2_zero,
                              g2_zero_err=result.photons.g2_zero_err, verdict_age_s=0.0)
        if self.session is not None:
            self.session.log_end(self.name, self.path, final,
                                 None if result is None else result.record())
        self._outcome = Outcome(self.path, result, stop_reason, error, state)
        self._emit("finished", stop_reason)
        return self._outcome

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

    def _live_verdict(self, acc: PhotonAccumulators, elapsed: float, streak: int) -> int:
        """Analyse the photons so far and classify them (photon features: the spectrum's shift
        needs the session's monomers). Returns the updated confident-update streak."""
        s = self.settings
        if acc.timing is None:
            return 0
        try:
            photons = finish(acc.gather())
        except ValueError as exc:  # too little data for an analysis yet
            self._set(verdict="uncertain", probability=None, verdict_age_s=0.0, error=None)
            self._emit("verdict", str(exc))
            return 0
        c: Classification = self.classifier.classify(photons.features())
        self._set(g2_zero=photons.g2_zero, g2_zero_err=photons.g2_zero_err, verdict=c.label,
                  probability=c.probability, p_dimer=c.p_dimer, evidence=dict(c.evidence),
                  verdict_age_s=0.0)
        self._emit("verdict", c.label)
        sure = (s.until_confident is not None and c.label in ("monomer", "dimer")
                and c.probability >= s.until_confident and photons.g2_zero_err is not None
                and photons.g2_zero_err <= s.g2_err_max)
        return streak + 1 if sure else 0

    def _final_result(self, acc: PhotonAccumulators) -> ParticleResult:
        """The same result as ``spad analyze`` on the finished file."""
        from analysis.particle import analyze_particle_spectrum

        result = ParticleResult(str(self.path), acc.result())
        analyze_particle_spectrum(result, self.path)
        classify_session([result], classifier=self.classifier)
        return result


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
