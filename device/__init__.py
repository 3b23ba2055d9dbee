"""Say-and-See device package: everything that runs on the box.

Imports numpy, the TFLite runtime and hardware libraries only (never TensorFlow
proper); training imports ``device.frontend`` so there is one feature code path.
"""

import os as _os

__version__ = "0.1.0"

# Before numpy loads (importing the package runs this first): multi-threaded BLAS busy-waits on
# the pipelines' small matrix products and, with the other core busy, costs a whole core and
# 10x the latency (see `make bench`). setdefault: a user's explicit setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")
