"""TensorRT engines from the exported ONNX files, cached per (model, TensorRT version, GPU).

Written against TensorRT 10's Python API (``tensorrt``: Builder, OnnxParser, IBuilderConfig with an
optimisation profile for the batch axis, fp16 where the GPU has fast fp16, a timing cache kept beside the
engines). TensorRT and a CUDA GPU are needed; without them :func:`available` says why and nothing here
runs. onnxruntime's TensorRT execution provider (``--providers tensorrt``) is the other way to TensorRT.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from deidstream.errors import ConfigError

log = logging.getLogger(__name__)
WORKSPACE_BYTES = 1 << 30


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """How to build one engine: the ONNX file, its batched input's name and per-item shape, batch range."""

    onnx: Path
    input_name: str
    item_shape: tuple[int, ...]
    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 32
    fp16: bool = True


def available() -> str | None:
    """None when TensorRT and a CUDA GPU are there, else why not (for a clear error or a test's skip)."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed (pip install tensorrt, on a machine with an NVIDIA GPU)"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU is visible to torch (TensorRT engines are built for a GPU)"
    return None


def engine_key(spec: EngineSpec) -> str:
    """What an engine depends on: the model's bytes, TensorRT's version, the GPU and the build settings."""
    import tensorrt as trt
    import torch

    digest = hashlib.sha256(spec.onnx.read_bytes()).hexdigest()[:16]
    gpu = torch.cuda.get_device_name(0).replace(" ", "_")
    settings = f"b{spec.min_batch}-{spec.opt_batch}-{spec.max_batch}{'-fp16' if spec.fp16 else ''}"
    return f"{spec.onnx.stem}-{digest}-trt{trt.__version__}-{gpu}-{settings}"


def build_engine(spec: EngineSpec, cache: Path) -> Path:
    """The serialized engine for ``spec`` under ``cache`` (built now if absent, with the shared timing cache)."""
    why = available()
    if why:
        raise ConfigError(f"cannot build a TensorRT engine: {why}")
    import tensorrt as trt

    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{engine_key(spec)}.engine"
    if path.is_file():
        return path
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch: the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(spec.onnx.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ConfigError(f"{spec.onnx}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if spec.fp16 and builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape(spec.input_name, (spec.min_batch, *spec.item_shape), (spec.opt_batch, *spec.item_shape),
                      (spec.max_batch, *spec.item_shape))
    config.add_optimization_profile(profile)
    timing_file = cache / "timing.cache"
    timing = config.create_timing_cache(timing_file.read_bytes() if timing_file.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ConfigError(f"{spec.onnx}: TensorRT could not build an engine (see its log above)")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(path)
    timing_tmp = timing_file.with_name(".timing.cache.tmp")
    timing_tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    timing_tmp.replace(timing_file)
    log.info("built the TensorRT engine %s", path.name)
    return path


class EngineRunner:
    """One engine on the GPU: ``run(batch)`` takes and returns torch CUDA tensors (inputs float32, contiguous)."""

    def __init__(self, path: Path, input_name: str, output_name: str) -> None:
        import tensorrt as trt
        import torch

        self._torch = torch
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise ConfigError(f"{path}: not an engine this TensorRT and GPU can run (rebuild it)")
        self._context = self._engine.create_execution_context()
        self._input, self._output = input_name, output_name
        self._stream = torch.cuda.Stream()

    def run(self, batch: object) -> object:
        torch = self._torch
        x = batch.contiguous()  # type: ignore[attr-defined]
        self._context.set_input_shape(self._input, tuple(x.shape))
        out = torch.empty(tuple(self._context.get_tensor_shape(self._output)), dtype=torch.float32, device=x.device)
        self._context.set_tensor_address(self._input, x.data_ptr())
        self._context.set_tensor_address(self._output, out.data_ptr())
        if not self._context.execute_async_v3(self._stream.cuda_stream):
            raise RuntimeError("TensorRT could not run the engine")
        self._stream.synchronize()
        return out
