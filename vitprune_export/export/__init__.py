"""Export: PyTorch → static-shape ONNX, the fused ops and their plugin contract, fp16, rewrite."""
