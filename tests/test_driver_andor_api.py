"""The Andor driver and its stand-in (simulators/andor.py) against pylablib's real
``AndorSDK2Camera``: every method the driver calls exists and accepts the driver's arguments,
the stand-in offers nothing pylablib's class lacks, and the status strings and SDK error codes
are pylablib's. pylablib's methods keep their signatures through its decorators, so
``inspect.signature`` reads them directly."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest
from pylablib.devices import Andor
from pylablib.devices.Andor import AndorSDK2
from pylablib.devices.Andor.atmcd32d_defs import DRV_STATUS
from pylablib.devices.Andor.atmcd32d_lib import AndorSDK2LibError
from spad.drivers.andor import AndorCamera
from spad.drivers.andor.errors import LOST_CODES, AndorCameraLost, translated
from spad.drivers.andor.sdk import connect_sdk2
from spad.drivers.interfaces.camera import READ_MODES, TemperatureStatus
from spad.simulators import andor as sim_andor
from spad.simulators.andor import SimulatedAndorSDK2Camera
from spad.simulators.instruments import Scene, SimulatedSpectrograph
from spad.simulators.spectrum import EmissionLine

REAL = Andor.AndorSDK2Camera
STAND_IN_ONLY = {"inject"}          # the stand-in's fault switch, not pylablib's


class Recorder:
    """Passes every call on to the stand-in and logs ``(method, args, kwargs)``."""

    def __init__(self, cam: SimulatedAndorSDK2Camera) -> None:
        self.cam = cam
        self.log: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.cam, name)
        if not callable(value):
            return value

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.log.append((name, args, kwargs))
            return value(*args, **kwargs)

        return recorded


def problems_of(name: str, args: tuple, kwargs: dict) -> list[str]:
    """What is wrong with one call of the driver, against pylablib's class."""
    real = getattr(REAL, name, None)
    if real is None:
        return [f"AndorSDK2Camera.{name} does not exist in pylablib"]
    try:
        inspect.signature(real).bind(None, *args, **kwargs)
    except TypeError as exc:
        return [f"AndorSDK2Camera.{name}{inspect.signature(real)}: the driver's call "
                f"({args}, {kwargs}) does not bind: {exc}"]
    return []


@pytest.fixture(scope="module")
def driver_calls() -> list[tuple[str, tuple, dict]]:
    """Every call of the driver in a session using each of its features."""
    recorders: list[Recorder] = []
    mono = SimulatedSpectrograph()
    mono.open()
    scene = Scene(lines=[EmissionLine(peak_ev=1.97, fwhm_ev=0.06, photon_rate_hz=2e5)])

    def connect(name, index, temperature):
        recorders.append(Recorder(SimulatedAndorSDK2Camera(
            index, temperature=temperature, scene=scene, spectrograph=mono, seed=1,
            cooling_rate_c_per_s=200.0, stabilise_s=0.05)))
        return recorders[-1]

    cam = AndorCamera(connect=connect, temperature_c=-60.0, exposure_s=0.01, em_gain=100,
                      preamp=1, sensitivity_e_per_adu=(16.0, 8.0, 4.0), advanced_em_gain=True)
    with cam:
        cam.get_device_info()
        cam.get_detector_size()
        cam.get_pixel_size()
        cam.set_em_gain(500)
        cam.get_preamp_gain()
        cam.get_readout_rate_hz()
        cam.set_cooler(True)
        cam.wait_for_temperature(timeout_s=10, poll_s=0.01)
        cam.setup_shutter("auto")
        cam.setup_single_track_mode(256, 8)
        cam.setup_multi_track_mode(2, 8, 0)
        cam.set_roi(0, 512, 0, 512, 2, 2)
        for mode in READ_MODES:
            cam.set_read_mode(mode)
        cam.set_read_mode("fvb")
        cam.set_acquisition_mode("accum", 2)
        cam.snap(5.0)
        cam.set_cycle_time(0.02)
        cam.set_acquisition_mode("kinetic", 2)
        cam.start_acquisition()
        cam.wait_for_frame(5.0)
        cam.read_frames_with_info()
        cam.get_frames_status()
        cam.acquisition_in_progress()
        cam.stop_acquisition()
        cam.set_temperature(10.0, enable_cooler=False)
    return recorders[0].log


def test_every_call_of_the_driver_binds_to_pylablibs_class(driver_calls):
    problems = sorted({p for call in driver_calls for p in problems_of(*call)})
    assert not problems, "\n".join(problems)
    used = {name for name, _, _ in driver_calls}
    assert {"set_EMCCD_gain", "set_amp_mode", "setup_image_mode", "setup_kinetic_mode",
            "read_multiple_images", "get_cycle_timings", "close"} <= used


def test_the_checker_catches_a_wrong_name_or_argument():
    assert problems_of("set_EMCCD_gains", (100,), {})
    assert problems_of("set_amp_mode", (), {"pre_amp": 1})
    assert problems_of("wait_for_frame", (), {"timeout_s": 1.0})
    assert not problems_of("set_amp_mode", (), {"preamp": 1})


def test_the_connect_call_binds_to_pylablibs_constructor(monkeypatch):
    seen: list[tuple[tuple, dict]] = []

    class Spy:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            seen.append((args, kwargs))

    monkeypatch.setattr(Andor, "AndorSDK2Camera", Spy)
    connect_sdk2("Andor camera 0", 3, -70.0)
    (args, kwargs), = seen
    inspect.signature(REAL.__init__).bind(None, *args, **kwargs)
    assert kwargs == {"idx": 3, "temperature": -70.0, "fan_mode": "full"}


def test_the_stand_in_offers_only_what_pylablib_has():
    ours = SimulatedAndorSDK2Camera
    public = [n for n, v in vars(ours).items()
              if not n.startswith("_") and callable(v) and n not in STAND_IN_ONLY]
    assert len(public) > 30
    for name in [*public, "__init__"]:
        assert hasattr(REAL, name), f"pylablib's AndorSDK2Camera has no {name}"
        real = list(inspect.signature(getattr(REAL, name)).parameters.values())
        mine = [p for p in inspect.signature(getattr(ours, name)).parameters.values()
                if p.kind is not inspect.Parameter.KEYWORD_ONLY]    # the simulation's own
        if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in real):
            continue                            # (self, *args, **kwargs): anything binds
        assert [p.name for p in mine] == [p.name for p in real[:len(mine)]], \
            f"{name}{inspect.signature(getattr(ours, name))} vs pylablib's " \
            f"{name}{inspect.signature(getattr(REAL, name))}"
        assert all(p.default is not inspect.Parameter.empty for p in real[len(mine):]), \
            f"{name}: pylablib's takes more required arguments"


def test_status_strings_and_error_codes_are_pylablibs():
    # pylablib's names of the SDK's five temperature codes (GetTemperatureF)
    to_name = AndorSDK2.AndorSDK2Camera._p_temp_status.to_alias
    names = {to_name(getattr(DRV_STATUS, f"DRV_TEMPERATURE_{c}"))
             for c in ("OFF", "NOT_REACHED", "NOT_STABILIZED", "DRIFT", "STABILIZED")}
    assert set(typing.get_args(TemperatureStatus)) == names
    for code, name in LOST_CODES.items():
        assert int(getattr(DRV_STATUS, name)) == code
    assert sim_andor.DRV_ERROR_ACK == int(DRV_STATUS.DRV_ERROR_ACK)


def test_pylablibs_own_error_object_becomes_a_lost_camera():
    err = AndorSDK2LibError("GetStatus", int(DRV_STATUS.DRV_ERROR_ACK))
    with pytest.raises(AndorCameraLost, match="camera not answering .DRV_ERROR_ACK"):
        with translated("Andor iXon", "status"):
            raise err
