"""Data layer: the transition dataset, its normalizer, D4RL/Minari readers and writers, dataset builders."""

from obd.data.d4rl import load_d4rl, write_d4rl
from obd.data.dataset import Normalizer, TransitionDataset
from obd.data.loader import dataset_task, load_dataset
from obd.data.minari_io import Episode, load_minari, write_minari

__all__ = ["Normalizer", "TransitionDataset", "load_d4rl", "write_d4rl", "load_minari", "write_minari", "Episode",
           "load_dataset", "dataset_task"]
