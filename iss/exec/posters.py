"""Step `posters`: render posters from a template and the clustering results.

Reads: ``config/posters/<config_id>.yaml``, the database (clustering run, pictures_embedding,
pictures; posters/posters_slots for ``--regenerate``), the full-size pictures in
``paths.collections`` and the ingest cache's thumbnails (for "best of cluster").
Writes: ``paths.posters/<poster_id>.jpg`` + ``.pdf`` and the ``posters`` / ``posters_slots``
rows; ``--preview`` writes ``paths.posters/<config_id>-preview.jpg`` only.

    iss posters --config-id grid_4x4 --generate 3 --poster-id wall --seed 7   # = make posters
    iss posters --config-id heroes_2x2 --preview
    iss posters --regenerate wall-2
    iss posters --run-id 3 --set posters.n_clusters_per_poster=5
"""

from __future__ import annotations

import logging
from typing import Optional

import typer

from iss.exec.common import ModeOption, SetOption, setup_logging, step_app, step_config, step_engine, step_errors

log = logging.getLogger("iss.exec.posters")
app = step_app(__doc__)


@app.command()
def posters(
    config_id: Optional[str] = typer.Option(
        None, "--config-id", help="Template name in config/posters (or a .yaml path); "
                                  "default posters.default_template."),
    generate: Optional[int] = typer.Option(
        None, "--generate", min=1, help="Number of posters to generate (default 1, or 0 with --preview)."),
    poster_id: Optional[str] = typer.Option(
        None, "--poster-id", help="Poster id: NAME, NAME-2, ... for several; default <config_id>-s<seed>."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the first poster; poster i uses seed + i."),
    run_id: Optional[int] = typer.Option(
        None, "--run-id", help="Clustering run to use instead of the template's run (default: latest run)."),
    preview: bool = typer.Option(False, "--preview", help="Draw the template's slots and labels."),
    regenerate: Optional[str] = typer.Option(
        None, "--regenerate", metavar="POSTER_ID", help="Rebuild this poster exactly from the database."),
    list_: bool = typer.Option(False, "--list", help="List the available templates and exit."),
    mode: Optional[str] = ModeOption,
    settings: Optional[list[str]] = SetOption,
) -> None:
    """Render posters (JPEG + PDF at print resolution) and record them in the database."""
    setup_logging()
    from iss.db.engine import DatabaseError
    from iss.posters.render import generate_posters, preview_template, regenerate_poster
    from iss.posters.templates import PosterError, list_templates

    with step_errors(log, PosterError, DatabaseError):
        cfg = step_config(mode, settings)
        if list_:
            for name in list_templates(cfg):
                typer.echo(name)
            return
        log.info("posters: start (config %s)", cfg.source)
        written = []
        if preview:
            written.append(preview_template(cfg, config_id))
        n = generate if generate is not None else (0 if preview or regenerate else 1)
        if regenerate or n:
            with step_engine(cfg) as engine:
                if regenerate:
                    written.append(regenerate_poster(cfg, engine, regenerate))
                if n:
                    written += generate_posters(cfg, engine, config_id, n=n, poster_id=poster_id, seed=seed,
                                                run_id=run_id)
    for path in written:
        typer.echo(str(path))
    log.info("posters: done, %d file(s) in %s", len(written), cfg.path("posters"))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
