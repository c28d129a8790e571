"""A Physik Instrumente piezo controller (E-727-like) speaking GCS 2.0, for the PI driver.

:class:`GcsController` answers GCS command lines as the controller does (PI GCS 2.0 commands
manual, e.g. E727T0005 "E-727 Digital Multi-Channel Piezo Controller", the command reference):
a command is a mnemonic, then axis-value pairs, ended by LF; a query answers one line per axis,
``axis=value``, every line but the last ending in a space before the LF; an error sets the
controller's error code, which ``ERR?`` reports and clears. Positions are in µm (the controller's
units for piezo stages); the mechanics come from :class:`spad.simulators.stage.StageMotion`.

Commands: ``*IDN?``, ``CSV?``, ``SAI?``, ``SVO``, ``SVO?``, ``MOV``, ``MOV?``, ``POS?``,
``ONT?``, ``TMN?``, ``TMX?``, ``ERR?``, ``STP``. Others set error 2 (unknown command).

:class:`GcsGateway` puts the controller behind pipython's gateway interface (``send``, ``read``):
``pipython.GCSDevice(gateway=GcsGateway(ctrl))`` drives it with PI's own library, every command
as text, as over a USB or TCP link.

Faults (:meth:`GcsController.inject`): ``"no_reply"`` (commands are swallowed; pipython times
out), ``"error"`` (the next command sets the given error code), ``"no_settle"`` (the position
rings around the target and ONT? never reports on target).
"""

from __future__ import annotations

from spad.simulators.stage import StageMotion

FAULTS = ("no_reply", "error", "no_settle")

# GCS error codes (PI GCS 2.0 error list; pipython.gcserror names them too)
PARAM_SYNTAX = 1
UNKNOWN_COMMAND = 2
MOVE_WITHOUT_SERVO = 5
POS_OUT_OF_LIMITS = 7
INVALID_AXIS = 15
STOP = 10

AXIS_IDS = {"1": "x", "2": "y", "3": "z"}


class GcsController:
    """The controller: GCS lines in, answers out (see the module docstring).

    Parameters
    ----------
    motion
        The stage mechanics (axes ``x``, ``y``, ``z`` as GCS axes 1, 2, 3).
    idn
        What ``*IDN?`` answers.
    """

    def __init__(self, motion: StageMotion | None = None,
                 idn: str = "(c)2026 Physik Instrumente (PI) GmbH & Co. KG, E-727, 0123456789, "
                            "01.100") -> None:
        self.motion = motion or StageMotion()
        self.idn = idn
        self.axes = {k: v for k, v in AXIS_IDS.items() if v in self.motion.ranges}
        self.servo = dict.fromkeys(self.axes, False)
        self.error = 0
        self.faults: dict[str, int] = {}
        self.log: list[str] = []

    def inject(self, fault: str, code: int = MOVE_WITHOUT_SERVO) -> None:
        """Start a fault (see :data:`FAULTS`); ``code`` is the error of ``"error"``."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r} (use {', '.join(FAULTS)})")
        self.faults[fault] = code
        if fault == "no_settle":
            self.motion.no_settle = True

    def clear(self) -> None:
        """End every fault."""
        self.faults.clear()
        self.motion.no_settle = False

    def _set_error(self, code: int) -> None:
        if self.error == 0:          # the controller keeps the first error until ERR?
            self.error = code

    def _axes_of(self, args: list[str]) -> list[str] | None:
        ids = args or list(self.axes)
        if any(a not in self.axes for a in ids):
            self._set_error(INVALID_AXIS)
            return None
        return ids

    @staticmethod
    def _answer(pairs: list[tuple[str, str]]) -> str:
        return " \n".join(f"{a}={v}" for a, v in pairs) + "\n"

    def handle(self, line: str) -> str | None:
        """Execute one command line; returns the answer (``None`` for a command without one)."""
        self.log.append(line)
        if "no_reply" in self.faults:
            return None
        words = line.split()
        if not words:
            return None
        cmd, args = words[0].upper(), words[1:]
        if cmd == "ERR?":
            code, self.error = self.error, 0
            return f"{code}\n"
        if "error" in self.faults:
            self._set_error(self.faults["error"])
            return "\n" if cmd.endswith("?") else None
        m = self.motion
        if cmd == "*IDN?":
            return self.idn + "\n"
        if cmd == "CSV?":
            return "2.0\n"
        if cmd == "SAI?":
            return " \n".join(self.axes) + "\n"
        if cmd in ("POS?", "MOV?", "ONT?", "SVO?", "TMN?", "TMX?"):
            ids = self._axes_of(args)
            if ids is None:
                return "\n"
            values = {
                "POS?": lambda a: f"{m.position(self.axes[a]) * 1e6:.6f}",
                "MOV?": lambda a: f"{m.target(self.axes[a]) * 1e6:.6f}",
                "ONT?": lambda a: str(int(m.on_target(self.axes[a]))),
                "SVO?": lambda a: str(int(self.servo[a])),
                "TMN?": lambda a: f"{m.ranges[self.axes[a]][0] * 1e6:.6f}",
                "TMX?": lambda a: f"{m.ranges[self.axes[a]][1] * 1e6:.6f}",
            }[cmd]
            return self._answer([(a, values(a)) for a in ids])
        if cmd in ("SVO", "MOV"):
            if not args or len(args) % 2:
                self._set_error(PARAM_SYNTAX)
                return None
            pairs = list(zip(args[::2], args[1::2], strict=True))
            if any(a not in self.axes for a, _ in pairs):
                self._set_error(INVALID_AXIS)
                return None
            try:
                values = [float(v) for _, v in pairs]
            except ValueError:
                self._set_error(PARAM_SYNTAX)
                return None
            if cmd == "SVO":
                for (a, _), v in zip(pairs, values, strict=True):
                    self.servo[a] = bool(v)
                return None
            # the whole command is refused if any axis cannot move (as the controller does)
            for (a, _), v in zip(pairs, values, strict=True):
                if not self.servo[a]:
                    self._set_error(MOVE_WITHOUT_SERVO)
                    return None
                lo, hi = m.ranges[self.axes[a]]
                if not lo <= v * 1e-6 <= hi:
                    self._set_error(POS_OUT_OF_LIMITS)
                    return None
            for (a, _), v in zip(pairs, values, strict=True):
                m.move(self.axes[a], v * 1e-6)
            return None
        if cmd == "STP":
            for a in self.axes:
                m.move(self.axes[a], m.position(self.axes[a]))
            self._set_error(STOP)
            return None
        self._set_error(UNKNOWN_COMMAND)
        return "\n" if cmd.endswith("?") else None


class GcsGateway:
    """:class:`GcsController` behind pipython's gateway interface (``PIGateway``: ``send``,
    ``read``, ``timeout``, ``connected``): what ``GCSDevice(gateway=...)`` talks through."""

    def __init__(self, controller: GcsController, timeout_ms: int = 300) -> None:
        self.controller = controller
        self._timeout = int(timeout_ms)
        self._out = ""
        self._connected = True

    # pipython's gateway protocol ----------------------------------------------------------
    def __enter__(self) -> GcsGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __str__(self) -> str:
        return "GcsGateway(simulated E-727)"

    @classmethod
    def register_connection_status_changed_callback(cls, callback: object) -> None:
        """pipython registers a callback here; the simulated link never changes state."""

    @classmethod
    def unregister_connection_status_changed_callback(cls, callback: object) -> None:
        """See :meth:`register_connection_status_changed_callback`."""

    @property
    def timeout(self) -> int:
        return self._timeout

    def settimeout(self, value: int) -> int:
        self._timeout = int(value)
        return self._timeout

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def connectionid(self) -> int:
        return 0

    def send(self, msg: str) -> None:
        for line in msg.splitlines():
            answer = self.controller.handle(line)
            if answer is not None:
                self._out += answer

    def read(self) -> str:
        out, self._out = self._out, ""
        return out

    def flush(self) -> None:
        self._out = ""

    def close(self) -> None:
        self._connected = False

    def unload(self) -> None:
        """pipython calls this on some gateways when closing."""
