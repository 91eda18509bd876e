"""benchmarks/parity.py: its table (verdict against RecTools' mean minus one std, ablation rows
compared with RecTools' default rows, paired epoch times) and its per-epoch validation callback."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from seqrec import Columns, Dataset, SASRecModel
from seqrec.batching import take_rows
from seqrec.nn.item_net import IdEmbeddingsItemNet

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def parity():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import parity as module
    return module


def _rec(impl, seed, ndcg, variant="default", epoch_s=(1.0, 1.0)):
    return {"dataset": "d", "setting": "s", "model": "sasrec", "loss": "gbce256", "variant": variant, "epochs": 2,
            "impl": impl, "seed": seed, "metrics": {"NDCG@10": ndcg, "HR@10": 2 * ndcg},
            "curve": [ndcg / 2, ndcg], "epoch_train_s": list(epoch_s)}


@pytest.mark.parametrize("ours,verdict", [((0.30, 0.32), "above"), ((0.24, 0.26), "within 1 std"),
                                          ((0.10, 0.12), "BELOW")])
def test_verdict(parity, ours, verdict):
    # RecTools: mean 0.30, std 0.0707
    records = [_rec("rectools", 0, 0.25), _rec("rectools", 1, 0.35)]
    records += [_rec("seqrec", 0, ours[0]), _rec("seqrec", 1, ours[1])]
    row = parity.markdown_table(records).splitlines()[2]
    assert f"| {verdict} |" in row


def test_variant_is_compared_with_rectools_default_and_times_are_paired(parity):
    records = [_rec("rectools", 0, 0.2, epoch_s=(4.0, 4.0)), _rec("rectools", 1, 0.2, epoch_s=(6.0, 6.0)),
               _rec("seqrec", 0, 0.3, variant="v", epoch_s=(1.0, 1.0)), _rec("seqrec", 1, 0.3, variant="v",
                                                                          epoch_s=(3.0, 3.0))]
    lines = parity.markdown_table(records).splitlines()[2:]
    row = next(line for line in lines if "| v |" in line)
    assert "0.2000 ± 0.0000" in row and "| above |" in row
    # per seed 4/1 and 6/3: mean ratio 3.00x; mean epoch times 2.0 and 5.0 s
    assert "2.0 / 5.0 (3.00x)" in row


def test_parse_value(parity):
    from seqrec import SASRecTransformerLayers
    assert parity.parse_value("SASRecTransformerLayers") is SASRecTransformerLayers
    assert parity.parse_value("0.5") == 0.5 and parity.parse_value("true") is True
    assert parity.parse_value("cosine") == "cosine"
    from ablation_layers import PaddingSinkSASRecLayers  # benchmarks/ is on the path (fixture)
    assert parity.parse_value("ablation_layers:PaddingSinkSASRecLayers") is PaddingSinkSASRecLayers
    with pytest.raises(SystemExit, match="no class"):
        parity.parse_value("ablation_layers:NoSuchLayers")
    args = parity.parse_args(["--rectools-param", "use_key_padding_mask=true"])
    assert args.rectools_params == {"use_key_padding_mask": True} and "rectools:use_key_padding_mask" in args.variant


def test_padding_sink_layers_reproduce_left_padding_without_a_key_mask(parity):
    """The ablation stack on a right-padded sequence gives, at its real positions, what the same
    blocks give on the left-padded sequence with plain causal attention and the padding rows zeroed
    before every block (RecTools' SASRec layers without a key padding mask); a full sequence is
    unchanged."""
    from ablation_layers import PaddingSinkSASRecLayers
    from seqrec import SASRecTransformerLayers
    from seqrec.nn.layers.base import SelfAttention

    torch.manual_seed(0)
    sink = PaddingSinkSASRecLayers(2, 8, 2, 0.0).eval()
    for block in sink.blocks:
        torch.nn.init.normal_(block.attn.qkv.bias)  # nonzero padding keys and values
    plain = SASRecTransformerLayers(2, 8, 2, 0.0).eval()
    plain.load_state_dict(sink.state_dict())
    x = torch.randn(2, 5, 8)
    x[1, 3:] = 0  # sequence 1: 3 real tokens, right padding
    with torch.no_grad():
        got = sink(x, None, True)
        torch.testing.assert_close(got[0], plain(x, None, True)[0])  # no padding: no sink
        left = torch.zeros(1, 5, 8)
        left[0, 2:] = x[1, :3]
        real = torch.zeros(1, 5, 1)
        real[0, 2:] = 1
        h = left
        for block in sink.blocks:
            h = h * real
            q = block.ln_attn(h)
            z = block.ln_ff(q + SelfAttention.forward(block.attn, q, None, True, kv=h))
            h = z + block.ff(z)
        expected = sink.ln_out(h * real)[0, 2:]
    torch.testing.assert_close(got[1, :3], expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got[1, :3], plain(x, None, True)[1, :3], atol=1e-3)  # the sink matters


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_epoch_validation_scores_the_network(parity, similarity):
    """The callback's top-k equals the fitted model's own recommend, with the model's similarity,
    after mapping the histories to the model's catalog (as run_seqrec does)."""
    from conftest import make_cycle_interactions
    df = make_cycle_interactions(n_users=60, min_len=3, max_len=12)
    ds = Dataset.construct(df)
    model = SASRecModel(n_factors=16, n_heads=2, n_blocks=1, session_max_len=8, epochs=2, lr=0.01,
                        item_net_block_types=(IdEmbeddingsItemNet,), random_state=0, dropout_rate=0.0,
                        similarity=similarity).fit(ds)
    users = np.arange(ds.n_users)
    indptr, items = take_rows(ds.interactions.indptr, ds.interactions.items, users)
    targets = np.arange(ds.n_users) % ds.n_items  # arbitrary targets: the metric must still agree
    cb = parity.EpochValidation(model, indptr, items, targets, 3, "test")
    cb.map_items(ds)
    top = cb._top_k(model.net_)
    reco = model.recommend(ds.user_id_map.external_ids, ds, k=3, filter_viewed=True)
    reco[Columns.User] = ds.user_id_map.to_internal(reco[Columns.User])
    reco[Columns.Item] = ds.item_id_map.to_internal(reco[Columns.Item])
    pd.testing.assert_frame_equal(top.sort_values([Columns.User, Columns.Rank]).reset_index(drop=True),
                                  reco[[Columns.User, Columns.Item, Columns.Rank]].astype(np.int64)
                                  .sort_values([Columns.User, Columns.Rank]).reset_index(drop=True),
                                  check_dtype=False)


def test_epoch_validation_reads_times_for_hstu(parity):
    """With HSTU's time attention the callback ranks each history at its user's request time, as
    ``recommend(..., context=...)`` does: the same top-k for the same request times, and another
    top-k for other times (so the times are read, not ignored)."""
    from conftest import make_cycle_interactions
    from seqrec import HSTUModel
    df = make_cycle_interactions(n_users=60, min_len=3, max_len=12)
    rng = np.random.default_rng(0)
    df[Columns.Datetime] = df[Columns.Datetime] + pd.to_timedelta(rng.integers(0, 10**6, len(df)), unit="s")
    ds = Dataset.construct(df)
    model = HSTUModel(n_factors=16, n_heads=2, n_blocks=1, session_max_len=8, epochs=2, lr=0.01,
                      item_net_block_types=(IdEmbeddingsItemNet,), random_state=0, dropout_rate=0.0,
                      relative_time_attention=True).fit(ds)
    users = np.arange(ds.n_users)
    inter = ds.interactions
    indptr, items = take_rows(inter.indptr, inter.items, users)
    _, positions = take_rows(inter.indptr, np.arange(len(inter.items)), users)
    times = model._sequence_times(inter, positions)
    external = ds.user_id_map.external_ids

    def both(gap_s):
        last = df.groupby(Columns.User)[Columns.Datetime].max().loc[external]
        context = pd.DataFrame({Columns.User: external, Columns.Datetime: last.to_numpy() + pd.to_timedelta(gap_s, unit="s")})
        query = model._request_times(ds, external, indptr, times, context)
        cb = parity.EpochValidation(model, indptr, items, np.zeros(ds.n_users, np.int64), 3, "test", times=times,
                                    query=query)
        cb.map_items(ds)
        top = cb._top_k(model.net_).sort_values([Columns.User, Columns.Rank]).reset_index(drop=True)
        reco = model.recommend(external, ds, k=3, filter_viewed=True, context=context)
        reco[Columns.User] = ds.user_id_map.to_internal(reco[Columns.User])
        reco[Columns.Item] = ds.item_id_map.to_internal(reco[Columns.Item])
        reco = reco[[Columns.User, Columns.Item, Columns.Rank]].astype(np.int64)
        return top, reco.sort_values([Columns.User, Columns.Rank]).reset_index(drop=True)

    soon, soon_reco = both(rng.integers(1, 60, ds.n_users))
    pd.testing.assert_frame_equal(soon, soon_reco, check_dtype=False)
    late, late_reco = both(np.full(ds.n_users, 10**8))
    pd.testing.assert_frame_equal(late, late_reco, check_dtype=False)
    assert not soon.equals(late)


def test_paper_ndcg(parity):
    """One target per user: NDCG@10 is DCG / 1 (papers), not DCG / ideal DCG of 10 hits."""
    old = dict(_rec("seqrec", 0, 0.01), metrics={"NDCG@10": 0.002, "HR@10": 0.02}, curve=[0.001])
    new = parity.paper_ndcg(old)
    assert new["metrics"]["NDCG@10"] == pytest.approx(0.002 * 4.5436, rel=1e-4)
    assert new["curve"][0] == pytest.approx(0.001 * 4.5436, rel=1e-4)
    kept = parity.paper_ndcg(dict(old, metrics={"NDCG@10": 0.01, "HR@10": 0.02}))
    assert kept["metrics"]["NDCG@10"] == 0.01
    assert parity.METRICS["NDCG@10"].divide_by_achievable


def test_left_padded_layers_equal_the_padding_sink_without_dropout(parity):
    """The literal left-padded stack and the one-sink-key stack agree at every real position when
    dropout is off (they differ only in how the attention dropout treats the padding keys)."""
    from ablation_layers import LeftPaddedSASRecLayers, PaddingSinkSASRecLayers

    torch.manual_seed(0)
    left = LeftPaddedSASRecLayers(2, 8, 2, 0.0).eval()
    for block in left.blocks:
        torch.nn.init.normal_(block.attn.qkv.bias)
    sink = PaddingSinkSASRecLayers(2, 8, 2, 0.0).eval()
    sink.load_state_dict(left.state_dict())
    x = torch.randn(3, 6, 8)
    x[1, 4:] = 0
    x[2, 1:] = 0
    with torch.no_grad():
        got, expected = left(x, None, True), sink(x, None, True)
    for b, n in enumerate((6, 4, 1)):
        torch.testing.assert_close(got[b, :n], expected[b, :n], atol=1e-5, rtol=1e-5)


def test_late_validation_column_and_pooling(parity, tmp_path):
    import json
    a = [_rec("seqrec", 0, 0.2), _rec("rectools", 0, 0.3)]
    a[0]["curve"] = [0.1, 0.3, 0.2, 0.4]  # last half: 0.3
    a[1]["curve"] = [0.5, 0.1]  # last half: 0.1
    b = [_rec("seqrec", 1, 0.2)]
    b[0]["curve"] = [0.0, 0.0, 0.1, 0.5]  # 0.3
    for name, recs in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps({"records": recs}))
    assert parity.late_validation(a[0]) == pytest.approx(0.3)
    records = parity.pooled_records([tmp_path / "a", tmp_path / "b"])
    row = parity.markdown_table(records).splitlines()[2]
    assert "| 2 / 1 |" in row and "| 0.3000 ± 0.0000 / 0.1000 |" in row
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "results.json").write_text(json.dumps({"records": b}))
    with pytest.raises(ValueError, match="in both"):  # seed 1 twice
        parity.pooled_records([tmp_path / "b", tmp_path / "c"])
