"""The rig file (spad.config), open_rig (spad.app.rig) and ``spad devices``."""

from __future__ import annotations

import json

import pytest
from spad.drivers.interfaces import CameraInterface, SpectrographInterface, TimeTagger
from spad.simulators.acton import ActonPty

from spad.app.cli import main
from spad.app.rig import open_rig
from spad.config import ConfigError, load_rig, parse_rig
from spad.errors import DeviceError
from tests.picoquant_fake import Fake, build


@pytest.fixture(scope="module")
def hhlib(tmp_path_factory):
    return build("hydraharp", tmp_path_factory.mktemp("rigfake"))


def test_default_rig_is_simulated_and_complete():
    rig = load_rig(None)
    assert (rig.tagger.backend, rig.camera.backend, rig.spectrograph.backend) == (
        "simulated",) * 3
    with open_rig(None, realtime=False) as inst:
        assert isinstance(inst.tagger, TimeTagger)
        assert isinstance(inst.camera, CameraInterface)
        assert isinstance(inst.spectrograph, SpectrographInterface)
        assert inst.camera.is_opened() and inst.spectrograph.is_opened()
        inst.tagger.start(0.01)
        n = 0
        while (w := inst.tagger.read()) is not None:
            n += len(w)
        assert n > 0
        assert inst.camera.snap(5.0).ndim == 1
    assert not inst.camera.is_opened() and not inst.spectrograph.is_opened()


@pytest.mark.parametrize("text, key", [
    ("[camera]\ntempreature_c = -80", "unknown key 'tempreature_c'"),
    ("[camera]\nexposure_s = 'fast'", r"\[camera\] exposure_s: expected a number"),
    ("[camera]\nem_gain = 5000.0\nadvanced_em_gain = true", r"em_gain: 5000.0 outside"),
    ("[camera]\nem_gain = 500", "em_gain: 500 above 300 needs advanced_em_gain"),
    ("[tagger]\nbackend = 'becker'", "backend: 'becker' is not one of"),
    ("[tagger]\ndetector_offsets_ns = [0.0, 1.0, 2.0]", "one value per detector"),
    ("[tagger]\nsync_divider = 1.5", "sync_divider: expected an integer"),
    ("[spectrograph]\nbackend = 'acton'", "port: the Acton needs a serial port"),
    ("[laser]\npower = 1", "unknown table or key 'laser'"),
    ("[camera\n", "not valid TOML"),
])
def test_bad_rig_values_name_the_key(text, key):
    with pytest.raises(ConfigError, match=f"rig.toml: .*{key}"):
        parse_rig(text, "rig.toml")


def test_missing_rig_file(tmp_path):
    with pytest.raises(ConfigError, match="no such rig file"):
        load_rig(tmp_path / "nope.toml")


def _rig_file(tmp_path, port, library, echo=False):
    path = tmp_path / "rig.toml"
    path.write_text(f"""
[tagger]
backend = "picoquant"
family = "hydraharp"
library = "{library}"
mode = "T3"
binning = 3
detector_offsets_ns = [0.0, 0.35]

[spectrograph]
backend = "acton"
port = "{port}"
link = "{'rs232' if echo else 'usb'}"
timeout_s = 1.0
focal_length_m = 0.300
""")
    return path


def test_open_rig_with_fake_library_and_pty_acton(tmp_path, hhlib):
    Fake(hhlib)
    with ActonPty(echo=True) as sim:
        with open_rig(_rig_file(tmp_path, sim.port, hhlib, echo=True)) as inst:
            assert inst.tagger.name == "HydraHarp 400 1021234"
            assert inst.tagger.config.offsets_s == pytest.approx((0.0, 0.35e-9))
            assert inst.spectrograph.get_grating() == 1
            inst.spectrograph.set_centre_wavelength(610e-9)
            assert inst.camera.snap(5.0).shape == (512,)
        assert not inst.tagger.is_opened() and not inst.spectrograph.is_opened()


def test_a_failing_instrument_closes_the_others(tmp_path):
    with ActonPty() as sim:
        path = _rig_file(tmp_path, sim.port, tmp_path / "missing.so")
        with pytest.raises(DeviceError, match="cannot load the vendor library"):
            with open_rig(path):
                pass
        assert "?GRATINGS" in sim.commands


def test_spad_devices_default_rig(capsys):
    assert main(["devices", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tagger"]["sync_rate_hz"] == 5e6
    assert out["spectrograph"]["gratings"][0]["grooves_per_mm"] == 300
    assert out["camera"]["temperature_status"] in ("not_reached", "not_stabilized",
                                                   "stabilized")


def test_spad_devices_on_fake_library_and_pty(tmp_path, hhlib, capsys):
    fake = Fake(hhlib)
    fake.device(sync_rate=40_000_000, rates=(12345, 23456))
    with ActonPty() as sim:
        assert main(["devices", "--config", str(_rig_file(tmp_path, sim.port, hhlib))]) == 0
    out = capsys.readouterr().out
    assert "tagger (picoquant):" in out and "serial_number: 1021234" in out
    assert "count_rates_hz: [12345.0, 23456.0]" in out and "sync_rate_hz: 40000000.0" in out
    assert "warnings: none" in out and "model: SP-2-300i" in out and "1: 300 g/mm 500NM" in out
    assert fake.calls()[-1] == "CloseDevice"


def test_spad_devices_reports_each_failure(tmp_path, capsys):
    path = tmp_path / "rig.toml"
    path.write_text('[camera]\nbackend = "andor"\n[spectrograph]\nbackend = "acton"\n'
                    f'port = "{tmp_path / "ttyNONE"}"\n')
    assert main(["devices", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert "cannot open the serial port" in out
    assert "Andor camera 0:" in out and "tagger (simulated):" in out


def test_spad_devices_bad_rig_is_one_line(tmp_path, capsys):
    path = tmp_path / "rig.toml"
    path.write_text("[camera]\nbogus = 1\n")
    assert main(["devices", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spad: error: ") and "bogus" in err and "Traceback" not in err


def test_readme_rig_example_is_a_valid_rig():
    from pathlib import Path

    text = (Path(__file__).parents[1] / "README.md").read_text()
    block = text.split("## Instruments and the rig file", 1)[1].split("```toml\n", 1)[1]
    rig = parse_rig(block.split("```", 1)[0], "README.md")
    assert rig.tagger.family == "hydraharp" and rig.camera.em_gain == 100.0
    assert rig.spectrograph.port == "COM3"
