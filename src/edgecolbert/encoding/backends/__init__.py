"""Ways to run the backbone: torch (eager or compiled with TorchInductor) and ONNX Runtime."""
