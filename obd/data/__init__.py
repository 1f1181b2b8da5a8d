"""Data layer: the transition dataset, its normalizer, D4RL/Minari readers and writers, dataset builders."""

from obd.data.dataset import Normalizer, TransitionDataset

__all__ = ["Normalizer", "TransitionDataset"]
