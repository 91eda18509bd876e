"""Packaging facts that a build would get wrong silently: the version, the licence metadata, the
package data (the embedded data set and its licence README) and the documentation's navigation.

Building and installing the wheel itself is ``make wheel-check`` (too slow for a unit test).
"""

import fnmatch
import re
from importlib import resources
from pathlib import Path

import pytest

import seqrec

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = Path(__file__).resolve().parents[1]
DATA_FILES = ("ratings.csv.gz", "movies.csv.gz", "README.txt")


@pytest.fixture(scope="module")
def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def test_version_matches_pyproject(pyproject: dict) -> None:
    assert seqrec.__version__ == pyproject["project"]["version"]


def test_licence_is_an_spdx_string_with_a_setuptools_that_reads_it(pyproject: dict) -> None:
    from packaging.requirements import Requirement

    assert pyproject["project"]["license"] == "Apache-2.0"  # a TOML table is deprecated
    (setuptools,) = [Requirement(r) for r in pyproject["build-system"]["requires"]
                     if Requirement(r).name == "setuptools"]
    # PEP 639 licence expressions arrived in setuptools 77
    assert not setuptools.specifier.contains("76.9") and setuptools.specifier.contains("77.0")


def test_the_repository_carries_the_licence_it_declares() -> None:
    text = (Path(__file__).resolve().parents[1] / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and "the seqrec authors" in text


def test_embedded_data_and_its_licence_are_found_as_package_resources() -> None:
    data = resources.files("seqrec.datasets").joinpath("data")
    for name in DATA_FILES:
        assert data.joinpath(name).is_file(), name
    readme = data.joinpath("README.txt").read_text(encoding="utf-8")
    assert "MovieLens" in readme and "Usage License" in readme


def test_package_data_globs_cover_every_data_file(pyproject: dict) -> None:
    # every file of the data folder must match a package-data pattern, or the wheel drops it
    patterns = pyproject["tool"]["setuptools"]["package-data"]["seqrec.datasets"]
    data_dir = ROOT / "seqrec" / "datasets" / "data"
    files = sorted(p.relative_to(data_dir.parent).as_posix() for p in data_dir.iterdir() if p.is_file())
    assert set(DATA_FILES) <= {Path(f).name for f in files}
    uncovered = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert uncovered == []
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["seqrec"]
    assert (ROOT / "seqrec" / "py.typed").is_file()


def _nav_pages(nav: list) -> list:
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages.extend(_nav_pages(value) if isinstance(value, list) else [value])
    return pages


def test_docs_nav_and_pages_agree() -> None:
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = _nav_pages(config["nav"])
    docs = ROOT / "docs"
    missing = [p for p in nav if not (docs / p).is_file()]
    assert missing == [], "pages in mkdocs.yml's nav that do not exist"
    excluded = [line.strip().rstrip("/") for line in config.get("exclude_docs", "").splitlines() if line.strip()]
    pages = sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*.md")
                   if not any(p.relative_to(docs).as_posix().startswith(e + "/") for e in excluded))
    assert sorted(set(pages) - set(nav)) == [], "pages under docs/ left out of mkdocs.yml's nav"
    assert len(nav) == len(set(nav))


def test_every_api_page_documents_objects_that_exist() -> None:
    # a renamed or removed object makes `mkdocs build` fail; this says which, without building
    import importlib

    for page in sorted((ROOT / "docs" / "api").glob("*.md")):
        for path in re.findall(r"^::: ([\w.]+)$", page.read_text(encoding="utf-8"), flags=re.M):
            parts = path.split(".")
            for i in range(len(parts), 0, -1):  # the longest importable module prefix
                try:
                    obj = importlib.import_module(".".join(parts[:i]))
                except ImportError:
                    continue
                for attr in parts[i:]:
                    assert hasattr(obj, attr), f"{page.name}: {path}"
                    obj = getattr(obj, attr)
                break
            else:
                pytest.fail(f"{page.name}: {path} is not importable")
