"""pkd: Patient Knowledge Distillation for BERT-style encoders."""

from pkd.api import build_cache, compare, distill, evaluate, export, finetune, predict
from pkd.errors import DataError, ExportError, PkdError, TrainingError, UsageError
from pkd.losses import LossConfig, last_map, pkd_loss, skip_map
from pkd.student import make_student
from pkd.version import __version__

__all__ = ["__version__", "build_cache", "compare", "distill", "evaluate", "export", "finetune", "predict",
           "make_student", "pkd_loss", "LossConfig", "skip_map", "last_map", "PkdError", "UsageError", "DataError",
           "TrainingError", "ExportError"]
