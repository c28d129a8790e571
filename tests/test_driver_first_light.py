"""``spad devices --check``: the first-light self-test passes on the simulated rig, names each
fault injected into the simulated instruments, and closes every instrument."""

from __future__ import annotations

import json
import re

import pytest

from spad.app import first_light
from spad.app.cli import main
from spad.app.commands.devices import SIMULATED_FAULTS

# what the check must say for each fault (in the failing instrument's problems)
NAMED = {"stuck": r"move to 631\.000 nm ended at 630\.000 nm",
         "position_error": r"move to 631\.000 nm ended at 631\.500 nm",
         "cooler_off": r"cooler off",
         "no_frame": r"no frame within",
         "saturated": r"128 of 512 pixels saturated",
         "no_sync": r"no sync signal: the sync input counts 0 Hz",
         "dead_detector": r"detector 2: no counts in 1 s"}


def _check(capsys, *extra: str) -> tuple[int, dict]:
    code = main(["devices", "--check", "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture(autouse=True)
def _short_frame_wait(monkeypatch):
    monkeypatch.setattr(first_light, "FRAME_TIMEOUT_S", 0.5)   # the no_frame fault waits it


def test_the_simulated_rig_passes_with_numbers(capsys):
    code, report = _check(capsys)
    assert code == 0
    mono, cam, tagger = (report[k]["check"] for k in ("spectrograph", "camera", "tagger"))
    assert all(c["passed"] and c["problems"] == [] for c in (mono, cam, tagger))
    assert mono["moved_to_nm"] == pytest.approx(mono["start_nm"] + 1.0, abs=0.01)
    assert mono["back_at_nm"] == pytest.approx(mono["start_nm"], abs=0.01)
    assert cam["saturated_pixels"] == 0 and cam["frame_mean_adu"] > 0
    assert tagger["sync_rate_hz"] > 1e6 and min(tagger["counted_rates_hz"]) > 1000


def test_the_text_report_says_pass(capsys):
    assert main(["devices", "--check"]) == 0
    out = capsys.readouterr().out
    assert out.count(": PASS") == 3 and "first light: all instruments pass" in out


@pytest.mark.parametrize("fault", sorted(SIMULATED_FAULTS))
def test_each_injected_fault_is_named(capsys, fault):
    code, report = _check(capsys, "--simulate-fault", fault)
    assert code == 1
    kind = SIMULATED_FAULTS[fault]
    failed = report[kind]["check"]
    assert not failed["passed"]
    assert any(re.search(NAMED[fault], p) for p in failed["problems"]), \
        failed["problems"]
    others = [k for k in ("spectrograph", "camera", "tagger") if k != kind]
    assert all(report[k]["check"]["passed"] for k in others)


def test_several_faults_at_once_are_each_named(capsys):
    code, report = _check(capsys, "--simulate-fault", "stuck", "--simulate-fault",
                          "saturated", "--simulate-fault", "dead_detector")
    assert code == 1
    assert not any(report[k]["check"]["passed"] for k in ("spectrograph", "camera", "tagger"))


def test_every_instrument_is_closed_after_the_check(capsys, monkeypatch):
    # spad devices imports the openers from spad.app.rig when it runs (not at its top)
    from spad.app import rig

    opened = []
    for name in ("open_spectrograph", "open_camera", "open_tagger"):
        real = getattr(rig, name)

        def opener(*a, _real=real, **k):
            opened.append(_real(*a, **k))
            return opened[-1]
        monkeypatch.setattr(rig, name, opener)
    assert main(["devices", "--check", "--simulate-fault", "no_frame"]) == 1
    assert len(opened) == 3 and not any(i.is_opened() for i in opened)


def test_fault_options_are_refused_where_they_cannot_apply(capsys, tmp_path):
    assert main(["devices", "--simulate-fault", "stuck"]) == 2
    assert "only with --check" in capsys.readouterr().err
    rig = tmp_path / "rig.toml"
    rig.write_text('[tagger]\nbackend = "swabian"\n')
    assert main(["devices", "--check", "--config", str(rig), "--simulate-fault",
                 "no_sync"]) == 2
    assert "the tagger of this rig is 'swabian', not simulated" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):
        main(["devices", "--check", "--simulate-fault", "melted"])
    assert "invalid choice: 'melted'" in capsys.readouterr().err


def test_the_check_on_the_acton_driver_over_its_serial_protocol(capsys, tmp_path):
    from spad.simulators.acton import ActonPty
    with ActonPty(echo=False) as sim:
        rig = tmp_path / "rig.toml"
        rig.write_text(f'[spectrograph]\nbackend = "acton"\nport = "{sim.port}"\n'
                       'link = "usb"\n')
        code, report = _check(capsys, "--config", str(rig))
        check = report["spectrograph"]["check"]
        assert code == 0 and check["passed"], check
        assert check["moved_to_nm"] == pytest.approx(check["start_nm"] + 1.0, abs=0.01)
        sim.inject("error")                 # every command answered '?'
        code, report = _check(capsys, "--config", str(rig))
        assert code == 1 and not report["spectrograph"]["check"]["passed"]


def test_the_check_on_the_picoquant_driver_over_its_fake_library(capsys, tmp_path):
    from tests.picoquant_fake import SYNC_LOST, Fake, build, simulated_records
    words, _ = simulated_records("T3", duration_s=0.2)
    fake = Fake(build("hydraharp", tmp_path))
    fake.device(sync_rate=5_000_000)
    fake.load(words, tmp_path)
    rig = tmp_path / "rig.toml"
    rig.write_text(f'[tagger]\nbackend = "picoquant"\nfamily = "hydraharp"\n'
                   f'library = "{fake.path}"\nbinning = 4\n')
    code, report = _check(capsys, "--config", str(rig))
    check = report["tagger"]["check"]
    assert code == 0 and check["passed"], check
    assert check["sync_rate_hz"] == 5e6 and min(check["counted_rates_hz"]) > 1000
    assert check["tcspc_bin_ps"] == 16.0 and check["reference_clock"] == "internal"
    fake.inject(SYNC_LOST, after_reads=1)
    code, report = _check(capsys, "--config", str(rig))
    assert code == 1
    assert any("sync" in p.lower() for p in report["tagger"]["check"]["problems"])


def test_the_check_on_the_swabian_driver_over_its_stand_in(capsys, monkeypatch, tmp_path):
    import numpy as np
    from spad.drivers.swabian import tagger as swabian

    from tests.swabian_standin import StandInAPI
    sync = np.arange(20_000, dtype=np.int64) * 50_000          # 20 MHz for 1 ms
    photons = np.arange(200, dtype=np.int64) * 4_999_999 + 7
    ts = np.concatenate([sync, photons, photons + 1])
    ch = np.concatenate([np.full(sync.size, 3), np.full(200, 1), np.full(200, 2)])
    order = np.argsort(ts, kind="stable")
    api = StandInAPI(ts[order], ch[order], {1: 3e4, 2: 3e4, 3: 2e7})
    monkeypatch.setattr(swabian, "load_api", lambda name: api)
    rig = tmp_path / "rig.toml"
    rig.write_text('[tagger]\nbackend = "swabian"\n')
    code, report = _check(capsys, "--config", str(rig))
    check = report["tagger"]["check"]
    assert code == 0 and check["passed"], check
    assert check["counted_rates_hz"] == [200.0, 200.0] and check["sync_rate_hz"] == 2e7
    assert check["clock_period_ps"] == 2000
    assert report["tagger"]["model"] == "Time Tagger Ultra"
