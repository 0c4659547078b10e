"""The house's size limits, so the rooms stay readable (no module over 400 lines, no function over 80), and what the
product's own paths import."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "deidstream"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def test_no_module_is_over_400_lines_and_no_function_over_80():
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        name = path.relative_to(PACKAGE.parent)
        if source.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{name}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}:{node.lineno} {node.name}(): {lines} lines")
    assert not too_long, "\n".join(too_long)


def test_blur_mode_and_the_default_paths_import_no_torch():
    """torch takes about 1.3 s to import: blur mode and the live relay never run it, and a module the engine
    imports (M_c's numpy form beside its torch form) once made every command pay for it."""
    import subprocess
    import sys

    modules = ("deidstream.cli", "deidstream.api", "deidstream.pipelines.onepass", "deidstream.pipelines.twopass",
               "deidstream.pipelines.live", "deidstream.pipelines.live_surrogate", "deidstream.engine.natural_lock")
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr[-2000:]
