"""An unattended survey: scan the slide, find the particles, record each until sure, move on.

::

    from spad.app.survey import Survey, SurveySettings
    from spad.app.rig import open_rig

    with open_rig("rig.toml") as rig:               # a rig with a [stage]
        survey = Survey(rig, "data/2026-12-07", SurveySettings(area=Area(...)))
        survey.run()                                # or start() in a thread; pause(), skip(),
                                                    # stop(); add_callback(fn) for events

What it does
------------
1. **Scan** the area (:func:`spad.app.survey_scan.raster_scan`): the count-rate image, saved
   as ``scan.npz`` in the session.
2. **Find** the particles (:func:`spad.app.survey_scan.find_particles`): the candidate list,
   which the user may edit before the visits (:meth:`Survey.set_candidates`: add, remove,
   reorder).
3. **Visit** each candidate in turn: move there (plus the drift measured so far), centre the
   focus (:func:`spad.app.survey_scan.optimise`), check that the particle is still bright, and
   record it with :class:`spad.app.acquisition.Acquisition` and stop-when-sure into the
   session (one particle file each; the stage position is in ``/user/acquisition/stage``). The
   offset between where the particle was expected and where the optimiser found it is the
   drift; the median of the last few offsets shifts the next target. A candidate whose spot
   is gone (bleached) is skipped with a note, and nothing is recorded there.
4. **Report** (:func:`write_report`): the population figures of ``spad batch --report``
   (``survey.png``, ``survey.json``) from the particles' results, and ``survey_report.json``
   with what was found, recorded and skipped.

Crash safety
------------
``survey.jsonl`` in the session directory logs every step, appended and fsynced: the scan,
the candidate list, each visit's start and its end (done, skipped or failed, with the particle,
file, stage position, verdict and the numbers the population report needs). After a crash or
a stop, :class:`Survey` with ``resume=True`` reads it back: finished candidates are not visited
again; the one that was being recorded (a start without an end) is recorded anew, its cut-off
file kept and named in the log. ``kill -9`` thus loses at most the particle being recorded.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from spad.app.acquisition import Acquisition, AcquisitionSettings, Session
from spad.app.survey_scan import (
    Area,
    Candidate,
    count_rate,
    find_particles,
    optimise,
    raster_scan,
)
from spad.errors import DeviceError, SpadError

LOG_NAME = "survey.jsonl"
SCAN_NAME = "scan.npz"
REPORT_NAME = "survey_report.json"
DRIFT_KEEP = 3
"""Offsets of the last particles whose median gives the drift correction (few: a steady drift
makes an old offset stale; more than one: one bad centring does not throw the next off)."""


@dataclass
class SurveySettings:
    """What a survey does (lengths in metres, times in seconds)."""

    area: Area | None = None
    """The area to scan; ``None``: the whole slide area of a simulated rig, else required."""
    threshold_hz: float | None = None
    min_separation_m: float = 0.5e-6
    spot_sigma_m: float = 61e-9
    optimise_span_m: float = 0.6e-6
    optimise_step_m: float = 50e-9
    optimise_dwell_s: float = 0.01
    check_s: float = 0.1
    """Count time of the "still there" check after centring."""
    gone_fraction: float = 0.3
    """A particle is gone if its rate at the centre is below this fraction of the fit's."""
    acquisition: AcquisitionSettings = field(default_factory=lambda: AcquisitionSettings(
        duration_s=30.0, until_confident=0.95))
    max_particles: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["acquisition"] = self.acquisition.to_dict()
        return d


class SurveyLog:
    """``survey.jsonl``: one JSON object per line, appended and fsynced (see the module)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOG_NAME
        self._lock = threading.Lock()     # the survey's thread and a GUI's edits both log

    def append(self, event: str, **fields: Any) -> None:
        entry = {"time": datetime.now().astimezone().isoformat(timespec="milliseconds"),
                 "event": event, **fields}
        with self._lock, open(self.path, "a") as f:
            f.write(json.dumps(entry, default=_plain) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:     # a line cut off by a crash
                continue
        return out


def _plain(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


@dataclass
class SurveyEvent:
    """What the survey reports: ``kind`` is ``scan_row``, ``candidates``, ``visit`` (moving
    to a candidate and centring on it), ``recording`` (its recording starts), ``progress`` (of
    the particle being recorded; ``data`` has the acquisition's LiveState),
    ``particle`` (a candidate finished: done, skipped or failed), ``paused``, ``finished``."""

    kind: str
    data: Any = None
    message: str = ""


class Survey:
    """A survey of one slide into one session directory (see the module docstring).

    Parameters
    ----------
    rig
        Open instruments with ``.stage``, ``.tagger``, ``.camera``, ``.spectrograph``.
    folder
        The session directory.
    settings
        What to do (ignored on resume for the area: the logged scan is used).
    resume
        Go on with the survey logged in ``folder``; without it, a folder with a survey log
        is refused (so nothing is recorded twice by mistake).
    analysis_worker
        Run each recording's live analysis in another process (the default: at the
        microscope a slow fit never holds up the recording). ``False`` runs it in the
        recording thread, in step with the photons: on a simulated rig that runs on its
        simulated clock (``realtime=False``) stop-when-sure then decides exactly as it would
        in real time on a machine fast enough, and the survey is reproducible.
    """

    def __init__(self, rig: Any, folder: str | Path, settings: SurveySettings | None = None,
                 *, resume: bool = False, analysis_worker: bool = True) -> None:
        if getattr(rig, "stage", None) is None:
            raise SpadError("survey: the rig has no sample stage (add a [stage] table to the "
                            "rig file)")
        self.rig = rig
        self.analysis_worker = analysis_worker
        self.folder = Path(folder)
        self.settings = settings or SurveySettings()
        self.log = SurveyLog(self.folder)
        if self.log.path.exists() and not resume:
            raise SpadError(f"{self.folder}: holds a survey already (use --resume to go on "
                            "with it, or another directory)")
        if resume and not self.log.path.exists():
            raise SpadError(f"{self.folder}: no survey to resume ({LOG_NAME} missing)")
        self.session = Session(self.folder)
        self.area: Area | None = self.settings.area
        self.image: np.ndarray | None = None
        self.candidates: list[Candidate] = []
        self.records: dict[int, dict[str, Any]] = {}
        self.cut_off: list[str] = []
        self.offsets: list[tuple[float, float]] = []
        self.acquisition: Acquisition | None = None
        self._callbacks: list[Callable[[SurveyEvent], None]] = []
        self._stop = threading.Event()
        self._skip = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self.started_wall = time.monotonic()
        if resume:
            self._load()

    # -- control (any thread) -------------------------------------------------------------

    def add_callback(self, fn: Callable[[SurveyEvent], None]) -> None:
        """``fn(event)`` for every :class:`SurveyEvent` (from the survey's thread)."""
        self._callbacks.append(fn)

    def pause(self) -> None:
        """Hold before the next candidate (the one being recorded finishes)."""
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    @property
    def paused(self) -> bool:
        return not self._resume.is_set()

    def skip(self) -> None:
        """End the particle being recorded now (its file is kept) and go on with the next."""
        self._skip.set()
        if self.acquisition is not None:
            self.acquisition.stop()

    def stop(self) -> None:
        """Finish the particle being recorded cleanly, then end (``--resume`` goes on)."""
        self._stop.set()
        self._resume.set()
        if self.acquisition is not None:
            self.acquisition.stop()

    def start(self) -> None:
        """Run in a new thread; returns at once."""
        self._thread = threading.Thread(target=self._run_safe, name="survey", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the thread has ended (False on timeout)."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def set_candidates(self, candidates: list[Candidate]) -> None:
        """Replace the candidate list (the user's edit: added, removed, reordered); finished
        candidates keep their state. Logged, so a resume uses the edited list."""
        self.candidates = list(candidates)
        self.log.append("candidates", candidates=[c.to_dict() for c in self.candidates])
        self._emit("candidates", self.candidates)

    def add_candidate(self, x_m: float, y_m: float) -> Candidate:
        """A candidate added by hand (appended to the queue)."""
        c = Candidate(max((c.id for c in self.candidates), default=0) + 1, x_m, y_m)
        self.set_candidates([*self.candidates, c])
        return c

    # -- state ----------------------------------------------------------------------------

    @property
    def pending(self) -> list[Candidate]:
        return [c for c in self.candidates if c.status in ("pending", "recording")]

    def _emit(self, kind: str, data: Any = None, message: str = "") -> None:
        ev = SurveyEvent(kind, data, message)
        for fn in self._callbacks:
            fn(ev)

    def _load(self) -> None:
        """Read the survey back from its log (see the module docstring)."""
        ended: dict[int, dict[str, Any]] = {}
        started: dict[int, dict[str, Any]] = {}
        for e in self.log.entries():
            kind = e.get("event")
            if kind == "scan":
                self.area = Area(**e["area"])
            elif kind == "candidates":
                self.candidates = [Candidate(**c) for c in e["candidates"]]
            elif kind == "visit":
                started[e["id"]] = e
            elif kind == "end":
                ended[e["id"]] = e
        scan = self.folder / SCAN_NAME
        if scan.exists():
            with np.load(scan) as z:
                self.image = z["image"]
        for c in self.candidates:
            end = ended.get(c.id)
            if end is not None:
                for key in ("status", "verdict", "particle", "file", "note", "position"):
                    setattr(c, key, end.get(key))
                if end.get("record") is not None:
                    self.records[c.id] = end["record"]
                if end.get("offset_m") is not None:
                    self.offsets.append(tuple(end["offset_m"]))
            else:
                if c.id in started and started[c.id].get("file"):
                    self.cut_off.append(started[c.id]["file"])
                c.status = "pending"
        if self.cut_off:
            self.log.append("resume", cut_off=self.cut_off)

    # -- the survey -----------------------------------------------------------------------

    def _run_safe(self) -> None:
        try:
            self.run()
        except Exception as exc:  # noqa: BLE001 - reported as an event, the thread ends
            self.error = str(exc)
            self._emit("finished", None, f"error: {exc}")

    def run(self) -> dict[str, Any]:
        """The whole survey in the calling thread; returns the survey report."""
        stage, tagger = self.rig.stage, self.rig.tagger
        if self.image is None:
            if self.area is None:
                raise SpadError("survey: give the area to scan (--area X0,Y0,X1,Y1 in µm)")
            self.log.append("scan", area=self.area.to_dict(), settings=self.settings.to_dict())
            self.image = raster_scan(
                stage, tagger, self.area, stopped=self._stop.is_set,
                on_row=lambda i, img: self._emit("scan_row", (i, img)))
            if self._stop.is_set():
                self.image = None      # an unfinished scan is scanned again on resume
                self._emit("finished", None, "stopped during the scan")
                return self.report()
            tmp = self.folder / (SCAN_NAME + ".part.npz")
            np.savez(tmp, image=self.image, xs=self.area.xs, ys=self.area.ys)
            os.replace(tmp, self.folder / SCAN_NAME)
            s = self.settings
            found = find_particles(self.image, self.area, threshold_hz=s.threshold_hz,
                                   min_separation_m=s.min_separation_m,
                                   spot_sigma_m=s.spot_sigma_m)
            if s.max_particles is not None:
                found = found[:s.max_particles]
            self.set_candidates(found)
        else:
            self._emit("candidates", self.candidates)
        while True:
            # the next from the list as it is now: the user may edit it during the survey
            if not self._resume.is_set():
                self._emit("paused")
                self._resume.wait()
            if self._stop.is_set():
                break
            c = next((c for c in self.candidates if c.status in ("pending", "recording")),
                     None)
            if c is None:
                break
            self._visit(c)
            if self._stop.is_set():
                break
        report = self.report()
        if not self.pending:
            write_report(self)
            report = self.report()
        self._emit("finished", report, "stopped" if self._stop.is_set() else "done")
        return report

    def _drift(self) -> tuple[float, float]:
        if not self.offsets:
            return 0.0, 0.0
        last = np.array(self.offsets[-DRIFT_KEEP:])
        return float(np.median(last[:, 0])), float(np.median(last[:, 1]))

    def _end(self, c: Candidate, status: str, note: str | None = None,
             offset: tuple[float, float] | None = None, record: dict[str, Any] | None = None
             ) -> None:
        c.status, c.note = status, note
        if offset is not None:
            self.offsets.append(offset)
        self.log.append("end", id=c.id, status=status, note=note, particle=c.particle,
                        file=c.file, verdict=c.verdict, position=c.position,
                        offset_m=offset, record=record)
        if record is not None:
            self.records[c.id] = record
        self._emit("particle", c, note or status)

    def _visit(self, c: Candidate) -> None:
        s, stage, tagger = self.settings, self.rig.stage, self.rig.tagger
        self._skip.clear()
        c.status = "recording"
        dx, dy = self._drift()
        self._emit("visit", c)
        try:
            lo = stage.get_range()
            x = float(np.clip(c.x_m + dx, *lo["x"]))
            y = float(np.clip(c.y_m + dy, *lo["y"]))
            stage.move_to(x_m=x, y_m=y)
            opt = optimise(stage, tagger, x, y, span_m=s.optimise_span_m,
                           step_m=s.optimise_step_m, dwell_s=s.optimise_dwell_s,
                           spot_sigma_m=s.spot_sigma_m)
            if not opt.found:
                self._end(c, "skipped", opt.note)
                return
            rate = count_rate(tagger, s.check_s)
            if rate - opt.background_hz < s.gone_fraction * opt.amplitude_hz:
                self._end(c, "skipped", f"gone: {rate / 1e3:.1f} kcps at the centre after "
                                        f"centring on {opt.amplitude_hz / 1e3:.1f} kcps "
                                        "(bleached)")
                return
        except DeviceError as exc:
            self._end(c, "failed", str(exc))
            return
        offset = (opt.x_m - c.x_m, opt.y_m - c.y_m)
        if self._stop.is_set():         # stopped while centring: nothing recorded, still to do
            c.status = "pending"
            return
        if self._skip.is_set():         # skipped while centring
            self._end(c, "skipped", "skipped by the user before recording", offset)
            return
        c.position = stage.get_position()
        acq = Acquisition(self.rig, s.acquisition, session=self.session,
                          analysis_worker=self.analysis_worker)
        c.particle, c.file = acq.name, acq.path.name
        self.log.append("visit", id=c.id, particle=acq.name, file=acq.path.name,
                        position=c.position, optimised=asdict(opt))
        self.acquisition = acq
        self._emit("recording", c)
        acq.add_callback(lambda ev: self._emit("progress", ev.state)
                         if ev.kind in ("progress", "verdict") else None)
        try:
            outcome = acq.run()
        finally:
            self.acquisition = None
        if outcome.error is not None:
            self._end(c, "failed", outcome.error, offset)
            return
        record = None
        if outcome.result is not None:
            rec = outcome.result.record()
            cls = rec.get("classification") or {}
            c.verdict = cls.get("label")
            record = {"file": c.file, "peak_ev": rec.get("peak_ev"),
                      "g2_zero": rec.get("g2_zero"), "lifetime_ns": rec.get("lifetime_ns"),
                      "shift_mev": rec.get("shift_mev"), "error": None,
                      "classification": {"label": c.verdict, "probability":
                                         cls.get("probability")},
                      "stop_reason": outcome.stop_reason,
                      "recorded_s": outcome.state.elapsed_s}
        skipped = self._skip.is_set()
        self._end(c, "skipped" if skipped else "done",
                  "skipped by the user (file kept)" if skipped else None, offset, record)

    def report(self) -> dict[str, Any]:
        """What was found, recorded, skipped and failed so far."""
        by = {k: [c.id for c in self.candidates if c.status == k]
              for k in ("done", "skipped", "failed", "pending", "recording")}
        verdicts: dict[str, int] = {}
        for r in self.records.values():
            label = (r.get("classification") or {}).get("label")
            verdicts[str(label)] = verdicts.get(str(label), 0) + 1
        return {"session": str(self.folder), "candidates": len(self.candidates),
                "done": len(by["done"]), "skipped": len(by["skipped"]),
                "failed": len(by["failed"]), "pending": len(by["pending"]) + len(
                    by["recording"]), "verdicts": verdicts,
                "skipped_notes": {c.id: c.note for c in self.candidates
                                  if c.status in ("skipped", "failed")},
                "cut_off_files": self.cut_off, "drift_m": list(self._drift())}


def light_records(survey: Survey) -> list[dict[str, Any]]:
    """The recorded particles as the population report reads them."""
    return [r for r in survey.records.values() if r is not None]


def write_report(survey: Survey) -> Path:
    """The survey report in ``SESSION/report/``: ``survey.png`` and ``survey.json`` (the
    population figures of ``spad batch --report``) and ``SESSION/survey_report.json``."""
    from spad.app.report import survey_figure, survey_summary

    folder = survey.folder / "report"
    folder.mkdir(exist_ok=True)
    records = light_records(survey)
    stats = survey_summary(records)
    (folder / "survey.json").write_text(json.dumps(stats, indent=1) + "\n")
    survey_figure(records, folder / "survey.png", stats)
    out = survey.folder / REPORT_NAME
    out.write_text(json.dumps({**survey.report(), "population": {
        "verdicts": stats["verdicts"], "red_shift": stats["red_shift"]}}, indent=1,
        default=_plain) + "\n")
    return out
