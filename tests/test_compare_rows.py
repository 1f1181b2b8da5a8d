"""scripts/compare_rows.py on a hand-made results.jsonl: paired differences on the seeds both rows ran, the
share of the teacher over the datasets both ran, a one-line error for a method the sweep lacks, and rows of two
builds of one dataset refused."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from obd.errors import ObdError

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("compare_rows", ROOT / "scripts" / "compare_rows.py")
compare_rows = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_rows)

BASE, VARIANT = "avpbc", "avpbc[onpolicy.share=0.25]"


def _row(dataset: str, method: str, seed: int, score: float) -> dict:
    return {"dataset": dataset, "method": method, "seed": seed, "normalized_score_mean": score,
            "checkpoints": [{"step": 10, "per_student": [score - 1.0, score, score + 1.0]}]}


@pytest.fixture
def sweep(tmp_path):
    rows = [_row("a", "teacher", 0, 50.0), _row("b", "teacher", 0, 80.0)]
    rows += [_row("a", BASE, s, 20.0 + s) for s in (0, 1, 2)] + [_row("a", VARIANT, s, 25.0 + s) for s in (0, 1)]
    rows += [_row("b", BASE, 0, 40.0)]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def test_paired_on_common_seeds_and_share_of_teacher(sweep):
    text = compare_rows.compare(sweep, BASE, [VARIANT], None)
    variant_line = next(line for line in text.splitlines() if line.startswith(VARIANT + ":") and "paired" in line)
    assert "25.0 / 26.0 (seeds 0,1); mean 25.5" in variant_line
    assert "paired +5.0 / +5.0 (mean +5.0)" in variant_line
    # only dataset a has both rows: 25.5 / 50 against the base's 20.5 / 50 on the same seeds
    assert f"{VARIANT}: 51.0% of the teacher against the base's 41.0% on 1 datasets" in text
    # the IQM over datasets of the trials' scores, on the seeds both ran: (25, 26) against (20, 21)
    assert f"{VARIANT}: IQM of the trials' scores over 1 datasets 25.5 [" in text
    assert "against the base's 20.5 [" in text


def test_unknown_method_is_a_one_line_error(sweep, capsys):
    with pytest.raises(ObdError, match="no rows for method"):
        compare_rows.compare(sweep, BASE, ["avpbc[beta=1]"], None)
    assert compare_rows.main([str(sweep), "--base", BASE, "--methods", "avpbc[beta=1]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "avpbc[beta=1]" in err[0]


def test_rows_of_two_builds_of_one_dataset_are_not_paired(tmp_path):
    rows = [{**_row("a", BASE, 0, 20.0), "dataset_fingerprint": "aa" * 32},
            {**_row("a", VARIANT, 0, 30.0), "dataset_fingerprint": "bb" * 32}]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ObdError, match="rows for a were made on two builds of its data"):
        compare_rows.compare(tmp_path, BASE, [VARIANT], None)


def test_task_method_takes_another_rows_on_that_tasks_datasets(tmp_path, capsys):
    """A preset with a ``tasks:`` entry for hopper: its rows are the variant's on hopper, the base's elsewhere."""
    rows = [_row("hopper-medium-v5", "teacher", 0, 50.0), _row("walker2d-medium-v5", "teacher", 0, 80.0)]
    rows += [_row("hopper-medium-v5", BASE, 0, 20.0), _row("hopper-medium-v5", VARIANT, 0, 30.0)]
    rows += [_row("walker2d-medium-v5", BASE, 0, 40.0), _row("walker2d-medium-v5", VARIANT, 0, 10.0)]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = compare_rows.compare(tmp_path, BASE, [BASE], None, {"hopper": VARIANT})
    # (30 / 50 + 40 / 80) / 2 = 55% against (20 / 50 + 40 / 80) / 2 = 45%
    assert f"{BASE}: 55.0% of the teacher against the base's 45.0% on 2 datasets" in text
    assert f"the methods' rows on hopper: {VARIANT}" in text
    assert compare_rows.main([str(tmp_path), "--base", BASE, "--methods", BASE, "--task-method", "hoper=avpbc"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--task-method" in err[0] and "hoper" in err[0]
