"""Similar-picture search over the autoencoder latents, with a calibrated "no good match".

- :mod:`iss.search.index`: :class:`~iss.search.index.SimilarityIndex`, exact nearest neighbours with
  leave-one-out calibration, incremental ``add``, ``save``/``load``.
- :mod:`iss.search.approximate`: the HNSW graph (faiss) above ``search.approximate_above``, one graph or
  shards; :mod:`iss.search.shards` builds the shards as Dask tasks (``compute.scheduler``).
- :mod:`iss.search.novelty`: the query-level checks (distance, reconstruction, texture) and their
  calibration on the collection.
- :mod:`iss.search.build`: building, saving and updating the index of a trained model.
- :mod:`iss.search.service`: :class:`~iss.search.service.SearchService`, what the ``iss`` command and
  the server share.
- :mod:`iss.search.server`: the FastAPI explorer server (``iss serve`` / ``make serve``).
"""
