"""The face embedding network on people outside every evaluation set: LFW's
pairs file and roles, the verification protocol, training with resume, the
report and the saved file."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from dfh_lib.core.data.dataset import RetrievalSplits
from dfh_lib.core.data.lfw import (LfwPairs, load_lfw_pairs, load_lfw_people, read_lfw_images,
                                   read_pairs_file)
from dfh_lib.core.data.lfw_protocols import (FaceNetProtocol, face_net_protocol,
                                             lfw_people_roles)
from dfh_lib.core.embedding_metrics import best_threshold, verification_accuracy


# ------------------------------------------------------------ verification ----

def _brute_force_threshold_accuracy(s, y):
    """Independent reference: try every cut between sorted distinct scores."""
    values = np.unique(s)
    cuts = np.concatenate([[values[0] - 1], (values[1:] + values[:-1]) / 2, [values[-1]]])
    return max(((s > t) == y).mean() for t in cuts)


@pytest.mark.parametrize("seed", range(5))
def test_best_threshold_reaches_the_brute_force_optimum(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(60) < 0.5
    s = np.round(rng.normal(size=60) + y, 1)  # rounded: ties between pairs
    t = best_threshold(s, y)
    assert ((s > t) == y).mean() == pytest.approx(_brute_force_threshold_accuracy(s, y))


def test_best_threshold_hand_values():
    assert best_threshold([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == pytest.approx(0.5)
    # every pair the same person: a threshold below all scores
    assert best_threshold([0.3, 0.4], [True, True]) < 0.3
    # equal scores are never split: both fall on one side
    t = best_threshold([0.5, 0.5, 0.9], [False, True, True])
    assert t == pytest.approx(0.7) or t < 0.5


def test_verification_accuracy_chooses_the_threshold_on_the_other_folds():
    # fold 1 separates at 0.5, fold 2 at 0.25: each is judged by the other's cut
    s = np.array([0.4, 0.6, 0.1, 0.3, 0.2, 0.4])
    y = np.array([False, True, False, True, False, True])
    f = np.array([1, 1, 2, 2, 2, 2])
    acc = verification_accuracy(s, y, f)
    t1 = best_threshold(s[f == 2], y[f == 2])  # chosen on fold 2 for fold 1
    assert acc[1] == ((s[f == 1] > t1) == y[f == 1]).mean()
    assert set(acc) == {1, 2} and all(0 <= a <= 1 for a in acc.values())


@pytest.mark.parametrize("bad, message", [
    (dict(similarity=[0.1, np.nan], same=[0, 1], fold=[1, 2]), "NaN"),
    (dict(similarity=[0.1, 0.2], same=[0, 1], fold=[1, 1]), "two folds"),
    (dict(similarity=[0.1, 0.2, 0.3], same=[0, 1], fold=[1, 2]), "one entry per pair"),
])
def test_verification_accuracy_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        verification_accuracy(**bad)


# ------------------------------------------------------------- pairs file ----

def test_read_pairs_file_folds_same_then_different(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("2\t1\nAnn_Lee\t1\t2\nAnn_Lee\t1\tBo_Chen\t1\n"
                    "Cy_Dorn\t2\t3\nCy_Dorn\t1\tDe_Eck\t4\n")
    folds = read_pairs_file(path)
    assert folds == [[("Ann_Lee", 1, "Ann_Lee", 2), ("Ann_Lee", 1, "Bo_Chen", 1)],
                     [("Cy_Dorn", 2, "Cy_Dorn", 3), ("Cy_Dorn", 1, "De_Eck", 4)]]


def test_read_pairs_file_rejects_another_file(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("10\t300\nnot a pair line at all\n")
    with pytest.raises(ValueError, match="not an LFW pairs file"):
        read_pairs_file(path)


def test_read_lfw_images_cuts_as_scikit_learn(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "lfw" / "lfw_home" / "lfw_funneled" / "Ann_Lee"
    folder.mkdir(parents=True)
    pixels = rng.integers(0, 256, (250, 250, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "Ann_Lee_0001.jpg")
    face = read_lfw_images([("Ann_Lee", 1)], tmp_path)
    expected = np.asarray(Image.open(folder / "Ann_Lee_0001.jpg").convert("RGB")
                          .crop((78, 70, 172, 195)).resize((47, 62)))
    assert face.shape == (1, 62, 47, 3) and np.array_equal(face[0], expected)
    with pytest.raises(FileNotFoundError, match="Ann_Lee_0002.jpg"):
        read_lfw_images([("Ann_Lee", 2)], tmp_path)


# ------------------------------------------------------------------ roles ----

def test_people_roles_keep_training_away_from_every_evaluation_set():
    counts = {f"p{i}": c for i, c in enumerate([1, 2, 3, 4, 5, 6, 9, 10, 15, 19, 20, 40] * 3)}
    pairs_people = {f: frozenset() for f in range(1, 11)}
    pairs_people[9] = frozenset({"p3", "p12"})
    roles = lfw_people_roles(counts, pairs_people, num_validation=2)
    train = set(roles["train"])
    for role in ("validation", "open_set", "benchmark", "verification_test"):
        assert not train & set(roles[role]), role
    assert all(2 <= counts[p] <= 9 for p in train)
    assert all(10 <= counts[p] <= 19 for p in roles["open_set"])
    assert all(counts[p] >= 20 for p in roles["benchmark"])
    assert len(roles["validation"]) == 2 and all(counts[p] >= 4 for p in roles["validation"])
    with_singles = lfw_people_roles(counts, pairs_people, num_validation=2, min_train_images=1)
    assert with_singles["validation"] == roles["validation"]
    assert set(with_singles["train"]) - train == {p for p in counts if counts[p] == 1} - \
        pairs_people[9]


def test_lfw_real_protocol_is_disjoint_and_pairs_match_the_file(real_data_dir):
    protocol = face_net_protocol(real_data_dir)
    roles = protocol.roles
    train = set(roles["train"])
    assert len(train) > 900 and len(protocol.splits.train) > 3000
    for role in ("validation", "open_set", "benchmark", "verification_test"):
        assert not train & set(roles[role]), role
    assert len(roles["benchmark"]) == 62 and len(roles["open_set"]) == 96
    pairs = protocol.pairs
    assert len(pairs) == 1800 and pairs.same.sum() == 900 and set(pairs.fold) == {8, 9, 10}
    everything = load_lfw_pairs(real_data_dir)
    assert len(everything) == 6000
    folds = list(everything.people.values())  # LFW's folds share no person
    assert all(not (a & b) for i, a in enumerate(folds) for b in folds[i + 1:])
    # the same cut as the benchmark's scikit-learn loader, image for image
    from dfh_lib.core.data import load_lfw

    sk = load_lfw(real_data_dir, min_faces_per_person=100)
    names = [n.replace(" ", "_") for n in sk.identity_names]
    ours = load_lfw_people(names, real_data_dir)
    for label in range(len(names)):
        assert sorted(x.tobytes() for x in sk.images[sk.labels == label]) == \
            sorted(x.tobytes() for x in ours.images[ours.labels == label])


# ----------------------------------------------------------- the network ----

@pytest.fixture(scope="module")
def synthetic_protocol():
    """Synthetic faces in the protocol's shape: train / validation people /
    open-set people, and pairs from the open set in two folds."""
    from dfh_lib.core.data import load_synthfaces

    faces = load_synthfaces(num_identities=24, images_per_identity=8, size=32)
    part = lambda lo, hi: faces.subset((faces.labels >= lo) & (faces.labels < hi))
    open_set = part(16, 24)
    is_query = np.zeros(len(open_set), bool)
    is_query[::4] = True
    splits = RetrievalSplits(train=part(0, 12), val_query=part(12, 16).subset(np.arange(0, 32, 4)),
                             query=open_set.subset(is_query), database=open_set.subset(~is_query),
                             seed=0, description="synthetic", val_database=part(12, 16))
    a, b = open_set.images[:40], open_set.images[1:41]
    same = open_set.labels[:40] == open_set.labels[1:41]
    pairs = LfwPairs(a, b, same, np.repeat([1, 2], 20), {1: frozenset(), 2: frozenset()})
    return FaceNetProtocol(splits, pairs, {"train": [], "validation": [], "open_set": []})


def test_face_net_resumes_where_it_stopped(synthetic_protocol, tmp_path,
                                           cpu_deterministic_guard):
    from dfh_lib.engine.face_net import train_face_net

    kwargs = dict(progress=False, epochs=3, eval_every=1, deterministic=True,
                  image_size=(32, 32))
    whole, whole_history = train_face_net(synthetic_protocol, "tiny", tmp_path / "whole",
                                          **kwargs)
    stopped, history = train_face_net(synthetic_protocol, "tiny", tmp_path / "split",
                                      callback=lambda h: len(h.records) == 1, **kwargs)
    assert len(history.records) == 1
    resumed, history = train_face_net(synthetic_protocol, "tiny", tmp_path / "split", **kwargs)
    assert len(history.records) == 3
    assert [r["loss"] for r in history.records] == [r["loss"] for r in whole_history.records]
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_face_net_report_and_saved_file(synthetic_protocol, tmp_path, cpu_deterministic_guard):
    from dfh_lib.engine.face_net import face_net_report, save_face_net, train_face_net
    from dfh_lib.nn.models import load_face_embedding

    model, history = train_face_net(synthetic_protocol, "tiny", tmp_path / "run",
                                    progress=False, epochs=2, image_size=(32, 32))
    report = face_net_report(model, synthetic_protocol)
    assert set(report["verification_per_fold"]) == {1, 2} and report["verification_pairs"] == 40
    for key in ("verification_accuracy", "open_set_float_mAP", "validation_float_mAP"):
        assert 0 <= report[key] <= 1, key
    path = save_face_net(model, history, tmp_path / "out", report, command="python -m x")
    loaded = load_face_embedding(path)
    x = torch.rand(3, 3, 32, 32)
    assert torch.allclose(loaded(x), model(x))
    assert (tmp_path / "out" / "log.csv").exists()
    assert face_net_report(path, synthetic_protocol)["verification_accuracy"] == \
        pytest.approx(report["verification_accuracy"])


def test_shipped_face_net_loads_and_names_its_command():
    from dfh_lib.engine.face_net import (FACE_NET_COMMAND, shipped_face_net,
                                         shipped_face_net_info)

    net = shipped_face_net()
    assert net(torch.rand(2, 3, 64, 48)).shape == (2, 128)
    info = shipped_face_net_info()
    assert info["command"].startswith("python -m dfh_lib face-net")
    assert FACE_NET_COMMAND.startswith(info["command"].split(" --out")[0])
    assert info["verification_pairs"] == 1800


@pytest.mark.parametrize("args, message", [
    (["face-net", "--steps", "0"], "--steps must be a positive"),
    (["face-net", "--data-root", "/no/such/folder"], "is not a folder"),
    (["open-set", "--face-net", "/no/such/net.pt"], "--face-net: no file /no/such/net.pt"),
    (["open-set", "--fine-tune-steps", "-1"], "--fine-tune-steps must be >= 0"),
    (["open-set", "--seeds", "0,x"], "--seeds takes comma-separated integers"),
])
def test_face_net_cli_bad_arguments_one_line(args, message):
    out = subprocess.run([sys.executable, "-m", "dfh_lib", *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert message in out.stderr.strip().splitlines()[-1]  # after argparse's usage, if any


def test_open_set_benchmark_rows_and_ceilings(synthetic_protocol, tmp_path,
                                              cpu_deterministic_guard):
    from dfh_lib.core.data.lfw_protocols import OpenSet
    from dfh_lib.engine.face_net import save_face_net, train_face_net
    from dfh_lib.experiments.open_set import embedding_float_map, open_set_benchmark
    from dfh_lib.interfaces.book_data import book_splits

    net, history = train_face_net(synthetic_protocol, "tiny", None, progress=False, epochs=1)
    path = save_face_net(net, history, tmp_path / "net")
    splits = book_splits("tiny", "synthfaces", verbose=False)
    open_set = OpenSet(synthetic_protocol.splits.query, synthetic_protocol.splits.database)
    rows, aps = open_set_benchmark(["dfh"], splits, open_set, {"face net": path}, bits=(12,),
                                   profile="tiny", runs_dir=tmp_path / "runs", seeds=(0,))
    assert list(rows["protocol"]) == ["closed set", "open set"]
    ceiling = embedding_float_map(path, open_set)
    assert rows.iloc[1]["embedding_float_mAP"] == pytest.approx(ceiling)
    assert rows.iloc[1]["of_embedding"] == pytest.approx(rows.iloc[1]["mAP"] / ceiling)
    assert len(aps[("face net", "dfh", 12, 0, "open set")]) == len(open_set.query)


def test_fine_tune_starts_from_the_face_net_and_records_it(synthetic_protocol, tmp_path,
                                                           cpu_deterministic_guard):
    from dfh_lib.engine.face_net import fine_tune_face_net, save_face_net, train_face_net
    from dfh_lib.interfaces.book_data import book_splits

    net, history = train_face_net(synthetic_protocol, "tiny", None, progress=False, epochs=1)
    path = save_face_net(net, history, tmp_path / "net")
    splits = book_splits("tiny", "synthfaces", verbose=False)
    untrained, h0 = fine_tune_face_net(splits, path, "tiny", None, progress=False, epochs=1,
                                       lr=1e-12)  # no step of any size: still the start
    start = dict(net.named_parameters())  # (BatchNorm's running statistics do move)
    for name, value in untrained.named_parameters():
        assert torch.allclose(value, start[name], atol=1e-6), name
    assert h0.config["backbone"] == str(path)
    with pytest.raises(ValueError, match="reads"):
        fine_tune_face_net(splits, path, "tiny", None, progress=False, image_size=(32, 32))


def test_backbone_differences_pairs_the_same_queries():
    from dfh_lib.experiments.open_set import backbone_differences

    rng = np.random.default_rng(0)
    base = rng.random((2, 50))
    aps = {("b", "dfh", 12, s, "open set"): base[s] for s in (0, 1)}
    aps.update({("a", "dfh", 12, s, "open set"): base[s] + 0.1 for s in (0, 1)})
    aps[("a", "dfh", 12, 0, "closed set")] = base[0]
    table = backbone_differences(aps, "a", "b")
    assert len(table) == 1 and table.iloc[0]["difference"] == pytest.approx(0.1)
    assert table.iloc[0]["seeds"] == 2 and table.iloc[0]["queries"] == 50
