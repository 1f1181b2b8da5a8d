"""Shared test fixtures. Data fixtures: private dataset folders and a raw HDF5 writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def data_dirs(tmp_path, monkeypatch):
    """Point ``$D4RL_DATASET_DIR`` and ``$MINARI_DATASETS_PATH`` at empty temp folders; returns both."""
    d4rl, minari = tmp_path / "d4rl", tmp_path / "minari"
    d4rl.mkdir()
    minari.mkdir()
    monkeypatch.setenv("D4RL_DATASET_DIR", str(d4rl))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari))
    return d4rl, minari


@pytest.fixture
def write_h5():
    """``write_h5(path, **arrays)``: write arrays (keys may contain '/') to a raw HDF5 file, no checks."""
    import h5py

    def write(path: Path, **arrays: np.ndarray) -> Path:
        with h5py.File(path, "w") as f:
            for key, arr in arrays.items():
                f.create_dataset(key.replace("__", "/"), data=arr)
        return path

    return write
