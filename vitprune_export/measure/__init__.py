"""Measurement: one runner per backend, latency profiles, the results JSON, compare and plots."""
