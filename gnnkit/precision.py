"""Training precision: ``"32"``, ``"bf16-mixed"`` and ``"16-mixed"`` (Lightning's names).

Under a mixed precision ``p`` with half type ``h`` (``bfloat16`` or ``float16``):

* **Features** are held in ``h``: :func:`cast_features` gives the run a feature store whose ``"x"``
  is ``h`` (an in-memory store converts once, so every gather moves ``2`` bytes per value instead
  of ``4``; a store that already holds ``h`` is used as it is; any other store casts what it reads).
  Under ``"32"`` features are float32 (a half-precision store is widened after the read).
* **Dense work** runs under :func:`autocast` (``torch.autocast(device, dtype=h)``): linear layers
  and matrix products in ``h``, reductions and losses in float32 as autocast decides.
* **Sparse products** (:func:`gnnkit.sparse.spmm`) leave autocast: on CUDA the adjacency is cast to
  ``h`` (cuSPARSE has half kernels), on CPU the product is computed in float32 (MKL has none) and
  the result cast back to ``h``; the backward does the same with the transposed adjacency.
* **Weights** stay float32 (autocast casts them per product); checkpoints and saved models hold
  float32. Models hand back float32 outputs (:func:`as_float`), so losses and metrics are float32.
* **Gradients** of ``"16-mixed"`` go through a :class:`torch.amp.GradScaler` (:func:`make_scaler`):
  the loss is multiplied by ``S`` before the backward, the gradients divided by ``S`` before the
  step, steps with non-finite gradients skipped and ``S`` adapted. ``"bf16-mixed"`` needs none
  (bfloat16 has float32's exponent range).

Speed on a CPU: bfloat16 products use the CPU's bfloat16 kernels where it has them (AVX512-BF16 /
AMX); float16 products need AVX512-FP16 / AMX-FP16, and without them (``torch.ops.mkldnn.
_is_mkldnn_fp16_supported()`` false) run several times slower than float32 (measured on a 2-core
AMD EPYC with AVX512-BF16: a [19k, 128] x [128, 128] product 3.1 ms in bfloat16, 9.8 ms in float32,
320 ms in float16; ``nn.Linear`` 2.7 / 10.4 / 41.6 ms). ``"16-mixed"`` there still trains correctly,
and :func:`note_cpu_half` says once per process that ``"bf16-mixed"`` is the CPU's choice.

Outside autocast a model fed half features computes in its weights' type (:func:`match_input`), so
code that runs the model directly (the MILP escape, ``gnnkit predict``) works on float32 copies.
Under ``"32"`` every function here returns its input unchanged (bit-identical training).
"""
from __future__ import annotations

import contextlib
import logging
from typing import Optional

import torch
from torch import Tensor

from .errors import GnnkitError

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
HALF = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
HALF_TYPES = (torch.bfloat16, torch.float16)


def check(precision: str) -> str:
    """``precision`` as a string, or a :class:`GnnkitError` naming the known ones."""
    p = str(precision)
    if p not in PRECISIONS:
        raise GnnkitError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return p


def half_dtype(precision: str) -> Optional[torch.dtype]:
    """The half type of a mixed precision, ``None`` for ``"32"``."""
    return HALF.get(check(precision))


def feature_dtype(precision: str) -> torch.dtype:
    """The dtype of the features under ``precision``: the half type, or float32."""
    return half_dtype(precision) or torch.float32


def autocast(precision: str, device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` in the half type of ``precision`` on ``device``'s type (a no-op for ``"32"``)."""
    dtype = half_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def no_autocast(device_type: str) -> contextlib.AbstractContextManager:
    """Autocast switched off on ``device_type`` (a no-op when it is not on)."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def make_scaler(precision: str, device) -> Optional["torch.amp.GradScaler"]:
    """A :class:`torch.amp.GradScaler` for ``"16-mixed"`` on ``device``'s type, else ``None``."""
    if check(precision) != "16-mixed":
        return None
    return torch.amp.GradScaler(torch.device(device).type)


_NOTED: set = set()


def note_cpu_half(precision: str, device) -> bool:
    """Log once per process (logger ``gnnkit``) when ``"16-mixed"`` runs on a CPU without float16
    matrix kernels; returns whether that is the case."""
    if check(precision) != "16-mixed" or torch.device(device).type != "cpu":
        return False
    try:
        fast = bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    except (AttributeError, RuntimeError):  # an older torch: no probe, say nothing
        return False
    if not fast and "cpu-fp16" not in _NOTED:
        _NOTED.add("cpu-fp16")
        logging.getLogger("gnnkit").warning(
            "16-mixed on a CPU without float16 matrix kernels (no AVX512-FP16/AMX-FP16): its products run "
            "several times slower than float32 here; bf16-mixed is the CPU's half precision")
    return not fast


def as_float(out: Tensor) -> Tensor:
    """``out`` in float32 when it is a half type (a model's logits under autocast), else ``out`` itself."""
    return out.float() if isinstance(out, Tensor) and out.dtype in HALF_TYPES else out


def match_input(x: Tensor, like: Tensor) -> Tensor:
    """``x`` cast to ``like``'s dtype when ``x`` is a half type, ``like`` is not, and autocast is off
    on ``x``'s device (a model fed half features outside autocast computes in its weights' type)."""
    if (isinstance(x, Tensor) and x.dtype in HALF_TYPES and like.dtype != x.dtype
            and not torch.is_autocast_enabled(x.device.type)):
        return x.to(like.dtype)
    return x


def cast_features(features, precision: str):
    """The feature store the run reads: ``features`` with its ``"x"`` in the half type of a mixed
    precision, or, under ``"32"``, half features widened to float32; the store itself when ``x``
    already is that type, is absent or is not floating point (e.g. categorical atom features), and
    under ``"32"`` for any non-half ``x``."""
    if features is None or "x" not in features.names():
        return features
    have = features.dtype("x")
    if not have.is_floating_point or (half_dtype(precision) is None and have not in HALF_TYPES):
        return features
    return features.with_dtype("x", feature_dtype(precision))


def backward_step(loss: Tensor, optimizer: torch.optim.Optimizer, scaler, clip_params=None,
                  grad_clip: Optional[float] = None) -> None:
    """``loss.backward()``, optional gradient clipping of ``clip_params`` to ``grad_clip``, and the
    optimizer step; with ``scaler`` (16-mixed) the loss is scaled, the gradients unscaled before
    the clipping, and the step skipped when they are not finite."""
    if scaler is None:
        with no_autocast(loss.device.type):
            loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(clip_params, grad_clip)
        optimizer.step()
        return
    with no_autocast(loss.device.type):
        scaler.scale(loss).backward()
    if grad_clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(clip_params, grad_clip)
    scaler.step(optimizer)
    scaler.update()
