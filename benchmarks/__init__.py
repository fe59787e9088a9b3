"""gpuimg benchmarks against nibabel: see ``benchmarks/README.md`` (``python3 -m benchmarks.run``)."""
