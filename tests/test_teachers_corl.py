"""CORL Cal-QL checkpoint import: a checkpoint built here the way CORL writes one (``__main__.Scalar``)."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest
import torch
from torch import nn

from obd.data import Normalizer
from obd.errors import ObdError
from obd.teachers import Teacher, import_corl
from obd.teachers.__main__ import main as teacher_cli

torch.set_num_threads(1)
OBS, ACT, H = 11, 3, 32


class Scalar(nn.Module):
    """CORL's Scalar, pickled (like CORL's, defined in its script) as ``__main__.Scalar``."""

    def __init__(self, init_value: float):
        super().__init__()
        self.constant = nn.Parameter(torch.tensor(init_value, dtype=torch.float32))

    def forward(self) -> nn.Parameter:
        return self.constant


class CorlActor(nn.Module):
    """CORL's TanhGaussianPolicy (3 hidden layers), with its forward rules."""

    def __init__(self):
        super().__init__()
        self.base_network = nn.Sequential(nn.Linear(OBS, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU(),
                                          nn.Linear(H, H), nn.ReLU(), nn.Linear(H, 2 * ACT))
        self.log_std_multiplier = Scalar(1.3)
        self.log_std_offset = Scalar(-0.7)

    def mean_log_std(self, obs):
        mean, log_std = torch.split(self.base_network(obs), ACT, dim=-1)
        log_std = self.log_std_multiplier() * log_std + self.log_std_offset()
        return mean, torch.clamp(log_std, -20.0, 2.0)


def corl_critic() -> nn.Module:
    m = nn.Module()
    m.network = nn.Sequential(nn.Linear(OBS + ACT, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU(), nn.Linear(H, 1))
    return m


@pytest.fixture()
def corl_ckpt(tmp_path):
    torch.manual_seed(0)
    actor, c1, c2 = CorlActor(), corl_critic(), corl_critic()
    with torch.no_grad():
        actor.base_network[-1].bias[ACT:] += 0.5   # log-stds that differ from the defaults
    main_mod, had = sys.modules["__main__"], hasattr(sys.modules["__main__"], "Scalar")
    old = main_mod.__dict__.get("Scalar")
    Scalar.__module__ = "__main__"
    main_mod.Scalar = Scalar
    blob = {"actor": actor.state_dict(), "critic1": c1.state_dict(), "critic2": c2.state_dict(),
            "target_critic1": c1.state_dict(), "target_critic2": c2.state_dict(),
            "sac_log_alpha": Scalar(0.1), "cql_log_alpha": Scalar(1.0),   # CORL saves these modules whole
            "actor_optim": torch.optim.Adam(actor.parameters()).state_dict(), "total_it": 1000}
    path = tmp_path / "checkpoint_999999.pt"
    try:
        torch.save(blob, path)
    finally:
        Scalar.__module__ = __name__
        if had:
            main_mod.Scalar = old
        else:
            del main_mod.Scalar
    rng = np.random.default_rng(0)
    norm = Normalizer(rng.normal(size=OBS), rng.uniform(0.5, 2.0, size=OBS))
    return path, blob, actor, (c1, c2), norm


def test_plain_weights_only_load_fails_on_main_scalar(corl_ckpt):
    path = corl_ckpt[0]
    assert "__main__.Scalar" in torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    with pytest.raises(pickle.UnpicklingError, match="__main__.Scalar"):
        torch.load(path, weights_only=True)


def test_corl_import_reproduces_actor_and_critic(corl_ckpt, tmp_path):
    path, _, actor, (c1, c2), norm = corl_ckpt
    teacher = import_corl(path, "hopper", norm, device="cpu")
    raw = np.random.default_rng(1).normal(size=(64, OBS)).astype(np.float32) * 3
    s = torch.from_numpy(np.asarray(norm.normalize(raw), dtype=np.float32))
    mean, log_std = actor.mean_log_std(s)
    assert torch.equal(teacher.act(raw), torch.tanh(mean))
    m, std = teacher.mean_std(raw)
    assert torch.equal(m, mean) and torch.allclose(std, log_std.exp(), rtol=1e-6, atol=0)
    a = torch.rand(64, ACT) * 2 - 1
    q1 = c1.network(torch.cat([s, a], -1)).squeeze(-1)
    assert torch.equal(teacher.q(raw, a), q1)
    assert not torch.allclose(teacher.q(raw, a), c2.network(torch.cat([s, a], -1)).squeeze(-1))
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(64, ACT, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(teacher.sample(raw, g), torch.tanh(mean + log_std.exp() * noise), atol=1e-6)
    # the imported teacher survives its own file format
    teacher.save(tmp_path / "t.pt")
    again = Teacher.load(tmp_path / "t.pt", device="cpu")
    assert torch.equal(again.act(raw), teacher.act(raw)) and torch.equal(again.q(raw, a), teacher.q(raw, a))
    assert again.metadata["algo"] == "corl-calql" and again.task == "hopper"
    assert again.state()["arch"]["actor"]["hidden"] == [H, H, H]


def _mutated(corl_ckpt, tmp_path, edit):
    path, blob, *_ = corl_ckpt
    new = {k: (dict(v) if isinstance(v, dict) else v) for k, v in blob.items() if k in ("actor", "critic1", "critic2")}
    edit(new)
    out = tmp_path / "bad.pt"
    torch.save(new, out)
    return out


@pytest.mark.parametrize("edit,message", [
    (lambda b: b.pop("critic2"), "missing key 'critic2'"),
    (lambda b: b["actor"].pop("base_network.4.bias"), "actor: missing tensor 'base_network.4.bias'"),
    (lambda b: b["actor"].pop("log_std_offset.constant"), "missing scalar tensor 'log_std_offset.constant'"),
    (lambda b: b["actor"].__setitem__("base_network.2.weight", torch.zeros(H, H + 1)),
     r"tensor 'base_network.2.weight' has shape \(32, 33\)"),
    (lambda b: b["critic1"].__setitem__("network.2.weight", torch.zeros(H + 2, H)),
     "critic1"),
    (lambda b: b["critic1"].__setitem__("network.0.weight", torch.zeros(H, OBS + ACT + 1)),
     r"expected input 14 \(state\+action\)"),
])
def test_corl_import_rejects_bad_checkpoints(corl_ckpt, tmp_path, edit, message):
    bad = _mutated(corl_ckpt, tmp_path, edit)
    with pytest.raises(ObdError, match=message):
        import_corl(bad, "hopper", corl_ckpt[4])


def test_corl_import_rejects_wrong_task_and_normalizer(corl_ckpt):
    path, *_, norm = corl_ckpt
    with pytest.raises(ObdError, match=r"do not match task 'walker2d' which expects \(17, 6\)"):
        import_corl(path, "walker2d", norm)
    with pytest.raises(ObdError, match="normalizer: normalizer has 5 dims but states have 11"):
        import_corl(path, "hopper", Normalizer(np.zeros(5), np.ones(5)))


def test_corl_import_never_runs_foreign_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"actor": Evil()}, path)
    with pytest.raises(ObdError, match="evil.pt: not a readable CORL checkpoint"):
        import_corl(path, "hopper", Normalizer(np.zeros(OBS), np.ones(OBS)))
    assert not marker.exists()


def test_import_corl_cli(corl_ckpt, tmp_path, capsys):
    path, _, actor, _, norm = corl_ckpt
    out = tmp_path / "teacher.pt"
    rc = teacher_cli(["import-corl", str(path), "--task", "hopper", "--out", str(out),
                      "--obs-mean", ",".join(map(str, norm.mean.tolist())),
                      "--obs-std", ",".join(map(str, norm.std.tolist()))])
    assert rc == 0 and out.is_file()
    t = Teacher.load(out, device="cpu")
    raw = np.ones((4, OBS), np.float32)
    s = torch.from_numpy(np.asarray(norm.normalize(raw), dtype=np.float32))
    assert torch.equal(t.act(raw), torch.tanh(actor.mean_log_std(s)[0]))
    assert teacher_cli(["info", str(out)]) == 0
    assert '"corl-calql"' in capsys.readouterr().out

    assert teacher_cli(["import-corl", str(path), "--task", "hopper", "--out", str(out)]) == 2
    assert "normalizer is required" in capsys.readouterr().err
    assert teacher_cli(["import-corl", str(path), "--task", "hopper", "--out", str(out),
                        "--obs-mean", "1,2", "--obs-std", "1,x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --obs-std: expected comma-separated numbers") and err.count("\n") == 1
    assert teacher_cli(["import-corl", str(path), "--task", "hopper", "--out", str(out),
                        "--obs-mean", "1,2", "--obs-std", "1,2"]) == 2
    assert "normalizer has 2 dims but states have 11" in capsys.readouterr().err
    assert teacher_cli(["import-corl", str(tmp_path / "nope.pt"), "--task", "hopper", "--out", str(out),
                        "--obs-mean", "1", "--obs-std", "1"]) == 2
    assert "CORL checkpoint not found" in capsys.readouterr().err
