"""``deidstream build-mapper`` on a few SFHQ photos: the judged table, a trained M_c that loads and ranks, its
provenance; and its errors."""

from __future__ import annotations

import json

import numpy as np
from conftest import shared_file

from deidstream.cli import main
from deidstream.engine.generator.compose import default_composer
from deidstream.modelbuild.mapper_table import MapperTable
from deidstream.networks.mapper import FEATURES, IdentityMapper


def test_a_quick_build_judges_every_same_sex_donor_and_writes_weights_that_rank(tmp_path, capsys):
    data = shared_file("donors/synthetic_sfhq").parents[1]
    out, table = tmp_path / "mapper.npz", tmp_path / "table.npz"
    assert main(["build-mapper", "--data", str(data), "--limit", "3", "--steps", "30", "--workers", "1",
                 "--no-validate", "--table", str(table), "--output", str(out)]) == 0
    judged = MapperTable.load(table)
    bank = default_composer().bank
    assert len(judged.embedding) == 6  # 3 photos and 3 of their faces re-rendered as donors
    for row, female in zip(judged.distance, judged.female):
        same_sex = bank.sex == ("f" if female >= 0.5 else "m")
        assert np.all(np.isfinite(row[same_sex])) and np.all(np.isnan(row[~same_sex]))
        assert 0.0 < np.nanmin(row) < np.nanmax(row) < 2.0
    mapper = IdentityMapper.load(out)
    assert mapper.fits(bank.names)
    provenance = json.loads(out.with_suffix(".json").read_text())
    assert provenance["table"]["subjects"] == 6 and provenance["training"]["settings"]["steps"] == 30
    assert json.loads(capsys.readouterr().out)["built_by"] == "deidstream build-mapper"
    predicted = mapper.distances(np.zeros((2, FEATURES), np.float32))
    assert predicted.shape == (2, len(bank)) and np.all(np.isfinite(predicted))
    # trained again from the table alone (no render), its provenance kept
    assert main(["build-mapper", "--table", str(table), "--steps", "30", "--no-validate",
                 "--output", str(tmp_path / "again.npz")]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["data"]["subjects"] == 6
    table.with_suffix(".json").unlink()  # a table without its sidecar still trains, and says where it came from
    assert main(["build-mapper", "--table", str(table), "--steps", "30", "--no-validate",
                 "--output", str(tmp_path / "third.npz")]) == 0
    assert json.loads((tmp_path / "third.json").read_text())["data"] == {"read_from": "table.npz"}


def test_build_mapper_says_what_is_wrong(tmp_path, capsys):
    assert main(["build-mapper", "--data", str(tmp_path), "--output", str(tmp_path / "m.npz")]) == 1
    assert "synthetic_sfhq: not found" in capsys.readouterr().err
    assert main(["build-mapper", "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err
