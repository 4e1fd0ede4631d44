"""Partition-parallel reads under torch.distributed (gloo, CPU), 2 and 4 processes on a small graph:
each rank maps only its part; all-neighbor batches and layer-wise outputs equal one process's;
with real fanouts every remote id asked in a round is answered once, by its owner."""
import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gnnkit.data.csbm import csbm
from gnnkit.models import GCN, GraphSAGE
from gnnkit.partitioned import write_partition
from gnnkit.samplers.neighbor import sample_blocks
from gnnkit.stores import from_data

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is unavailable")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graph(weighted: bool = False):
    data = csbm(num_nodes=240, avg_degree=6, num_features=8, num_classes=3, seed=2)
    if weighted:  # symmetric weights: a_ij = a_ji
        src, dst = data.edge_index
        data.edge_weight = 0.5 + ((src * 7 + dst * 7) % 11).float() / 11
    return data


def _model(kind: str):
    torch.manual_seed(0)
    cls = GraphSAGE if kind == "sage" else GCN
    return cls(8, 16, 3, num_layers=2, dropout=0.0).eval()


def _mapped_parts() -> list:
    """The partition files this process has mapped (from /proc/self/maps)."""
    with open("/proc/self/maps") as f:
        return sorted({line.split()[-1].split(os.sep)[-2] for line in f if "parts" + os.sep in line})


def _worker(rank: int, world: int, port: int, path: str, out_dir: str) -> None:
    from gnnkit.partitioned.sampler import open_dataset

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo")
    graph, features = open_dataset(path)
    part = graph.part
    n_r = part.global_ids.numel()
    seeds = features.index("train_mask")[:12]
    lid = torch.full((graph.num_nodes,), -1, dtype=torch.long)
    out = {"rank": rank, "seeds": seeds.tolist(), "n_r": n_r, "num_train": int(features.index("train_mask").numel())}
    for kind, norm in (("sage", "mean"), ("gcn", "gcn")):
        model = _model(kind)
        n_id, blocks = sample_blocks(graph, seeds, [-1, -1], norm, None, lid)
        with torch.no_grad():
            out[f"{kind}_batch"] = model(features.get("x", n_id), blocks)[: seeds.numel()].tolist()
        ctx = type("Ctx", (), {"adj_norm": norm, "inference_batch_size": 50})()
        out[f"{kind}_whole"] = graph.predict(ctx, model).tolist()
    ids = torch.randint(0, graph.num_nodes, (0 if rank == world - 1 else 40,), generator=torch.Generator().manual_seed(rank))
    ids = torch.cat([ids, ids[:7]])  # repeats, own and remote ids mixed; the last rank asks nothing
    sent = [graph.exchange.stats["bytes_sent"]]
    out["ids"], out["rows"] = ids.tolist(), features.get("x", ids).tolist()
    sent.append(graph.exchange.stats["bytes_sent"])
    half = features.with_dtype("x", torch.bfloat16)  # the owners send bfloat16 rows: fewer bytes
    out["half"] = half.get("x", ids).float().tolist()
    sent.append(graph.exchange.stats["bytes_sent"])
    out["float_bytes"], out["half_bytes"] = sent[1] - sent[0], sent[2] - sent[1]
    assert half.seeds_per_rank and torch.equal(half.index("train_mask"), features.index("train_mask"))
    part.files.tensor("x")  # everything a rank reads: its part and the book
    out["mapped"] = _mapped_parts()
    out["arrays"] = {k: list(v.shape) for k, v in part.files._mapped.items()}
    graph.exchange.log = []
    gen = torch.Generator().manual_seed(rank)
    n_id, _ = sample_blocks(graph, seeds, [4, 3], "mean", gen, lid)
    features.get("x", n_id)
    out["log"] = graph.exchange.log
    out["stats"] = graph.exchange.stats
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(out, f)
    dist.destroy_process_group()


def _one_process(data, seeds, kind, norm):
    g, feats = from_data(data)
    model = _model(kind)
    lid = torch.full((data.num_nodes,), -1, dtype=torch.long)
    n_id, blocks = sample_blocks(g, torch.tensor(seeds), [-1, -1], norm, None, lid)
    with torch.no_grad():
        batch = model(feats.get("x", n_id), blocks)[: len(seeds)]
        whole = model.inference(data.x, g.adjacency(norm))
    return batch, whole


@pytest.mark.parametrize("world,method,weighted", [(2, "metis", True), (4, "random", False)])
def test_ranks_hold_their_part_and_match_one_process(tmp_path, world, method, weighted):
    data = _graph(weighted)
    path = str(tmp_path / "parts")
    info = write_partition(data, world, path, method=method)
    mp.start_processes(_worker, args=(world, free_port(), path, str(tmp_path)), nprocs=world, join=True,
                       start_method="fork")  # no re-import per worker
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]
    most = max(p["num_train"] for p in info["parts"])
    for r, res in enumerate(results):
        assert res["mapped"] == sorted(["book", f"part-{r}"])  # no other part's file is mapped
        assert res["arrays"]["x"] == [res["n_r"], 8] and res["n_r"] == info["parts"][r]["num_nodes"]
        assert res["num_train"] == most  # every rank walks the same number of seeds
        for kind, norm in (("sage", "mean"), ("gcn", "gcn")):
            batch, whole = _one_process(data, res["seeds"], kind, norm)
            assert torch.allclose(torch.tensor(res[f"{kind}_batch"]), batch, atol=1e-5)
            assert torch.allclose(torch.tensor(res[f"{kind}_whole"]), whole, atol=1e-5)
        want = data.x[torch.tensor(res["ids"], dtype=torch.long)]
        assert torch.equal(torch.tensor(res["rows"]).view(-1, 8), want)
        assert torch.equal(torch.tensor(res["half"]).view(-1, 8), want.bfloat16().float())
        assert res["half_bytes"] <= res["float_bytes"]
    assert sum(r["half_bytes"] for r in results) < sum(r["float_bytes"] for r in results)
    rounds = len(results[0]["log"])
    assert rounds == 3 and all(len(res["log"]) == rounds for res in results)  # two hops, one feature read
    for t in range(rounds):
        for q in range(world):  # what q asked of owner o is exactly what o answered q, each id once
            for o in range(world):
                asked = results[q]["log"][t]["asked"][str(o)]
                answered = results[o]["log"][t]["answered"][str(q)]
                assert asked == answered and len(set(asked)) == len(asked)
                assert o != q or not asked
    assert all(res["stats"]["bytes_sent"] > 0 for res in results)
