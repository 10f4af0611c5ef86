"""The admin's pages: projects (create from an uploaded candidates or pairs file), the dashboard
(progress per annotator, live kappa and band, agreement per guidelines version, agreement with the
majority, position bias, skips), guidelines, annotators (add; revoke or reissue a login token: the
old token and its sessions stop working at once), and the export downloads."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, Response

from ..config import AgreementConfig
from . import sessions, stats, store
from .export import FILES, export_project
from .modes import MODES
from .site import MAX_ID, site_of

router = APIRouter(prefix="/admin")
Csrf = Annotated[str, Form(max_length=100)]
Id = Annotated[int, PathParam(ge=1, le=MAX_ID)]  # out of range or not a number: 404 (app.bad_form)


def _project(site, project_id: int) -> dict:
    project = store.project(site.engine, project_id)
    if project is None:
        raise HTTPException(404, f"no project {project_id}")
    return project


@router.get("")
def projects(request: Request) -> Response:
    site = site_of(request)
    user = site.need(request, "admin")
    rows = [{**p, **store.item_counts(site.engine, p)} for p in store.all_projects(site.engine)]
    return site.render("admin.html", user=user, projects=rows, modes=list(MODES),
                       min_agreement=AgreementConfig().min_agreement)


@router.post("/projects")
def create(request: Request, csrf: Csrf, name: Annotated[str, Form(max_length=100)],
           mode: Annotated[str, Form(max_length=16)], overlap: Annotated[int, Form(ge=2, le=50)],
           min_agreement: Annotated[float, Form(ge=0, le=1)], file: Annotated[UploadFile, File()],
           guidelines: Annotated[str, Form(max_length=50_000)] = "") -> Response:
    site = site_of(request)
    site.need_post(request, "admin", csrf)
    # Keep the upload's name (its suffix picks the reader; messages name it), not its path.
    shown = re.sub(r"[^\w.-]", "_", Path(file.filename or "upload.jsonl").name)[-100:] or "upload.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / shown
        with open(path, "wb") as f:
            shutil.copyfileobj(file.file, f)
        try:
            pid = store.create_project(site.engine, name, mode, guidelines, overlap, path, shown, min_agreement)
        except ValueError as e:
            raise HTTPException(400, str(e).splitlines()[0]) from None
    return RedirectResponse(f"/admin/projects/{pid}", status_code=303)


def _dashboard(request: Request, project_id: int, new_token: tuple[str, str] | None = None) -> Response:
    site = site_of(request)
    user = site.need(request, "admin")
    project = _project(site, project_id)
    answers = store.answers(site.engine, project_id)
    records = stats.annotation_records(project, answers)
    majority = stats.majority_agreement(records)
    people = [{**a, **store.progress(site.engine, project, a["id"]), **majority.get(a["name"], {})}
              for a in store.annotators(site.engine, project_id)]
    return site.render(
        "project.html", user=user, project=project, counts=store.item_counts(site.engine, project),
        annotators=people, report=stats.agreement(project, records) if records else None,
        versions=stats.by_guidelines_version(project, records), bias=stats.position_bias(project, answers),
        skips=[a for a in answers if a["value"] is None], files=FILES, new_token=new_token)


@router.get("/projects/{project_id}")
def dashboard(request: Request, project_id: Id) -> Response:
    return _dashboard(request, project_id)


@router.post("/projects/{project_id}/guidelines")
def guidelines(request: Request, project_id: Id, csrf: Csrf,
               text: Annotated[str, Form(max_length=50_000)] = "") -> Response:
    site = site_of(request)
    site.need_post(request, "admin", csrf)
    store.set_guidelines(site.engine, _project(site, project_id)["id"], text)
    return RedirectResponse(f"/admin/projects/{project_id}", status_code=303)


@router.post("/projects/{project_id}/annotators")
def add_annotator(request: Request, project_id: Id, csrf: Csrf, name: Annotated[str, Form(max_length=100)]) -> Response:
    """The new login token is shown on this one page and never again (only its hash is kept)."""
    site = site_of(request)
    site.need_post(request, "admin", csrf)
    try:
        token = store.add_annotator(site.engine, _project(site, project_id)["id"], name)
    except ValueError as e:
        raise HTTPException(400, str(e)) from None
    return _dashboard(request, project_id, (name.strip(), token))


def _annotator(request: Request, project_id: int, annotator_id: int, csrf: str) -> dict:
    site = site_of(request)
    site.need_post(request, "admin", csrf)
    who = store.annotator(site.engine, _project(site, project_id)["id"], annotator_id)
    if who is None:
        raise HTTPException(404, f"no annotator {annotator_id} in project {project_id}")
    return who


@router.post("/projects/{project_id}/annotators/{annotator_id}/revoke")
def revoke(request: Request, project_id: Id, annotator_id: Id, csrf: Csrf) -> Response:
    """The annotator's token and every session of theirs stop working now; their answers stay."""
    who = _annotator(request, project_id, annotator_id, csrf)
    sessions.revoke_token(site_of(request).engine, who["id"])
    return RedirectResponse(f"/admin/projects/{project_id}", status_code=303)


@router.post("/projects/{project_id}/annotators/{annotator_id}/token")
def reissue(request: Request, project_id: Id, annotator_id: Id, csrf: Csrf) -> Response:
    """A new login token (shown on this page only); the old token and its sessions stop working."""
    who = _annotator(request, project_id, annotator_id, csrf)
    token = sessions.reissue_token(site_of(request).engine, who["id"])
    return _dashboard(request, project_id, (who["name"], token))


@router.get("/projects/{project_id}/export/{name}")
def export(request: Request, project_id: Id, name: str) -> Response:
    """One export file as a download, made fresh from the database."""
    site = site_of(request)
    site.need(request, "admin")
    project = _project(site, project_id)
    if name not in FILES:
        raise HTTPException(404, f"exports are {', '.join(FILES)}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            export_project(site.engine, project, tmp)
        except ValueError as e:
            raise HTTPException(400, str(e)) from None
        # The report's file:line locations name the downloaded file, not this server's temp folder.
        body = (Path(tmp) / name).read_bytes().replace(f"{tmp}/".encode(), b"")
    media = "application/json" if name.endswith(".json") else "application/x-ndjson"
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", project["name"])  # a header is ASCII
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{stem}-{name}"'})
