"""Graph-level learning: datasets of many small graphs, block-diagonal batching, pooling, loss and
metrics, cross-validation protocols (issue 24).

* :class:`GraphCollection` (``collection.py``): all graphs concatenated once (``x``, ``edge_index``
  in CSR order, ``node_ptr``/``edge_ptr``, ``y``), validated;
* :func:`load_tu` (``tu.py``), :func:`load_ogbg` (``ogbg.py``), ``GraphCollection.from_data_list``;
* :func:`add_degree_features` (``features.py``): one-hot degree when a dataset has no features;
* :class:`GraphBatcher`, :class:`GraphLoader`, :class:`GraphBatch` (``batching.py``);
* :func:`pool` (``pooling.py``): sum / mean / max readouts;
* :func:`graph_loss`, :func:`score`, ... (``metrics.py``);
* :func:`stratified_kfold`, :func:`inner_split`, :func:`official_split` (``folds.py``);
* :func:`summarize_folds` (``protocol.py``): the GIN paper's and Errica et al.'s fold summaries;
* the Trainer plug-ins :class:`GraphClassification` (task ``graph``, ``task.py``) and
  :class:`GraphSampler` (sampler ``graph``, ``sampler.py``), registered when this package is imported.
"""
from .batching import GraphBatch, GraphBatcher, GraphLoader
from .collection import GraphCollection
from .features import add_degree_features, one_hot_degree
from .folds import inner_split, official_split, stratified_kfold
from .metrics import accuracy, average_precision, graph_loss, ogb_score, roc_auc, score
from .ogbg import load_ogbg
from .pooling import POOLS, pool
from .protocol import PROTOCOLS, summarize_folds
from .sampler import GraphSampler
from .task import GraphClassification
from .tu import load_tu

__all__ = ["GraphCollection", "GraphBatch", "GraphBatcher", "GraphLoader", "add_degree_features",
           "one_hot_degree", "stratified_kfold", "inner_split", "official_split", "graph_loss", "score",
           "accuracy", "roc_auc", "average_precision", "ogb_score", "pool", "POOLS", "summarize_folds", "PROTOCOLS", "load_tu", "load_ogbg",
           "GraphClassification", "GraphSampler"]
