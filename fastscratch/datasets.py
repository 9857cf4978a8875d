"""``fastscratch.datasets``: the data sets' public path.  This name *is* the module
:mod:`fastscratch.io.datasets` (the module replaces itself below, as the import system
allows), so there is one module: patching or reading either name sees the same objects."""

import sys

from .io import datasets as _datasets

sys.modules[__name__] = _datasets
