"""How far can a preset's student get by imitating the teacher, with all the data or with 256 random states?

    python scripts/student_capacity.py                                    # quickstart data, teacher and presets
    python scripts/student_capacity.py --presets quickstart,fast_avpbc --students 3 --episodes 10

For each preset's student (width, depth, head, init) it trains fresh students on teacher actions and rolls them
out (the OBD protocol's ``tanh(mean)``, normalized score):

* ``full data``: every state of the dataset labelled by the teacher, minibatch Adam (``--adam-steps`` steps of
  256, lr 1e-3): the best a synthetic set could hope to teach that student;
* ``256 random``: 256 random real states labelled by the teacher, trained like the preset's inner loop
  (``inner.steps`` full-batch SGD steps at ``inner.lr``): what distillation starts from;
* with ``--fit-steps K``: the same 256 states fitted to convergence (K full-batch Adam steps at lr 1e-3);
* with ``--teacher-episodes E``: the same two rows for 256 states drawn from E episodes of the teacher's own
  rollouts (its deterministic action), the states a student that imitates it well would visit.

The dataset defaults to the quickstart's (built on first use, like ``obd quickstart``).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from obd.assets import resolve_asset
from obd.data import load_dataset
from obd.distill.config import load_run_config
from obd.distill.onpolicy import teacher_visits
from obd.distill.synthetic import SyntheticDataset
from obd.evaluate import evaluate_synthetic
from obd.evaluate.student_spec import config_student
from obd.quickstart import QuickstartSettings, default_dataset
from obd.teachers import Teacher


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=None, help="dataset spec (default: the quickstart's 100k hopper-medium)")
    p.add_argument("--teacher", default="hopper-medium-v5", help="teacher file or shipped name")
    p.add_argument("--presets", default="quickstart,fast_avpbc")
    p.add_argument("--adam-steps", type=int, default=5000)
    p.add_argument("--students", type=int, default=3)
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fit-steps", type=int, default=0, help="also fit the 256 states with this many Adam steps")
    p.add_argument("--teacher-episodes", type=int, default=0,
                   help="also draw 256 states from this many episodes of the teacher's own rollouts")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    ds = load_dataset(args.dataset) if args.dataset else default_dataset(
        QuickstartSettings(out=Path("."), progress=False))
    teacher = Teacher.load(resolve_asset("teacher", args.teacher))
    obs = torch.as_tensor(ds.observations, dtype=torch.float32)
    with torch.no_grad():
        labels = teacher.act(obs)
    states = ds.normalizer.normalize(obs)
    pick = torch.randperm(len(obs), generator=torch.Generator().manual_seed(args.seed))[:256]
    pools = [("256 random", states[pick], labels[pick])]
    if args.teacher_episodes:
        visited = torch.as_tensor(teacher_visits(teacher, teacher.metadata.get("task"), args.teacher_episodes,
                                                 args.seed))
        take = torch.randperm(len(visited), generator=torch.Generator().manual_seed(args.seed))[:256]
        with torch.no_grad():
            pools.append(("256 teacher's", ds.normalizer.normalize(visited[take]), teacher.act(visited[take])))

    print(f"{'preset':<14}{'student':<16}{'training':<36}{'normalized score':>18}{'ep. length':>12}")
    for preset in args.presets.split(","):
        cfg, _ = load_run_config(preset, [])
        inner = config_student(cfg.student, cfg.inner)
        full = replace(inner, steps=args.adam_steps, optimizer="adam", lr=1e-3, batch_size=256)
        runs = [("full data, Adam", full, states, labels)]
        for what, x, y in pools:
            runs.append((f"{what}, {inner.steps} SGD steps", inner, x, y))
            if args.fit_steps:
                runs.append((f"{what}, {args.fit_steps} Adam steps",
                             replace(inner, steps=args.fit_steps, optimizer="adam", lr=1e-3), x, y))
        for what, spec, x, y in runs:
            syn = SyntheticDataset(x, y, ds.normalizer, task=teacher.metadata.get("task"))
            r = evaluate_synthetic(syn, student=spec, students=args.students, episodes=args.episodes,
                                   seed=args.seed, where=preset)
            print(f"{preset:<14}{spec.arch.name:<16}{what:<36}"
                  f"{r['normalized_score_mean']:>10.1f} +- {r['normalized_score_std']:<5.1f}"
                  f"{r['episode_length_mean']:>12.0f}", flush=True)


if __name__ == "__main__":
    main()
