"""Workstation-side export: int8 TFLite conversion, parity checks, metadata JSON."""
