"""Ways to run the backbone: torch (eager or compiled with TorchInductor) and ONNX Runtime."""

# Here, not in the backend modules, so the command line can list the choices without importing torch.
BACKENDS: tuple[str, ...] = ("torch", "onnx")
QUANTIZATIONS: tuple[str, ...] = ("int8",)
