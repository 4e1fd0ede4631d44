"""Link prediction building blocks (issue 23): leak-free splits, negatives, decoders, metrics,
OGB ``ogbl-*`` loading and scoring, and temporal links under the TGB protocol with EdgeBank.

One concept per module: :mod:`.edges` (edge sets), :mod:`.split` (LinkSplit, the GAE random split),
:mod:`.negatives` (training negatives), :mod:`.decoders` (dot / Hadamard-MLP, BCE),
:mod:`.model` (encoder + decoder as one model), :mod:`.metrics`
(AUC/AP, OGB's evaluator), :mod:`.ogbl` (OGB loader), :mod:`.ranking` (MRR/Hits@K),
:mod:`.tgb_negatives` (TGB's hist_rnd negatives), :mod:`.edgebank`, :mod:`.tgb_protocol`.
"""
from .decoders import DotDecoder, HadamardMLPDecoder, link_loss, make_decoder
from .edgebank import EdgeBank
from .edges import EdgeSet, undirected_edges
from .metrics import auc_ap, ogbl_metric, ogbl_score
from .model import LinkModel
from .negatives import NegativeSampler
from .ranking import rank_metrics, ranks
from .split import LinkSplit, fixed_negatives, random_link_split
from .tgb_negatives import tgb_negatives
from .tgb_protocol import evaluate_edgebank, tgb_split

__all__ = ["DotDecoder", "HadamardMLPDecoder", "link_loss", "make_decoder", "EdgeBank", "EdgeSet",
           "undirected_edges", "LinkModel", "auc_ap", "ogbl_metric", "ogbl_score", "NegativeSampler", "rank_metrics",
           "ranks", "LinkSplit", "fixed_negatives", "random_link_split", "tgb_negatives",
           "evaluate_edgebank", "tgb_split"]
