"""Physik Instrumente (PI) piezo stages through PI's own Python library, pipython (GCS)."""

from spad.drivers.pi.stage import PIStage

__all__ = ["PIStage"]
