"""A session at the microscope: a directory of particle files and a JSON-lines log.

Layout::

    SESSION/
        session.jsonl                       one JSON object per line, appended and flushed
        p001_20261202-031502.h5             particle files, named by particle and start time
        p002_20261202-031614.h5

Log lines have an ``event``: ``"start"`` (particle, file, time, the settings and instrument
states), ``"settings"`` (written when the settings differ from the last logged ones, so a crash
never loses them), ``"end"`` (particle, file, stop reason, errors, photons, recorded time and the
verdict with its evidence). A particle with a ``start`` and no ``end`` was cut off by a crash:
its file holds what was flushed. Opening an existing session directory resumes it: particle
names continue after the last one.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

LOG_NAME = "session.jsonl"


class Session:
    """A session directory (created if needed, resumed if it exists).

    Parameters
    ----------
    folder
        The directory.
    prefix
        Start of automatic particle names (``p001``, ``p002``, ...).
    """

    def __init__(self, folder: str | Path, prefix: str = "p") -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log_path = self.folder / LOG_NAME
        self.prefix = prefix
        self._last_settings: str | None = None
        for entry in self.entries():
            if entry.get("event") in ("start", "settings"):
                self._last_settings = json.dumps(entry.get("settings"), sort_keys=True)

    def entries(self) -> list[dict[str, Any]]:
        """Every log line so far (a line cut off by a crash is skipped)."""
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def particles(self) -> dict[str, dict[str, Any]]:
        """Per particle: its ``start`` entry merged with its ``end`` entry (if any)."""
        out: dict[str, dict[str, Any]] = {}
        for e in self.entries():
            if e.get("event") in ("start", "end"):
                out.setdefault(e["particle"], {}).update(e)
        return out

    def next_name(self) -> str:
        """The next free automatic particle name."""
        pattern = re.compile(rf"{re.escape(self.prefix)}(\d+)$")
        taken = [int(m.group(1)) for name in self.particles()
                 if (m := pattern.match(name))]
        taken += [int(m.group(1)) for p in self.folder.glob(f"{self.prefix}*_*.h5")
                  if (m := pattern.match(p.name.split("_")[0]))]
        return f"{self.prefix}{max(taken, default=0) + 1:03d}"

    def file_for(self, name: str) -> Path:
        """A new particle file named by particle and time."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"particle name {name!r}: use letters, digits, - and _")
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return self.folder / f"{name}_{stamp}.h5"

    def _append(self, entry: dict[str, Any]) -> None:
        entry = {"time": datetime.now().astimezone().isoformat(timespec="milliseconds"),
                 **entry}
        with open(self.log_path, "a") as f:
            f.write(json.dumps(entry, default=_default) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def log_settings(self, settings: dict[str, Any]) -> None:
        """Log the settings if they changed since the last logged ones."""
        text = json.dumps(settings, sort_keys=True, default=_default)
        if text != self._last_settings:
            self._append({"event": "settings", "settings": settings})
            self._last_settings = text

    def log_start(self, name: str, path: Path, acquisition: dict[str, Any]) -> None:
        self.log_settings(acquisition["settings"])
        self._append({"event": "start", "particle": name, "file": path.name, **acquisition})

    def log_end(self, name: str, path: Path, final: dict[str, Any],
                record: dict[str, Any] | None) -> None:
        self._append({"event": "end", "particle": name, "file": path.name, **final,
                      "verdict": None if record is None else record["classification"],
                      "g2_zero": None if record is None else record["g2_zero"],
                      "g2_zero_err": None if record is None else record["g2_zero_err"]})


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
