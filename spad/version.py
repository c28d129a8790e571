"""spad's version, in a module of its own so that the formats that write it into files need not
import the package (``spad/__init__.py`` imports the formats); it must equal ``version`` in
pyproject.toml."""

VERSION = "0.1.0"
