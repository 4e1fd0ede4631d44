"""Graphs bigger than memory (issue 21): build a csbm store, train GraphSAGE from it, measure.

Stages (each in its own process, so each peak memory is its own):

* ``build``: ``gnnkit.stores.ondisk.write_csbm`` (streamed): build seconds (wall and process CPU),
  disk bytes, peak ``VmRSS`` / ``RssAnon`` (sampled every 0.1 s from ``/proc/self/status``).
* ``train``: a 3-layer GraphSAGE (hidden 256), fanouts 15,10,5, batch 1024, Adam, from the store
  (memory-mapped) or from memory (the same graph read into RAM): after ``--warmup`` steps,
  ``--steps`` steps timed: steps/s, seeds/s, sampled edges/s (block non-zeros), bytes read from disk
  per step (``/proc/self/io`` ``read_bytes``) and major page faults per step; peak ``RssAnon`` and
  ``RssFile``; ``--cache-gib G`` keeps G GiB of the highest in-degree nodes' features in memory;
  ``--steps 0`` skips the warm-up and timed steps. With ``--full-epoch`` one whole epoch more
  (epoch index :data:`EPOCH`), and the test nodes evaluated once on their sampled neighborhoods
  (same fanouts, batch by batch as :class:`samplers.neighbor.SampledPredictions` computes them, the
  Trainer's evaluation of graphs too big for whole-graph inference). A store bigger than half the
  memory is read by ``--read-threads`` concurrent readers (default: the store's own choice).

The full epoch is resumable, bitwise: checkpoints every ``--checkpoint-every`` steps (and test
batches) in ``--epoch-dir`` (default ``WORK/<store>.epoch``; model, Adam, the epoch generator's and
the global RNG's states, the per-step figures; the newest two kept) and on SIGTERM/SIGINT after
the current step (exit 3). Running the same command again resumes; a checkpoint of another store
or other settings is refused (exit 2). The record: the epoch's steps, the per-process pieces
(UTC start/end, walls, peaks, load), rates over the steps after the first :data:`WARM`, bytes read
per step, the test accuracy and evaluation seconds. ``--epoch-status`` prints it from the newest
checkpoint while the run goes on.

Every record carries the load average (1 min) at its start and end: the machine may be shared.
The page cache is warmed before training only for a store that fits in half the memory.

Presets: ``papers`` (ogbn-papers100M's shape: 111,059,956 nodes, 14.55 directed edges per node,
128 float16 features, 172 classes, 1,546,782 labeled nodes split 1,207,179 / 125,265 / 214,338)
and ``products`` (ogbn-products' shape: 2,449,029 nodes, 25.26 edges per node, 100 float32
features, 47 classes, 8% / 2% / 90%). ``--num-nodes`` scales a preset down (labeled nodes in
proportion) for a trial run. ``--side-by-side`` trains from memory and from the store in one run
and prints the store's step rate as a ratio of memory's (page cache warmed first).

    python benchmarks/out_of_core.py --preset papers --work /data/ooc --full-epoch
    python benchmarks/out_of_core.py --preset papers --work /data/ooc --reuse --steps 0 --full-epoch  # again: resumes
    python benchmarks/out_of_core.py --preset products --side-by-side --work /data/ooc
    python benchmarks/out_of_core.py --preset papers --num-nodes 200000 --work /tmp/ooc   # trial

Results: one JSON per run in ``--out`` (default benchmarks/out/).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRESETS = {
    "papers": dict(num_nodes=111_059_956, avg_degree=14.55, num_features=128, num_classes=172,
                   feature_dtype="float16", labeled=1_546_782, train=1_207_179, val=125_265),
    "products": dict(num_nodes=2_449_029, avg_degree=25.26, num_features=100, num_classes=47,
                     feature_dtype="float32", labeled=None, train=0.08, val=0.02),
}


class Meter:
    """Peaks of ``VmRSS``/``RssAnon``/``RssFile`` (kB, sampled every 0.1 s) and deltas of disk reads."""

    KEYS = ("VmRSS", "RssAnon", "RssFile")

    def __init__(self):
        self.peak = {k: 0 for k in self.KEYS}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def status() -> dict:
        out = {}
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in Meter.KEYS:
                    out[key] = int(value.split()[0])
        return out

    @staticmethod
    def io() -> dict:
        """``read_bytes`` (from storage) and major faults so far (-1 where /proc/self/io is unreadable)."""
        read = -1
        try:
            with open("/proc/self/io") as f:
                read = int(next(line for line in f if line.startswith("read_bytes")).split()[1])
        except (OSError, StopIteration):
            pass
        return {"read_bytes": read, "majflt": resource.getrusage(resource.RUSAGE_SELF).ru_majflt}

    def _run(self):
        while not self._stop.is_set():
            for k, v in self.status().items():
                self.peak[k] = max(self.peak[k], v)
            self._stop.wait(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        for k, v in self.status().items():
            self.peak[k] = max(self.peak[k], v)

    def peaks_gib(self) -> dict:
        return {f"peak_{k}_gib": round(v / 2**20, 3) for k, v in self.peak.items()}


def preset_options(args) -> dict:
    p = dict(PRESETS[args.preset])
    n = args.num_nodes or p["num_nodes"]
    scale = n / p["num_nodes"]
    opts = dict(num_nodes=n, avg_degree=p["avg_degree"], num_features=p["num_features"],
                num_classes=p["num_classes"], seed=args.graph_seed, split="random")
    labeled = None if p["labeled"] is None else max(int(round(p["labeled"] * scale)), 10)
    if labeled is None:
        opts.update(train_frac=p["train"], val_frac=p["val"])
    else:
        opts.update(train_frac=p["train"] / p["labeled"], val_frac=p["val"] / p["labeled"])
    return dict(options=opts, labeled_nodes=labeled, feature_dtype=args.feature_dtype or p["feature_dtype"])


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def stage_build(args) -> dict:
    from gnnkit.stores.ondisk import write_csbm

    p = preset_options(args)
    start, load0 = time.perf_counter(), os.getloadavg()[0]
    with Meter() as meter:
        path = write_csbm(args.store, feature_dtype=p["feature_dtype"], overwrite=True, progress=args.progress,
                          labeled_nodes=p["labeled_nodes"], **p["options"])
    disk = sum(e.stat().st_size for e in os.scandir(path))
    meta = json.loads((Path(path) / "gnnkit-store.json").read_text())
    return {"stage": "build", "seconds": round(time.perf_counter() - start, 1), "cpu_seconds": round(cpu_seconds(), 1),
            "load_start_end": [load0, os.getloadavg()[0]], "disk_bytes": disk,
            "num_nodes": meta["num_nodes"], "num_edges": meta["num_edges"], **p, **meter.peaks_gib()}


def _stores(args, source: str):
    from gnnkit.stores import from_data
    from gnnkit.stores.ondisk import open_store, to_data

    if source == "store":
        graph, features = open_store(args.store, read_threads=args.read_threads)
        if args.cache_gib:  # the rows of the highest in-degree nodes kept in memory
            features.cache_rows("x", int(args.cache_gib * 2**30), graph.in_degree())
        return graph, features
    data = to_data(args.store)
    for key in list(data.keys()):
        if isinstance(data[key], torch.Tensor):
            data[key] = data[key].float().clone() if key == "x" else data[key].clone()  # into RAM
    return from_data(data)


def _setup(args, source: str):
    from gnnkit.context import RunContext
    from gnnkit.samplers.neighbor import NeighborSampler
    from gnnkit.samplers.scan import scan_context
    from models import build_model

    graph, features = _stores(args, source)
    torch.manual_seed(0)
    model = build_model("sage", features.shape("x")[1], int(features.meta["num_classes"]), hidden=256,
                        num_layers=3)
    ctx = RunContext(device=torch.device("cpu"), seed=0, graph=graph, features=features,
                     adj_norm=getattr(model, "adj_norm", "mean"))
    sampler = NeighborSampler(fanouts=[15, 10, 5], batch_size=args.batch_size)
    scan = args.scan_group if source == "store" else 0  # the rows of --scan-group batches read in one pass
    sampler.setup(scan_context(ctx, sampler, scan), model)
    return model, sampler, features


def _epochs(sampler, first: int = 0):
    """Batches epoch after epoch (``set_epoch`` before each), for step counts beyond one epoch."""
    epoch = first
    while True:
        sampler.set_epoch(epoch)
        yield from sampler
        epoch += 1


def _step(model, opt, batch) -> None:
    """One Adam step on the batch's cross-entropy."""
    opt.zero_grad()
    out = model(batch.x, batch.adj)
    torch.nn.functional.cross_entropy(out[batch.loss_index], batch.y).backward()
    opt.step()


def _train_steps(model, batches, opt, count: int, label: str = "") -> dict:
    """``count`` training steps (or until the epoch ends); seeds and sampled edges counted. Every
    10 steps a line on stderr: steps, seconds, bytes read and ``RssAnon`` so far (a run stopped
    early still says how far it went and how fast)."""
    steps = seeds = edges = 0
    t0, io0 = time.perf_counter(), Meter.io()
    for batch in batches if count > 0 else ():
        _step(model, opt, batch)
        steps, seeds = steps + 1, seeds + batch.batch_size
        edges += sum(a.nnz for a in batch.adj)
        if steps % 10 == 0:
            print(f"{label} step {steps}: {time.perf_counter() - t0:.1f} s, seeds {seeds}, edges {edges}, read "
                  f"{Meter.io()['read_bytes'] - io0['read_bytes']} B, RssAnon {Meter.status()['RssAnon']} kB, "
                  f"load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
        if steps == count:
            break
    return {"steps": steps, "seeds": seeds, "edges": edges}


@torch.no_grad()
def _evaluate(model, sampler, features) -> float:
    """Test accuracy on the test nodes' sampled neighborhoods (the training fanouts), as the
    Trainer evaluates a graph too big for whole-graph inference."""
    from gnnkit.samplers.neighbor import SampledPredictions

    model.eval()
    test = features.index("test_mask")
    logits = SampledPredictions(sampler.ctx, model, sampler.fanouts, batch_size=sampler.batch_size)[test]
    model.train()
    return float((logits.argmax(1) == features.get("y", test)).float().mean()) if test.numel() else float("nan")


def timed_steps(args, model, opt, sampler, features, source: str) -> dict:
    """``--warmup`` steps, then ``--steps`` steps timed (rates, bytes read and faults per step)."""
    batches = _epochs(sampler)
    _train_steps(model, batches, opt, args.warmup, f"{source} warm-up")
    io0, t1, c1 = Meter.io(), time.perf_counter(), cpu_seconds()
    timed = _train_steps(model, batches, opt, args.steps, f"{source} timed")
    secs, io1, cpu = time.perf_counter() - t1, Meter.io(), cpu_seconds() - c1
    return {**timed, "seconds": round(secs, 2), "steps_per_s": round(timed["steps"] / secs, 3),
            "cpu_seconds_per_step": round(cpu / max(timed["steps"], 1), 4),
            "seeds_per_s": round(timed["seeds"] / secs, 1), "edges_per_s": round(timed["edges"] / secs),
            "read_bytes_per_step": None if io0["read_bytes"] < 0 else
            round((io1["read_bytes"] - io0["read_bytes"]) / max(timed["steps"], 1)),
            "majflt_per_step": round((io1["majflt"] - io0["majflt"]) / max(timed["steps"], 1), 1),
            "steps_per_epoch": len(sampler), "read_threads": getattr(getattr(features, "files", None),
                                                                      "read_threads", None)}


def stage_train(args, source: str) -> dict:
    load0 = os.getloadavg()[0]
    with Meter() as meter, stop_on_signals() as stop:
        t0 = time.perf_counter()
        model, sampler, features = _setup(args, source)
        out = {"stage": "train", "source": source, "setup_seconds": round(time.perf_counter() - t0, 1)}
        opt = torch.optim.Adam(model.parameters(), lr=0.003)
        if args.full_epoch and source == "store":  # resumable: timed steps (if any), the epoch, the test nodes
            out.update(full_epoch(args, model, opt, sampler, features, meter, out["setup_seconds"],
                                  lambda: timed_steps(args, model, opt, sampler, features, source), stop))
        elif args.steps:
            out.update(timed_steps(args, model, opt, sampler, features, source))
    return {**out, **meter.peaks_gib(), "cpu_seconds": round(cpu_seconds(), 1), "load_start_end": [load0, os.getloadavg()[0]]}


# ---- the full epoch and the test evaluation, resumable mid-way (bitwise) -----------------------------

EPOCH = 10**6  # the recorded epoch's index: its own shuffle and neighbor draws
WARM = 20  # the epoch's first steps, left out of its rates (warm-up)
PER_STEP = ("seconds", "cpu", "seeds", "edges", "read", "majflt")
PHASES = ("sample", "scan", "train")  # per step: sampling (with the rows' gather unless scanned), the scan's share, the step


def run_key(args) -> dict:
    """What a checkpoint must match to be resumed: the store (its fingerprint) and every option
    that changes the numbers (``--read-threads`` and ``--cache-gib`` change only the speed: each
    piece records its own)."""
    meta = json.loads((Path(args.store) / "gnnkit-store.json").read_text())
    return {"store": Path(args.store).name, "fingerprint": meta["fingerprint"], "num_edges": meta["num_edges"],
            "warmup": args.warmup if args.steps else 0, "steps": args.steps, "threads": args.threads, "epoch": EPOCH,
            "batch_size": args.batch_size, "model": "sage 3x256 Adam(0.003) fanouts 15,10,5 seed 0",
            "code": code_hash()}


def code_hash() -> str:
    """A hash of the sources that make the numbers (``gnnkit/``, ``models/``, ``samplers/`` as
    imported): a resumed epoch must run the same code as its first piece (another model or
    sampler implementation changes the bits). Run a long epoch from a frozen copy of the tree."""
    import hashlib

    import gnnkit

    h = hashlib.blake2b(digest_size=12)
    base = Path(gnnkit.__file__).resolve().parents[1]
    for top in ("gnnkit", "models", "samplers"):
        for f in sorted((base / top).rglob("*.py")):
            h.update(str(f.relative_to(base)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


class EpochDir:
    """Checkpoints of the full epoch in ``path``: ``ckpt-<progress>.pt`` (``torch.save`` of plain
    tensors, numbers and lists, written atomically, read with ``weights_only``), the newest
    ``keep`` kept; ``lock`` held (``flock``) while a run uses the folder, so two runs never share it."""

    def __init__(self, path, key: dict, keep: int = 2):
        import fcntl

        from gnnkit.errors import GnnkitError

        self.path, self.key, self.keep = Path(path), key, keep
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path / "lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise GnnkitError(f"another run is using {self.path} (its lock is held)") from None

    def close(self) -> None:
        self._lock.close()

    def files(self):
        return sorted(self.path.glob("ckpt-*.pt"))

    def load(self):
        """The newest readable checkpoint (``None`` when there is none); refuses one of another
        store or other settings with a :class:`GnnkitError` naming the differences."""
        from gnnkit.errors import GnnkitError

        for f in reversed(self.files()):
            try:
                state = torch.load(f, weights_only=True)
            except Exception as e:  # noqa: BLE001 - an unreadable file: fall back to the older one
                print(f"skipping unreadable checkpoint {f}: {e}", file=sys.stderr)
                continue
            diff = {k: (state["key"].get(k), v) for k, v in self.key.items() if state["key"].get(k) != v}
            if diff:
                raise GnnkitError(f"{f} belongs to another run (checkpoint vs now: {diff}); "
                                  f"use another --epoch-dir or remove it")
            return state
        return None

    def save(self, state: dict) -> None:
        from gnnkit.fileio import atomic_torch_save

        atomic_torch_save(str(self.path / f"ckpt-{state['progress']:08d}.pt"), state)
        for old in self.files()[:-self.keep]:
            old.unlink()


def _fresh_state(key: dict, timed) -> dict:
    return {"key": key, "phase": "train", "progress": 0, "next": 0, "gen": None, "eval_next": 0,
            "eval_gen": None, "per_step": {k: [] for k in PER_STEP + PHASES}, "pieces": [], "timed": timed,
            "eval": {"correct": 0, "total": 0, "seconds": 0.0, "read": 0, "batches": 0}}


def _tree_commit() -> str:
    """The checkout's commit (``+dirty`` with uncommitted changes to this script, the stores, the
    samplers or the models), or a frozen copy's ``CODE_COMMIT`` note, or ``""``."""
    note = ROOT / "CODE_COMMIT"
    if note.is_file() and not (ROOT / ".git").exists():
        return note.read_text().strip()[:120]
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--",
                                "benchmarks/out_of_core.py", "gnnkit/stores", "gnnkit/samplers", "models"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+dirty" if dirty else "") if head else ""


def _utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Piece:
    """This process's part of the epoch: UTC start/end, steps and batches done, walls, peaks, load."""

    def __init__(self, meter, state, setup_s: float, features=None, cache_gib: float = 0.0):
        self.meter, self.t0 = meter, time.perf_counter()
        self.d = {"start_utc": _utc(), "first_step": state["next"], "first_eval_batch": state["eval_next"],
                  "read_threads": getattr(getattr(features, "files", None), "read_threads", None),
                  "cache_gib": cache_gib, "tree": _tree_commit(),
                  "setup_seconds": round(setup_s, 1), "train_seconds": 0.0, "eval_seconds": 0.0,
                  "load_start": os.getloadavg()[0], "load_max": os.getloadavg()[0]}

    def record(self, state: dict) -> dict:
        d = dict(self.d)
        d.update(end_utc=_utc(), train_seconds=round(d["train_seconds"], 2), eval_seconds=round(d["eval_seconds"], 2), end_step=state["next"], end_eval_batch=state["eval_next"],
                 wall_seconds=round(time.perf_counter() - self.t0, 1), load_end=os.getloadavg()[0],
                 load_max=max(d["load_max"], os.getloadavg()[0]),
                 peak_RssAnon_kib=self.meter.peak["RssAnon"], peak_RssFile_kib=self.meter.peak["RssFile"])
        return d


def _checkpoint(ckpt: EpochDir, state: dict, piece: Piece, model, opt, gen_state=None, gen_key: str = "gen",
                record=None) -> None:
    """Save ``state`` with the model, the optimizer, the global RNG (dropout) and the generator
    state ``gen_state`` under ``gen_key``; the pieces so far and this one (``record``, or now)."""
    state.update(model=model.state_dict(), optim=opt.state_dict(), rng=torch.get_rng_state())
    if gen_state is not None:
        state[gen_key] = gen_state
    done = state["pieces"]
    state["pieces"] = done + [record or piece.record(state)]
    ckpt.save(state)
    state["pieces"] = done


def sample_group(args, sampler, seed_batches, gen) -> tuple:
    """The batches of ``seed_batches`` drawn from ``gen`` in order (``sampler.sample_from_nodes``) and
    ``gen``'s state before each (a checkpoint after batch ``i`` resumes from state ``i + 1``).
    Returns ``(batches, states, (sampling seconds, scan seconds))``. With ``--scan-group`` the
    sampler gathers through the library's :class:`~gnnkit.samplers.scan.ScanFeatures` (see
    :func:`_setup`): the group's ``x`` rows are recorded while it is drawn and read in one pass over
    the feature file (``ScanFeatures.fill``), the same values as each batch's own gather."""
    scan = sampler.ctx.features if args.scan_group else None
    states, batches, t0 = [], [], time.perf_counter()
    with scan.recording() if scan is not None else contextlib.nullcontext() as pending:
        for seeds in seed_batches:
            states.append(gen.get_state())
            batches.append(sampler.sample_from_nodes(seeds, gen))
    t1 = time.perf_counter()
    if scan is not None:
        scan.fill(pending)
    return batches, states, (t1 - t0, time.perf_counter() - t1)


class _Lap:
    """``lap()``: wall seconds, process CPU seconds, bytes read and major faults since the previous
    lap (or since construction): a step's figures, whatever overlapped it."""

    def __init__(self):
        self.mark = self._now()

    @staticmethod
    def _now() -> tuple:
        io = Meter.io()
        return time.perf_counter(), cpu_seconds(), io["read_bytes"], io["majflt"]

    def __call__(self) -> tuple:
        now = self._now()
        out, self.mark = tuple(a - b for a, b in zip(now, self.mark)), now
        return out


class _Background(threading.Thread):
    """``fn(*args)`` in a daemon thread; ``result()`` waits for it (and re-raises its error)."""

    def __init__(self, fn, *args):
        super().__init__(daemon=True, name="ooc-prefetch")
        self.fn, self.args, self.value, self.error = fn, args, None, None
        self.start()

    def run(self) -> None:
        try:
            self.value = self.fn(*self.args)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            self.error = e

    def result(self):
        self.join()
        if self.error is not None:
            raise self.error
        return self.value


def _walk(args, sampler, seed_batches, first: int, gen, stop, work) -> bool:
    """Batches ``first..`` of ``seed_batches`` (groups of ``--scan-group``, or one by one) through
    ``work(k, batch, lap, share, gen_state_after)``: ``lap`` a :class:`_Lap`, ``share`` the batch's
    share of its group's ``(sampling, scan)`` seconds. With ``--prefetch`` the next group is
    sampled and read in a background thread while this one trains (the generator is used by that
    thread alone, in the same order; the states after each batch are taken as it draws). False
    when stopped."""
    size = max(args.scan_group, 1)
    starts = list(range(first, len(seed_batches), size))
    lap, pending = _Lap(), None

    def load(k):
        batches, states, phases = sample_group(args, sampler, seed_batches[k:k + size], gen)
        return batches, states[1:] + [gen.get_state()], phases

    try:
        for g, k in enumerate(starts):
            if stop.is_set():
                return False
            batches, after, phases = pending.result() if pending is not None else load(k)
            pending = _Background(load, starts[g + 1]) if args.prefetch and g + 1 < len(starts) else None
            share = (phases[0] / len(batches), phases[1] / len(batches))
            for i in range(len(batches)):
                batch, batches[i] = batches[i], None  # each batch freed once trained
                work(k + i, batch, lap, share, after[i])
                if stop.is_set() and k + i + 1 < len(seed_batches):
                    return False
        return True
    finally:
        if pending is not None:  # a stop: let the prefetch end before the generator is dropped
            pending.join()


def train_epoch(args, model, opt, sampler, features, state, ckpt, piece, stop) -> bool:
    """Steps ``state['next']..`` of epoch :data:`EPOCH`; True when the epoch is complete. The
    epoch's seed batches are dealt first (the shuffle is the generator's first draw, as in
    ``iter(sampler)``), then step ``k`` draws its neighborhoods from the generator as left by
    step ``k - 1``: restoring its state resumes the same draws."""
    sampler.set_epoch(EPOCH)
    gen = sampler.generator(EPOCH)
    seeds = list(sampler.loader.batches(sampler.ctx, gen))
    if state["gen"] is not None:
        gen.set_state(state["gen"])
    ps = state["per_step"]
    for name in PHASES:  # a checkpoint of an earlier version has no phase lists: its steps are not split
        ps.setdefault(name, [])
        ps.setdefault(name + "_from", len(ps["seconds"]))

    def work(k, batch, lap, share, gen_after):
        t = time.perf_counter()
        _step(model, opt, batch)
        train_s = time.perf_counter() - t
        secs, cpu, read, majflt = lap()
        for name, v in zip(PHASES, (share[0], share[1], train_s)):
            ps[name].append(v)
        for name, v in zip(PER_STEP, (secs, cpu, batch.batch_size, sum(a.nnz for a in batch.adj), read, majflt)):
            ps[name].append(v)
        state["next"] = state["progress"] = k + 1
        piece.d["train_seconds"] += secs
        piece.d["load_max"] = max(piece.d["load_max"], os.getloadavg()[0])
        if (k + 1) % 10 == 0:
            _progress(f"epoch step {k + 1}/{len(seeds)}", ps, 10)
        _tick(args, piece, stop)
        if (k + 1) % args.checkpoint_every == 0 or k + 1 == len(seeds) or stop.is_set():
            _checkpoint(ckpt, state, piece, model, opt, gen_after, "gen")
    return _walk(args, sampler, seeds, state["next"], gen, stop, work)


def _progress(label: str, ps: dict, last: int) -> None:
    print(f"{label}: last {last} steps {sum(ps['seconds'][-last:]):.1f} s, read {sum(ps['read'][-last:]):.0f} B, "
          f"total {sum(ps['seconds']):.0f} s, RssAnon {Meter.status()['RssAnon']} kB, load {os.getloadavg()[0]:.2f}, "
          f"{_utc()}", file=sys.stderr, flush=True)


@torch.no_grad()
def eval_test(args, model, sampler, features, state, ckpt, piece, opt, stop) -> bool:
    """The test nodes' predictions on their sampled neighborhoods, batch by batch as
    :class:`SampledPredictions` computes them (distinct ids ascending, ``batch_size`` at a time, one
    generator for all batches), counting the correct ones; resumable after any batch."""
    from gnnkit.samplers.neighbor import SampledPredictions

    model.eval()
    sampler.lid = torch.empty(0, dtype=torch.long)  # the training sampler's [N] buffer: the evaluation has its own
    preds = SampledPredictions(sampler.ctx, model, sampler.fanouts, batch_size=sampler.batch_size)
    ids = torch.unique(features.index("test_mask"))
    y, bs, ev = features.get("y", ids), preds.sampler.batch_size, state["eval"]
    gen, chunks = preds.generator(), list(torch.split(ids, bs))
    if state["eval_gen"] is not None:
        gen.set_state(state["eval_gen"])

    def work(j, batch, lap, share, gen_after):
        pred = model(batch.x, batch.adj)[:batch.batch_size].float().argmax(1)
        ev["correct"] += int((pred == y[j * bs:(j + 1) * bs]).sum())
        ev["total"] += batch.batch_size
        secs, _, read, _ = lap()
        ev["seconds"] += secs
        ev["read"] += read
        ev["batches"] = state["eval_next"] = j + 1
        state["progress"] = state["next"] + j + 1
        piece.d["eval_seconds"] += secs
        if (j + 1) % 10 == 0:
            print(f"test batch {j + 1}/{len(chunks)}: {ev['seconds']:.0f} s, correct {ev['correct']}/{ev['total']}, "
                  f"RssAnon {Meter.status()['RssAnon']} kB, load {os.getloadavg()[0]:.2f}, {_utc()}",
                  file=sys.stderr, flush=True)
        _tick(args, piece, stop)
        if (j + 1) % args.checkpoint_every == 0 or j + 1 == len(chunks) or stop.is_set():
            _checkpoint(ckpt, state, piece, model, opt, gen_after, "eval_gen")
    return _walk(args, preds.sampler, chunks, state["eval_next"], gen, stop, work)


def _tick(args, piece: Piece, stop) -> None:
    """Count a step (or test batch) of this process; ``--stop-after K`` stops after K (the tests'
    interruption, as a SIGTERM would)."""
    piece.d["taken"] = piece.d.get("taken", 0) + 1
    if args.stop_after and piece.d["taken"] >= args.stop_after:
        stop.set()


@contextlib.contextmanager
def stop_on_signals():
    """An event set by SIGTERM/SIGINT (instead of ending the process), the handlers restored after."""
    stop = threading.Event()
    old = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def full_epoch(args, model, opt, sampler, features, meter, setup_s: float, timed, stop) -> dict:
    """One whole epoch and the test evaluation, checkpointed every ``--checkpoint-every`` steps
    (and test batches) into ``--epoch-dir`` and when ``stop`` is set (SIGTERM/SIGINT: after the
    current step); a rerun with the same store and settings resumes from the newest checkpoint,
    with the same result bitwise as an uninterrupted run. ``timed()`` runs the warm-up/timed steps
    first (a fresh run only). The record: :func:`summarize`."""
    ckpt = EpochDir(args.epoch_dir, run_key(args))
    try:
        return _resume_and_run(args, model, opt, sampler, features, meter, setup_s, timed, stop, ckpt)
    finally:
        ckpt.close()


def _resume_and_run(args, model, opt, sampler, features, meter, setup_s, timed, stop, ckpt) -> dict:
    state = ckpt.load()
    if state is None:
        state = _fresh_state(ckpt.key, timed() if args.steps else None)
    elif state["phase"] == "done":
        return summarize(state)
    else:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        torch.set_rng_state(state["rng"])
        print(f"resuming from {ckpt.files()[-1].name}: step {state['next']}, test batch {state['eval_next']}",
              file=sys.stderr, flush=True)
    piece = Piece(meter, state, setup_s, features, args.cache_gib)
    piece.d["scan_group"], piece.d["prefetch"] = args.scan_group, args.prefetch
    if args.scan_group:
        piece.d["warm_seconds"] = warm_arrays(args.store, ("indptr", "indices", "y"))
    if state["phase"] == "train" and train_epoch(args, model, opt, sampler, features, state, ckpt, piece, stop):
        state["phase"] = "eval"
    if state["phase"] == "eval" and not stop.is_set():
        if eval_test(args, model, sampler, features, state, ckpt, piece, opt, stop):
            state["phase"] = "done"
    record = piece.record(state)
    if state["phase"] == "done":  # the finished record, as a rerun will read it
        _checkpoint(ckpt, state, piece, model, opt, record=record)
    state["pieces"] = state["pieces"] + [record]
    return summarize(state)


def _phases(ps: dict) -> dict:
    """Mean seconds per step of sampling, the scan's share and the training step, over the steps
    after the first :data:`WARM` that recorded them (``None`` when none did)."""
    out = {}
    for name in PHASES:
        first = max(ps.get(name + "_from", 0), WARM)
        vals = ps.get(name, [])[first - ps.get(name + "_from", 0):] if ps.get(name) else []
        out[name] = round(sum(vals) / len(vals), 2) if vals else None
    out["steps"] = len(ps.get(PHASES[0], [])[max(WARM - ps.get(PHASES[0] + "_from", 0), 0):])
    return out


def summarize(state: dict) -> dict:
    """The record of the epoch so far: rates over the steps after the first :data:`WARM`, bytes read
    per step, peaks (max over the pieces), the pieces, and the test accuracy once evaluated."""
    ps, ev, pieces = state["per_step"], state["eval"], state["pieces"]
    n, w = len(ps["seconds"]), slice(WARM, None)
    secs = sum(ps["seconds"][w])

    def rate(x, digits=1):
        return round(x / secs, digits) if secs > 0 else None
    out = {"epoch_steps": n, "epoch_complete": state["phase"] != "train", "phase": state["phase"],
           "epoch_step_seconds": round(sum(ps["seconds"]), 1),
           "epoch_wall_seconds": round(sum(p["train_seconds"] for p in pieces), 1),
           "epoch_steps_after_warmup": max(n - WARM, 0), "epoch_steps_per_s": rate(max(n - WARM, 0), 4),
           "epoch_seeds_per_s": rate(sum(ps["seeds"][w])), "epoch_edges_per_s": rate(sum(ps["edges"][w]), 0),
           "epoch_cpu_seconds_per_step": round(sum(ps["cpu"][w]) / max(n - WARM, 1), 3),
           "epoch_read_bytes_per_step": round(sum(ps["read"]) / max(n, 1)),
           "epoch_read_bytes_per_step_after_warmup": round(sum(ps["read"][w]) / max(n - WARM, 1)),
           "epoch_majflt_per_step": round(sum(ps["majflt"]) / max(n, 1), 1),
           "epoch_phase_seconds_per_step": _phases(ps),
           "epoch_peak_RssAnon_gib": round(max((p["peak_RssAnon_kib"] for p in pieces), default=0) / 2**20, 3),
           "epoch_peak_RssFile_gib": round(max((p["peak_RssFile_kib"] for p in pieces), default=0) / 2**20, 3),
           "test_nodes": ev["total"], "test_batches": ev["batches"],
           "test_accuracy": round(ev["correct"] / ev["total"], 4) if ev["total"] else None,
           "test_eval_seconds": round(ev["seconds"], 1), "test_read_bytes": ev["read"],
           "pieces": pieces}
    return {**(state["timed"] or {}), **out}


def epoch_status(args) -> dict:
    """The full epoch's record so far, from the newest checkpoint in ``--epoch-dir`` (read only)."""
    files = sorted(Path(args.epoch_dir).glob("ckpt-*.pt"))
    if not files:
        raise SystemExit(f"no checkpoint in {args.epoch_dir}")
    return {"checkpoint": str(files[-1]), **summarize(torch.load(files[-1], weights_only=True))}


def warm_arrays(store: str, names) -> float:
    """Read arrays ``names`` of the store once, sequentially (into the page cache: the sampler's
    CSR reads then hit memory); returns the seconds."""
    t = time.perf_counter()
    meta = json.loads((Path(store) / "gnnkit-store.json").read_text())
    for name in names:
        with open(Path(store) / meta["arrays"][name]["file"], "rb") as f:
            while f.read(1 << 24):
                pass
    return round(time.perf_counter() - t, 1)


def warm_page_cache(store: str) -> None:
    for entry in os.scandir(store):
        with open(entry.path, "rb") as f:
            while f.read(1 << 24):
                pass


def run_stage(args, stage: str) -> dict:
    """Run ``stage`` in a fresh process (its own peak memory); returns its JSON record."""
    cmd = [sys.executable, __file__, "--stage", stage, *args.passthrough]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    forward = {sig: signal.signal(sig, lambda s, _f: proc.send_signal(s)) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:  # a SIGTERM/SIGINT is passed on: the stage saves its epoch checkpoint and ends
        stdout, _ = proc.communicate()
    finally:
        for sig, old in forward.items():
            signal.signal(sig, old)
    if proc.returncode == 2:  # the stage said why (one line)
        raise SystemExit(2)
    if proc.returncode:
        raise SystemExit(f"stage {stage} failed (exit {proc.returncode})")
    record = json.loads(stdout.strip().splitlines()[-1])
    print(json.dumps(record), flush=True)
    return record


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="papers")
    p.add_argument("--num-nodes", type=int, default=None, help="scale the preset down (trial runs)")
    p.add_argument("--feature-dtype", default=None, help="override the preset's feature dtype")
    p.add_argument("--graph-seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=Path("/tmp/gnnkit-ooc"), help="where the store is built")
    p.add_argument("--reuse", action="store_true", help="keep an existing store instead of rebuilding")
    p.add_argument("--batch-size", type=int, default=1024, help="seeds per step (the issue's 1024; smaller for tests)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--full-epoch", action="store_true",
                   help="train one whole epoch and evaluate the test nodes, resumable (see --epoch-dir)")
    p.add_argument("--epoch-dir", type=Path, default=None,
                   help="the full epoch's checkpoints (default: WORK/<store>.epoch); a rerun resumes from them")
    p.add_argument("--checkpoint-every", type=int, default=20, help="full epoch: checkpoint every N steps")
    p.add_argument("--prefetch", action="store_true",
                   help="full epoch: sample (and scan) the next group in a background thread while this one trains")
    p.add_argument("--scan-group", type=int, default=0,
                   help="full epoch: sample N batches ahead and read their feature rows in one sequential pass "
                        "over the feature file (0: each batch gathers its own rows)")
    p.add_argument("--epoch-status", action="store_true", help="print the full epoch's figures so far and exit")
    p.add_argument("--stop-after", type=int, default=0, help=argparse.SUPPRESS)  # tests: stop after K steps
    p.add_argument("--side-by-side", action="store_true", help="train from memory and from the store")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache-gib", type=float, default=0.0,
                   help="store: keep this many GiB of the most connected nodes' features in memory")
    p.add_argument("--read-threads", type=int, default=None,
                   help="store: concurrent readers of large gathers (default: 32 for a store bigger than half the memory)")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    p.add_argument("--stage", choices=("build", "train-store", "train-memory"), default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    n = args.num_nodes or PRESETS[args.preset]["num_nodes"]
    args.store = str(args.work / f"csbm-{args.preset}-{n}")
    args.epoch_dir = args.epoch_dir or args.work / f"{Path(args.store).name}.epoch"
    if args.steps < 0 or args.warmup < 0 or args.checkpoint_every < 1 or args.scan_group < 0:
        p.error("--steps and --warmup must be >= 0, --checkpoint-every >= 1")
    if args.side_by_side and not args.steps:
        p.error("--side-by-side compares timed steps: give --steps > 0")
    argv = list(sys.argv[1:] if argv is None else argv)
    args.passthrough = [a for a in argv if a not in ("--side-by-side",)]
    return args


def main(argv=None) -> None:
    args = parse(argv)
    if args.epoch_status:
        print(json.dumps(epoch_status(args), indent=2))
        return
    if args.stage == "build":
        print(json.dumps(stage_build(args)))
        return
    if args.stage:
        from gnnkit.errors import GnnkitError

        try:
            print(json.dumps(stage_train(args, args.stage.split("-")[1])))
        except GnnkitError as e:  # e.g. a checkpoint of another run: one line, exit 2
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        return
    records = {"argv": sys.argv[1:], "torch": torch.__version__, "threads": args.threads}
    if not (args.reuse and Path(args.store, "gnnkit-store.json").is_file()):
        records["build"] = run_stage(args, "build")
        (args.work / f"{Path(args.store).name}.build.json").write_text(json.dumps(records["build"]) + "\n")
    from gnnkit.data.limits import memory_limit

    store_bytes = sum(e.stat().st_size for e in os.scandir(args.store))
    if args.side_by_side or store_bytes < memory_limit() // 2:
        warm_page_cache(args.store)
    if args.reuse and (args.work / f"{Path(args.store).name}.build.json").is_file():
        records["build"] = json.loads((args.work / f"{Path(args.store).name}.build.json").read_text())
    if args.side_by_side:
        records["memory"] = run_stage(args, "train-memory")
    records["store"] = run_stage(args, "train-store")
    if args.side_by_side:
        records["store_over_memory_steps"] = round(records["store"]["steps_per_s"] / records["memory"]["steps_per_s"], 3)
        records["store_over_memory_cpu"] = round(records["memory"]["cpu_seconds_per_step"]
                                                 / records["store"]["cpu_seconds_per_step"], 3)
        print(f"store / memory step rate: {records['store_over_memory_steps']} (wall), "
              f"{records['store_over_memory_cpu']} (process CPU time per step)")
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"out_of_core-{args.preset}-{Path(args.store).name.split('-')[-1]}.json"
    (args.out / name).write_text(json.dumps(records, indent=2) + "\n")
    print(f"wrote {args.out / name}")
    if args.full_epoch and records["store"].get("phase") != "done":
        print(f"stopped at epoch step {records['store']['epoch_steps']} (test batch "
              f"{records['store']['test_batches']}); run the same command again to resume", file=sys.stderr)
        raise SystemExit(3)


if __name__ == "__main__":
    main()
