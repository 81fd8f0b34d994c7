"""Fitting active inference models to behaviour (see ``docs/fitting.md``)."""
