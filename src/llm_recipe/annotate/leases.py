"""Who gets which item: a short reservation (lease) per annotator, so overlap holds under concurrency.

An item needs `overlap` labels. Picking the next item for an annotator happens in one transaction
that holds the write lock (`db.write_locked`): it counts the item's labels plus the live leases of
other annotators, and writes this annotator's lease on the item it picks only if that sum is still
below the overlap. So however many annotators ask at once, an item is handed out at most `overlap`
times at a time, and a lease holder's answer always fits.

    next_item(engine, project, annotator, lease_s)   the annotator's leased item (a reload shows the
                                                     same one, its lease renewed), else a new lease
    save_answer(engine, project, item, annotator, ...)  stored only if it fits: an edit, a skip, an
                                                     answer under a live lease, or one whose item
                                                     still has room; else ItemFull (nothing stored)

A lease expires `lease_s` after it was given (or last shown): an annotator who walks away frees the
item for someone else. Items others have started come first (they reach the overlap and become
measurable early), then a per-annotator rotation of the rest, so annotators do not crowd one item.
A skip does not count towards the overlap (the item stays open for others).
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import BigInteger, and_, cast, func, literal, select, union_all
from sqlalchemy.engine import Connection, Engine

from .db import items, labels, leases, write_locked


class ItemFull(ValueError):
    """The item got its labels from others while this annotator's lease had expired; nothing stored."""


def _big(value: int):
    """A 64-bit literal (PostgreSQL would bind a Python int as a 32-bit integer and overflow)."""
    return literal(value, BigInteger)


def _taken(item_id, annotator_id: int, now: float):
    """Labels of the item plus live leases of other annotators on it: the slots of the overlap in use."""
    n_labels = select(func.count(labels.c.id)).where(and_(labels.c.item_id == item_id, labels.c.value.is_not(None)))
    n_leases = select(func.count()).select_from(leases).where(and_(
        leases.c.item_id == item_id, leases.c.annotator_id != annotator_id, leases.c.expires_at > now))
    return n_labels.scalar_subquery() + n_leases.scalar_subquery()


def _answered(item_id, annotator_id: int):
    return select(labels.c.id).where(and_(labels.c.item_id == item_id, labels.c.annotator_id == annotator_id)).exists()


def _lease(conn: Connection, annotator_id: int, item_id: int, until: float) -> None:
    conn.execute(leases.delete().where(leases.c.annotator_id == annotator_id))
    conn.execute(leases.insert().values(annotator_id=annotator_id, item_id=item_id, expires_at=until))


def _held(conn: Connection, project: dict, annotator_id: int, now: float) -> int | None:
    """The item this annotator holds a lease on and may still answer (its lease live, or expired with
    the item still short of labels and leases), else None."""
    row = conn.execute(select(leases.c.item_id).where(leases.c.annotator_id == annotator_id)).first()
    if row is None:
        return None
    item_id = row[0]
    open_ = conn.execute(select(items.c.id).where(and_(
        items.c.id == item_id, items.c.project_id == project["id"], ~_answered(items.c.id, annotator_id),
        _taken(items.c.id, annotator_id, now) < project["overlap"]))).first()
    return item_id if open_ is not None else None


def _pick(project: dict, annotator_id: int, now: float):
    """The query of the next item: open for this annotator, most slots in use first, then the rotation.
    The slots in use are counted once for the project (a GROUP BY joined to the items), not per item."""
    in_use = union_all(
        select(labels.c.item_id).where(and_(labels.c.project_id == project["id"], labels.c.value.is_not(None))),
        select(leases.c.item_id).where(and_(leases.c.annotator_id != annotator_id, leases.c.expires_at > now)),
    ).subquery()
    counts = select(in_use.c.item_id, func.count().label("n")).group_by(in_use.c.item_id).subquery()
    taken = func.coalesce(counts.c.n, 0)
    mine = select(labels.c.item_id).where(labels.c.annotator_id == annotator_id)
    spread = ((cast(items.c.id, BigInteger) * _big(2654435761) + _big(annotator_id * 40503 % 4294967291))
              % _big(4294967291))
    return (select(items.c.id).outerjoin(counts, counts.c.item_id == items.c.id)
            .where(and_(items.c.project_id == project["id"], taken < project["overlap"], items.c.id.not_in(mine)))
            .order_by(taken.desc(), spread).limit(1))


def next_item(engine: Engine, project: dict, annotator_id: int, lease_s: float) -> int | None:
    """The id of the item this annotator works on now, leased to them for `lease_s` seconds; None when
    nothing is left for them."""
    now = time.time()
    with write_locked(engine, project["id"], durable=False) as conn:
        held = _held(conn, project, annotator_id, now)
        if held is not None:
            _lease(conn, annotator_id, held, now + lease_s)
            return held
        item_id = conn.execute(_pick(project, annotator_id, now)).scalar()
        if item_id is None:
            conn.execute(leases.delete().where(leases.c.annotator_id == annotator_id))
            return None
        _lease(conn, annotator_id, item_id, now + lease_s)
        return item_id


def save_answer(engine: Engine, project: dict, item_id: int, annotator_id: int, value: Any, shown: list[int],
                skip_reason: str | None = None) -> None:
    """Store (or edit) this annotator's answer to the item, committed before returning, and end their
    lease on it. One row per (item, annotator): a repeated submission (a retry, a double click, an
    edit) updates it. A new label for an item whose overlap is full (this annotator's lease expired
    and others answered it) is ItemFull, and nothing is stored."""
    now = time.time()
    fields = {"value": None if value is None else json.dumps(value), "skip_reason": skip_reason,
              "shown": json.dumps(shown), "guidelines_version": project["guidelines_version"], "updated_at": now}
    mine = and_(labels.c.item_id == item_id, labels.c.annotator_id == annotator_id)
    with write_locked(engine, project["id"]) as conn:
        if conn.execute(labels.update().where(mine).values(**fields)).rowcount == 0:
            leased = conn.execute(select(leases.c.annotator_id).where(and_(
                leases.c.annotator_id == annotator_id, leases.c.item_id == item_id, leases.c.expires_at > now))
            ).first() is not None
            full = conn.execute(select(_taken(item_id, annotator_id, now))).scalar_one() >= project["overlap"]
            if value is not None and full and not leased:
                raise ItemFull(f"item {item_id} has its {project['overlap']} labels already (your reservation "
                               "expired meanwhile); your answer was not stored: go on with the next item")
            conn.execute(labels.insert().values(project_id=project["id"], item_id=item_id, annotator_id=annotator_id,
                                                created_at=now, **fields))
        conn.execute(leases.delete().where(and_(leases.c.annotator_id == annotator_id, leases.c.item_id == item_id)))
