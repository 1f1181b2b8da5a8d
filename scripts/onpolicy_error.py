"""Where do a set's students go, and how wrong are they there? (obd.evaluate.onpolicy)

    python scripts/onpolicy_error.py SET.hdf5 [SET.hdf5 ...] --dataset SPEC --teacher T [--students 10 --episodes 3]

For each synthetic set: fresh students trained as its distillation did are rolled out; every visited state's
distance to the nearest dataset state (normalized units) and the students' squared error to the teacher's
action there are printed, overall and by distance band. One JSON line per set.
"""

from __future__ import annotations

import argparse
import json
import sys

from obd.data import load_dataset
from obd.distill import load_synthetic
from obd.errors import ObdError
from obd.evaluate.onpolicy import onpolicy_error
from obd.teachers import Teacher


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sets", nargs="+")
    p.add_argument("--dataset", required=True)
    p.add_argument("--teacher", required=True)
    p.add_argument("--students", type=int, default=10)
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        dataset = load_dataset(a.dataset)
        teacher = Teacher.load(a.teacher)
        for path in a.sets:
            out = onpolicy_error(load_synthetic(path), teacher, dataset.observations, a.students, a.episodes, a.seed)
            print(json.dumps({"set": path, **out}), flush=True)
    except ObdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
