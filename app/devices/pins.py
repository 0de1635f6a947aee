"""What SSH host keys and bridge certificates share: a fingerprint an address presented, pending until a
technician accepts it, at most one accepted (the pin) per address and port.

`Pin` is the columns both tables have; the functions below are the one lifecycle of a pin, for either model
(app.devices.hostkeys and app.devices.certificates add what is their own: what is recorded of a contact, the
refusal a device layer raises).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.db import commit_scope, utcnow

if TYPE_CHECKING:
    from app.auth.models import User


class Pin:
    """The columns of a pinned fingerprint (a mixin of HostKey and BridgeCertificate); `states` is the model's
    enum of pending / accepted."""

    states: type[enum.StrEnum]

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    address: so.Mapped[str] = so.mapped_column(sa.String(255))
    port: so.Mapped[int]
    fingerprint: so.Mapped[str] = so.mapped_column(sa.String(100))
    first_seen_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    last_seen_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    accepted_by_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    accepted_at: so.Mapped[dt.datetime | None]

    @so.declared_attr
    def accepted_by(cls) -> so.Mapped[User | None]:
        return so.relationship("User")


P = TypeVar("P", bound=Pin)


def pins_of(session: so.Session, model: type[P], address: str, port: int) -> list[P]:
    return list(session.scalars(sa.select(model).where(model.address == address, model.port == port)
                                .order_by(model.id)))


def pinned(session: so.Session, model: type[P], address: str, port: int) -> P | None:
    return session.scalar(sa.select(model).where(model.address == address, model.port == port,
                                                 model.state == model.states.ACCEPTED))


def record_contact(session: so.Session, model: type[P], address: str, port: int, fingerprint: str,
                   **recorded: Any) -> P:
    """The row of what this address presented now, recorded as pending (with `recorded`) when it is new."""
    row = session.scalar(sa.select(model).where(model.address == address, model.port == port,
                                                model.fingerprint == fingerprint))
    if row is None:
        row = model(address=address, port=port, fingerprint=fingerprint, **recorded)
        session.add(row)
        session.flush()
    else:
        # Straight to the table: a contact is not a change worth an audit entry.
        session.execute(sa.update(model).where(model.id == row.id).values(last_seen_at=utcnow()))
    return row


def contact(model: type[P], address: str, port: int, record: Callable[[so.Session], P]) -> tuple[bool, str | None]:
    """Record a contact in a short transaction of its own, committed at once (so a first contact or a change
    stays recorded although the connection is refused): (accepted?, the pinned fingerprint or None). Call it
    with no transaction of your own open."""
    for attempt in range(2):
        try:
            with commit_scope() as session:
                row = record(session)
                accepted = row.state == model.states.ACCEPTED
                pin = pinned(session, model, address, port)
                return accepted, (pin.fingerprint if pin is not None else None)
        except sa.exc.IntegrityError:
            if attempt:  # another worker recorded the same first contact meanwhile: read it again once
                raise
    raise AssertionError("unreachable")  # the loop returns or raises


def accept(session: so.Session, row: P, user: User | None) -> P:
    """Trust this fingerprint for its address and port; one accepted before for them is removed (replaced)."""
    model = type(row)
    if row.state == model.states.ACCEPTED:
        return row
    for old in pins_of(session, model, row.address, row.port):
        if old.state == model.states.ACCEPTED:
            session.delete(old)
    session.flush()  # the old pin is gone before the new one exists
    row.state = model.states.ACCEPTED
    row.accepted_by_id = user.id if user is not None else None
    row.accepted_at = utcnow()
    session.flush()
    return row


def forget(session: so.Session, row: Pin) -> None:
    """Drop a pin or a pending one (nobody will accept it, or it is to be learnt again at the next contact)."""
    session.delete(row)
    session.flush()


def pending(session: so.Session, model: type[P]) -> list[tuple[P, P | None]]:
    """What waits for a technician, newest first, each with the pin of the same address (when it changed)."""
    rows = list(session.scalars(sa.select(model).where(model.state == model.states.PENDING)
                                .order_by(model.first_seen_at.desc(), model.id.desc())))
    return [(row, pinned(session, model, row.address, row.port)) for row in rows]


def accepted(session: so.Session, model: type[P]) -> list[P]:
    return list(session.scalars(sa.select(model).where(model.state == model.states.ACCEPTED)
                                .order_by(model.address, model.port)))
