"""Fitting: measured curves, the optax engine, fits to targets and curves, sensitivity.

The public API is re-exported from `tlsjax`; the modules here are private."""
