"""A PI piezo stage (E-727, E-712, E-709 ... controllers) through ``pipython``'s GCS commands.

The controller is driven with the GCS 2.0 commands of its manual (PI "GCS 2.0 commands", e.g.
the E-727 user manual E727T0005, section "Command reference"): ``SVO`` switches the closed loop
on, ``MOV`` sets absolute targets, ``POS?`` reads the sensor positions, ``ONT?`` tells whether
each axis is on target, ``TMN?``/``TMX?`` the travel range, ``ERR?`` the error code (pipython
asks ``ERR?`` after every command and raises ``GCSError`` for a non-zero code). Positions are
in the controller's unit, µm for PI piezo stages (``units_per_m``).

Use::

    with PIStage(connection="usb", serial="0123456789") as stage:
        stage.move_to(x_m=50e-6, y_m=80e-6)         # waits until on target
        stage.get_position()                         # {"x": 5.0e-05, "y": 8.0e-05, "z": ...}

Every failure is a :class:`~spad.errors.DeviceError` naming the stage: pipython missing, no
controller, an axis the controller does not have, a GCS error code (with PI's text for it),
no answer within the timeout, a position that does not settle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from spad.drivers.interfaces.stage import AXES, StageInterface

from spad.errors import DeviceError

CONNECTIONS = ("usb", "tcp", "rs232")


class PIStage(StageInterface):
    """A PI stage (see the module docstring).

    Parameters
    ----------
    connection
        ``"usb"`` (``serial``: the controller's serial number, "" for the only one),
        ``"tcp"`` (``address``, ``ip_port``) or ``"rs232"`` (``port``, ``baud``).
    axes
        The controller's axis identifiers for x, y (and z), e.g. ``("1", "2", "3")``.
    units_per_m
        Controller units per metre (1e6: µm).
    timeout_ms
        pipython's timeout for one answer.
    poll_s
        Interval of the ``ONT?`` queries while waiting for a move to settle.
    gateway
        A pipython gateway to talk through instead of connecting (the simulator's
        :class:`spad.simulators.pi_gcs.GcsGateway`).
    """

    def __init__(self, connection: str = "usb", *, serial: str = "", address: str = "",
                 ip_port: int = 50000, port: str = "", baud: int = 115200,
                 axes: tuple[str, ...] = ("1", "2", "3"), units_per_m: float = 1e6,
                 timeout_ms: int = 1000, poll_s: float = 0.002, gateway: Any = None,
                 name: str | None = None) -> None:
        if connection not in CONNECTIONS:
            raise ValueError(f"connection must be one of {CONNECTIONS}, not {connection!r}")
        if not 2 <= len(axes) <= 3:
            raise ValueError(f"give the controller's axes for x, y (and z), not {axes!r}")
        self.connection = connection
        self.serial, self.address, self.ip_port = serial, address, int(ip_port)
        self.port, self.baud = port, int(baud)
        self.ids = dict(zip(AXES, (str(a) for a in axes), strict=False))
        self.units = float(units_per_m)
        self.timeout_ms = int(timeout_ms)
        self.poll_s = float(poll_s)
        self._gateway = gateway
        where = {"usb": f"USB {serial or '(first)'}", "tcp": f"{address}:{ip_port}",
                 "rs232": port}[connection]
        self.name = name or ("PI stage (simulated GCS)" if gateway is not None
                             else f"PI stage on {where}")
        self._dev: Any = None
        self._range: dict[str, tuple[float, float]] = {}

    # -- the GCS calls ----------------------------------------------------------------------

    def _gcs(self, what: str, fn: Callable[[], Any]) -> Any:
        """One pipython call; its GCSError becomes a DeviceError naming the stage."""
        from pipython import GCSError

        if self._dev is None:
            raise DeviceError(self.name, "not open")
        try:
            return fn()
        except GCSError as exc:
            code = getattr(exc, "val", None)
            raise DeviceError(self.name, f"{what}: GCS error {code}: {exc}") from None
        except OSError as exc:
            raise DeviceError(self.name, f"{what}: connection lost ({exc})") from None

    def open(self) -> None:
        if self._dev is not None:
            return
        try:
            from pipython import GCSDevice, GCSError
        except ImportError:
            raise DeviceError(self.name, "PI's Python library is not installed "
                                         "(pip install pipython)") from None
        try:
            gateway = self._gateway
            # TCP and RS-232 through pipython's own Python gateways; USB through PI's GCS 2
            # library (libpi_pi_gcs2 / PI_GCS2_DLL), as PI installs it with its drivers
            if gateway is None and self.connection == "tcp":
                from pipython.pidevice.interfaces.pisocket import PISocket

                class Socket(PISocket):
                    """PISocket closed once: pipython closes it again when the device is
                    garbage-collected, and a second shutdown of the socket raises."""

                    def close(self) -> None:
                        if getattr(self, "_connected", False):
                            super().close()

                gateway = Socket(host=self.address, port=self.ip_port)
            elif gateway is None and self.connection == "rs232":
                from pipython.pidevice.interfaces.piserial import PISerial
                gateway = PISerial(port=self.port, baudrate=self.baud)
            dev = GCSDevice(gateway=gateway) if gateway is not None else GCSDevice()
            if gateway is None:
                dev.ConnectUSB(serialnum=self.serial)
            dev.timeout = self.timeout_ms
        except (GCSError, OSError) as exc:
            raise DeviceError(self.name, f"cannot connect: {exc}") from None
        self._dev = dev
        try:
            self._init_axes()
        except BaseException:
            self.close()
            raise

    def _init_axes(self) -> None:
        dev = self._dev
        have = self._gcs("SAI?", dev.qSAI)
        missing = [a for a in self.ids.values() if a not in have]
        if missing:
            raise DeviceError(self.name, f"the controller has no axis {', '.join(missing)} "
                                         f"(it has {', '.join(have)})")
        ids = list(self.ids.values())
        self._gcs("SVO", lambda: dev.SVO(ids, [True] * len(ids)))
        lo = self._gcs("TMN?", lambda: dev.qTMN(ids))
        hi = self._gcs("TMX?", lambda: dev.qTMX(ids))
        self._range = {ax: (float(lo[i]) / self.units, float(hi[i]) / self.units)
                       for ax, i in self.ids.items()}

    def close(self) -> None:
        dev, self._dev = self._dev, None
        if dev is not None:
            try:
                dev.close()        # pipython: closes the connection (and its gateway)
            except Exception:  # noqa: BLE001 - closing a link that failed must not raise
                pass

    def is_opened(self) -> bool:
        return self._dev is not None

    # -- the interface ----------------------------------------------------------------------

    @property
    def axes(self) -> tuple[str, ...]:
        return tuple(self.ids)

    def get_range(self) -> dict[str, tuple[float, float]]:
        if self._dev is None:
            raise DeviceError(self.name, "not open")
        return dict(self._range)

    def get_position(self) -> dict[str, float]:
        pos = self._gcs("POS?", lambda: self._dev.qPOS(list(self.ids.values())))
        return {ax: float(pos[i]) / self.units for ax, i in self.ids.items()}

    def move_to(self, x_m: float | None = None, y_m: float | None = None,
                z_m: float | None = None, wait: bool = True, timeout_s: float = 5.0) -> None:
        target = {a: float(v) for a, v in zip(AXES, (x_m, y_m, z_m), strict=True)
                  if v is not None}
        self.check_target(target)
        ids = [self.ids[a] for a in target]
        values = [v * self.units for v in target.values()]
        self._gcs("MOV", lambda: self._dev.MOV(ids, values))
        if wait:
            self.wait_settled(timeout_s)

    def is_settled(self) -> bool:
        ont = self._gcs("ONT?", lambda: self._dev.qONT(list(self.ids.values())))
        return all(bool(ont[i]) for i in self.ids.values())

    def wait_settled(self, timeout_s: float = 5.0) -> None:
        end = time.monotonic() + timeout_s
        while not self.is_settled():
            if time.monotonic() >= end:
                pos = self.get_position()
                raise DeviceError(self.name, f"position did not settle within {timeout_s:g} s "
                                  "(at " + ", ".join(f"{a} {v * 1e6:.3f} µm"
                                                     for a, v in pos.items()) + ")")
            time.sleep(self.poll_s)
