"""The offline RL algorithms a teacher is trained with: name -> (algorithm class, its config class)."""

from obd.teachers.calql import CalQL, CalQLConfig
from obd.teachers.iql import IQL, IQLConfig
from obd.teachers.td3bc import TD3BC, TD3BCConfig

ALGOS = {"td3bc": (TD3BC, TD3BCConfig), "iql": (IQL, IQLConfig), "calql": (CalQL, CalQLConfig)}
