"""What Chapters 6 and 7 reach as ``dfh.distill``: re-exports only, each name
lives in its layer — the multi-head network in :mod:`dfh_lib.nn.multihead`,
the distillation losses in :mod:`dfh_lib.nn.losses.distillation`, the teacher
in :mod:`dfh_lib.engine.teacher`, per-head analysis in
:mod:`dfh_lib.analysis.heads`, the stage recipe in
:mod:`dfh_lib.experiments.recipe` and the reproduction in
:mod:`dfh_lib.experiments.reproduce`."""
from ...analysis.heads import encode_heads, head_maps, similarity_matrices, teacher_agreement
from ...engine.teacher import (TEACHER_LOSSES, TEACHER_NETWORK, Teacher, load_teacher,
                               train_teacher)
from ...experiments.recipe import (ABLATION, NO_KD, TEACHERS, Distill, Recipe, RecipeResult,
                                   Stage, ablation, ablation_benchmark, ablation_recipe,
                                   dfh_gans_recipe, run_recipe, teacher_comparison,
                                   teacher_recipe)
from ...experiments.reproduce import REPRODUCE_PARTS, gan_augment_fn, reproduce
from ...nn.losses.distillation import (DistillationLoss, MultiHeadLoss, SimilarityDistillLoss,
                                       SoftTargetLoss)
from ...nn.multihead import FINAL, MultiHeadHashNet, build_multihead, copy_weights
from ..cli import main_reproduce

__all__ = ["FINAL", "TEACHER_NETWORK", "ABLATION", "MultiHeadHashNet", "build_multihead",
           "encode_heads", "copy_weights", "SimilarityDistillLoss", "SoftTargetLoss",
           "MultiHeadLoss", "DistillationLoss", "Teacher", "train_teacher", "load_teacher",
           "Distill", "Stage", "Recipe", "dfh_gans_recipe", "ablation_recipe", "RecipeResult",
           "run_recipe", "ablation", "ablation_benchmark", "head_maps", "similarity_matrices",
           "teacher_agreement", "TEACHER_LOSSES", "TEACHERS", "NO_KD", "teacher_recipe",
           "teacher_comparison",
           "REPRODUCE_PARTS", "reproduce", "gan_augment_fn", "main_reproduce"]
