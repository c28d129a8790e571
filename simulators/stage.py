"""A simulated closed-loop piezo stage: the motion model and a stage behind the interface.

:class:`StageMotion` is the mechanics shared by :class:`SimulatedStage` (what the simulated rig
moves) and the GCS controller simulator :class:`spad.simulators.pi_gcs.GcsController` (what the
Physik Instrumente driver talks to): each axis moves to its target at a finite speed and is
"on target" once it has stayed within the settle window for the settle time, as a PI
controller's on-target state (ONT?) reports it. Time comes from a
:class:`~spad.simulators.instruments.WallClock` or a
:class:`~spad.simulators.instruments.ManualClock`.

A fault ``no_settle`` leaves the stage oscillating around its target, never on target.
"""

from __future__ import annotations

import math
import time

from spad.drivers.interfaces.stage import StageInterface
from spad.simulators.instruments import ManualClock, WallClock

from spad.errors import DeviceError

DEFAULT_RANGE_M = {"x": (0.0, 200e-6), "y": (0.0, 200e-6), "z": (0.0, 20e-6)}
"""Travel of a PInano-like three-axis piezo stage (200 x 200 x 20 µm)."""


class StageMotion:
    """Positions of a few axes that move at ``speed_m_per_s`` and settle after ``settle_s``.

    Parameters
    ----------
    ranges
        Travel per axis, (min, max) in metres; the axes start in the middle.
    speed_m_per_s
        Closed-loop slew speed.
    settle_s
        Time to settle within the window after arriving.
    clock
        The clock.
    """

    def __init__(self, ranges: dict[str, tuple[float, float]] | None = None,
                 speed_m_per_s: float = 5e-3, settle_s: float = 0.005,
                 clock: WallClock | ManualClock | None = None) -> None:
        self.ranges = dict(ranges or DEFAULT_RANGE_M)
        self.speed = float(speed_m_per_s)
        self.settle_s = float(settle_s)
        self.clock = clock or WallClock()
        now = self.clock.now() - self.settle_s       # settled in the middle at power-up
        # per axis: (t0, from, t_arrive, to)
        self._moves = {a: (now, (lo + hi) / 2, now, (lo + hi) / 2)
                       for a, (lo, hi) in self.ranges.items()}
        self.no_settle = False

    def move(self, axis: str, target_m: float) -> None:
        here = self.position(axis)
        now = self.clock.now()
        self._moves[axis] = (now, here, now + abs(target_m - here) / self.speed, float(target_m))

    def target(self, axis: str) -> float:
        return self._moves[axis][3]

    def position(self, axis: str) -> float:
        t0, a, t1, b = self._moves[axis]
        now = self.clock.now()
        if now >= t1 or t1 == t0:
            here = b
        else:
            here = a + (b - a) * (now - t0) / (t1 - t0)
        if self.no_settle:   # a loop that rings: 50 nm at 37 Hz around wherever it is
            here += 50e-9 * math.sin(2 * math.pi * 37.0 * now)
        return here

    def on_target(self, axis: str) -> bool:
        if self.no_settle:
            return False
        return self.clock.now() >= self._moves[axis][2] + self.settle_s


class SimulatedStage(StageInterface):
    """The stage of the simulated rig (x, y, z; see :class:`StageMotion`)."""

    def __init__(self, motion: StageMotion | None = None,
                 name: str = "simulated piezo stage") -> None:
        self.name = name
        self.motion = motion or StageMotion()
        self._open = False

    def _require_open(self) -> None:
        if not self._open:
            raise DeviceError(self.name, "not open")

    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        self._open = False

    def is_opened(self) -> bool:
        return self._open

    @property
    def axes(self) -> tuple[str, ...]:
        return tuple(self.motion.ranges)

    def get_range(self) -> dict[str, tuple[float, float]]:
        return dict(self.motion.ranges)

    def get_position(self) -> dict[str, float]:
        self._require_open()
        return {a: self.motion.position(a) for a in self.axes}

    def move_to(self, x_m: float | None = None, y_m: float | None = None,
                z_m: float | None = None, wait: bool = True, timeout_s: float = 5.0) -> None:
        self._require_open()
        target = {a: float(v) for a, v in zip(("x", "y", "z"), (x_m, y_m, z_m), strict=True)
                  if v is not None}
        self.check_target(target)
        for axis, value in target.items():
            self.motion.move(axis, value)
        if wait:
            self.wait_settled(timeout_s)

    def is_settled(self) -> bool:
        self._require_open()
        return all(self.motion.on_target(a) for a in self.axes)

    def wait_settled(self, timeout_s: float = 5.0) -> None:
        self._require_open()
        clock = self.motion.clock
        end = clock.now() + timeout_s
        while not self.is_settled():
            if clock.now() >= end:
                pos = self.get_position()
                raise DeviceError(self.name, "position did not settle within "
                                  f"{timeout_s:g} s (at " + ", ".join(
                                      f"{a} {pos[a] * 1e6:.3f} µm" for a in self.axes) + ")")
            clock.sleep(0.001)
            if isinstance(clock, WallClock):
                time.sleep(0)
