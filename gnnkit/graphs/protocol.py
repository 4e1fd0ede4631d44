"""Fold summaries of the two cross-validation protocols for graph classification.

Input: per fold ``f`` and epoch ``e`` the recorded figures, ``[k, E]`` tensors (accuracies, or any
figure where higher is better).

* ``"gin"`` (Xu et al., ICLR 2019): each fold trains with its test fold as validation; the epoch
  ``e* = argmax_e (1/k) Σ_f test[f, e]`` of the best *mean* curve is chosen once for all folds, and
  the result is ``mean_f test[f, e*] ± std_f test[f, e*]``.
* ``"errica"`` (Errica et al., ICLR 2020, the default): model selection never sees the test fold:
  each fold picks its own epoch ``e_f = argmax_e val[f, e]`` on an inner validation split
  (:func:`gnnkit.graphs.inner_split`; the first maximum), and the result is
  ``mean_f test[f, e_f] ± std_f test[f, e_f]``.

The standard deviation is the population one over folds (``numpy.std``, as both papers report).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor

from gnnkit.errors import GnnkitError

PROTOCOLS = ("errica", "gin")


def _curves(t, name: str) -> Tensor:
    t = torch.as_tensor(t, dtype=torch.float64)
    if t.dim() != 2 or t.shape[0] < 1 or t.shape[1] < 1:
        raise GnnkitError(f"{name} must be [folds, epochs], got {tuple(t.shape)}")
    return t


def summarize_folds(test, val: Optional[Tensor] = None, protocol: str = "errica") -> Dict[str, object]:
    """``{"protocol", "mean", "std", "per_fold", "epochs"}`` (the selected epoch of every fold,
    0-based) from ``test`` ``[k, E]`` and, for ``"errica"``, ``val`` ``[k, E]``."""
    if protocol not in PROTOCOLS:
        raise GnnkitError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    test = _curves(test, "test curves")
    if protocol == "gin":
        best = int(torch.argmax(test.mean(0)))
        epochs = torch.full((test.shape[0],), best, dtype=torch.long)
    else:
        if val is None:
            raise GnnkitError("the errica protocol needs the inner validation curves")
        val = _curves(val, "validation curves")
        if val.shape != test.shape:
            raise GnnkitError(f"validation curves {tuple(val.shape)} and test curves {tuple(test.shape)} differ")
        epochs = torch.argmax(val, dim=1)  # first maximum of each fold
    per_fold = test.gather(1, epochs.view(-1, 1)).view(-1)
    return {"protocol": protocol, "mean": float(per_fold.mean()), "std": float(per_fold.std(unbiased=False)),
            "per_fold": per_fold.tolist(), "epochs": epochs.tolist()}
