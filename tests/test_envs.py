"""obd.envs: env construction details that are not about rollouts (those are in tests/test_evaluate.py)."""

import subprocess
import sys

import mujoco

from obd.envs import _mujoco_warning, make_env


def test_gymnasium_model_deprecations_are_quiet_and_other_mujoco_warnings_still_print(capfd):
    make_env("halfcheetah", seed=0).close()
    out, err = capfd.readouterr()
    assert "settotalmass" not in out + err
    assert mujoco.get_mju_user_warning() is _mujoco_warning
    _mujoco_warning("Nan, Inf or huge value in QACC at DOF 0. The simulation is unstable.")
    assert "WARNING: Nan, Inf or huge value in QACC" in capfd.readouterr().err


def test_minari_writer_of_a_halfcheetah_dataset_is_quiet_in_a_fresh_process(tmp_path):
    # a fresh interpreter: in this one an earlier make_env may already have installed the handler
    script = (
        "import numpy as np\n"
        "from obd.data import Episode, write_minari\n"
        "t = 3\n"
        "ep = Episode(np.zeros((t + 1, 17), np.float32), np.zeros((t, 6), np.float32), np.zeros(t),\n"
        "             np.array([False, False, True]), np.zeros(t, bool))\n"
        f"write_minari('obd/halfcheetah/quiet-v0', [ep], 'HalfCheetah-v5', root={str(tmp_path)!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "settotalmass" not in done.stdout + done.stderr
    assert (tmp_path / "obd" / "halfcheetah" / "quiet-v0").is_dir()
