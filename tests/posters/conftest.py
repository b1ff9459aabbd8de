"""Fixtures for the poster tests (helpers in ``helpers.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from iss.data.cache import ImageCache

from .helpers import (N_PICTURES, Collection, PosterEnv, insert_collection, make_flat_picture, make_picture,
                      picture_id,
                      small_template)


@pytest.fixture(scope="session")
def collection(tmp_path_factory) -> Collection:
    """The 40 pictures (and 10 flat ones) on disk and in an ingest cache (built once per test session)."""
    root = tmp_path_factory.mktemp("poster_collection")
    folder, cache_dir = root / "collections", root / "cache"
    folder.mkdir()
    ids, inputs, thumbs = [], [], []
    for i in range(N_PICTURES):
        image = make_picture(i)
        image.save(folder / f"{picture_id(i)}.jpg", quality=90)
        ids.append(picture_id(i))
        inputs.append(np.asarray(image.resize((48, 27), Image.Resampling.BILINEAR)))
        thumbs.append(np.asarray(image.resize((96, 54), Image.Resampling.BILINEAR)))
    flat_ids = []
    for k in range(10):  # blank "live is off"-like screens, only in runs that ask for them
        image = make_flat_picture(k)
        image.save(folder / f"flat-{k}.jpg", quality=90)
        flat_ids.append(f"flat-{k}")
        inputs.append(np.asarray(image.resize((48, 27), Image.Resampling.BILINEAR)))
        thumbs.append(np.asarray(image.resize((96, 54), Image.Resampling.BILINEAR)))
    ImageCache(cache_dir, input_size=(48, 27), thumb_size=(96, 54)).append(ids + flat_ids, np.stack(inputs),
                                                                            np.stack(thumbs))
    return Collection(folder=folder, cache=cache_dir, ids=ids, flat_ids=flat_ids)


@pytest.fixture
def poster_env(db_cfg, engine, collection, tmp_path) -> PosterEnv:
    """A config whose collection, cache and templates are the small test ones, on each backend."""
    templates = tmp_path / "poster_templates"
    templates.mkdir()
    cfg = db_cfg.with_overrides({
        "paths": {"collections": str(collection.folder), "cache": str(collection.cache)},
        "posters": {"templates_dir": str(templates), "default_template": "small"},
    })
    run_id = insert_collection(engine, collection)
    env = PosterEnv(cfg=cfg, engine=engine, run_id=run_id, collection=collection, templates=templates)
    env.write_template("small", small_template())
    return env
