"""Layer 5, the chapters' experiments, every training through one
train-or-load (:mod:`.runs`): baselines (:mod:`.baselines`, Chapter 2),
the quantizer comparison (:mod:`.quantizers`, Chapter 4), GAN augmentation
(:mod:`.gan_augmentation`, Chapter 5), the stage recipe and its ablation
(:mod:`.recipe`, Chapter 6) and the full reproduction (:mod:`.reproduce`,
Chapter 7). Imports ``core``, ``nn``, ``engine`` and ``analysis``.

``dfh.experiments`` is this package: the Chapter-2 names below.
"""
from .baselines import (DEEP_BASELINES, baselines, classifier_features, run_feature_hashing,
                        run_methods, trained_model)
from .result import ExperimentResult
from .runs import TrainedRun, Variant, fit_or_load, run_folder, train_or_load

__all__ = ["DEEP_BASELINES", "Variant", "ExperimentResult", "TrainedRun", "run_folder",
           "train_or_load", "fit_or_load", "run_methods", "trained_model",
           "run_feature_hashing", "classifier_features", "baselines"]
