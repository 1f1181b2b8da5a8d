"""SDW state-density weights: the weight transform, the four estimators, diagnostics, bad input.
(The ESS solver, the outer sampler and SDW runs: tests/test_sdw.py.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from obd.config import load_config
from obd.distill.density import MADE, MAF, fit_log_density, kde_bandwidth, log_density
from obd.distill.density_config import ESTIMATORS, DensityConfig
from obd.distill.sdw import sdw_weights, sdw_weights_with_stats, weights_from_log_density
from obd.errors import ObdError

torch.set_num_threads(1)

# small estimators so each fit takes well under a second
FAST = {"kde": {}, "knn": {"k": 5}, "gmm": {"components": 3},
        "flow": {"flow_layers": 2, "flow_hidden": 32, "flow_steps": 80, "flow_batch": 256, "flow_lr": 3e-3}}


def cluster_and_outliers(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """600 states in a tight 4-d cluster plus 8 isolated states on the axes at +-3; returns (states, is_outlier)."""
    rng = np.random.default_rng(seed)
    cluster = rng.normal(0.0, 0.3, (600, 4))
    outliers = np.concatenate([3.0 * np.eye(4), -3.0 * np.eye(4)])
    states = np.concatenate([cluster, outliers])
    is_outlier = np.zeros(len(states), dtype=bool)
    is_outlier[600:] = True
    return states, is_outlier


def reference_weights(log_p: np.ndarray, alpha: float, q: float) -> np.ndarray:
    """The documented transform, written out with a sort instead of np.quantile."""
    z = -alpha * log_p
    c = np.sort(z)[math.ceil(q * len(z)) - 1]
    w = np.exp(np.minimum(z, c) - c)
    return w / w.mean()


def test_transform_mean_one_clip_and_order():
    log_p = np.random.default_rng(1).normal(0.0, 10.0, 5000)
    w = weights_from_log_density(log_p, alpha=0.5, clip_quantile=0.95)
    assert w.dtype == np.float32 and w.shape == (5000,)
    assert abs(w.astype(np.float64).mean() - 1.0) < 1e-5
    np.testing.assert_allclose(w, reference_weights(log_p, 0.5, 0.95), rtol=1e-5)
    # the clipped quantity is the tempered weight p^-alpha: the densest 95% keep their ratios,
    # the rarest 5% (plus the state at the quantile) all hold the maximum
    at_max = np.isclose(w, w.max(), rtol=1e-6)
    assert 0.05 <= at_max.mean() <= 0.05 + 2 / 5000
    assert np.all(log_p[at_max] <= np.min(log_p[~at_max]))
    free = ~at_max
    i, j = np.flatnonzero(free)[:2]
    assert math.isclose(w[i] / w[j], math.exp(-0.5 * (log_p[i] - log_p[j])), rel_tol=1e-4)
    # weights fall as density rises
    order = np.argsort(log_p)
    assert np.all(np.diff(w[order].astype(np.float64)) <= 1e-6)


def test_transform_without_clip_is_tempered_inverse_density():
    log_p = np.linspace(-3.0, 3.0, 7)
    w = weights_from_log_density(log_p, alpha=1.0, clip_quantile=1.0)
    expected = np.exp(-log_p) / np.exp(-log_p).mean()
    np.testing.assert_allclose(w, expected, rtol=1e-5)


def test_transform_survives_a_huge_log_density_spread():
    log_p = np.concatenate([np.full(99, 1000.0), [-3000.0]])
    w = weights_from_log_density(log_p, alpha=1.0, clip_quantile=1.0)
    assert np.isfinite(w).all()
    assert abs(w.astype(np.float64).mean() - 1.0) < 1e-5
    assert w[-1] == pytest.approx(100.0, rel=1e-5) and w[0] == 0.0


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_isolated_states_outweigh_the_dense_cluster(estimator):
    states, is_outlier = cluster_and_outliers()
    cfg = DensityConfig(estimator=estimator, alpha=0.5, clip_quantile=1.0, **FAST[estimator])
    w, stats = sdw_weights_with_stats(states, cfg)
    assert w.shape == (len(states),) and w.dtype == np.float32
    assert abs(w.astype(np.float64).mean() - 1.0) < 1e-5
    assert w[is_outlier].min() > np.quantile(w[~is_outlier], 0.9)
    assert w[is_outlier].mean() > 5 * w[~is_outlier].mean()
    assert stats.estimator == estimator and stats.num_states == len(states)
    assert stats.max_weight == pytest.approx(float(w.max()))


@pytest.mark.parametrize("estimator", ["kde", "knn", "gmm"])
def test_fitted_states_do_not_count_themselves(estimator):
    # every state is fitted; a kernel, neighbour or mixture component sitting on an isolated state
    # would make it look dense
    states, is_outlier = cluster_and_outliers()
    cfg = DensityConfig(estimator=estimator, fit_samples=0, bandwidth=0.05, k=3, components=8)
    lp = log_density(states, cfg)
    assert np.isfinite(lp).all()
    assert lp[is_outlier].max() < np.quantile(lp[~is_outlier], 0.1)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_deterministic_for_a_seed(estimator):
    states, _ = cluster_and_outliers()
    cfg = DensityConfig(estimator=estimator, fit_samples=300, seed=3, **FAST[estimator])
    a = sdw_weights(states, cfg)
    b = sdw_weights(torch.as_tensor(states), cfg)
    np.testing.assert_array_equal(a, b)
    other = sdw_weights(states, DensityConfig(estimator=estimator, fit_samples=300, seed=4, **FAST[estimator]))
    assert not np.array_equal(a, other)


def test_knn_is_a_calibrated_density_and_survives_duplicates():
    rng = np.random.default_rng(0)
    uniform = rng.uniform(0.0, 1.0, (4000, 2))
    lp = log_density(uniform, DensityConfig(estimator="knn", k=10, fit_samples=0))
    assert abs(np.median(lp)) < 0.15  # the unit square has density 1
    dup = np.concatenate([np.zeros((20, 2)), uniform[:200]])
    w = sdw_weights(dup, DensityConfig(estimator="knn", k=5))
    assert np.isfinite(w).all() and w[:20].max() < w[20:].min()


def test_kde_bandwidth_rules_and_cross_fit_average():
    cfg = DensityConfig(estimator="kde", bandwidth="scott")
    assert kde_bandwidth(cfg, 1000, 4) == pytest.approx(1000 ** (-1 / 8))
    assert kde_bandwidth(DensityConfig(bandwidth="silverman"), 1000, 4) == pytest.approx((1000 * 6 / 4) ** (-1 / 8))
    # states outside the fitted subsample get the plain KDE of the whole subsample
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    lp = log_density(x, DensityConfig(estimator="kde", fit_samples=100, bandwidth=0.7, kde_rtol=0.0))
    idx = np.sort(np.random.default_rng(0).choice(400, size=100, replace=False))
    outside = np.setdiff1d(np.arange(400), idx)
    d2 = ((x[outside, None, :] - x[None, idx, :]) ** 2).sum(-1)
    exact = np.log(np.exp(-0.5 * d2 / 0.49).mean(1)) - 3 * math.log(0.7) - 1.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(lp[outside], exact, atol=1e-8)


def test_made_is_autoregressive_and_maf_starts_standard_normal():
    torch.manual_seed(0)
    made = MADE(5, 16)
    for p in made.parameters():
        torch.nn.init.normal_(p)
    x = torch.randn(5)
    jac = torch.autograd.functional.jacobian(lambda v: torch.cat(made(v[None])).squeeze(), x)
    # output i (mu_i and log_scale_i) depends on inputs j < i only
    for out in (jac[0], jac[1]):
        assert torch.all(torch.triu(out) == 0)
    assert torch.any(torch.tril(jac[0], -1) != 0)
    flow = MAF(3, layers=2, hidden=8)
    pts = torch.randn(10, 3)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(pts).sum(-1)
    torch.testing.assert_close(flow.log_prob(pts), expected)


def test_flow_learns_a_correlated_gaussian():
    rng = np.random.default_rng(0)
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    x = rng.multivariate_normal([0.0, 0.0], cov, 3000)
    lp = log_density(x, DensityConfig(estimator="flow", flow_layers=2, flow_hidden=32, flow_steps=300,
                                      flow_batch=256, flow_lr=3e-3))
    true = -0.5 * np.einsum("ni,ij,nj->n", x, np.linalg.inv(cov), x) - math.log(2 * math.pi) \
        - 0.5 * math.log(np.linalg.det(cov))
    assert np.corrcoef(lp, true)[0, 1] > 0.95
    assert abs(np.mean(lp - true)) < 0.3


def test_stats_describe_the_weights():
    states, _ = cluster_and_outliers()
    w, stats = sdw_weights_with_stats(states, DensityConfig(estimator="gmm", components=2, clip_quantile=0.9))
    w64 = w.astype(np.float64)
    assert stats.ess_fraction == pytest.approx(1.0 / np.mean(w64 ** 2), rel=1e-4)
    assert stats.clipped_fraction >= 0.1 and stats.clipped_fraction == pytest.approx(np.mean(w == w.max()))
    assert stats.min_weight == pytest.approx(float(w.min())) and stats.log_density_q01 < stats.log_density_q99
    assert "SDW[gmm, weight]" in stats.summary() and "ESS" in stats.summary()


@pytest.mark.parametrize("kwargs, field", [
    ({"alpha": 0.0}, "alpha"), ({"alpha": 1.5}, "alpha"), ({"estimator": "parzen"}, "estimator"),
    ({"clip_quantile": 0.0}, "clip_quantile"), ({"clip_quantile": 1.01}, "clip_quantile"),
    ({"bandwidth": "wide"}, "bandwidth"), ({"bandwidth": -1.0}, "bandwidth"), ({"k": 0}, "density.k"),
    ({"fit_samples": -5}, "fit_samples"), ({"device": "tpu9"}, "device"), ({"n_jobs": 0}, "n_jobs"),
    ({"target_ess": 0.0}, "target_ess"), ({"target_ess": 1.0}, "target_ess"), ({"floor": 1.0}, "floor"),
    ({"floor": -0.1}, "floor"), ({"mode": "resample"}, "mode"), ({"warn_ess": 2}, "warn_ess"),
    ({"flow_holdout": 0.0}, "flow_holdout"), ({"flow_patience": 0}, "flow_patience"), ({"seed": -1}, "seed"),
])
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ObdError, match=field):
        DensityConfig(**kwargs)


def test_bad_states_and_sizes_name_the_problem():
    states, _ = cluster_and_outliers()
    bad = states.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ObdError, match=r"normalized_states.*row 7"):
        sdw_weights(bad, DensityConfig(estimator="knn"))
    with pytest.raises(ObdError, match="normalized_states"):
        log_density(states[:, 0], DensityConfig())
    with pytest.raises(ObdError, match="density.k"):
        log_density(states[:5], DensityConfig(estimator="knn", k=10))
    with pytest.raises(ObdError, match="density.components"):
        log_density(states[:20], DensityConfig(estimator="gmm", components=11))
    with pytest.raises(ObdError, match="alpha"):
        weights_from_log_density(np.zeros(3), alpha=2.0)
    with pytest.raises(ObdError, match="log_density"):
        weights_from_log_density(np.array([0.0, np.nan]))
    cfg = DensityConfig()
    cfg.alpha = -1.0  # mutated after construction: still caught before any work
    with pytest.raises(ObdError, match="alpha"):
        log_density(states, cfg)


def test_loads_from_config_overrides():
    cfg = load_config(DensityConfig, None, ["estimator=kde", "bandwidth=0.3", "alpha=0.25"])
    assert cfg.bandwidth == 0.3 and cfg.alpha == 0.25 and cfg.fit_samples is None
    assert load_config(DensityConfig, None, ["bandwidth=silverman"]).bandwidth == "silverman"
    with pytest.raises(ObdError, match="estimator"):
        load_config(DensityConfig, None, ["estimator=parzen"])


def test_flow_early_stops_and_reports_its_heldout_likelihood():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 2)) * [1.0, 0.5]
    cfg = DensityConfig(estimator="flow", flow_layers=2, flow_hidden=16, flow_batch=256, flow_lr=1e-2,
                        flow_steps=20_000, flow_eval_every=25, flow_patience=2, flow_holdout=0.2)
    lp, info = fit_log_density(x, cfg)
    assert info["flow_early_stopped"] and info["flow_steps_run"] < 20_000
    assert info["flow_best_step"] <= info["flow_steps_run"] - 2 * 25
    # the reported held-out log-likelihood is the returned log p averaged over the held-out split
    held = np.sort(np.random.default_rng(1).permutation(2000)[:400])
    assert info["heldout_states"] == 400
    assert info["heldout_log_likelihood"] == pytest.approx(lp[held].mean(), abs=1e-4)
    # and close to the true density's: log N(x; 0, diag(1, 0.25)) averages -log(2 pi) - log(0.5) - 1
    assert info["heldout_log_likelihood"] == pytest.approx(-math.log(2 * math.pi) - math.log(0.5) - 1, abs=0.1)
    assert [s for s, _ in info["flow_curve"]][:2] == [0, 25]


def test_cross_fitted_estimators_report_the_mean_as_heldout():
    states, _ = cluster_and_outliers()
    lp, info = fit_log_density(states, DensityConfig(estimator="gmm", components=2))
    assert info == {"heldout_log_likelihood": pytest.approx(lp.mean()), "heldout_states": len(states)}


def test_bench_density_reports_time_memory_and_heldout_likelihood(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(root / "scripts" / "bench_density.py"), "--n", "3000", "--dim", "5",
                           "--estimators", "flow", "--set", "flow_steps=20", "flow_hidden=16", "flow_layers=1",
                           "--json", str(out)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())
    (r,) = rows  # one estimator, measured in its own process
    assert r["estimator"] == "flow" and r["n"] == 3000 and r["dim"] == 5 and r["seconds"] > 0
    # the MAF's parameters, Adam state and activations: a positive peak over the loaded process
    assert r["peak_rss_mb"] > 0 and math.isfinite(r["heldout_log_likelihood"])
    assert 0 < r["alpha_for_target_ess"] <= 1 and 0.05 < r["rare5_share"] < 1
    assert r["flow_steps_run"] == 20 and r["heldout_states"] == 300
    assert "flow  N=3000 d=5" in done.stdout and "held-out log-lik" in done.stdout
