"""Andor iXon EMCCD cameras through pylablib's ``Andor.AndorSDK2Camera``.

See :mod:`spad.drivers.andor.camera` for the driver and its rig-file example; errors are in
:mod:`spad.drivers.andor.errors`, the connection to the SDK in :mod:`spad.drivers.andor.sdk`.
"""

from spad.drivers.andor.camera import AndorCamera

__all__ = ["AndorCamera"]
