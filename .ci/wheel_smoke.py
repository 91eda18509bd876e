"""Smoke test of an installed seqrec wheel, run by ``make wheel-check`` from outside the source tree.

It fails when the installed package lacks a module, a declared dependency or its data files.
"""

from __future__ import annotations

import sys
import tempfile
from importlib import metadata, resources
from pathlib import Path

import numpy as np
import torch

import seqrec
from seqrec import Columns, Dataset, SASRecModel, load_model
from seqrec.datasets import load_movielens_small


def main() -> int:
    torch.set_num_threads(1)
    site = Path(seqrec.__file__).resolve().parent
    if "site-packages" not in site.parts:
        raise SystemExit(f"seqrec was imported from {site}, not from an installed wheel")
    if metadata.version("seqrec") != seqrec.__version__:
        raise SystemExit(f"metadata version {metadata.version('seqrec')} != seqrec.__version__ {seqrec.__version__}")
    licence = resources.files("seqrec.datasets").joinpath("data", "README.txt").read_text(encoding="utf-8")
    if "MovieLens" not in licence:
        raise SystemExit("the embedded data's README (its licence) is missing from the wheel")
    dist = metadata.distribution("seqrec")
    licence_files = [f for f in (dist.files or []) if f.name == "LICENSE"]
    if not licence_files or "Apache License" not in licence_files[0].read_text(encoding="utf-8"):
        raise SystemExit("the wheel's metadata lacks the project's LICENSE (Apache-2.0)")
    if dist.metadata.get("License-Expression") != "Apache-2.0":
        raise SystemExit(f"License-Expression is {dist.metadata.get('License-Expression')!r}, not 'Apache-2.0'")

    data = load_movielens_small()
    dataset = Dataset.construct(data.interactions, item_features_df=data.item_features, cat_item_features=["genre"])
    model = SASRecModel(n_factors=16, n_blocks=1, n_heads=1, session_max_len=20, batch_size=256, epochs=1,
                        random_state=0, recommend_torch_device="cpu")
    model.fit(dataset)
    users = data.interactions[Columns.User].unique()[:5]
    reco = model.recommend(users=users, dataset=dataset, k=10, filter_viewed=True)
    if len(reco) != 10 * len(users) or list(reco[Columns.User].unique()) != list(users):
        raise SystemExit(f"unexpected recommendations:\n{reco}")
    seen = reco.merge(data.interactions, on=[Columns.User, Columns.Item])
    if len(seen):
        raise SystemExit(f"filter_viewed let viewed items through:\n{seen}")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.seqrec"
        model.save(path)
        again = load_model(path).recommend(users=users, dataset=dataset, k=10, filter_viewed=True)
    if not np.array_equal(again[Columns.Item].to_numpy(), reco[Columns.Item].to_numpy()):
        raise SystemExit("the loaded model recommends differently")
    print(f"wheel smoke test passed: seqrec {seqrec.__version__} from {site}, {len(reco)} recommendations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
