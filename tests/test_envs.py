"""obd.envs: env construction details that are not about rollouts (those are in tests/test_evaluate.py)."""

import mujoco

from obd.envs import _mujoco_warning, make_env


def test_gymnasium_model_deprecations_are_quiet_and_other_mujoco_warnings_still_print(capfd):
    make_env("halfcheetah", seed=0).close()
    out, err = capfd.readouterr()
    assert "settotalmass" not in out + err
    assert mujoco.get_mju_user_warning() is _mujoco_warning
    _mujoco_warning("Nan, Inf or huge value in QACC at DOF 0. The simulation is unstable.")
    assert "WARNING: Nan, Inf or huge value in QACC" in capfd.readouterr().err
