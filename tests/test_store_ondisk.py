"""The on-disk store (gnnkit.stores.ondisk): round trips, refusals, atomic conversion, the convert command."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import networkx as nx
import pytest
import torch
from torch_geometric.data import Data

from gnnkit.cli import main
from gnnkit.data import load
from gnnkit.data.csbm import csbm
from gnnkit.errors import GnnkitError
from gnnkit.stores import from_data
from gnnkit.stores.ondisk import copy_store, open_store, read_metadata, to_data, write_csbm, write_data
from gnnkit.stores.ondisk import writer as writer_mod

CORA_NPZ = Path("/work/shared/data/npz/cora.npz")
SMALL = dict(num_nodes=700, avg_degree=6.0, num_features=12, num_classes=4, seed=5)


def assert_same_stores(mem, disk, probe_seed: int = 0) -> None:
    """Every question of the two interfaces answered alike by the in-memory and the on-disk store."""
    (g0, f0), (g1, f1) = mem, disk
    assert (g1.num_nodes, g1.num_edges, g1.is_symmetric) == (g0.num_nodes, g0.num_edges, g0.is_symmetric)
    (p0, i0), (p1, i1) = g0.csr(), g1.csr()
    assert torch.equal(p0, p1) and torch.equal(i0, i1.long())
    assert torch.equal(g0.edge_index(), g1.edge_index())
    assert torch.equal(g0.in_degree(), g1.in_degree())
    gen = torch.Generator().manual_seed(probe_seed)
    ids = torch.randint(0, g0.num_nodes, (200,), generator=gen)  # unsorted, with repeats
    for a, b in zip(g0.neighbors(ids), g1.neighbors(ids)):
        assert torch.equal(a, b) and a.dtype == b.dtype
    draws = [g.sample_neighbors(ids, 3, torch.Generator().manual_seed(1)) for g in (g0, g1)]
    assert all(torch.equal(a, b) and a.dtype == b.dtype for a, b in zip(*draws))
    nodes = torch.randperm(g0.num_nodes, generator=gen)[: g0.num_nodes // 3]
    assert torch.equal(g0.induced_subgraph(nodes), g1.induced_subgraph(nodes))
    for norm, lam in (("gcn", 0.0), ("mean", 0.0), ("diag", 0.5)):
        a, b = g0.adjacency(norm, lam).csr, g1.adjacency(norm, lam).csr
        for fa, fb in ((a.crow_indices, b.crow_indices), (a.col_indices, b.col_indices), (a.values, b.values)):
            assert torch.equal(fa(), fb())
    assert (g1.csr_by_source, g1.symmetric_adjacency) == (g0.csr_by_source, g0.symmetric_adjacency)
    for what in ("edge_weight", "csr_weight", "csr_edge_ids", "weighted_in_degree"):
        a, b = getattr(g0, what)(), getattr(g1, what)()
        assert (a is None and b is None) or torch.equal(a, b), what
    draws = [g.sample_edges(ids, 3, torch.Generator().manual_seed(2)) for g in (g0, g1)]
    assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(*draws))
    assert f0.names() == f1.names()
    for name in f0.names():
        assert f1.shape(name) == f0.shape(name) and f1.dtype(name) == f0.dtype(name)
        assert torch.equal(f0.get(name), f1.get(name)), name
        assert torch.equal(f0.get(name, ids), f1.get(name, ids)), name
    assert f1.meta.get("num_classes") == f0.meta.get("num_classes")


def round_trip(data, path):
    write_data(data, path)
    return from_data(data), open_store(path, verify=True)


def test_csbm_round_trip(tmp_path):
    data = csbm(**SMALL, degree_exponent=2.5)
    assert_same_stores(*round_trip(data, tmp_path / "s"))


def test_streamed_csbm_is_csbm(tmp_path):
    """csbm written chunk by chunk into a store equals csbm() in memory, bit for bit."""
    options = dict(SMALL, degree_exponent=2.5, label_noise=0.2)
    write_csbm(tmp_path / "s", **options)
    assert_same_stores(from_data(csbm(**options)), open_store(tmp_path / "s", verify=True))


@pytest.mark.skipif(not CORA_NPZ.is_file(), reason=f"{CORA_NPZ} is not on this machine")
def test_npz_cora_round_trip(tmp_path):
    assert_same_stores(*round_trip(load(str(CORA_NPZ)), tmp_path / "cora"))


@pytest.mark.parametrize("directed", [False, True])
def test_networkx_round_trip(tmp_path, directed):
    """networkx graphs come in G.edges order, not sorted: the store keeps that order (edge_order)."""
    G = nx.gnm_random_graph(120, 400, seed=3, directed=directed)
    for v in G.nodes:
        G.nodes[v]["x"] = [float(v % 7), float(v % 3)]
        G.nodes[v]["y"] = v % 3
    assert_same_stores(*round_trip(load(G), tmp_path / "nx"))


def test_unsorted_weighted_edges_keep_their_order(tmp_path):
    gen = torch.Generator().manual_seed(0)
    ei = torch.randint(0, 50, (2, 300), generator=gen)
    w = torch.rand(300, generator=gen)
    data = Data(edge_index=ei, edge_weight=w, x=torch.randn(50, 3, generator=gen), num_nodes=50)
    write_data(data, tmp_path / "w")
    graph, _ = open_store(tmp_path / "w")
    assert "edge_order" in read_metadata(tmp_path / "w")["arrays"]
    assert torch.equal(graph.edge_index(), ei) and torch.equal(graph.edge_weight(), w)
    assert torch.equal(to_data(tmp_path / "w").edge_weight, w)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_features(tmp_path, dtype):
    data = csbm(**SMALL)
    name = str(dtype).split(".")[1]
    write_data(data, tmp_path / "h", feature_dtype=name)
    _, features = open_store(tmp_path / "h", verify=True)
    assert features.stored_dtype("x") == dtype and features.dtype("x") == torch.float32
    ids = torch.tensor([5, 1, 5, 690])
    assert torch.equal(features.get("x", ids), data.x[ids].to(dtype).float())
    copy_store(tmp_path / "h", tmp_path / "f32", feature_dtype="float32")
    assert torch.equal(open_store(tmp_path / "f32")[1].get("x"), data.x.to(dtype).float())


def test_feature_cache_serves_the_same_rows(tmp_path):
    data = csbm(**SMALL)
    write_data(data, tmp_path / "s")
    graph, features = open_store(tmp_path / "s")
    row = 12 * 4 + 8
    assert features.cache_rows("x", 100 * row, graph.in_degree()) == 100
    ids = torch.randint(0, 700, (500,), generator=torch.Generator().manual_seed(2))
    assert torch.equal(features.get("x", ids), data.x[ids])
    assert features.cache_rows("x", 0, graph.in_degree()) == 0


def _corrupt(path: Path, name: str, how: str) -> None:
    file = path / f"{name}.bin"
    data = bytearray(file.read_bytes())
    if how == "truncate":
        data = data[:-4]
    else:
        data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["indices", "x", "train_mask"])
def test_truncated_array_refused(tmp_path, name):
    write_data(csbm(**SMALL), tmp_path / "s")
    _corrupt(tmp_path / "s", name, "truncate")
    with pytest.raises(GnnkitError, match=f"array '{name}' is truncated"):
        open_store(tmp_path / "s")


@pytest.mark.parametrize("name", ["indices", "x", "y"])
def test_corrupted_array_refused_when_verified(tmp_path, name, capsys):
    write_data(csbm(**SMALL), tmp_path / "s")
    _corrupt(tmp_path / "s", name, "flip")
    open_store(tmp_path / "s")  # sizes are right: opens without verification
    with pytest.raises(GnnkitError, match=f"array '{name}' is corrupted"):
        open_store(tmp_path / "s", verify=True)
    assert main(["convert", str(tmp_path / "s"), str(tmp_path / "copy"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"array '{name}' is corrupted" in err[0]
    assert not (tmp_path / "copy").exists()


def test_corrupted_indptr_refused(tmp_path):
    write_data(csbm(**SMALL), tmp_path / "s")
    file = tmp_path / "s" / "indptr.bin"
    t = torch.from_file(str(file), shared=True, size=701, dtype=torch.int64)
    t[-1] += 1
    del t
    with pytest.raises(GnnkitError, match="array 'indptr' is corrupted"):
        open_store(tmp_path / "s")


def _leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("streamed", [False, True])
def test_interrupted_conversion_leaves_no_store(tmp_path, monkeypatch, streamed):
    """An error midway (here: the third chunk appended) leaves neither the store nor its temporary folder."""
    calls = []
    append = writer_mod.ArrayWriter.append

    def failing(self, chunk):
        calls.append(self.name)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed midway")
        append(self, chunk)

    monkeypatch.setattr(writer_mod.ArrayWriter, "append", failing)
    with pytest.raises(KeyboardInterrupt):
        if streamed:
            write_csbm(tmp_path / "s", **SMALL)
        else:
            write_data(csbm(**SMALL), tmp_path / "s")
    assert _leftovers(tmp_path) == []


def test_killed_conversion_does_not_open(tmp_path):
    """A process killed before commit leaves a .partial folder without metadata: never a store."""
    w = writer_mod.StoreWriter(tmp_path / "s")
    w.write("indptr", torch.zeros(3, dtype=torch.long), role="graph")
    w.array("indices", torch.int32, role="graph").close()
    os.rename(w.tmp, tmp_path / "s")  # even renamed into place by hand
    with pytest.raises(GnnkitError, match="not a complete gnnkit store"):
        open_store(tmp_path / "s")


def test_convert_command(tmp_path, capsys):
    out = tmp_path / "c"
    argv = ["convert", "csbm", str(out), "--num-nodes", "700", "--avg-degree", "6", "--num-features", "12",
            "--num-classes", "4", "--graph-seed", "5", "--feature-dtype", "float16", "--no-progress"]
    assert main(argv) == 0
    assert "700 nodes" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta["arrays"]["x"]["dtype"] == "float16" and meta["arrays"]["indices"]["dtype"] == "int32"
    _, features = open_store(out, verify=True)
    assert torch.equal(features.get("x"), csbm(**SMALL).x.half().float())
    assert main(argv) == 2  # exists
    assert "exists" in capsys.readouterr().err
    assert main(argv + ["--overwrite", "--feature-dtype", "float32"]) == 0
    assert open_store(out)[1].stored_dtype("x") == torch.float32
    assert main(["convert", "Cora", str(tmp_path / "d"), "--num-nodes", "5"]) == 2
    assert "csbm options" in capsys.readouterr().err


def test_convert_command_loaded_source(tmp_path):
    npz = tmp_path / "g.npz"
    data = csbm(**SMALL)
    import numpy as np
    import scipy.sparse as sp

    adj = sp.csr_matrix((np.ones(data.edge_index.shape[1]), data.edge_index.numpy()), shape=(700, 700))
    np.savez(npz, adj_data=adj.data, adj_indices=adj.indices, adj_indptr=adj.indptr, adj_shape=adj.shape,
             attr_matrix=data.x.numpy(), labels=data.y.numpy())
    assert main(["convert", str(npz), str(tmp_path / "s"), "--no-progress"]) == 0
    loaded = load(str(npz))
    assert_same_stores(from_data(loaded), open_store(tmp_path / "s", verify=True))


def _weights_hash(model) -> str:
    return hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()


def _train(graph, sampler: str, epochs: int = 3):
    from gnnkit import Trainer
    from gnnkit.samplers.cluster import ClusterSampler
    from gnnkit.samplers.mvs import MVSSampler
    from gnnkit.samplers.neighbor import NeighborSampler
    from models import build_model

    torch.manual_seed(0)
    model = build_model("sage" if sampler != "cluster" else "gcn", 12, 4, hidden=16, num_layers=2)
    s = {"full": lambda: None, "neighbor": lambda: NeighborSampler(fanouts=[4, 4], batch_size=64),
         "cluster": lambda: ClusterSampler(num_parts=6, clusters_per_batch=2),
         "mvs": lambda: MVSSampler(batch_size=64)}[sampler]()
    result = Trainer(sampler=s, max_epochs=epochs, seed=0, progress=False, device="cpu").fit(model, graph)
    return _weights_hash(model), result["val"], result["test"]


@pytest.mark.parametrize("sampler", ["full", "neighbor", "cluster", "mvs"])
def test_training_from_store_is_bitwise_in_memory_training(tmp_path, sampler):
    """Same seed: training from the memory-mapped stores (and from the store read back as a Data)
    gives the weights of training on the graph it was converted from, bit for bit."""
    data = csbm(**SMALL)
    write_data(data, tmp_path / "s")
    runs = [_train(data, sampler), _train(open_store(tmp_path / "s"), sampler),
            _train(to_data(tmp_path / "s"), sampler)]
    assert runs[0] == runs[1] == runs[2]


def _same_adj(a, b) -> bool:
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_adj(u, v) for u, v in zip(a, b))
    return all(torch.equal(getattr(a.csr, f)(), getattr(b.csr, f)()) for f in ("crow_indices", "col_indices", "values"))


def _epoch_batches(sampler, stores, model):
    from tests.sampler_context import RankedContext

    graph, features = stores
    ctx = RankedContext(device=torch.device("cpu"), seed=4, graph=graph, features=features, data=None,
                        adj_norm=model.adj_norm, diag_lambda=model.diag_lambda)
    sampler.setup(ctx, model)
    sampler.set_epoch(1)
    return list(sampler)


@pytest.mark.parametrize("name", ["full", "neighbor", "cluster"])
def test_samplers_draw_the_same_batches_from_a_store(tmp_path, name):
    """The node samplers, given the on-disk stores, build the batches they build from the in-memory ones."""
    from gnnkit.samplers.cluster import ClusterSampler
    from gnnkit.samplers.full import FullBatchSampler
    from gnnkit.samplers.neighbor import NeighborSampler
    from models import build_model

    make = {"full": FullBatchSampler, "neighbor": lambda: NeighborSampler(fanouts=[3, 2], batch_size=100),
            "cluster": lambda: ClusterSampler(num_parts=8, clusters_per_batch=2)}[name]
    data = csbm(**SMALL)
    write_data(data, tmp_path / "s")
    model = build_model("gcn", 12, 4, hidden=8, num_layers=2)
    mem = _epoch_batches(make(), from_data(data), model)
    disk = _epoch_batches(make(), open_store(tmp_path / "s"), model)
    assert len(mem) == len(disk) > 0
    for a, b in zip(mem, disk):
        for field in ("x", "y", "n_id", "loss_index", "loss_weight"):
            u, v = getattr(a, field), getattr(b, field)
            assert (u is None and v is None) or torch.equal(u, v), field
        assert _same_adj(a.adj, b.adj)


def test_train_command_on_a_store_matches_the_source(tmp_path):
    """`gnnkit train --dataset DIR` (a store, through gnnkit.data.load) gives the figures of the graph itself."""
    import json

    graph = ["--num-nodes", "700", "--avg-degree", "6", "--num-features", "12", "--num-classes", "4",
             "--graph-seed", "5"]
    assert main(["convert", "csbm", str(tmp_path / "s"), "--no-progress", *graph]) == 0
    results = []
    for dataset, extra in ((str(tmp_path / "s"), []), ("csbm", graph)):
        out = tmp_path / f"run-{len(results)}"
        assert main(["train", "--dataset", dataset, *extra, "--epochs", "3", "--no-progress", "--out", str(out)]) == 0
        record = json.loads((out / "results.json").read_text())
        results.append((record["val_mean"], record["test_mean"], record.get("fingerprint")))
    assert results[0] == results[1]


@pytest.mark.parametrize("source", ["csbm", "streamed", "networkx"])
def test_to_data_keeps_the_fingerprint(tmp_path, source):
    from gnnkit.data.fingerprint import fingerprint

    if source == "networkx":
        data = load(nx.gnm_random_graph(80, 200, seed=1, directed=True))
    else:
        data = csbm(**SMALL)
    if source == "streamed":
        write_csbm(tmp_path / "s", **SMALL)
    else:
        write_data(data, tmp_path / "s")
    back = to_data(tmp_path / "s")
    assert sorted(back.keys()) == sorted(data.keys())
    assert fingerprint(back) == fingerprint(data) == read_metadata(tmp_path / "s")["fingerprint"]


def test_fingerprint_of_sampled_large_arrays(tmp_path):
    """Graphs above the sample size (strided positions), half features, unsorted weighted edges."""
    from gnnkit.data.fingerprint import fingerprint

    gen = torch.Generator().manual_seed(0)
    ei = torch.randint(0, 9000, (2, 40000), generator=gen)
    data = Data(edge_index=ei, edge_weight=torch.rand(40000, generator=gen), x=torch.randn(9000, 9, generator=gen),
                y=torch.randint(0, 3, (9000,), generator=gen), num_classes=3)
    write_data(data, tmp_path / "s", feature_dtype="bfloat16")
    data.x = data.x.bfloat16().float()
    assert fingerprint(data, sample=1000) != fingerprint(data)
    assert read_metadata(tmp_path / "s")["fingerprint"] == fingerprint(data) == fingerprint(to_data(tmp_path / "s"))


def test_training_from_a_half_precision_store(tmp_path):
    """float16 features on disk train as the graph whose features were rounded to float16."""
    data = csbm(**SMALL)
    write_data(data, tmp_path / "h", feature_dtype="float16")
    data.x = data.x.half().float()
    assert _train(open_store(tmp_path / "h"), "neighbor") == _train(data, "neighbor")


def test_whole_graph_tensors_refused_beyond_memory(tmp_path, monkeypatch):
    """Asking a mapped store for whole-graph tensors that would not fit is a GnnkitError, not an OOM kill."""
    write_data(csbm(**SMALL), tmp_path / "h", feature_dtype="float16")
    graph, features = open_store(tmp_path / "h")
    features.get("x", torch.arange(10))  # rows: fine
    monkeypatch.setenv("GNNKIT_MEMORY_LIMIT", "1000")
    with pytest.raises(GnnkitError, match="edge_index"):
        graph.edge_index()
    with pytest.raises(GnnkitError, match="all rows of 'x'"):
        features.get("x")


def test_train_command_refuses_a_truncated_store(tmp_path, capsys):
    write_data(csbm(**SMALL), tmp_path / "s")
    _corrupt(tmp_path / "s", "x", "truncate")
    assert main(["train", "--dataset", str(tmp_path / "s"), "--epochs", "1", "--no-progress",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "array 'x' is truncated" in err[0]


def test_a_part_store_written_by_hand_opens(tmp_path):
    """Issue 22's parts: rows = owned nodes, indices = global ids beyond N, facts under "extra"."""
    from gnnkit.stores.ondisk import StoreFiles

    with writer_mod.StoreWriter(tmp_path / "part0") as w:
        w.write("indptr", torch.tensor([0, 2, 3]), role="graph")
        w.write("indices", torch.tensor([7, 900, 1], dtype=torch.int32), role="graph")
        w.write("global_id", torch.tensor([5, 901]))
        w.write("x", torch.ones(2, 3))
        w.commit(name="part 0 of 2", num_nodes=2, num_edges=3, is_symmetric=False, fingerprint="f",
                 extra={"part": 0, "num_parts": 2, "global_num_nodes": 1000})
    files = StoreFiles(tmp_path / "part0", verify=True)
    assert files.meta["extra"]["global_num_nodes"] == 1000
    assert torch.equal(files.tensor("indices"), torch.tensor([7, 900, 1], dtype=torch.int32))
    assert open_store(tmp_path / "part0")[1].names() == ["global_id", "x"]


@pytest.mark.parametrize("edit", ["not json", "version", "num_nodes", "arrays", "dtype", "file", "no indptr"])
def test_malformed_metadata_refused(tmp_path, edit):
    import json

    from gnnkit.stores.ondisk import META_FILE

    write_data(csbm(**SMALL), tmp_path / "s")
    file = tmp_path / "s" / META_FILE
    meta = json.loads(file.read_text())
    if edit == "version":
        meta["version"] = 99
    elif edit == "num_nodes":
        meta["num_nodes"] = -1
    elif edit == "arrays":
        meta["arrays"] = []
    elif edit == "dtype":
        meta["arrays"]["x"]["dtype"] = "object"
    elif edit == "file":
        meta["arrays"]["x"]["file"] = "../../etc/passwd"
    elif edit == "no indptr":
        del meta["arrays"]["indptr"]
    file.write_text("{" if edit == "not json" else json.dumps(meta))
    with pytest.raises(GnnkitError, match=r"^store "):
        open_store(tmp_path / "s")


def test_streamed_csbm_with_labeled_nodes(tmp_path):
    """labeled_nodes=K: K labels kept, the rest -1, and the split drawn among the K labeled nodes."""
    write_csbm(tmp_path / "s", **SMALL, labeled_nodes=100, train_frac=0.5, val_frac=0.2)
    _, features = open_store(tmp_path / "s")
    y = features.get("y")
    labeled = y >= 0
    assert int(labeled.sum()) == 100
    sizes = [int(features.get(m).sum()) for m in ("train_mask", "val_mask", "test_mask")]
    assert sizes == [50, 20, 30]
    masks = features.get("train_mask") | features.get("val_mask") | features.get("test_mask")
    assert torch.equal(masks, labeled)
    assert torch.equal(y[labeled], csbm(**SMALL).y[labeled])  # the kept labels are csbm's


def weighted_csbm(symmetric_weights: bool) -> Data:
    """SMALL's csbm with weights in (0.1, 2.1): symmetric (w(j -> i) = w(i -> j)) or not."""
    data = csbm(**SMALL)
    src, dst = data.edge_index
    gen = torch.Generator().manual_seed(9)
    if symmetric_weights:
        n = data.num_nodes
        data.edge_weight = torch.rand(n * n, generator=gen)[torch.minimum(src, dst) * n + torch.maximum(src, dst)] * 2 + 0.1
    else:
        data.edge_weight = torch.rand(src.numel(), generator=gen) * 2 + 0.1
    return data


@pytest.mark.parametrize("symmetric_weights", [True, False])
def test_weighted_round_trip(tmp_path, symmetric_weights):
    """A symmetric structure is read reversed only with symmetric weights, as the in-memory store reads it."""
    data = weighted_csbm(symmetric_weights)
    mem, disk = round_trip(data, tmp_path / "w")
    assert disk[0].csr_by_source == symmetric_weights
    assert_same_stores(mem, disk)


@pytest.mark.parametrize("sampler", ["full", "neighbor", "cluster"])
@pytest.mark.parametrize("symmetric_weights", [True, False])
def test_weighted_training_from_store_is_bitwise(tmp_path, sampler, symmetric_weights):
    data = weighted_csbm(symmetric_weights)
    write_data(data, tmp_path / "w")
    assert _train(open_store(tmp_path / "w"), sampler) == _train(data, sampler)


def test_edge_attr_not_stored_is_said(tmp_path):
    data = csbm(**SMALL)
    data.edge_attr = torch.randn(data.edge_index.shape[1], 2)
    with pytest.warns(UserWarning, match="edge_attr not stored"):
        write_data(data, tmp_path / "s")


def test_concurrent_reads_give_the_same_rows_and_training(tmp_path, monkeypatch):
    """A store opened with several readers (as one bigger than memory is) gathers rows in slices
    read concurrently and advises random access: same rows, same weights bit for bit."""
    from gnnkit.stores.ondisk import files as F

    monkeypatch.setattr(F, "PARALLEL_MIN", 8)
    data = csbm(**SMALL)
    write_data(data, tmp_path / "s")
    graph, features = open_store(tmp_path / "s", read_threads=3)
    assert graph.files.read_threads == 3 and open_store(tmp_path / "s")[0].files.read_threads == 1
    ids = torch.randint(0, data.num_nodes, (500,), generator=torch.Generator().manual_seed(0))
    assert torch.equal(features.get("x", ids), data.x[ids])
    indices = graph.csr()[1]
    pos = torch.randint(0, indices.numel(), (300,), generator=torch.Generator().manual_seed(1))
    assert torch.equal(graph.gather(indices, pos), indices[pos]) and F.advise_random(indices)
    assert torch.equal(F.sorted_take(data.x, ids, 4), data.x[ids])
    monkeypatch.setattr(F, "PARALLEL_MIN", 64)  # the default: small gathers split too (n // 64 readers)
    for n in (0, 1, 63, 64, 127, 128, 500):
        assert torch.equal(F.sorted_take(data.x, ids[:n], 32), data.x[ids[:n]])
    assert _train(open_store(tmp_path / "s", read_threads=3), "neighbor") == _train(data, "neighbor")
    with pytest.raises(GnnkitError, match="read_threads"):
        open_store(tmp_path / "s", read_threads=0)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_arrays_beyond_memory_are_mapped_read_only(tmp_path, monkeypatch, dtype):
    """An array bigger than half the memory limit is mapped read-only and shared (the kernel refuses
    a private writable mapping larger than memory: a 28 GB feature array failed so); same values."""
    data = csbm(**SMALL)
    write_data(data, tmp_path / "s", feature_dtype=dtype)
    expect = open_store(tmp_path / "s")[1].get("x")
    monkeypatch.setenv("GNNKIT_MEMORY_LIMIT", "4096")
    graph, features = open_store(tmp_path / "s")
    x = features.files.tensor("x")
    assert not x.untyped_storage().filename and torch.equal(features.get("x", torch.arange(data.num_nodes)), expect)
    assert torch.equal(features.get("x", torch.tensor([5, 1])), expect[[5, 1]])
    assert graph.files.read_threads > 1 and graph.in_degree().sum() == graph.num_edges


@pytest.mark.parametrize("sampler", ["full", "neighbor"])
def test_model_size_check_counts_whole_graph_activations_only_for_full_batch(monkeypatch, sampler):
    """A papers100M-size graph: [N, 256] activations per layer (318 GiB) only exist in full-batch
    training; a mini-batch run needs its parameters (evaluation is then sampled) and goes ahead."""
    from types import SimpleNamespace

    from gnnkit.commands.factory import check_model_size

    monkeypatch.setenv("GNNKIT_MEMORY_LIMIT", "24GiB")
    args = SimpleNamespace(hidden=256, layers=3)
    check = lambda: check_model_size(args, 128, 172, 111_059_956, whole_graph=sampler == "full")  # noqa: E731
    if sampler == "full":
        with pytest.raises(GnnkitError, match=r"the model \(--hidden 256, --layers 3, full-batch\) needs 317\.\d GiB"):
            check()
    else:
        check()
