"""Acquisition at the microscope: one particle file per particle, crash-safe, live verdict.

One particle is one :class:`Acquisition`, a threaded measurement in the ScopeFoundry style::

    from spad.app.acquisition import Acquisition, AcquisitionSettings, Session

    session = Session("data/2026-12-02")       # directory + session.jsonl, resumed if present
    acq = Acquisition(rig, AcquisitionSettings(duration_s=60, until_confident=0.95),
                      session=session)          # or path="particle.h5"
    acq.start()                 # own thread; returns at once
    acq.snapshot()              # LiveState: thread-safe, immutable (poll it from a Qt timer)
    acq.stop()                  # end cleanly: file finalised, final analysis and verdict
    acq.abort()                 # end at once: file keeps what was acquired, no analysis
    outcome = acq.wait()        # Outcome(path, result, stop_reason, error, state)
    # without a thread (the CLI): outcome = acq.run()

``rig`` is anything with ``.tagger`` (:class:`spad.drivers.interfaces.TimeTagger`), ``.camera``
(:class:`spad.drivers.interfaces.CameraInterface` or ``None``) and ``.spectrograph``
(:class:`spad.drivers.interfaces.SpectrographInterface` or ``None``).

What happens
------------
- The tagger FIFO is polled; each read is decoded into a :class:`spad.photons.PhotonChunk`,
  appended to the particle file and fed to
  :class:`spad.analysis.photon_analysis.PhotonAccumulators`,
  the accumulators ``spad analyze`` uses. Camera frames are polled and appended alongside.
- The file (Photon-HDF5 particle file, ``docs/particle_file.md``; the start time, settings and
  instrument states in ``/user/acquisition``) is in HDF5 SWMR mode while it grows: another
  program can open it read-only (``h5py.File(path, "r", libver="latest", swmr=True)``), and it
  is flushed every ``flush_s`` (default 0.5 s), so ``kill -9`` loses at most that.
- Every ``update_s`` (default 1 s) of recorded time the photons so far are analysed and
  classified: the live state's g2(0) ± error and verdict (label, probability, evidence) and an
  ``Event("progress")`` / ``Event("verdict")`` on :attr:`Acquisition.events` (a
  :class:`queue.Queue` of the last 1000) and to every callback of
  :meth:`Acquisition.add_callback` (called from the acquisition thread: a GUI re-emits them as
  Qt signals).
- ``until_confident=P`` ends the particle once the verdict's probability has been >= P for
  ``confident_updates`` consecutive updates with the g2(0) error <= ``g2_err_max``.
- Any device fault (a :class:`spad.errors.DeviceError` from a driver: FIFO overrun, sync lost,
  camera timeout, spectrograph error; a lost connection, ``OSError``) ends the recording
  cleanly: the file is finalised with everything acquired, the error names the instrument and
  is in ``Outcome.error``, ``LiveState.error`` and an ``Event("error")``.
- The final result is computed from the same accumulators and is the result ``spad analyze``
  gives for the finished file; live and replay of the same photons agree for any chunking.

Time is the photon stream's clock (last timestamp), so ``spad replay`` at any speed and the
live run take the same decisions at the same recorded times.
"""

from spad.app.acquisition.engine import (
    Acquisition,
    AcquisitionSettings,
    Event,
    LiveState,
    Outcome,
)
from spad.app.acquisition.session import Session

__all__ = ["Acquisition", "AcquisitionSettings", "Event", "LiveState", "Outcome", "Session"]
