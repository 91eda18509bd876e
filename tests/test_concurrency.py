"""recommend and recommend_to_items from several threads at once on one fitted model give what
sequential calls give, and leave the network as they found it (mode and device)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

from seqrec import BERT4RecModel, CatFeaturesItemNet, Columns, Dataset, IdEmbeddingsItemNet, SASRecModel

N_THREADS = 4


@pytest.fixture(scope="module")
def feature_dataset(cycle_df):
    items = pd.unique(cycle_df[Columns.Item])
    feats = pd.DataFrame({Columns.Id: list(items) + ["cold"], Columns.Feature: "genre",
                          Columns.Value: [f"g{i % 4}" for i in range(len(items))] + ["g1"]})
    return Dataset.construct(cycle_df, item_features_df=feats, cat_item_features=["genre"])


def _calls(dataset):
    users = dataset.user_id_map.external_ids
    items = dataset.item_id_map.external_ids
    calls = []
    for i in range(4 * N_THREADS):
        batch = list(users[(7 * i) % 100:(7 * i) % 100 + 5 + i % 7])
        if i % 3 == 2:
            calls.append(("items", dict(target_items=list(items[i % 6:i % 6 + 3]), k=1 + i % 5,
                                        filter_itself=bool(i % 2))))
        else:
            whitelist = list(items[: 6 + i % 6]) if i % 4 == 1 else None
            calls.append(("users", dict(users=batch, k=1 + i % 5, filter_viewed=bool(i % 2),
                                        items_to_recommend=whitelist)))
    return calls


def _run(model, dataset, call):
    kind, kwargs = call
    if kind == "users":
        return model.recommend(dataset=dataset, **kwargs)
    return model.recommend_to_items(dataset=dataset, **kwargs)


@pytest.mark.parametrize("cls,train_mode", [(SASRecModel, False), (SASRecModel, True), (BERT4RecModel, True)],
                         ids=["sasrec-eval", "sasrec-left-in-train-mode", "bert4rec-left-in-train-mode"])
def test_threads_equal_sequential(cls, train_mode, feature_dataset):
    model = cls(n_factors=16, n_heads=2, n_blocks=1, session_max_len=8, epochs=1, batch_size=32, random_state=0,
                dropout_rate=0.5, recommend_batch_size=4, recommend_torch_device="cpu",
                item_net_block_types=(IdEmbeddingsItemNet, CatFeaturesItemNet))
    model.fit(feature_dataset)
    # a net left in train mode (dropout on) by the caller: every call must still score in eval
    # mode, and no call may switch the mode back under another one
    model.net_.train(train_mode)
    calls = _calls(feature_dataset)
    model.net_.eval()
    expected = [_run(model, feature_dataset, c) for c in calls]
    model.net_.train(train_mode)

    barrier = threading.Barrier(N_THREADS)

    def worker(index):
        barrier.wait()  # all threads start together
        return [_run(model, feature_dataset, calls[j]) for j in range(index, len(calls), N_THREADS)]

    with ThreadPoolExecutor(N_THREADS) as pool:
        results = list(pool.map(worker, range(N_THREADS)))
    for index, chunk in enumerate(results):
        for j, got in zip(range(index, len(calls), N_THREADS), chunk):
            pd.testing.assert_frame_equal(got, expected[j])
    assert model.net_.training is train_mode
    assert all(p.device.type == "cpu" for p in model.net_.parameters())
