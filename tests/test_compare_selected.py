"""scripts/compare_selected.py on two tiny runs with set selection: each run's chosen and last sets scored and
cached, the per-dataset lines, and a run without selection refused in one line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from test_onpolicy import HopperTeacher, hopper_data, onpolicy_config
from test_selection import SELECT

from obd.distill.run import start
from obd.errors import ObdError

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("compare_selected", ROOT / "scripts" / "compare_selected.py")
compare_selected = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_selected)
torch.set_num_threads(1)


def test_selected_and_last_sets_are_scored_cached_and_paired(tmp_path, capsys):
    data, teacher = hopper_data(), HopperTeacher()
    for seed in (1, 2):
        start(onpolicy_config(**SELECT, seed=seed), tmp_path / f"s{seed}", data, teacher, progress=False)
    runs = [compare_selected.scored(tmp_path / f"s{s}", 2, 1, 0) for s in (1, 2)]
    assert [(r["dataset"], r["seed"], len(r["selected"]), len(r["last"])) for r in runs] == \
        [("hopper-tiny", 1, 2, 2), ("hopper-tiny", 2, 2, 2)]
    cache = tmp_path / "s1" / "selected.eval.json"
    stamp = cache.stat().st_mtime_ns
    assert compare_selected.scored(tmp_path / "s1", 2, 1, 0) == runs[0] and cache.stat().st_mtime_ns == stamp
    text = compare_selected.report(runs, {"hopper-tiny": 50.0})
    assert text.startswith(f"hopper-tiny: seed 1: step {runs[0]['step']}, ")
    assert "paired difference" in text and "share of the teacher over 1 datasets" in text

    args = [str(tmp_path / "s1"), str(tmp_path / "s2"), "--students", "2", "--episodes", "1"]
    assert compare_selected.main(args) == 0
    plain = start(onpolicy_config(**{**SELECT, "select.every": 0}), tmp_path / "plain", data, teacher, progress=False)
    assert "selected" not in plain.metadata
    assert capsys.readouterr().out.startswith("hopper-tiny: seed 1: step ")
    with pytest.raises(ObdError, match="not a set chosen by its rollouts"):
        compare_selected.scored(tmp_path / "plain", 2, 1, 0)
    assert compare_selected.main([str(tmp_path / "plain")]) == 2
    assert "not a set chosen by its rollouts" in capsys.readouterr().err
