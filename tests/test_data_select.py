"""Choosing a behavior policy among a SAC run's snapshots by its stochastic-rollout score."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from obd.collect.__main__ import main
from obd.collect.behavior import BehaviorActor, load_behavior_policy, save_behavior_policy
from obd.collect.sac import SACConfig, SACTrainer
from obd.collect.select_behavior import select
from obd.errors import ObdError

pytestmark = pytest.mark.usefixtures("one_thread")  # SAC runs are bit-exact with one thread


def _constant_snapshots(run: Path) -> None:
    """Near-deterministic constant-action hopper policies; their scores are 0.7, 4.7, 2.0, 1.9 in that order."""
    folder = run / "snapshots"
    folder.mkdir(parents=True)
    for k, c in enumerate([-1.0, 0.0, 0.5, 1.0]):
        actor = BehaviorActor(11, 3, 8)
        with torch.no_grad():
            actor.net[-1].weight.zero_()
            actor.net[-1].bias[:3] = c
            actor.net[-1].bias[3:] = -20.0
        step = (k + 1) * 100
        save_behavior_policy(folder / f"step_{step:07d}.pt", actor,
                             {"task": "hopper", "obs_dim": 11, "act_dim": 3, "hidden": 8, "env_steps": step,
                              "normalized_score": float(k), "replay_size": step})


def test_every_evaluation_leaves_a_snapshot(tmp_path):
    cfg = SACConfig(task="hopper", total_steps=120, start_steps=60, batch_size=16, hidden=16, eval_every=60,
                    eval_episodes=1, confirm_episodes=1, checkpoint_every=10**6)
    SACTrainer(cfg, tmp_path / "run", policy_dir=tmp_path / "policies").train(progress=False)
    files = sorted((tmp_path / "run" / "snapshots").glob("step_*.pt"))
    assert [f.name for f in files] == ["step_0000060.pt", "step_0000120.pt"]
    _, meta = load_behavior_policy(files[1])
    assert meta["env_steps"] == 120 and meta["replay_size"] == 120 and meta["level"] == "snapshot"


def test_select_takes_the_earliest_snapshot_in_band(tmp_path):
    _constant_snapshots(tmp_path)
    # 300 (2.04) and 400 (1.87) are both within 0.2 of 1.9; the earliest wins, not the closest
    chosen, table = select("hopper", tmp_path, target=1.9, tolerance=0.2, episodes=2, confirm_episodes=2)
    assert chosen.step == 300 and abs(chosen.stochastic - 2.04) < 0.1
    assert [r.step for r in table] == [100, 200, 300, 400]
    assert select("hopper", tmp_path, 1.9, 0.2, 2, 2, min_step=350)[0].step == 400
    with pytest.raises(ObdError, match="closest: step 200"):
        select("hopper", tmp_path, target=10.0, tolerance=1.0, episodes=2, confirm_episodes=2)


def test_select_behavior_cli_writes_a_policy_with_its_measurement(tmp_path, capsys):
    _constant_snapshots(tmp_path / "run")
    out = tmp_path / "behavior_medium.pt"
    assert main(["select-behavior", "hopper", "--run", str(tmp_path / "run"), "--target", "0.7",
                 "--tolerance", "0.2", "--episodes", "2", "--confirm-episodes", "2", "--out", str(out)]) == 0
    _, meta = load_behavior_policy(out)
    assert meta["level"] == "medium" and meta["snapshot"] == "step_0000100.pt" and meta["replay_size"] == 100
    assert abs(meta["stochastic_normalized_score"] - 0.67) < 0.05
    assert meta["selection"]["target"] == 0.7 and meta["stochastic_episodes"] == 2
    assert "<-" in capsys.readouterr().out
    assert main(["select-behavior", "hopper", "--run", str(tmp_path / "empty"), "--out", str(out)]) != 0


def test_a_snapshot_scores_the_same_alone_or_in_a_batch(tmp_path):
    from obd.collect.select_behavior import score_snapshots

    folder = tmp_path / "snapshots"
    folder.mkdir()
    for step in (100, 200):
        actor = BehaviorActor(11, 3, 8)  # random weights, stochastic: the noise matters
        save_behavior_policy(folder / f"step_{step:07d}.pt", actor,
                             {"task": "hopper", "obs_dim": 11, "act_dim": 3, "hidden": 8, "env_steps": step})
    both = score_snapshots("hopper", sorted(folder.glob("*.pt")), episodes=2, seed=3)
    alone = score_snapshots("hopper", [folder / "step_0000200.pt"], episodes=2, seed=3)
    assert both[1].stochastic == alone[0].stochastic
