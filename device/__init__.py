"""Say-and-See device package: everything that runs on the box.

Imports numpy, the TFLite runtime and hardware libraries only (never TensorFlow
proper); training imports ``device.frontend`` so there is one feature code path.
"""

__version__ = "0.1.0"
