"""The SpectraPro serial command protocol: one command, one reply ending in ``ok``.

From the Acton SpectraPro operating manual (SP-2150/2300/2500, "Remote operation"): 9600 baud,
8 data bits, no parity, 1 stop bit; a parameter comes before its command (``546.074 GOTO``);
every command ends with a carriage return; the controller answers with what was asked followed
by `` ok`` and CR LF. Over RS-232 the controller echoes each character it receives before its
answer; over USB it does not. A command it does not understand is answered with ``?``.

:class:`ActonLink` sends a command and returns the text of the answer, with the echo removed
and ``ok`` stripped; every failure is an :class:`~spad.drivers.acton.errors.ActonError` naming the
port.
"""

from __future__ import annotations

import time
from typing import Any

from spad.drivers.acton.errors import ActonDisconnectedError, ActonError, ActonTimeoutError

try:  # pyserial lets termios errors through on POSIX when a pty or USB adapter vanishes
    import termios
    _TTY_ERRORS: tuple[type[BaseException], ...] = (termios.error,)
except ImportError:  # Windows
    _TTY_ERRORS = ()

BAUD_RATE = 9600
TERMINATOR = b"\r"
OK = b"ok"


class ActonLink:
    """A serial connection to a SpectraPro.

    Parameters
    ----------
    port
        Serial port name (``/dev/ttyUSB0``, ``COM3``).
    echo
        True for an RS-232 link (the controller echoes commands), False for USB.
    timeout_s
        Longest wait for one reply.
    name
        Device name used in errors.
    """

    def __init__(self, port: str, echo: bool, timeout_s: float, name: str) -> None:
        self.port = port
        self.echo = bool(echo)
        self.timeout_s = float(timeout_s)
        self.name = name
        self._serial: Any = None

    def open(self) -> None:
        if self._serial is not None:
            return
        try:
            import serial
        except ImportError:  # pragma: no cover - pyserial is a dependency
            raise ActonError(self.name, "pyserial is not installed (pip install pyserial)"
                             ) from None
        try:
            # Short read timeout: the reply loop below enforces the overall deadline.
            self._serial = serial.Serial(self.port, BAUD_RATE, bytesize=8, parity="N",
                                         stopbits=1, timeout=0.05, write_timeout=1.0)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ActonError(self.name, f"cannot open the serial port ({exc})") from None

    def close(self) -> None:
        ser, self._serial = self._serial, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # noqa: BLE001 - closing a dead link must not raise
                pass

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def query(self, command: str, timeout_s: float | None = None) -> str:
        """Send ``command`` and return its answer (without echo and ``ok``).

        Raises
        ------
        ActonTimeoutError
            No ``ok`` within the timeout.
        ActonError
            The controller answered ``?`` (command refused) or sent unreadable bytes.
        ActonDisconnectedError
            The port failed (device unplugged).
        """
        import serial

        if self._serial is None:
            raise ActonError(self.name, "not open")
        timeout = self.timeout_s if timeout_s is None else timeout_s
        raw = command.encode("ascii") + TERMINATOR
        buf = b""
        try:
            self._serial.reset_input_buffer()
            self._serial.write(raw)
            deadline = time.monotonic() + timeout
            while True:
                buf += self._serial.read(max(1, self._serial.in_waiting))
                if buf.rstrip().endswith(OK) and buf.endswith(b"\n"):
                    break
                if self._refused(buf, raw):
                    raise ActonError(self.name, f"command {command!r} refused ('?')")
                if time.monotonic() > deadline:
                    got = f"; got {buf[:60]!r}" if buf else ""
                    raise ActonTimeoutError(self.name, f"no reply to {command!r} within "
                                                       f"{timeout:g} s{got}")
        except (serial.SerialException, OSError, *_TTY_ERRORS) as exc:
            self.close()
            raise ActonDisconnectedError(self.name, f"serial link lost during {command!r} "
                                                    f"({exc})") from None
        return self._answer(buf, raw, command)

    def _strip_echo(self, buf: bytes, raw: bytes) -> bytes:
        echo = raw.rstrip(TERMINATOR)
        if not self.echo and buf.startswith(echo):
            return buf[len(echo):]      # a USB link set up to echo: harmless, drop it
        if self.echo:
            if not buf.startswith(echo):
                raise ActonError(self.name, f"expected the echo of {echo.decode()!r}, got "
                                            f"{buf[:60]!r} (is link = 'usb' right?)")
            buf = buf[len(echo):]
        return buf

    def _refused(self, buf: bytes, raw: bytes) -> bool:
        if not buf.endswith(b"\n"):
            return False
        try:
            body = self._strip_echo(buf, raw)
        except ActonError:
            return False
        return body.strip() == b"?"

    def _answer(self, buf: bytes, raw: bytes, command: str) -> str:
        body = self._strip_echo(buf, raw).rstrip()
        body = body[: -len(OK)]
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError:
            raise ActonError(self.name, f"unreadable reply to {command!r}: {buf[:60]!r}"
                             ) from None
        # The turret listing marks the active grating with a 0x1A arrow: keep it.
        if any((not ch.isprintable()) and ch not in "\r\n\x1a" for ch in text):
            raise ActonError(self.name, f"unreadable reply to {command!r}: {buf[:60]!r}")
        return text.strip(" \r\n")
