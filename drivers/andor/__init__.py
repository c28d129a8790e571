"""Andor iXon EMCCD cameras through pylablib's ``Andor.AndorSDK2Camera``.

See :mod:`drivers.andor.camera` for the driver and its rig-file example; errors are in
:mod:`drivers.andor.errors`, the connection to the SDK in :mod:`drivers.andor.sdk`.
"""

from drivers.andor.camera import AndorCamera

__all__ = ["AndorCamera"]
