"""The sound path: pipeline, classify, recorder."""
