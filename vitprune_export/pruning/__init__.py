"""Pruning: models, schedules, scores, patching a timm ViT, the methods (pure tensor maths), MACs."""
