import math

import numpy as np
import pandas as pd
import pytest

from seqrec import Columns
from seqrec.metrics import (MAP, MRR, NDCG, CatalogCoverage, HitRate, MeanPopularity, Precision, Recall,
                            calc_metrics)

# ----------------------------------------------------------------------------- naive references


def _lists(reco, k):
    top = reco[reco[Columns.Rank] <= k].sort_values([Columns.User, Columns.Rank])
    return {u: list(g[Columns.Item]) for u, g in top.groupby(Columns.User)}


def _naive(metric, reco, targets):
    """Per-user loop, straight from the textbook definitions (NDCG in the papers' convention:
    divided by the ideal DCG of the achievable hits; MAP divided by the number of targets)."""
    k = metric.k
    lists = _lists(reco, k)
    values = []
    for user, group in targets.groupby(Columns.User, sort=False):
        relevant = set(group[Columns.Item])
        ranked = lists.get(user, [])
        # rank of each position = its 1-based index (ranks in the random data are 1..n consecutive)
        rel = [item in relevant for item in ranked]
        n_hits = sum(rel)
        if isinstance(metric, HitRate):
            values.append(float(n_hits > 0))
        elif isinstance(metric, Recall):
            values.append(n_hits / len(relevant))
        elif isinstance(metric, Precision):
            values.append(n_hits / k)
        elif isinstance(metric, NDCG):
            dcg = sum(1 / math.log2(i + 2) for i, r in enumerate(rel) if r)
            idcg = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
            values.append(dcg / idcg)
        elif isinstance(metric, MRR):
            values.append(next((1 / (i + 1) for i, r in enumerate(rel) if r), 0.0))
        elif isinstance(metric, MAP):
            total, seen = 0.0, 0
            for i, r in enumerate(rel):
                if r:
                    seen += 1
                    total += seen / (i + 1)
            values.append(total / len(relevant))
    return float(np.mean(values))


def _random_case(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items = 40, 30
    rows = []
    for user in range(n_users):
        n = int(rng.integers(0, 15))  # some users get no recommendations at all
        items = rng.choice(n_items, size=n, replace=False)
        rows += [(user, int(item), rank + 1) for rank, item in enumerate(items)]
    reco = pd.DataFrame(rows, columns=[Columns.User, Columns.Item, Columns.Rank]).sample(frac=1, random_state=seed)
    t_rows = []
    for user in rng.choice(n_users + 5, size=35, replace=False):  # some target users unknown to reco
        for item in rng.choice(n_items, size=int(rng.integers(1, 6)), replace=False):
            t_rows.append((int(user), int(item)))
    targets = pd.DataFrame(t_rows, columns=[Columns.User, Columns.Item])
    return reco, targets


def _paper_ndcg(k):
    return NDCG(k, divide_by_achievable=True)


_paper_ndcg.__name__ = "NDCG"
RANKING = [HitRate, Recall, Precision, _paper_ndcg, MRR, MAP]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("cls", RANKING)
@pytest.mark.parametrize("k", [1, 3, 10])
def test_ranking_metrics_match_naive_loop(seed, cls, k):
    reco, targets = _random_case(seed)
    metric = cls(k)
    assert metric.calc(reco, targets) == pytest.approx(_naive(metric, reco, targets), abs=1e-12)


def test_calc_metrics_equals_individual_calls():
    reco, targets = _random_case(7)
    metrics = {f"{cls.__name__}@{k}": cls(k) for cls in RANKING for k in (2, 5)}
    out = calc_metrics(metrics, reco, targets)
    assert set(out) == set(metrics)
    for name, metric in metrics.items():
        assert out[name] == pytest.approx(metric.calc(reco, targets))


def test_per_user_values_and_missing_users_count_as_zero():
    reco = pd.DataFrame({Columns.User: [1, 1, 1], Columns.Item: ["a", "b", "c"], Columns.Rank: [1, 2, 3]})
    targets = pd.DataFrame({Columns.User: [1, 2], Columns.Item: ["b", "a"]})
    per_user = HitRate(3).calc_per_user(reco, targets)
    assert per_user.to_dict() == {1: 1.0, 2: 0.0}
    assert HitRate(3).calc(reco, targets) == 0.5
    assert HitRate(1).calc(reco, targets) == 0.0


def test_hand_computed_case():
    # user 1: targets {b, d}, list a b c d -> hits at ranks 2 and 4
    # user 2: target {x}, list x y -> hit at rank 1
    # user 3: target {z}, no recommendations
    reco = pd.DataFrame({
        Columns.User: [1, 1, 1, 1, 2, 2],
        Columns.Item: ["a", "b", "c", "d", "x", "y"],
        Columns.Rank: [1, 2, 3, 4, 1, 2],
    })
    targets = pd.DataFrame({Columns.User: [1, 1, 2, 3], Columns.Item: ["b", "d", "x", "z"]})
    assert HitRate(4).calc(reco, targets) == pytest.approx(2 / 3)
    assert Recall(4).calc(reco, targets) == pytest.approx((1 + 1 + 0) / 3)
    assert Recall(2).calc(reco, targets) == pytest.approx((0.5 + 1 + 0) / 3)
    assert Precision(4).calc(reco, targets) == pytest.approx((2 / 4 + 1 / 4) / 3)
    ndcg_1 = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert NDCG(4, divide_by_achievable=True).calc(reco, targets) == pytest.approx((ndcg_1 + 1) / 3)
    # with k=1 the ideal DCG of user 1 covers min(1, 2) = 1 target
    assert NDCG(1, divide_by_achievable=True).calc(reco, targets) == pytest.approx((0 + 1 + 0) / 3)
    assert MRR(4).calc(reco, targets) == pytest.approx((1 / 2 + 1) / 3)
    assert MAP(4).calc(reco, targets) == pytest.approx(((1 / 2 + 2 / 4) / 2 + 1) / 3)


def test_ranks_beyond_k_are_ignored_and_order_of_rows_does_not_matter():
    reco = pd.DataFrame({Columns.User: [1, 1, 1], Columns.Item: [30, 20, 10], Columns.Rank: [3, 2, 1]})
    targets = pd.DataFrame({Columns.User: [1], Columns.Item: [30]})
    assert HitRate(2).calc(reco, targets) == 0.0
    assert NDCG(3, divide_by_achievable=True).calc(reco, targets) == pytest.approx(0.5)  # rank 3: 1 / log2(4)


def test_catalog_coverage():
    reco = pd.DataFrame({Columns.User: [1, 1, 2, 2], Columns.Item: [1, 2, 2, 5], Columns.Rank: [1, 2, 1, 2]})
    # RecTools: a count by default, a share of len(catalog) with normalize=True (a number is a size)
    assert CatalogCoverage(2).calc(reco, 10) == 3
    assert CatalogCoverage(2, normalize=True).calc(reco, 10) == pytest.approx(3 / 10)
    assert CatalogCoverage(1, normalize=True).calc(reco, 10) == pytest.approx(2 / 10)
    assert CatalogCoverage(2, normalize=True).calc(reco, [1, 2, 3, 4]) == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="catalog"):
        CatalogCoverage(2, normalize=True).calc(reco, 0)


def test_mean_popularity():
    train = pd.DataFrame({Columns.User: [1, 2, 3, 3, 3], Columns.Item: ["a", "a", "a", "b", "b"]})
    # popularity in distinct users: a -> 3, b -> 1, c -> 0
    reco = pd.DataFrame({Columns.User: [10, 10, 11], Columns.Item: ["a", "b", "c"], Columns.Rank: [1, 2, 1]})
    per_user = MeanPopularity(2).calc_per_user(reco, train)
    assert per_user.to_dict() == {10: 2.0, 11: 0.0}
    assert MeanPopularity(2).calc(reco, train) == pytest.approx(1.0)
    assert MeanPopularity(1).calc(reco, train) == pytest.approx(1.5)
    assert MeanPopularity(2, normalize=True).calc(reco, train) == pytest.approx(1.0 / 3)


def test_calc_metrics_routes_context():
    reco = pd.DataFrame({Columns.User: [1, 1], Columns.Item: [1, 2], Columns.Rank: [1, 2]})
    targets = pd.DataFrame({Columns.User: [1], Columns.Item: [2]})
    train = pd.DataFrame({Columns.User: [5], Columns.Item: [1]})
    out = calc_metrics({"hr": HitRate(2), "cov": CatalogCoverage(2, normalize=True), "pop": MeanPopularity(2)},
                       reco, targets, catalog=4, prev_interactions=train)
    assert out == {"hr": 1.0, "cov": 0.5, "pop": 0.5}
    with pytest.raises(ValueError, match="needs catalog"):
        calc_metrics({"cov": CatalogCoverage(2)}, reco, targets)
    with pytest.raises(ValueError, match="needs interactions"):
        calc_metrics({"hr": HitRate(2)}, reco)
    with pytest.raises(TypeError, match="not a seqrec metric"):
        calc_metrics({"x": object()}, reco, targets)


def test_bad_input_errors_name_the_problem():
    reco = pd.DataFrame({Columns.User: [1], Columns.Item: [1], Columns.Rank: [1]})
    targets = pd.DataFrame({Columns.User: [1], Columns.Item: [1]})
    with pytest.raises(ValueError, match="rank"):
        HitRate(1).calc(reco.drop(columns=Columns.Rank), targets)
    with pytest.raises(ValueError, match="item_id"):
        HitRate(1).calc(reco, targets.drop(columns=Columns.Item))
    with pytest.raises(ValueError, match="integers >= 1"):
        HitRate(1).calc(reco.assign(rank=[0]), targets)
    with pytest.raises(ValueError, match="integers >= 1"):
        HitRate(1).calc(reco.assign(rank=[1.5]), targets)
    with pytest.raises(ValueError, match="unique"):
        HitRate(1).calc(pd.concat([reco, reco.assign(rank=[2])]), targets)
    assert np.isnan(HitRate(1).calc(reco, targets.iloc[:0]))  # no users to average over: NaN, as RecTools
    with pytest.raises(ValueError, match="missing value"):
        HitRate(1).calc(reco, pd.DataFrame({Columns.User: [1], Columns.Item: [None]}))
    with pytest.raises(TypeError, match="DataFrame"):
        HitRate(1).calc(reco.to_dict(), targets)
    for bad_k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            NDCG(bad_k)


def test_inputs_are_not_modified():
    reco, targets = _random_case(3)
    reco_copy, targets_copy = reco.copy(), targets.copy()
    calc_metrics({"ndcg": NDCG(5), "map": MAP(5)}, reco, targets)
    pd.testing.assert_frame_equal(reco, reco_copy)
    pd.testing.assert_frame_equal(targets, targets_copy)
