"""Plugins: discovery and decisions (`catalog`, core), loading and hook calls (`host`, runtime), the
hooks (`hookspecs`), what hooks return (`spec`) and what a plugin may use (`context`). Plugin authors
import from `nox_ui.plugin` only; docs/plugins.md is their guide."""
