"""The DFH-GANs training recipe: a declarative list of stages (teacher →
multi-layer student with distillation → fine-tuning with quadratic
quantization on GAN-augmented data), run train-or-load stage by stage at
every code length, and the Chapter-6 ablation.

Taught in Chapter 6 (multi-layer distillation) and Chapter 7 (reproduction).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from ..core.profiles import get_profile
from ..core.runtime import seed_everything
from ..engine.backbone import shared_backbone
from ..engine.encoding import evaluate
from ..engine.teacher import TEACHER_NETWORK, Teacher, fit_teacher, load_teacher
from ..engine.train import TrainConfig
from ..nn.losses.base import HashLoss
from ..nn.losses.distillation import DistillationLoss, MultiHeadLoss
from ..nn.losses.registry import LOSSES, METHOD_DEFAULTS, has_method
from ..nn.multihead import FINAL, build_multihead, copy_weights
from .baselines import run_methods
from .benchmark import convergence, evaluate_model, per_query_ap
from .result import ExperimentResult
from .runs import TrainedRun, fit_or_load

__all__ = ["Distill", "Stage", "Recipe", "dfh_gans_recipe", "RecipeResult", "run_recipe",
           "ablation_benchmark",
           "ABLATION", "ablation_recipe", "ablation", "part_dirs", "STAGE_FILE", "TEACHERS",
           "NO_KD", "teacher_recipe", "teacher_comparison"]

STAGE_FILE = "stage.json"


@dataclass(frozen=True)
class Distill:
    """Distillation settings of a stage: weights of the relational and the
    soft-target terms, the temperature, the heads distilled (None = all),
    and ``centre``: subtract the teacher's mean training embedding before
    its cosines are taken. A face network's embeddings share a common
    direction, so its cosines are mostly positive; matched by ±1 codes,
    whose cosines average 0 when the bits are balanced, they pull every
    pair of codes together. Centred, they say which faces are *more*
    alike than average."""

    similarity: float = 1.0
    soft: float = 1.0
    temperature: float = 4.0
    heads: tuple[str, ...] | None = None
    centre: bool = False

    def __post_init__(self):
        for name in ("similarity", "soft"):
            if not isinstance(getattr(self, name), (int, float)) or getattr(self, name) < 0:
                raise ValueError(f"Distill.{name} must be a number >= 0; got "
                                 f"{getattr(self, name)!r}")
        if self.heads is not None:
            object.__setattr__(self, "heads", tuple(self.heads))


_KINDS = ("hash", "teacher")
_AUGMENTS = (None, "gan")


@dataclass(frozen=True)
class Stage:
    """One training stage of a :class:`Recipe`.

    Attributes:
        name: the stage's name and folder (``runs_dir/<name>``).
        kind: ``"hash"`` (a :class:`MultiHeadHashNet` with a hash loss) or
            ``"teacher"`` (:func:`train_teacher`).
        method: the base hash loss, a registered name ("dfh", "dfhq", ...);
            the network's activation follows ``METHOD_DEFAULTS[method]``.
        heads / aux_weight: the heads (``"final"`` included; None = the
            network's :func:`~dfh_lib.nn.multihead.default_heads`) and the
            weight of the auxiliary ones (see :class:`MultiHeadLoss`).
        distill: :class:`Distill` settings (or a dict of them), None = no KD.
        teacher: the teacher stage's name (an earlier stage, else a finished
            teacher run in ``runs_dir/<teacher>``).
        loss_kwargs: keyword arguments of the base loss.
        init_from: an earlier hash stage whose weights start this one.
        augment: ``"gan"`` trains on GAN-augmented data (``augment_fn``).
        network: hash stages: None = the method's or the profile's; teacher:
            None = :data:`TEACHER_NETWORK`. ``dim``: the teacher's embedding.
        lr_scale / epochs_scale: relative to the profile's lr and epochs.
        overrides: TrainConfig fields set outright (e.g. ``{"seed": 1}``).
        label: the stage's name in results tables (default ``name``).
    """

    name: str
    kind: str = "hash"
    method: str = "dfh"
    heads: tuple[str, ...] | None = (FINAL,)
    aux_weight: float = 0.5
    distill: Distill | None = None
    teacher: str = "teacher"
    loss_kwargs: dict = field(default_factory=dict)
    init_from: str | None = None
    augment: str | None = None
    network: str | None = None
    dim: int = 128
    lr_scale: float = 1.0
    epochs_scale: float = 1.0
    overrides: dict = field(default_factory=dict)
    label: str | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or "/" in self.name \
                or self.name.startswith("."):
            raise ValueError(f"Stage name must be a non-empty folder name; got {self.name!r}")
        if self.kind not in _KINDS:
            raise ValueError(f"stage {self.name!r}: kind must be one of {_KINDS}; "
                             f"got {self.kind!r}")
        if self.augment not in _AUGMENTS:
            raise ValueError(f"stage {self.name!r}: augment must be one of {_AUGMENTS}; "
                             f"got {self.augment!r}")
        if self.heads is not None:
            heads = (self.heads,) if isinstance(self.heads, str) else tuple(self.heads)
            if FINAL not in heads:
                raise ValueError(f"stage {self.name!r}: heads must include {FINAL!r}; "
                                 f"got {heads!r}")
            object.__setattr__(self, "heads", heads)
        if isinstance(self.distill, dict):
            object.__setattr__(self, "distill", Distill(**self.distill))
        if not (self.lr_scale > 0 and self.epochs_scale > 0):
            raise ValueError(f"stage {self.name!r}: lr_scale and epochs_scale must be > 0")

    @property
    def title(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class Recipe:
    """Stages run in order by :func:`run_recipe` (a teacher once, every hash
    stage at every code length). Checked when built: unique names, known
    kinds and methods, ``init_from`` naming an earlier hash stage."""

    stages: tuple[Stage, ...]
    name: str = "DFH-GANs"

    def __post_init__(self):
        stages = tuple(self.stages)
        object.__setattr__(self, "stages", stages)
        if not stages or not all(isinstance(s, Stage) for s in stages):
            raise ValueError("a Recipe needs one or more Stage objects")
        seen: dict[str, Stage] = {}
        for stage in stages:
            if stage.name in seen:
                raise ValueError(f"two stages are named {stage.name!r}; names must be unique")
            if stage.kind == "hash":
                _check_method(stage.method, stage.name)
            if stage.init_from is not None and (stage.init_from not in seen
                                                or seen[stage.init_from].kind != "hash"):
                raise ValueError(f"stage {stage.name!r}: init_from={stage.init_from!r} is not an "
                                 f"earlier hash stage; earlier: {tuple(seen)}")
            if stage.distill is not None and stage.teacher in seen \
                    and seen[stage.teacher].kind != "teacher":
                raise ValueError(f"stage {stage.name!r}: teacher={stage.teacher!r} is not a "
                                 f"teacher stage")
            seen[stage.name] = stage

    def stage(self, name: str) -> Stage:
        """The stage called ``name`` (ValueError listing the names otherwise)."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ValueError(f"unknown stage {name!r}; this recipe has "
                         f"{tuple(s.name for s in self.stages)}")


def _check_method(method: str, stage: str) -> None:
    if not has_method(method):
        raise ValueError(f"stage {stage!r}: unknown method {method!r}; registered losses: "
                         f"{tuple(LOSSES)}")


def dfh_gans_recipe(heads: Sequence[str] | None = None,
                    finetune_method: str | None = None, gan: bool = True,
                    distill: Distill | None = None) -> Recipe:
    """The DFH-GANs recipe, three stages:

    1. ``teacher``: a larger identity network (:func:`train_teacher`);
    2. ``student``: DFH on every head + distillation from the teacher;
    3. ``finetune``: from the student's weights, the quantization loss
       (``"dfhq"`` with quadratic quantization) on GAN-augmented data (``gan=True``; else
       labelled "DFH-GANs (no GAN data)"), at a tenth of the learning rate
       for half the epochs.
    """
    method = finetune_method or "dfhq"
    kwargs = {"quantization": "quadratic"} if method == "dfhq" else {}
    return Recipe((
        Stage("teacher", kind="teacher"),
        Stage("student", heads=heads, distill=distill or Distill(),
              label="DFH multi-layer + KD"),
        Stage("finetune", method=method, loss_kwargs=kwargs, heads=heads, init_from="student",
              augment="gan" if gan else None, lr_scale=0.1, epochs_scale=0.5,
              label="DFH-GANs" if gan else "DFH-GANs (no GAN data)"),
    ))


@dataclass
class RecipeResult(ExperimentResult):
    """:class:`~dfh_lib.experiments.result.ExperimentResult` (rows keyed by the
    stage's label) plus ``models[(stage, bits)]`` (each stage's trained
    network, also one its validation rejected), ``kept_models[(stage, bits)]``
    (the network the stage hands on and its row reports: its start when
    rejected) and ``teachers[name]``."""

    models: dict = field(default_factory=dict)
    kept_models: dict = field(default_factory=dict)
    teachers: dict = field(default_factory=dict)


def _jsonable(value):
    def name(obj):
        return getattr(obj, "__qualname__", type(obj).__qualname__)

    return json.loads(json.dumps(value, default=name, sort_keys=True))


def _check_spec(run_dir: Path, spec: dict) -> None:
    """Write ``stage.json``, or refuse a folder trained by another spec."""
    path = run_dir / STAGE_FILE
    spec = _jsonable(spec)
    if path.exists():
        old = json.loads(path.read_text())
        if old != spec:
            changed = sorted(k for k in set(old) | set(spec) if old.get(k) != spec.get(k))
            raise ValueError(f"{run_dir} was trained by another stage spec (differs in "
                             f"{changed}); use another runs_dir or delete the folder")
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, indent=1, sort_keys=True))


@dataclass
class _Context:
    """The state of one :func:`run_recipe` call."""

    recipe: Recipe
    splits: object
    profile: object
    runs_dir: Path | None
    augment_fn: Callable | None
    progress: bool
    callback: Callable | None = None
    teachers: dict = field(default_factory=dict)
    trained: dict = field(default_factory=dict)
    _augmented: object = None

    def augmented(self, stage: Stage) -> bool:
        return stage.augment == "gan" and self.augment_fn is not None

    def splits_for(self, stage: Stage):
        if not self.augmented(stage):
            return self.splits
        if self._augmented is None:  # once per run, shared by every code length
            train = self.augment_fn(self.splits.train)
            if not isinstance(train, type(self.splits.train)):
                raise ValueError(f"augment_fn must return a FaceDataset; got "
                                 f"{type(train).__name__}")
            # validation ranks against the plain images, as the queries will
            self._augmented = replace(self.splits, train=train, val_database=self.splits.train)
        return self._augmented

    def run_dir(self, stage: Stage, bits: int | None) -> Path | None:
        if self.runs_dir is None:
            return None
        folder = self.runs_dir / (stage.name + ("-gan" if self.augmented(stage) else ""))
        return folder if bits is None else folder / f"{bits}bits"

    def spec(self, stage: Stage, bits: int | None) -> dict:
        """What defines a stage's weights: its fields (not label/augment),
        the code length, whether GAN data was used, and its upstream stages."""
        fields_ = {k: v for k, v in asdict(stage).items() if k not in ("label", "augment")}
        if fields_["distill"] is not None and not fields_["distill"]["centre"]:
            # added after runs were made: left out at its default, so they still load
            del fields_["distill"]["centre"]
        upstream = [stage.init_from] + ([stage.teacher] if stage.distill else [])
        names = {s.name for s in self.recipe.stages}
        return {"stage": fields_, "bits": bits, "gan_augmented": self.augmented(stage),
                "upstream": {u: self.spec(self.recipe.stage(u), None if self.recipe.stage(
                    u).kind == "teacher" else bits) for u in upstream if u in names}}


def _stage_config(stage: Stage, bits: int, network: str, ctx: _Context) -> TrainConfig:
    profile = ctx.profile
    base = {"method": "softmax" if stage.kind == "teacher" else stage.method, "bits": bits,
            "network": network, "lr": profile.lr * stage.lr_scale}
    if network.startswith("face_embedding"):
        # the one shared start, that of the plain training set (GAN-augmented
        # stages keep it: their extra faces are edits of the same people)
        base["backbone"] = shared_backbone(ctx.splits, profile, ctx.progress)
    if profile.steps is None or "epochs" in stage.overrides:
        base["epochs"] = max(1, round(profile.epochs * stage.epochs_scale))
        return TrainConfig.from_profile(profile, **{**base, **stage.overrides})
    # the budget in optimisation steps on the stage's own training set
    config = TrainConfig.from_profile(profile, len(ctx.splits_for(stage).train),
                                      **{**base, **stage.overrides})
    return replace(config, epochs=max(1, round(config.epochs * stage.epochs_scale)))


def _teacher_for(stage: Stage, ctx: _Context) -> Teacher:
    """Train-or-load a teacher stage, or load the teacher a stage distills from."""
    name = stage.name if stage.kind == "teacher" else stage.teacher
    if name in ctx.teachers:
        return ctx.teachers[name]
    names = {s.name for s in ctx.recipe.stages}
    if name in names:
        spec = ctx.recipe.stage(name)
        run_dir = ctx.run_dir(spec, None)
        if run_dir is not None:
            _check_spec(run_dir, ctx.spec(spec, None))
        network = spec.network or TEACHER_NETWORK.get(ctx.profile.multilayer_network,
                                                      ctx.profile.multilayer_network)
        config = _stage_config(spec, spec.dim, network, ctx)
        teacher = fit_teacher(config, ctx.splits, run_dir, ctx.progress)
    elif ctx.runs_dir is None:
        raise ValueError(f"stage {stage.name!r} distills from teacher {name!r}, which is not a "
                         f"stage of this recipe, and no runs_dir was given to load it from; "
                         f"add Stage({name!r}, kind='teacher') before {stage.name!r}")
    else:
        teacher = load_teacher(ctx.runs_dir / name, ctx.splits, ctx.progress)
    ctx.teachers[name] = teacher
    return teacher


def _stage_loss(stage: Stage, bits: int, splits, heads, teacher: Teacher | None) -> HashLoss:
    num_classes = splits.train.num_identities
    common = dict(aux_weight=stage.aux_weight, base_kwargs=stage.loss_kwargs)
    if stage.distill is None:
        return MultiHeadLoss(stage.method, bits, num_classes, heads, **common)
    embeddings, logits = teacher.targets(splits.train)
    d = stage.distill
    if d.centre:
        embeddings = embeddings - embeddings.mean(dim=0, keepdim=True)
    return DistillationLoss(stage.method, bits, num_classes, heads, embeddings, logits,
                            similarity_weight=d.similarity, soft_weight=d.soft,
                            temperature=d.temperature, kd_heads=d.heads, **common)


def _run_hash_stage(stage: Stage, bits: int, ctx: _Context) -> TrainedRun:
    """Build, initialise and train-or-load one hash stage."""
    splits = ctx.splits_for(stage)
    model_kwargs = METHOD_DEFAULTS.get(stage.method, {})
    network = stage.network or ctx.profile.multilayer_network
    config = _stage_config(stage, bits, network, ctx)
    run_dir = ctx.run_dir(stage, bits)
    if run_dir is not None:
        _check_spec(run_dir, ctx.spec(stage, bits))
    teacher = _teacher_for(stage, ctx) if stage.distill is not None else None
    seed_everything(config.seed, config.deterministic)
    model = build_multihead(network, bits, stage.heads, config.image_size,
                            model_kwargs.get("activation", "tanh"),
                            **({} if config.backbone is None else {"backbone": config.backbone}))
    if stage.init_from is not None:
        copy_weights(model, ctx.trained[(stage.init_from, bits)])
    loss = _stage_loss(stage, bits, splits, model.head_names, teacher)
    return fit_or_load(model, loss, splits, config, run_dir, ctx.progress, ctx.callback)


def _validation_before(stage: Stage, bits: int, ctx: _Context) -> float | None:
    """Validation mAP of the model a continuing stage starts from, measured as
    the stage's own training measures it (its val_query against its
    validation database: the plain training set, also for a GAN stage);
    None for a stage that starts from scratch."""
    if stage.init_from is None:
        return None
    splits = ctx.splits_for(stage)
    return float(evaluate(ctx.trained[(stage.init_from, bits)], splits.val_query,
                          splits.validation_database)["mAP"])


def run_recipe(recipe: Recipe, splits, bits=(12, 24, 36, 48), profile=None, runs_dir=None,
               augment_fn: Callable | None = None, progress: bool = True,
               callback: Callable | None = None) -> RecipeResult:
    """Run ``recipe`` at every code length; a row per hash stage and length.

    Train-or-load: each stage trains through
    :func:`~dfh_lib.experiments.runs.fit_or_load` in
    ``runs_dir/<stage>/<bits>bits`` (the teacher in ``runs_dir/teacher``,
    once for all lengths), so a finished stage is loaded, not retrained, and
    an interrupted one resumes. ``stage.json`` records what defines the
    stage (its fields, upstream stages); a folder of another spec is
    refused. GAN stages (``augment="gan"``) train on
    ``augment_fn(splits.train)`` (computed once; folder ``<stage>-gan``);
    without ``augment_fn`` they train on the plain data and say so.
    ``callback`` goes to every hash stage's :func:`~dfh_lib.engine.train.fit`.
    Rows (query vs database, as :func:`~dfh_lib.experiments.baselines.run_methods`)
    are named by the stage's label, with ``stage``, ``gan_augmented``,
    ``best_epoch`` and ``seconds``.

    Stages can fail: a stage that continues another (``init_from``) is
    validated before it trains (``val_before``) and after (``val_after``, its
    best epoch); it is kept only if validation improved (``kept``), else the
    model it started from goes on to the next stage and fills its row.
    """
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe must be a Recipe; got {type(recipe).__name__}")
    bits = (bits,) if isinstance(bits, int) else tuple(bits)
    profile = get_profile(profile)
    ctx = _Context(recipe, splits, profile, None if runs_dir is None else Path(runs_dir),
                   augment_fn, progress, callback)
    for stage in recipe.stages:
        if stage.augment == "gan" and augment_fn is None:
            print(f"note: stage {stage.name!r} asks for GAN augmentation but no augment_fn "
                  f"was given: it trains on the plain training set")
    result = RecipeResult()
    for k in bits:
        for stage in recipe.stages:
            if stage.kind == "teacher":
                result.teachers[stage.name] = _teacher_for(stage, ctx)
                continue
            before = _validation_before(stage, k, ctx)
            run = _run_hash_stage(stage, k, ctx)
            best = run.history.best_epoch
            after = None if best is None else run.history.records[best - 1]["val_mAP"]
            kept = before is None or after is None or after > before
            model = run.model if kept else ctx.trained[(stage.init_from, k)]
            ctx.trained[(stage.name, k)] = model
            result.add_model(stage.title, k, model, splits, stage=stage.name,
                             gan_augmented=ctx.augmented(stage), best_epoch=best,
                             seconds=round(run.seconds, 1), val_before=before, val_after=after,
                             kept=kept)
            result.histories[(stage.title, k)] = run.history
            result.models[(stage.name, k)] = run.model
            result.kept_models[(stage.name, k)] = model
    result.teachers.update(ctx.teachers)
    return result


# ----------------------------------------------------------------------------
# analysis helpers for the chapter
# ----------------------------------------------------------------------------

ABLATION = ("DFH (single head)", "+ multi-layer heads", "+ distillation", "+ multi-stage")


def ablation_recipe(heads: Sequence[str] | None = None,
                    finetune_method: str | None = None) -> Recipe:
    """Teacher, multi-layer heads without KD, + distillation, + multi-stage
    (fine-tuning without GAN data): the stages of :func:`dfh_gans_recipe`
    (same folders) plus ``heads``, labelled as in :data:`ABLATION`."""
    teacher, student, finetune = dfh_gans_recipe(heads, finetune_method, gan=False).stages
    return Recipe((teacher, Stage("heads", heads=heads, label=ABLATION[1]),
                   replace(student, label=ABLATION[2]), replace(finetune, label=ABLATION[3])),
                  name="ablation")


def ablation(splits, bits=(12, 24, 36, 48), profile=None, runs_dir=None,
             heads: Sequence[str] | None = None, progress: bool = True,
             reuse: dict | None = None) -> RecipeResult:
    """Single head (plain ``"dfh"`` via :func:`~dfh_lib.experiments.baselines.run_methods`)
    → multi-layer heads → + distillation → + multi-stage, at every length;
    rows ``(method, bits, mAP, P@H<=2, ...)`` in :data:`ABLATION` order.

    ``reuse``: ``{"dfh": folder, "recipe": folder}`` trains-or-loads that part
    in another folder (e.g. the single-head runs of an earlier chapter,
    ``<folder>/dfh-<bits>``) instead of ``runs_dir``.
    """
    dirs = part_dirs(reuse, ("dfh", "recipe"), runs_dir)
    single = run_methods(splits, ("dfh",), bits, profile, dirs["dfh"], progress)
    result = run_recipe(ablation_recipe(heads), splits, bits, profile, dirs["recipe"],
                        progress=progress)
    for row in single.rows:
        row["method"] = ABLATION[0]
    result.codes.update({(ABLATION[0], k): v for (_, k), v in single.codes.items()})
    result.histories.update({(ABLATION[0], k): v for (_, k), v in single.histories.items()})
    result.rows = sorted(single.rows + result.rows,
                         key=lambda r: (ABLATION.index(r["method"]), r["bits"]))
    return result


def part_dirs(reuse, parts: Sequence[str], runs_dir) -> dict:
    """``{part: folder}``: ``reuse[part]`` where given, else ``runs_dir``."""
    reuse = dict(reuse or {})
    unknown = sorted(set(reuse) - set(parts))
    if unknown:
        raise ValueError(f"reuse keys must be among {tuple(parts)}; got {unknown}")
    default = None if runs_dir is None else Path(runs_dir)
    return {part: default if reuse.get(part) is None else Path(reuse[part]) for part in parts}


def ablation_benchmark(splits, bits=(12, 24, 36, 48), profile=None, runs_dir=None,
                       seeds=(0, 1, 2), heads: Sequence[str] | None = None,
                       progress: bool = False):
    """:func:`ablation` once per training seed (folders ``runs_dir/seed<s>``),
    every row measured as :func:`~dfh_lib.experiments.benchmark.benchmark`
    measures a method: code mAP, float mAP of the same network, their ratio,
    P@H<=2, undecided bits, convergence; a stage that did not improve
    validation is measured as the network it started from (``kept`` False),
    as the recipe reports it. Returns ``(rows, per-query APs keyed
    (row, bits, seed), {seed: RecipeResult})``."""
    profile = get_profile(profile)
    rows, aps, results = [], {}, {}
    for seed in seeds:
        folder = None if runs_dir is None else Path(runs_dir) / f"seed{seed}"
        seeded = profile.with_overrides(seed=seed)
        result = ablation(splits, bits, seeded, folder, heads, progress)
        results[seed] = result
        rows += _seed_rows(result, splits, seed, aps)
    return pd.DataFrame(rows), aps, results


def _seed_rows(result: RecipeResult, splits, seed: int, aps: dict) -> list[dict]:
    """A row per network of one seed's result, as it was reported (a rejected stage
    reports the network it started from), with its convergence; its per-query
    APs go to ``aps[(row, bits, seed)]``."""
    rows = []
    for row in result.rows:
        name, k = row["method"], row["bits"]
        aps[(name, k, seed)] = per_query_ap(*result.codes[(name, k)], splits.query.labels,
                                            splits.database.labels)
        rows.append({"method": name, "bits": k, "seed": seed, "kept": row.get("kept", True),
                     **{c: row[c] for c in ("mAP", "float_mAP", "ratio", "P@H<=2",
                                            "undecided")},
                     **convergence(result.histories[(name, k)])})
    return rows


# ----------------------------------------------------------------------------
# which teacher: a comparison at one setting
# ----------------------------------------------------------------------------

#: teachers compared by :func:`teacher_comparison`, label -> teacher stage: the
#: recipe's (a softmax identity classifier, 128-d) and a CosFace embedding
#: (512-d), both a head on the shared face embedding
TEACHERS = {"softmax, 128-d": Stage("teacher", kind="teacher"),
            "CosFace, 512-d": Stage("teacher-cosface", kind="teacher", dim=512,
                                    overrides={"method": "cosface"})}
NO_KD = "no distillation"


def teacher_recipe(heads: Sequence[str] | None = None) -> Recipe:
    """Both :data:`TEACHERS`, the multi-layer student without distillation,
    and the same student distilled from each teacher, with raw and with
    centred similarity targets (:class:`Distill` ``centre``); every student
    starts from scratch with the same seed, budget and heads."""
    stages = [*TEACHERS.values(), Stage("heads", heads=heads, label=NO_KD)]
    for label, teacher in TEACHERS.items():
        for centre in (False, True):
            stages.append(Stage(f"student-{teacher.name}" + ("-centred" if centre else ""),
                                heads=heads, teacher=teacher.name, distill=Distill(centre=centre),
                                label=f"KD: {label}" + (", centred" if centre else "")))
    return Recipe(tuple(stages), name="teachers")


def teacher_comparison(splits, bits=(12,), profile=None, runs_dir=None, seeds=(0, 1, 2),
                       heads: Sequence[str] | None = None, progress: bool = False):
    """:func:`teacher_recipe` once per training seed (folders
    ``runs_dir/seed<s>``). Returns ``(rows, aps, teachers)``: a row per
    student, length and seed (``mAP``, ``float_mAP``, ``ratio``, ``P@H<=2``,
    ``undecided``, convergence), per-query APs keyed ``(row, bits, seed)``
    for paired differences, and a row per teacher and seed with its float
    mAP (cosine ranking of its embedding, query vs database) and the mean
    cosine between training faces of different people (> 0: the bias that
    centring removes)."""
    profile = get_profile(profile)
    rows, aps, teachers = [], {}, []
    names = {stage.name: label for label, stage in TEACHERS.items()}
    for seed in seeds:
        folder = None if runs_dir is None else Path(runs_dir) / f"seed{seed}"
        result = run_recipe(teacher_recipe(heads), splits, bits, profile.with_overrides(seed=seed),
                            folder, progress=progress)
        for name, teacher in result.teachers.items():
            unit = F.normalize(teacher.targets(splits.train)[0], dim=1)
            cosines = unit @ unit.T
            other = splits.train.labels[:, None] != splits.train.labels[None, :]
            teachers.append({"teacher": names[name], "seed": seed,
                             "float_mAP": evaluate_model(teacher.model, splits)["float_mAP"],
                             "mean_cosine_other_people": float(cosines[torch.from_numpy(other)]
                                                               .mean())})
        rows += _seed_rows(result, splits, seed, aps)
    return pd.DataFrame(rows), aps, pd.DataFrame(teachers)
