"""Tunneling-strength models C(E) and the standard-tunneling-model observables.

The public API is re-exported from `tlsjax`; the modules here are private."""
