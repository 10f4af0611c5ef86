"""The annotator's pages: the next item (guidelines, prompt, answers in this annotator's random
order, keyboard shortcuts, progress), answering, skipping with a reason, editing the last answer.

An annotator only ever sees items of their own project and their own answers; every answer is
stored under the logged-in annotator, whatever the form says. The next item comes with a reservation
(`leases.py`): no more annotators are sent to an item than its overlap still needs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from . import leases, store
from .auth import display_order
from .modes import MODES, InvalidChoice
from .site import MAX_ID, site_of

router = APIRouter()
Csrf = Annotated[str, Form(max_length=100)]
ItemId = Annotated[int, Form(ge=1, le=MAX_ID)]


def _project_of(site, user: dict) -> dict:
    project = store.project(site.engine, user["project_id"])
    if project is None:
        raise HTTPException(404, "your project no longer exists")
    return project


def _page(request: Request, user: dict, project: dict, item: dict | None, current: str | None = None,
          skip_reason: str | None = None) -> Response:
    site = site_of(request)
    shown = display_order(site.secret, user["id"], item["id"], len(item["responses"])) if item else []
    return site.render("annotate.html", user=user, project=project, item=item, current=current,
                       skip_reason=skip_reason, editing=current is not None or skip_reason is not None,
                       answers=[(d + 1, item["responses"][i]) for d, i in enumerate(shown)] if item else [],
                       progress=store.progress(site.engine, project, user["id"]),
                       has_last=store.last_answer(site.engine, user["id"]) is not None)


@router.get("/annotate")
def next_item(request: Request) -> Response:
    site = site_of(request)
    user = site.need(request, "annotator")
    project = _project_of(site, user)
    item_id = leases.next_item(site.engine, project, user["id"], site.lease_s)
    return _page(request, user, project, None if item_id is None else store.item(site.engine, project["id"], item_id))


@router.get("/annotate/edit")
def edit_last(request: Request) -> Response:
    site = site_of(request)
    user = site.need(request, "annotator")
    last = store.last_answer(site.engine, user["id"])
    if last is None:
        raise HTTPException(404, "you have not answered anything yet")
    ans, project = last.pop("answer"), _project_of(site, user)
    current = None if ans["value"] is None else MODES[project["mode"]].choice_of(ans["value"], ans["shown"])
    return _page(request, user, project, last, current, ans["skip_reason"])


def _store(request: Request, csrf: str, item_id: int, value=None, choice: str | None = None,
           skip_reason: str | None = None) -> Response:
    site = site_of(request)
    user = site.need_post(request, "annotator", csrf)
    project = _project_of(site, user)
    item = store.item(site.engine, project["id"], item_id)
    if item is None:  # another project's item, or none at all
        raise HTTPException(404, f"no item {item_id} in your project")
    shown = display_order(site.secret, user["id"], item["id"], len(item["responses"]))
    if choice is not None:
        try:
            value = MODES[project["mode"]].parse(choice, shown)
        except InvalidChoice as e:
            raise HTTPException(400, str(e)) from None
    try:
        leases.save_answer(site.engine, project, item["id"], user["id"], value, shown, skip_reason)
    except leases.ItemFull as e:
        raise HTTPException(409, str(e)) from None
    return RedirectResponse("/annotate", status_code=303)  # only after the commit


@router.post("/annotate/answer")
def answer(request: Request, csrf: Csrf, item: ItemId, choice: Annotated[str, Form(max_length=200)]) -> Response:
    return _store(request, csrf, item, choice=choice)


@router.post("/annotate/skip")
def skip(request: Request, csrf: Csrf, item: ItemId,
         reason: Annotated[str, Form(min_length=1, max_length=500)]) -> Response:
    if not reason.strip():
        raise HTTPException(400, "say why you skip this item")
    return _store(request, csrf, item, skip_reason=reason.strip())
