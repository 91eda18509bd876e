"""Metrics under RecTools' definitions: hand-computed cases and per-user loops on random data."""

import math

import numpy as np
import pandas as pd
import pytest

from seqrec import Columns
from seqrec.metrics import (MAP, MCC, MRR, NDCG, Accuracy, AvgRecPopularity, CatalogCoverage, CoveredUsers, F1Beta,
                            HitRate, Intersection, MeanInvUserFreq, Precision, Recall, Serendipity, SufficientReco,
                            UnrepeatedReco, calc_metrics)

U, I, R = Columns.User, Columns.Item, Columns.Rank


def _reco():
    # user 1: a b c d; user 2: x y; user 4: p (user 4 has no test interactions)
    return pd.DataFrame({U: [1, 1, 1, 1, 2, 2, 4], I: list("abcdxyp"), R: [1, 2, 3, 4, 1, 2, 1]})


def _test():
    # user 1: b, d, e (hits at ranks 2 and 4); user 2: x twice (a repeat counts twice); user 3: no reco
    return pd.DataFrame({U: [1, 1, 1, 2, 2, 3], I: ["b", "d", "e", "x", "x", "z"]})


def _prev():
    # rows per item: a 3, x 2, b 1, c 1 (4 users); dense popularity ranks a 1, x 2, b 3, c 3
    return pd.DataFrame({U: [10, 11, 12, 10, 11, 13, 13], I: ["a", "a", "a", "x", "x", "b", "c"]})


def _log2(x):
    return math.log2(x)


def test_classification_metrics_by_hand():
    reco, test = _reco(), _test()
    # tp / n: user 1 2/3, user 2 2/2, user 3 0/1
    assert Precision(4).calc(reco, test) == pytest.approx((2 / 4 + 2 / 4 + 0) / 3)
    assert Precision(4, r_precision=True).calc(reco, test) == pytest.approx((2 / 3 + 2 / 2 + 0) / 3)
    assert Recall(4).calc(reco, test) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert Recall(2).calc(reco, test) == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert HitRate(4).calc(reco, test) == pytest.approx(2 / 3)
    assert HitRate(1).calc(reco, test) == pytest.approx(1 / 3)
    p1, r1 = 2 / 4, 2 / 3
    assert F1Beta(4).calc(reco, test) == pytest.approx((2 * p1 * r1 / (p1 + r1) + 2 * 0.5 * 1 / 1.5 + 0) / 3)
    assert F1Beta(4, beta=2.0).calc(reco, test) == pytest.approx(
        (5 * p1 * r1 / (4 * p1 + r1) + 5 * 0.5 * 1 / (4 * 0.5 + 1) + 0) / 3)
    # catalog of 10: tn = 10 - k - fn
    assert Accuracy(4).calc(reco, test, list(range(10))) == pytest.approx(((2 + 5) / 10 + (2 + 6) / 10 + 5 / 10) / 3)
    mcc = [(2 * 5 - 2 * 1) / math.sqrt(4 * 3 * 7 * 6), (2 * 6 - 2 * 0) / math.sqrt(4 * 2 * 8 * 6),
           (0 * 5 - 4 * 1) / math.sqrt(4 * 1 * 9 * 6)]
    assert MCC(4).calc_per_user(reco, test, 10).tolist() == pytest.approx(mcc)
    assert CoveredUsers(4).calc_per_user(reco, test).to_dict() == {1: 1, 2: 1, 3: 0}


def test_ranking_metrics_by_hand():
    reco, test = _reco(), _test()
    ideal_4 = 1 + 1 / _log2(3) + 1 / _log2(4) + 1 / _log2(5)
    dcg = [1 / _log2(3) + 1 / _log2(5), 2.0, 0.0]  # user 2's repeated target counts twice
    assert NDCG(4).calc_per_user(reco, test).tolist() == pytest.approx([d / ideal_4 for d in dcg])
    achievable = [1 + 1 / _log2(3) + 1 / _log2(4), 1 + 1 / _log2(3), 1.0]
    assert NDCG(4, divide_by_achievable=True).calc_per_user(reco, test).tolist() == pytest.approx(
        [d / a for d, a in zip(dcg, achievable)])
    # log base 3 at k=2: user 1 hits at rank 2 (1 / log3(3) = 1), user 2 twice at rank 1
    ideal_3 = 1 / math.log(2, 3) + 1
    assert NDCG(2, log_base=3).calc_per_user(reco, test).tolist() == pytest.approx(
        [1 / ideal_3, 2 / math.log(2, 3) / ideal_3, 0])
    # MAP: user 1 precisions 1/2 (rank 2) and 2/4 (rank 4) over 3 relevant; user 2 precision 2/1 at rank 1 over 2
    assert MAP(4).calc_per_user(reco, test).tolist() == pytest.approx([1 / 3, 1.0, 0.0])
    assert MAP(4, divide_by_k=True).calc_per_user(reco, test).tolist() == pytest.approx([1 / 4, 2 / 4, 0.0])
    assert MAP(1).calc_per_user(reco, test).tolist() == pytest.approx([0.0, 1.0, 0.0])
    assert MRR(4).calc_per_user(reco, test).tolist() == pytest.approx([1 / 2, 1.0, 0.0])
    assert MRR(1).calc(reco, test) == pytest.approx(1 / 3)


def test_leave_one_out_ndcg_differs_by_the_ideal_dcg_at_k():
    reco = pd.DataFrame({U: [1, 1], I: [5, 6], R: [1, 2]})
    test = pd.DataFrame({U: [1], I: [5]})
    ideal_10 = sum(1 / _log2(i + 1) for i in range(1, 11))
    assert NDCG(10).calc(reco, test) == pytest.approx(1 / ideal_10)  # about 1 / 4.54
    assert NDCG(10, divide_by_achievable=True).calc(reco, test) == pytest.approx(1.0)


def test_beyond_accuracy_metrics_by_hand():
    reco, test, prev = _reco(), _test(), _prev()
    # Serendipity@2, 5 items: p(rank) = (6 - rank) / 5, p_any(item) = (6 - pop_rank) / 5, 0 for absent items
    # user 1: a (not relevant) 0, b at rank 2: max(0.8 - 0.6, 0) = 0.2 -> 0.1
    # user 2: x at rank 1, relevant twice: max(1.0 - 0.8, 0) with weight 2, y 0 -> 0.4 / 3
    # user 4: p not relevant -> 0
    per_user = Serendipity(2).calc_per_user(reco, test, prev, list(range(5)))
    assert per_user.to_dict() == pytest.approx({1: 0.1, 2: 0.4 / 3, 4: 0.0})
    assert Serendipity(2).calc(reco, test, prev, 5) == pytest.approx((0.1 + 0.4 / 3) / 3)
    # popularity in rows of prev: a 3, b 1, x 2, y and p 0
    assert AvgRecPopularity(2).calc_per_user(reco, prev).to_dict() == pytest.approx({1: 2.0, 2: 1.0, 4: 0.0})
    assert AvgRecPopularity(2, normalize=True).calc(reco, prev) == pytest.approx(1 / 7)
    # novelty: 4 users; a 3 users, b 1, x 2; absent items count as 1 user
    assert MeanInvUserFreq(2).calc_per_user(reco, prev).to_dict() == pytest.approx(
        {1: (-_log2(3 / 4) + 2) / 2, 2: (1 + 2) / 2, 4: 2.0})
    assert SufficientReco(3).calc_per_user(reco).to_dict() == {1: 1, 2: 0, 4: 0}
    assert SufficientReco(3, deep=True).calc(reco) == pytest.approx((1 + 2 / 3 + 1 / 3) / 3)
    repeated = pd.DataFrame({U: [1, 1, 1, 2], I: ["a", "a", "b", "c"], R: [1, 2, 3, 1]})
    assert UnrepeatedReco(3).calc_per_user(repeated).to_dict() == {1: 0, 2: 1}
    assert UnrepeatedReco(3, deep=True).calc_per_user(repeated).to_dict() == pytest.approx({1: 2 / 3, 2: 1.0})
    assert UnrepeatedReco(1).calc(repeated) == 1.0
    assert CatalogCoverage(2).calc(reco, 10) == 5  # a b x y p
    assert CatalogCoverage(2, normalize=True).calc(reco, list("abcdefghij")) == pytest.approx(0.5)


def test_intersection_by_hand():
    reco = _reco()
    ref = pd.DataFrame({U: [1, 1, 2], I: ["z", "b", "q"], R: [1, 2, 1]})
    # top-2 of user 1 (a, b) against ref top-2 (z, b): 1/2; user 2 (x, y) against (q): 0; user 4: 0
    assert Intersection(2).calc_per_user(reco, ref).to_dict() == pytest.approx({1: 0.5, 2: 0.0, 4: 0.0})
    assert Intersection(2, ref_k=1).calc(reco, ref) == 0.0  # ref top-1 of user 1 is z only
    assert Intersection(3).calc(reco, reco) == 1.0
    assert np.isnan(Intersection(2).calc(reco, ref.iloc[:0]))
    out = calc_metrics({"inter": Intersection(2)}, reco, ref_reco={"pop": ref, "self": reco})
    assert out == pytest.approx({"inter_pop": 1 / 6, "inter_self": 1.0})
    assert calc_metrics({"inter": Intersection(2)}, reco, ref_reco=ref) == pytest.approx({"inter": 1 / 6})


# ---------------------------------------------------------------------------- per-user loops
def _naive(name, k, reco, test, prev, n_catalog, **kw):
    """Per-user Python loops from RecTools' definitions (every test row counts)."""
    lists = {u: list(g.sort_values(R)[I]) for u, g in reco[reco[R] <= k].groupby(U)}
    out = {}
    if name in ("Precision", "Recall", "HitRate", "NDCG", "MAP", "MRR", "CoveredUsers", "Accuracy", "F1Beta"):
        for user in pd.unique(test[U]):
            rows = list(test.loc[test[U] == user, I])
            ranked = lists.get(user, [])
            hits = [(ranked.index(i) + 1) for i in rows if i in ranked]  # one rank per relevant row
            tp_, n = len(hits), len(rows)
            if name == "Precision":
                out[user] = tp_ / (min(k, n) if kw.get("r_precision") else k)
            elif name == "Recall":
                out[user] = tp_ / n
            elif name == "HitRate":
                out[user] = float(tp_ > 0)
            elif name == "F1Beta":
                p, r = tp_ / k, tp_ / n
                out[user] = 0.0 if p + r == 0 else 2 * p * r / (p + r)
            elif name == "Accuracy":
                out[user] = (tp_ + n_catalog - k - (n - tp_)) / n_catalog
            elif name == "NDCG":
                dcg = sum(1 / math.log2(r + 1) for r in hits)
                m = min(k, n) if kw.get("divide_by_achievable") else k
                out[user] = dcg / sum(1 / math.log2(i + 1) for i in range(1, m + 1))
            elif name == "MAP":
                total = sum(sum(1 for h in hits if h <= r) / r for r in set(hits))
                out[user] = total / (k if kw.get("divide_by_k") else n)
            elif name == "MRR":
                out[user] = 1 / min(hits) if hits else 0.0
            elif name == "CoveredUsers":
                out[user] = float(bool(ranked))
        return out
    counts = prev[I].value_counts()
    for user, ranked in lists.items():
        if name == "AvgRecPopularity":
            out[user] = sum(counts.get(i, 0) for i in ranked) / len(ranked)
        elif name == "Serendipity":
            distinct = sorted(set(counts.values), reverse=True)
            values, weights = [], []
            for rank, item in enumerate(ranked, start=1):
                m = int(((test[U] == user) & (test[I] == item)).sum())
                p_any = (n_catalog + 1 - (distinct.index(counts[item]) + 1)) / n_catalog if item in counts else 0.0
                s = max((n_catalog + 1 - rank) / n_catalog - p_any, 0.0) if m else 0.0
                values.append(s * max(m, 1))
                weights.append(max(m, 1))
            out[user] = sum(values) / sum(weights)
        elif name == "MeanInvUserFreq":
            n_users = prev[U].nunique()
            out[user] = np.mean([-math.log2(prev.loc[prev[I] == i, U].nunique() / n_users if i in counts
                                            else 1 / n_users) for i in ranked])
    return out


def _random_case(seed):
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(40):
        items = rng.choice(30, size=int(rng.integers(0, 15)), replace=False)  # some users get nothing
        rows += [(user, int(item), rank + 1) for rank, item in enumerate(items)]
    reco = pd.DataFrame(rows, columns=[U, I, R]).sample(frac=1, random_state=seed)
    test = pd.DataFrame([(int(u), int(i)) for u in rng.choice(45, size=35, replace=False)  # some unknown to reco
                         for i in rng.choice(30, size=int(rng.integers(1, 6)), replace=False)], columns=[U, I])
    test = pd.concat([test, test.iloc[:4]])  # repeated test rows count twice, as in RecTools
    prev = pd.DataFrame({U: rng.integers(0, 50, 300), I: rng.integers(0, 35, 300)})
    return reco, test, prev


CASES = [("Precision", {}), ("Precision", {"r_precision": True}), ("Recall", {}), ("HitRate", {}), ("F1Beta", {}),
         ("Accuracy", {}), ("NDCG", {}), ("NDCG", {"divide_by_achievable": True}), ("MAP", {}),
         ("MAP", {"divide_by_k": True}), ("MRR", {}), ("CoveredUsers", {}), ("AvgRecPopularity", {}),
         ("Serendipity", {}), ("MeanInvUserFreq", {})]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k", [1, 3, 10])
@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}{kw}" for n, kw in CASES])
def test_metrics_match_per_user_loops(name, kw, k, seed):
    import seqrec.metrics as metrics_module
    reco, test, prev = _random_case(seed)
    metric = getattr(metrics_module, name)(k, **kw)
    if name == "Serendipity":
        per_user = metric.calc_per_user(reco, test, prev, 30)
    elif name in ("AvgRecPopularity", "MeanInvUserFreq"):
        per_user = metric.calc_per_user(reco, prev)
    elif name == "Accuracy":
        per_user = metric.calc_per_user(reco, test, 30)
    else:
        per_user = metric.calc_per_user(reco, test)
    expected = _naive(name, k, reco, test, prev, 30, **kw)
    assert set(per_user.index) == set(expected)
    assert per_user.to_dict() == pytest.approx(expected, abs=1e-12)
    value = calc_metrics({"m": metric}, reco, test, prev, catalog=30)["m"]
    assert value == pytest.approx(np.mean(list(expected.values())), abs=1e-12)


def test_calc_metrics_keys_and_routing():
    reco, test, prev = _random_case(4)
    metrics = {"precision@5": Precision(5), "recall@5": Recall(5), "ndcg@10": NDCG(10), "map@10": MAP(10),
               "serendipity@10": Serendipity(10), "arp@10": AvgRecPopularity(10), "covered@10": CoveredUsers(10),
               "sufficient@10": SufficientReco(10), "coverage@10": CatalogCoverage(10, normalize=True)}
    out = calc_metrics(metrics, reco, test, prev, catalog=np.arange(30))
    assert list(out) == list(metrics)
    assert all(isinstance(v, float) for v in out.values())
    assert out["ndcg@10"] == pytest.approx(NDCG(10).calc(reco, test))
    assert out["serendipity@10"] == pytest.approx(Serendipity(10).calc(reco, test, prev, 30))
    for metric, missing in ((Serendipity(2), "prev_interactions"), (AvgRecPopularity(2), "prev_interactions"),
                            (Accuracy(2), "catalog"), (CoveredUsers(2), "interactions"),
                            (Intersection(2), "ref_reco")):
        with pytest.raises(ValueError, match=f"needs {missing}"):
            calc_metrics({"m": metric}, reco, test if missing != "interactions" else None,
                         None if missing == "prev_interactions" else prev, None if missing == "catalog" else 30)
    with pytest.raises(TypeError, match="ref_reco must be"):
        calc_metrics({"m": Intersection(2)}, reco, ref_reco=[reco])


def test_options_are_validated():
    with pytest.raises(ValueError, match="divide_by_achievable must be True or False"):
        NDCG(10, divide_by_achievable="yes")
    with pytest.raises(ValueError, match="log_base must be a number > 1"):
        NDCG(10, log_base=1)
    with pytest.raises(ValueError, match="divide_by_k"):
        MAP(10, divide_by_k=1)
    with pytest.raises(ValueError, match="ref_k must be a positive integer"):
        Intersection(10, ref_k=0)
    with pytest.raises(ValueError, match="beta must be a positive number"):
        F1Beta(10, beta=0)
    with pytest.raises(ValueError, match="catalog must not be empty"):
        Serendipity(2).calc(_reco(), _test(), _prev(), [])


def test_inputs_are_not_modified():
    reco, test, prev = _random_case(5)
    copies = [df.copy() for df in (reco, test, prev)]
    calc_metrics({"ndcg": NDCG(5), "map": MAP(5), "ser": Serendipity(5), "arp": AvgRecPopularity(5),
                  "inter": Intersection(5)}, reco, test, prev, catalog=30, ref_reco=reco.iloc[::2])
    for df, copy in zip((reco, test, prev), copies):
        pd.testing.assert_frame_equal(df, copy)
