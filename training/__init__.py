"""Workstation side of Say-and-See: datasets, augmentation, models, training CLIs and reports."""
