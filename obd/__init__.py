"""obd: offline behavior distillation.

Pipeline, bottom to top: ``obd.data`` / ``obd.envs`` -> ``obd.teachers`` -> ``obd.distill`` -> ``obd.evaluate``.
Nothing below imports anything above.
"""

__version__ = "0.1.0"
