"""What every instrument has: a name for error messages, a connection, and ``with`` support."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Instrument(ABC):
    """Base of every instrument interface (camera, spectrograph, time tagger), real or simulated.

    ``with instrument:`` opens it and closes it again, also after an error, so a failed
    acquisition never leaves a device claimed.
    """

    name: str = "instrument"
    """Device name used in error messages."""

    @abstractmethod
    def open(self) -> None:
        """Connect (idempotent)."""

    @abstractmethod
    def close(self) -> None:
        """Stop what is running and release the connection (idempotent)."""

    @abstractmethod
    def is_opened(self) -> bool:
        """True while connected."""

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
