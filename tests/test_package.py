"""Packaging: the wheel carries the shipped assets (and no benchmark) and works from any folder; one `obd` command whose
`--help` is fast; every third-party import is declared; shipped assets resolve by name."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from obd.assets import configs_dir, list_presets, resolve_asset, tasks_dir
from obd.errors import ObdError

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_wheel_installs_and_runs_from_another_folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "obd", src / "obd", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(src)], check=True, capture_output=True, env=ENV, timeout=120)
    wheel = next(wheels.glob("obd-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        modules = [n for n in zf.namelist() if n.endswith(".py")]
    assert "obd/distill/engine.py" in modules and "obd/configs/fast.yaml" in zipfile.ZipFile(wheel).namelist()
    # benchmarks and their reference implementations live in scripts/, not in what users install
    benches = [n for n in modules if "bench" in Path(n).name or Path(n).name in ("compare.py", "reproduce.py")]
    assert not benches, f"benchmark modules in the wheel: {benches}"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True,
                   timeout=60)
    python = venv / "bin" / "python"
    # --system-site-packages reaches the base interpreter's packages, not those of the venv running the
    # tests (where torch lives on a fresh clone); a plain path line appends them after the wheel's site
    # without running their .pth files, so the repository's editable obd stays out of sight.
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "obd_test_parent_env.pth").write_text("".join(f"{d}\n" for d in sorted(here)))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, env=ENV, timeout=120)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*cmd: str) -> subprocess.CompletedProcess:
        done = subprocess.run(cmd, cwd=elsewhere, capture_output=True, text=True, env=ENV, timeout=120)
        assert done.returncode == 0, done.stderr
        return done

    where = run(str(python), "-c", "import obd, obd.assets as a; print(obd.__file__); print(a.tasks_dir())")
    site = str(venv / "lib")
    assert all(line.startswith(site) for line in where.stdout.split()), where.stdout  # not the repository's obd
    assert "stages:" in run(str(venv / "bin" / "obd"), "--help").stdout
    printed = run(str(venv / "bin" / "obd"), "distill", "--config", "fast_avpbc", "--print-config").stdout
    assert "outer_steps: 3000" in printed
    scored = run(str(venv / "bin" / "obd"), "evaluate", "teacher", "hopper-medium-v5", "--episodes", "1",
                 "--max-steps", "5", "--threads", "1", "--json").stdout
    assert '"task": "hopper"' in scored and '"episode_length_mean": 5.0' in scored


@pytest.mark.parametrize("argv", [[], ["collect"], ["collect", "build"], ["data"], ["data", "inspect"],
                                  ["collect", "train-behavior"], ["teacher"],
                                  ["teacher", "train"], ["evaluate"], ["evaluate", "synthetic"], ["report"]])
def test_help_does_not_import_torch(argv):
    code = (f"import sys\nfrom obd.__main__ import main\ntry:\n    main({[*argv, '--help']!r})\n"
            "except SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def test_one_command_dispatches_every_stage(capsys):
    from obd.__main__ import STAGES, main

    assert set(STAGES) >= {"collect", "data", "teacher", "distill", "evaluate", "report", "quickstart", "sweep"}
    assert main(["nope"]) == 2
    assert "unknown stage 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    help_text = capsys.readouterr().out
    assert "usage: obd distill" in help_text and "outer.lr" in help_text and "float = 0.01" in help_text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["obd"] == "obd.__main__:main"


def test_python_m_stage_still_works():
    done = subprocess.run([sys.executable, "-m", "obd.evaluate", "--help"], cwd=ROOT, capture_output=True,
                          text=True, env=ENV, timeout=60)
    assert done.returncode == 0 and "usage: obd evaluate" in done.stdout


def _third_party_imports() -> set[str]:
    found = set()
    for path in (ROOT / "obd").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "obd"}


def test_every_third_party_import_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {r.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower()
                for r in project["dependencies"] + sum(project["optional-dependencies"].values(), [])}
    dists = importlib.metadata.packages_distributions()
    missing = {}
    for module in _third_party_imports():
        names = {d.lower() for d in dists.get(module, [module])}
        if not names & declared:
            missing[module] = sorted(names)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_dependencies_have_no_upper_caps():
    """Users get new releases (torch among them); a build is pinned in the install command, not in the range.
    The one cap is a known break upstream: rliable 1.2 requires arch < 8, and arch 7 fails to import under
    pandas 3."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    capped = [r for r in project["dependencies"] if ("<" in r or "==" in r) and r != "pandas<3"]
    assert not capped and "torch>=2.1" in project["dependencies"], capped


def test_package_data_globs_cover_the_shipped_files():
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["obd"]
    shipped = [p for p in (ROOT / "obd").rglob("*") if p.is_file() and p.suffix in (".pt", ".yaml")]
    assert shipped and all(any(p.relative_to(ROOT / "obd").match(g) for g in globs) for p in shipped)
    assert {"hopper", "halfcheetah", "walker2d"} <= {p.parent.name for p in tasks_dir().glob("*/task.yaml")}


@pytest.mark.parametrize("task", ["hopper", "halfcheetah", "walker2d"])
def test_every_benchmark_dataset_ships_one_teacher_trained_on_it(task):
    """A stale teacher beside a new one would win by algorithm preference, so each dataset ships exactly one,
    and its provenance names that dataset's full build."""
    from obd.teachers import ALGOS, Teacher

    for level in ("medium-replay", "medium", "medium-expert"):
        files = [f for a in ALGOS if (f := tasks_dir() / task / f"teacher_{a}_{level.replace('-', '_')}.pt").is_file()]
        assert len(files) == 1, f"{task}-{level}: {[f.name for f in files]}"
        meta = Teacher.load(files[0]).metadata
        assert meta["dataset"] == f"{task}-{level}-v5" and len(meta["dataset_sha256"]) == 64
        assert meta["training_steps"] > 0 and meta["normalized_score"] is not None
        assert resolve_asset("teacher", f"{task}-{level}-v5") == files[0]


def test_shipped_assets_resolve_by_name(tmp_path, monkeypatch):
    hopper = tasks_dir() / "hopper"
    assert resolve_asset("teacher", "hopper-medium-v5") == hopper / "teacher_td3bc_medium.pt"
    assert resolve_asset("teacher", "hopper-medium-replay-v5") == hopper / "teacher_td3bc_medium_replay.pt"
    assert resolve_asset("teacher", "hopper-medium:td3bc") == hopper / "teacher_td3bc_medium.pt"
    assert resolve_asset("behavior", "walker2d-expert-v5") == tasks_dir() / "walker2d" / "behavior_expert.pt"
    assert resolve_asset("task", "hopper") == hopper / "task.yaml"
    assert resolve_asset("config", "fast") == configs_dir() / "fast.yaml"
    assert resolve_asset("config", "fast.yaml") == configs_dir() / "fast.yaml"
    assert {"fast", "paper", "small", "quickstart", "teacher_td3bc"} <= set(list_presets())
    # a file on disk wins over a shipped name
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hopper-medium-v5").write_bytes(b"x")
    assert resolve_asset("teacher", "hopper-medium-v5") == Path("hopper-medium-v5")
    for kind, name, expect in [("teacher", "hopper-expert-v5", "no shipped teacher_<algo>_expert.pt"),
                               ("teacher", "hopper-medium:iql", "teacher_iql_medium.pt"),
                               ("teacher", "ant-medium-v5", "unknown task 'ant'"),
                               ("teacher", "hopper-median-v5", "level one of"),
                               ("teacher", "nope.pt", "nope.pt: teacher file not found"),
                               # the folders the assets lived in before they were package data
                               ("teacher", "envs/hopper/teacher_td3bc_medium.pt", "teacher file not found"),
                               ("config", "configs/paper.yaml", "no such file and no shipped preset"),
                               ("config", "fastest", "no shipped preset of that name; presets: ["),
                               ("behavior", "hopper-medium-replay", "ships no medium-replay policy")]:
        with pytest.raises(ObdError, match=expect.replace("[", r"\[").replace("(", r"\(")):
            resolve_asset(kind, name)


def test_each_command_has_one_spelling():
    """``obd collect`` builds data (``obd data`` only inspects it); ``obd teacher`` is ``obd.teachers``."""
    import importlib.util

    from obd.collect.__main__ import build_parser as collect_parser
    from obd.data.__main__ import build_parser as data_parser

    def commands(parser):
        return set(parser._subparsers._group_actions[0].choices)

    assert commands(collect_parser()) == {"build", "train-behavior", "select-behavior"}
    assert commands(data_parser()) == {"inspect"}
    assert importlib.util.find_spec("obd.teacher") is None


def test_shipped_behavior_policies_load_in_todays_layout():
    from obd.collect.behavior import load_behavior_policy

    files = sorted(tasks_dir().glob("*/behavior_*.pt"))
    assert len(files) == 6
    for path in files:
        actor, meta = load_behavior_policy(path)  # strict: every parameter under its current name
        assert actor.log_std_multiplier.item() == 1.0 and actor.log_std_offset.item() == 0.0, path
        assert meta["obs_dim"] == actor.net[0].in_features, path


def _obd_imports() -> dict[str, set[str]]:
    """module -> the obd modules it imports anywhere (inside functions too; not under ``if TYPE_CHECKING``)."""
    def name_of(path: Path) -> str:
        parts = path.relative_to(ROOT).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    files = {name_of(p): p for p in (ROOT / "obd").rglob("*.py")}
    graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
        deps = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("obd"):
                deps |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                         for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in files}
        graph[module] = deps & set(files) - {module}
    return graph


def test_no_import_cycle_in_the_package():
    graph = _obd_imports()
    assert {"obd.distill.config", "obd.distill.engine", "obd.distill.registry"} <= set(graph)
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        for dep in sorted(graph[module]):
            visit(dep, path + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
