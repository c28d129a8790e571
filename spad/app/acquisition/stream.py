"""Live acquisition: a time tagger's records as photon chunks, recorded while they stream.

The live path and replay share everything after this point: chunks from
:func:`live_chunks` go to the same accumulators and analyses as chunks from
``spad.open(path).chunks()``, and a recording made here replays to the same photons.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from spad.drivers.interfaces.tagger import TimeTagger
from spad.errors import DeviceError
from spad.formats.records import Decoder
from spad.photons import PhotonChunk


class ChunkSink(Protocol):
    """Where live chunks are recorded (``PtuWriter``, ``PhotonHdf5Writer``)."""

    def write(self, chunk: PhotonChunk) -> None: ...


def live_chunks(tagger: TimeTagger, duration_s: float, sink: ChunkSink | None = None
                ) -> Iterator[PhotonChunk]:
    """Run a measurement and yield its photons as they arrive.

    Parameters
    ----------
    tagger
        An opened, configured time tagger (real or simulated).
    duration_s
        Measurement time in seconds.
    sink
        Writer that records every chunk before it is yielded, so what was acquired is on disk
        even if the consumer fails.

    Yields
    ------
    PhotonChunk
        One per FIFO read that held records.
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be positive seconds, not {duration_s!r}")
    decoder = Decoder(tagger.record_type, tagger.timing)
    tagger.start(duration_s)
    try:
        while (words := tagger.read()) is not None:
            if words.size == 0:
                continue
            chunk = decoder.decode(words)
            if sink is not None:
                sink.write(chunk)
            yield chunk
    finally:
        tagger.stop()
    if decoder.n_invalid:
        raise DeviceError(tagger.name, f"{decoder.n_invalid} invalid records in the stream")
