"""The marimba path: pipeline, dataset format, recorder."""
