"""Nox UI: a self-hosted server administration and monitoring panel."""

__version__ = "0.1.0"
