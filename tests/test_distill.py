"""Multi-layer heads, distillation losses, the stage recipe and `reproduce`,
on tiny synthfaces (one-epoch runs)."""
import json
import math
import re
import types

import numpy as np
import pytest
import torch

from dfh_lib import distill
from dfh_lib import train as train_module
from dfh_lib.experiments import reproduce as reproduce_module
from dfh_lib.experiments import runs as runs_module
from dfh_lib.core.data import load_synthfaces, retrieval_protocol
from dfh_lib.nn.losses.dfh import DFHLoss
from dfh_lib.interfaces.topics.distill import (Distill, DistillationLoss, MultiHeadLoss, Recipe,
                             SimilarityDistillLoss, SoftTargetLoss, Stage, build_multihead,
                             copy_weights, run_recipe)
from dfh_lib.core.profiles import get_profile

pytestmark = pytest.mark.usefixtures("one_thread")
HEADS = ("block3", "final")


@pytest.fixture(autouse=True)
def _cpu(monkeypatch):
    monkeypatch.setenv("DFH_DEVICE", "cpu")


@pytest.fixture(scope="module")
def splits():
    return retrieval_protocol(load_synthfaces(8, 8, size=32), num_query=2, num_val=1)


@pytest.fixture(scope="module")
def tiny():
    return get_profile("tiny").with_overrides(epochs=1)


def small_recipe(**student):
    """Teacher (a small DDH-sized embedding to keep it fast) -> student -> finetune."""
    return Recipe((Stage("teacher", kind="teacher", network="ddh", dim=32),
                   Stage("student", heads=HEADS, distill=Distill(), network="ddh", **student),
                   Stage("finetune", heads=HEADS, init_from="student", lr_scale=0.1,
                         network="ddh")))


# ---------------------------------------------------------------------------- network

def test_heads_shapes_order_and_modes():
    model = build_multihead("ddh", 12, heads=("final", "block2", "block3"))
    assert model.head_names == ("block2", "block3", "final")  # depth order
    x = torch.rand(5, 3, 32, 32)
    heads = model.forward_heads(x)
    assert list(heads) == ["block2", "block3", "final"]
    assert all(v.shape == (5, 12) and v.abs().max() <= 1 for v in heads.values())
    assert model.train()(x).shape == (5, 36)  # training: every head side by side
    assert model.eval()(x).shape == (5, 12)   # eval: the retrieval head


def test_final_head_is_what_encode_uses():
    torch.manual_seed(0)
    model = build_multihead("ddh", 12, heads=("block2", "final"))
    x = torch.rand(6, 3, 32, 32)
    codes = train_module.encode(model, x)
    assert model.training  # encode restores the mode
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(codes, model.forward_heads(x)["final"])
        torch.testing.assert_close(codes, model.backbone(x))
    encoded = distill.encode_heads(model, x)
    torch.testing.assert_close(encoded["final"], codes)


@pytest.mark.parametrize("heads", [("block2",), ("block9", "final"), ("u", "final"),
                                   ("final", "final")])
def test_bad_heads_are_refused(heads):
    with pytest.raises(ValueError, match="heads must"):
        build_multihead("ddh", 12, heads=heads)


def test_copy_weights_shared_keys_and_mismatch():
    source = build_multihead("ddh", 12, heads=HEADS)
    target = build_multihead("ddh", 12, heads=("block2", "final"), activation=None)
    copied = copy_weights(target, source)
    assert "backbone.block1.0.weight" in copied and not any(k.startswith("heads.block2")
                                                            for k in copied)
    torch.testing.assert_close(target.backbone.block4[0].weight, source.backbone.block4[0].weight)
    with pytest.raises(ValueError, match="same network and bits"):
        copy_weights(torch.nn.Linear(2, 2), source)


# ---------------------------------------------------------------------------- KD losses

def test_similarity_distill_hand_value_and_gradient():
    u = torch.tensor([[1.0, 0.0], [1.0, 1.0]], requires_grad=True)
    teacher = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = SimilarityDistillLoss()(u, teacher)
    # cos_s = 1/sqrt2, cos_t = 0: both off-diagonal entries give (1/sqrt2)^2
    torch.testing.assert_close(loss, torch.tensor(0.5))
    loss.backward()
    # dL/du_i = 2 c * d cos/du_i, with d cos/du_0 = (0, 1/sqrt2), d cos/du_1 = (1, -1)/(2 sqrt2)
    torch.testing.assert_close(u.grad, torch.tensor([[0.0, 1.0], [0.5, -0.5]]))


def test_soft_target_hand_value_and_gradient():
    kd = SoftTargetLoss(bits=2, num_classes=2, temperature=2.0)
    with torch.no_grad():
        kd.classifier.weight.copy_(torch.eye(2))
        kd.classifier.bias.zero_()
    u = torch.tensor([[1.0, 0.0]], requires_grad=True)
    loss = kd(u, torch.zeros(1, 2))  # teacher: uniform; student logits / T = (0.5, 0)
    expected = 4 * (math.log1p(math.exp(0.5)) - math.log(2) - 0.25)  # T² KL
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    g = 2 * (1 / (1 + math.exp(-0.5)) - 0.5)  # T (p_s - p_t), times W = I
    torch.testing.assert_close(u.grad, torch.tensor([[g, -g]]))


def test_kd_losses_gradcheck_float64():
    torch.manual_seed(0)
    u = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(SimilarityDistillLoss(), (u, t))
    kd = SoftTargetLoss(4, 3, temperature=3.0).double()
    logits = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(kd, (u, logits))


# ---------------------------------------------------------------------------- multi-head losses

def test_multihead_loss_terms_are_named_weighted_and_sum():
    torch.manual_seed(0)
    u, labels = torch.rand(8, 24) * 2 - 1, torch.arange(4).repeat(2)
    loss = MultiHeadLoss("dfh", 12, 4, heads=HEADS, aux_weight=0.5)
    value, terms = loss(u, labels)
    assert set(terms) == {f"{h}/{t}" for h in HEADS
                          for t in ("metric", "sign", "balance", "decorrelation")}
    torch.testing.assert_close(value, sum(terms.values()))
    _, aux = DFHLoss(12, 4)(u[:, :12], labels)  # the block3 slice, same initial proxies
    torch.testing.assert_close(terms["block3/metric"], 0.5 * aux["metric"])
    with pytest.raises(ValueError, match=r"\(N, 24\)"):
        loss(u[:, :12], labels)


def test_distillation_loss_adds_kd_terms_and_needs_index():
    torch.manual_seed(0)
    u, labels = torch.rand(6, 24) * 2 - 1, torch.tensor([0, 0, 1, 1, 2, 2])
    loss = DistillationLoss("dfh", 12, 3, HEADS, torch.randn(10, 7), torch.randn(10, 3),
                            kd_heads=("final",))
    assert loss.needs_index and "teacher_embeddings" not in loss.state_dict()
    value, terms = loss(u, labels, index=torch.arange(6))
    assert {"final/kd_similarity", "final/kd_soft"} <= set(terms)
    assert "block3/kd_soft" not in terms
    torch.testing.assert_close(value, sum(terms.values()))
    with pytest.raises(ValueError, match="index="):
        loss(u, labels)


# ---------------------------------------------------------------------------- recipe

def test_recipe_trains_then_loads_without_training(splits, tiny, tmp_path, monkeypatch):
    first = run_recipe(small_recipe(), splits, 12, tiny, tmp_path, progress=False)
    assert [r["method"] for r in first.rows] == ["student", "finetune"]
    history = first.histories[("student", 12)]
    assert len(history) == 1 and "final/kd_similarity" in history.records[0]
    assert (tmp_path / "teacher" / "best.pt").exists()
    assert json.loads((tmp_path / "student" / "12bits" / "stage.json").read_text())["bits"] == 12

    def no_training(*args, **kwargs):
        raise AssertionError("a finished stage was retrained")

    monkeypatch.setattr(train_module, "_train_one_epoch", no_training)
    again = run_recipe(small_recipe(), splits, 12, tiny, tmp_path, progress=False)
    assert [r["mAP"] for r in again.rows] == [r["mAP"] for r in first.rows]
    # another spec in the same folder is refused, naming what changed
    with pytest.raises(ValueError, match="another stage spec.*stage"):
        run_recipe(small_recipe(aux_weight=0.1), splits, 12, tiny, tmp_path, progress=False)


def test_init_from_copies_weights_and_gan_stage_gets_augmented_data(splits, tiny, tmp_path,
                                                                     monkeypatch):
    seen = {}

    def fake_fit(model, loss, data, config, run_dir=None, **kwargs):  # no training at all
        seen[config.method] = (len(data.train), run_dir, len(data.validation_database))
        return train_module.History()

    monkeypatch.setattr(runs_module, "fit", fake_fit)
    recipe = Recipe((Stage("a", heads=None),  # the profile's network's default heads
                     Stage("b", method="dfhq", heads=None, init_from="a", augment="gan")))
    doubled = lambda train: train.concat(train)  # noqa: E731  (stand-in for gan.augment)
    result = run_recipe(recipe, splits, 12, tiny, tmp_path, augment_fn=doubled, progress=False)
    a, b = result.models[("a", 12)], result.models[("b", 12)]
    for name, value in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[name], value)
    assert b.activation is None and a.activation == "tanh"  # dfhq: raw outputs
    # trains on the edits too, but validates against the plain training set
    assert seen["dfhq"] == (2 * len(splits.train), tmp_path / "b-gan" / "12bits",
                            len(splits.train))
    assert seen["dfh"][2] == len(splits.train)
    assert [r["gan_augmented"] for r in result.rows] == [False, True]


def test_a_stage_that_does_not_improve_validation_is_not_kept(splits, tiny, tmp_path,
                                                                monkeypatch):
    def fake_fit(model, loss, data, config, run_dir=None, **kwargs):  # "trains" to mAP -1
        return train_module.History(records=[{"epoch": 1, "val_mAP": -1.0}])

    monkeypatch.setattr(runs_module, "fit", fake_fit)
    recipe = Recipe((Stage("a", heads=None), Stage("b", heads=None, init_from="a")))
    result = run_recipe(recipe, splits, 12, tiny, tmp_path, progress=False)
    first, second = result.rows
    assert first["kept"] and first["val_before"] is None
    assert not second["kept"] and second["val_after"] == -1.0 and 0 < second["val_before"] <= 1
    assert result.models[("b", 12)] is not result.models[("a", 12)]  # trained, reported
    # what b hands on (and its row reports) is a's network
    assert result.kept_models[("b", 12)] is result.models[("a", 12)]
    assert result.kept_models[("a", 12)] is result.models[("a", 12)]
    assert second["mAP"] == first["mAP"]  # the row shows what goes on: stage a's model


def test_ablation_rows_in_order(splits, tiny):
    result = distill.ablation(splits, (12,), tiny, progress=False)
    assert [r["method"] for r in result.rows] == list(distill.ABLATION)
    maps = distill.head_maps(result.models[("student", 12)], splits)
    # tiny's student: the hash head on the shared face embedding, a head on its hidden layer
    assert list(maps) == ["hidden", "final"] and all(0 < m <= 1 for m in maps.values())
    mats = distill.similarity_matrices(result.teachers["teacher"],
                                       result.models[("student", 12)], splits.query, n=6)
    assert mats["teacher"].shape == mats["codes"].shape == (6, 6)
    np.testing.assert_allclose(np.diag(mats["codes"]), 1.0)
    assert list(mats["labels"]) == sorted(mats["labels"])
    # agreement: the correlation of the off-diagonal entries, over all query pairs
    whole = distill.similarity_matrices(result.teachers["teacher"],
                                        result.models[("student", 12)], splits.query,
                                        n=len(splits.query))
    off = ~np.eye(len(splits.query), dtype=bool)
    by_hand = np.corrcoef(whole["teacher"][off], whole["codes"][off])[0, 1]
    assert distill.teacher_agreement(result.teachers["teacher"], result.models[("student", 12)],
                                     splits.query) == pytest.approx(by_hand)


def test_ablation_benchmark_measures_every_row_and_seed(splits, tiny, tmp_path):
    rows, aps, results = distill.ablation_benchmark(splits, (12,), tiny, tmp_path, seeds=(0, 1))
    assert sorted(results) == [0, 1] and len(rows) == 2 * len(distill.ABLATION)
    assert list(rows[rows.seed == 0]["method"]) == list(distill.ABLATION)
    assert (tmp_path / "seed1" / "student").is_dir()
    for (name, bits, seed), ap in aps.items():
        row = rows[(rows.method == name) & (rows.seed == seed)].iloc[0]
        assert ap.mean() == pytest.approx(row["mAP"], abs=1e-6)  # the table's mAP, per query
        # the row's mAP is the one the recipe itself reported for that network
        reported = {r["method"]: r["mAP"] for r in results[seed].rows}[name]
        assert row["mAP"] == pytest.approx(reported, abs=1e-6)
    assert ((rows["ratio"] - rows["mAP"] / rows["float_mAP"]).abs() < 1e-9).all()


@pytest.mark.parametrize("stages, message", [
    ((Stage("a", method="nope"),), "unknown method 'nope'"),
    ((Stage("a"), Stage("b", init_from="c")), "init_from='c' is not an earlier hash stage"),
    ((Stage("a"), Stage("a")), "unique"),
])
def test_bad_recipes_are_refused(stages, message):
    with pytest.raises(ValueError, match=message):
        Recipe(stages)


def test_bad_stage_fields_and_unknown_stage_name():
    with pytest.raises(ValueError, match="kind must be one of"):
        Stage("x", kind="student")
    with pytest.raises(ValueError, match="augment must be one of"):
        Stage("x", augment="diffusion")
    with pytest.raises(ValueError, match="unknown stage 'z'"):
        Recipe((Stage("a"),)).stage("z")


def test_missing_teacher_checkpoint_is_a_clear_error(splits, tiny, tmp_path):
    recipe = Recipe((Stage("student", distill=Distill()),))
    with pytest.raises(ValueError, match="no teacher checkpoint in .*teacher"):
        run_recipe(recipe, splits, 12, tiny, tmp_path, progress=False)
    with pytest.raises(ValueError, match="add Stage\\('teacher'"):
        run_recipe(recipe, splits, 12, tiny, None, progress=False)
    # a teacher trained on its own is then found and loaded
    distill.train_teacher(splits, tiny, tmp_path / "teacher", network="ddh", dim=16,
                          progress=False)
    result = run_recipe(recipe, splits, 12, tiny, tmp_path, progress=False)
    assert result.teachers["teacher"].model.bits == 16


def test_reproduce_and_ablation_reuse_other_folders(splits, tiny, tmp_path, monkeypatch):
    first = tmp_path / "first"
    doubled = lambda train: train.concat(train)  # noqa: E731  (stand-in for gan.augment)
    made = distill.reproduce(splits, (12,), tiny, first, ("ddh",), doubled, progress=False)
    methods = [r["method"] for r in made.rows]
    assert {"ddh", "deep PCA-ITQ", "dfh", "dfhq", "DFH multi-layer + KD",
            "DFH-GANs (no GAN data)", "DFH-GANs"} <= set(methods)
    assert len(methods) == len(set(methods))  # the GAN run adds only its fine-tuning row
    assert (first / "finetune-gan" / "12bits").is_dir() and ("finetune-gan", 12) in made.models
    assert (first / "quadratic-12").is_dir()  # the folder of compare_quantizers' quadratic run
    calls = []
    monkeypatch.setattr(train_module, "_train_one_epoch",
                        lambda *a, **k: calls.append(1) or {"loss": 0.0})
    again = distill.reproduce(splits, (12,), tiny, tmp_path / "other", ("ddh",), doubled,
                              progress=False, reuse=dict.fromkeys(distill.REPRODUCE_PARTS,
                                                                  first))
    assert not calls and not (tmp_path / "other").exists()
    assert [(r["method"], r["mAP"]) for r in again.rows] == \
        [(r["method"], r["mAP"]) for r in made.rows]
    # the ablation's single head and shared stages load too; only its "heads" stage trains
    abl = distill.ablation(splits, (12,), tiny, tmp_path / "abl", progress=False,
                           reuse={"dfh": first, "recipe": first})
    assert len(calls) == 1 and not (tmp_path / "abl").exists()
    assert abl.rows[0]["mAP"] == next(r["mAP"] for r in made.rows if r["method"] == "dfh")
    with pytest.raises(ValueError, match="reuse keys must be among"):
        distill.ablation(splits, (12,), tiny, reuse={"baselines": first})


# ---------------------------------------------------------------------------- command line

def test_reproduce_command_writes_tables_with_provenance(tmp_path, monkeypatch, capsys):
    from dfh_lib.__main__ import main

    monkeypatch.setenv("DFH_RUNS_DIR", str(tmp_path / "runs"))
    out = tmp_path / "table"
    main(["reproduce", "--profile", "tiny", "--dataset", "synthfaces", "--bits", "12",
          "--methods", "ddh", "--gan-checkpoint", "none", "--out", str(out)])
    md = out.with_suffix(".md").read_text()
    assert "profile: tiny | dataset: synthfaces" in md and "--gan-checkpoint none" in md
    methods = {row["method"] for row in json.loads(out.with_suffix(".json").read_text())["rows"]}
    assert {"ddh", "dfh", "dfhq", "DFH multi-layer + KD", "DFH-GANs (no GAN data)"} <= methods
    assert "\nDFH multi-layer + KD,12," in out.with_suffix(".csv").read_text()
    assert out.with_suffix(".png").exists()
    assert (tmp_path / "runs" / "reproduce" / "synthfaces-tiny" / "teacher").is_dir()
    assert "--gan-checkpoint none" in capsys.readouterr().out
    # --reuse PART=DIR: every part loads from that run's folder, nothing new is written
    reused = tmp_path / "runs" / "reproduce" / "synthfaces-tiny"
    main(["reproduce", "--profile", "tiny", "--dataset", "synthfaces", "--bits", "12",
          "--methods", "ddh", "--gan-checkpoint", "none", "--out", str(tmp_path / "again"),
          "--runs-dir", str(tmp_path / "elsewhere")]
         + [f"--reuse={part}={reused}" for part in distill.REPRODUCE_PARTS])
    assert not (tmp_path / "elsewhere").exists()
    def maps(path):
        return [(r["method"], r["mAP"]) for r in json.loads(path.read_text())["rows"]]

    assert maps(tmp_path / "again.json") == maps(out.with_suffix(".json"))
    # another training seed: its own folders; the seed-0 runs are refused, not reused
    # (the command line reports it in one line, exit status 2)
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(["reproduce", "--profile", "tiny", "--dataset", "synthfaces", "--bits", "12",
              "--methods", "ddh", "--gan-checkpoint", "none", "--seed", "1",
              f"--reuse=baselines={reused}"])
    assert refused.value.code == 2
    assert re.search(r"^error: .*belongs to a different run \(seed: 0 -> 1",
                     capsys.readouterr().err)
    with pytest.raises(SystemExit):
        main(["reproduce", "--reuse", "teacher=runs"])
    # --tuning-log: the baselines train with the settings it chose
    log = tmp_path / "tuning.csv"
    log.write_text('method,bits,lr,loss_kwargs,val_mAP\nddh,12,0.0003,"{""alpha"": 0.1}",0.5\n')
    main(["reproduce", "--profile", "tiny", "--dataset", "synthfaces", "--bits", "12",
          "--methods", "ddh", "--gan-checkpoint", "none", "--out", str(tmp_path / "tuned"),
          "--runs-dir", str(tmp_path / "tuned-runs"), "--tuning-log", str(log)])
    ddh_run = tmp_path / "tuned-runs" / "synthfaces-tiny" / "ddh-12" / "checkpoint.pt"
    assert torch.load(ddh_run, weights_only=False)["config"]["lr"] == 0.0003
    with pytest.raises(SystemExit):
        main(["reproduce", "--tuning-log", str(tmp_path / "missing.csv")])


def _fake_gan(monkeypatch, calls):
    fake = types.SimpleNamespace(
        load_generator=lambda path: ("G", path),
        load_attribute_classifier=lambda path: ("C", path),
        pretrained=lambda name: ("shipped", name),
        augment=lambda train, generator, classifier=None: calls.append(
            (train, generator, classifier)) or train)
    for name in ("load_generator", "load_attribute_classifier", "pretrained", "augment"):
        monkeypatch.setattr(reproduce_module, name, getattr(fake, name))


def test_gan_checkpoint_goes_through_dfh_lib_gan(monkeypatch, tmp_path):
    calls = []
    _fake_gan(monkeypatch, calls)
    augment_fn, note = distill.gan_augment_fn(tmp_path / "g.pt", "c.pt")
    assert augment_fn("train") == "train" and "g.pt" in note
    assert calls == [("train", ("G", tmp_path / "g.pt"), ("C", "c.pt"))]
    assert distill.gan_augment_fn(None)[0] is None
    assert distill.gan_augment_fn("none") == (None, "no GAN augmentation (--gan-checkpoint none)")


def test_pretrained_gan_is_the_default_and_edits_once_per_training_set(monkeypatch):
    calls = []
    _fake_gan(monkeypatch, calls)
    augment_fn, note = distill.gan_augment_fn()
    assert "shipped masked-gan-cpu-celeba" in note
    first, second = ["a"], ["b"]
    assert augment_fn(first) is first and augment_fn(first) is first
    augment_fn(second)
    assert calls == [(first, ("shipped", "masked-gan-cpu-celeba"),
                      ("shipped", "attributes-gpu-celeba")),
                     (second, ("shipped", "masked-gan-cpu-celeba"),
                      ("shipped", "attributes-gpu-celeba"))]


def test_reproduce_runs_the_gpu_profile_settings_on_cpu(splits, tmp_path):
    """The gpu profile's networks (the face embedding fine-tuned by every
    method, the multi-layer student and the teacher included), 64x48 inputs,
    loader workers and amp flag go through every part of ``reproduce``; only
    the sizes are cut (CPU, one epoch, 12 bits)."""
    gpu = get_profile("gpu").with_overrides(epochs=1, eval_every=1, batch_size=16,
                                            backbone_steps=2)
    doubled = lambda train: train.concat(train)  # noqa: E731  (stand-in for gan.augment)
    made = distill.reproduce(splits, (12,), gpu, tmp_path, ("dpsh",), doubled, progress=False)
    rows = {r["method"]: r for r in made.rows}
    assert {"dpsh", "dfh", "dfhq", "DFH multi-layer + KD", "DFH-GANs"} <= set(rows)
    assert all(0 < r["mAP"] <= 1 for r in made.rows)
    configs = [h.config for h in made.histories.values()]
    assert configs and all(c["network"] == "face_embedding_ft" and c["amp"]
                           and list(c["image_size"]) == [64, 48] for c in configs)
    student = made.models[("finetune-gan", 12)]
    assert student.backbone.fine_tune and student.head_names == ("hidden", "final")
    assert next(iter(made.teachers.values())).model.fine_tune


# ---------------------------------------------------------------------------- which teacher

def test_cosface_logits_are_scaled_cosines_to_the_proxies():
    from dfh_lib.nn.losses import CosFaceLoss

    torch.manual_seed(0)
    loss = CosFaceLoss(4, 3, margin=0.2, scale=16.0)
    u = torch.randn(5, 4)
    W = loss.cosface.W  # (D, C)
    by_hand = torch.stack([torch.stack([16.0 * torch.dot(u[i], W[:, c]) / (u[i].norm() * W[:, c].norm())
                                        for c in range(3)]) for i in range(5)])
    torch.testing.assert_close(loss.logits(u), by_hand)


def test_cosface_teacher_gives_embeddings_and_scaled_cosine_logits(splits, tiny):
    teacher = distill.train_teacher(splits, tiny, network="ddh", dim=16, loss="cosface",
                                    progress=False)
    embeddings, logits = teacher.targets(splits.train)
    assert embeddings.shape == (len(splits.train), 16)
    assert logits.shape == (len(splits.train), splits.train.num_identities)
    assert logits.abs().max() <= teacher.loss.cosface.scale + 1e-4  # s·cos θ
    assert teacher.history.config["method"] == "cosface"
    with pytest.raises(ValueError, match="a teacher's loss must be one of"):
        distill.train_teacher(splits, tiny, network="ddh", dim=16, loss="dfh", progress=False)


def test_centred_similarity_targets_have_zero_mean(splits, tiny):
    from dfh_lib.experiments.recipe import _stage_loss

    teacher = distill.train_teacher(splits, tiny, network="ddh", dim=16, progress=False)
    raw, centred = (_stage_loss(Stage("s", distill=Distill(centre=c)), 12, splits, ("final",),
                                teacher) for c in (False, True))
    embeddings = teacher.targets(splits.train)[0]
    torch.testing.assert_close(raw.teacher_embeddings, embeddings)
    torch.testing.assert_close(centred.teacher_embeddings, embeddings - embeddings.mean(0))
    assert centred.teacher_embeddings.mean(0).abs().max() < 1e-5


def test_teacher_recipe_pairs_each_teacher_with_raw_and_centred_targets():
    recipe = distill.teacher_recipe()
    teachers = [s for s in recipe.stages if s.kind == "teacher"]
    assert [s.name for s in teachers] == [s.name for s in distill.TEACHERS.values()]
    assert teachers[1].dim == 512 and teachers[1].overrides == {"method": "cosface"}
    students = [s for s in recipe.stages if s.kind == "hash"]
    assert students[0].distill is None and students[0].title == distill.NO_KD
    assert {(s.teacher, s.distill.centre) for s in students[1:]} == {
        (t.name, c) for t in teachers for c in (False, True)}
    assert all(s.init_from is None for s in students)  # each from scratch, same seed


def test_teacher_comparison_measures_every_student_and_teacher(splits, tiny, tmp_path):
    rows, aps, teachers = distill.teacher_comparison(splits, (12,), tiny, tmp_path, seeds=(0,))
    assert list(rows["method"]) == [s.title for s in distill.teacher_recipe().stages
                                    if s.kind == "hash"]
    assert sorted(teachers["teacher"]) == sorted(distill.TEACHERS)
    assert teachers["float_mAP"].between(0, 1).all()
    assert teachers["mean_cosine_other_people"].between(-1, 1).all()
    for (name, bits, seed), ap in aps.items():
        assert ap.mean() == pytest.approx(rows[rows.method == name]["mAP"].iloc[0], abs=1e-6)
    assert (tmp_path / "seed0" / "teacher-cosface").is_dir()
