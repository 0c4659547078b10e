"""``deidstream export --out DIR``: write every exported network and print its parity with torch."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from deidstream.errors import DeidstreamError
from deidstream.export.onnx_export import OPSET, export_all

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deidstream export",
                                description="Write the engine's networks as ONNX files, each with a JSON contract "
                                            "(inputs, outputs, opset, hashes) and its parity with torch.")
    p.add_argument("--out", required=True, type=Path, help="folder for the .onnx and .json files")
    p.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    p.add_argument("--providers", nargs="+", default=["cpu"],
                   help="onnxruntime execution providers for the parity check: cpu, cuda, tensorrt, or full names")
    return p


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="deidstream: %(levelname)s: %(message)s")
    try:
        done = export_all(args.out, opset=args.opset, providers=tuple(args.providers))
    except DeidstreamError as exc:
        log.error("%s", exc)
        return 1
    for item in done:
        print(f"{item.name}: {item.onnx} ({item.onnx.stat().st_size / 1e6:.1f} MB), contract {item.sidecar.name}, "
              f"max |torch - onnxruntime| {item.max_abs_diff:.2e}")
    return 0
