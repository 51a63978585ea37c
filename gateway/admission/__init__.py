"""Priority admission: admit, wait in a bounded priority queue, or shed (429), as a fleet decision.

``rules`` says how full the fleet is (one rule per backend, used for the pressure and the store's load
limit alike); ``queue`` holds the waiting requests of this replica and shares its queue depths.
"""

from gateway.admission.queue import Admission, Ticket
from gateway.admission.rules import (
    PRIORITIES,
    AdmissionEvents,
    LoadLimit,
    Look,
    Pressure,
    Routable,
    Shed,
    admissible,
    effective_load,
    fleet_pressure,
    priority_of,
)

__all__ = [
    "PRIORITIES",
    "Admission",
    "AdmissionEvents",
    "LoadLimit",
    "Look",
    "Pressure",
    "Routable",
    "Shed",
    "Ticket",
    "admissible",
    "effective_load",
    "fleet_pressure",
    "priority_of",
]
