"""Matplotlib figures of the studies, fits and observables.

The public API is re-exported from `tlsjax`; the modules here are private."""
