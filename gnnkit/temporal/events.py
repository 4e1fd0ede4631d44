"""Event streams: timed interactions ``(src, dst, t)`` with optional message features and labels.

:class:`EventStream` holds ``E`` events as tensors:

* ``src``, ``dst`` ``[E]`` int64 node ids in ``[0, num_nodes)``;
* ``t`` ``[E]`` float64 times, non-negative, finite and non-decreasing (chronological order);
* ``msg`` ``[E, F]`` float32 event features (``F`` may be 0); ``label`` ``[E]`` optional;
* ``x`` ``[N, D]`` optional node features;
* after :func:`gnnkit.temporal.split.temporal_split`: boolean event masks ``train_mask``,
  ``val_mask``, ``test_mask``, ``new_val_mask``, ``new_test_mask`` ``[E]`` and the held-out node
  mask ``masked_nodes`` ``[N]``.

Loaders (each validated, with errors naming the file and line):

* :func:`read_whitespace` — ``src dst t [f1 f2 ...]`` per line (SNAP's CollegeMsg layout); ``#`` and
  ``%`` start comment lines; ids are used as given, ``num_nodes = max id + 1``.
* :func:`read_jodie_csv` — JODIE's CSV (Wikipedia, Reddit, MOOC, LastFM): one header line, then
  user, item, timestamp, state label and ``F`` feature columns, read by position; items are
  renumbered after the users (``item + max user + 1``).
* :func:`from_temporal_data` — PyG's :class:`~torch_geometric.data.TemporalData`.

Node ids are bounded before anything is allocated per node: ``max id + 1`` nodes times
:data:`BYTES_PER_NODE` must fit in memory (:func:`gnnkit.data.limits.check_allocation`), so a
single id of 10^12 is refused naming its line instead of asking for a terabyte.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from ..data.limits import check_allocation, memory_limit
from ..errors import GnnkitError

# Bytes of state a temporal model keeps per node (TGN: a 100-float32 memory, its last-update time,
# a neighbour ring of 10 ids and times): the figure the size check multiplies the node count by.
BYTES_PER_NODE = 256

MASK_FIELDS = ("train_mask", "val_mask", "test_mask", "new_val_mask", "new_test_mask", "masked_nodes")


@dataclass
class EventStream:
    src: Tensor
    dst: Tensor
    t: Tensor
    msg: Tensor
    num_nodes: int
    label: Optional[Tensor] = None
    x: Optional[Tensor] = None
    name: str = "events"
    train_mask: Optional[Tensor] = None
    val_mask: Optional[Tensor] = None
    test_mask: Optional[Tensor] = None
    new_val_mask: Optional[Tensor] = None
    new_test_mask: Optional[Tensor] = None
    masked_nodes: Optional[Tensor] = None

    @property
    def num_events(self) -> int:
        return int(self.src.numel())

    @property
    def msg_dim(self) -> int:
        return int(self.msg.size(1))

    def __len__(self) -> int:
        return self.num_events

    def to(self, device) -> "EventStream":
        moved = {f.name: (v.to(device) if isinstance(v := getattr(self, f.name), Tensor) else v)
                 for f in dataclasses.fields(self)}
        return EventStream(**moved)

    def replace(self, **changes) -> "EventStream":
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        split = "" if self.train_mask is None else (
            f", train={int(self.train_mask.sum())}, val={int(self.val_mask.sum())}, test={int(self.test_mask.sum())}")
        return f"EventStream({self.name}: {self.num_events} events, {self.num_nodes} nodes, msg_dim={self.msg_dim}{split})"


def make_stream(src, dst, t, msg=None, *, num_nodes: Optional[int] = None, label=None, x=None,
                name: str = "events", sort: bool = False,
                where: Optional[Callable[[int], str]] = None) -> EventStream:
    """A validated :class:`EventStream` from array-likes.

    ``sort=True`` sorts unsorted times (stably) instead of raising. ``where(i)`` names event ``i``
    in error messages (the loaders pass ``"path, line N"``); by default ``"event i"``."""
    where = where or (lambda i: f"event {i}")
    src, dst = _ids(src, "src", where), _ids(dst, "dst", where)
    t = torch.as_tensor(np.asarray(t, dtype=np.float64) if not isinstance(t, Tensor) else t).to(torch.float64).view(-1)
    e = src.numel()
    if dst.numel() != e or t.numel() != e:
        raise GnnkitError(f"{name}: src, dst and t must have the same length, got {e}, {dst.numel()}, {t.numel()}")
    if msg is None:
        msg = torch.zeros(e, 0)
    msg = torch.as_tensor(msg).to(torch.float32)
    if msg.dim() == 1:
        msg = msg.view(-1, 1)
    if msg.size(0) != e:
        raise GnnkitError(f"{name}: msg has {msg.size(0)} rows for {e} events")
    _first_bad(~torch.isfinite(t), where, "time is NaN or infinite")
    _first_bad(t < 0, where, "time is negative")
    if msg.numel():
        _first_bad(~torch.isfinite(msg).all(1), where, "message features contain NaN or infinity")
    given = num_nodes is not None
    if e and not given:
        num_nodes = int(torch.maximum(src.max(), dst.max())) + 1
    num_nodes = int(num_nodes or 0)
    if num_nodes < 0:
        raise GnnkitError(f"{name}: num_nodes must be >= 0, got {num_nodes}")
    if float(num_nodes) * BYTES_PER_NODE > memory_limit():  # name the line holding the largest id
        what = f"{name}: num_nodes={num_nodes}" if given or not e else \
            f"{where(int(torch.argmax(torch.maximum(src, dst))))}: node id {num_nodes - 1}"
        check_allocation(float(num_nodes) * BYTES_PER_NODE, f"{what} (per-node state for {num_nodes} nodes)")
    _first_bad((src >= num_nodes) | (dst >= num_nodes), where, f"node id out of range [0, {num_nodes})")
    if label is not None:
        label = torch.as_tensor(label).view(-1)
        if label.numel() != e:
            raise GnnkitError(f"{name}: label has {label.numel()} entries for {e} events")
    if x is not None:
        x = torch.as_tensor(x).to(torch.float32)
        if x.dim() != 2 or x.size(0) != num_nodes:
            raise GnnkitError(f"{name}: node features must be [num_nodes={num_nodes}, D], got {list(x.shape)}")
        if not torch.isfinite(x).all():
            raise GnnkitError(f"{name}: node features contain NaN or infinity")
    if e > 1:
        down = t[1:] < t[:-1]
        if bool(down.any()):
            if not sort:
                i = int(down.nonzero()[0]) + 1
                raise GnnkitError(f"{where(i)}: time {t[i].item():g} is earlier than the previous event's "
                                  f"{t[i - 1].item():g}; events must be sorted by time (or ask for sorting: sort=True, "
                                  f"--sort-events)")
            order = torch.sort(t, stable=True).indices
            src, dst, t, msg = src[order], dst[order], t[order], msg[order]
            label = None if label is None else label[order]
    return EventStream(src=src, dst=dst, t=t, msg=msg, num_nodes=num_nodes, label=label, x=x, name=name)


def _ids(a, field: str, where) -> Tensor:
    a = torch.as_tensor(np.asarray(a) if not isinstance(a, Tensor) else a).view(-1)
    if a.dtype == torch.bool or a.is_complex():
        raise GnnkitError(f"{field} ids must be integers, got dtype {a.dtype}")
    if a.is_floating_point():
        bad = ~torch.isfinite(a) | (a != torch.floor(a))
        _first_bad(bad, where, f"{field} id is not an integer")
        _first_bad(a.abs() > 2.0 ** 53, where, f"{field} id is too large to be a node id")
    a64 = a.to(torch.int64)
    _first_bad(a64 < 0, where, f"{field} id is negative (node id out of range)")
    return a64


def _first_bad(bad: Tensor, where, what: str) -> None:
    if bad.numel() and bool(bad.any()):
        raise GnnkitError(f"{where(int(bad.nonzero()[0]))}: {what}")


# -- files ------------------------------------------------------------------------------------------
def _data_lines(path: str, skip: int, comment: tuple) -> list:
    """1-based line numbers of the data rows (used only to name a line in an error)."""
    out = []
    with open(path, errors="replace") as f:
        for no, line in enumerate(f, 1):
            s = line.strip()
            if no > skip and s and not s.startswith(comment):
                out.append(no)
    return out


def _parse(path: str, *, delimiter, skip: int, min_cols: int, layout: str, comment=("#", "%")) -> np.ndarray:
    # numpy's text parser holds the lines and a float64 per value: a few times the file's size
    size = os.path.getsize(path)
    check_allocation(4.0 * size, f"{path} ({size} bytes of text)")
    try:
        table = np.loadtxt(path, dtype=np.float64, delimiter=delimiter, skiprows=skip, comments=list(comment), ndmin=2)
    except (ValueError, IndexError):
        table = None
    if table is not None and table.size and table.shape[1] >= min_cols:
        return table
    if table is not None and table.size == 0:
        raise GnnkitError(f"{path}: no events found")
    # slow path, only when the fast parser failed: find and name the first bad line
    width = None
    with open(path, errors="replace") as f:
        for no, line in enumerate(f, 1):
            s = line.strip()
            if no <= skip or not s or s.startswith(comment):
                continue
            cells = s.split(delimiter) if delimiter else s.split()
            try:
                [float(c) for c in cells]
            except ValueError:
                raise GnnkitError(f"{path}, line {no}: cannot parse {s[:60]!r} as {layout}") from None
            if len(cells) < min_cols or (width is not None and len(cells) != width):
                raise GnnkitError(f"{path}, line {no}: expected {layout} ({width or min_cols} columns), "
                                  f"got {len(cells)}: {s[:60]!r}")
            width = len(cells)
    raise GnnkitError(f"{path}: cannot parse as {layout}")


def read_whitespace(path: str, *, num_nodes: Optional[int] = None, sort: bool = False) -> EventStream:
    """Whitespace-separated ``src dst t [features...]`` lines (``#``/``%`` comments allowed)."""
    table = _parse(path, delimiter=None, skip=0, min_cols=3, layout="'src dst t [features...]'")
    lines = None

    def where(i: int) -> str:
        nonlocal lines
        lines = lines or _data_lines(path, 0, ("#", "%"))
        return f"{path}, line {lines[i]}"

    return make_stream(table[:, 0], table[:, 1], table[:, 2], table[:, 3:], num_nodes=num_nodes, sort=sort,
                       where=where, name=os.path.splitext(os.path.basename(path))[0])


def read_jodie_csv(path: str, *, sort: bool = False) -> EventStream:
    """JODIE CSV: a header, then ``user,item,timestamp,state_label,f_1,...,f_F`` by position."""
    with open(path, errors="replace") as f:
        header = f.readline().strip()
    names = header.split(",")
    numeric = True
    try:
        [float(c) for c in names]
    except ValueError:
        numeric = False
    if len(names) < 4 or numeric:
        raise GnnkitError(f"{path}, line 1: expected the JODIE header 'user_id,item_id,timestamp,state_label,"
                          f"features...', got {header[:60]!r}")
    table = _parse(path, delimiter=",", skip=1, min_cols=4, layout="'user,item,timestamp,state_label,features...'")
    lines = None

    def where(i: int) -> str:
        nonlocal lines
        lines = lines or _data_lines(path, 1, ("#", "%"))
        return f"{path}, line {lines[i]}"

    user = _ids(table[:, 0], "user", where)
    item = _ids(table[:, 1], "item", where)
    item = item + (int(user.max()) + 1 if user.numel() else 0)
    return make_stream(user, item, table[:, 2], table[:, 4:], label=torch.as_tensor(table[:, 3]), sort=sort,
                       where=where, name=os.path.splitext(os.path.basename(path))[0])


def from_temporal_data(data, *, sort: bool = False, name: str = "temporal-data") -> EventStream:
    """An :class:`EventStream` from PyG's ``TemporalData`` (``src``, ``dst``, ``t``, ``msg``, ``y``)."""
    msg = getattr(data, "msg", None)
    return make_stream(data.src, data.dst, data.t, msg, num_nodes=getattr(data, "num_nodes", None),
                       label=getattr(data, "y", None), sort=sort, name=name)


def load_events(source, *, sort: bool = False, num_nodes: Optional[int] = None) -> EventStream:
    """An event stream from a path (``.csv``: JODIE; anything else: whitespace ``src dst t``), a
    folder holding one such file, a ``TemporalData`` or an :class:`EventStream`."""
    if isinstance(source, EventStream):
        return source
    if not isinstance(source, (str, os.PathLike)):
        return from_temporal_data(source, sort=sort)
    path = os.fspath(source)
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.endswith((".txt", ".csv", ".tsv", ".edges")))
        if len(files) != 1:
            raise GnnkitError(f"{path}: expected one event file (.txt, .csv, .tsv, .edges) in the folder, found "
                              f"{len(files)}{': ' + ', '.join(files[:5]) if files else ''}")
        path = os.path.join(path, files[0])
    if not os.path.isfile(path):
        raise GnnkitError(f"event file {path} does not exist")
    if path.endswith(".csv"):
        return read_jodie_csv(path, sort=sort)
    return read_whitespace(path, num_nodes=num_nodes, sort=sort)


@dataclass
class EventBatch:
    """A chronological slice of events: ``e_id`` ``[B]`` global event ids, ``src``/``dst``/``neg_dst``
    ``[B]`` node ids, ``t`` ``[B]`` float64 times, ``msg`` ``[B, F]``."""

    e_id: Tensor
    src: Tensor
    dst: Tensor
    t: Tensor
    msg: Tensor
    neg_dst: Tensor

    @property
    def num_events(self) -> int:
        return int(self.src.numel())
