"""Event streams, their validation, the chronological / inductive split, the ring buffer, the store."""
from __future__ import annotations

import pytest
import torch

from gnnkit.errors import GnnkitError
from gnnkit.temporal.events import load_events, make_stream, read_jodie_csv, read_whitespace
from gnnkit.temporal.memory import TemporalMemory
from gnnkit.temporal.metrics import average_precision, roc_auc
from gnnkit.temporal.neighbors import LastNeighbors
from gnnkit.temporal.split import temporal_split


def random_stream(num_nodes=12, num_events=300, msg_dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(num_nodes, (num_events,), generator=g)
    dst = torch.randint(num_nodes, (num_events,), generator=g)
    t = torch.sort(torch.randint(0, 10 * num_events, (num_events,), generator=g).double()).values
    return make_stream(src, dst, t, torch.randn(num_events, msg_dim, generator=g), num_nodes=num_nodes)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# -- loading and validation ---------------------------------------------------------------------
def test_whitespace_file_with_comments_and_features(tmp_path):
    path = write(tmp_path, "ev.txt", "# src dst t\n0 1 5 0.5\n\n2 0 7 1.5\n")
    s = read_whitespace(path)
    assert s.num_events == 2 and s.num_nodes == 3 and s.msg_dim == 1
    assert s.src.tolist() == [0, 2] and s.t.tolist() == [5.0, 7.0] and s.msg.view(-1).tolist() == [0.5, 1.5]


@pytest.mark.parametrize("text, line, words", [
    ("0 1 5\n1 x 6\n", 2, "cannot parse"),
    ("# header\n0 1 5\n1 2\n", 3, "columns"),
    ("0 1 5\n-1 2 6\n", 2, "negative"),
    ("0 1 5\n1 2 nan\n", 2, "NaN"),
    ("0 1 5\n1 2 -3\n", 2, "negative"),
    ("# c\n0 1 5\n1 2 3\n", 3, "earlier than"),
    ("0 1 5 1.0\n1 2 6 nan\n", 2, "NaN"),
    ("0 1 5\n1.5 2 6\n", 2, "not an integer"),
])
def test_bad_whitespace_rows_name_the_line(tmp_path, text, line, words):
    path = write(tmp_path, "bad.txt", text)
    with pytest.raises(GnnkitError, match=rf"line {line}\b.*{words}"):
        read_whitespace(path)


def test_ids_out_of_range_and_sorting_on_request(tmp_path):
    with pytest.raises(GnnkitError, match=r"event 1: node id out of range \[0, 3\)"):
        make_stream([0, 5], [1, 2], [1.0, 2.0], num_nodes=3)
    path = write(tmp_path, "unsorted.txt", "0 1 5\n1 2 3\n2 0 4\n")
    s = read_whitespace(path, sort=True)
    assert s.t.tolist() == [3.0, 4.0, 5.0] and s.src.tolist() == [1, 2, 0]


def test_jodie_csv(tmp_path):
    text = ("user_id,item_id,timestamp,state_label,comma_separated_list_of_features\n"
            "0,0,1.0,0,0.1,0.2\n1,2,2.0,1,0.3,0.4\n")
    s = read_jodie_csv(write(tmp_path, "w.csv", text))
    assert s.src.tolist() == [0, 1] and s.dst.tolist() == [2, 4]  # items renumbered after the users
    assert s.num_nodes == 5 and s.msg_dim == 2 and s.label.tolist() == [0.0, 1.0]
    with pytest.raises(GnnkitError, match="line 1: expected the JODIE header"):
        read_jodie_csv(write(tmp_path, "n.csv", "0,0,1.0,0,0.1\n"))
    with pytest.raises(GnnkitError, match="line 3: cannot parse"):
        read_jodie_csv(write(tmp_path, "b.csv", "u,i,t,l\n0,0,1.0,0\n1,?,2.0,0\n"))


def test_temporal_data_and_dispatch(tmp_path):
    from torch_geometric.data import TemporalData

    td = TemporalData(src=torch.tensor([0, 1]), dst=torch.tensor([1, 2]), t=torch.tensor([1, 2]),
                      msg=torch.ones(2, 3))
    s = load_events(td)
    assert s.num_events == 2 and s.msg_dim == 3
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "x.txt").write_text("0 1 1\n")
    assert load_events(str(folder)).num_events == 1
    with pytest.raises(GnnkitError, match="does not exist"):
        load_events(str(tmp_path / "missing.txt"))


def test_college_msg_loads(shared_data):
    path = shared_data / "temporal" / "CollegeMsg" / "CollegeMsg.txt"
    if not path.is_file():
        pytest.skip(f"CollegeMsg event file not found at {path} (set GNNKIT_SHARED_DATA)")
    s = load_events(str(path))
    nodes = torch.unique(torch.cat([s.src, s.dst]))
    assert s.num_events == 59835 and nodes.numel() == 1899 and s.msg_dim == 0
    assert bool((s.t[1:] >= s.t[:-1]).all())


# -- split --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    # issue 19: a node id of 10^12 asked for a 1 TB allocation
    ("0 1 1\n1 1000000000000 2\n", r"ev\.txt, line 2: node id 1000000000000 \(per-node state for 1000000000001 nodes\) "
                                   r"needs [\d.]+ TiB, more than this machine's"),
    ("0 1 1\n1 1e300 2\n", r"line 2: dst id is too large to be a node id"),
    ("0 1 1\n1 2 inf\n", r"line 2: time is NaN or infinite"),
    ("0 1 1\n\x00\xff\xfe 2 3\n", r"line 2: cannot parse"),
    ("# only a comment\n", r"ev\.txt: no events found"),
])
def test_hostile_event_files_refused_naming_the_line(tmp_path, text, message):
    path = tmp_path / "ev.txt"
    path.write_bytes(text.encode("latin1"))
    with pytest.raises(GnnkitError, match=message):
        load_events(str(path))


def test_node_count_checked_for_streams_built_in_python():
    with pytest.raises(GnnkitError, match=r"events: num_nodes=10000000000000 \(per-node state for 10000000000000 nodes\) needs"):
        make_stream([0, 1], [1, 2], [0.0, 1.0], num_nodes=10 ** 13)


def test_split_is_chronological_and_hides_masked_nodes():
    s = temporal_split(random_stream(num_nodes=40, num_events=600), seed=3)
    t_val, t_test = torch.quantile(s.t, torch.tensor([0.7, 0.85], dtype=s.t.dtype)).tolist()
    assert bool((s.t[s.train_mask] <= t_val).all()) and bool((s.t[s.test_mask] > t_test).all())
    assert bool((s.t[s.val_mask] > t_val).all()) and bool((s.t[s.val_mask] <= t_test).all())
    assert int(s.masked_nodes.sum()) == 4  # 10% of the 40 active nodes
    assert not bool(s.masked_nodes[s.src[s.train_mask]].any() | s.masked_nodes[s.dst[s.train_mask]].any())
    seen = torch.zeros(40, dtype=torch.bool)
    seen[s.src[s.train_mask]] = True
    seen[s.dst[s.train_mask]] = True
    new = s.test_mask & (~seen[s.src] | ~seen[s.dst])
    assert torch.equal(new, s.new_test_mask) and bool(s.new_test_mask.any())
    assert torch.equal(temporal_split(s, seed=3).masked_nodes, s.masked_nodes)
    assert not torch.equal(temporal_split(s, seed=4).masked_nodes, s.masked_nodes)


# -- ring buffer --------------------------------------------------------------------------------
def test_ring_buffer_matches_brute_force():
    s = random_stream(num_nodes=6, num_events=90, seed=1)
    k = 3
    buf = LastNeighbors(6, k)
    sizes = [1, 7, 2, 20, 5, 30, 25]  # batches larger than k for one node included
    lo = 0
    for size in sizes:
        e = torch.arange(lo, min(lo + size, 90))
        buf.insert(s.src[e], s.dst[e], e)
        lo = int(e[-1]) + 1
        for v in range(6):  # reference: the node's last k links over all events so far
            links = [(int(s.dst[i]), i) for i in range(lo) if int(s.src[i]) == v]
            links += [(int(s.src[i]), i) for i in range(lo) if int(s.dst[i]) == v]
            want = sorted(links, key=lambda x: x[1])[-k:]  # a self-loop gives two equal links
            nbr, eid, mask = buf(torch.tensor([v]))
            got = list(zip(nbr[0][mask[0]].tolist(), eid[0][mask[0]].tolist()))
            assert sorted(got) == sorted(want), (v, got, want)
    buf.reset()
    assert not bool(buf(torch.arange(6))[2].any())


# -- message store ------------------------------------------------------------------------------
def test_store_keeps_each_nodes_last_batch_in_order():
    mem = TemporalMemory(5, 4, 1, capacity=2)
    mem.store(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([1.0, 2.0]), torch.tensor([[1.0], [2.0]]))
    mem.store(torch.tensor([2, 0, 2]), torch.tensor([3, 4, 0]), torch.tensor([3.0, 4.0, 5.0]),
              torch.tensor([[3.0], [4.0], [5.0]]))
    local, pos = mem.pending(torch.tensor([2, 0, 1, 3]))
    # node 2: its second-batch messages only (t 3, 5); node 0: t 4, 5; node 1: first batch t 1, 2
    assert local.tolist() == [0, 0, 1, 1, 2, 2, 3]
    assert mem.log_t[pos].tolist() == [3.0, 5.0, 4.0, 5.0, 1.0, 2.0, 3.0]
    assert mem.log_other[pos].tolist() == [3, 0, 4, 2, 0, 2, 2]
    mem.clear(torch.tensor([2]))
    assert mem.pending(torch.tensor([2]))[0].numel() == 0
    mem.reset()
    assert mem.pending(torch.arange(5))[0].numel() == 0 and mem.size == 0


def test_metrics_match_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(0)
    for i in range(10):
        score = torch.randint(0, 4, (30,), generator=g).float() if i % 2 else torch.rand(30, generator=g)
        label = (torch.rand(30, generator=g) < 0.4).float()
        assert average_precision(score, label) == pytest.approx(sk.average_precision_score(label, score))
        assert roc_auc(score, label) == pytest.approx(sk.roc_auc_score(label, score))


def test_fingerprint_of_an_event_stream():
    from gnnkit.data import fingerprint

    a = make_stream([0, 1, 2], [1, 2, 0], [0.0, 1.0, 2.0])
    b = make_stream([0, 1, 2], [1, 2, 0], [0.0, 1.0, 2.5])
    assert fingerprint(a) == fingerprint(a.replace(name="other")) != fingerprint(b)


def test_evaluation_sets_fixed_per_split():
    from gnnkit.temporal.split import MASKS, evaluation_sets

    s = temporal_split(random_stream(num_nodes=30, num_events=400), new_node_fraction=0.2, seed=0)
    a, b = evaluation_sets(s), evaluation_sets(s)
    dsts = set(s.dst.tolist())
    for split, (e_id, neg) in a.items():
        assert torch.equal(e_id, getattr(s, MASKS[split]).nonzero().view(-1)) and neg.shape == e_id.shape
        assert set(neg.tolist()) <= dsts and torch.equal(neg, b[split][1])  # the same every call
    assert a["val"][0].numel() > 0 and a["val_new"][0].numel() > 0
    assert not torch.equal(a["val"][1][:20], a["test"][1][:20])  # a different seed per split
