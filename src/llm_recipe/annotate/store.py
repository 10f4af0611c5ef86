"""Reads and writes of the annotation database. Each write is one transaction, committed before
the function returns: the page advances only after its answer is on disk."""

from __future__ import annotations

import json
import os
import re
import time

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from ..config import AgreementConfig
from .auth import new_token, token_hash
from .db import items, labels, projects, users
from .modes import MODES
from .sessions import is_revoked, set_token_hash
from .sources import read_items

NAME = re.compile(r"[\w][\w .@-]{0,63}")  # project and annotator names: no markup, no control characters


def check_name(name: str, what: str) -> str:
    name = name.strip()
    if not NAME.fullmatch(name):
        raise ValueError(f"{what} name must be 1-64 letters, digits, spaces or . _ @ - (got {name[:70]!r})")
    return name


def create_project(engine: Engine, name: str, mode: str, guidelines: str, overlap: int, source: str | os.PathLike,
                   shown_name: str | None = None, min_agreement: float = AgreementConfig().min_agreement) -> int:
    """A project with the items of `source` (named `shown_name` in messages); returns its id. Bad
    records are skipped, and the project keeps the count and first location of each reason."""
    name = check_name(name, "project")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
    if not 2 <= overlap <= 50:
        raise ValueError("overlap must be 2..50: agreement needs at least two annotators per item")
    if not 0 <= min_agreement <= 1:
        raise ValueError("min_agreement must be between 0 and 1")
    if len(guidelines) > 50_000:
        raise ValueError("guidelines are limited to 50,000 characters")
    shown_name = shown_name or str(source)
    try:
        found, log = read_items(source, mode)
    except FileNotFoundError as e:  # an unknown format: the message names the upload, not a temp path
        raise ValueError(str(e).splitlines()[0].replace(str(source), shown_name)) from None
    firsts = "; ".join(f"{r} first at {ws[0]}" for r, ws in log.where.items() if ws).replace(str(source), shown_name)
    report = log.summary() + (f" ({firsts})" if firsts else "")
    if not found:
        raise ValueError(f"{shown_name}: no usable items: {report if log.total_skipped else 'the file is empty'}")
    with engine.begin() as conn:
        if conn.execute(select(projects.c.id).where(projects.c.name == name)).first():
            raise ValueError(f"a project named {name!r} exists already")
        pid = conn.execute(projects.insert().values(
            name=name, mode=mode, guidelines=guidelines, guidelines_version=1, overlap=overlap,
            min_agreement=min_agreement, source=shown_name[:300], source_report=report,
            created_at=time.time())).inserted_primary_key[0]
        conn.execute(items.insert(), [
            {"project_id": pid, "ext_id": it["ext_id"], "prompt": json.dumps(it["prompt"], ensure_ascii=False),
             "responses": json.dumps(it["responses"], ensure_ascii=False),
             "where": it["where"].replace(str(source), shown_name)[:300]} for it in found])
    return pid


def _new_user(conn, project_id: int | None, name: str, role: str) -> str:
    token = new_token()
    conn.execute(users.insert().values(project_id=project_id, name=name, role=role, token_hash=token_hash(token),
                                       created_at=time.time()))
    return token


def admin_token(engine: Engine, renew: bool = False) -> str | None:
    """A new admin token when there is no admin yet (or `renew`: the old one and the admin's sessions
    stop working), else None."""
    with engine.begin() as conn:
        exists = conn.execute(select(users.c.id).where(users.c.role == "admin")).first()
        if exists and not renew:
            return None
        if not exists:
            return _new_user(conn, None, "admin", "admin")
        token = new_token()
        set_token_hash(conn, exists[0], token_hash(token))
        return token


def add_annotator(engine: Engine, project_id: int, name: str) -> str:
    """The new annotator's login token (shown once; only its hash is stored)."""
    name = check_name(name, "annotator")
    try:
        with engine.begin() as conn:
            return _new_user(conn, project_id, name, "annotator")
    except IntegrityError:
        raise ValueError(f"the project has an annotator named {name!r} already") from None


def user_of_token(engine: Engine, token: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.token_hash == token_hash(token))).mappings().first()
    return dict(row) if row else None


def project(engine: Engine, project_id: int) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(select(projects).where(projects.c.id == project_id)).mappings().first()
    return dict(row) if row else None


def all_projects(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(projects).order_by(projects.c.id)).mappings()]


def project_by_name(engine: Engine, name: str) -> dict:
    with engine.connect() as conn:
        row = conn.execute(select(projects).where(projects.c.name == name)).mappings().first()
    if row is None:
        raise ValueError(f"no project named {name!r} in this database")
    return dict(row)


def annotators(engine: Engine, project_id: int) -> list[dict]:
    """{"id", "name", "revoked"} of the project's annotators."""
    with engine.connect() as conn:
        q = select(users.c.id, users.c.name, users.c.token_hash).where(users.c.project_id == project_id
                                                                        ).order_by(users.c.id)
        return [{"id": r["id"], "name": r["name"], "revoked": is_revoked(r)} for r in conn.execute(q).mappings()]


def annotator(engine: Engine, project_id: int, annotator_id: int) -> dict | None:
    return next((a for a in annotators(engine, project_id) if a["id"] == annotator_id), None)


def set_guidelines(engine: Engine, project_id: int, text: str) -> None:
    """New guidelines get a new version; answers record the version they were given under."""
    if len(text) > 50_000:
        raise ValueError("guidelines are limited to 50,000 characters")
    with engine.begin() as conn:
        conn.execute(projects.update().where(projects.c.id == project_id).values(
            guidelines=text, guidelines_version=projects.c.guidelines_version + 1))


def _item(row) -> dict:
    return {**dict(row), "prompt": json.loads(row["prompt"]), "responses": json.loads(row["responses"])}


def item(engine: Engine, project_id: int, item_id: int) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(select(items).where(and_(items.c.id == item_id, items.c.project_id == project_id))
                           ).mappings().first()
    return _item(row) if row else None


def progress(engine: Engine, project: dict, annotator_id: int) -> dict:
    """{"done", "skipped", "left"}: left are items this annotator has not answered or skipped whose
    labels are still short of the overlap (labels counted once per project, not per item)."""
    counts = (select(labels.c.item_id, func.count().label("n"))
              .where(and_(labels.c.project_id == project["id"], labels.c.value.is_not(None)))
              .group_by(labels.c.item_id).subquery())
    mine = select(labels.c.item_id).where(labels.c.annotator_id == annotator_id)
    open_ = (select(func.count()).select_from(items.outerjoin(counts, counts.c.item_id == items.c.id))
             .where(and_(items.c.project_id == project["id"], items.c.id.not_in(mine),
                         func.coalesce(counts.c.n, 0) < project["overlap"])))
    with engine.connect() as conn:
        left = conn.execute(open_).scalar_one()
        rows = conn.execute(select(labels.c.value.is_(None), func.count()).where(labels.c.annotator_id == annotator_id)
                            .group_by(labels.c.value.is_(None))).all()
    counts = {bool(skipped): n for skipped, n in rows}
    return {"done": counts.get(False, 0), "skipped": counts.get(True, 0), "left": left}


def last_answer(engine: Engine, annotator_id: int) -> dict | None:
    """This annotator's most recent new answer (label or skip), with its item."""
    q = (select(labels.c.value, labels.c.skip_reason, labels.c.shown, items)
         .join(items, items.c.id == labels.c.item_id).where(labels.c.annotator_id == annotator_id)
         .order_by(labels.c.created_at.desc(), labels.c.id.desc()).limit(1))
    with engine.connect() as conn:
        row = conn.execute(q).mappings().first()
    if row is None:
        return None
    out = _item({c.name: row[c.name] for c in items.c})
    out["answer"] = {"value": None if row["value"] is None else json.loads(row["value"]),
                     "skip_reason": row["skip_reason"], "shown": json.loads(row["shown"])}
    return out


def answers(engine: Engine, project_id: int) -> list[dict]:
    """Every answer of the project with its item and annotator, in item order then answer order."""
    q = (select(labels.c.value, labels.c.skip_reason, labels.c.shown, labels.c.guidelines_version,
                labels.c.updated_at, users.c.name.label("annotator"), items.c.id.label("item_id"), items.c.ext_id,
                items.c.prompt, items.c.responses)
         .join(items, items.c.id == labels.c.item_id).join(users, users.c.id == labels.c.annotator_id)
         .where(labels.c.project_id == project_id).order_by(items.c.id, labels.c.id))
    with engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    return [{**_item(r), "value": None if r["value"] is None else json.loads(r["value"]),
             "shown": json.loads(r["shown"])} for r in rows]


def item_counts(engine: Engine, project: dict) -> dict:
    """{"items", "complete"}: items with at least `overlap` labels are complete."""
    per_item = (select(labels.c.item_id, func.count().label("n")).where(
        and_(labels.c.project_id == project["id"], labels.c.value.is_not(None))).group_by(labels.c.item_id).subquery())
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(items).where(items.c.project_id == project["id"])).scalar_one()
        complete = conn.execute(select(func.count()).select_from(per_item).where(per_item.c.n >= project["overlap"])
                                ).scalar_one()
    return {"items": total, "complete": complete}
