"""Collection: generating data online in the environments (SAC behavior policies, snapshot selection,
D4RL-style dataset builds). It sits between :mod:`obd.envs` and the datasets of :mod:`obd.data` it writes."""
