"""Accuracy: data sets, evaluation, pruning-aware fine-tuning, automatic rate adjustment (GAS)."""
