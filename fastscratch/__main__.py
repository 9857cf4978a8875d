"""``python -m fastscratch``: the same command line as ``fastscratch``."""

import sys

from .cli import main

sys.exit(main())
