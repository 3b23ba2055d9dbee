"""`make demo` / `python -m demo`: the whole box on simulated hardware, scored against known truth.

A workstation tool beside ``bench/``: it drives ``device`` and scores with
``training.scoring``, so the box's own code never imports training code.
Modules: ``driver`` (phases, output folder, tables).
"""
