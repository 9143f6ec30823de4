"""What Chapter 5 (book/05_gan_augmentation.ipynb) reaches as ``dfh.gan``:
re-exports only, each name lives in its layer.

* networks and settings: :mod:`dfh_lib.nn.gan`;
* losses (not hash losses): :mod:`dfh_lib.nn.losses.gan`;
* framing, editing, augmentation, attribute prediction:
  :mod:`dfh_lib.engine.editing`;
* training, loading, shipped checkpoints: :mod:`dfh_lib.engine.gan_training`;
* edit quality and identity preservation: :mod:`dfh_lib.analysis.gan_quality`;
* held-out faces and the augmentation experiment:
  :mod:`dfh_lib.experiments.gan_augmentation`;
* the edit gallery :func:`~dfh_lib.interfaces.viz.show_edits` and the
  command line :func:`~dfh_lib.interfaces.gan_cli.main_gan`.
"""
from __future__ import annotations

from ...analysis.gan_quality import attribute_accuracy, edit_success_rate, identity_preservation
from ...engine.editing import (FRAMINGS, attribute_gallery, attribute_matrix, augment, edit,
                               face_crops, flip_attribute, flip_targets, framing_for,
                               predict_attributes, source_attributes, split_by_identity)
from ...engine.gan_training import (PRETRAINED, ClassifierResult, GANResult, face_net_view,
                                    load_attribute_classifier, load_generator, pretrained,
                                    pretrained_evaluation, pretrained_log,
                                    train_attribute_classifier, train_gan)
from ...experiments.gan_augmentation import (AUGMENTATIONS, augmentation_differences,
                                             augmentation_experiment, editor_quality,
                                             held_out_faces, images_seen_budget)
from ...nn.gan import (DEFAULT_ATTRIBUTES, HAIR_COLOURS, AttributeClassifier,
                       ClassifierConfig, Discriminator, GANConfig, Generator, ResidualBlock,
                       build_gan)
from ...nn.losses.gan import (discriminator_loss, generator_loss, gradient_penalty,
                              identity_loss)
from ..gan_cli import main_gan
from ..viz import show_edits

__all__ = ["DEFAULT_ATTRIBUTES", "HAIR_COLOURS", "FRAMINGS", "GANConfig",
           "ClassifierConfig", "Generator", "Discriminator", "AttributeClassifier",
           "ResidualBlock", "build_gan", "gradient_penalty", "discriminator_loss",
           "generator_loss", "identity_loss", "face_net_view", "face_crops", "framing_for",
           "attribute_matrix", "flip_targets", "attribute_gallery", "source_attributes",
           "split_by_identity", "train_gan", "load_generator", "edit", "flip_attribute",
           "augment", "train_attribute_classifier", "load_attribute_classifier",
           "predict_attributes", "attribute_accuracy", "edit_success_rate",
           "GANResult", "ClassifierResult", "main_gan", "PRETRAINED", "pretrained",
           "pretrained_log", "pretrained_evaluation", "held_out_faces", "show_edits", "identity_preservation",
           "AUGMENTATIONS", "images_seen_budget", "augmentation_experiment",
           "augmentation_differences", "editor_quality"]
