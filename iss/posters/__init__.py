"""Posters: YAML templates (``config/posters``), picture selection from clustering runs, and
print-ready rendering (JPEG + PDF) with provenance in the ``posters`` tables.

``generate_posters``, ``regenerate_poster`` and ``preview_template`` live in
:mod:`iss.posters.render`; templates in :mod:`iss.posters.templates`; upscalers in
:mod:`iss.posters.upscale`.
"""
