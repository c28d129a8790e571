"""A simulated Acton SpectraPro answering its serial protocol on a pseudo-terminal.

:class:`ActonPty` opens a pty pair and serves the slave side's name (:attr:`ActonPty.port`) as a
serial port: the Acton driver opens it with pyserial exactly as it would open ``/dev/ttyUSB0``,
and every byte goes over the real transport. The mechanics come from
:class:`spad.simulators.instruments.SimulatedSpectrograph` (moves take time proportional to the
distance, a grating change longer); the protocol is that of the SpectraPro manual: parameter
before command, CR-terminated, answers ending in `` ok`` CR LF, echo of each command on RS-232
(``echo=True``), ``?`` for a command it does not know.

Faults (:meth:`ActonPty.inject`): ``"no_reply"`` (commands are swallowed), ``"garbage"``
(unreadable bytes instead of an answer), ``"error"`` (every command answered ``?``),
``"disconnect"`` (the pty closes, as when the USB cable is pulled).

Use::

    with ActonPty(echo=False) as sim:
        with ActonSpectrograph(sim.port, link="usb") as mono:
            mono.set_centre_wavelength(600e-9)
"""

from __future__ import annotations

import os
import select
import threading
import tty
from collections.abc import Sequence

from spad.drivers.interfaces.spectrograph import Grating
from spad.simulators.instruments import DEFAULT_GRATINGS, SimulatedSpectrograph, WallClock

from spad.errors import DeviceError

FAULTS = ("no_reply", "garbage", "error", "disconnect")


class ActonPty:
    """A SpectraPro on a pseudo-terminal.

    Parameters
    ----------
    echo
        Echo every command before answering (RS-232 behaviour).
    gratings, centre_wavelength_m, scan_speed_m_per_s, grating_change_s
        Passed to :class:`SimulatedSpectrograph`.
    model, serial_number
        What ``MODEL`` and ``SERIAL`` answer.
    """

    def __init__(self, echo: bool = False, gratings: Sequence[Grating] = DEFAULT_GRATINGS,
                 centre_wavelength_m: float = 600e-9, scan_speed_m_per_s: float = 500e-9,
                 grating_change_s: float = 0.5, model: str = "SP-2-300i",
                 serial_number: str = "23001234") -> None:
        self.echo = bool(echo)
        self.model, self.serial_number = model, serial_number
        self.mono = SimulatedSpectrograph(gratings, centre_wavelength_m=centre_wavelength_m,
                                          scan_speed_m_per_s=scan_speed_m_per_s,
                                          grating_change_s=grating_change_s,
                                          clock=WallClock(), name="simulated Acton")
        self.mono.open()
        self.fault: str | None = None
        self.commands: list[str] = []
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="acton-pty", daemon=True)
        self._thread.start()

    # -- control ----------------------------------------------------------------------------

    def inject(self, fault: str | None) -> None:
        """Switch a fault on (one of :data:`FAULTS`) or off (``None``)."""
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r} (use {FAULTS})")
        self.fault = fault
        if fault == "disconnect":
            self._hang_up()

    def _hang_up(self) -> None:
        self._stop.set()
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self._master = self._slave = -1

    def close(self) -> None:
        """Stop serving and close the pty."""
        if not self._stop.is_set():
            self._hang_up()
        self._thread.join(timeout=2.0)

    def __enter__(self) -> ActonPty:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving ----------------------------------------------------------------------------

    def _serve(self) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self._master, 1024)
            except (OSError, ValueError):
                return
            buf += data
            while b"\r" in buf:
                line, buf = buf.split(b"\r", 1)
                reply = self._reply(line.decode("ascii", "replace").strip())
                if reply is None:
                    continue
                try:
                    os.write(self._master, reply)
                except OSError:
                    return

    def _reply(self, command: str) -> bytes | None:
        self.commands.append(command)
        if self.fault == "no_reply":
            return None
        if self.fault == "garbage":
            return b"\xff\xfe\x13#\x00@\r\n"
        echo = command.encode("ascii") if self.echo else b""
        if self.fault == "error":
            return echo + b" ?\r\n"
        try:
            answer = self._execute(command)
        except (DeviceError, ValueError):
            return echo + b" ?\r\n"
        return echo + (" " + answer if answer else "").encode("ascii") + b" ok\r\n"

    def _execute(self, command: str) -> str:
        mono = self.mono
        words = command.split()
        if not words:
            raise ValueError("empty command")
        cmd, arg = words[-1].upper(), words[0] if len(words) == 2 else None
        if len(words) > 2:
            raise ValueError(command)
        if cmd == "?NM" and arg is None:
            return f"{mono.get_centre_wavelength() * 1e9:.3f} nm"
        if cmd in ("GOTO", ">NM") and arg is not None:
            mono.set_centre_wavelength(float(arg) * 1e-9, wait=False)
            if cmd == "GOTO":
                mono.wait_until_idle(600.0)        # GOTO answers when the move is done
            return ""
        if cmd == "MONO-?DONE" and arg is None:
            return "0" if mono.is_moving() else "1"
        if cmd == "MONO-STOP" and arg is None:
            here = mono.get_centre_wavelength()
            mono._move = (mono.clock.now(), here, mono.clock.now(), here)
            return ""
        if cmd == "?GRATINGS" and arg is None:
            lines = []
            for g in mono.get_gratings():
                mark = "\x1a" if g.index == mono.get_grating() else " "
                lines.append(f"{mark}{g.index}  {g.groove_density_per_m / 1e3:.0f} g/mm "
                             f"BLZ=  {g.blaze}")
            return "\r\n" + "\r\n".join(lines) + "\r\n"
        if cmd == "?GRATING" and arg is None:
            return str(mono.get_grating())
        if cmd == "GRATING" and arg is not None:
            mono.set_grating(int(arg), wait=True, timeout_s=600.0)
            return ""
        if cmd == "?TURRET" and arg is None:
            return "1"
        if cmd == "MODEL" and arg is None:
            return self.model
        if cmd == "SERIAL" and arg is None:
            return self.serial_number
        raise ValueError(f"unknown command {command!r}")
