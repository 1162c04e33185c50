"""Realizations over devices: meshes, sharded maps, disorder averages.

The public API is re-exported from `tlsjax`; the modules here are private."""
