"""The SAC behavior-policy trainer: bit-identical resume, medium/expert snapshots, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from obd.collect.__main__ import main
from obd.collect.behavior import load_behavior_policy
from obd.collect.sac import SACConfig, SACTrainer

TINY = dict(task="hopper", total_steps=360, start_steps=60, batch_size=16, hidden=16, update_every=2,
            eval_every=10**9, checkpoint_every=60, seed=3)


pytestmark = pytest.mark.usefixtures("one_thread")  # SAC runs are bit-exact with one thread


def _final_state(trainer: SACTrainer) -> dict[str, np.ndarray]:
    state = {k: v.copy() for k, v in trainer.buffer.state().items()}
    for name, module in (("actor", trainer.actor), ("critic", trainer.critic), ("target", trainer.target)):
        state.update({f"{name}.{k}": v.numpy().copy() for k, v in module.state_dict().items()})
    state["log_alpha"] = trainer.log_alpha.detach().numpy().copy()
    return state


def test_killed_and_resumed_run_is_bit_identical(tmp_path, monkeypatch):
    straight = SACTrainer(SACConfig(**TINY), tmp_path / "straight", policy_dir=tmp_path)
    straight.train(progress=False)
    expected = _final_state(straight)

    calls = {"n": 0}
    save = SACTrainer.save_checkpoint

    def save_then_die(self, *args, **kwargs):
        save(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed right after the third checkpoint, mid-run

    monkeypatch.setattr(SACTrainer, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        SACTrainer(SACConfig(**TINY), tmp_path / "killed", policy_dir=tmp_path).train(progress=False)
    monkeypatch.setattr(SACTrainer, "save_checkpoint", save)
    resumed = SACTrainer(SACConfig(**TINY), tmp_path / "killed", policy_dir=tmp_path)
    resumed.load_checkpoint()
    assert 0 < resumed.step < TINY["total_steps"]
    resumed.train(progress=False)
    got = _final_state(resumed)
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_medium_and_expert_snapshots(tmp_path, monkeypatch):
    cfg = SACConfig(**{**TINY, "eval_every": 60, "total_steps": 300})
    trainer = SACTrainer(cfg, tmp_path / "run", policy_dir=tmp_path / "policies")
    # scripted evaluation: medium band at step 120 (not confirmed at 60), expert from 240 on
    scores = {60: (30.0, 50.0), 120: (30.0, 31.0), 180: (50.0, 50.0), 240: (85.0, 90.0), 300: (84.0, 86.0)}
    seen: list[int] = []

    def scripted(episodes, seed):
        first = trainer.step not in seen
        seen.append(trainer.step)
        return scores[trainer.step][0 if first else 1]

    monkeypatch.setattr(trainer, "evaluate", scripted)
    result = trainer.train(progress=False)
    assert result["medium"] == {"score": 31.0, "step": 120, "replay_size": 120}
    assert result["expert"] == {"score": 90.0, "step": 240}  # 300's confirmed 86 does not beat 90
    medium, meta = load_behavior_policy(tmp_path / "policies" / "behavior_medium.pt")
    assert meta["level"] == "medium" and meta["replay_size"] == 120 and meta["env_steps"] == 120
    _, meta = load_behavior_policy(tmp_path / "policies" / "behavior_expert.pt")
    assert meta["level"] == "expert" and meta["normalized_score"] == 90.0 and meta["env_steps"] == 240
    assert meta["sac_config"]["hidden"] == 16 and meta["config_changes"] == []
    assert [h["step"] for h in result["history"]] == [60, 120, 180, 240, 300]
    assert medium.act(np.zeros(11), deterministic=True).shape == (3,)


def test_train_behavior_cli_resumes(tmp_path, capsys):
    args = ["train-behavior", "hopper", "--out", str(tmp_path / "run"), "--policy-dir", str(tmp_path),
            "--total-steps", "120", "--start-steps", "60", "--batch-size", "16", "--hidden", "16",
            "--checkpoint-every", "60", "--eval-every", "1000000"]
    assert main(args) == 0
    assert (tmp_path / "run" / "checkpoint.pt").is_file() and (tmp_path / "run" / "buffer.npz").is_file()
    args[args.index("--total-steps") + 1] = "180"
    assert main([*args, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "resumed" in out and "at step 120" in out
    args[args.index("--total-steps") + 1] = "240"
    assert main([*args, "--resume", "--update-every", "1"]) == 0
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["config_changes"] == [{"step": 180, "changed": {"update_every": [2, 1]}}]
    assert len(np.load(tmp_path / "run" / "buffer.npz")["rewards"]) == 240
