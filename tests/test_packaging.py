"""The install lists: `pip install .` (core) is enough for the library and the gradeclip command, the study and
test extras cover every import of the analyses, the workflow and the tests, environment.yml lists the same packages,
and the entry points exist."""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from gradeclip import extras

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CORE = PROJECT["dependencies"]
STUDY = PROJECT["optional-dependencies"]["study"]
TEST = PROJECT["optional-dependencies"]["test"]
TOY_CLIP = ROOT / "data" / "toy_clip" / "gradeclip-toy-ViT.pt"
SAMPLE_SCENE = ROOT / "data" / "sample" / "toy_scene.png"
# run with the authors' own packages (its docstring lists them), not with this project's
STANDALONE = {ROOT / "tests" / "authors_code_reference.py"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pins(requirements) -> dict[str, str]:
    return {_name(r): r.replace(" ", "")[len(_name(r)):] for r in requirements}


def _canonical(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_environment_yml_lists_core_study_and_test():
    pip_deps = _pins(CORE + STUDY + TEST)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip_section = [], []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_section += [d for d in dep["pip"] if not d.startswith("-e")]
        elif _name(dep) not in ("python", "pip"):
            conda.append(dep)
    # conda-forge spells POT in lower case; names compare case-insensitively
    env_deps = _pins(conda + pip_section)
    assert len(env_deps) == len(conda) + len(pip_section), "a package listed twice in environment.yml"
    assert env_deps == pip_deps


def test_extras_are_study_and_test_each_package_listed_once():
    assert set(PROJECT["optional-dependencies"]) == {"study", "test"}
    names = [_name(r) for r in CORE + STUDY + TEST]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_make_install_installs_the_study_and_test_extras():
    """make run needs the study extra (the workflow), make test the test extra too; .ci/run runs make test."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r'pip install [^\n]*-e "\.\[study,test\]"', makefile)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


# ------------------------------------------------------------------------------------------ imports vs. the lists
def _imports(path: Path) -> set[str]:
    """Top-level names of the modules ``path`` imports (absolute imports, lazy ones inside functions included)."""
    if path.suffix == ".py":
        tree = ast.parse(path.read_text(), filename=str(path))
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {a.name.partition(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.add(node.module.partition(".")[0])
        return found
    # Snakefile / .smk: Python statements in a Snakemake file, not parseable as Python as a whole
    return {m.group(1).partition(".")[0]
            for m in re.finditer(r"^\s*(?:from|import)\s+([\w.]+)", path.read_text(), flags=re.M)}


def _third_party(paths) -> dict[str, set[str]]:
    """Third-party top-level module -> the files importing it (stdlib and this repository's own packages left out)."""
    local = {p.name for p in ROOT.iterdir() if p.is_dir()} | {"scripts"} | \
        {p.stem for folder in ("tests", "benchmarks", "workflow/scripts") for p in (ROOT / folder).glob("*.py")}
    found: dict[str, set[str]] = {}
    for path in paths:
        if path in STANDALONE:
            continue
        for module in _imports(path) - set(sys.stdlib_module_names) - local - {"__future__"}:
            found.setdefault(module, set()).add(str(path.relative_to(ROOT)))
    return found


def _distributions(module: str) -> set[str]:
    distributions = metadata.packages_distributions().get(module)
    assert distributions, f"{module}: imported, but no installed distribution provides it"
    return {_canonical(d) for d in distributions}


def _declared(requirements) -> set[str]:
    return {_canonical(Requirement(r).name) for r in requirements}


def _py_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_gradeclip_imports_core_packages_or_optional_ones_through_extras():
    """Every third-party import under gradeclip/ is a core package; the rest (the study extra's) are never imported
    by an import statement there but through gradeclip.extras.require, with a literal module name from
    extras.OPTIONAL whose distribution is in the extra it names."""
    core = _declared(CORE)
    direct = _third_party(_py_files("gradeclip"))
    outside = {m: files for m, files in direct.items() if not _distributions(m) & core}
    assert not outside, f"gradeclip/ imports packages that pip install . does not install: {outside}"
    for module, (distribution, extra) in extras.OPTIONAL.items():
        assert _canonical(distribution) in _declared(PROJECT["optional-dependencies"][extra]), module
        assert _canonical(distribution) not in core, f"{module} is core: no need to import it through extras"
    required = []
    for path in _py_files("gradeclip"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require":
                names = [n.value for n in ast.walk(node.args[0]) if isinstance(n, ast.Constant)]
                assert names, f"{path}:{node.lineno}: require() with computed module names"
                required += names
    assert {"skimage.data", "skimage.measure", "segment_anything"} <= set(required)
    assert all(name.partition(".")[0] in extras.OPTIONAL for name in required), required


def test_analysis_and_workflow_imports_are_core_or_study():
    files = _py_files("analysis", "workflow") + [ROOT / "Snakefile", *sorted((ROOT / "workflow").rglob("*.smk"))]
    declared = _declared(CORE + STUDY)
    missing = {m: files for m, files in _third_party(files).items() if not _distributions(m) & declared}
    assert not missing, f"imported by the analyses or the workflow, in neither core nor the study extra: {missing}"


def test_tests_and_benchmarks_imports_are_core_study_or_test():
    declared = _declared(CORE + STUDY + TEST)
    missing = {m: files for m, files in _third_party(_py_files("tests", "benchmarks")).items()
               if not _distributions(m) & declared}
    assert not missing, f"imported by tests or benchmarks, not in pyproject's lists: {missing}"


# ------------------------------------------------------------------------------------------ a core install, simulated
def _installed_closure(requirements) -> set[str]:
    """The distributions ``pip install`` of ``requirements`` brings, read from the installed packages' metadata
    (requirements whose markers hold here; a requirement's own extras followed)."""
    seen: dict[str, set[str]] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = _canonical(req.name)
        extras_wanted = set(req.extras)
        if name in seen and extras_wanted <= seen[name]:
            continue
        seen[name] = seen.get(name, set()) | extras_wanted
        for line in metadata.requires(name) or []:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in ["", *seen[name]]):
                todo.append(sub)
    return set(seen)


CHILD = r"""
import contextlib, io, json, sys, traceback
blocked, commands = set(json.loads(sys.argv[1])), json.loads(sys.argv[2])
already = sorted(m for m in sys.modules if m.partition(".")[0] in blocked)

class NotInACoreInstall:
    # every finder answers "no such module" for a blocked name, as when it is not installed (torch probes
    # importlib.util.find_spec("pandas"), which must then return None, not raise)
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, attribute):
        return getattr(self.finder, attribute)

sys.meta_path[:] = [NotInACoreInstall(finder) for finder in sys.meta_path]
from gradeclip.cli import main
results = []
for argv in commands:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exit:
            rc = exit.code
        except BaseException:
            rc = "crashed"
            traceback.print_exc()
    results.append({"argv": argv, "rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()})
try:
    import analysis.stats
    analysis_error = None
except ImportError as error:
    analysis_error = f"{type(error).__name__}: {error}"
print(json.dumps({"already": already, "results": results, "analysis": analysis_error,
                  "loaded": sorted(m for m in sys.modules if m.partition(".")[0] in blocked)}))
"""


@pytest.fixture(scope="module")
def core_only(tmp_path_factory):
    """The gradeclip command's sub-commands run in a Python where only the modules of a core install
    (`pip install .`: pyproject's dependencies and what they bring) can be imported; every other installed package
    (the study and test extras and what they bring) raises ImportError as if it were not installed."""
    allowed = _installed_closure(CORE) | {"gradeclip-study", "pip", "setuptools"}
    blocked = sorted(module for module, distributions in metadata.packages_distributions().items()
                     if not {_canonical(d) for d in distributions} & allowed)
    assert {"pandas", "scipy", "statsmodels", "snakemake", "seaborn", "skimage", "segment_anything",
            "pytest"} <= set(blocked), "the core install would bring a study package"
    tmp = tmp_path_factory.mktemp("core")
    toy = ["--checkpoint", str(TOY_CLIP), "--threads", "1"]
    commands = {
        "help": ["--help"],
        "explain": ["explain", str(SAMPLE_SCENE), "--model", "gradeclip-toy-ViT", "--pretrained", str(TOY_CLIP),
                    "--text", "a large red metal cube", "--text", "a small green sphere", "--text-maps",
                    "--out", str(tmp / "explain"), "--quiet"],
        "generate": ["toyworld", "generate", "--out", str(tmp / "scenes"), "--n", "2", "--seed", "0",
                     "--image-size", "64"],
        "train": ["toyworld", "train", "--out", str(tmp / "toy.pt"), "--steps", "1", "--threads", "1"],
        "evaluate": ["toyworld", "evaluate", *toy, "--out", str(tmp / "metrics.json"), "--n-scenes", "4"],
        "benchmark": ["toyworld", "benchmark", "--method", "grad-cam", *toy, "--out", str(tmp / "grad-cam.json"),
                      "--n-scenes", "2"],
        "compare": ["toyworld", "compare", "--table-from", str(ROOT / "data" / "toy_clip" / "baselines.json")],
        "mini-data": ["mini-data", "--out", str(tmp / "mini")],
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(blocked), json.dumps(list(commands.values()))],
                          capture_output=True, text=True, cwd=tmp, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    report["results"] = dict(zip(commands, report["results"]))
    return tmp, report


def test_core_install_imports_nothing_of_the_extras(core_only):
    _, report = core_only
    assert report["already"] == [] and report["loaded"] == []


@pytest.mark.parametrize("command", ["help", "explain", "generate", "train", "evaluate", "benchmark", "compare"])
def test_core_install_runs_the_library_commands(core_only, command):
    tmp, report = core_only
    result = report["results"][command]
    assert result["rc"] == 0, result["stderr"][-3000:]
    if command == "help":
        assert all(name in result["stdout"] for name in ("explain", "toyworld", "mini-data"))
    if command == "explain":
        rows = (tmp / "explain" / "scores.csv").read_text().splitlines()
        assert len(rows) == 3
        written = {"".join(p.suffixes) for p in (tmp / "explain").rglob("*.*")}
        assert {".png", ".npz", ".words.csv", ".words.png"} <= written
    if command == "evaluate":
        assert json.loads((tmp / "metrics.json").read_text())
    if command == "benchmark":
        assert json.loads((tmp / "grad-cam.json").read_text())["n_scored"] == 2


def test_core_install_names_the_extra_where_one_is_needed(core_only):
    """mini-data needs scikit-image and SAM: one line naming them and the pip command, exit status 2, no folder; the
    analysis package says the same on import."""
    tmp, report = core_only
    result = report["results"]["mini-data"]
    assert result["rc"] == 2 and result["stdout"] == ""
    assert result["stderr"] == ("error: gradeclip mini-data needs scikit-image, segment-anything, which the core "
                                "install leaves out: pip install \"gradeclip-study[study]\"\n")
    assert not (tmp / "mini").exists()
    assert report["analysis"].startswith("MissingExtraError: the analysis package (analysis/) needs pandas, scipy, "
                                         "statsmodels")
    assert report["analysis"].endswith('pip install "gradeclip-study[study]"')


def test_torch_is_pinned_to_an_installable_build():
    pins = _pins(CORE)
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
