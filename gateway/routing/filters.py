"""Filters: the candidates a request may go to. Every preset runs all three, in this order.

- ``model``: backends that serve the requested model (configured, or learned from ``/v1/models``);
- ``healthy``: backends that pass health checks and are not ejected (``Backend.routable``);
- ``not_excluded``: backends this request has not already tried (a retry goes elsewhere).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from gateway.fleet.backends import Backend
    from gateway.fleet.view import FleetView
    from gateway.routing.types import RequestFeatures


class ModelFilter:
    type: ClassVar[str] = "model"
    reads: ClassVar[frozenset[str]] = frozenset({"model"})

    def keep(
        self, request: RequestFeatures, backends: tuple[Backend, ...], view: FleetView, excluded: frozenset[str]
    ) -> tuple[Backend, ...]:
        return tuple(b for b in backends if request.model in b.models)


class HealthyFilter:
    type: ClassVar[str] = "healthy"
    reads: ClassVar[frozenset[str]] = frozenset({"health"})

    def keep(
        self, request: RequestFeatures, backends: tuple[Backend, ...], view: FleetView, excluded: frozenset[str]
    ) -> tuple[Backend, ...]:
        return tuple(b for b in backends if b.routable(view.now))


class NotExcludedFilter:
    type: ClassVar[str] = "not_excluded"
    reads: ClassVar[frozenset[str]] = frozenset()

    def keep(
        self, request: RequestFeatures, backends: tuple[Backend, ...], view: FleetView, excluded: frozenset[str]
    ) -> tuple[Backend, ...]:
        return tuple(b for b in backends if b.id not in excluded) if excluded else backends


FILTERS = (ModelFilter(), HealthyFilter(), NotExcludedFilter())
