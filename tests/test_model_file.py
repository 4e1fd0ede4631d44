"""Model files (gnnkit/model_file.py) and their TorchScript export (gnnkit/model_export.py)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import gnnkit
from gnnkit.errors import GnnkitError
from gnnkit.model_export import csr_inputs, export_model, save_program, script_model
from gnnkit.model_file import FORMAT, _checksum, check_schema, load_model, read_model_file, save_model
from gnnkit.models import build_model
from gnnkit.stores import from_data

from helpers import two_community_graph

CONFIGS = [("gcn", dict(hidden=8)), ("sage", dict(hidden=8, num_layers=3, norm="batch", residual=True)),
           ("mlp", dict(hidden=8, num_layers=3, norm="layer", residual=True)),
           ("gcn", dict(hidden=8, adj_norm="diag", diag_lambda=0.5)), ("sage", dict(hidden=32, num_layers=1))]


def _trained(family: str, data, epochs: int = 5, **kwargs):
    torch.manual_seed(0)
    model = build_model(family, data.num_features, data.num_classes, **kwargs)
    result = gnnkit.Trainer(max_epochs=epochs, progress=False, device="cpu").fit(model, data)
    return model.eval(), result


def _logits(model, data) -> torch.Tensor:
    graph, features = from_data(data)
    return model.inference(features.get("x"), graph.adjacency(model.adj_norm, model.diag_lambda))


@pytest.mark.parametrize("family,kwargs", CONFIGS)
def test_round_trip_rebuilds_the_same_model(tmp_path, family, kwargs):
    data = two_community_graph()
    model, result = _trained(family, data, **kwargs)
    path = str(tmp_path / "m.pt")
    save_model(path, model, data, dataset="two", seed=0, figures={"val": result["val"]})
    again, record = load_model(path)
    assert type(again) is type(model) and (again.adj_norm, again.diag_lambda) == (model.adj_norm, model.diag_lambda)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert torch.equal(_logits(again, data), _logits(model, data))
    assert record["dataset"]["num_features"] == 8 and record["dataset"]["num_classes"] == 2
    assert record["dataset"]["fingerprint"] == gnnkit.data.fingerprint(data)
    assert record["normalization"]["adj_norm"] == model.adj_norm
    assert record["versions"]["torch"] == torch.__version__ and record["training"]["figures"]["val"] == result["val"]
    assert isinstance(torch.load(path, weights_only=True), dict)


def test_reloaded_in_a_new_process_predicts_the_same_logits(tmp_path):
    data = two_community_graph()
    model, _ = _trained("sage", data, hidden=16)
    path, data_path, out = (str(tmp_path / n) for n in ("m.pt", "data.pt", "logits.pt"))
    save_model(path, model, data)
    torch.save({"x": data.x, "edge_index": data.edge_index}, data_path)
    code = ("import sys, torch; from torch_geometric.data import Data; from gnnkit.model_file import load_model; "
            "from gnnkit.stores import from_data\n"
            "m, _ = load_model(sys.argv[1]); d = torch.load(sys.argv[2], weights_only=True)\n"
            "g, f = from_data(Data(x=d['x'], edge_index=d['edge_index'], num_nodes=d['x'].shape[0]))\n"
            "torch.save(m.inference(f.get('x'), g.adjacency(m.adj_norm, m.diag_lambda)), sys.argv[3])\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", code, path, data_path, out], check=True, env=env, timeout=120)
    assert torch.equal(torch.load(out, weights_only=True), _logits(model, data))


def _rewrite(path: str, change, fix_checksum: bool) -> None:
    obj = torch.load(path, weights_only=True)
    change(obj)
    if fix_checksum:
        obj["checksum"] = _checksum(obj)
    torch.save(obj, path)


@pytest.mark.parametrize("change,fix,message", [
    (lambda o: o["weights"]["head.weight"].add_(1e-3), False, "checksum mismatch"),
    (lambda o: o["model"].update(family="gat"), False, "checksum mismatch"),
    (lambda o: o["model"].update(hidden="8"), True, "model.hidden"),
    (lambda o: o["model"].update(hidden=9), True, "do not fit a gcn model"),
    (lambda o: o.pop("dataset"), True, "field 'dataset'"),
    (lambda o: o.update(format="gnnkit-model/9"), False, "this gnnkit reads"),
])
def test_tampered_file_is_refused_naming_the_problem(tmp_path, change, fix, message):
    data = two_community_graph()
    model, _ = _trained("gcn", data, epochs=1, hidden=8)
    path = str(tmp_path / "m.pt")
    save_model(path, model, data)
    _rewrite(path, change, fix)
    with pytest.raises(GnnkitError, match=message):
        load_model(path)


def test_foreign_files_are_refused(tmp_path):
    data = two_community_graph()
    model, _ = _trained("gcn", data, epochs=1, hidden=8)
    cases = {"state.pt": (model.state_dict(), "no format tag"),
             "ckpt.pt": ({"format": "gnnkit-checkpoint/2", "model": {}}, "training checkpoint"),
             "code.pt": ({"format": FORMAT, "obj": gnnkit.Trainer}, "Unsupported global"),
             "list.pt": ([1, 2], "holds a list")}
    for name, (obj, message) in cases.items():
        torch.save(obj, tmp_path / name)
        with pytest.raises(GnnkitError, match=message):
            read_model_file(str(tmp_path / name))
    good = tmp_path / "good.pt"
    save_model(str(good), model, data)
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:2000])
    (tmp_path / "text.pt").write_text('{"format": "gnnkit-model/1"}')
    for name in ("cut.pt", "text.pt"):
        with pytest.raises(GnnkitError, match="not a torch archive"):
            read_model_file(str(tmp_path / name))


def test_schema_check_names_the_difference():
    data = two_community_graph()
    model, _ = _trained("gcn", data, epochs=1, hidden=8)
    record = {"dataset": {"num_features": 8, "num_classes": 2, "feature_dtype": "float32",
                          "fingerprint": gnnkit.data.fingerprint(data)}}
    assert check_schema(record, data, labels=True) == []
    other = two_community_graph(n_per=30, seed=3)
    assert "fingerprint" in check_schema(record, other)[0]
    with pytest.raises(GnnkitError, match="features 5 .*trained on 8"):
        check_schema(record, two_community_graph(num_features=5))
    wide = other.clone()
    wide.num_classes = 3
    with pytest.raises(GnnkitError, match="classes 3"):
        check_schema(record, wide, labels=True)
    half = other.clone()
    half.x = half.x.double()
    with pytest.raises(GnnkitError, match="feature dtype float64"):
        check_schema(record, half)


def _program(model, family: str, kind: str, path: str, example):
    """Write and read back the program of ``model``: ``kind`` torchscript or export."""
    if kind == "torchscript":
        save_program(path, script_model(model, family))
        return torch.jit.load(path)
    save_program(path, export_model(model, family, example))
    return torch.export.load(path).module()


@pytest.mark.parametrize("kind", ["torchscript", "export"])
@pytest.mark.parametrize("family,kwargs", CONFIGS)
def test_exported_program_gives_the_models_logits(tmp_path, family, kwargs, kind):
    data = two_community_graph()
    model, _ = _trained(family, data, **kwargs)
    graph, _ = from_data(data)
    inputs = csr_inputs(graph, model.adj_norm, model.diag_lambda)
    program = _program(model, family, kind, str(tmp_path / "m.prog"), (data.x, *inputs))
    assert torch.equal(program(data.x, *inputs), _logits(model, data))
    new = two_community_graph(n_per=25, seed=7)  # another graph of the same schema, other sizes
    new_graph, _ = from_data(new)
    assert torch.equal(program(new.x, *csr_inputs(new_graph, model.adj_norm, model.diag_lambda)), _logits(model, new))
    assert model.training is False and isinstance(model, gnnkit.models.GNN)
