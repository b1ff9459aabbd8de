"""The typed config schema: one Pydantic model per config section, and every key's one default.

:func:`iss.config.load_config` validates every loaded file (after ``${VAR}`` interpolation and
command-line overrides) against :class:`ConfigSchema`, so a value of the wrong type or out of
range stops the step at once with one line per bad key, naming the file, the key, the value
and what was expected::

    config/config_demo.yaml: training.epochs is 'thirty'; expected a valid integer

The defaults below are the base configuration: a config file (``config/config_<MODE>.yaml`` or
``$ISS_CONFIG``) holds only what differs from them, and keys it leaves out are filled in here,
so the code reads every key without a fallback of its own. A key the schema does not know is
kept and reported as a warning with the closest known key, so a typo is seen and a newer key
never breaks an older schema.

To add a key: add a field to its section's model below (type, default, constraint) and document
it, with the same value, in ``config/config_template.yaml`` (``tests/test_config.py`` checks that
the template lists every key with its default); to add a section, add a model and a field of
:class:`ConfigSchema`.
"""

from __future__ import annotations

import difflib
import os
from typing import Annotated, Any, Callable, Literal, Optional, Union, get_args

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from iss.registries import load_entry

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Seed = Annotated[int, Field(ge=0)]
Size2 = Annotated[list[PositiveInt], Field(min_length=2, max_length=2)]  # [width, height]


def _n_clusters(value: Any) -> Any:
    """``n_clusters``: an int >= 2 or ``"auto"`` (one clear message instead of one per union member)."""
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("expected an integer >= 2 or 'auto'")
    try:
        number = int(value)
    except ValueError:
        raise ValueError("expected an integer >= 2 or 'auto'") from None
    if number < 2:
        raise ValueError("expected an integer >= 2 or 'auto'")
    return number


NClusters = Annotated[Union[int, str], BeforeValidator(_n_clusters)]


def _registered(registry: str) -> BeforeValidator:
    """A value that must be a key of the registry ``"module:NAME"`` (:mod:`iss.registries`), read when a
    config is validated, so that a kind added to the registry is valid with no edit here."""
    def check(value: Any) -> Any:
        names = list(load_entry(registry))
        if value not in names:
            raise ValueError("expected " + ", ".join(map(repr, names[:-1])) + f" or {names[-1]!r}")
        return value
    return BeforeValidator(check)


class Section(BaseModel):
    """A config section: values are coerced ("30" -> 30), unknown keys are kept (and warned about)."""

    model_config = ConfigDict(extra="allow", validate_default=False)


class Paths(Section):
    source: str = "data/external/demo"
    collections: str = "data/raw/collections"
    history: str = "data/raw/history/history.txt"
    labels: str = "data/raw/labels.csv"
    tle: str = ""
    interim: str = "data/interim"
    processed: str = "data/processed"
    cache: str = "data/processed/cache"
    latents: str = "data/processed/latents"
    features: str = "data/processed/features"
    splits_dir: str = "data/interim/splits"
    models: str = "models"
    reports: str = "reports"
    posters: str = "data/posters"


class Database(Section):
    url: str = "sqlite:///data/iss_demo.db"


class Demo(Section):
    n_frames: PositiveInt = 2000
    seed: Seed = 0
    odd_frames: bool = False  # true in config_demo.yaml


class Sync(Section):
    kind: Annotated[str, _registered("iss.data.sync:TRANSPORTS")] = "local"
    # $ISS_SYNC_SOURCE when set (read on each load, as ${ISS_SYNC_SOURCE:-} in a file); "" = paths.source
    source: str = Field(default_factory=lambda: os.environ.get("ISS_SYNC_SOURCE", ""))
    collections_subdir: str = "collections"
    history_file: str = "history/history.txt"
    labels_file: str = "labels.csv"
    list_file: str = ""
    workers: PositiveInt = 4
    recheck: bool = True
    timeout: Annotated[float, Field(gt=0)] = 60.0
    ssh: str = "ssh -o BatchMode=yes -o ConnectTimeout=20"
    rsync_options: list[str] = []


class Ingest(Section):
    filename_pattern: Optional[str] = "%Y%m%d-%H%M%S"
    timezone: str = "UTC"
    input_size: Size2 = [48, 27]
    thumb_size: Size2 = [96, 54]
    fit: Literal["stretch", "crop"] = "stretch"
    batch_size: PositiveInt = 256
    chunk_size: PositiveInt = 64
    workers: NonNegativeInt = 0
    start_method: Literal["fork", "forkserver", "spawn"] = "fork"
    max_pixels: PositiveInt = 89_478_485
    recursive: bool = True
    extensions: Union[Literal["auto"], list[str]] = "auto"
    tle_max_days: Annotated[float, Field(ge=0)] = 14.0
    day_min_sun_elevation: Annotated[float, Field(ge=-90, le=90)] = 0.0


def _scheduler(value):
    from iss.compute import check_scheduler

    return check_scheduler(value)


class Compute(Section):
    scheduler: Annotated[str, BeforeValidator(_scheduler)] = "auto"
    n_workers: NonNegativeInt = 0
    threads_per_worker: PositiveInt = 1
    auto_min_pictures: NonNegativeInt = 0
    partition_size: NonNegativeInt = 0
    connect_timeout: Annotated[float, Field(gt=0)] = 10.0
    store: str = ""


class Sampling(Section):
    seed: Seed = 42
    proportions: dict[str, Annotated[float, Field(ge=0, le=1)]] = {"train": 0.8, "test": 0.1, "valid": 0.1}
    stratify_by_hour: bool = False
    copy_to_dirs: bool = False
    link: bool = True


class Training(Section):
    model_type: str = "simple_conv"
    model_name: str = "demo"
    epochs: PositiveInt = 30
    batch_size: PositiveInt = 64
    learning_rate: Annotated[float, Field(gt=0)] = 0.001
    early_stopping_patience: Optional[NonNegativeInt] = 5
    checkpoint_every: NonNegativeInt = 5
    mixed_precision: bool = False
    jit_compile: bool = False
    image_every: NonNegativeInt = 5
    max_in_memory_mb: Annotated[float, Field(ge=0)] = 2048
    seed: Seed = 0
    input: Literal["input", "thumb"] = "input"


# the build parameters of each autoencoder type (iss.models.autoencoders.build_autoencoder)
ConvVariant = Literal["fast", "original"]
KLWeight = Annotated[float, Field(ge=0)]


class SimpleModel(Section):
    hidden: list[PositiveInt] = [256]
    latent_dim: PositiveInt = 32


class SimpleConvModel(Section):
    variant: ConvVariant = "fast"
    latent_shape: Annotated[list[PositiveInt], Field(min_length=3, max_length=3)] = [3, 6, 16]


class VariationalModel(SimpleModel):
    latent_dim: PositiveInt = 16
    kl_weight: KLWeight = 1.0


class VariationalConvModel(Section):
    variant: ConvVariant = "fast"
    latent_dim: PositiveInt = 16
    kl_weight: KLWeight = 1.0


class Models(Section):
    simple: SimpleModel = SimpleModel()
    simple_conv: SimpleConvModel = SimpleConvModel()
    variational: VariationalModel = VariationalModel()
    variational_conv: VariationalConvModel = VariationalConvModel()


class Umap(Section):
    n_neighbors: Annotated[int, Field(ge=2)] = 20
    min_dist: Annotated[float, Field(ge=0, le=1)] = 0.0
    n_components: Annotated[int, Field(ge=2)] = 2
    metric: str = "euclidean"


KRange = Annotated[list[Annotated[int, Field(ge=2)]], Field(min_length=2, max_length=2)]
Knn = Literal["auto", "exact", "nndescent"]
KCriterion = Literal["modularity", "silhouette"]
N2DKCriterion = Literal["stability", "modularity", "silhouette"]


class PixelFeatures(Section):
    size: Literal["thumb", "input"] = "thumb"
    standardise: bool = True
    pca_components: Optional[PositiveInt] = 50
    pca_sample: PositiveInt = 5000
    random_state: Seed = 0


class AutoFeatures(Section):
    sample: Annotated[int, Field(ge=10)] = 2000
    subsample: Annotated[float, Field(gt=0, le=1)] = 0.8
    n_runs: Annotated[int, Field(ge=2)] = 3
    n_neighbors: Annotated[int, Field(ge=2)] = 20
    n_epochs: PositiveInt = 200
    k_range: KRange = [2, 12]
    margin: Annotated[float, Field(ge=0)] = 0.02
    random_state: Seed = 0


class Features(Section):
    kind: Literal["autoencoder", "pixels", "auto"] = "auto"
    pixels: PixelFeatures = PixelFeatures()
    auto: AutoFeatures = AutoFeatures()


class N2D(Section):
    version: PositiveInt = 1
    n_clusters: NClusters = "auto"
    k_range: KRange = [2, 12]
    k_criterion: N2DKCriterion = "stability"
    umap: Umap = Umap()
    method: Annotated[str, _registered("iss.clustering.final_steps:FINAL_STEPS")] = "kmeans"
    n_init: PositiveInt = 10
    scan_neighbors: PositiveInt = 50
    entropy_weight: Annotated[float, Field(ge=0)] = 5.0
    n_epochs: Optional[PositiveInt] = None
    knn: Knn = "auto"
    plot: Literal["umap", "first"] = "umap"
    direct_below: Annotated[int, Field(ge=0)] = 50
    random_state: Seed = 0


class Classical(Section):
    version: PositiveInt = 1
    pca_components: PositiveInt = 20
    kmeans_clusters: Annotated[int, Field(ge=2)] = 50
    n_clusters: NClusters = 6
    k_range: KRange = [2, 12]
    k_criterion: KCriterion = "modularity"
    linkage: Literal["ward", "complete", "average", "single", "centroid", "median", "weighted"] = "ward"
    plot: Literal["tsne", "pca"] = "tsne"
    perplexity: Annotated[float, Field(gt=0)] = 30.0
    random_state: Seed = 0


class Advanced(Section):
    version: PositiveInt = 1
    pca_components: PositiveInt = 20
    k_low: Annotated[int, Field(ge=2)] = 20
    k_high: Annotated[int, Field(ge=2)] = 60
    n_runs: PositiveInt = 5
    threshold: PositiveInt = 5
    eps: Annotated[float, Field(gt=0)] = 12.0
    min_samples: PositiveInt = 2
    plot: Literal["pca", "tsne"] = "pca"
    random_state: Seed = 0


class HDBSCANSection(Section):
    version: PositiveInt = 1
    umap: Umap = Umap()
    min_cluster_size: Annotated[int, Field(ge=2)] = 30
    min_samples: Optional[PositiveInt] = None
    knn: Knn = "auto"
    random_state: Seed = 0


class Clustering(Section):
    default: str = "n2d"
    fit_sample: NonNegativeInt = 0
    n2d: N2D = N2D()
    classical: Classical = Classical()
    advanced: Advanced = Advanced()
    hdbscan: HDBSCANSection = HDBSCANSection()

    @field_validator("default")
    @classmethod
    def _known_type(cls, value: str) -> str:
        from iss.clustering import CLUSTERING_TYPES  # the registry of clustering types

        if value not in CLUSTERING_TYPES:
            raise ValueError(f"expected one of {', '.join(map(repr, CLUSTERING_TYPES))}")
        return value


class Reports(Section):
    mosaic_size: PositiveInt = 64
    mosaic_columns: PositiveInt = 8
    overview_per_cluster: PositiveInt = 10
    scatter_thumbs: bool = True
    scatter_aggregate_above: PositiveInt = 100_000
    scatter_sample: PositiveInt = 20_000
    scatter_density_bins: Annotated[list[Annotated[int, Field(ge=16, le=4096)]],
                                    Field(min_length=2, max_length=2)] = [1200, 800]
    thumb_quality: Annotated[int, Field(ge=1, le=100)] = 80
    projections: list[Literal["pca", "tsne", "umap"]] = ["pca", "tsne", "umap"]
    projection_sample: NonNegativeInt = 2000
    random_state: Seed = 0
    sprite_size: Size2 = [48, 27]
    sprite_quality: Annotated[int, Field(ge=1, le=100)] = 85
    facets_runs: Literal["latest", "all"] = "latest"
    facets_dive_max: PositiveInt = 50_000

    @model_validator(mode="after")
    def _sample_below_threshold(self) -> "Reports":
        # a sample as large as the threshold would send as many points as the plain scatter does
        if self.scatter_sample > self.scatter_aggregate_above:
            raise ValueError(f"reports.scatter_sample ({self.scatter_sample}) is above "
                             f"reports.scatter_aggregate_above ({self.scatter_aggregate_above}); the pictures "
                             f"drawn one by one over the density must be fewer than the threshold")
        return self


class Search(Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    max_upload_mb: Annotated[float, Field(gt=0)] = 10
    max_pixels: PositiveInt = 40_000_000
    k: PositiveInt = 12
    max_k: PositiveInt = 100
    page_size: PositiveInt = 48
    n_outliers: PositiveInt = 50
    n_stored: PositiveInt = 10
    threshold_percentile: Annotated[float, Field(gt=0, le=100)] = 99
    margin: Annotated[float, Field(gt=0)] = 1.5
    texture_sample: NonNegativeInt = 2000
    texture_size: Size2 = [320, 180]
    near_copy_sample: NonNegativeInt = 200
    seed: Seed = 0
    # from this many pictures on, the index searches an HNSW graph re-ranked exactly (iss/search/approximate.py);
    # 0 = always exact. Chosen by benchmarks/ann.py (README "Search at scale")
    approximate_above: NonNegativeInt = 100_000
    # rows per shard of that graph when compute.scheduler builds it as Dask tasks (iss/search/shards.py);
    # independent of the workers so that the index is the same anywhere. Chosen by benchmarks/ann.py --sharded
    shard_size: PositiveInt = 100_000


class Posters(Section):
    default_template: str = "grid_4x4_band"
    templates_dir: str = "posters"
    n_clusters_per_poster: PositiveInt = 4
    # the 95th percentile of layout() distances between 30 real HDEV frames and their copies brightened or
    # contrasted 10% or cropped 3% (0.058), rounded up (iss/posters/selection.py)
    near_duplicate_distance: Annotated[float, Field(ge=0)] = 0.06
    auto_min_contrast: Annotated[float, Field(ge=0)] = 0.06
    upscaler: str = "lanczos"
    jpeg_quality: Annotated[int, Field(ge=1, le=95)] = 92
    pdf: bool = True


class ConfigSchema(Section):
    """Every section of a config file (``config/config_template.yaml`` documents each key)."""

    paths: Paths = Paths()
    database: Database = Database()
    demo: Demo = Demo()
    sync: Sync = Field(default_factory=Sync)  # a new one per load: sync.source reads the environment
    ingest: Ingest = Ingest()
    compute: Compute = Compute()
    sampling: Sampling = Sampling()
    training: Training = Training()
    models: Models = Models()
    features: Features = Features()
    clustering: Clustering = Clustering()
    reports: Reports = Reports()
    search: Search = Search()
    posters: Posters = Posters()


# --------------------------------------------------------------------------- #
# Validation with messages a person can act on                                #
# --------------------------------------------------------------------------- #

def _expected(error: dict) -> str:
    """Pydantic's message as "expected ...", e.g. "expected a valid integer, unable to parse ..."."""
    message = str(error.get("msg", ""))
    context = error.get("ctx") or {}
    if error.get("type") in ("too_short", "too_long"):
        wanted = context.get("min_length") if error["type"] == "too_short" else context.get("max_length")
        if isinstance(error.get("input"), str):  # a text checked after a validator
            return f"expected at {'least' if error['type'] == 'too_short' else 'most'} {wanted} characters, " \
                   f"got {context.get('actual_length')}"
        return f"expected a list of {wanted} items, got {context.get('actual_length')}"
    if message.startswith("Value error, "):
        return message[len("Value error, "):]
    if message.startswith("Input should be "):
        return "expected " + message[len("Input should be "):]
    return message[:1].lower() + message[1:]


def dotted_key(loc: tuple) -> str:
    """``("ingest", "input_size", 0)`` -> ``"ingest.input_size[0]"``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _model_at(model: type[BaseModel] | None, loc: tuple) -> type[BaseModel] | None:
    """The model of the mapping at ``loc`` (list indices skipped), or None when it is not a model."""
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        candidates = [model.model_fields[part].annotation]
        model = None
        while candidates:  # unwrap Optional[...], list[...], Annotated[...] down to a model
            annotation = candidates.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                model = annotation
                break
            candidates += [a for a in get_args(annotation) if a is not None]
    return model


def validation_messages(exc: ValidationError, source: str, model: type[BaseModel] | None = None,
                        key_name: Callable[[tuple], str] = dotted_key) -> list[str]:
    """One line per bad key: ``<file>: <key> is <value>; expected <what>``.

    A required key left out reads ``<file>: <key> is missing``, and a key a model forbids
    ``<file>: <key> is not a known key; expected keys among <the model's keys>`` (``model``: the
    validated model, to list them). ``key_name`` spells a location (default ``ingest.input_size[0]``).
    """
    expected: dict[str, list[str]] = {}  # in the errors' order
    values: dict[str, Any] = {}
    whole: dict[str, str] = {}  # keys missing or unknown: their whole line
    for error in exc.errors():
        loc = tuple(error["loc"])
        if len(loc) > 1 and isinstance(loc[-1], str) and ("[" in loc[-1] or loc[-1] in ("str", "int", "float", "bool")):
            loc = loc[:-1]  # the tag of a union member (``literal['auto']``, ``list[str]``), not a key
        key = key_name(loc)
        expected.setdefault(key, [])
        if error.get("type") == "missing":
            whole[key] = f"{key} is missing"
        elif error.get("type") == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            whole[key] = f"{key} is not a known key" + (
                f"; expected keys among {', '.join(parent.model_fields)}" if parent is not None else "")
        else:
            values.setdefault(key, error.get("input"))
            if _expected(error) not in expected[key]:
                expected[key].append(_expected(error))
    lines = []
    for key, what in expected.items():
        if key in whole:
            lines.append(f"{source}: {whole[key]}")
            continue
        if all(w.startswith("expected ") for w in what):  # "expected 'auto' or a valid list"
            what = ["expected " + " or ".join(w.removeprefix("expected ") for w in what)]
        lines.append(f"{source}: {key} is {values[key]!r}; {' or '.join(what)}")
    return lines


def unknown_keys(data: Any, model: type[BaseModel] = ConfigSchema, prefix: str = "") -> list[str]:
    """Keys of ``data`` that ``model`` does not define, each with the closest known key when there is one."""
    if not isinstance(data, dict):
        return []
    found = []
    fields = model.model_fields
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            found.append(f"{name}" + (f" (did you mean '{prefix}{close[0]}'?)" if close else ""))
            continue
        annotation = fields[key].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += unknown_keys(value, annotation, f"{name}.")
    return found


def defaults() -> dict:
    """The whole default configuration (the base every config file is merged over)."""
    return ConfigSchema().model_dump()


def validate_config(data: dict, source: str) -> dict:
    """The config ``data`` validated and coerced (``"30"`` -> 30), keys left out filled with their defaults.

    Raises
    ------
    ValueError
        One line per bad key (see :func:`validation_messages`).
    """
    try:
        model = ConfigSchema.model_validate(data)
    except ValidationError as exc:
        raise ValueError("\n".join(validation_messages(exc, source))) from None
    return model.model_dump()
