"""Scripts that run on a device without vitprune installed (copied verbatim into a bundle).

They import only the standard library, numpy and TensorRT (plus the CUDA
runtime through ctypes), and run on the Python of JetPack 6 (3.10).
``vitprune build`` and the bundle share :mod:`.trt_build`; the bundle's
``profile.sh`` runs :mod:`.trt_measure`.
"""
