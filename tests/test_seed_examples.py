"""The RecTools examples our users start from run as written (only the import line differs)."""

import warnings

import pytest

from seqrec import BERT4RecModel, CatFeaturesItemNet, Dataset, IdEmbeddingsItemNet, SASRecModel
from seqrec.datasets import load_movielens_small


@pytest.fixture(scope="module")
def embedded():
    data = load_movielens_small()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the embedded data has genres but no directors
        dataset = Dataset.construct(interactions_df=data.interactions, item_features_df=data.item_features,
                                    cat_item_features=["genre", "director"])
    return data, dataset


def test_sasrec_example(embedded, capsys):
    data, dataset = embedded
    items = data.items
    test_user = data.interactions["user_id"].iloc[0]
    sasrec = SASRecModel(session_max_len=20, loss="softmax", n_factors=64, n_blocks=1,
        n_heads=4, dropout_rate=0.2, lr=0.001, batch_size=128, epochs=1, verbose=1,
        deterministic=True)
    sasrec.fit(dataset)
    recos = sasrec.recommend(users=[test_user], dataset=dataset, k=3, filter_viewed=True,
        on_unsupported_targets="warn")
    merged = recos.merge(items[["item_id", "title_orig"]], on="item_id").sort_values(["user_id", "rank"])
    assert merged["rank"].tolist() == [1, 2, 3]
    assert merged["title_orig"].notna().all()
    assert "train_loss" in capsys.readouterr().out  # verbose=1 reports the epoch's loss


def test_bert4rec_example(embedded):
    _, dataset = embedded
    bert4rec = BERT4RecModel(mask_prob=0.15, deterministic=True)
    bert4rec.set_params(epochs=1, n_factors=32, session_max_len=20).fit(dataset)
    users = dataset.user_id_map.external_ids[:4]
    assert len(bert4rec.recommend(users, dataset, k=5, filter_viewed=True)) == 20


@pytest.mark.parametrize("blocks_example", ["ids", "ids+cats", "cats"])
def test_item_net_examples(embedded, blocks_example):
    _, dataset = embedded
    model = {
        "ids": lambda: SASRecModel(deterministic=True, loss="softmax", item_net_block_types=(IdEmbeddingsItemNet,)),
        "ids+cats": lambda: SASRecModel(deterministic=True, loss="softmax",
            item_net_block_types=(IdEmbeddingsItemNet, CatFeaturesItemNet)),
        "cats": lambda: SASRecModel(deterministic=True, loss="softmax", item_net_block_types=(CatFeaturesItemNet,)),
    }[blocks_example]()
    model.set_params(epochs=1, n_factors=32, session_max_len=20).fit(dataset)
    reco = model.recommend(dataset.user_id_map.external_ids[:3], dataset, k=5, filter_viewed=True)
    assert len(reco) == 15


def test_demo_runs(capsys):
    from seqrec.demo import run_demo

    results = run_demo(epochs=1, n_show=1)
    out = capsys.readouterr().out
    assert "HR@10" in out and "recommended:" in out
    assert set(results) == {"SASRec (ids + genres)", "Popularity"}
    assert 0 <= results["Popularity"]["HR@10"] <= 1
