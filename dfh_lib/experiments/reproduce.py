"""The full reproduction table (Chapter 7, ``python -m dfh_lib reproduce``):
the baselines, DFH, DFH + quadratic quantization and the DFH-GANs recipe,
every part train-or-load, query vs database."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from torch import nn

from ..core.runtime import get_device
from ..engine.editing import augment
from ..engine.gan_training import load_attribute_classifier, load_generator, pretrained
from .baselines import DEEP_BASELINES, baselines, run_methods
from .recipe import RecipeResult, dfh_gans_recipe, part_dirs, run_recipe
from .result import ExperimentResult
from .runs import Variant

__all__ = ["REPRODUCE_PARTS", "reproduce", "PRETRAINED_GAN", "gan_augment_fn"]


def _relabel(result: ExperimentResult, old: str, new: str) -> ExperimentResult:
    """Rename method ``old`` to ``new`` in rows, codes and histories."""
    for row in result.rows:
        row["method"] = new if row["method"] == old else row["method"]
    for table in (result.codes, result.histories):
        for key in [k for k in table if k[0] == old]:
            table[(new, *key[1:])] = table.pop(key)
    return result


#: the parts of :func:`reproduce`'s table, each trained-or-loaded in one folder
REPRODUCE_PARTS = ("baselines", "dfh", "dfhq", "recipe")


def reproduce(splits, bits=(12, 24, 36, 48), profile=None, runs_dir=None,
              methods: Sequence[str] | None = None, augment_fn: Callable | None = None,
              progress: bool = True, reuse: dict | None = None,
              settings: dict | None = None) -> RecipeResult:
    """The reproduction table, every part train-or-load, query vs database:

    * ``"baselines"``: the Chapter-2 baselines
      (:func:`~dfh_lib.experiments.baselines.baselines`: ``methods``, default all deep
      baselines, plus deep-feature LSH / PCA-ITQ);
    * ``"dfh"``: plain DFH, one head (row ``dfh``);
    * ``"dfhq"``: one head, DFH + quadratic quantization (row ``dfhq``; folders
      ``quadratic-<bits>``, those of
      :func:`~dfh_lib.experiments.quantizers.compare_quantizers`' quadratic scheme);
    * ``"recipe"``: :func:`dfh_gans_recipe` without GAN data (rows
      ``DFH multi-layer + KD`` and ``DFH-GANs (no GAN data)``) and, with
      ``augment_fn``, its GAN-augmented fine-tuning (row ``DFH-GANs``; the
      teacher and student are loaded from the first run's folders — without
      a folder they are trained twice).

    Each part lives in ``runs_dir`` (folder layout of ``run_methods`` /
    :func:`run_recipe`) unless ``reuse`` maps the part's name to another
    folder, e.g. ``reuse={"baselines": "runs/ch2/cpu-lfw-compare/seed0"}`` loads the
    baselines a chapter already trained instead of training them again.
    ``settings`` gives the baselines their validation-tuned settings
    (:func:`~dfh_lib.experiments.baselines.baselines`).
    Returns a :class:`RecipeResult` (recipe models and teachers included).
    """
    dirs = part_dirs(reuse, REPRODUCE_PARTS, runs_dir)
    methods = DEEP_BASELINES if methods is None else tuple(methods)
    result = RecipeResult()
    result.extend(baselines(splits, bits, profile, dirs["baselines"], methods, progress,
                            settings))
    result.extend(run_methods(splits, ("dfh",), bits, profile, dirs["dfh"], progress))
    # folders quadratic-<bits>, those of compare_quantizers' quadratic scheme
    qq = run_methods(splits, (Variant("quadratic", "dfhq", {"quantization": "quadratic"}),),
                     bits, profile, dirs["dfhq"], progress)
    result.extend(_relabel(qq, "quadratic", "dfhq"))
    recipes = [run_recipe(dfh_gans_recipe(gan=False), splits, bits, profile, dirs["recipe"],
                          progress=progress)]
    if augment_fn is not None:
        gan = run_recipe(dfh_gans_recipe(gan=True), splits, bits, profile, dirs["recipe"],
                         augment_fn, progress)
        gan.rows = [r for r in gan.rows if r["stage"] == "finetune"]  # the rest: as above
        keep = {(r["method"], r["bits"]) for r in gan.rows}
        gan.codes = {k: v for k, v in gan.codes.items() if k in keep}
        gan.histories = {k: v for k, v in gan.histories.items() if k in keep}
        gan.models, gan.kept_models = ({("finetune-gan", k): m for (s, k), m in models.items()
                                        if s == "finetune"}
                                       for models in (gan.models, gan.kept_models))
        recipes.append(gan)
    for part in recipes:
        result.extend(part)
        result.models.update(part.models)
        result.kept_models.update(part.kept_models)
        result.teachers.update(part.teachers)
    return result


# dfh_lib/pretrained/: the masked editor, which keeps the person (Chapter 5 measures
# it beside the StarGAN, whose "no change" pass already loses most identities)
PRETRAINED_GAN = ("masked-gan-cpu-celeba", "attributes-gpu-celeba")


def gan_augment_fn(checkpoint="pretrained", classifier=None):
    """``(augment_fn or None, note)`` for :func:`reproduce`: ``augment_fn(train)``
    is :func:`~dfh_lib.engine.editing.augment` (one edited copy of every training image,
    1-2 attributes flipped, labelled with its source identity) with

    * ``checkpoint="pretrained"``: the masked editor shipped with the library
      (:func:`~dfh_lib.engine.gan_training.pretrained`) and, unless ``classifier`` is given,
      the shipped attribute classifier, which predicts the attributes of
      faces that carry none (e.g. LFW);
    * a generator checkpoint path (:func:`~dfh_lib.engine.gan_training.load_generator`), with
      ``classifier`` an attribute-classifier checkpoint path or None;
    * None or ``"none"``: no GAN data (``augment_fn`` is None).

    The networks run on :func:`~dfh_lib.core.runtime.get_device`. The augmented
    set of the last training set seen is kept, so a chapter can look at it
    and then pass ``augment_fn`` on without editing twice.
    """
    if checkpoint is None or str(checkpoint).lower() == "none":
        return None, "no GAN augmentation (--gan-checkpoint none)"
    if str(checkpoint) == "pretrained":
        generator = pretrained(PRETRAINED_GAN[0])
        judge = pretrained(PRETRAINED_GAN[1]) if classifier is None \
            else load_attribute_classifier(classifier)
        note = f"GAN-augmented fine-tuning (shipped {PRETRAINED_GAN[0]})"
    else:
        generator = load_generator(checkpoint)
        judge = None if classifier is None else load_attribute_classifier(classifier)
        note = f"GAN-augmented fine-tuning ({Path(checkpoint).name})"
    device = get_device()  # editing tens of thousands of faces wants the GPU where there is one
    generator, judge = (m.to(device) if isinstance(m, nn.Module) else m for m in (generator, judge))
    last: list = []  # [(train, augmented)]

    def augment_fn(train):
        if not last or last[0][0] is not train:
            last[:] = [(train, augment(train, generator, classifier=judge))]
        return last[0][1]

    return augment_fn, note
