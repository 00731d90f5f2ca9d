"""The database ports: the repositories services use, as Protocols (no SQLAlchemy here).

A port is the interface a service depends on; an adapter implements it. Here the
adapter is :mod:`strato.db.sql` (``SqlDatabase``, on SQLAlchemy 2 asyncio for SQLite
and PostgreSQL) with its ``strato/db/_*.py`` modules, one per repository, each named as
the port module it implements (``_instances.py`` implements ``ports/instances.py``).
Every method is one transaction. Domain errors only: ``NotFound`` for a missing row,
``InvalidState`` when a compare-and-swap finds another state, ``Conflict`` for a
duplicate.

============================  ==============================================================
module                        holds
============================  ==============================================================
``database``                  ``Database``: every repository below, and the clock
``instances``                 ``InstanceRepo``, ``InstanceQuery``, ``ANY_TASK_STATE``
``catalog``                   ``FlavorRepo``
``images``                    ``ImageRepo``, ``ImageQuery``, ``ImageSort``, ``IMAGE_SORT_KEYS``
``nodes``                     ``NodeRepo``, ``NodeRecord``, ``NodeChanges``,
                              ``ComputeServiceState``, ``AllocationHealing``,
                              ``HealedAllocation``
``services``                  ``ServiceRepo``, ``ServiceRecord``
``actions``                   ``ActionRepo``
``quotas``                    ``QuotaRepo``
``identity``                  ``IdentityRepo``
``aggregates``                ``AggregateRepo``
``server_groups``             ``ServerGroupRepo``
``placement``                 ``PlacementRepo``, ``GroupMembers``
``networks``                  ``NetworkRepo``
``security_groups``           ``SecurityGroupRepo``
``keypairs``                  ``KeyPairRepo``
============================  ==============================================================

Every name is re-exported here: ``from strato.db.ports import Database, InstanceQuery``.
"""

from strato.db.ports.actions import ActionRepo
from strato.db.ports.aggregates import AggregateRepo
from strato.db.ports.catalog import FlavorRepo
from strato.db.ports.database import Database
from strato.db.ports.identity import IdentityRepo
from strato.db.ports.images import IMAGE_SORT_KEYS, ImageQuery, ImageRepo, ImageSort
from strato.db.ports.instances import ANY_TASK_STATE, InstanceQuery, InstanceRepo
from strato.db.ports.keypairs import KeyPairRepo
from strato.db.ports.networks import NetworkRepo
from strato.db.ports.nodes import (
    AllocationHealing,
    ComputeServiceState,
    HealedAllocation,
    NodeChanges,
    NodeRecord,
    NodeRepo,
)
from strato.db.ports.placement import GroupMembers, PlacementRepo
from strato.db.ports.quotas import QuotaRepo
from strato.db.ports.security_groups import SecurityGroupRepo
from strato.db.ports.server_groups import ServerGroupRepo
from strato.db.ports.services import ServiceRecord, ServiceRepo

__all__ = ["ActionRepo", "AggregateRepo", "ComputeServiceState", "Database", "GroupMembers",
           "NetworkRepo", "NodeChanges", "PlacementRepo", "SecurityGroupRepo",
           "NodeRecord", "ServerGroupRepo", "FlavorRepo", "IdentityRepo", "IMAGE_SORT_KEYS",
           "ImageQuery", "ImageRepo", "ImageSort", "InstanceQuery", "InstanceRepo", "NodeRepo",
           "QuotaRepo", "ServiceRecord", "ServiceRepo", "ANY_TASK_STATE", "AllocationHealing",
           "HealedAllocation", "KeyPairRepo"]
