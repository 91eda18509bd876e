"""Property-based tests (hypothesis): Dataset.construct over random small logs with int or string
ids, and the recommendation tables of a model fitted once per id type, over random users, k,
filters and whitelists."""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqrec import Columns, Dataset, IdEmbeddingsItemNet, SASRecModel
from seqrec.dataset import DataWarning

U, I, T = Columns.User, Columns.Item, Columns.Datetime
FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                derandomize=True)


def _ids(kind: str, values: np.ndarray) -> list:
    return [f"id{v}" for v in values] if kind == "str" else [int(v) * 7 + 1 for v in values]


@st.composite
def logs(draw, distinct_times: bool = False):
    n = draw(st.integers(1, 40))
    users = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    items = draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))
    if distinct_times:
        times = draw(st.permutations(list(range(n))))
    else:
        times = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))  # many ties
    user_kind, item_kind = draw(st.sampled_from(["int", "str"])), draw(st.sampled_from(["int", "str"]))
    return pd.DataFrame({U: _ids(user_kind, np.array(users)), I: _ids(item_kind, np.array(items)),
                         T: pd.Timestamp("2024-01-01") + pd.to_timedelta(times, unit="min")})


def _construct(df: pd.DataFrame) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # repeated rows are expected in random logs
        return Dataset.construct(df)


def _sequences(ds: Dataset) -> dict:
    inter = ds.interactions
    return {u: ds.item_id_map.to_external(inter.items[inter.indptr[r]:inter.indptr[r + 1]]).tolist()
            for r, u in enumerate(ds.user_id_map.external_ids)}


@FAST
@given(df=logs())
def test_construct_properties(df):
    ds = _construct(df)
    assert ds.n_users == df[U].nunique() and ds.n_items == df[I].nunique()
    # external ids round-trip, in order of first appearance
    assert ds.user_id_map.external_ids.tolist() == pd.unique(df[U]).tolist()
    for col, id_map in ((U, ds.user_id_map), (I, ds.item_id_map)):
        values = df[col].to_numpy()
        assert id_map.to_external(id_map.to_internal(values)).tolist() == values.tolist()
    # each user's sequence is the stable time sort of their rows
    expected = df.sort_values(T, kind="stable").groupby(U, sort=False)[I].agg(list).to_dict()
    assert _sequences(ds) == expected
    # the raw interactions hold the input rows, each once
    raw = ds.get_raw_interactions()
    key = [U, I, T]
    pd.testing.assert_frame_equal(raw[key].sort_values(key, ignore_index=True),
                                  df[key].sort_values(key, ignore_index=True), check_dtype=False)


@FAST
@given(df=logs(distinct_times=True), seed=st.integers(0, 2**16))
def test_construct_is_independent_of_row_order_for_distinct_times(df, seed):
    shuffled = df.sample(frac=1.0, random_state=seed)
    assert _sequences(_construct(df)) == _sequences(_construct(shuffled))


# ------------------------------------------------------------------ recommendations of a fitted model
def _log(kind: str) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 400
    users, items = rng.integers(0, 40, n), rng.integers(0, 25, n)
    return pd.DataFrame({U: _ids(kind, users), I: _ids(kind, items),
                         T: pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.permutation(n), unit="s")})


@pytest.fixture(scope="module", params=["int", "str"])
def fitted(request):
    df = _log(request.param)
    ds = Dataset.construct(df)
    model = SASRecModel(n_factors=8, n_heads=2, n_blocks=1, session_max_len=6, epochs=1, batch_size=64,
                        random_state=0, recommend_torch_device="cpu", item_net_block_types=(IdEmbeddingsItemNet,))
    return model.fit(ds), ds, df


def _check_table(reco, query_col, queries, k, allowed_of):
    """Ranks 1..n per query, scores non-increasing, exactly min(k, available) rows of allowed items."""
    assert reco[query_col].drop_duplicates().tolist() == [q for q in queries if len(allowed_of(q)) and k > 0]
    for q, rows in reco.groupby(query_col, sort=False):
        allowed = allowed_of(q)
        assert rows[Columns.Rank].tolist() == list(range(1, len(rows) + 1))
        assert (np.diff(rows[Columns.Score].to_numpy()) <= 0).all()
        assert set(rows[Columns.Item]) <= allowed and rows[Columns.Item].is_unique
        assert len(rows) == min(k, len(allowed))


@settings(FAST, max_examples=10)
@given(data=st.data())
def test_recommend_properties(fitted, data):
    model, ds, df = fitted
    catalog = set(model.item_id_map_.external_ids.tolist())
    all_users = ds.user_id_map.external_ids.tolist()
    users = data.draw(st.lists(st.sampled_from(all_users), min_size=1, max_size=8, unique=True))
    k = data.draw(st.integers(1, 30))
    filter_viewed = data.draw(st.booleans())
    whitelist = data.draw(st.none() | st.lists(st.sampled_from(ds.item_id_map.external_ids.tolist()), max_size=12))
    history = df.groupby(U)[I].agg(set).to_dict()
    supported = [u for u in users if history[u] & catalog]

    def allowed_of(user):
        allowed = catalog if whitelist is None else catalog & set(whitelist)
        return allowed - history[user] if filter_viewed else allowed

    reco = model.recommend(users, ds, k=k, filter_viewed=filter_viewed, items_to_recommend=whitelist,
                           on_unsupported_targets="ignore")
    _check_table(reco, U, supported, k, allowed_of)
    # the same recommendations from a dataset of the same rows in another order (distinct times)
    shuffled = Dataset.construct(df.sample(frac=1.0, random_state=k))
    again = model.recommend(users, shuffled, k=k, filter_viewed=filter_viewed, items_to_recommend=whitelist,
                            on_unsupported_targets="ignore")
    pd.testing.assert_frame_equal(reco, again)
    assert [type(u) for u in reco[U]] == [type(users[0])] * len(reco)


@settings(FAST, max_examples=10)
@given(data=st.data())
def test_recommend_to_items_properties(fitted, data):
    model, ds, _ = fitted
    catalog = model.item_id_map_.external_ids.tolist()
    targets = data.draw(st.lists(st.sampled_from(catalog), min_size=1, max_size=6, unique=True))
    k = data.draw(st.integers(1, 30))
    filter_itself = data.draw(st.booleans())
    whitelist = data.draw(st.none() | st.lists(st.sampled_from(catalog), max_size=10))

    def allowed_of(target):
        allowed = set(catalog) if whitelist is None else set(whitelist)
        return allowed - {target} if filter_itself else allowed

    reco = model.recommend_to_items(targets, ds, k=k, filter_itself=filter_itself, items_to_recommend=whitelist)
    _check_table(reco, Columns.TargetItem, targets, k, allowed_of)
