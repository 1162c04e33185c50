"""Imported first by `tlsjax/__init__.py`: in the `tlsjax` program only, Ctrl-C or SIGTERM
during the seconds of importing JAX ends the process with one line and status 130/143
(`tlsjax._interrupts.guard_program_start`); a library import changes nothing."""

from ._interrupts import guard_program_start

guard_program_start()
