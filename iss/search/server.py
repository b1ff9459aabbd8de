"""The explorer server: similar-picture search, clusters, pictures, near-duplicates, outliers, reports.

Reads
    What :class:`iss.search.service.SearchService` reads, plus ``cfg.path("reports")`` (served
    read-only under ``/reports/``).
Writes
    Nothing (the search index is built or updated on start when needed).

Routes (every HTML page also answers JSON with ``?format=json`` or ``Accept: application/json``):

``GET /``                            upload form
``POST /search``                     multipart field ``file`` (+ optional ``k``): results
``GET /thumbs/{id}.jpg``             a thumbnail from the ingest cache (id checked against the index)
``GET /pictures/{id}``               the picture at screen size, its time, place, day or night, its
                                     cluster (with its name) in every run, and its nearest pictures
``GET /pictures/{id}/picture.jpg``   the picture at screen size, decoded from the collection's file
``GET /clusters``                    clustering runs and their named clusters
``GET /clusters/{run_id}/{label}``   a cluster's mosaic, ``?page=N``, and a form to rename it
``POST /clusters/{run_id}/{label}/name``  rename a cluster (form field ``name``; empty: its automatic name)
``GET /near-duplicates``             sets of near-identical pictures, largest first, ``?page=N``
``GET /near-duplicates-keep-one.csv``  every picture of every set, the one to keep marked
``GET /near-duplicates.csv``         the pairs of near-identical pictures
``GET /outliers[.csv]``              the pictures least like the rest
``GET /reports/...``                 the rendered run reports (static, read-only)
``GET /health``                      status and calibration

Uploads: the request body is capped at ``search.max_upload_mb`` (checked on ``Content-Length``
before reading, then while streaming), the picture is checked by the ingest decoder (format,
truncation, decompression-bomb pixel limit ``search.max_pixels``) and its file name is never
used. Errors are 4xx with a message, as JSON or as a page.
"""

from __future__ import annotations

import base64
import functools
import io
import logging
from http import HTTPStatus
from pathlib import Path

from fastapi import BackgroundTasks, FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from PIL import Image
from starlette.exceptions import HTTPException

from iss.config import Config
from iss.search import pages
from iss.search.novelty import confidence_means
from iss.search.service import QueryError, SearchService

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")
# Multipart framing (boundaries, part headers, the k field) on top of the picture itself.
MULTIPART_ALLOWANCE = 64 * 1024


def wants_json(request: Request) -> bool:
    """JSON when asked by ``?format=json`` or by an Accept header preferring it over HTML."""
    fmt = request.query_params.get("format")
    if fmt:
        return fmt.lower() == "json"
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _png_data_uri(pixels) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def create_app(cfg: Config, service: SearchService | None = None) -> FastAPI:
    """The FastAPI application (``service`` defaults to :meth:`SearchService.from_config`)."""
    service = service or SearchService.from_config(cfg)
    settings = service.settings
    max_upload_mb = float(settings["max_upload_mb"])
    max_upload = int(max_upload_mb * 1024 * 1024)
    templates = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))

    app = FastAPI(title="ISS explorer", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service

    def render(name: str, status: int = 200, **context) -> HTMLResponse:
        latest = service.latest_run()
        context.setdefault("run_page", service.report_href(latest) if latest else None)
        html = templates.get_template(name).render(model=service.model_info(), **context)
        return HTMLResponse(html, status_code=status)

    def error_response(request: Request, status: int, message: str) -> Response:
        phrase = HTTPStatus(status).phrase
        if wants_json(request) or request.url.path.endswith(".csv") or request.url.path.startswith("/thumbs/"):
            return JSONResponse({"error": {"status": status, "reason": phrase, "message": message}},
                                status_code=status)
        return render("error.html", status, title=phrase, code=status, phrase=phrase, message=message)

    # --- errors -------------------------------------------------------------------------------
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        message = str(exc.detail)
        if exc.status_code == 413:
            message = (f"the upload is larger than the {max_upload_mb:g} MB limit (search.max_upload_mb); "
                       f"send a smaller picture")
        elif exc.status_code == 404 and message == "Not Found":
            message = f"nothing at {request.url.path}"
        return error_response(request, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path"))
            if error.get("type") == "missing":
                problems.append(f"the field '{where}' is missing" + (
                    ": send the picture as the multipart/form-data field 'file'" if where == "file" else ""))
            else:
                problems.append(f"'{where}': {error.get('msg')}")
        return error_response(request, 422, "; ".join(problems) or "invalid request")

    @app.exception_handler(QueryError)
    async def query_error(request: Request, exc: QueryError):
        return error_response(request, exc.status, exc.message)

    # --- search -------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def index_page():
        return render("index.html", title="Search", k=service.k, max_k=service.max_k, max_upload_mb=f"{max_upload_mb:g}",
                    percentile=service.index.threshold_percentile,
                    confidence_means=confidence_means(service.calibration.percentile))

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        icon = cfg.path("reports") / "favicon.ico"  # written with the reports
        if icon.is_file():
            return Response(icon.read_bytes(), media_type="image/x-icon")
        return Response(status_code=204)

    @app.get("/health")
    def health():
        return service.health()

    @app.post("/search", max_body_size=max_upload + MULTIPART_ALLOWANCE)
    async def search(request: Request, file: UploadFile = File(...), k: int | None = Form(None)):
        if k is not None and not 1 <= k <= service.max_k:
            raise HTTPException(422, f"'k' must be between 1 and {service.max_k}, got {k}")
        # the body limit already capped the request; this cap also covers a picture alone over the limit
        data = await file.read(max_upload + 1)
        if len(data) > max_upload:
            raise HTTPException(413)
        result = await run_in_threadpool(service.search, data, k)
        if wants_json(request):
            return result.as_dict()
        return render("results.html", title="Results", result=result, query_thumb=_png_data_uri(result.thumb))

    # --- pictures and thumbnails --------------------------------------------------------------
    @app.get("/thumbs/{picture_id}.jpg")
    def thumbnail(picture_id: str):
        try:
            data = service.thumbnail_jpeg(picture_id)
        except KeyError:
            raise HTTPException(404, f"no picture {picture_id!r} in the search index") from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=3600"})

    @app.get("/pictures/{picture_id}")
    def picture(request: Request, picture_id: str, k: int | None = None):
        try:
            info = service.picture(picture_id, k=k)
        except KeyError:
            raise HTTPException(404, f"no picture {picture_id!r} in the search index") from None
        if wants_json(request):
            return info
        return render("picture.html", title=picture_id, picture=info, page=pages.picture_page(service, info))

    @app.get("/pictures/{picture_id}/picture.jpg")
    def picture_file(picture_id: str):
        if picture_id not in service.index:
            raise HTTPException(404, f"no picture {picture_id!r} in the search index")
        try:
            data = screen_picture(picture_id)
        except FileNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=3600"})

    screen_picture = functools.lru_cache(maxsize=64)(lambda picture_id: pages.screen_jpeg(service, picture_id))

    # --- clusters -----------------------------------------------------------------------------
    @app.get("/clusters")
    def clusters(request: Request):
        runs = service.runs()
        for run in runs:
            run["names"] = pages.run_names(service, run["run_id"])
            run["covers"] = pages.cluster_covers(service, run["run_id"])
        if wants_json(request):
            return {"runs": [{k: (str(v) if k == "created_at" else v) for k, v in run.items()} for run in runs]}
        return render("clusters.html", title="Clusters", runs=runs)

    @app.get("/clusters/{run_id}/{label}")
    def cluster(request: Request, run_id: int, label: int, page: int = 1):
        try:
            data = service.cluster_page(run_id, label, page)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        except IndexError as exc:
            raise HTTPException(404, str(exc)) from None
        names = pages.run_names(service, run_id)
        data["name"] = names.get(int(label), {})
        if wants_json(request):
            return {**data, "run": {k: (str(v) if k == "created_at" else v) for k, v in data["run"].items()}}
        return render("cluster.html", title=f"Cluster {data['label']}", page=data,
                      report=service.report_href(data["run"]), renamed=request.query_params.get("renamed"))

    @app.post("/clusters/{run_id}/{label}/name")
    async def rename_cluster(request: Request, run_id: int, label: int, background: BackgroundTasks,
                             name: str = Form("")):
        from iss.clustering.names import ClusterNameError

        try:
            names = await run_in_threadpool(pages.rename_cluster, service, run_id, label, name)
        except ClusterNameError as exc:
            raise HTTPException(404 if "no cluster" in str(exc) or "does not exist" in str(exc) else 422,
                                str(exc)) from None
        background.add_task(pages.refresh_pages, service, run_id)  # the static pages show names too
        if wants_json(request):
            return {"run_id": run_id, "label": label, **names[label]}
        return RedirectResponse(f"/clusters/{run_id}/{label}?renamed=1", status_code=303)

    # --- collection lists ---------------------------------------------------------------------
    @app.get("/near-duplicates")
    def near_duplicates(request: Request, page: int = 1):
        sets = service.near_duplicate_sets()
        if wants_json(request):
            return {"threshold": service.calibration.near_duplicate_distance, "sets": sets,
                    "pairs": service.near_duplicates()}
        pages_total = max(1, -(-len(sets) // SETS_PER_PAGE))
        if not 1 <= page <= pages_total:
            raise HTTPException(404, f"page {page} of the near-duplicate sets does not exist (pages 1 to {pages_total})")
        shown = sets[(page - 1) * SETS_PER_PAGE: page * SETS_PER_PAGE]
        return render("near_duplicates.html", title="Near-duplicates", sets=shown, total=len(sets),
                      pictures=sum(s["size"] for s in sets), page=page, pages=pages_total,
                      threshold=service.calibration.near_duplicate_distance)

    @app.get("/near-duplicates-keep-one.csv")
    def near_duplicates_keep_one_csv():
        text = service.to_csv(keep_one_rows(service.near_duplicate_sets()), KEEP_ONE_COLUMNS)
        return Response(text, media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="near-duplicates-keep-one.csv"'})

    @app.get("/near-duplicates.csv")
    def near_duplicates_csv():
        text = service.to_csv(service.near_duplicates(), NEAR_DUPLICATE_COLUMNS)
        return Response(text, media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="near-duplicates.csv"'})

    @app.get("/outliers")
    def outliers(request: Request, n: int | None = None):
        rows = service.outliers(n)
        if wants_json(request):
            return {"outliers": rows}
        return render("outliers.html", title="Outliers", rows=rows)

    @app.get("/outliers.csv")
    def outliers_csv(n: int | None = None):
        text = service.to_csv(service.outliers(n), OUTLIER_COLUMNS)
        return Response(text, media_type="text/csv", headers={"Content-Disposition": 'attachment; filename="outliers.csv"'})

    # --- reports (static, read-only: StaticFiles answers GET/HEAD only and refuses paths outside) --
    reports = cfg.path("reports")
    reports.mkdir(parents=True, exist_ok=True)
    app.mount("/reports", StaticFiles(directory=str(reports), html=True), name="reports")

    async def too_large(scope, receive, send, declared: int) -> None:
        request = Request(scope, receive)
        response = error_response(request, 413, f"the upload ({declared / 2**20:.1f} MB) is larger than the "
                                                f"{max_upload_mb:g} MB limit (search.max_upload_mb); send a smaller picture")
        response.headers["Connection"] = "close"  # the unread body must not be taken for the next request
        await response(scope, receive, send)

    app.add_middleware(DeclaredSizeLimit, paths={"/search"}, max_bytes=max_upload + MULTIPART_ALLOWANCE,
                       respond=too_large)
    return app


class DeclaredSizeLimit:
    """Reject a request whose ``Content-Length`` is over the limit before reading any of its body.

    FastAPI's ``max_body_size`` (also set on ``POST /search``) counts the bytes as they stream in,
    which covers chunked uploads and lying headers; this middleware answers the common case
    earlier and with the server's own JSON or HTML error instead of Starlette's plain text.
    """

    def __init__(self, app, paths: set[str], max_bytes: int, respond):
        self.app, self.paths, self.max_bytes, self.respond = app, paths, max_bytes, respond

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] in self.paths:
            for name, value in scope["headers"]:
                if name == b"content-length":
                    try:
                        declared = int(value)
                    except ValueError:
                        break
                    if declared > self.max_bytes:
                        await self.respond(scope, receive, send, declared)
                        return
                    break
        await self.app(scope, receive, send)


NEAR_DUPLICATE_COLUMNS = ["pictures_id_a", "pictures_id_b", "distance", "taken_at_a", "taken_at_b"]
KEEP_ONE_COLUMNS = ["set", "size", "pictures_id", "keep", "taken_at", "cluster"]
OUTLIER_COLUMNS = ["rank", "pictures_id", "score", "reason", "cluster", "taken_at"]
SETS_PER_PAGE = 20


def keep_one_rows(sets: list[dict]) -> list[dict]:
    """One row per picture of every near-duplicate set (the "keep one" CSV): ``keep`` is ``yes`` for the
    picture to keep and ``no`` for the ones that can go."""
    return [{"set": s["set"], "size": s["size"], "pictures_id": p["pictures_id"], "keep": "yes" if p["keep"] else "no",
             "taken_at": p["taken_at"], "cluster": p["cluster"]} for s in sets for p in s["pictures"]]


def serve(cfg: Config, host: str | None = None, port: int | None = None, model_type: str | None = None,
          model_name: str | None = None, rebuild: bool = False) -> None:
    """Load the search and run the server (blocks until Ctrl-C).

    ``host``/``port`` default to ``search.host`` (127.0.0.1) / ``search.port`` (8000).
    """
    import uvicorn

    from iss.search.build import search_settings

    settings = search_settings(cfg)
    host = host or str(settings["host"])
    port = int(port or settings["port"])
    service = SearchService.from_config(cfg, model_type=model_type, model_name=model_name, rebuild=rebuild)
    app = create_app(cfg, service)
    log.info("explorer server on http://%s:%d/ (%d pictures, model %s/%s)", host, port, len(service.index),
             service.model.model_type, service.model.model_name)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
