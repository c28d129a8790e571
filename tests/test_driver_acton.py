"""The Acton driver against the simulated SpectraPro on a pseudo-terminal (real pyserial I/O)."""

from __future__ import annotations

import threading
import time

import pytest
from spad.drivers.acton import ActonSpectrograph
from spad.drivers.acton.spectrograph import parse_gratings
from spad.simulators.acton import ActonPty

from spad.errors import DeviceError

HANG_GUARD_S = 30.0
"""A limit against a hang, not a measured duration: the fault's own message shows what ended
the wait, and a busy machine may make any poll late (tests never depend on its speed)."""


@pytest.fixture(params=[False, True], ids=["usb", "rs232"])
def sim(request):
    with ActonPty(echo=request.param, scan_speed_m_per_s=100e-9) as s:
        yield s


def _open(sim: ActonPty, **kw) -> ActonSpectrograph:
    return ActonSpectrograph(sim.port, link="rs232" if sim.echo else "usb", timeout_s=0.5, **kw)


def test_identity_gratings_and_moves(sim):
    with _open(sim) as mono:
        info = mono.get_device_info()
        assert info["model"] == "SP-2-300i" and info["serial_number"] == "23001234"
        assert [g.groove_density_per_m for g in mono.get_gratings()] == [300e3, 600e3, 1200e3]
        assert mono.get_grating() == 1
        t0 = time.monotonic()
        mono.set_centre_wavelength(700e-9)          # 100 nm at 400 nm/s on the 300 g/mm
        took = time.monotonic() - t0
        assert mono.get_centre_wavelength() == pytest.approx(700e-9, abs=1e-12)
        assert took > 0.2                             # finite speed (a lower bound: load only adds)
        assert "700.000 >NM" in sim.commands and "MONO-?DONE" in sim.commands
        mono.set_centre_wavelength(650e-9, wait=False)
        assert mono.is_moving()
        mono.wait_until_idle(5.0)
        assert not mono.is_moving()
        mono.set_grating(3)
        assert mono.get_grating() == 3
        assert mono.get_optics().groove_density_per_m == 1200e3
        assert mono.wavelengths(512)[256] == pytest.approx(650e-9, rel=1e-3)
    assert not mono.is_opened()


def test_wrong_link_setting_is_named():
    with ActonPty(echo=False) as sim:
        mono = ActonSpectrograph(sim.port, link="rs232", timeout_s=0.5)
        with pytest.raises(DeviceError, match="Acton spectrograph on /dev/.*echo"):
            mono.open()
        assert not mono.is_opened()


@pytest.mark.parametrize("fault, message", [("no_reply", "no reply"),
                                            ("garbage", "unreadable|no reply"),
                                            ("error", "refused"),
                                            ("disconnect", "lost|cannot")])
def test_faults_end_in_a_clear_error_and_close(fault, message):
    with ActonPty() as sim:
        mono = ActonSpectrograph(sim.port, timeout_s=0.5)
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match=message) as info:
            with mono:
                sim.inject(fault)
                mono.get_centre_wavelength()
        assert sim.port in str(info.value)
        # a hang guard, not a measurement: the 0.5 s reply timeout ends it, not a retry loop
        assert time.monotonic() - t0 < HANG_GUARD_S
        assert not mono.is_opened()


def test_unplugged_during_a_move_reported_within_2s():
    with ActonPty(scan_speed_m_per_s=1e-9) as sim:    # a 100 nm move takes 100 s
        with _open(sim) as mono:
            threading.Timer(0.3, sim.inject, ("disconnect",)).start()
            t0 = time.monotonic()
            with pytest.raises(DeviceError, match="lost"):
                mono.set_centre_wavelength(700e-9, timeout_s=300)
            # "lost", not a timeout: found by the poll, long before the 100 s move or the
            # 300 s timeout would end
            assert time.monotonic() - t0 < HANG_GUARD_S
            assert not mono.is_opened()


def test_out_of_range_target_refused_before_sending():
    with ActonPty() as sim, _open(sim) as mono:
        with pytest.raises(DeviceError, match="outside"):
            mono.set_centre_wavelength(9e-6)


def test_parse_gratings_marks_the_active_one():
    text = " 1  150 g/mm BLZ=  500NM\r\n\x1a2  1200 g/mm BLZ=  750NM\r\n 3  Not Installed"
    gratings, active = parse_gratings(text)
    assert [g.index for g in gratings] == [1, 2] and active == 2
    assert gratings[1].groove_density_per_m == 1.2e6 and gratings[1].blaze == "750NM"
