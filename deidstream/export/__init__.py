"""ONNX export of the networks the engine runs per frame or per person, and onnxruntime sessions for them.

Each exported file comes with a sidecar JSON: its input and output contract (so other tools can use it),
the opset, hashes of the file and of the weights it came from, and the largest difference to torch on a
parity check run at export time. E_id is exported now; the generator's networks join as they arrive.
"""
