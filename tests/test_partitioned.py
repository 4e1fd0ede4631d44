"""Partition folders (issue 22): written per part, atomically, verified on open; the parts' union is the graph."""
import json
import os

import pytest
import torch

from gnnkit.data.csbm import csbm
from gnnkit.errors import GnnkitError
from gnnkit.partitioned import is_partition, open_part, read_info, write_partition
from gnnkit.stores import from_data
from gnnkit.stores.ondisk import write_data


@pytest.fixture(scope="module")
def graph():
    return csbm(num_nodes=300, avg_degree=6, num_features=8, seed=1)


def _union(path, num_parts):
    """The whole graph's CSR rows and node arrays, reassembled from the parts through the book."""
    parts = [open_part(path, r) for r in range(num_parts)]
    n = parts[0].num_nodes
    rows, x, owner = [None] * n, torch.zeros(n, parts[0].features.shape("x")[1]), torch.full((n,), -1)
    for p in parts:
        indptr, indices = p.graph.csr()
        for i, g in enumerate(p.global_ids.tolist()):
            rows[g] = indices[indptr[i]:indptr[i + 1]].long()
            owner[g] = p.rank
        x[p.global_ids] = p.features.get("x")
    return parts, rows, x, owner


@pytest.mark.parametrize("method,num_parts", [("metis", 2), ("random", 3)])
def test_round_trip_union_is_the_graph(tmp_path, graph, method, num_parts):
    out = tmp_path / "parts"
    info = write_partition(graph, num_parts, out, method=method, seed=3)
    assert is_partition(out) and read_info(out)["num_parts"] == num_parts == info["num_parts"]
    parts, rows, x, owner = _union(out, num_parts)
    whole, feats = from_data(graph)
    indptr, indices = whole.csr()
    for g in range(graph.num_nodes):  # every row, entry for entry and in order
        assert torch.equal(rows[g], indices[indptr[g]:indptr[g + 1]])
    assert torch.equal(x, graph.x)
    book = parts[0].book
    assert torch.equal(book.owner.long(), owner) and torch.equal(book.degree.long(), whole.in_degree())
    for p in parts:  # local positions, labels and masks of the owned rows
        assert torch.equal(book.local[p.global_ids].long(), torch.arange(p.global_ids.numel()))
        assert bool((p.global_ids[1:] > p.global_ids[:-1]).all())
        for name in ("y", "train_mask", "val_mask", "test_mask"):
            assert torch.equal(p.features.get(name), feats.get(name, p.global_ids))
    assert sum(p["num_train"] for p in info["parts"]) == int(graph.train_mask.sum())
    assert sorted(os.listdir(tmp_path)) == ["parts"]  # no temporary folder left behind


def test_random_partition_is_seeded_and_balanced(tmp_path, graph):
    a = write_partition(graph, 4, tmp_path / "a", method="random", seed=5)
    b = write_partition(graph, 4, tmp_path / "b", method="random", seed=5)
    assert [p["num_nodes"] for p in a["parts"]] == [75] * 4
    pa, pb = open_part(tmp_path / "a", 2), open_part(tmp_path / "b", 2)
    assert torch.equal(pa.global_ids, pb.global_ids)


def test_from_a_store_equals_from_memory(tmp_path, graph):
    write_data(graph, tmp_path / "store")
    write_partition(str(tmp_path / "store"), 2, tmp_path / "p1", method="random", seed=0)
    write_partition(graph, 2, tmp_path / "p2", method="random", seed=0)
    for r in range(2):
        a, b = open_part(tmp_path / "p1", r), open_part(tmp_path / "p2", r)
        assert torch.equal(a.graph.csr()[1], b.graph.csr()[1]) and torch.equal(a.features.get("x"), b.features.get("x"))


def test_halo_ids_are_the_remote_in_neighbors(tmp_path, graph):
    write_partition(graph, 2, tmp_path / "p", method="metis")
    p = open_part(tmp_path / "p", 0)
    src = graph.edge_index[0][p.book.owner[graph.edge_index[1]].long() == 0]
    want = torch.unique(src[p.book.owner[src].long() != 0])
    assert torch.equal(p.halo_ids(), want)


def test_corrupted_part_is_refused_by_name(tmp_path, graph):
    out = tmp_path / "p"
    write_partition(graph, 2, out, method="random")
    open_part(out, 1)
    with open(out / "part-1" / "x.bin", "r+b") as f:
        f.seek(17)
        byte = f.read(1)
        f.seek(17)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(GnnkitError, match=r"part 1 .*array 'x' is corrupted"):
        open_part(out, 1)
    open_part(out, 0)  # the other part still opens
    (out / "book" / "degree.bin").write_bytes(b"\0" * 8)
    with pytest.raises(GnnkitError, match=r"the book .*'degree' is truncated"):
        open_part(out, 0)


def test_swapped_or_missing_parts_are_refused(tmp_path, graph):
    out = tmp_path / "p"
    write_partition(graph, 2, out, method="random")
    os.rename(out / "part-0", tmp_path / "x")
    os.rename(out / "part-1", out / "part-0")
    with pytest.raises(GnnkitError, match="part 0 .*not the one the partition was written with"):
        open_part(out, 0)
    with pytest.raises(GnnkitError, match="part 1 .*refused"):
        open_part(out, 1)
    with pytest.raises(GnnkitError, match="no part 2"):
        open_part(out, 2)


def test_bad_requests(tmp_path, graph):
    with pytest.raises(GnnkitError, match="method"):
        write_partition(graph, 2, tmp_path / "p", method="spectral")
    with pytest.raises(GnnkitError, match="more parts than nodes"):
        write_partition(graph, 301, tmp_path / "p", method="random")
    write_partition(graph, 2, tmp_path / "p", method="random")
    with pytest.raises(GnnkitError, match="exists"):
        write_partition(graph, 2, tmp_path / "p", method="random")
    info = json.loads((tmp_path / "p" / "partition.json").read_text())
    info["version"] = 9
    (tmp_path / "p" / "partition.json").write_text(json.dumps(info))
    with pytest.raises(GnnkitError, match="version"):
        open_part(tmp_path / "p", 0)


def test_cli_writes_a_partition_folder(tmp_path, capsys):
    from gnnkit.cli import main

    out = tmp_path / "parts"
    assert main(["partition", "csbm", "--num-nodes", "200", "--num-parts", "2", "--out", str(out),
                 "--method", "random", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["part_nodes"] == [100, 100] and open_part(out, 1).num_nodes == 200
    assert main(["partition", str(out / "part-0"), "--num-parts", "2", "--out", str(tmp_path / "q")]) == 2
    assert "one part of a partition" in capsys.readouterr().err


def test_local_stores_are_the_induced_subgraph(tmp_path, graph):
    write_partition(graph, 3, tmp_path / "p", method="metis")
    p = open_part(tmp_path / "p", 1)
    local, feats = p.local_stores()
    ei = graph.edge_index
    both = (p.book.owner[ei[0]].long() == 1) & (p.book.owner[ei[1]].long() == 1)
    want = p.book.local[ei[:, both]].long()
    got = local.edge_index()
    assert sorted(map(tuple, got.t().tolist())) == sorted(map(tuple, want.t().tolist()))
    assert local.num_nodes == p.global_ids.numel() and torch.equal(feats.get("x"), graph.x[p.global_ids])


def test_a_part_without_training_nodes_is_refused_on_every_rank(tmp_path, graph):
    from gnnkit.partitioned import open_dataset

    g = graph.clone()
    info = write_partition(g, 2, tmp_path / "ok", method="random")
    part0 = open_part(tmp_path / "ok", 0)
    g.train_mask = g.train_mask.clone()
    g.train_mask[part0.global_ids] = False  # part 0 keeps no training node
    write_partition(g, 2, tmp_path / "p", method="random")
    for rank in (0, 1):
        _, features = open_dataset(tmp_path / "p", rank=rank, world=2)
        with pytest.raises(GnnkitError, match="part 0 .* has no training node"):
            features.index("train_mask")
    _, features = open_dataset(tmp_path / "ok", rank=1, world=2)
    most = max(p["num_train"] for p in info["parts"])
    assert features.index("train_mask").numel() == most
