"""The ``seqrec`` command line: train, recommend, similar-items, evaluate, export and the demo.

Every command reads its data through :mod:`seqrec.io` (CSV / Parquet, configurable column names)
and every error is reported as one line on stderr with a non-zero exit code. ``main(argv)``
returns the exit code, so the commands can be run from Python (tests do).

A training run is a folder:

- ``model.seqrec``: the model (``model.save``);
- ``config.yaml``: ``model.get_config(simple_types=True)``, reusable with ``--config``;
- ``history.csv``: the per-epoch history (``model.history_``);
- ``run.json``: the data options (file, column names, item features) that the other commands
  reuse, so they read the data the same way;
- ``logs/``: the Lightning CSV log (and ``tensorboard/`` or MLflow's ``mlruns/`` with ``--logger``).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import json
import math
import os
import sys
import typing as tp
import warnings
from pathlib import Path

import typer
import yaml

from . import __version__

MODEL_FILE = "model.seqrec"
CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.csv"
RUN_FILE = "run.json"
LOG_DIR = "logs"
LOGGERS = ("csv", "tensorboard", "mlflow")
VALIDATIONS = ("none", "loo")
ON_UNSUPPORTED = ("raise", "warn", "ignore")
# model modules that may be absent from an installation (they are listed when importable)
_OPTIONAL_MODEL_MODULES = ("seqrec.models.hstu",)


class CliError(ValueError):
    """A user error the command line reports as one line."""


# ----------------------------------------------------------------- models
def model_classes() -> tp.Dict[str, type]:
    """The transformer model classes by command-line name (``SASRecModel`` -> ``"sasrec"``): every
    ``TransformerModelBase`` subclass defined in ``seqrec.models``, optional modules included when
    they import."""
    from .models import TransformerModelBase

    for module in _OPTIONAL_MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    found: tp.Dict[str, type] = {}
    todo = list(TransformerModelBase.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("seqrec.models."):
            name = cls.__name__.lower()
            found[name[: -len("model")] if name.endswith("model") else name] = cls
    return dict(sorted(found.items()))


def _model_class(name: str) -> type:
    classes = model_classes()
    if name not in classes:
        raise CliError(f"--model: unknown model {name!r}; allowed: {list(classes)}")
    return classes[name]


def _cli_name(cls: type) -> str:
    for name, value in model_classes().items():
        if value is cls:
            return name
    return cls.__name__


# ----------------------------------------------------------------- configs and --set
def read_config_file(path: str) -> tp.Dict[str, tp.Any]:
    """A model config from a YAML or JSON file (nested as ``get_config(simple_types=True)``, or flat
    with dotted keys as ``get_params(simple_types=True)``)."""
    from .config import unflatten

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--config: no such file {path!r}")
    suffix = p.suffix.lower()
    text = p.read_text(encoding="utf-8")
    if suffix == ".json":
        try:
            config = json.loads(text)
        except json.JSONDecodeError as e:
            raise CliError(f"--config {path!r} is not valid JSON: {e}") from None
    elif suffix in (".yaml", ".yml"):
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise CliError(f"--config {path!r} is not valid YAML: {_one_line(e)}") from None
    else:
        raise CliError(f"--config {path!r}: unknown file type {suffix or '(no extension)'!r}; "
                       "allowed: .yaml, .yml, .json")
    if not isinstance(config, dict):
        raise CliError(f"--config {path!r} must hold a mapping of parameters, got {type(config).__name__}")
    bad = [k for k in config if not isinstance(k, str)]
    if bad:
        raise CliError(f"--config {path!r}: keys must be parameter names (strings), got {bad[0]!r}")
    return unflatten(config)


def _parse_value(raw: str) -> tp.Any:
    """A ``--set`` value typed as YAML reads it; numbers in exponent form (``1e-3``, which YAML 1.1
    reads as text) are numbers too."""
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if math.isfinite(number):
            return number
    return value


def apply_overrides(params: tp.Dict[str, tp.Any], overrides: tp.Sequence[str], cls: type) -> tp.Dict[str, tp.Any]:
    """Flat parameters (``get_params(simple_types=True)``) with ``key=value`` overrides applied.

    Keys are the flat dotted names (``lr``, ``get_val_mask_func_kwargs.val_users``); values are
    parsed as YAML (``0.01`` a float, ``[a, b]`` a list, ``null`` None). Unknown keys are errors.
    """
    allowed = [p for p in cls._param_names()]  # type: ignore[attr-defined]
    out = dict(params)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CliError(f"--set {item!r}: expected key=value, e.g. --set lr=0.01")
        top = key.split(".")[0]
        if key == "cls":
            raise CliError("--set cls: choose the model class with --model")
        if top not in allowed:
            near = difflib.get_close_matches(top, allowed, n=3)
            hint = f"; did you mean {near}?" if near else ""
            raise CliError(f"--set: unknown parameter {key!r} for {cls.__name__}{hint} (allowed: {allowed})")
        if "." in key and not top.endswith("_kwargs"):
            raise CliError(f"--set {key!r}: {top!r} takes a plain value, not sub-keys; only the *_kwargs "
                           "parameters have dotted keys")
        try:
            value = _parse_value(raw)
        except yaml.YAMLError as e:
            raise CliError(f"--set {key}: cannot read {raw!r} as a value: {_one_line(e)}") from None
        # the new key replaces whatever was stored at it, above it or below it
        parts = key.split(".")
        for i in range(1, len(parts)):
            out.pop(".".join(parts[:i]), None)
        for existing in [k for k in out if k.startswith(key + ".")]:
            del out[existing]
        out[key] = value
    return out


def build_model(model_name: tp.Optional[str], config_path: tp.Optional[str], overrides: tp.Sequence[str],
                val: tp.Optional[str] = None) -> tp.Any:
    """The model of ``--model``, ``--config``, ``--val`` and ``--set`` (in that order of precedence,
    lowest first). ``val``: None keeps the config's validation, ``"none"`` removes it, ``"loo"`` sets
    leave-one-out."""
    from .config import _resolve_cls, from_config, from_params
    from .registry import name_of
    from .validation import leave_one_out_mask

    if val is not None and val not in VALIDATIONS:
        raise CliError(f"--val: unknown validation {val!r}; allowed: {list(VALIDATIONS)}")
    cls = _model_class(model_name) if model_name is not None else None
    if config_path is not None:
        config = read_config_file(config_path)
        named = config.get("cls")
        if cls is not None and named is not None:
            if _resolve_cls(named) is not cls:
                raise CliError(f"--model {model_name} contradicts the config's cls {named!r}")
        if cls is None and named is None:
            cls = _model_class("sasrec")
        model = from_config(cls, config)
    else:
        model = (cls or _model_class("sasrec"))()
    params = model.get_params(simple_types=True)
    if val is not None:
        params["get_val_mask_func"] = name_of(leave_one_out_mask) if val == "loo" else None
    params = apply_overrides(params, overrides, type(model))
    return from_params(type(model), params)


# ----------------------------------------------------------------- trainer and loggers
def _check_logger(name: str) -> None:
    if name not in LOGGERS:
        raise CliError(f"--logger: unknown logger {name!r}; allowed: {list(LOGGERS)}")
    needs = {"tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow",)}.get(name, ())
    if needs and not any(importlib.util.find_spec(pkg) is not None for pkg in needs):
        raise CliError(f"--logger {name} needs the {needs[0]} package, which is not installed: "
                       f"pip install {needs[0]}")


def cli_trainer(max_epochs: int, min_epochs: int, deterministic: bool, log_dir: str,
                loggers: tp.Sequence[str] = ("csv",), progress_bar: bool = True) -> tp.Any:
    """The trainer of ``seqrec train`` (passed as the model's ``get_trainer_func``): seqrec's default
    trainer plus Lightning loggers writing under ``log_dir`` and the progress bar."""
    import lightning.pytorch as L
    from lightning.pytorch import loggers as pl_loggers

    made: tp.List[tp.Any] = []
    for name in loggers:
        if name == "csv":
            made.append(pl_loggers.CSVLogger(save_dir=log_dir, name=LOG_DIR))
        elif name == "tensorboard":
            made.append(pl_loggers.TensorBoardLogger(save_dir=log_dir, name="tensorboard"))
        elif name == "mlflow":
            uri = os.environ.get("MLFLOW_TRACKING_URI") or Path(log_dir, "mlruns").resolve().as_uri()
            made.append(pl_loggers.MLFlowLogger(experiment_name="seqrec", tracking_uri=uri))
        else:
            raise ValueError(f"Unknown logger {name!r}; allowed: {LOGGERS}")
    return L.Trainer(
        max_epochs=max_epochs,
        min_epochs=min_epochs,
        deterministic=deterministic,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        logger=made or False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        devices=1,
    )


def _fit_with_logs(model: tp.Any, dataset: tp.Any, run_dir: Path, loggers: tp.Sequence[str], progress: bool) -> None:
    """Fit with the command line's trainer; the model's own trainer options come back afterwards,
    so the saved model and config do not depend on this run's folders."""
    saved = {"get_trainer_func": model.get_trainer_func, "get_trainer_func_kwargs": model.get_trainer_func_kwargs}
    stopping = model.early_stopping is not None
    kwargs = dict(max_epochs=model.epochs, min_epochs=1 if stopping else model.epochs,
                  deterministic=model.deterministic, log_dir=str(run_dir), loggers=list(loggers), progress_bar=progress)
    model.set_params(get_trainer_func=cli_trainer, get_trainer_func_kwargs=kwargs)
    try:
        model.fit(dataset)
    finally:
        model.set_params(**saved)


# ----------------------------------------------------------------- data options
@dataclasses.dataclass
class DataOptions:
    """How a command reads the data; stored in ``run.json`` by ``train``."""

    data: tp.Optional[str] = None
    user_col: str = "user_id"
    item_col: str = "item_id"
    time_col: tp.Optional[str] = None
    weight_col: tp.Optional[str] = None
    time_unit: str = "s"
    item_features: tp.Optional[str] = None
    cat_features: tp.List[str] = dataclasses.field(default_factory=list)
    feature_sep: tp.Optional[str] = None

    def merged(self, **given: tp.Any) -> "DataOptions":
        """These options with the values given on the command line (not None) taking precedence;
        paths made absolute."""
        values = dataclasses.asdict(self)
        for key, value in given.items():
            if value is not None:
                values[key] = value
        if isinstance(values["cat_features"], str):
            values["cat_features"] = [c.strip() for c in values["cat_features"].split(",") if c.strip()]
        for key in ("data", "item_features"):
            if values[key] is not None:
                values[key] = os.path.abspath(values[key])
        return DataOptions(**values)

    def read_interactions(self) -> tp.Any:
        from .io import read_interactions

        if self.data is None:
            raise CliError("--data is required (the interactions file)")
        return read_interactions(self.data, user_col=self.user_col, item_col=self.item_col, time_col=self.time_col,
                                 weight_col=self.weight_col, time_unit=self.time_unit)

    def read_item_features(self) -> tp.Any:
        from .io import read_item_features

        if self.item_features is None:
            if self.cat_features:
                raise CliError(f"--cat-features {','.join(self.cat_features)} given without --item-features")
            return None
        return read_item_features(self.item_features, item_col=self.item_col, cat_features=self.cat_features,
                                  sep=self.feature_sep)

    def dataset(self, with_features: bool = True) -> tp.Any:
        from .dataset import Dataset

        features = self.read_item_features() if with_features else None
        return Dataset.construct(self.read_interactions(), item_features_df=features,
                                 cat_item_features=self.cat_features if features is not None else ())


def _run_dir_files(path: str) -> tp.Tuple[Path, tp.Optional[Path]]:
    """The model file and ``run.json`` (None when absent) of ``--model``: a run folder or a model file."""
    p = Path(path)
    if p.is_dir():
        model_file = p / MODEL_FILE
        if not model_file.is_file():
            raise FileNotFoundError(f"--model {path!r} is a folder without {MODEL_FILE}: not a seqrec train run")
        run = p / RUN_FILE
        return model_file, run if run.is_file() else None
    if not p.is_file():
        raise FileNotFoundError(f"--model: no such run folder or model file {path!r}")
    return p, None


def load_run(path: str) -> tp.Tuple[tp.Any, DataOptions]:
    """The model of a run folder (or a model file) and its data options."""
    from .persistence import load_model

    model_file, run_file = _run_dir_files(path)
    model_classes()  # optional model modules register their classes before loading
    model = load_model(model_file)
    options = DataOptions()
    if run_file is not None:
        try:
            stored = json.loads(run_file.read_text(encoding="utf-8"))["data_options"]
            options = DataOptions(**stored)
        except (ValueError, KeyError, TypeError) as e:
            raise CliError(f"{os.fspath(run_file)!r} is not a readable run description: {_one_line(e)}") from None
    return model, options


def _ids_like(values: tp.Any, known: tp.Any) -> tp.Any:
    """``values`` converted to the type of the ``known`` ids where they differ (``"7"`` -> 7 when the
    data's ids are numbers, 7 -> ``"7"`` when they are text)."""
    import numpy as np
    import pandas as pd

    values = pd.Series(np.asarray(values, dtype=object) if not isinstance(values, pd.Series) else values)
    known_kind = pd.Index(known).dtype.kind
    if known_kind in "iu":
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.notna().all() and (numbers == numbers.round()).all():
            return numbers.astype(np.int64).to_numpy()
    elif known_kind in "OUT" or pd.api.types.is_string_dtype(pd.Index(known)):
        return values.astype(str).to_numpy(dtype=object)
    return values.to_numpy()


def _target_ids(file: tp.Optional[str], ids: tp.Optional[str], all_: bool, col: str, what: str,
                known: tp.Any) -> tp.Any:
    from .io import read_ids

    given = [name for name, v in ((f"--{what}", file), (f"--{what[:-1]}-ids", ids), ("--all", all_)) if v]
    if len(given) != 1:
        raise CliError(f"give exactly one of --{what} FILE, --{what[:-1]}-ids ID,ID,... or --all"
                       + (f" (got {' and '.join(given)})" if given else ""))
    if all_:
        return known
    if ids is not None:
        values = [v.strip() for v in ids.split(",") if v.strip()]
        if not values:
            raise CliError(f"--{what[:-1]}-ids is empty")
        return _ids_like(values, known)
    return _ids_like(read_ids(file, col, what), known)


# ----------------------------------------------------------------- the app
app = typer.Typer(name="seqrec", help="Sequential recommendation with transformers: train, recommend, evaluate.",
                  add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)

DATA_HELP = "Interactions file (.csv, .tsv, .parquet)."
DataOpt = tp.Annotated[tp.Optional[str], typer.Option("--data", metavar="FILE", help=DATA_HELP)]
UserColOpt = tp.Annotated[tp.Optional[str], typer.Option(
    "--user-col", metavar="NAME", help="User id column. Default: user_id.")]
ItemColOpt = tp.Annotated[tp.Optional[str], typer.Option(
    "--item-col", metavar="NAME", help="Item id column. Default: item_id.")]
TimeColOpt = tp.Annotated[tp.Optional[str], typer.Option(
    "--time-col", metavar="NAME", help="Time column (datetimes, unix timestamps or ISO strings). "
                                       "Default: datetime when present, else the row order.")]
WeightColOpt = tp.Annotated[tp.Optional[str], typer.Option(
    "--weight-col", metavar="NAME", help="Weight column. Default: weight when present, else 1.")]
TimeUnitOpt = tp.Annotated[tp.Optional[str], typer.Option(
    "--time-unit", metavar="UNIT", help="Unit of numeric timestamps: s, ms, us or ns. Default: s.")]
ItemFeaturesOpt = tp.Annotated[tp.Optional[str], typer.Option(
    "--item-features", metavar="FILE", help="Item features file: flat (id, value, feature) or one row per item "
                                            "with a column per feature.")]
CatFeaturesOpt = tp.Annotated[tp.Optional[str], typer.Option(
    "--cat-features", metavar="A,B", help="Comma-separated categorical features, e.g. genre,country.")]
FeatureSepOpt = tp.Annotated[tp.Optional[str], typer.Option(
    "--feature-sep", metavar="SEP", help="Separator of several categories in one cell, e.g. '|' for Action|Comedy.")]
RunOpt = tp.Annotated[str, typer.Option(
    "--model", metavar="RUN", help="A run folder written by seqrec train (or a model file).")]


def _version_callback(value: bool) -> None:
    if value:
        print(f"seqrec {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: tp.Annotated[bool, typer.Option("--version", callback=_version_callback, is_eager=True,
                                                   help="Print the version and exit.")] = False) -> None:
    """Sequential recommendation with transformers: train, recommend, evaluate.

    Every command has --help with an example; seqrec demo runs the README's example.
    """


@app.command()
def train(
    out: tp.Annotated[str, typer.Option("--out", metavar="DIR", help="Run folder to write (created).")],
    data: tp.Annotated[str, typer.Option("--data", metavar="FILE", help=DATA_HELP)],
    model: tp.Annotated[tp.Optional[str], typer.Option(
        "--model", metavar="NAME",
        help=f"Model class: {', '.join(model_classes())}. Default: the config's cls, else sasrec.")] = None,
    config: tp.Annotated[tp.Optional[str], typer.Option(
        "--config", metavar="FILE", help="Model config file (.yaml or .json), as config.yaml of a run.")] = None,
    set_: tp.Annotated[tp.Optional[tp.List[str]], typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Override a parameter: key=value (repeatable), value read as YAML, e.g. --set epochs=5.")] = None,
    val: tp.Annotated[tp.Optional[str], typer.Option(
        "--val", metavar="none|loo", help="Validation during training: none, or loo (each user's last interaction). "
                                          "Default: the config's (none without a config).")] = None,
    logger: tp.Annotated[tp.Optional[str], typer.Option(
        "--logger", metavar="NAME", help="Extra Lightning logger besides the CSV log: tensorboard or mlflow.")] = None,
    progress: tp.Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")] = True,
    item_features: ItemFeaturesOpt = None,
    cat_features: CatFeaturesOpt = None,
    feature_sep: FeatureSepOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    time_col: TimeColOpt = None,
    weight_col: WeightColOpt = None,
    time_unit: TimeUnitOpt = None,
) -> None:
    """Train a model on an interactions file and save the run folder.

    The folder holds model.seqrec, config.yaml (the resolved config), history.csv (per epoch), run.json (how the
    data was read: later commands reuse it) and logs/ (Lightning's CSV log).

    Example: seqrec train --data interactions.csv --model sasrec --set epochs=5 --val loo --out runs/sasrec
    """
    options = DataOptions().merged(data=data, user_col=user_col, item_col=item_col, time_col=time_col,
                                   weight_col=weight_col, time_unit=time_unit, item_features=item_features,
                                   cat_features=cat_features, feature_sep=feature_sep)
    estimator = build_model(model, config, set_ or [], val)
    loggers = ["csv"]
    if logger is not None:
        _check_logger(logger)
        if logger != "csv":
            loggers.append(logger)
    own_trainer = estimator.get_trainer_func is not None
    if own_trainer and logger is not None:
        raise CliError("--logger cannot be combined with a config that sets get_trainer_func (its trainer decides)")
    dataset = options.dataset()
    print(f"data: {len(dataset.interactions.items)} interactions, {dataset.n_users} users, {dataset.n_items} items")
    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    name = _cli_name(type(estimator))
    print(f"training {name} ({type(estimator).__name__}) for up to {estimator.epochs} epoch(s)")
    if own_trainer:
        print("the config's get_trainer_func makes the trainer: no CSV log is added")
        estimator.fit(dataset)
    else:
        _fit_with_logs(estimator, dataset, run_dir, loggers, progress)
    n_bytes = estimator.save(run_dir / MODEL_FILE)
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(estimator.get_config(simple_types=True), sort_keys=False),
                                       encoding="utf-8")
    estimator.history_.to_csv(run_dir / HISTORY_FILE, index=False)
    run = {"seqrec_version": __version__, "model": name, "loggers": loggers,
           "data_options": dataclasses.asdict(options)}
    (run_dir / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    if len(estimator.history_):
        last = estimator.history_.iloc[-1]
        print("last epoch: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in last.items()))
    print(f"saved {run_dir}: {MODEL_FILE} ({n_bytes} bytes), {CONFIG_FILE}, {HISTORY_FILE}, {RUN_FILE}"
          + (f", {LOG_DIR}/" if not own_trainer else ""))


@app.command()
def recommend(
    out: tp.Annotated[str, typer.Option(
        "--out", metavar="FILE", help="Recommendations file to write (.csv or .parquet).")],
    run: RunOpt,
    users: tp.Annotated[tp.Optional[str], typer.Option(
        "--users", metavar="FILE", help="File of user ids (the user column, or a single column).")] = None,
    user_ids: tp.Annotated[tp.Optional[str], typer.Option(
        "--user-ids", metavar="IDS", help="User ids, comma-separated.")] = None,
    all_users: tp.Annotated[bool, typer.Option("--all", help="Every user of the data.")] = False,
    k: tp.Annotated[int, typer.Option("--k", metavar="K", help="Recommendations per user.")] = 10,
    filter_viewed: tp.Annotated[bool, typer.Option(
        "--filter-viewed/--keep-viewed", help="Leave out the items of each user's history.")] = False,
    on_unsupported: tp.Annotated[str, typer.Option(
        "--on-unsupported", metavar="MODE", help="Users the model cannot score (no known item in their history): "
                                                 "raise, warn (skip them with a warning) or ignore.")] = "warn",
    data: DataOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    time_col: TimeColOpt = None,
    weight_col: WeightColOpt = None,
    time_unit: TimeUnitOpt = None,
) -> None:
    """Recommend k items to users from their histories in the data.

    The data defaults to the training data of the run (run.json); the output has the columns
    user_id, item_id, score, rank.

    Example: seqrec recommend --model runs/sasrec --users users.csv --k 10 --filter-viewed --out recos.csv
    """
    if on_unsupported not in ON_UNSUPPORTED:
        raise CliError(f"--on-unsupported: unknown value {on_unsupported!r}; allowed: {list(ON_UNSUPPORTED)}")
    estimator, stored = load_run(run)
    options = stored.merged(data=data, user_col=user_col, item_col=item_col, time_col=time_col,
                            weight_col=weight_col, time_unit=time_unit)
    dataset = options.dataset(with_features=False)  # recommend ranks the model's catalog: features unused
    known = dataset.user_id_map.external_ids[: dataset.n_hot_users]
    targets = _target_ids(users, user_ids, all_users, options.user_col, "users", known)
    reco = estimator.recommend(targets, dataset, k=k, filter_viewed=filter_viewed,
                               on_unsupported_targets=on_unsupported)
    from .io import write_table

    write_table(reco, out)
    print(f"wrote {len(reco)} recommendations for {reco['user_id'].nunique()} of {len(targets)} users to {out}")


@app.command("similar-items")
def similar_items(
    out: tp.Annotated[str, typer.Option("--out", metavar="FILE", help="Output file (.csv or .parquet).")],
    run: RunOpt,
    items: tp.Annotated[tp.Optional[str], typer.Option(
        "--items", metavar="FILE", help="File of item ids (the item column, or a single column).")] = None,
    item_ids: tp.Annotated[tp.Optional[str], typer.Option(
        "--item-ids", metavar="IDS", help="Item ids, comma-separated.")] = None,
    all_items: tp.Annotated[bool, typer.Option("--all", help="Every item the model knows.")] = False,
    k: tp.Annotated[int, typer.Option("--k", metavar="K", help="Similar items per item.")] = 10,
    filter_itself: tp.Annotated[bool, typer.Option(
        "--filter-itself/--keep-itself", help="Leave the target item out of its own list.")] = True,
    on_unsupported: tp.Annotated[str, typer.Option(
        "--on-unsupported", metavar="MODE",
        help="Items the model cannot score: raise, warn (skip with a warning) or ignore.")] = "warn",
    data: DataOpt = None,
    item_features: ItemFeaturesOpt = None,
    cat_features: CatFeaturesOpt = None,
    feature_sep: FeatureSepOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    time_col: TimeColOpt = None,
    weight_col: WeightColOpt = None,
    time_unit: TimeUnitOpt = None,
) -> None:
    """The k items most similar to given items, by the model's similarity.

    The data and item features default to those of the run (run.json); items with features but no
    interactions (cold items) are scored when the model embeds features. The output has the columns
    target_item_id, item_id, score, rank.

    Example: seqrec similar-items --model runs/sasrec --item-ids 1,50 --k 10 --out similar.csv
    """
    if on_unsupported not in ON_UNSUPPORTED:
        raise CliError(f"--on-unsupported: unknown value {on_unsupported!r}; allowed: {list(ON_UNSUPPORTED)}")
    estimator, stored = load_run(run)
    options = stored.merged(data=data, user_col=user_col, item_col=item_col, time_col=time_col,
                            weight_col=weight_col, time_unit=time_unit, item_features=item_features,
                            cat_features=cat_features, feature_sep=feature_sep)
    dataset = options.dataset()
    known = estimator.item_id_map_.external_ids if all_items else dataset.item_id_map.external_ids
    targets = _target_ids(items, item_ids, all_items, options.item_col, "items", known)
    reco = estimator.recommend_to_items(targets, dataset, k=k, filter_itself=filter_itself,
                                        on_unsupported_targets=on_unsupported)
    from .io import write_table

    write_table(reco, out)
    print(f"wrote {len(reco)} similar items for {reco['target_item_id'].nunique()} of {len(targets)} items to {out}")


def _check_split(split: str) -> str:
    """The report's own check of the split's form (one rule for both); the date is read there."""
    from .report import check_split

    try:
        return check_split(split)
    except ValueError as e:
        raise CliError(f"--split: {e}") from None


@app.command()
def evaluate(
    out: tp.Annotated[str, typer.Option("--out", metavar="DIR", help="Report folder to write.")],
    run: RunOpt,
    split: tp.Annotated[str, typer.Option(
        "--split", metavar="SPLIT", help="loo (each user's last interaction is the test) or time:YYYY-MM-DD "
                                         "(test from that day on).")] = "loo",
    k: tp.Annotated[int, typer.Option("--k", metavar="K", help="Cut-off of the metrics.")] = 10,
    refit: tp.Annotated[bool, typer.Option(
        "--refit/--no-refit", help="Retrain the model on the split's train part (default) or evaluate it as saved.")
    ] = True,
    data: DataOpt = None,
    item_features: ItemFeaturesOpt = None,
    cat_features: CatFeaturesOpt = None,
    feature_sep: FeatureSepOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    time_col: TimeColOpt = None,
    weight_col: WeightColOpt = None,
    time_unit: TimeUnitOpt = None,
) -> None:
    """Evaluate a trained model on a split of the data and write a report.

    The data and item features default to those of the run (run.json).

    Example: seqrec evaluate --model runs/sasrec --split time:2018-01-01 --k 10 --out reports/sasrec
    """
    split = _check_split(split)
    if k <= 0:
        raise CliError(f"--k must be a positive integer, got {k}")
    try:
        from .report import run_evaluation
    except ImportError as e:
        raise CliError(f"seqrec evaluate needs the seqrec.report module, which this installation lacks ({e})") from None
    estimator, stored = load_run(run)
    options = stored.merged(data=data, user_col=user_col, item_col=item_col, time_col=time_col,
                            weight_col=weight_col, time_unit=time_unit, item_features=item_features,
                            cat_features=cat_features, feature_sep=feature_sep)
    interactions = options.read_interactions()
    features = options.read_item_features()
    metrics = run_evaluation(estimator, interactions, out, split=split, k=k, item_features=features,
                             cat_item_features=list(options.cat_features) if features is not None else [],
                             refit=refit)
    _print_metrics(metrics or {})
    print(f"report written to {out}")


def _print_metrics(metrics: tp.Mapping[str, tp.Any]) -> None:
    """The metrics of ``run_evaluation`` (``{"model": {...}, "popular": {...}}``) as one table:
    a row per metric, a column per model."""
    tables = {name: values for name, values in metrics.items() if isinstance(values, tp.Mapping)}
    if not tables:
        for name, value in metrics.items():
            print(f"{name}: {value:.4f}" if isinstance(value, float) else f"{name}: {value}")
        return
    rows = list(dict.fromkeys(m for values in tables.values() for m in values))
    width = max(len(r) for r in rows)
    print(f"{'metric':<{width}}  " + "  ".join(f"{name:>10}" for name in tables))
    for row in rows:
        cells = [tables[name].get(row) for name in tables]
        print(f"{row:<{width}}  " + "  ".join(f"{v:>10.4f}" if isinstance(v, float) else f"{str(v):>10}"
                                              for v in cells))


@app.command()
def export(
    out: tp.Annotated[str, typer.Option("--out", metavar="FILE", help="ONNX file to write.")],
    run: RunOpt,
) -> None:
    """Export a trained model to ONNX.

    Example: seqrec export --model runs/sasrec --out sasrec.onnx
    """
    try:
        from .export import export_onnx
    except ImportError as e:
        raise CliError(f"seqrec export needs the seqrec.export module and its dependencies ({e})") from None
    estimator, _ = load_run(run)
    result = export_onnx(estimator, out)
    size = os.path.getsize(out) if os.path.isfile(out) else None
    print(f"exported to {out}" + (f" ({size} bytes)" if size is not None else "")
          + (f": {result}" if isinstance(result, (str, dict)) and result else ""))


@app.command()
def demo(
    epochs: tp.Annotated[tp.Optional[int], typer.Option(
        "--epochs", metavar="N", help="Training epochs. Default: the demo's.")] = None,
    seed: tp.Annotated[int, typer.Option("--seed", metavar="N", help="Random seed.")] = 42,
    progress: tp.Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")] = True,
) -> None:
    """Train SASRec (ids + genres) on the embedded MovieLens latest-small and compare with popularity.

    Example: seqrec demo --epochs 5
    """
    from .demo import run_demo

    results = run_demo(epochs=epochs, seed=seed, progress=progress)
    ours, pop = results["SASRec (ids + genres)"], results["Popularity"]
    verdict = "beats" if ours["NDCG@10"] > pop["NDCG@10"] and ours["HR@10"] > pop["HR@10"] else "does NOT beat"
    print(f"SASRec {verdict} popularity on HR@10 and NDCG@10")


# ----------------------------------------------------------------- entry point
def _one_line(error: tp.Any) -> str:
    return " ".join(str(error).split())


def _error(message: str) -> None:
    print(f"seqrec: error: {message}", file=sys.stderr)


def _show_warning(message: tp.Any, category: tp.Any, filename: str, lineno: int, file: tp.Any = None,
                  line: tp.Any = None) -> None:
    print(f"seqrec: warning: {_one_line(message)}", file=sys.stderr)


def main(argv: tp.Optional[tp.Sequence[str]] = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    try:  # typer >= 0.22 carries its own copy of click
        from typer._click import exceptions as click_exceptions
    except ImportError:
        from click import exceptions as click_exceptions

    from .persistence import ModelFileError

    args = list(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            result = app(args=args, prog_name="seqrec", standalone_mode=False)
        except getattr(click_exceptions, "NoArgsIsHelpError", ()) as e:  # `seqrec` alone
            if e.format_message().strip():  # typer's rich help is printed as the error is made
                print(e.format_message())
            return 0
        except typer.Exit as e:
            return int(e.exit_code)
        except typer.Abort:
            _error("aborted")
            return 1
        except click_exceptions.ClickException as e:
            command = f" {e.ctx.info_name}" if getattr(e, "ctx", None) is not None and e.ctx.parent else ""
            _error(f"{_one_line(e.format_message())} (see seqrec{command} --help)")
            return int(e.exit_code) or 2
        except KeyboardInterrupt:
            _error("interrupted")
            return 130
        except ModelFileError as e:
            _error(f"not a readable model: {_one_line(e)}")
            return 1
        except (CliError, ValueError, TypeError, KeyError, OSError, ImportError, RuntimeError) as e:
            message = _one_line(e.args[0] if isinstance(e, KeyError) and e.args else e)
            _error(message or type(e).__name__)
            return 1
        except Exception as e:  # a bug: still one line, with its type
            _error(f"unexpected {type(e).__name__}: {_one_line(e)}")
            return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
