"""pkd: Patient Knowledge Distillation for BERT-style encoders.

The API (pkd.finetune, pkd.distill, ...) and the submodules load on first use (PEP 562), so that `import pkd`,
`pkd --help` and `pkd --version` do not import torch and transformers.
"""

import importlib

from pkd.config import DataConfig, LossConfig
from pkd.errors import DataError, ExportError, PkdError, TrainingError, UsageError
from pkd.version import __version__

# name -> the module that defines it; everything else is looked up as a submodule (pkd.tasks, pkd.train, ...)
_LAZY = {"build_cache": "api", "compare": "comparison", "distill": "api", "evaluate": "api", "export": "api",
         "finetune": "api", "predict": "api", "sweep": "trials", "make_student": "student", "pkd_loss": "losses",
         "skip_map": "losses", "last_map": "losses"}

__all__ = ["__version__", "build_cache", "compare", "distill", "evaluate", "export", "finetune", "predict", "sweep",
           "make_student", "pkd_loss", "LossConfig", "DataConfig", "skip_map", "last_map", "PkdError", "UsageError",
           "DataError", "TrainingError", "ExportError"]


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        module = importlib.import_module(f"pkd.{_LAZY.get(name, name)}")
    except ModuleNotFoundError:
        raise AttributeError(f"module 'pkd' has no attribute {name!r}") from None
    return getattr(module, name) if name in _LAZY else module
