"""Planetoid, npz (both layouts) and networkx sources through gnnkit.data.load."""
import os
import pickle
import shutil
import warnings

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gnnkit.data import GraphWarning, default_root, is_present, load
from gnnkit.errors import GnnkitError


def test_planetoid_cora(cora_root):
    data = load("cora", root=cora_root)  # case-insensitive
    assert data.name == "Cora" and data.num_classes == 7
    assert tuple(data.x.shape) == (2708, 1433) and data.x.dtype == torch.float32
    assert data.edge_index.shape == (2, 10556) and data.edge_index.dtype == torch.long
    assert data.y.dtype == torch.long
    assert [int(data[k].sum()) for k in ("train_mask", "val_mask", "test_mask")] == [140, 500, 1000]
    assert is_present("Cora", cora_root) and not is_present("CiteSeer", cora_root)


def test_planetoid_missing_files_named(tmp_path):
    with pytest.raises(GnnkitError, match=r"CiteSeer not found: expected ind\.citeseer\.x, .*ind\.citeseer\.test\.index in "):
        load("CiteSeer", root=tmp_path)


def test_gnn_benchmark_npz(shared_data):
    data = load(shared_data / "npz" / "cora.npz")
    assert data.num_nodes == 2708 and data.num_classes == 7 and data.x.shape == (2708, 1433)
    assert data.edge_index.size(1) == 10556  # 5429 stored entries, symmetrized and coalesced
    assert [int(data[k].sum()) for k in ("train_mask", "val_mask", "test_mask")] == [140, 500, 1000]
    per_class = torch.bincount(data.y[data.train_mask], minlength=7)
    assert per_class.tolist() == [20] * 7


def _write_dotted(path, dense_attr: bool):
    #   0 -> 1, 1 -> 2, 3 -> 0, 4 -> 4 (a self-loop); node 5 is isolated and unlabeled
    adj = sp.csr_matrix((np.ones(4), ([0, 1, 3, 4], [1, 2, 0, 4])), shape=(6, 6))
    attr = np.arange(12, dtype=np.float64).reshape(6, 2)
    arrays = {"adj_matrix.data": adj.data, "adj_matrix.indices": adj.indices, "adj_matrix.indptr": adj.indptr,
              "adj_matrix.shape": np.array(adj.shape), "labels": np.array([0, 1, 0, 1, 0, -1])}
    if dense_attr:
        arrays["attr_matrix"] = attr
    else:
        a = sp.csr_matrix(attr)
        arrays.update({"attr_matrix.data": a.data, "attr_matrix.indices": a.indices,
                       "attr_matrix.indptr": a.indptr, "attr_matrix.shape": np.array(a.shape)})
    np.savez(path, **arrays)


@pytest.mark.parametrize("dense_attr", [True, False])
def test_dotted_npz_layout(tmp_path, dense_attr):
    path = tmp_path / "tiny.npz"
    _write_dotted(path, dense_attr)
    with pytest.warns(GraphWarning, match="1 self-loops"):
        data = load(path, split="random", train_frac=0.4, val_frac=0.2)
    assert data.name == "tiny" and data.num_classes == 2
    assert data.x.tolist() == np.arange(12.0).reshape(6, 2).tolist()
    assert sorted(map(tuple, data.edge_index.t().tolist())) == [(0, 1), (0, 3), (1, 0), (1, 2), (2, 1), (3, 0), (4, 4)]
    masks = data.train_mask | data.val_mask | data.test_mask
    assert masks.tolist() == [True] * 5 + [False]  # the unlabeled node is in no split
    assert [int(data[k].sum()) for k in ("train_mask", "val_mask", "test_mask")] == [2, 1, 2]
    fixed = load(path, split="random", normalize=True)
    assert fixed.edge_index.size(1) == 6


def test_npz_planetoid_split_too_small_says_so(tmp_path):
    path = tmp_path / "tiny.npz"
    _write_dotted(path, True)
    with pytest.raises(GnnkitError, match=r"needs 1500 labeled nodes outside the training set .* only 0 remain"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GraphWarning)
            load(path, split="planetoid")  # asked for explicitly: refused


def test_small_graph_gets_a_default_split_that_fits(tmp_path):
    # issue 19: a well-formed small graph failed with "planetoid split needs 1500 labeled nodes"
    path = tmp_path / "tiny.npz"
    _write_dotted(path, True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GraphWarning)
        data = load(path)
    assert [int(data[k].sum()) for k in ("train_mask", "val_mask", "test_mask")] == [3, 1, 1]
    assert data.split_info.startswith("random 0.6/0.2/rest of the 5 labeled nodes; the default")


def test_npz_without_adjacency(tmp_path):
    np.savez(tmp_path / "bad.npz", labels=np.zeros(3))
    with pytest.raises(GnnkitError, match=r"bad\.npz: no adjacency matrix; expected adj_data"):
        load(tmp_path / "bad.npz")


def test_networkx_graph_with_attributes():
    #   a -- b -- c    d (isolated, unlabeled)     DiGraph version: a -> b -> c
    for directed, edges in ((False, 4), (True, 2)):
        G = nx.DiGraph() if directed else nx.Graph()
        for i, v in enumerate("abcd"):
            G.add_node(v, x=[float(i), 1.0], y=None if v == "d" else i % 2)
        G.add_edges_from([("a", "b"), ("b", "c")])
        data = load(G, split="random", train_frac=1 / 3, val_frac=1 / 3)
        assert data.x.shape == (4, 2) and data.y.tolist() == [0, 1, 0, -1]
        assert data.edge_index.size(1) == edges and data.num_classes == 2
        assert int((data.train_mask | data.val_mask | data.test_mask).sum()) == 3


def test_networkx_masks_from_attributes():
    G = nx.path_graph(3)
    for v, (tr, va, te) in zip(G.nodes, [(1, 0, 0), (0, 1, 0), (0, 0, 1)]):
        G.nodes[v].update(x=float(v), y=v % 2, train_mask=tr, val_mask=va, test_mask=te)
    data = load(G)
    assert data.train_mask.tolist() == [True, False, False] and data.test_mask.tolist() == [False, False, True]


def test_networkx_partial_features_rejected():
    G = nx.path_graph(3)
    G.nodes[0]["x"] = 1.0
    with pytest.raises(GnnkitError, match="node attribute 'x' is missing on 2 of 3 nodes"):
        load(G)


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("GNNKIT_DATA", str(tmp_path))
    assert default_root() == tmp_path
    monkeypatch.delenv("GNNKIT_DATA")
    assert default_root().name == "data"


# -- issue 19: no data file runs code ------------------------------------------------------------------
class Payload:
    """Unpickling this runs ``touch <marker>`` (through os.system, or subprocess.Popen: a class, which
    PyG's loader would have retried with weights_only=False)."""

    def __init__(self, marker, popen=False):
        self.marker, self.popen = str(marker), popen

    def __reduce__(self):
        import subprocess

        if self.popen:
            return subprocess.Popen, (["touch", self.marker],)
        return os.system, (f"touch {self.marker}",)


def _object_array(value, shape=(1,)):
    box = np.empty(shape, dtype=object)
    box[()] = value if shape == () else None
    if shape != ():
        box[0] = value
    return box


def _tiny_arrays():
    adj = sp.csr_matrix((np.ones(4), ([0, 1, 2, 3], [1, 2, 3, 0])), shape=(4, 4))
    return {"adj_data": adj.data, "adj_indices": adj.indices, "adj_indptr": adj.indptr,
            "adj_shape": np.array(adj.shape), "attr_matrix": np.eye(4, dtype=np.float32),
            "labels": np.array([0, 1, 0, 1])}


@pytest.mark.parametrize("key, shape", [("class_names", (1,)), ("labels", (4,)), ("node_names", (1,)),
                                        ("adj_matrix", ())])
def test_npz_object_array_payload_never_runs(tmp_path, key, shape):
    marker = tmp_path / "MARKER"
    arrays = _tiny_arrays()
    if key == "adj_matrix":
        arrays = {k: v for k, v in arrays.items() if not k.startswith("adj_")}
    arrays[key] = _object_array(Payload(marker), shape)
    path = tmp_path / "payload.npz"
    np.savez(path, **arrays)
    with pytest.raises(GnnkitError, match=r"payload\.npz: member .*: cannot read the pickle safely "
                                          r"\(refused global posix\.system"):
        load(path)
    assert not marker.exists()


def test_npz_object_members_with_plain_data_still_load(tmp_path):
    arrays = _tiny_arrays()
    arrays["class_names"] = np.array(["a", "b"], dtype=object)  # pickled, but only str
    arrays = {k: v for k, v in arrays.items() if not k.startswith("adj_")}
    arrays["adj_matrix"] = _object_array(sp.csr_matrix(np.eye(4, k=1) + np.eye(4, k=-1)), ())
    np.savez(tmp_path / "old.npz", **arrays)
    data = load(tmp_path / "old.npz")
    assert data.num_classes == 2 and data.edge_index.size(1) == 6


@pytest.mark.parametrize("part, popen", [("x", False), ("graph", False), ("ally", True)])
def test_planetoid_raw_payload_never_runs(cora_root, part, popen):
    marker = cora_root / "MARKER"
    with open(cora_root / "Cora" / "raw" / f"ind.cora.{part}", "wb") as f:
        pickle.dump(Payload(marker, popen), f, protocol=2)
    with pytest.raises(GnnkitError, match=rf"ind\.cora\.{part}: cannot read the pickle safely \(refused global "):
        load("Cora", root=cora_root)
    assert not marker.exists()


def test_processed_cache_payload_never_runs(cora_root, tmp_path):
    marker = tmp_path / "MARKER"
    processed = cora_root / "Cora" / "processed"
    processed.mkdir()
    torch.save(Payload(marker, popen=True), processed / "data.pt")
    assert load("Cora", root=cora_root).num_nodes == 2708  # raw files present: the cache is not read
    shutil.rmtree(cora_root / "Cora" / "raw")
    with pytest.raises(GnnkitError, match=r"processed/data\.pt: refused, it does not load with weights_only=True "
                                          r"\(Unsupported global"):
        load("Cora", root=cora_root)
    assert not marker.exists()


def test_planetoid_reader_matches_pyg_and_writes_nothing(cora_root, tmp_path):
    from torch_geometric.datasets import Planetoid

    before = sorted(p.name for p in (cora_root / "Cora").rglob("*"))
    data = load("Cora", root=cora_root)
    assert sorted(p.name for p in (cora_root / "Cora").rglob("*")) == before  # no processed/ written
    pyg_root = tmp_path / "pyg"
    shutil.copytree(cora_root, pyg_root)
    ref = Planetoid(str(pyg_root), "Cora")[0]  # PyG's own reader on the trusted shared files
    for key in ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(data[key], ref[key]), key
    shutil.rmtree(pyg_root / "Cora" / "raw")  # PyG's cache alone, read with weights_only=True
    cached = load("Cora", root=pyg_root)
    assert torch.equal(cached.edge_index, data.edge_index) and torch.equal(cached.x, data.x)
    full = load("Cora", root=cora_root, split="full")
    assert int(full.train_mask.sum()) == 2708 - 1500


@pytest.mark.parametrize("part, content, message", [
    ("x", "swap:tx", r"the parts do not fit together"),
    ("graph", {0: [1, 99999]}, r"ind\.cora\.graph: neighbour ids must be integers in \[0, 2708\)"),
    ("graph", [1, 2], r"ind\.cora\.graph: expected a dict of neighbour lists, got list"),
    ("graph", {0: [[1], [2]]}, r"ind\.cora\.graph: neighbour ids must be integers in \[0, 2708\), got int64 values "
                               r"of shape \(2, 1\)"),
    ("graph", {0: [[1], 2]}, r"ind\.cora\.graph: node ids must be integers"),
    ("graph", {10 ** 30: [1]}, r"ind\.cora\.graph: node ids must be integers in \[0, 2708\), got object"),
    ("y", np.zeros((140, 7, 2)), r"ind\.cora\.y: expected a sparse matrix or a 2-d numeric array"),
    ("test.index", "text:1\nabc\n", r"ind\.cora\.test\.index: expected one integer node id per line"),
    ("x", "truncate", r"ind\.cora\.x: cannot read the pickle safely"),
])
def test_malformed_planetoid_files_named(cora_root, part, content, message):
    raw = cora_root / "Cora" / "raw"
    target = raw / f"ind.cora.{part}"
    if isinstance(content, str) and content.startswith("swap:"):
        other = raw / f"ind.cora.{content[5:]}"
        a, b = target.read_bytes(), other.read_bytes()
        target.write_bytes(b)
        other.write_bytes(a)
    elif isinstance(content, str) and content.startswith("text:"):
        target.write_text(content[5:])
    elif isinstance(content, str) and content == "truncate":
        target.write_bytes(target.read_bytes()[:1000])
    else:
        with open(target, "wb") as f:
            pickle.dump(content, f, protocol=2)
    with pytest.raises(GnnkitError, match=message):
        load("Cora", root=cora_root)


# -- issue 19: validation before scipy and torch see the arrays ------------------------------------------
@pytest.mark.parametrize("change, message", [
    ({"adj_indptr": np.array([0, 3, 1, 4, 4])}, r"adj matrix: indptr decreases at row 1"),
    # the old loader segfaulted in scipy's toarray on this one (exit 139)
    ({"attr_data": np.ones(4), "attr_indices": np.array([0, 1, 0, 1]), "attr_indptr": np.array([0, 10 ** 9, 2, 3, 4]),
      "attr_shape": np.array([4, 2])}, r"attr matrix: indptr decreases at row 1"),
    ({"adj_indptr": np.array([0, 1, 2, 3, 9])}, r"adj matrix: indptr must run from 0 to nnz=4"),
    ({"adj_indices": np.array([1, 2, 3, 7])}, r"adj matrix: column index 7 at entry 3 is outside \[0, 4\)"),
    ({"adj_indices": np.array([1.0, 2.0, 3.0, 0.0])}, r"adj matrix indices must be a 1-d integer array, got float64"),
    ({"adj_shape": np.array([4, 4, 4])}, r"adj matrix: shape must be two non-negative integers"),
    ({"labels": np.array([0.7, 1.2, 0.3, 1.9])}, r"labels must be whole class ids, got 0\.7 at node 0 "
                                                  r"\(floats are refused, not truncated\)"),
    ({"labels": np.array([0, 1, 0, 10 ** 9])}, r"labels: class id 1000000000 at node 3 is outside \[-1, num_nodes=4\)"),
    ({"labels": np.array([0, 1, -5, 1])}, r"labels: class id -5 at node 2 is outside"),
    ({"attr_matrix": np.ones((4, 2, 2))}, r"attr_matrix must be a 2-d numeric \[num_nodes, num_features\] array, "
                                          r"got float64 of shape \(4, 2, 2\)"),
    ({"attr_matrix": np.ones((3, 2))}, r"the feature matrix has 3 rows but the graph has 4 nodes"),
])
def test_malformed_npz_refused_before_libraries_see_it(tmp_path, change, message):
    np.savez(tmp_path / "bad.npz", **{**_tiny_arrays(), **change})
    with pytest.raises(GnnkitError, match=message):
        load(tmp_path / "bad.npz")


def test_integral_float_labels_are_kept(tmp_path):
    np.savez(tmp_path / "g.npz", **{**_tiny_arrays(), "labels": np.array([0.0, 1.0, 0.0, -1.0])})
    data = load(tmp_path / "g.npz")
    assert data.y.tolist() == [0, 1, 0, -1] and data.y.dtype == torch.long


def test_npz_member_larger_than_memory_refused_before_reading(tmp_path, monkeypatch):
    np.savez(tmp_path / "g.npz", **_tiny_arrays())
    monkeypatch.setenv("GNNKIT_MEMORY_LIMIT", "64")
    with pytest.raises(GnnkitError, match=r"g\.npz: 6 arrays of 948 bytes uncompressed needs 1\.9 KiB, more than this "
                                          r"machine's 64 B of memory"):
        load(tmp_path / "g.npz")


def test_npz_header_announcing_more_than_the_member_holds(tmp_path):
    import zipfile

    np.savez(tmp_path / "g.npz", **_tiny_arrays())
    with zipfile.ZipFile(tmp_path / "g.npz") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["labels.npy"] = members["labels.npy"].replace(b"(4,)", b"(9999999999,)".ljust(4))
    with zipfile.ZipFile(tmp_path / "h.npz", "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    with pytest.raises(GnnkitError, match=r"member labels\.npy: (member is truncated|bad npy header)"):
        load(tmp_path / "h.npz")


def test_networkx_float_labels_refused_not_truncated():
    G = nx.path_graph(4)
    for i, label in enumerate([0.7, 1, 0, 1]):
        G.nodes[i]["y"] = label
    with pytest.raises(GnnkitError, match=r"node attribute 'y' must be whole class ids, got 0\.7 at node 0"):
        load(G)


def test_symlink_loop_root_is_not_found(tmp_path):
    (tmp_path / "Cora").symlink_to(tmp_path / "Cora")
    with pytest.raises(GnnkitError, match=r"Cora not found: expected ind\.cora\.x"):
        load("Cora", root=tmp_path)


def _broken(kind):
    if kind == "csc":
        m = sp.csc_matrix(np.eye(140, 1433, dtype=np.float32))
        m.indptr = m.indptr.copy()
        m.indptr[1] = 10 ** 9  # scipy's tocsr would read far out of bounds
    else:
        m = sp.coo_matrix(np.eye(140, 1433, dtype=np.float32))
        m.row = m.row.copy()
        m.row[0] = 10 ** 9
    return m


@pytest.mark.parametrize("kind, message", [("csc", r"indptr decreases at row 1"),
                                           ("coo", r"row index outside \[0, 140\)")])
def test_crafted_sparse_matrix_checked_before_scipy_converts_it(cora_root, kind, message):
    with open(cora_root / "Cora" / "raw" / "ind.cora.x", "wb") as f:
        pickle.dump(_broken(kind), f, protocol=2)
    with pytest.raises(GnnkitError, match=rf"ind\.cora\.x: {message}"):
        load("Cora", root=cora_root)


def test_planetoid_parts_as_csc_and_coo_still_load(cora_root):
    from gnnkit.data.safe_pickle import safe_load_file

    raw = cora_root / "Cora" / "raw"
    ref = load("Cora", root=cora_root)
    for part, kind in (("x", "csc"), ("tx", "coo")):
        m = safe_load_file(raw / f"ind.cora.{part}")
        with open(raw / f"ind.cora.{part}", "wb") as f:
            pickle.dump(m.tocsc() if kind == "csc" else m.tocoo(), f, protocol=2)
    assert torch.equal(load("Cora", root=cora_root).x, ref.x)


def test_zip_bomb_refused_before_expanding(tmp_path, monkeypatch):
    import zipfile

    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        header = b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (8388608,), }"
        zf.writestr("adj_data.npy", header.ljust(128 - 1) + b"\n" + bytes(64 << 20))  # 64 MiB of zeros
    assert (tmp_path / "bomb.npz").stat().st_size < 200_000
    monkeypatch.setenv("GNNKIT_MEMORY_LIMIT", "32M")
    with pytest.raises(GnnkitError, match=r"bomb\.npz: 1 arrays of \d+ bytes uncompressed needs 128\.0 MiB, more than"):
        load(tmp_path / "bomb.npz")


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_safe_unpickler_reads_plain_data_in_every_protocol(protocol):
    from collections import defaultdict

    from gnnkit.data.safe_pickle import safe_loads

    graph = defaultdict(list, {0: [1, 2], 1: [0]})
    value = {"a": np.arange(5, dtype=np.int32), "m": sp.csr_matrix(np.eye(3)), "g": graph, "b": b"\x00\xff",
             "t": (1, 2.5, "s", None, True), "names": np.array(["x", "y"], dtype=object)}
    out = safe_loads(pickle.dumps(value, protocol=protocol), "t")
    assert out["a"].tolist() == [0, 1, 2, 3, 4] and out["m"].toarray().tolist() == np.eye(3).tolist()
    assert out["g"] == graph and out["b"] == b"\x00\xff" and out["names"].tolist() == ["x", "y"]


@pytest.mark.parametrize("global_", ["builtins eval", "builtins getattr", "numpy load", "os system",
                                     "subprocess Popen", "torch load", "scipy.sparse load_npz",
                                     "numpy.testing._private.utils runstring", "codecs decode", "builtins __import__"])
def test_safe_unpickler_refuses_other_globals(global_):
    from gnnkit.data.safe_pickle import safe_loads

    module, name = global_.split()
    payload = b"c" + module.encode() + b"\n" + name.encode() + b"\n(S'x'\ntR."  # GLOBAL, then a call
    with pytest.raises(GnnkitError, match=rf"t: cannot read the pickle safely \(refused global {module}\.{name}"):
        safe_loads(payload, "t")


def test_codecs_encode_admitted_for_text_codecs_only():
    from gnnkit.data.safe_pickle import safe_loads

    ok = b"c_codecs\nencode\n(S'abc'\nS'latin1'\ntR."
    assert safe_loads(ok, "t") == b"abc"
    with pytest.raises(GnnkitError, match="refused _codecs.encode with encoding 'zlib_codec'"):
        safe_loads(b"c_codecs\nencode\n(S'abc'\nS'zlib_codec'\ntR.", "t")


def test_sizes_in_a_pickle_are_not_allocations():
    from gnnkit.data.safe_pickle import safe_loads

    with pytest.raises(GnnkitError, match=r"refused bytes\(<int>\): a size, not data"):
        safe_loads(b"c__builtin__\nbytes\n(I10000000000\ntR.", "t")
    assert safe_loads(pickle.dumps(bytearray(b"ab"), protocol=2), "t") == bytearray(b"ab")


def test_citeseer_layout_with_test_gaps_matches_pyg(shared_data, tmp_path):
    # CiteSeer's test ids have gaps (isolated nodes); built here from Cora's files with 10 test nodes dropped
    from torch_geometric.io.planetoid import read_planetoid_data

    from gnnkit.data.safe_pickle import safe_load_file

    src, raw = shared_data / "Planetoid" / "Cora" / "raw", tmp_path / "CiteSeer" / "raw"
    raw.mkdir(parents=True)
    for part in ("x", "allx", "y", "ally", "graph"):
        shutil.copy(src / f"ind.cora.{part}", raw / f"ind.citeseer.{part}")
    test_index = np.loadtxt(src / "ind.cora.test.index", dtype=np.int64)
    keep = np.ones(test_index.size, dtype=bool)
    inner = np.nonzero((test_index != test_index.min()) & (test_index != test_index.max()))[0]
    keep[np.random.default_rng(0).choice(inner, 10, replace=False)] = False
    np.savetxt(raw / "ind.citeseer.test.index", test_index[keep], fmt="%d")
    for part in ("tx", "ty"):
        with open(raw / f"ind.citeseer.{part}", "wb") as f:
            pickle.dump(safe_load_file(src / f"ind.cora.{part}")[keep], f, protocol=2)
    data = load("CiteSeer", root=tmp_path)
    ref = read_planetoid_data(str(raw), "citeseer")  # PyG's reader, on files this test wrote itself
    for key in ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(data[key], ref[key].to(data[key].dtype)), key
    assert int(data.test_mask.sum()) == 990


def test_big_endian_npz_loads_like_little_endian(tmp_path):
    """Big-endian members are legal ``.npy``; they once crashed inside scipy/torch (found by fuzzing)."""
    adj = sp.random(20, 20, density=0.2, format="csr", random_state=0)
    adj = ((adj + adj.T) > 0).astype(np.float32).tocsr()
    x, y = np.random.RandomState(0).rand(20, 5).astype(np.float32), np.arange(20) % 2
    graphs = []
    for name, order in (("le", "<"), ("be", ">")):
        conv = lambda a: a.astype(a.dtype.newbyteorder(order))  # noqa: E731
        np.savez(tmp_path / f"{name}.npz", adj_data=conv(adj.data), adj_indices=conv(adj.indices),
                 adj_indptr=conv(adj.indptr), adj_shape=np.array(adj.shape), attr_matrix=conv(x), labels=conv(y))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GraphWarning)
            graphs.append(load(str(tmp_path / f"{name}.npz")))
    for key in ("x", "y", "edge_index"):
        assert torch.equal(getattr(graphs[0], key), getattr(graphs[1], key))
