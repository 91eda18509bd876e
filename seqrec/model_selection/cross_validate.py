"""Cross-validation of several models on the folds of a splitter, as RecTools' ``cross_validate``."""

from __future__ import annotations

import typing as tp

import numpy as np
import pandas as pd

from ..columns import Columns
from ..dataset import Dataset, IdMap, build_interactions, take_feature_rows
from ..metrics import calc_metrics
from ..models.hstu import get_context
from ..types import ExternalIds
from .splitters import Splitter

__all__ = ["cross_validate", "dataset_of_rows"]

ON_UNSUPPORTED = ("raise", "warn", "ignore")


def dataset_of_rows(dataset: Dataset, rows: np.ndarray, keep_features_for_removed_entities: bool = True
                    ) -> Dataset:
    """A dataset holding the interaction rows ``rows`` of ``dataset`` (positions in
    ``dataset.get_raw_interactions()``), with new internal ids: the users and items of those rows
    first, in order of first appearance. With ``keep_features_for_removed_entities``, the users
    (items) left without interactions stay in the id map after them, with their features, when
    the dataset has user (item) features (they are "warm" for the models); otherwise they are
    dropped. The features of the kept ids are unchanged."""
    inter = dataset.interactions
    rows = np.sort(np.asarray(rows, dtype=np.int64))  # keeps each user's time order
    if len(rows) and (rows[0] < 0 or rows[-1] >= len(inter)):
        raise ValueError(f"rows must be positions of interactions 0..{len(inter) - 1}")
    users = np.repeat(np.arange(inter.n_users), inter.lengths)[rows]
    items = inter.items[rows]

    def new_ids(codes: np.ndarray, n_old: int, has_features: bool) -> tp.Tuple[np.ndarray, np.ndarray]:
        hot = pd.unique(codes)
        old_of_new = hot
        if keep_features_for_removed_entities and has_features:
            rest = np.setdiff1d(np.arange(n_old), hot)
            old_of_new = np.concatenate([hot, rest])
        new_of_old = np.full(n_old, -1, dtype=np.int64)
        new_of_old[old_of_new] = np.arange(len(old_of_new))
        return old_of_new.astype(np.int64), new_of_old

    old_users, new_user = new_ids(users, dataset.n_users, dataset.user_features is not None)
    old_items, new_item = new_ids(items, dataset.n_items, dataset.item_features is not None)
    interactions = build_interactions(new_user[users], new_item[items], len(old_users), inter.weights[rows],
                                      inter.times[rows], inter.times_are_datetimes, inter.times_are_row_order)
    return Dataset(
        user_id_map=IdMap(dataset.user_id_map.to_external(old_users)),
        item_id_map=IdMap(dataset.item_id_map.to_external(old_items)),
        interactions=interactions,
        user_features=take_feature_rows(dataset.user_features, old_users),
        item_features=take_feature_rows(dataset.item_features, old_items),
    )


def cross_validate(
    dataset: Dataset,
    splitter: Splitter,
    metrics: tp.Mapping[str, tp.Any],
    models: tp.Mapping[str, tp.Any],
    k: int,
    filter_viewed: bool,
    items_to_recommend: tp.Optional[ExternalIds] = None,
    prefer_warm_inference_over_cold: bool = True,
    ref_models: tp.Optional[tp.Sequence[str]] = None,
    validate_ref_models: bool = False,
    on_unsupported_targets: str = "warn",
) -> tp.Dict[str, tp.Any]:
    """Fit every model on the train part of every fold of ``splitter`` and compute ``metrics`` of
    its top-``k`` for the fold's test users.

    For each fold: the train rows make a dataset (:func:`dataset_of_rows`; users and items without
    train rows keep their features when ``prefer_warm_inference_over_cold``), each model is fitted
    on it and recommends to the users of the test rows (``filter_viewed``, ``items_to_recommend``,
    ``on_unsupported_targets`` as in ``recommend``; "warn" by default, so that users a model
    cannot serve are dropped with a warning and count as misses). Metrics get the test rows as
    ``interactions``, the train rows as ``prev_interactions``, the train items as ``catalog``, and
    the recommendations of ``ref_models`` as ``ref_reco`` (for ``Intersection``); reference models
    are themselves scored only with ``validate_ref_models=True``.

    Returns ``{"splits": [fold_info, ...], "metrics": [{"model": name, "i_split": i, <metric
    name>: value, ...}, ...]}``, with the fold sizes in each ``fold_info``. ``metrics`` comes
    before ``models`` in the arguments, as in RecTools.
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a seqrec Dataset, got {type(dataset).__name__}")
    if not isinstance(splitter, Splitter):
        raise TypeError(f"splitter must be a seqrec.model_selection splitter, got {type(splitter).__name__}")
    if not isinstance(metrics, tp.Mapping) or not isinstance(models, tp.Mapping):
        raise TypeError("metrics and models must be dicts name -> object")
    if not models:
        raise ValueError("models is empty")
    for name, model in models.items():
        if not (callable(getattr(model, "fit", None)) and callable(getattr(model, "recommend", None))):
            raise TypeError(f"model {name!r} has no fit/recommend methods: {model!r}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if on_unsupported_targets not in ON_UNSUPPORTED:
        raise ValueError(f"on_unsupported_targets must be one of {ON_UNSUPPORTED}, got {on_unsupported_targets!r}")
    ref_models = list(ref_models or [])
    unknown = [name for name in ref_models if name not in models]
    if unknown:
        raise ValueError(f"ref_models {unknown} are not keys of models {list(models)}")

    raw = dataset.get_raw_interactions()
    splits: tp.List[tp.Dict[str, tp.Any]] = []
    results: tp.List[tp.Dict[str, tp.Any]] = []
    for train_ids, test_ids, info in splitter.split(dataset.interactions, collect_fold_stats=True):
        splits.append(info)
        fold = dataset_of_rows(dataset, train_ids, prefer_warm_inference_over_cold)
        test = raw.iloc[np.asarray(test_ids)].reset_index(drop=True)
        prev = fold.get_raw_interactions()
        catalog = pd.unique(prev[Columns.Item])
        users = pd.unique(test[Columns.User])

        def recommend(model: tp.Any) -> pd.DataFrame:
            model.fit(fold)
            # as RecTools: a model that reads request times (HSTU) gets each user's first test time
            extra = {"context": get_context(test)} if getattr(model, "require_recommend_context", False) else {}
            return model.recommend(users=users, dataset=fold, k=k, filter_viewed=filter_viewed,
                                   items_to_recommend=items_to_recommend,
                                   on_unsupported_targets=on_unsupported_targets, **extra)

        ref_reco = {name: recommend(models[name]) for name in ref_models}
        for name, model in models.items():
            if name in ref_reco and not validate_ref_models:
                continue
            reco = ref_reco[name] if name in ref_reco else recommend(model)
            values = calc_metrics(metrics, reco, test, prev, catalog, ref_reco=ref_reco or None)
            results.append({"model": name, "i_split": info["i_split"], **values})
    return {"splits": splits, "metrics": results}
