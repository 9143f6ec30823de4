"""The shared face embedding: trained once per training set, content-addressed,
loaded by every head; and the config fields it brought."""
import pytest
import torch

from dfh_lib.engine.train import TrainConfig


@pytest.fixture(scope="module")
def tiny_splits():
    from dfh_lib.interfaces.book_data import book_splits

    return book_splits("tiny", "synthfaces", verbose=False)


def test_shared_backbone_trains_once_then_loads(tiny_splits, tmp_path, monkeypatch):
    from dfh_lib.engine import backbone as bb

    monkeypatch.setenv("DFH_CACHE_DIR", str(tmp_path))
    first = bb.shared_backbone(tiny_splits, "tiny", progress=False)
    assert (tmp_path / "backbones" / first / "embedding.pt").exists()
    calls = []
    monkeypatch.setattr(bb, "train_backbone", lambda *a, **k: calls.append(1))
    assert bb.shared_backbone(tiny_splits, "tiny", progress=False) == first and not calls
    history = bb.backbone_history(first)
    assert history.best_epoch is not None and "val_float_mAP" in history.records[-1]
    assert 0 <= bb.embedding_map(first, tiny_splits) <= 1


def test_heads_on_the_backbone_checkpoint_only_the_head(tiny_splits, tmp_path):
    from dfh_lib.experiments.runs import train_or_load

    run = train_or_load("dfh", tiny_splits, 12, "tiny", tmp_path, progress=False)
    assert run.history.config["backbone"] and run.history.config["network"] == "face_embedding"
    state = torch.load(tmp_path / "dfh-12" / "best.pt", weights_only=True)["model"]
    assert "trunk_id" in state and not any(k.startswith("trunk_net") for k in state)
    assert (tmp_path / "dfh-12" / "best.pt").stat().st_size < 2_000_000
    again = train_or_load("dfh", tiny_splits, 12, "tiny", tmp_path, progress=False)
    assert again.history.records == run.history.records  # loaded, not retrained


def test_new_config_fields_keep_old_fingerprints_and_check_values():
    config = TrainConfig(method="dpsh", bits=12)
    # a default-valued new field does not change the fingerprint of an older run
    assert config.fingerprint() == TrainConfig(method="dpsh", bits=12,
                                               select_metric="val_mAP").fingerprint()
    assert config.fingerprint() != TrainConfig(method="dpsh", bits=12,
                                               backbone="abc").fingerprint()
    with pytest.raises(ValueError, match="select_metric must be one of"):
        TrainConfig(method="dpsh", bits=12, select_metric="loss")


def test_profile_step_budget_sets_the_epochs():
    config = TrainConfig.from_profile("cpu", train_size=2217, method="dfh", bits=12)
    assert config.epochs == -(-1500 // -(-2217 // 128))  # ceil(1500 / 18 batches) = 84
    assert TrainConfig.from_profile("cpu", train_size=2217, method="dfh", bits=12,
                                    epochs=5).epochs == 5
