"""State-diversity panel of ``python -m obd.report``: how the synthetic states of SDW runs cover the
dataset's states, next to the Av-PBC runs reported beside them.

Shown only when at least one run is an SDW run (``objective: sdw`` in its ``config.yaml``); then every SDW
and every plain Av-PBC run whose dataset can be loaded takes part. Per dataset, a seeded sample of up to
``sample`` dataset states is drawn and, in normalized state space (the dataset's mean/std, where
distillation learns the synthetic states):

- coverage: the Euclidean distance from each sampled dataset state to its nearest state of the run's
  final synthetic set (scikit-learn ``NearestNeighbors``); its mean, median and 90% quantile go to the
  table (lower = the synthetic set reaches more of the dataset) and its empirical CDF to the figure;
- projection: a 2-D PCA (scikit-learn) fitted on the dataset sample, with the sample in grey and each
  run's synthetic states on top, one panel per run.

The SDW weights' diagnostics (``RUN/sdw_weights.json``: alpha, ESS) are listed beside each SDW run.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from obd.errors import ObdError

IMAGE = "diversity.png"


def nearest_distances(dataset_states: np.ndarray, synthetic_states: np.ndarray) -> np.ndarray:
    """Distance from each of ``dataset_states`` (M, d) to its nearest of ``synthetic_states`` (K, d): (M,)."""
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=1).fit(np.asarray(synthetic_states, dtype=np.float64))
    dist, _ = index.kneighbors(np.asarray(dataset_states, dtype=np.float64))
    return dist[:, 0]


@dataclass
class RunCoverage:
    """One run's final synthetic set against its dataset sample."""

    run: str
    method: str
    sdw: bool
    dataset: str
    n_syn: int
    distances: np.ndarray  # (M,)
    projected: np.ndarray  # (n_syn, 2) synthetic states in the dataset's PCA plane
    sdw_weights: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {"run": self.run, "method": self.method, "dataset": self.dataset, "n_syn": self.n_syn,
                "nn_mean": float(self.distances.mean()), "nn_median": float(np.median(self.distances)),
                "nn_p90": float(np.quantile(self.distances, 0.9))}


@dataclass
class DatasetView:
    """A dataset sample (M, d) normalized, its PCA plane and the runs measured on it."""

    dataset: str
    sample: np.ndarray
    projected: np.ndarray  # (M, 2)
    explained: tuple[float, float]
    runs: list[RunCoverage]


@dataclass
class DiversityPanel:
    views: list[DatasetView]
    figure: Any
    markdown: str
    image: str = IMAGE


def _is_sdw(cfg: dict[str, Any]) -> bool:
    return cfg.get("objective") == "sdw"


def _takes_part(cfg: dict[str, Any]) -> bool:
    return _is_sdw(cfg) or cfg.get("objective") == "avpbc"


def _read_sdw_weights(run: Path) -> dict[str, Any]:
    from obd.distill.folder import DistillFolder

    path = DistillFolder(run).sdw_weights_path
    if not path.is_file():
        return {}
    try:
        stats = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
    return stats if isinstance(stats, dict) else {}


def measure(runs: list[Any], sample: int = 5000, seed: int = 0) -> list[DatasetView]:
    """Coverage of every taking-part run (``obd.evaluate.runs.RunFiles``), grouped by the ``dataset`` of its
    config; empty when no run is an SDW run. A dataset that cannot be loaded is skipped with a message."""
    from sklearn.decomposition import PCA

    from obd.data import load_dataset

    if not any(_is_sdw(r.config) for r in runs):
        return []
    groups: dict[str, list[Any]] = {}
    for r in runs:
        if _takes_part(r.config):
            groups.setdefault(str(r.config.get("dataset") or ""), []).append(r)
    views = []
    for spec, members in groups.items():
        try:
            data = load_dataset(spec) if spec else None
        except ObdError as exc:
            data, why = None, str(exc)
        else:
            why = "its config.yaml names no dataset"
        if data is None:
            print(f"state-diversity panel: skipped {[r.path.name for r in members]}: {why}", file=sys.stderr)
            continue
        normalizer = members[0].checkpoints[-1][2].normalizer
        rng = np.random.default_rng(seed)
        rows = rng.choice(len(data), size=min(sample, len(data)), replace=False)
        states = np.asarray(normalizer.normalize(data.observations[np.sort(rows)]), dtype=np.float64)
        pca = PCA(n_components=2, random_state=seed).fit(states)
        coverages = []
        for r in members:
            syn = r.checkpoints[-1][2]
            syn_states = np.asarray(normalizer.normalize(syn.observations), dtype=np.float64)
            coverages.append(RunCoverage(r.path.resolve().name, str(syn.metadata.get("method", "")),
                                         _is_sdw(r.config), spec, len(syn), nearest_distances(states, syn_states),
                                         pca.transform(syn_states), _read_sdw_weights(r.path)))
        ratio = pca.explained_variance_ratio_
        views.append(DatasetView(spec, states, pca.transform(states), (float(ratio[0]), float(ratio[1])),
                                 coverages))
    return views


def plot(views: list[DatasetView]) -> Any:
    """One row per dataset: the CDFs of nearest-neighbour distances, then one PCA panel per run."""
    import matplotlib.pyplot as plt

    cols = 1 + max(len(v.runs) for v in views)
    fig, axes = plt.subplots(len(views), cols, figsize=(3.6 * cols, 3.4 * len(views)), squeeze=False)
    for row, view in zip(axes, views):
        cdf = row[0]
        for cov in view.runs:
            d = np.sort(cov.distances)
            cdf.plot(d, np.arange(1, len(d) + 1) / len(d), lw=1.8 if cov.sdw else 1.2,
                     ls="-" if cov.sdw else "--", label=f"{cov.run} ({cov.method})")
        cdf.set_xlabel("distance to nearest synthetic state")
        cdf.set_ylabel("fraction of dataset states")
        cdf.set_title(Path(view.dataset).name or view.dataset, fontsize=9)
        cdf.grid(alpha=0.3)
        cdf.legend(fontsize=6)
        for ax, cov in zip(row[1:], view.runs):
            ax.scatter(view.projected[:, 0], view.projected[:, 1], s=2, c="0.75", lw=0, label="dataset")
            ax.scatter(cov.projected[:, 0], cov.projected[:, 1], s=9, c="tab:red" if cov.sdw else "tab:blue",
                       lw=0, label=f"synthetic ({cov.method})")
            ax.set_title(f"{cov.run}: mean NN {cov.distances.mean():.2f}", fontsize=8)
            ax.set_xlabel(f"PC1 ({100 * view.explained[0]:.0f}%)")
            ax.set_ylabel(f"PC2 ({100 * view.explained[1]:.0f}%)")
            ax.legend(fontsize=6, markerscale=2)
        for ax in row[1 + len(view.runs):]:
            ax.axis("off")
    fig.suptitle("State diversity: dataset coverage by the final synthetic sets (normalized states)")
    fig.tight_layout()
    return fig


def render(views: list[DatasetView], image: str = IMAGE) -> str:
    lines = ["", "## State diversity (SDW runs and the Av-PBC runs beside them)", "",
             "Distance from each of a seeded sample of dataset states to its nearest state of the run's final "
             "synthetic set, in normalized state units (lower: the synthetic states reach more of the dataset); "
             "figure: CDFs of those distances and a 2-D PCA of the dataset sample (grey) with each run's "
             "synthetic states.", "",
             "| run | method | dataset | N_syn | dataset states | NN mean | NN median | NN 90% | SDW alpha | SDW ESS |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for view in views:
        for cov in view.runs:
            r, w = cov.row(), cov.sdw_weights
            alpha = f"{w['alpha']:.3g}" if isinstance(w.get("alpha"), (int, float)) else ""
            ess = f"{100 * w['ess_fraction']:.1f}%" if isinstance(w.get("ess_fraction"), (int, float)) else ""
            lines.append(f"| {r['run']} | {r['method']} | {view.dataset} | {r['n_syn']} | {len(view.sample)} | "
                         f"{r['nn_mean']:.3f} | {r['nn_median']:.3f} | {r['nn_p90']:.3f} | {alpha} | {ess} |")
    lines += ["", f"![{image}]({image})", ""]
    return "\n".join(lines)


def diversity_panel(runs: list[Any], sample: int = 5000, seed: int = 0) -> DiversityPanel | None:
    """The panel for ``runs`` (``obd.evaluate.runs.RunFiles``), or None when no SDW run can be measured."""
    views = measure(runs, sample, seed)
    if not views:
        return None
    return DiversityPanel(views, plot(views), render(views))
