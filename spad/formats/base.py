"""The reader interface every time-tag file format implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from types import TracebackType

from spad.photons import Measurement, Meta, PhotonChunk

DEFAULT_CHUNK_RECORDS = 1 << 22
"""Records per streamed chunk by default: 4 Mi records = 16 MiB of raw words."""


class Reader(ABC):
    """An open time-tag file.

    Attributes
    ----------
    meta
        The file's metadata (parsed when the reader is created).
    """

    meta: Meta

    @abstractmethod
    def chunks(self, n_records: int = DEFAULT_CHUNK_RECORDS) -> Iterator[PhotonChunk]:
        """Yield the photons in time order, ``n_records`` file records at a time.

        Memory stays bounded by the chunk size whatever the size of the file. Concatenating the
        chunks gives exactly what :meth:`read` returns.
        """

    def read(self) -> Measurement:
        """All photons and markers of the file."""
        return Measurement(PhotonChunk.concatenate(self.chunks(), self.meta.timing), self.meta)

    def close(self) -> None:  # noqa: B027 - readers that hold a handle override this
        """Release the file."""

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
