"""What runs on a device without vitprune installed: build an engine, time it, describe the machine, write files.

Standard library, numpy and TensorRT only (TensorRT and the CUDA runtime are
reached inside functions, CUDA through ctypes); nothing here imports the rest
of vitprune, and it runs on the Python of JetPack 6 (3.10). The package imports
these modules, and a device bundle ships this folder as it is (``portable/``),
where ``build.sh`` and ``profile.sh`` run ``python3 -m portable.trt_build`` and
``python3 -m portable.trt_measure``.
"""
