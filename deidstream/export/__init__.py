"""ONNX / TensorRT export of the engine's per-frame networks.

Empty until the engine has networks to export (the generator issue): the fallback
anonymisers are OpenCV calls with nothing to export.
"""
