"""``deidstream export``: E_id as an ONNX file that onnxruntime runs to torch's numbers on real faces, with
a contract others can build on; providers named clearly; nothing half-written."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch
from conftest import SAMPLE
from media import read_rgb

from deidstream.cli import main
from deidstream.config import EidConfig
from deidstream.errors import ConfigError
from deidstream.export.onnx_export import export_eid
from deidstream.export.runtime import resolve_providers, session
from deidstream.geometry.chips import chips_tensor
from deidstream.networks.eid import load_face_descriptor_net
from deidstream.networks.mapper import FEATURES, IdentityMapper
from deidstream.tracking.eid import EidRecognizer


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_eid(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def sample_chips() -> np.ndarray:
    """(n, 150, 150, 3) uint8 chips of the sample's woman, cut the product's way."""
    recognizer = EidRecognizer()
    chips = []
    for image in read_rgb(SAMPLE, limit=400)[::40]:
        faces = recognizer.detect(image)
        if faces:
            chips.append(recognizer.chips(image, [faces[0].landmarks])[0])
    assert len(chips) >= 6
    return np.stack(chips)


def test_onnxruntime_gives_torchs_descriptors_on_real_faces(exported, sample_chips):
    chips = chips_tensor(sample_chips)
    with torch.no_grad():
        expected = load_face_descriptor_net()(chips).numpy()
    run = session(exported.onnx)
    for batch in (chips[:1], chips):  # one face, and all at once: the batch axis is not fixed
        got = run.run(None, {"chips": np.ascontiguousarray(batch.numpy())})[0]
        assert got.shape == (len(batch), 128)
        assert np.abs(got - expected[:len(batch)]).max() < 1e-4
    assert exported.max_abs_diff < 1e-4


def test_the_contract_says_how_to_call_it(exported):
    contract = json.loads(exported.sidecar.read_text())
    assert contract["file"] == exported.onnx.name and contract["opset"] >= 13
    assert contract["inputs"] == [{"name": "chips", "dtype": "float32", "shape": ["N", 3, 150, 150],
                                   "meaning": contract["inputs"][0]["meaning"]}]
    assert "RGB, 0-255" in contract["inputs"][0]["meaning"]
    assert contract["outputs"][0]["name"] == "descriptors" and contract["outputs"][0]["shape"] == ["N", 128]
    assert contract["parity"]["max_abs_diff"] == exported.max_abs_diff
    assert len(contract["sha256"]) == 64 and len(contract["weights"]["sha256"]) == 64
    assert not list(exported.onnx.parent.glob(".*"))  # no half-written file left behind


def test_an_unknown_provider_names_the_available_ones():
    assert resolve_providers(["cpu"]) == ["CPUExecutionProvider"]
    with pytest.raises(ConfigError, match="'no-such-provider' is not available.*available: .*CPUExecutionProvider"):
        resolve_providers(["cpu", "no-such-provider"])


def test_the_command_writes_the_files_and_prints_parity(tmp_path, capsys):
    assert main(["export", "--out", str(tmp_path / "models")]) == 0
    printed = capsys.readouterr().out
    assert "eid:" in printed and "max |torch - onnxruntime|" in printed
    assert (tmp_path / "models" / "eid.onnx").stat().st_size > 20e6 and (tmp_path / "models" / "eid.json").is_file()
    assert "mapper:" in printed
    mapper = json.loads((tmp_path / "models" / "mapper.json").read_text())
    assert [i["name"] for i in mapper["inputs"]] == ["features"] and mapper["parity"]["max_abs_diff"] <= 1e-4
    # the ONNX file predicts what the engine's numpy pass predicts, for a real subject's features
    features = np.zeros((3, FEATURES), np.float32)
    features[:, :128] = np.random.default_rng(0).normal(0, 0.1, (3, 128))
    run = onnxruntime.InferenceSession(str(tmp_path / "models" / "mapper.onnx"), providers=["CPUExecutionProvider"])
    got = run.run(None, {"features": features})[0]
    assert np.abs(got - IdentityMapper.load().distances(features)).max() < 1e-4
    assert main(["export", "--out", str(tmp_path / "m2"), "--providers", "no-such-provider"]) == 1
    assert not (tmp_path / "m2").exists() or not list((tmp_path / "m2").iterdir())  # refused before writing


def test_the_product_gets_torchs_descriptors_from_onnxruntime(sample_chips, tmp_path, monkeypatch):
    """The default backend builds its ONNX file once into the cache (nothing downloaded) and describes faces
    as torch does; another cache folder, another build."""
    monkeypatch.setenv("DEIDSTREAM_CACHE", str(tmp_path / "cache"))
    fast = EidRecognizer(EidConfig("onnxruntime"))
    assert fast.name == "eid-onnxruntime" and len(list((tmp_path / "cache").rglob("eid.onnx"))) == 1
    reference = EidRecognizer(EidConfig("torch")).describe_chips(sample_chips)
    assert np.abs(fast.describe_chips(sample_chips) - reference).max() < 1e-4
    assert np.abs(fast.describe_chips(sample_chips[:1]) - reference[:1]).max() < 1e-4


def test_an_unavailable_provider_stops_the_run_before_any_output(tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code = main([str(SAMPLE), str(out), "--providers", "no-such-provider"])
    assert code != 0 and not out.exists()
    assert "no-such-provider" in capsys.readouterr().err


def test_a_tensorrt_engine_gives_torchs_descriptors(exported, sample_chips, tmp_path):
    from deidstream.export.tensorrt import EngineRunner, EngineSpec, available, build_engine

    why = available()
    if why:
        pytest.skip(f"TensorRT path not run here: {why}")
    spec = EngineSpec(exported.onnx, "chips", (3, 150, 150), fp16=False)
    path = build_engine(spec, tmp_path)
    assert build_engine(spec, tmp_path) == path  # cached: the same engine, not built again
    runner = EngineRunner(path, "chips", "descriptors")
    chips = chips_tensor(sample_chips)
    got = runner.run(chips.contiguous().cuda()).cpu().numpy()
    with torch.no_grad():
        expected = load_face_descriptor_net()(chips).numpy()
    assert np.abs(got - expected).max() < 1e-3
