"""``fastscratch.sklearn``: the scikit-learn estimator's public path
(``from fastscratch.sklearn import ScratchMLPClassifier``).  This name *is* the module
:mod:`fastscratch.integrations.sklearn` (the module replaces itself below, as the import
system allows), so there is one module under two names."""

import sys

from .integrations import sklearn as _sklearn

sys.modules[__name__] = _sklearn
