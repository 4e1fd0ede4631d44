"""A callback: stop once the validation accuracy reaches a target, and print each evaluation.

Callbacks have no-op hooks (``on_fit_start``, ``on_epoch_start``, ``on_batch_end``,
``on_epoch_end``, ``on_validation_end``, ``on_plateau``, ``on_checkpoint``, ``on_fit_end``) and a
``state_dict`` that goes into checkpoints, so a resumed run keeps the callback's state. A callback
asks the loop to stop by returning ``Control(stop=True)``; it never assigns to the Trainer.

    python examples/callback.py
"""
import gnnkit
from gnnkit.callbacks import Callback
from gnnkit.context import Control
from gnnkit.data.csbm import csbm
from gnnkit.models import GCN


class StopAtTarget(Callback):
    def __init__(self, target):
        self.target, self.reached_at = target, None

    def on_validation_end(self, trainer, metrics):
        print(f"epoch {trainer.epoch:3d}  val {metrics['val_accuracy']:.4f}")
        if metrics["val_accuracy"] >= self.target and self.reached_at is None:
            self.reached_at = trainer.epoch
            return Control(stop=True)
        return None

    def state_dict(self):
        return {"reached_at": self.reached_at}

    def load_state_dict(self, state):
        self.reached_at = state["reached_at"]


data = csbm(num_nodes=5000, num_classes=5, avg_degree=10, num_features=32, seed=0)
stop = StopAtTarget(0.8)
model = GCN(data.num_features, 32, data.num_classes)
gnnkit.Trainer(max_epochs=200, callbacks=[stop], progress=False).fit(model, data)
print("target reached at epoch", stop.reached_at)
