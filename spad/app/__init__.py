"""The application layer: the ``spad`` command line, reports and live acquisition.

This is the top floor of the house. It is the only code (besides ``gui/``) that wires the
spine (``spad`` itself: photons, formats, the particle file, optics), the analyses
(``analysis``), the instruments (``drivers``) and the simulators (``simulators``) together.
Nothing below imports it: ``import spad`` never pulls in this package. See
``docs/architecture.md``.
"""
