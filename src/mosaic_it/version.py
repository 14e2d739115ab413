"""The package version, in a module of its own so that any module can name it without importing
the package's lazy namespace (:mod:`mosaic_it`)."""

__version__ = "0.1.0"
