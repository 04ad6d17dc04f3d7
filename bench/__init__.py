"""The Nox UI benchmark harness (`make bench`), side by side with Glances.

Not part of the test suite. Every server it starts listens on 127.0.0.1 only, every load loop is
bounded in time, and every process it starts is ended by its id when the run ends (or fails).
The measurements and how they are taken are described in docs/benchmarks.md, which a run rewrites.
"""
