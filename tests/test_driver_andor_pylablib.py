"""spad's Andor driver through pylablib's real ``AndorSDK2Camera`` over a fake Andor SDK2
library compiled for the test (tests/fake_andor/fakesdk2.c, built against pylablib's own
ctypes declarations and return codes): pylablib's connection, settings, acquisition and
error paths run as they would on a lab PC, only the SDK underneath is simulated."""

from __future__ import annotations

import json

import numpy as np
import pytest
from spad.drivers.andor import AndorCamera

from spad.app.cli import main
from spad.errors import DeviceError
from tests.andor_fake import build, call_log, pylablib_on


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    with pylablib_on(build(tmp_path_factory.mktemp("fakeandor"))) as controls:
        yield controls


@pytest.fixture
def fresh(sdk):
    sdk.FAKEANDOR_Reset()
    return sdk


def _camera(**kw) -> AndorCamera:
    settings = dict(temperature_c=-60.0, exposure_s=0.02, em_gain=100, preamp=1, hsspeed=1,
                    sensitivity_e_per_adu=(16.0, 8.0, 4.0))
    settings.update(kw)
    return AndorCamera(**settings)      # default connect: pylablib's AndorSDK2Camera


def test_pylablib_connects_sets_up_and_reads_a_spectrum(fresh):
    with _camera() as cam:
        assert cam.name == "Andor DU897_BV #9876"
        assert cam.get_device_info()["adc_bits"] == 16
        assert cam.get_detector_size() == (512, 512)
        assert cam.get_pixel_size() == pytest.approx(16e-6)
        assert cam.get_em_gain() == 100 and cam.get_preamp_gain() == 8.0
        assert cam.get_readout_rate_hz() == pytest.approx(10e6)
        cam.wait_for_temperature(timeout_s=10, poll_s=0.05)
        assert cam.get_temperature() == pytest.approx(-60.0)
        spectrum = cam.snap(5.0)
        assert spectrum.shape == (512,)
        assert int(np.argmax(spectrum)) == 256
        assert spectrum.max() == pytest.approx(500 + 3000 * 0.02 / 0.1, abs=2)
        cam.advanced_em_gain = True
        assert cam.set_em_gain(500) == 500
    calls = call_log(fresh)
    for sdk_call in ("Initialize", "SetEMAdvanced", "SetEMCCDGain", "SetPreAmpGain",
                     "SetHSSpeed", "SetReadMode", "StartAcquisition", "GetImages16",
                     "ShutDown"):
        assert sdk_call in calls, sdk_call


def test_kinetic_series_and_binned_image(fresh):
    with _camera() as cam:
        cam.set_cycle_time(0.05)
        cam.set_acquisition_mode("kinetic", 3)
        cam.start_acquisition()
        frames, meta = [], []
        while len(frames) < 3:
            cam.wait_for_frame(5.0)
            f, m = cam.read_frames_with_info()
            frames.extend(f)
            meta.extend(m)
        assert [m["index"] for m in meta] == [0, 1, 2]
        assert np.all(np.diff([m["timestamp_s"] for m in meta]) == pytest.approx(0.05))
        cam.set_roi(200, 312, 0, 512, hbin=4, vbin=8)
        cam.set_read_mode("image")
        image = cam.snap(5.0)
        assert image.shape == (64, 28)
        assert int(np.argmax(image[0])) == (256 - 200) // 4


def test_an_unplugged_camera_is_reported_and_released(fresh):
    cam = _camera()
    with pytest.raises(DeviceError, match=r"Andor DU897_BV #9876: .*not answering "
                                          r"\(DRV_ERROR_ACK"):
        with cam:
            cam.set_acquisition_mode("cont")
            cam.start_acquisition()
            fresh.FAKEANDOR_Unplug(0)
            cam.wait_for_frame(5.0)
    assert not cam.is_opened()


def test_first_light_check_passes_on_pylablibs_class(fresh, tmp_path, capsys, monkeypatch):
    from spad.app import first_light
    monkeypatch.setattr(first_light, "FRAME_TIMEOUT_S", 5.0)
    rig = tmp_path / "rig.toml"
    rig.write_text('[camera]\nbackend = "andor"\nexposure_s = 0.05\ntemperature_c = -70.0\n')
    code = main(["devices", "--check", "--json", "--config", str(rig)])
    report = json.loads(capsys.readouterr().out)
    check = report["camera"]["check"]
    assert code == 0 and check["passed"], check
    assert report["camera"]["model"] == "DU897_BV"
    assert check["frame_shape"] == [512] and check["saturated_pixels"] == 0
    assert check["frame_max_adu"] == pytest.approx(500 + 3000 * 0.05 / 0.1, abs=2)


def test_a_fake_function_unlike_pylablibs_declaration_does_not_build(tmp_path):
    from tests.andor_fake import SOURCE
    source = SOURCE.read_text()
    wrong = source.replace("unsigned int SetEMCCDGain(int gain)",
                           "unsigned int SetEMCCDGain(float gain)")
    assert wrong != source
    (tmp_path / "wrong.c").write_text(wrong)
    with pytest.raises(RuntimeError, match="conflicting types for .SetEMCCDGain"):
        build(tmp_path, source=tmp_path / "wrong.c")
    (tmp_path / "extra.c").write_text(source + "unsigned int SetTurbo(int on) { return on; }\n")
    with pytest.raises(RuntimeError, match=r"pylablib declares no SDK function \['SetTurbo'\]"):
        build(tmp_path, source=tmp_path / "extra.c")
