"""gnnkit: train graph neural networks on large graphs with one Trainer.

Pick a dataset (:func:`gnnkit.data.load`), a model (:mod:`gnnkit.models`), a sampler
(:mod:`gnnkit.samplers`), a strategy and optionally an escape, and call ``Trainer.fit``.
"""
__version__ = "0.1.0"

from .errors import CheckpointError, GnnkitError, GraphValidationError  # noqa: E402

__all__ = ["__version__", "GnnkitError", "GraphValidationError", "CheckpointError", "Trainer", "seed_everything"]


def __getattr__(name):  # lazy, so that ``import gnnkit`` stays light for the CLI
    if name in ("Trainer", "seed_everything"):
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(name)
