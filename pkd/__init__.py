"""pkd: Patient Knowledge Distillation for BERT-style encoders."""

__version__ = "0.1.0"

from pkd.api import build_cache, compare, distill, evaluate, export, finetune, predict  # noqa: E402
from pkd.errors import DataError, ExportError, PkdError, TrainingError, UsageError  # noqa: E402
from pkd.losses import LossConfig, last_map, pkd_loss, skip_map  # noqa: E402
from pkd.student import make_student  # noqa: E402

__all__ = ["build_cache", "compare", "distill", "evaluate", "export", "finetune", "predict", "make_student",
           "pkd_loss", "LossConfig", "skip_map", "last_map", "PkdError", "UsageError", "DataError", "TrainingError",
           "ExportError"]
