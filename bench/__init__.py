"""`make bench`: the measurements behind every speed, latency and size claim in the README.

Modules: ``stats`` (the one timing helper and figure summaries), ``frontend``,
``models``, ``e2e`` (+ ``e2e_run``, the device process it launches),
``estimate`` (labelled Pi estimates), ``machine``, ``report``. Run
``python -m bench``; bench/README.md says what each figure means.
"""
