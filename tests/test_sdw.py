"""SDW in the outer loop: the ESS solver, the floor mix, extreme log-densities, density-proportional
sampling, the per-run weight log, bit-identical resume in both modes, and the report's diversity panel."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy.optimize import brentq
from scipy.stats import chisquare
from test_distill import TinyTeacher, make_dataset, tiny_config

from obd.config import load_config
from obd.distill import DistillConfig, Distiller
from obd.distill.density_config import DensityConfig
from obd.distill.run import resume, start
from obd.distill.sdw import (
    OuterSampler,
    clean_log_density,
    ess_fraction,
    sdw_weights_with_stats,
    solve_alpha,
    value_band_labels,
    weights_from_log_density,
)
from obd.errors import ObdError

torch.set_num_threads(1)


def gaussian_states(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal states (n, d) and their exact log-densities (n,)."""
    x = np.random.default_rng(seed).standard_normal((n, d))
    return x, -0.5 * (x ** 2).sum(1) - 0.5 * d * math.log(2 * math.pi)


# ---------------------------------------------------------------- the ESS solver
@pytest.mark.parametrize("target", [0.3, 0.5, 0.9])
@pytest.mark.parametrize("clip_quantile,floor", [(1.0, 0.0), (0.99, 0.0), (0.95, 0.2)])
def test_solved_alpha_hits_the_target_ess(target, clip_quantile, floor):
    _, log_p = gaussian_states(20_000, 6)
    alpha = solve_alpha(log_p, target, clip_quantile, floor)
    assert 0 < alpha < 1
    w = weights_from_log_density(log_p, alpha, clip_quantile, floor)
    assert ess_fraction(w) == pytest.approx(target, abs=1e-4)
    assert abs(w.astype(np.float64).mean() - 1) < 1e-5 and w.min() >= floor * (1 - 1e-6)
    # ESS falls as alpha grows: a stronger tempering goes below the target, a weaker one above
    assert ess_fraction(weights_from_log_density(log_p, min(1.0, 1.2 * alpha), clip_quantile, floor)) < target
    assert ess_fraction(weights_from_log_density(log_p, 0.8 * alpha, clip_quantile, floor)) > target


def test_solved_alpha_matches_the_gaussian_closed_form():
    # x ~ N(0, I_d), w = p(x)^-alpha: E[w] ~ (1 - alpha)^(-d/2), E[w^2] ~ (1 - 2 alpha)^(-d/2), so
    # ESS(alpha) = ((1 - 2 alpha) / (1 - alpha)^2)^(d/2); alpha < 1/4 keeps the sample ESS's variance finite
    d, target = 2, 0.9

    def exact(a):
        return ((1 - 2 * a) / (1 - a) ** 2) ** (d / 2) - target
    analytic = brentq(exact, 0.0, 0.49)
    _, log_p = gaussian_states(400_000, d, seed=3)
    assert solve_alpha(log_p, target, clip_quantile=1.0) == pytest.approx(analytic, abs=0.01)


def test_solved_alpha_matches_the_lognormal_closed_form():
    # log p ~ N(0, s^2) makes w lognormal: ESS = exp(-alpha^2 s^2)
    s, target = 4.0, 0.5
    log_p = np.random.default_rng(0).normal(0.0, s, 400_000)
    assert solve_alpha(log_p, target) == pytest.approx(math.sqrt(-math.log(target)) / s, rel=0.01)


def test_flat_density_or_high_floor_caps_alpha_at_one():
    assert solve_alpha(np.zeros(100), 0.5) == 1.0
    # a floor of 0.9 keeps mean(w^2) <= 1 + 0.01 (mean(v^2) - 1): the ESS cannot fall to 0.5 here
    log_p = np.random.default_rng(0).normal(0.0, 1.0, 1000)
    assert solve_alpha(log_p, 0.5, floor=0.9) == 1.0
    with pytest.raises(ObdError, match="target_ess"):
        solve_alpha(log_p, 1.5)


def test_pipeline_reports_solved_alpha_and_quantiles():
    x, _ = gaussian_states(3000, 3)
    w, stats = sdw_weights_with_stats(x, DensityConfig(estimator="gmm", components=2, target_ess=0.4,
                                                       clip_quantile=1.0))
    assert stats.alpha_solved and stats.target_ess == 0.4 and 0 < stats.alpha < 1
    assert stats.ess_fraction == pytest.approx(0.4, abs=1e-3) == ess_fraction(w)
    q = stats.weight_quantiles
    assert list(q) == ["q01", "q05", "q50", "q95", "q99"] and q["q01"] <= q["q50"] <= q["q99"] <= stats.max_weight
    assert q["q50"] == pytest.approx(float(np.quantile(w, 0.5)), rel=1e-5)
    # the 5% of states farthest out (lowest density) hold far more than 5% of the weight
    assert 0.05 < stats.rare5_share < 1
    assert stats.heldout_log_likelihood == pytest.approx(stats.estimator_info["heldout_log_likelihood"])
    fixed = sdw_weights_with_stats(x, DensityConfig(estimator="gmm", components=2, alpha=0.3))[1]
    assert not fixed.alpha_solved and fixed.alpha == 0.3 and fixed.target_ess is None


# ---------------------------------------------------------------- extreme log-densities
@pytest.mark.parametrize("log_p", [
    np.array([-np.inf, 0.0, 1.0, 2.0, -np.inf, 3.0]),
    np.concatenate([np.full(50, 1e4), np.full(50, -1e4), [np.inf]]),
    np.concatenate([np.random.default_rng(0).normal(0, 300, 1000), [-np.inf] * 3]),
    np.full(10, -np.inf),
])
@pytest.mark.parametrize("floor", [0.0, 0.3])
def test_weights_finite_and_mean_one_under_extreme_log_densities(log_p, floor):
    for alpha in (solve_alpha(log_p, 0.5, 0.99, floor), 1.0, 0.5):
        w = weights_from_log_density(log_p, alpha, 0.99, floor)
        assert np.isfinite(w).all() and (w >= 0).all()
        assert abs(w.astype(np.float64).mean() - 1.0) < 1e-5
        rare = np.isneginf(log_p)
        if rare.any() and not rare.all():
            assert w[rare].min() == pytest.approx(w.max())  # -inf: the rarest, never an infinite weight


def test_clean_log_density_names_bad_input():
    np.testing.assert_array_equal(clean_log_density(np.array([-np.inf, 1.0, np.inf, 2.0])), [1.0, 1.0, 2.0, 2.0])
    with pytest.raises(ObdError, match="NaN"):
        clean_log_density(np.array([0.0, np.nan]))


# ---------------------------------------------------------------- density-proportional sampling
def test_sampler_draws_indices_with_the_weights_frequencies():
    weights = np.array([0.1, 0.5, 1.0, 2.0, 4.0, 0.0, 0.4, 3.0])
    sampler = OuterSampler(len(weights), torch.device("cpu"), weights)
    g = torch.Generator().manual_seed(0)
    draws = torch.cat([sampler.draw(2560, g) for _ in range(8)])
    counts = np.bincount(draws.numpy(), minlength=len(weights))
    assert counts[5] == 0  # zero weight: never drawn
    keep = weights > 0
    expected = weights[keep] / weights.sum() * counts.sum()
    assert chisquare(counts[keep], expected).pvalue > 0.01
    # and a wrong distribution is rejected by the same test
    assert chisquare(counts[keep], np.full(keep.sum(), counts.sum() / keep.sum())).pvalue < 1e-6
    # the generator state alone decides the draws
    assert torch.equal(sampler.draw(2560, torch.Generator().manual_seed(0)), draws[:2560])
    with pytest.raises(ObdError, match="non-negative"):
        OuterSampler(3, torch.device("cpu"), np.array([1.0, -1.0, 1.0]))


def test_sampler_keeps_its_frequencies_over_millions_of_states():
    # with float32 probabilities the last 10% of 2M states were drawn about 3.5% too rarely (7 sd here)
    n = 2_000_000
    sampler = OuterSampler(n, torch.device("cpu"), np.ones(n))
    idx = sampler.draw(400_000, torch.Generator().manual_seed(0))
    for share in ((idx < n // 10).double().mean(), (idx >= n - n // 10).double().mean()):
        assert abs(float(share) - 0.1) < 0.002


def test_uniform_sampler_is_the_plain_randint():
    sampler = OuterSampler(50, torch.device("cpu"))
    assert torch.equal(sampler.draw(16, torch.Generator().manual_seed(4)),
                       torch.randint(50, (16,), generator=torch.Generator().manual_seed(4)))


def test_sample_mode_draws_by_weight_and_leaves_the_loss_unweighted(capsys):
    data = make_dataset(n=64)
    dw = np.ones(64, np.float32)
    dw[:8] = 20.0  # 8 states carry 160 of 216 weight units
    d = Distiller(tiny_config(objective="sdw", **{"density.mode": "sample", "outer.batch": 4096}),
                  data, TinyTeacher(), density_weights=dw, progress=False)
    assert d.objective.density_weights is None and d.objective.label == "sdw-sample"
    idx = d.sampler.draw(4096, d.generator)
    assert float((idx < 8).float().mean()) == pytest.approx(160 / 216, abs=0.03)
    _, w = d.objective.targets(idx[:10], d.generator)
    teacher = TinyTeacher()
    obs = data.observations[idx[:10].numpy()]
    torch.testing.assert_close(w, 0.02 * teacher.q(obs, teacher.act(obs)))  # Q only, no density factor
    weighted = Distiller(tiny_config(objective="sdw"), data, TinyTeacher(), density_weights=dw, progress=False)
    assert weighted.sampler.probabilities is None and weighted.objective.label == "sdw"
    # the same expected weight of the rare states either way; with Q the outer ESS is reported per mode
    for dist in (d, weighted):
        assert 0 < dist.sdw.stats.outer_ess_fraction <= 1
    assert "SDW[given, sample]" in capsys.readouterr().err


# ---------------------------------------------------------------- runs
def sdw_config(mode: str, **kw):
    return tiny_config(objective="sdw", **{"density.estimator": "knn", "density.k": 3, "density.mode": mode,
                                           "density.target_ess": 0.4, "inner.students": 2,
                                           "outer.optimizer": "adam"}, **kw)


@pytest.mark.parametrize("mode", ["weight", "sample"])
def test_sdw_run_logs_weights_and_resumes_bit_identically(tmp_path, mode, capsys):
    data, teacher = make_dataset(n=96), TinyTeacher()
    cfg = sdw_config(mode)
    full = start(cfg, tmp_path / "full", data, teacher, progress=False)
    err = capsys.readouterr().err
    assert f"SDW[knn, {mode}]" in err and "solved for ESS 0.4" in err and "rarest 5% hold" in err
    stats = json.loads((tmp_path / "full" / "sdw_weights.json").read_text())
    assert stats["mode"] == mode and stats["ess_fraction"] == pytest.approx(0.4, abs=1e-3)
    assert stats["alpha_solved"] and set(stats["weight_quantiles"]) == {"q01", "q05", "q50", "q95", "q99"}

    # a run killed after its step-4 checkpoint, with step 5's metrics line already written
    # (the cosine horizon is the full run's, as a killed run's would be)
    start(sdw_config(mode, outer_steps=4, **{"outer.decay_steps": 6}), tmp_path / "killed", data, teacher,
          progress=False)
    with (tmp_path / "killed" / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": 5, "loss": 0.0}) + "\n")
    (tmp_path / "killed" / "synthetic.hdf5").unlink()
    resumed = resume(tmp_path / "killed", ["outer_steps=6"], dataset=data, teacher=teacher, progress=False)
    assert torch.equal(full.states, resumed.states) and torch.equal(full.actions, resumed.actions)

    def lines(run):
        return [{k: v for k, v in json.loads(x).items() if k not in ("sec", "wall_time", "cpu_sec", "cpu_time")}
                for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
    assert lines("full") == lines("killed") and len(lines("full")) == 6
    assert resumed.metadata["method"] == ("sdw" if mode == "weight" else "sdw-sample")
    assert resumed.metadata["objective"] == "sdw" and "sdw" not in resumed.metadata


def test_the_two_modes_draw_different_batches():
    data, teacher = make_dataset(n=96), TinyTeacher()
    losses = {}
    for mode in ("weight", "sample"):
        d = sdw_config(mode).create(data, teacher, progress=False)
        losses[mode] = [d.step()["loss"] for _ in range(2)]
    assert losses["weight"] != losses["sample"]


# ---------------------------------------------------------------- value bands
def test_value_bands_are_equal_count_and_ordered():
    values = np.random.default_rng(0).normal(size=1003)
    labels = value_band_labels(values, 10)
    counts = np.bincount(labels)
    assert len(counts) == 10 and counts.max() - counts.min() <= 1
    # every state of band b has a lower value than every state of band b + 1
    for b in range(9):
        assert values[labels == b].max() < values[labels == b + 1].min()
    assert list(value_band_labels(np.array([3.0, 3.0, 1.0, 2.0]), 2)) == [1, 1, 0, 0]
    with pytest.raises(ObdError, match="density.value_bands"):
        value_band_labels(values[:3], 4)
    with pytest.raises(ObdError, match="finite teacher Q"):
        value_band_labels(np.array([1.0, np.nan, 2.0]), 2)


@pytest.mark.parametrize("floor", [0.0, 0.3])
def test_value_bands_keep_each_band_s_share_and_the_target_ess(floor):
    # rare states (low log p) are also the low-value ones, as in a medium-replay buffer's early part:
    # plain SDW moves weight towards low values, banded SDW leaves each band its uniform share
    x, log_p = gaussian_states(20_000, 4)
    values = -np.abs(x[:, 0]) + 0.1 * np.random.default_rng(1).normal(size=len(x))
    labels = value_band_labels(values, 8)
    plain = weights_from_log_density(log_p, 0.3, 0.99, floor).astype(np.float64)
    banded = weights_from_log_density(log_p, 0.3, 0.99, floor, labels).astype(np.float64)
    share = np.bincount(labels, banded) / np.bincount(labels)
    np.testing.assert_allclose(share, 1.0, rtol=1e-5)
    assert (np.bincount(labels, plain) / np.bincount(labels))[0] > 1.3  # the lowest band gains without bands
    # the mean value moves only by what varies inside a band
    shift_plain, shift_banded = ((w * values).mean() - values.mean() for w in (plain, banded))
    assert shift_plain < -0.1 and abs(shift_banded) < 0.15 * abs(shift_plain)
    # inside a band the rarer state still weighs more
    band0 = labels == 0
    assert np.corrcoef(banded[band0], log_p[band0])[0, 1] < -0.5
    alpha = solve_alpha(log_p, 0.5, 0.99, floor, bands=labels)
    assert ess_fraction(weights_from_log_density(log_p, alpha, 0.99, floor, labels)) == pytest.approx(0.5, abs=1e-4)


@pytest.mark.parametrize("mode", ["weight", "sample"])
def test_value_banded_sdw_leaves_the_outer_q_unshifted(mode, capsys):
    data, teacher = make_dataset(n=96), TinyTeacher()
    plain = Distiller(sdw_config(mode), data, teacher, progress=False)
    banded = Distiller(sdw_config(mode, **{"density.value_bands": 4}), data, teacher, progress=False)
    assert banded.sdw.stats.value_bands == 4 and abs(banded.sdw.stats.q_shift) < 0.5 * abs(plain.sdw.stats.q_shift)
    assert plain.sdw.stats.value_bands == 0
    assert "4 value bands" in capsys.readouterr().err
    w = banded.sdw.loss_weights if mode == "weight" else banded.sdw.sampler_weights
    labels = value_band_labels(banded.objective.q_values.numpy(), 4)
    np.testing.assert_allclose(np.bincount(labels, w) / np.bincount(labels), 1.0, rtol=1e-5)
    if mode == "weight":
        torch.testing.assert_close(banded.objective.density_weights, torch.as_tensor(w))
    assert banded.step()["loss"] != plain.step()["loss"]


def test_value_bands_need_at_least_two():
    with pytest.raises(ObdError, match="density.value_bands: expected 0 .off. or an integer >= 2"):
        DensityConfig(value_bands=1)


def test_low_ess_warns(capsys):
    Distiller(tiny_config(objective="sdw", **{"density.estimator": "knn", "density.k": 3, "density.alpha": 1.0,
                                              "density.clip_quantile": 1.0, "density.warn_ess": 0.99}),
              make_dataset(n=96), TinyTeacher(), progress=False)
    assert "warning: SDW leaves an effective sample size" in capsys.readouterr().err


def test_density_section_is_typed_and_old_keys_still_load():
    cfg = load_config(DistillConfig, None, ["objective=sdw", "density.estimator=flow", "density.mode=sample"])
    assert isinstance(cfg.density, DensityConfig) and cfg.density.mode == "sample"
    old = load_config(DistillConfig, None, base={"objective": "sdw", "density": {"estimator": "knn", "alpha": 0.5,
                                                                                 "clip_quantile": 0.99}})
    assert old.density.alpha == 0.5 and old.density_config().seed == old.seed
    assert load_config(DistillConfig, None, ["objective=sdw", "seed=3", "density.seed=9"]).density_config().seed == 9
    assert load_config(DistillConfig, None, ["objective=sdw"]).density_config() == DensityConfig(seed=0)
    for override, key in (("density.mode=resample", "density.mode"), ("density.estimator=parzen", "density.estimator"),
                          ("density.target_ess=1.5", "density.target_ess"), ("density.bogus=1", "density.bogus")):
        with pytest.raises(ObdError, match=key.replace(".", r"\.")):
            load_config(DistillConfig, None, ["objective=sdw", override]).validate()
    # the density section belongs to SDW only
    with pytest.raises(ObdError, match=r"'density'.*objective=sdw"):
        load_config(DistillConfig, None, ["objective=avpbc", "density.alpha=0.5"]).validate()
    assert load_config(DistillConfig, None, ["objective=pbc"]).resolved().density is None


def test_sdw_is_an_objective_not_a_flag():
    with pytest.raises(ObdError, match="sdw"):
        load_config(DistillConfig, None, ["sdw=true"])
    # a default density section is allowed beside any objective (resolved away)
    plain = load_config(DistillConfig, None, base={"density": {}})
    plain.validate()
    assert plain.objective == "avpbc" and plain.resolved().density is None


def test_shipped_run_folders_load_and_report():
    from obd.distill.config import load_run_config
    from obd.report_diversity import _is_sdw, _takes_part

    # the committed run folders (docs/compare_long/runs/*/config.yaml) load as Av-PBC runs
    shipped = sorted((Path(__file__).resolve().parents[1] / "docs" / "compare_long" / "runs").glob("*/config.yaml"))
    assert shipped
    for path in shipped:
        cfg, inputs = load_run_config(path)
        cfg.validate()
        assert cfg.objective == "avpbc" and cfg.resolved().density is None and inputs.dataset
        raw = yaml.safe_load(path.read_text())
        assert _takes_part(raw) and not _is_sdw(raw)
    assert _is_sdw({"objective": "sdw"}) and not _takes_part({"objective": "pbc"})


@pytest.mark.parametrize("name", ["fast_sdw", "paper_sdw", "small_sdw"])
def test_sdw_presets_solve_alpha(name):
    cfg = load_config(DistillConfig, name)
    cfg.validate()
    assert cfg.objective == "sdw" and cfg.density.alpha is None and 0 < cfg.density.target_ess < 1


# ---------------------------------------------------------------- the report's diversity panel
def test_nearest_distances_match_brute_force():
    from obd.report_diversity import nearest_distances

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(7, 4))
    brute = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(nearest_distances(a, b), brute, rtol=1e-10)


def test_report_shows_the_diversity_panel_for_sdw_and_avpbc_runs(tmp_path, capsys):
    from obd.data import write_d4rl
    from obd.distill.synthetic import SyntheticDataset
    from obd.nn import Actor, EnsembleQ
    from obd.report import main as report_main
    from obd.teachers import Teacher

    rng = np.random.default_rng(0)
    n, obs_dim, act_dim = 128, 11, 3  # hopper dims, so the report can evaluate the sets
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    data_path = write_d4rl(tmp_path / "hopper-tiny.hdf5", observations=obs,
                           actions=np.tanh(rng.normal(size=(n, act_dim))).astype(np.float32),
                           rewards=rng.normal(size=n), terminals=np.zeros(n, bool), timeouts=np.zeros(n, bool),
                           next_observations=obs + 0.1)
    from obd.data import load_dataset

    data = load_dataset(str(data_path))
    torch.manual_seed(0)
    Teacher(Actor(obs_dim, act_dim, (8, 8), "tanh_gaussian"), EnsembleQ(obs_dim, act_dim, (8, 8), 2),
            data.normalizer, device="cpu").save(tmp_path / "teacher.pt")
    runs = {}
    for name, extra in (("sdw", ["objective=sdw", "density.estimator=knn", "density.k=3"]), ("avpbc", []),
                        ("pbc", ["objective=pbc"])):
        base = {"n_syn": 6, "student": {"hidden": 8, "depth": 2}, "inner": {"steps": 2}, "outer": {"batch": 16},
                "outer_steps": 2, "checkpoint_every": 2, "device": "cpu"}
        cfg = load_config(DistillConfig, None, extra, base=base)
        start(cfg, tmp_path / name, str(data_path), str(tmp_path / "teacher.pt"), progress=False)
        runs[name] = tmp_path / name
    out = tmp_path / "report"
    fast = ["--students", "1", "--episodes", "1", "--max-steps", "5", "--steps", "2", "--device", "cpu"]
    assert report_main([str(runs[k]) for k in ("sdw", "avpbc", "pbc")] + ["--out", str(out)] + fast) == 0
    md = (out / "report.md").read_text()
    assert "## State diversity" in md and "![diversity.png](diversity.png)" in md
    assert (out / "diversity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = md[md.index("## State diversity"):]
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")
            and not line.startswith("| run") and not line.startswith("| ---")}
    assert set(rows) == {"sdw", "avpbc"}  # the PBC run is not part of the panel
    sdw_stats = json.loads((runs["sdw"] / "sdw_weights.json").read_text())
    assert f"{100 * sdw_stats['ess_fraction']:.1f}%" in rows["sdw"]
    # the table's mean NN distance is the distance from the dataset sample to the final synthetic set
    syn = SyntheticDataset.load(runs["avpbc"] / "synthetic.hdf5")
    states = np.asarray(syn.normalizer.normalize(data.observations), dtype=np.float64)
    brute = np.sqrt(((states[:, None] - syn.states.double().numpy()[None]) ** 2).sum(-1)).min(1)
    assert f"| {brute.mean():.3f} |" in rows["avpbc"]
    # without an SDW run there is no panel
    out2 = tmp_path / "report2"
    assert report_main([str(runs["avpbc"]), "--out", str(out2)] + fast) == 0
    assert "State diversity" not in (out2 / "report.md").read_text() and not (out2 / "diversity.png").exists()


def test_bench_sdw_modes_measures_both_modes(tmp_path, load_script):
    bench = load_script("bench_sdw_modes")

    out = tmp_path / "modes.json"
    threads = torch.get_num_threads()
    assert bench.main(["--n", "600", "--dim", "4", "--draws", "3", "--targets", "0.4", "--json", str(out), "--set",
                       "n_syn=4", "student.hidden=8", "inner.steps=2", "outer.batch=32", "density.k=3",
                       "density.estimator=knn"]) == 0
    torch.set_num_threads(threads)
    rows = {r["variant"]: r for r in json.loads(out.read_text())}
    assert list(rows) == ["uniform (no SDW)", "alpha 0.5, clip 0.99, weight", "ESS 0.4, weight", "ESS 0.4, sample"]
    assert rows["uniform (no SDW)"]["ess_fraction"] == 1.0
    assert rows["ESS 0.4, weight"]["ess_fraction"] == rows["ESS 0.4, sample"]["ess_fraction"] == pytest.approx(0.4)
    assert all(r["relative_variance"] > 0 and r["mean_gradient_norm"] > 0 for r in rows.values())
    assert bench.main(["--targets", "half"]) == 2
