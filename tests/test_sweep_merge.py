"""obd sweep merge (one table from sweep folders run apart) and the locked results.jsonl writes that let
several drivers share one sweep folder. No Ray: rows are written as a finished trial's driver writes them."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from obd.sweep import driver
from obd.sweep.__main__ import main

SETTINGS = {"preset": {"objective": "avpbc"}, "overrides": {"outer_steps": 20}, "eval": {"students": 10}}


def row(method: str, seed: int, score: float, dataset: str = "hopper-medium-v5") -> dict:
    return {"dataset": dataset, "spec": dataset, "method": method, "seed": seed,
            "normalized_score_mean": score, "seconds": 1.0, "distill_seconds": 0.5, "task": dataset.split("-")[0],
            "dataset_size": 100, "teacher": "t.pt", "device": "cpu", "ray_node_id": "n1",
            "budget": {"outer_steps": 20, "checkpoint_every": 1, "n_syn": 8}, "eval": {"students": 10}}


def sweep_folder(folder: Path, rows: list[dict], command: str, settings: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps({"settings": settings or SETTINGS,
                                                   "commands": [["obd", "sweep", command]]}))
    driver.write_results(folder, rows)
    return folder


def rows_of(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


def test_merge_gives_one_table_and_keeps_what_the_out_folder_had(tmp_path, capsys):
    a = sweep_folder(tmp_path / "a", [row("avpbc", 0, 30.0), row("teacher", 0, 50.0)], "a")
    b = sweep_folder(tmp_path / "b", [row("avpbc", 1, 34.0), row("avpbc", 0, 30.0),
                                      row("avpbc", 0, 10.0, "walker2d-medium-v5")], "b")
    out = tmp_path / "grid"
    assert main(["merge", str(a), str(b), "--out", str(out)]) == 0
    assert "4 trials over 2 dataset(s) from 2 folder(s)" in capsys.readouterr().out
    merged = rows_of(out)
    assert [(r["dataset"], r["method"], r["seed"]) for r in merged] == [
        ("hopper-medium-v5", "avpbc", 0), ("hopper-medium-v5", "teacher", 0), ("hopper-medium-v5", "avpbc", 1),
        ("walker2d-medium-v5", "avpbc", 0)]
    table = (out / "table.md").read_text()
    assert "| Av-PBC | 32.0 ± 2.0 | 32.5 | 10.0 | 39.5 |" in table
    assert "obd sweep a\nobd sweep b" in table and (out / "table.png").stat().st_size > 0
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["settings"] == SETTINGS and sweep["commands"] == [["obd", "sweep", "a"], ["obd", "sweep", "b"]]

    c = sweep_folder(tmp_path / "c", [row("avpbc", 2, 32.0)], "c")
    assert main(["merge", str(c), "--out", str(out)]) == 0
    assert len(rows_of(out)) == 5 and rows_of(out)[:4] == merged
    assert "| Av-PBC | 32.0 ± 1.6 |" in (out / "table.md").read_text()


@pytest.mark.parametrize("second, message", [
    ([row("avpbc", 0, 31.0)], "trial hopper-medium-v5 avpbc seed0 is also in"),
    (None, "ran with other eval settings"),
])
def test_merge_refuses_conflicting_results_and_settings_with_one_line(tmp_path, capsys, second, message):
    a = sweep_folder(tmp_path / "a", [row("avpbc", 0, 30.0)], "a")
    other = {**SETTINGS, "eval": {"students": 3}}
    b = sweep_folder(tmp_path / "b", second or [row("avpbc", 1, 30.0)], "b", None if second else other)
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "grid")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and str(b) in err and "\n" not in err
    assert not (tmp_path / "grid" / "results.jsonl").exists()


def test_merge_refuses_rows_of_two_builds_of_one_dataset(tmp_path, capsys):
    a = sweep_folder(tmp_path / "a", [{**row("avpbc", 0, 30.0), "dataset_fingerprint": "aa" * 32}], "a")
    b = sweep_folder(tmp_path / "b", [{**row("avpbc", 1, 30.0), "dataset_fingerprint": "bb" * 32},
                                      {**row("avpbc", 1, 9.0, "walker2d-medium-v5"), "dataset_fingerprint": "cc" * 32}],
                     "b")
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "grid")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{b}: its rows for hopper-medium-v5 were made on another build of the data than {a}'s" in err
    assert "\n" not in err and not (tmp_path / "grid" / "results.jsonl").exists()
    # rows that record no build (made before rows recorded one) merge with either
    c = sweep_folder(tmp_path / "c", [row("avpbc", 2, 31.0)], "c")
    assert main(["merge", str(a), str(c), "--out", str(tmp_path / "grid")]) == 0


def test_merge_of_a_folder_that_is_no_sweep(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    assert main(["merge", str(tmp_path / "x"), "--out", str(tmp_path / "grid")]) == 2
    assert "no sweep.json (not an obd sweep folder)" in capsys.readouterr().err


def test_drivers_sharing_a_folder_keep_each_others_rows(tmp_path):
    out = sweep_folder(tmp_path / "grid", [row("avpbc", 0, 30.0)], "a")
    # this driver read one row at its start; another driver recorded a row since
    driver.write_results(out, rows_of(out) + [row("sdw", 0, 20.0)])
    got = driver.record_row(out, row("avpbc", 1, 34.0))
    assert [(r["method"], r["seed"]) for r in got] == [("avpbc", 0), ("sdw", 0), ("avpbc", 1)]
    assert rows_of(out) == got and "| SDW | 20.0 |" in (out / "table.md").read_text()
    # a trial recorded again (re-run after its row was lost elsewhere) replaces its row
    driver.record_row(out, row("sdw", 0, 21.0))
    assert [r["normalized_score_mean"] for r in rows_of(out) if r["method"] == "sdw"] == [21.0]

    threads = [threading.Thread(target=driver.record_row, args=(out, row("dbc", s, float(s)))) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["seed"] for r in rows_of(out) if r["method"] == "dbc") == list(range(8))
    assert len(rows_of(out)) == 11


def test_table_columns_follow_the_papers_order_then_other_datasets():
    from obd.sweep.table import render_table

    table = render_table([row("avpbc", 0, 1.0, "walker2d-medium-v5"), row("avpbc", 0, 2.0, "/x/tiny-v5.hdf5"),
                          row("avpbc", 0, 3.0, "halfcheetah-medium-replay-v5"),
                          row("avpbc", 0, 4.0, "hopper-medium-expert-v5")])
    head = next(line for line in table.splitlines() if line.startswith("| method |"))
    assert head == ("| method | halfcheetah-medium-replay-v5 (ours) | paper | hopper-medium-expert-v5 (ours) | paper "
                    "| walker2d-medium-v5 (ours) | paper | /x/tiny-v5.hdf5 (ours) | paper |")
    assert "| Av-PBC | 3.0 | 35.9 | 4.0 | 38.7 | 1.0 | 39.5 | 2.0 |  |" in table
