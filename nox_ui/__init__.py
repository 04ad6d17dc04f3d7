"""Nox UI: a self-hosted server administration and monitoring panel."""

__version__ = "0.5.0"  # the one version number; pyproject.toml reads it (dynamic)
