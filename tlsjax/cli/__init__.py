"""The command line, `tlsjax <command>`: the top layer; nothing imports it."""

from ._main import build_parser as build_parser
from ._main import float_list as float_list
from ._main import main as main
