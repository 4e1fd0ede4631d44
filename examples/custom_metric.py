"""Select the model on a metric of one's own, with its direction declared.

A metric is a function ``(logits, labels) -> float`` with a name and ``higher_is_better``
(:mod:`gnnkit.metrics`). The task computes it on every split (``val_<name>``, ``test_<name>``) and
``Trainer(metric="<name>")`` selects on it: the epoch with its maximum when higher is better, its
minimum when lower. A function that does not say which is refused; gnnkit never guesses.

    python examples/custom_metric.py
"""
import torch

import gnnkit
from gnnkit.data.csbm import csbm
from gnnkit.errors import GnnkitError
from gnnkit.metrics import metric
from gnnkit.models import GCN


@metric(higher_is_better=False)
def worst_class_error(logits, y):
    """``1 − min_c recall_c``: the error rate of the class the model gets most wrong."""
    hit = (logits.argmax(1) == y).double()
    classes = int(y.max()) + 1
    recall = torch.zeros(classes, dtype=torch.float64).index_add_(0, y, hit) / torch.bincount(y, minlength=classes)
    return float(1.0 - recall.nan_to_num(1.0).min())


def run(name, metrics):
    gnnkit.seed_everything(0)  # before the model is built: the same figures every run
    data = csbm(num_nodes=2000, num_classes=4, avg_degree=6, num_features=16, seed=0)
    trainer = gnnkit.Trainer(metrics=metrics, metric=name, max_epochs=60, lr=0.01, seed=0, progress=False)
    result = trainer.fit(GCN(data.num_features, 32, data.num_classes), data)
    series = [round(h[f"val_{name}"], 4) for h in result["history"]]
    m = result["metrics"]
    print(f"selected on val_{name} ({'higher' if trainer.higher_is_better else 'lower'} is better): epoch "
          f"{result['best_epoch']} of {len(series)}, val_{name} {m[f'val_{name}']:.4f} "
          f"(range {min(series):.4f}..{max(series):.4f}), test accuracy {m['test_accuracy']:.4f}, "
          f"test macro-F1 {m['test_macro_f1']:.4f}")


if __name__ == "__main__":
    run("macro_f1", ["macro_f1"])  # a registered metric: higher is better
    run("worst_class_error", ["macro_f1", worst_class_error])  # declared lower-is-better above

    def f1_undeclared(logits, y):
        return 0.0

    try:
        gnnkit.Trainer(metrics=[f1_undeclared])  # or NodeClassification(metrics=[...]): the same check
    except GnnkitError as err:
        print("refused:", err)
