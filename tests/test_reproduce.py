"""scripts/reproduce.py is a preset of obd.sweep: the paper's grid by default, every flag
replaceable, and bad input fails before Ray starts (the sweep itself is tested in tests/test_sweep.py)."""

from __future__ import annotations

import pytest
import ray

from obd.cli import parse_args
from obd.sweep.__main__ import build_parser


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("reproduce")


def test_preset_is_the_papers_grid_and_flags_replace_it(script):
    args = parse_args(build_parser(), script.preset_argv([]))
    assert args.datasets.split(",") == [f"{env}-{level}-v5" for env in ("halfcheetah", "hopper", "walker2d")
                                        for level in ("medium-replay", "medium", "medium-expert")]
    assert args.methods == "random,dbc,pbc,avpbc,sdw,bc,teacher" and args.seeds == "0,1,2,3,4"
    assert args.config == "paper_avpbc" and args.overrides == []
    args = parse_args(build_parser(), script.preset_argv(
        ["--datasets", "hopper-medium-v5", "outer_steps=100", "--seeds", "0", "eval.students=2"]))
    assert (args.datasets, args.seeds, args.overrides) == ("hopper-medium-v5", "0", ["outer_steps=100",
                                                                                   "eval.students=2"])


def test_bad_input_fails_before_ray(script, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray was started"))
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    assert script.main(["--methods", "dbc,nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert script.main(["--out", str(tmp_path / "x")]) == 2  # the paper's datasets are not built here
    assert "--datasets: 'halfcheetah-medium-replay-v5' not found" in capsys.readouterr().err
