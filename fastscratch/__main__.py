"""``python -m fastscratch``: the same command line as ``fastscratch``."""

import sys

from .tools.cli import main

sys.exit(main())
