"""Plug-ins from installed packages (issue 27): the ``gnnkit.plugins`` entry-point group.

The packages are "installed" the way importlib.metadata discovers them, without pip: a folder on
``sys.path`` holding the module and a ``*.dist-info`` with ``METADATA`` and ``entry_points.txt``.
Entry points load once per process, so everything runs in one child process.
"""
import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugin_package"

PLUGIN = '''
import torch
from torch_geometric.nn import GCNConv

from gnnkit.samplers.full import FullBatchSampler


class EntrySampler(FullBatchSampler):
    """The full-batch sampler under another name: a sampler from outside gnnkit."""
    name = "entry-full"


class ClashingSampler(FullBatchSampler):
    name = "full"  # gnnkit already has it: refused, the built-in kept


class BadArgs(FullBatchSampler):
    name = "bad-args"

    @classmethod
    def add_args(cls, parser):
        raise RuntimeError("boom in add_args")


class BadBuild(FullBatchSampler):
    name = "bad-build"

    @classmethod
    def from_args(cls, args):
        raise RuntimeError("boom in from_args")


class EntryGCN(torch.nn.Module):
    def __init__(self, in_dim, hidden, out_dim):
        super().__init__()
        self.conv1, self.conv2 = GCNConv(in_dim, hidden), GCNConv(hidden, out_dim)

    def forward(self, x, edge_index):
        return self.conv2(self.conv1(x, edge_index).relu(), edge_index)


def make_gcn(in_dim, out_dim, hidden=16):
    return EntryGCN(in_dim, hidden, out_dim)
'''

DRIVER = '''
import json, sys
from gnnkit.cli import main
from gnnkit.samplers import Sampler
from gnnkit.samplers.full import FullBatchSampler

try:
    main(["train", "--help"])
except SystemExit:
    pass
print("=== builtin full kept:", Sampler.lookup("full") is FullBatchSampler, flush=True)
common = ["--dataset", "csbm", "--num-nodes", "300", "--num-classes", "3", "--num-features", "8",
          "--avg-degree", "4", "--epochs", "2", "--no-progress", "--threads", "1"]
print("=== rc train", main(["train", *common, "--sampler", "entry-full", "--model", "entry-gcn",
                             "--out", sys.argv[1]]), flush=True)
print("=== rc broken", main(["train", *common, "--sampler", "broken-one", "--out", sys.argv[1] + "-b"]), flush=True)
for bad in ("bad-args", "bad-build"):
    print("=== rc", bad, main(["train", *common, "--sampler", bad, "--out", sys.argv[1] + bad]), flush=True)
print("=== rc example", main(["train", *common, "--sampler", "random-edge", "--edges-per-batch", "300",
                               "--out", sys.argv[1] + "-edge"]), main(["train", *common, "--model", "gat",
                               "--hidden", "4", "--out", sys.argv[1] + "-gat"]), flush=True)
'''


def _dist(site, name, version, entries):
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[gnnkit.plugins]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))


def test_installed_plugins_are_listed_train_and_a_broken_one_is_one_line(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "e_plugin_pkg.py").write_text(textwrap.dedent(PLUGIN))
    _dist(site, "e-plugin-pkg", "0.1", {"entry-full": "e_plugin_pkg:EntrySampler",
                                        "entry-gcn": "e_plugin_pkg:make_gcn",
                                        "clash": "e_plugin_pkg:ClashingSampler",
                                        "bad-args": "e_plugin_pkg:BadArgs", "bad-build": "e_plugin_pkg:BadBuild"})
    _dist(site, "broken-pkg", "0.2", {"broken-one": "not_a_module_anywhere:Sampler"})
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]  # the example, as pip would
    _dist(site, project["name"], project["version"], project["entry-points"]["gnnkit.plugins"])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(EXAMPLE), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(out)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    stdout, stderr = proc.stdout, proc.stderr
    assert proc.returncode == 0, stderr[-3000:]
    help_text = " ".join(stdout.split("=== builtin")[0].split())  # argparse wraps lines
    assert "entry-full" in help_text.split("--sampler SAMPLER")[-1].split("--strategy")[0]
    assert "entry-gcn" in help_text.split("--model MODEL")[-1].split("--hidden")[0]
    listed = ("installed plug-ins (entry points): model entry-gcn (e-plugin-pkg 0.1); model gat "
              "(gnnkit-example-plugins 0.1.0); sampler bad-build (e-plugin-pkg 0.1); sampler entry-full "
              "(e-plugin-pkg 0.1); sampler random-edge (gnnkit-example-plugins 0.1.0)")
    assert "".join(listed.split()) in "".join(help_text.split())  # argparse wraps lines anywhere
    assert "--edges-per-batch" in help_text  # a plug-in's own option
    # a plug-in that takes a built-in name is refused; gnnkit's own stays
    assert "=== builtin full kept: True" in stdout
    assert ("gnnkit: plug-in 'clash' of e-plugin-pkg 0.1 (e_plugin_pkg:ClashingSampler) registers sampler 'full', "
            "which is already taken; skipped") in stderr
    # the installed sampler and model train
    assert "=== rc train 0" in stdout
    res = json.loads((out / "results.json").read_text())
    assert res["sampler"] == "entry-full" and res["settings"]["model"] == "entry-gcn" and res["runs"][0]["epochs"] == 2
    # a broken plug-in: one warning line when plug-ins load, one error line when asked for, no traceback
    assert ("gnnkit: plug-in 'broken-one' of broken-pkg 0.2 (not_a_module_anywhere:Sampler) failed to load: "
            "ModuleNotFoundError: No module named 'not_a_module_anywhere'; skipped") in stderr
    assert "=== rc broken 2" in stdout
    errors = [line for line in stderr.splitlines() if line.startswith("gnnkit: error:")]
    assert errors == ["gnnkit: error: plug-in 'broken-one' of broken-pkg 0.2 (not_a_module_anywhere:Sampler) "
                      "failed to load: ModuleNotFoundError: No module named 'not_a_module_anywhere'",
                      "gnnkit: error: plug-in 'bad-args' of e-plugin-pkg 0.1: its add_args failed (RuntimeError: "
                      "boom in add_args)",
                      "gnnkit: error: sampler 'bad-build' of e-plugin-pkg 0.1: from_args failed (RuntimeError: "
                      "boom in from_args)"]
    assert "=== rc bad-args 2" in stdout and "=== rc bad-build 2" in stdout
    assert "Traceback" not in stderr
    # the example package of examples/plugin_package: its sampler and its model train
    assert "=== rc example 0 0" in stdout
    edge = json.loads((tmp_path / "run-edge" / "results.json").read_text())
    assert edge["sampler"] == "random-edge" and edge["settings"]["edges_per_batch"] == 300
    assert json.loads((tmp_path / "run-gat" / "results.json").read_text())["settings"]["model"] == "gat"
