"""``obd <stage> ...``: one command for every stage (also ``python -m obd <stage> ...``).

    obd collect build hopper-medium-v5 --transitions 100000
    obd teacher train --dataset hopper-medium-v5 --algo td3bc --out runs/teacher
    obd distill --config fast_avpbc dataset=hopper-medium-v5 teacher=hopper-medium-v5 --out runs/x
    obd evaluate synthetic runs/x/synthetic.hdf5
    obd report runs/x
    obd quickstart --out runs/quickstart

``python -m obd.<stage>`` runs the same code. Every stage takes ``--help``; stages with a config also take
``--print-config`` and ``key=value`` overrides (``obd distill --help`` lists the keys and defaults).
"""

from __future__ import annotations

import importlib
import sys

#: stage -> (module whose ``main(argv)`` runs it, one-line summary)
STAGES = {
    "collect": ("obd.collect.__main__", "train SAC behavior policies, build D4RL-style datasets with them"),
    "data": ("obd.data.__main__", "inspect datasets"),
    "teacher": ("obd.teachers.__main__", "train offline RL teachers, import CORL checkpoints, inspect teacher files"),
    "distill": ("obd.distill.__main__", "run or resume a distillation (DBC, PBC, Av-PBC, SDW)"),
    "evaluate": ("obd.evaluate.__main__", "evaluate synthetic sets, baselines and teachers (OBD protocol)"),
    "report": ("obd.report", "tables and plots over distillation runs"),
    "quickstart": ("obd.quickstart", "the whole pipeline on the built-in default, offline, on a CPU"),
    "sweep": ("obd.sweep.__main__", "run a grid of distillations and evaluations"),
}


def usage() -> str:
    from obd import __version__

    width = max(map(len, STAGES))
    rows = "\n".join(f"  {name:<{width}}  {summary}" for name, (_, summary) in STAGES.items())
    return (f"usage: obd [--version] <stage> [args...]\n\nobd {__version__}: offline behavior distillation.\n\n"
            f"stages:\n{rows}\n\n`obd <stage> --help` for a stage's flags.\n")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from obd import __version__

        print(f"obd {__version__}")
        return 0
    stage, rest = argv[0], argv[1:]
    if stage not in STAGES:
        print(f"error: unknown stage '{stage}'; expected one of {list(STAGES)} (obd --help)", file=sys.stderr)
        return 2
    module_name = STAGES[stage][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise
        print(f"error: stage '{stage}' is not part of this obd installation ({module_name} missing)",
              file=sys.stderr)
        return 2
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
