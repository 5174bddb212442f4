"""The two install files list the same dependencies, and the entry points exist."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pins(requirements) -> dict[str, str]:
    return {_name(r): r.replace(" ", "")[len(_name(r)):] for r in requirements}


def test_environment_yml_and_pyproject_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_deps = _pins(project["dependencies"] + project["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip_section = [], []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_section += [d for d in dep["pip"] if not d.startswith("-e")]
        elif _name(dep) not in ("python", "pip"):
            conda.append(dep)
    # conda-forge spells POT in lower case; names compare case-insensitively
    env_deps = _pins(conda + pip_section)
    assert env_deps == pip_deps


def test_torch_is_pinned_to_an_installable_build():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins(project["dependencies"])
    assert pins["torch"].startswith("==") and pins["torchvision"].startswith("==")


def test_cli_entry_point_answers_help():
    out = subprocess.run([sys.executable, "-m", "gradeclip", "explain", "--help"], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 0 and "--keep-aspect" in out.stdout and "--text-maps" in out.stdout


def test_gradeclip_does_not_import_pandas_or_snakemake():
    code = ("import sys, gradeclip.explainer, gradeclip.cli, gradeclip.render, gradeclip.toyworld, "
            "gradeclip.datasets, gradeclip.minidata, gradeclip.sam_masks, gradeclip.downloads; "
            "bad = [m for m in ('pandas', 'snakemake', 'analysis') if m in sys.modules]; print(bad); "
            "sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_readme_python_example_runs(capsys):
    """The README's Python API example is runnable as written (from the repository root)."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README has no python example"
    example = blocks[0]
    assert len(example.strip().splitlines()) <= 5
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(compile(example, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    printed = capsys.readouterr().out
    assert printed.strip(), "the example prints its result"
