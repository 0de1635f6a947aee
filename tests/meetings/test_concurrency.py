"""Twenty secretaries book the same site for the same hour at the same instant: exactly one gets it."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from app.db import commit_scope, db
from app.meetings.models import Occurrence, OccurrenceStatus
from app.meetings.service import BookingRefused, BookingRequest, book_meeting
from app.sites.demo import seed
from app.sites.models import Site

from .conftest import local


def _book_at_once(app, requests: list[BookingRequest]) -> list[str]:
    """Each request from its own thread, all released at the same instant; what each secretary was told."""
    barrier = threading.Barrier(len(requests))
    outcomes: list[str] = []
    lock = threading.Lock()

    def secretary(request: BookingRequest) -> None:
        try:
            with app.app_context():
                barrier.wait(timeout=30)
                try:
                    with commit_scope() as session:
                        book_meeting(session, request)
                    outcome = "booked"
                except BookingRefused as exc:
                    outcome = f"refused {exc.status}"
                finally:
                    db.session.remove()
        except Exception as exc:  # anything else is a failure of the test, reported by the caller's assert
            outcome = f"error {type(exc).__name__}: {exc}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=secretary, args=(r,)) for r in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return outcomes


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_twenty_simultaneous_bookings_of_one_site_give_one_meeting_and_nineteen_refusals(fresh_app, backend, day):
    app = fresh_app(backend)
    with app.app_context(), commit_scope() as session:
        seed(session)
    with app.app_context():
        host_id = db.session.scalar(sa.select(Site.id).where(Site.code == "TQ"))
        site_id = db.session.scalar(sa.select(Site.id).where(Site.code == "TQ-NH-TT"))
        db.session.remove()

    outcomes = _book_at_once(app, [
        BookingRequest(title=f"Họp số {n}", host_site_id=host_id, site_ids=[site_id],
                       starts_at=local(day, "14:00"), ends_at=local(day, "15:00")) for n in range(20)])
    assert sorted(outcomes) == ["booked"] + ["refused 409"] * 19, outcomes
    with app.app_context():
        held = db.session.scalar(sa.select(sa.func.count(Occurrence.id)).where(
            Occurrence.status == OccurrenceStatus.SCHEDULED))
        db.session.remove()
    assert held == 1


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_bookings_naming_the_bridge_and_bookings_letting_vcops_pick_it_never_overfill_it(fresh_app, backend, day):
    # The districts book at once, each with one of its communes: no site or link in common, only the bridge.
    # Half name the bridge, half let VCOps pick. It has ports for one of these meetings only, so exactly one
    # may get it, however the requests interleave.
    from app.sites.models import Bridge

    app = fresh_app(backend)
    with app.app_context(), commit_scope() as session:
        seed(session)
        bridge = session.scalar(sa.select(Bridge))
        bridge.total_ports = 3  # each meeting holds two: a room at the district and one at the commune
    with app.app_context():
        bridge_id = db.session.scalar(sa.select(Bridge.id))
        pairs = []
        for district in db.session.scalars(sa.select(Site).where(Site.code.like("TQ-__")).order_by(Site.code)):
            commune = db.session.scalar(sa.select(Site.id).where(Site.parent_id == district.id).limit(1))
            pairs.append((district.id, commune))
        db.session.remove()
    assert len(pairs) >= 6

    outcomes = _book_at_once(app, [
        BookingRequest(title=f"Họp số {n}", host_site_id=host_id, site_ids=[commune_id],
                       starts_at=local(day, "14:00"), ends_at=local(day, "15:00"),
                       bridge_id=bridge_id if n % 2 else None) for n, (host_id, commune_id) in enumerate(pairs)])
    assert sorted(outcomes) == ["booked"] + ["refused 409"] * (len(pairs) - 1), outcomes
