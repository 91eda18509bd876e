"""benchmarks/scale.py --smoke: every phase runs and the table, the JSON and the plot are written."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))


def test_scale_smoke_runs_every_phase(tmp_path):
    scale = pytest.importorskip("scale")
    summary = scale.main(["--smoke", "--in-process", "--threads", "1", "--out-dir", str(tmp_path),
                          "--plot", str(tmp_path / "scale.png")])
    (size,) = summary["sizes"]
    runs = size["runs"]["seqrec"]
    assert set(runs) == set(scale.PHASES)
    for phase, run in runs.items():
        assert run["seconds"] > 0 and run["peak_rss"] > 0, phase
    epoch = runs["softmax"]
    assert epoch["steps"] == 3 and epoch["batches_per_epoch"] == -(-size["n_users"] // scale.SMOKE_MODEL["batch_size"])
    assert runs["recommend"]["users"] == size["n_users"] and runs["recommend"]["rows"] == 10 * size["n_users"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["sizes"][0]["n_interactions"] == 20_000
    assert "Dataset.construct" in (tmp_path / "table.md").read_text()
    assert (tmp_path / "scale.png").stat().st_size > 1000


def test_sizes_are_parsed():
    scale = pytest.importorskip("scale")
    assert scale.parse_sizes("10M:1M,3M:100k,5000:20") == [(10_000_000, 1_000_000), (3_000_000, 100_000), (5000, 20)]
    with pytest.raises(ValueError, match="is not INTERACTIONS:ITEMS"):
        scale.parse_sizes("10M")


def test_saved_runs_are_merged_into_one_table(tmp_path):
    scale = pytest.importorskip("scale")
    run = {"phase": "construct", "seconds": 1.5, "peak_rss": 2**30}
    for name, lib in (("a", "seqrec"), ("b", "rectools")):
        summary = {"hardware": "cpu", "steps": 3, "command": "x", "when_utc": "t",
                   "sizes": [{"n_interactions": 1000, "n_items": 10, "n_users": 20,
                              "runs": {lib: {"construct": run, "softmax": {"failed": "did not finish in 5 s"}}}}]}
        (tmp_path / f"{name}.json").write_text(json.dumps(summary))
    out = tmp_path / "out"
    scale.main(["--render", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out-dir", str(out)])
    text = (out / "table.md").read_text()
    assert "| seqrec | RecTools 0.19 |" in text
    assert "| 1k x 10 items | 20 | Dataset.construct | 1.50 s, 1.00 GiB | 1.50 s, 1.00 GiB |" in text
    assert "did not finish in 5 s" in text and (out / "scale.png").exists()
