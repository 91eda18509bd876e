import pytest

from seqrec import BERT4RecModel, SASRecModel
from seqrec.presets import PRESETS, get_preset, preset_names

MODELS = {"sasrec": SASRecModel, "bert4rec": BERT4RecModel}


@pytest.mark.parametrize("name", preset_names())
def test_each_preset_builds_its_model(name):
    model_name = name.split("-", 1)[0]
    model = MODELS[model_name](**get_preset(name))
    params = model.get_params()
    for key, value in get_preset(name).items():
        assert params[key] == value


def test_get_preset_returns_a_fresh_copy():
    preset = get_preset("sasrec-ml-1m")
    preset["n_factors"] = 999
    assert get_preset("sasrec-ml-1m")["n_factors"] == 64
    assert PRESETS["sasrec-ml-1m"]["n_factors"] == 64


def test_sasrec_ml_1m_is_the_benchmarked_setting():
    # SASRec+ sizes with lr 2e-3 and all windows: the run behind the ML-1M row of docs/benchmarks.md
    p = get_preset("sasrec-ml-1m")
    assert (p["n_factors"], p["n_blocks"], p["n_heads"], p["session_max_len"], p["batch_size"], p["lr"], p["loss"],
            p["train_windows"]) == (64, 2, 1, 200, 128, 2e-3, "softmax", "all")


def test_ml_1m_gbce_and_bert4rec_are_the_benchmarked_settings():
    # the runs behind the gBCE and BERT4Rec rows of docs/benchmarks.md
    p = get_preset("sasrec-ml-1m-gbce")
    assert (p["loss"], p["n_negatives"], p["gbce_t"], p["dropout_rate"], p["lr"], p["train_windows"]) == (
        "gBCE", 256, 0.75, 0.0, 2e-3, "all")
    assert SASRecModel.from_preset("ml-1m-gbce").get_params()["loss"] == "gBCE"
    p = get_preset("bert4rec-ml-1m")
    assert (p["n_heads"], p["mask_prob"], p["lr"], p["loss"]) == (2, 0.2, 2e-3, "softmax")


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(ValueError, match="sasrec-ml-1m"):
        get_preset("sasrec-ml-2m")


@pytest.mark.parametrize("cls, prefix", [(SASRecModel, "sasrec"), (BERT4RecModel, "bert4rec")])
def test_from_preset_uses_the_model_preset_and_overrides(cls, prefix):
    model = cls.from_preset("ml-1m", epochs=3, lr=5e-4)
    expected = dict(get_preset(f"{prefix}-ml-1m"), epochs=3, lr=5e-4)
    params = model.get_params()
    assert isinstance(model, cls)
    assert all(params[k] == v for k, v in expected.items())


def test_from_preset_unknown_dataset_lists_the_model_presets():
    with pytest.raises(ValueError, match=r"No BERT4RecModel preset for 'ml-20m'.*'beauty'"):
        BERT4RecModel.from_preset("ml-20m")


@pytest.mark.parametrize("name", [n for n in preset_names() if "esasrec" not in n])
def test_pre_ln_presets_build_the_standard_pre_ln_stack(name):
    """Every SASRec/BERT4Rec preset figure was measured with the standard pre-LN stack (a final
    LayerNorm, no dropout on the blocks' outputs); PreLNTransformerLayers' defaults are RecTools'
    stack, so the presets must pin the old one."""
    import numpy as np
    import pandas as pd
    import torch

    from seqrec import Dataset, PreLNTransformerLayers

    model = MODELS[name.split("-", 1)[0]](**{**get_preset(name), "n_factors": 8, "session_max_len": 5})
    df = pd.DataFrame({"user_id": np.repeat([1, 2], 4), "item_id": [1, 2, 3, 4, 2, 3, 4, 1]})
    net = model._build_net(Dataset.construct(df))
    assert isinstance(net.layers, PreLNTransformerLayers)
    assert isinstance(net.layers.ln_out, torch.nn.LayerNorm)
    assert all(block.drop_out is None for block in net.blocks)


def test_beauty_features_preset_is_sasrec_beauty_with_a_feature_block_and_a_decaying_rate():
    from seqrec import CatFeaturesItemNet, IdEmbeddingsItemNet
    with_features, ids = get_preset("sasrec-beauty-features"), get_preset("sasrec-beauty")
    assert with_features.pop("item_net_block_types") == (IdEmbeddingsItemNet, CatFeaturesItemNet)
    ids.pop("item_net_block_types")
    # its own schedule: the rate decays to 0 over 50 epochs; sasrec-beauty keeps the constant rate
    assert (with_features.pop("lr_schedule"), with_features.pop("epochs")) == ("cosine", 50)
    assert "lr_schedule" not in ids
    ids.pop("epochs")
    assert with_features == ids
