"""``obd sweep merge SRC [SRC ...] --out DIR``: one sweep folder (rows, table, figure) from several.

A grid run in pieces (one folder per machine, per dataset, per session) gives one table only when its rows
meet in one folder. ``merge`` reads each source's ``sweep.json`` and ``results.jsonl``, checks that they ran
under the same settings (preset, overrides, evaluation protocol: the cells of one table must be comparable),
and writes ``DIR/results.jsonl``, ``DIR/sweep.json`` (the settings and every source's commands, in order),
``DIR/table.md`` and ``DIR/table.png``. ``DIR`` may already be a sweep folder: its rows are kept. A trial
(dataset, method, seed) found in two places must carry the same result; two different results for one
trial are an error, since the table would silently pick one; so are rows of one dataset made on two builds
of its data (their ``dataset_fingerprint`` differs: a dataset rebuilt elsewhere is other data). Trial folders
are not copied: ``DIR`` holds rows only, and ``obd sweep --out DIR`` with the same settings skips the trials it
already has.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from obd.cli import add_common, parse_args
from obd.errors import ObdError, cli_entry


def _read_sweep(folder: Path) -> dict[str, Any]:
    from obd.sweep.driver import SWEEP_NAME

    path = folder / SWEEP_NAME
    if not path.is_file():
        raise ObdError(f"{folder}: no sweep.json (not an obd sweep folder)")
    try:
        sweep = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise ObdError(f"{path}: not JSON") from None
    if not isinstance(sweep, dict) or not isinstance(sweep.get("settings"), dict):
        raise ObdError(f"{path}: expected an object with 'settings' and 'commands'")
    return sweep


def merge_sweeps(sources: list[Path], out: Path) -> list[dict[str, Any]]:
    """Merge the rows of ``sources`` (and of ``out``, when it is a sweep folder already) into ``out``;
    returns the merged rows (sources' order, each trial once)."""
    from obd.io import write_json_atomic
    from obd.sweep import driver
    from obd.sweep.table import read_results, write_outputs

    if not sources:
        raise ObdError("merge: expected at least one sweep folder to merge")
    others = [s for s in sources if s.resolve() != out.resolve()]
    folders = ([out] if (out / driver.SWEEP_NAME).is_file() else []) + others
    settings: dict[str, Any] | None = None
    first: Path | None = None
    commands: list[list[str]] = []
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, str, int], tuple[Path, dict[str, Any]]] = {}
    builds: dict[str, tuple[str, Path]] = {}
    for folder in folders:
        sweep = _read_sweep(folder)
        if settings is None:
            settings, first = sweep["settings"], folder
        elif (key := driver.settings_mismatch(sweep["settings"], settings)) is not None:
            raise ObdError(f"{folder}: ran with other {key} settings than {first} "
                           f"({sweep['settings'].get(key)} against {settings.get(key)}); "
                           "its cells would not be comparable")
        commands += [c for c in sweep.get("commands", []) if c not in commands]
        found = read_results(folder / driver.RESULTS_NAME)
        for dataset, build in driver.recorded_builds(found, folder).items():
            known, known_in = builds.setdefault(dataset, (build, folder))
            if known != build:
                raise ObdError(f"{folder}: its rows for {dataset} were made on another build of the data than "
                               f"{known_in}'s (fingerprints {build[:12]} and {known[:12]}); merge one build's rows")
        for row in found:
            key = (row["dataset"], row["method"], row["seed"])
            if key in seen:
                other, kept = seen[key]
                if kept != row:
                    raise ObdError(f"{folder}: trial {key[0]} {key[1]} seed{key[2]} is also in {other} with "
                                   "another result; merge only one of them")
                continue
            seen[key] = (folder, row)
            rows.append(row)
    assert settings is not None
    out.mkdir(parents=True, exist_ok=True)
    with driver.results_lock(out):
        write_json_atomic(out / driver.SWEEP_NAME, {"settings": settings, "commands": commands})
        driver.write_results(out, rows)
        write_outputs(out, rows, commands)
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="obd sweep merge", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", type=Path, metavar="SRC", help="sweep folders (each with sweep.json)")
    p.add_argument("--out", required=True, type=Path, help="the merged sweep folder (may exist)")
    add_common(p, out=None, threads=False, device=False, seed=False, progress=False)
    return p


def _main(argv: list[str] | None = None) -> int:
    args = parse_args(build_parser(), list(sys.argv[1:] if argv is None else argv))
    from obd.io import check_writable

    check_writable(args.out, is_dir=True)
    rows = merge_sweeps(args.sources, args.out)
    datasets = len({r["dataset"] for r in rows})
    print(f"{len(rows)} trials over {datasets} dataset(s) from {len(args.sources)} folder(s): "
          f"{args.out / 'results.jsonl'}, table: {args.out / 'table.md'}", flush=True)
    return 0


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
