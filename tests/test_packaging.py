"""The installed layout: ``gnnkit``, ``gnnkit.samplers`` (from samplers/), ``gnnkit.models`` (from
models/); nothing installed as top-level ``samplers`` or ``models``; every package listed."""
import importlib
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    mapping = conf["package-dir"]
    found = set()
    for name, folder in (("gnnkit", "gnnkit"), ("gnnkit.samplers", "samplers"), ("gnnkit.models", "models")):
        assert mapping[name] == folder
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"


def test_plugin_packages_import_under_gnnkit():
    for mod in ("gnnkit.samplers", "gnnkit.models", "gnnkit.samplers.full", "gnnkit.models.gcn"):
        importlib.import_module(mod)


def test_no_top_level_samplers_or_models():
    # run from a neutral folder so the checkout itself is not on sys.path
    code = ("import importlib.util, sys; "
            "print(importlib.util.find_spec('samplers') is None and importlib.util.find_spec('models') is None)")
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr


def test_cli_errors_are_one_line_with_status_2():
    out = subprocess.run([sys.executable, "-m", "gnnkit", "train", "--sampler", "nope", "--num-nodes", "50"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["gnnkit: error: unknown sampler 'nope'; known: " +
                                               out.stderr.split("known: ")[1].strip()]
    assert "Traceback" not in out.stderr
