"""`python -m tlsjax.cli ...`: the same as the `tlsjax` command."""

import sys

from ._main import main

sys.exit(main())
