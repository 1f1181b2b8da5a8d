"""The grid of a sweep: one trial per (dataset, method, seed), each with its resolved config and teacher.

Everything here runs in the driver before Ray starts, so a bad method name, a missing dataset or teacher,
or a config key that does not exist fails with one line and no work done.

Methods: ``dbc``, ``pbc``, ``avpbc``, ``sdw`` (distillation with that outer objective; SDW is Av-PBC
weighted by state density), and the baselines under the same evaluation protocol: ``random`` (N_syn
random real pairs), ``bc`` (behavior cloning on the whole dataset) and ``teacher`` (the teacher's own
rollouts).

A distillation method may carry config overrides of its own, ``avpbc[student.head=paper;q_clip=true]``
(``;`` between items): a *variant*, run and tabulated as a row of its own beside the plain method, which is
how the options that follow the published code are measured under the table's protocol.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obd.config import config_to_dict, load_config, parse_overrides, read_config_sections, with_objective
from obd.data.loader import HDF5_SUFFIXES, dataset_task
from obd.distill.config import DistillConfig, load_run_config
from obd.distill.registry import OBJECTIVES
from obd.errors import ObdError

#: a sweep's methods: the random selection, one distillation per objective (named as the objective), whole-data
#: BC and the teacher
METHODS = ("random", *OBJECTIVES, "bc", "teacher")


@dataclass
class EvalConfig:
    """How every trial is scored (the paper's protocol by default).

    A distillation run writes a checkpoint every ``outer_steps / checkpoints`` outer steps; its score is
    the mean over its last ``last_k`` checkpoints of ``students`` fresh students x ``episodes`` episodes
    each. The students are the run's own student and inner loop (``obd.evaluate``'s default); ``arch``,
    ``steps`` and ``lr`` (None: the run's own) ask for a cross-architecture / cross-optimizer variant.
    ``random`` is scored like one checkpoint, its students the preset's; ``bc`` trains ``bc_students``
    students for ``bc_steps`` steps under ``obd.evaluate``'s whole-data BC protocol; ``teacher`` plays
    ``episodes`` episodes. ``max_steps`` caps episode length (None: the task's).
    """

    students: int = 10
    episodes: int = 10
    last_k: int = 5
    checkpoints: int = 20
    steps: int | None = None
    lr: float | None = None
    arch: str | None = None
    max_steps: int | None = None
    bc_steps: int = 10_000
    bc_students: int = 1

    def validate(self) -> None:
        from obd.evaluate.architectures import parse_arch

        for key in ("students", "episodes", "last_k", "checkpoints", "bc_students"):
            if getattr(self, key) < 1:
                raise ObdError(f"config key 'eval.{key}': expected an integer >= 1, got {getattr(self, key)}")
        for key in ("steps", "max_steps", "bc_steps"):
            value = getattr(self, key)
            if value is not None and value < (1 if key == "max_steps" else 0):
                raise ObdError(f"config key 'eval.{key}': expected an integer >= {1 if key == 'max_steps' else 0}, "
                               f"got {value}")
        if self.lr is not None and not self.lr > 0:
            raise ObdError(f"config key 'eval.lr': expected a number > 0, got {self.lr}")
        try:
            parse_arch(self.arch)
        except ObdError as exc:
            raise ObdError(f"config key 'eval.arch': {exc}") from None


@dataclass
class Trial:
    """One (dataset, method, seed) cell of the grid, everything its Ray task needs (picklable).

    ``distill`` is the run's validated config for the distillation methods, None for the baselines;
    ``base`` is the preset with the overrides, whose N_syn, student and inner loop the baselines follow;
    ``trial_dir`` is ``OUT/trials/<dataset>/<method folder>/seed<k>`` (:func:`method_folder`);
    ``build`` is the data fingerprint the sweep folder's rows for this dataset were made on (None when it has
    none yet): the trial refuses other data under the same name, since its row would share their table.
    """

    dataset: str
    spec: str
    method: str
    seed: int
    trial_dir: str
    teacher: str | None
    base: DistillConfig
    eval: EvalConfig
    distill: DistillConfig | None = None
    build: str | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.dataset, self.method, self.seed)

    @property
    def name(self) -> str:
        return f"{self.dataset} {self.method} seed{self.seed}"


def dataset_label(spec: str) -> str:
    """A dataset's name in folders and tables: a file's or folder's stem (``hopper_medium-v5``), else the
    id with ``/`` turned into ``-``."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path.name
    if path.is_file() or path.suffix.lower() in HDF5_SUFFIXES:
        return path.stem
    return spec.replace("/", "-")


def task_and_level(spec: str) -> tuple[str, str] | None:
    """``("hopper", "medium-replay")`` for ``hopper-medium-replay-v5``, ``.../hopper_medium_replay-v5.hdf5`` or
    the Minari id ``mujoco/hopper/medium-replay-v0``; None when the name is no ``<task>-<level>``."""
    from obd.assets import split_dataset_name
    from obd.data.minari_io import is_minari_id

    parts = spec.split("/")
    name = f"{parts[-2]}-{parts[-1]}" if is_minari_id(spec) and not Path(spec).expanduser().exists() \
        else dataset_label(spec)
    try:
        return split_dataset_name(name)
    except ObdError:
        return None


def shipped_teacher(spec: str) -> Path | None:
    """The teacher shipped for ``spec``'s task and level (``obd.assets.resolve_asset``), or None."""
    from obd.assets import resolve_asset

    found = task_and_level(spec)
    if found is None:
        return None
    try:
        return resolve_asset("teacher", "-".join(found))
    except ObdError:
        return None


def check_dataset(spec: str) -> None:
    """Fail now if ``spec`` names nothing ``obd.data.load_dataset`` could load (without loading it)."""
    from obd.data.d4rl import d4rl_path, is_d4rl_id
    from obd.data.minari_io import is_minari_id, minari_root

    path = Path(spec).expanduser()
    if path.exists():
        return
    if is_d4rl_id(spec):
        if d4rl_path(spec).is_file():
            return
        raise ObdError(f"--datasets: '{spec}' not found (looked for {d4rl_path(spec)})")
    if is_minari_id(spec):
        if (minari_root() / spec).is_dir():
            return
        raise ObdError(f"--datasets: '{spec}' not found (looked for {minari_root() / spec})")
    raise ObdError(f"--datasets: '{spec}' is neither an existing file or folder, a D4RL id nor a Minari id")


def parse_list(flag: str, text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ObdError(f"{flag}: expected a comma-separated list, got {text!r}")
    if len(set(items)) != len(items):
        raise ObdError(f"{flag}: {text!r} repeats an entry")
    return items


def parse_seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in parse_list("--seeds", text)]
    except ValueError:
        raise ObdError(f"--seeds: expected comma-separated integers, got {text!r}") from None


def parse_methods(text: str) -> list[str]:
    """``--methods``: comma-separated method names, each optionally a variant ``name[key=value;...]``
    (commas inside brackets do not split); checked with :func:`split_method`."""
    items = [t.strip() for t in re.split(r",(?![^\[]*\])", text) if t.strip()]
    if not items:
        raise ObdError(f"--methods: expected a comma-separated list, got {text!r}")
    methods = [format_method(*split_method(t)) for t in items]
    if len(set(methods)) != len(methods):
        raise ObdError(f"--methods: {text!r} repeats an entry")
    return methods


def split_method(method: str) -> tuple[str, list[str]]:
    """``avpbc[student.head=paper;q_clip=true]`` -> ``("avpbc", ["student.head=paper", "q_clip=true"])``;
    a plain name -> ``(name, [])``. Only distillation methods take overrides, and none of the keys each
    trial sets itself (:data:`TRIAL_KEYS`) or ``eval.*`` (one protocol per table)."""
    found = re.fullmatch(r"\s*([\w-]+)\s*(?:\[(.*)\])?\s*", method)
    if found is None:
        raise ObdError(f"--methods: expected NAME or NAME[key=value;...], got {method!r}")
    name, inside = found.group(1), found.group(2)
    if name not in METHODS:
        raise ObdError(f"--methods: unknown method '{name}'; expected some of {list(METHODS)}")
    if inside is None:
        return name, []
    overrides = [o.strip() for o in inside.split(";") if o.strip()]
    if not overrides:
        raise ObdError(f"--methods: '{method}' has empty brackets; expected {name}[key=value;...]")
    if name not in OBJECTIVES:
        raise ObdError(f"--methods: '{method}': only the distillation methods {list(OBJECTIVES)} take overrides")
    for item in overrides:
        key = _key(item)
        if key in TRIAL_KEYS or key.startswith("eval"):
            why = TRIAL_KEYS.get(key, "one evaluation protocol per sweep")
            raise ObdError(f"--methods: '{method}' sets {key}, which a variant cannot ({why})")
    parse_overrides(overrides)
    return name, overrides


def format_method(name: str, overrides: list[str]) -> str:
    """The canonical spelling of a method in rows and tables: ``name`` or ``name[a=1;b=2]``."""
    return f"{name}[{';'.join(overrides)}]" if overrides else name


def method_folder(method: str) -> str:
    """A method's folder name under ``trials/<dataset>/``: ``avpbc+student.head=paper+q_clip=true``."""
    name, overrides = split_method(method)
    return "+".join([name, *(re.sub(r"[^\w.=-]", "_", o) for o in overrides)])


def base_method(method: str) -> str:
    """The method a (possibly variant) method name runs: ``avpbc`` for ``avpbc[q_clip=true]``."""
    return method.split("[", 1)[0].strip()


def parse_teachers(text: str | None, datasets: list[str]) -> dict[str, str]:
    """``SPEC=FILE,...`` -> {spec: file}; each SPEC must be one of ``datasets`` and each FILE a readable teacher
    file."""
    out: dict[str, str] = {}
    for item in parse_list("--teachers", text) if text else []:
        spec, sep, path = item.rpartition("=")
        if not sep or not spec or not path:
            raise ObdError(f"--teachers: expected SPEC=FILE, got {item!r}")
        if spec not in datasets:
            raise ObdError(f"--teachers: '{spec}' is not one of --datasets {datasets}")
        if not Path(path).expanduser().is_file():
            raise ObdError(f"--teachers: teacher file '{path}' for '{spec}' not found")
        from obd.teachers import Teacher

        try:
            Teacher.load(Path(path).expanduser(), device="cpu")  # here, not inside a trial after Ray started
        except ObdError as exc:
            raise ObdError(f"--teachers: {exc}") from None
        out[spec] = path
    return out


#: DistillConfig keys each trial fixes, and where they come from
TRIAL_KEYS = {"objective": "from --methods", "seed": "from --seeds", "dataset": "from --datasets",
              "teacher": "from --teachers or the shipped one",
              "checkpoint_every": "outer_steps / eval.checkpoints"}


@dataclass
class SweepSettings:
    """What must stay the same for a sweep folder to be resumed: the preset's content, the overrides and
    the evaluation protocol (the grid itself, datasets x methods x seeds, may grow)."""

    preset: dict[str, Any]
    overrides: list[str]
    eval: EvalConfig

    def as_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "overrides": parse_overrides(self.overrides),
                "eval": dataclasses.asdict(self.eval)}


def load_settings(preset: str | None, overrides: list[str]) -> SweepSettings:
    """Read ``preset`` (a DistillConfig YAML, optionally with an ``eval:`` section) and split ``key=value``
    overrides into evaluation (``eval.*``) and distillation keys. The preset's ``objectives:`` sections (what
    changes with the objective) stay in :attr:`SweepSettings.preset`: each trial takes its method's."""
    raw, sections = read_config_sections(preset) if preset is not None else ({}, None)
    if sections is not None:
        raw["objectives"] = sections
    eval_raw = raw.pop("eval", {}) or {}
    if not isinstance(eval_raw, dict):
        raise ObdError(f"{preset}: 'eval' should be a mapping of EvalConfig fields")
    eval_over, distill_over = [], []
    for item in overrides:
        key = _key(item)
        if key in TRIAL_KEYS:
            raise ObdError(f"config override '{item}': every trial sets {key} itself ({TRIAL_KEYS[key]})")
        if key == "eval":
            raise ObdError(f"config override '{item}': set eval's keys, e.g. eval.students=10")
        (eval_over if key.startswith("eval.") else distill_over).append(item)
    eval_cfg = load_config(EvalConfig, None, [item[len("eval."):] for item in eval_over], base=eval_raw,
                           prefix="eval.")
    eval_cfg.validate()
    parse_overrides(distill_over)  # a malformed item fails here, before any trial is built
    return SweepSettings(raw, distill_over, eval_cfg)


def _key(item: str) -> str:
    return item.split("=", 1)[0].strip()


def _load(settings: SweepSettings, objective: str | None = None, extra: list[str] | None = None,
          task: str | None = None) -> DistillConfig:
    """The preset with the section of ``objective`` (given, else the preset's own) from its ``objectives:``,
    then the entry of ``task`` from its ``tasks:`` (none when None),
    the distillation overrides (then a variant's ``extra`` ones), its objective set to ``objective`` when
    given, as a DistillConfig (not validated); unless the objective is ``sdw`` the
    ``density`` section and ``density.*`` overrides are left out, since they belong to SDW trials only, and
    for DBC the ``coverage`` section and ``coverage.*`` overrides, which need a teacher."""
    raw = copy.deepcopy(settings.preset)
    raw = with_objective(raw, raw.pop("objectives", None), objective, where="sweep preset")
    overrides = settings.overrides + list(extra or [])
    if objective != "sdw":
        raw.pop("density", None)
        overrides = [o for o in overrides if _key(o) != "density" and not _key(o).startswith("density.")]
    if objective is not None and not OBJECTIVES[objective].needs_teacher:
        # a preset's state coverage is labelled by the teacher: it belongs to the teacher-based methods only
        raw.pop("coverage", None)
        overrides = [o for o in overrides if _key(o) != "coverage" and not _key(o).startswith("coverage.")]
    cfg, _ = load_run_config(None, overrides, base=raw, task=task)
    if objective is not None:
        cfg.objective = objective
    return cfg


def distill_config(settings: SweepSettings, method: str, spec: str, seed: int, teacher: str | None,
                   task: str | None = None) -> DistillConfig:
    """The DistillConfig of one distillation trial: preset <- overrides <- what the method and seed fix
    (objective, seed, checkpoint_every); a variant's overrides come after the sweep's. Non-SDW methods drop
    ``density``; the preset's entry for the dataset's task applies (``task``, else :func:`obd.data.dataset_task`
    of ``spec``); the dataset and teacher are the trial's (:attr:`Trial.spec`, :attr:`Trial.teacher`)."""
    name, extra = split_method(method)
    try:
        cfg = _load(settings, name, extra, task=task or dataset_task(spec))
        cfg.seed = seed
        cfg.checkpoint_every = max(1, cfg.outer_steps // settings.eval.checkpoints)
        cfg.validate()
    except ObdError as exc:
        if not extra:
            raise
        raise ObdError(f"--methods: '{method}': {exc}") from None
    return cfg


def build_grid(datasets: list[str], methods: list[str], seeds: list[int], settings: SweepSettings,
               teachers: dict[str, str], out: Path) -> list[Trial]:
    """Every trial of datasets x methods x seeds, in that order, checked: methods known, datasets present,
    a teacher for every dataset whose methods need one (``teachers`` first, else the shipped one)."""
    for m in methods:
        split_method(m)
    base = _load(settings)
    labels: dict[str, str] = {}
    for spec in datasets:
        check_dataset(spec)
        label = dataset_label(spec)
        if label in labels.values():
            raise ObdError(f"--datasets: '{spec}' and another dataset share the name '{label}'")
        labels[spec] = label
    trials = []
    for spec in datasets:
        teacher = teachers.get(spec)
        task = dataset_task(spec)
        for method in methods:
            name = base_method(method)
            needs = name == "teacher" or (name in OBJECTIVES and
                                         dataclasses.replace(base, objective=name).needs_teacher())
            if needs and teacher is None:
                found = shipped_teacher(spec)
                if found is None:
                    raise ObdError(f"--teachers: no teacher for dataset '{spec}' (method '{method}' needs one) and "
                                   f"none shipped for its task and level; pass --teachers {spec}=FILE")
                teacher = str(found)
            for seed in seeds:
                cfg = distill_config(settings, method, spec, seed, teacher, task) if name in OBJECTIVES else None
                trials.append(Trial(labels[spec], spec, method, seed,
                                    str(out / "trials" / labels[spec] / method_folder(method) / f"seed{seed}"),
                                    teacher if needs else None, base, settings.eval, cfg))
    return trials


def trial_budget(trial: Trial) -> dict[str, Any]:
    """The settings a result row records so the table can say what budget each number had."""
    if trial.distill is None:
        return {"n_syn": trial.base.n_syn} if trial.method == "random" else {}
    cfg = config_to_dict(trial.distill)
    keep = ("objective", "density", "coverage", "n_syn", "init", "init_share", "init_max_steps", "init_noise",
            "student", "inner", "outer", "outer_steps", "checkpoint_every", "beta", "q_clip", "synthetic_actions",
            "value_metric", "onpolicy")
    return {k: cfg[k] for k in keep if k in cfg}
