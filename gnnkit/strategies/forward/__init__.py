"""ForwardGNN (Park et al., ICLR 2024): every graph layer learns from its own forward-pass loss.

The pieces, each in its own module:

* :mod:`.strategy`: :class:`ForwardLearning`, the strategy (configure, step, schedule control,
  prediction, checkpoints, command-line options);
* :mod:`.schedule`: which layer trains and when training ends (sequential / top2loss);
* :mod:`.layers`: :class:`~.layers.LayerStack`, the model's graph layers as local layers;
* :mod:`.graphs`: virtual class nodes, stacked label copies and the :class:`~.graphs.View` of a graph;
* :mod:`.inputs`: feature and label preprocessing, wrong labels;
* :mod:`.passes`: layer inputs, outputs and local losses, cached aggregation;
* :mod:`.losses`: the SF and FF losses;
* :mod:`.predict`: the prediction rule.
"""
from .strategy import VARIANTS, ForwardLearning

__all__ = ["ForwardLearning", "VARIANTS"]
