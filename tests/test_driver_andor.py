"""The Andor driver on the pylablib-surface stand-in rendering frames from the EMCCD simulator."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from spad.drivers.andor import AndorCamera
from spad.drivers.andor.sdk import connect_sdk2
from spad.simulators.andor import SimulatedAndorSDK2Camera
from spad.simulators.instruments import ManualClock, Scene, SimulatedSpectrograph
from spad.simulators.spectrum import EmissionLine

from spad.errors import DeviceError

HANG_GUARD_S = 30.0
"""A limit against a hang, not a measured duration: the fault's own message shows what ended
the wait, and a busy machine may make any poll late (tests never depend on its speed)."""


def _camera(**kw) -> tuple[AndorCamera, list[SimulatedAndorSDK2Camera]]:
    made: list[SimulatedAndorSDK2Camera] = []
    mono = SimulatedSpectrograph()
    mono.open()
    scene = Scene(lines=[EmissionLine(peak_ev=1.97, fwhm_ev=0.06, photon_rate_hz=2e5)])

    def connect(name, index, temperature):
        made.append(SimulatedAndorSDK2Camera(index, temperature=temperature, scene=scene,
                                             spectrograph=mono, seed=1, **kw))
        return made[-1]

    settings = dict(temperature_c=-60.0, exposure_s=0.01, em_gain=100, preamp=1,
                    sensitivity_e_per_adu=(16.0, 8.0, 4.0))
    return AndorCamera(connect=connect, **settings), made


def test_settings_cooling_and_a_kinetic_series():
    cam, made = _camera(cooling_rate_c_per_s=100.0)
    with cam:
        assert cam.get_device_info()["model"] == "DU897_BV"
        assert "DU897_BV" in cam.name
        assert cam.get_em_gain() == 100 and cam.get_preamp_gain() == 8.0
        assert cam.get_exposure() == pytest.approx(0.01)
        assert cam.get_temperature_status() in ("not_reached", "not_stabilized")
        cam.wait_for_temperature(timeout_s=10, poll_s=0.05)
        assert cam.get_temperature() == pytest.approx(-60.0)
        assert made[0].get_shutter() == "auto"
        cam.set_read_mode("fvb")
        cam.set_cycle_time(0.02)
        cam.set_acquisition_mode("kinetic", 5)
        cam.start_acquisition()
        frames, meta = [], []
        while len(frames) < 5:
            cam.wait_for_frame(5.0)
            f, m = cam.read_frames_with_info()
            frames.extend(f)
            meta.extend(m)
        assert np.stack(frames).shape == (5, 512)
        assert [m["index"] for m in meta] == [0, 1, 2, 3, 4]
        dt = np.diff([m["timestamp_s"] for m in meta])
        assert np.all(dt > 0.019)
        spectrum = np.stack(frames).mean(0)
        assert spectrum.max() > spectrum.min() + 100      # the line is on the chip
        with pytest.raises(DeviceError, match="no acquisition running"):
            cam.wait_for_frame(1.0)
    assert not cam.is_opened() and not made[0].is_opened()


class _BusyClock(ManualClock):
    """Simulated time that moves on at every reading: on a loaded machine a frame may end
    between any two calls into the camera (here, a quarter of a frame passes at each)."""

    def __init__(self, step_s: float) -> None:
        super().__init__()
        self.step_s = step_s

    def now(self) -> float:
        self.t += self.step_s
        return self.t


def test_frame_indices_are_those_of_the_frames_read_when_frames_end_between_calls():
    """The index of each frame read is its place in the acquisition, even when a frame ends
    while the frames are being read (seen once as an index of -1 on a busy machine)."""
    cam, _ = _camera(clock=_BusyClock(0.004))
    with cam:
        cam.set_read_mode("fvb")
        cam.set_acquisition_mode("kinetic", 12)
        cam.start_acquisition()
        n, indices = 0, []
        while cam.acquisition_in_progress() or cam.get_frames_status()[1]:
            f, m = cam.read_frames_with_info()
            assert len(f) == len(m)
            n += len(f)
            indices.extend(x["index"] for x in m)
        assert indices == list(range(12)) and n == 12


@pytest.mark.parametrize("step_s", [0.001, 0.004, 0.007])
def test_waiting_for_the_last_frames_when_the_series_ends_between_calls(step_s):
    """Waiting for a frame while the series ends returns the frames it made (a busy machine
    once got "no acquisition running" with frames still unread)."""
    cam, _ = _camera(clock=_BusyClock(step_s))
    with cam:
        cam.set_read_mode("fvb")
        cam.set_acquisition_mode("kinetic", 12)
        cam.start_acquisition()
        indices = []
        while len(indices) < 12:
            cam.wait_for_frame(5.0)
            indices.extend(m["index"] for m in cam.read_frames_with_info()[1])
        assert indices == list(range(12))
        with pytest.raises(DeviceError, match="no acquisition running"):
            cam.wait_for_frame(1.0)


def test_read_modes_roi_binning_and_single_snap():
    cam, _ = _camera()
    with cam:
        cam.setup_single_track_mode(256, 8)
        assert cam.get_read_mode() == "fvb"               # set up, not switched to
        cam.set_read_mode("single_track")
        assert cam.snap(5.0).shape == (512,)
        cam.set_roi(100, 300, 200, 300, hbin=2, vbin=4)
        cam.set_read_mode("image")
        assert cam.snap(5.0).shape == (25, 100)
        cam.set_read_mode("fvb")
        assert cam.snap(5.0).shape == (200,)               # ROI columns limit FVB too
        with pytest.raises(DeviceError, match="multiple of the binning"):
            cam.set_roi(0, 101, 0, 10, hbin=2)


def test_em_gain_guard_and_missing_sensitivity():
    cam, _ = _camera()
    with cam:
        with pytest.raises(DeviceError, match="advanced_em_gain"):
            cam.set_em_gain(500)
        cam.advanced_em_gain = True
        assert cam.set_em_gain(500) == 500
        cam.sensitivity_e_per_adu = ()
        with pytest.raises(DeviceError, match="performance sheet"):
            cam.get_preamp_gain()


def test_temperature_not_reached_is_a_clear_error_and_the_camera_closes():
    cam, made = _camera(cooling_rate_c_per_s=100.0)
    with pytest.raises(DeviceError, match=r"Andor DU897_BV #12345: temperature not reached: "
                                          r"-45\.0 °C"):
        with cam:
            made[0].inject("temperature_not_reached")
            cam.wait_for_temperature(timeout_s=1.5, poll_s=0.05)
    assert not cam.is_opened() and not made[0].is_opened()


def test_acquisition_timeout():
    cam, made = _camera()
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="Andor DU897_BV #12345: wait: timeout"):
        with cam:
            made[0].inject("acquisition_timeout")
            cam.start_acquisition()
            cam.wait_for_frame(0.5)
    assert time.monotonic() - t0 < HANG_GUARD_S   # a hang guard: the 0.5 s wait ends it
    assert not made[0].is_opened()


def test_unplugged_mid_run_reported_within_2s():
    cam, made = _camera()
    with cam:
        cam.set_exposure(0.2)
        cam.set_acquisition_mode("cont")
        cam.start_acquisition()
        threading.Timer(0.3, made[0].inject, ("disconnect",)).start()
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match="not answering .DRV_ERROR_ACK"):
            while True:
                cam.wait_for_frame(30.0)
                cam.read_multiple_images()
        # the disconnect, not the 30 s wait, ended it (its message); a hang guard only
        assert time.monotonic() - t0 < HANG_GUARD_S
        assert not cam.is_opened() and not made[0].is_opened()


def test_missing_sdk_is_one_clear_error():
    with pytest.raises(DeviceError, match="Andor camera 0: .*(SDK|DLL)"):
        connect_sdk2("Andor camera 0", 0)
