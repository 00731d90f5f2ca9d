"""Default data a new cloud starts with: Nova's classic m1.* flavors, the default domain,
the admin project and user, and Keystone's default roles."""

from __future__ import annotations

from strato.db.ports import Database
from strato.domain.errors import Conflict
from strato.domain.identity import DEFAULT_DOMAIN_ID, DEFAULT_ROLES, Project, User
from strato.domain.ids import FlavorId
from strato.domain.resources import Flavor
from strato.identity.passwords import hash_password, verify_password

__all__ = ["ADMIN_NAME", "DEFAULT_FLAVORS", "seed_admin", "seed_defaults"]

ADMIN_NAME = "admin"

DEFAULT_FLAVORS: tuple[Flavor, ...] = (
    Flavor(id=FlavorId("1"), name="m1.tiny", vcpus=1, memory_mb=512, root_gb=1),
    Flavor(id=FlavorId("2"), name="m1.small", vcpus=1, memory_mb=2048, root_gb=20),
    Flavor(id=FlavorId("3"), name="m1.medium", vcpus=2, memory_mb=4096, root_gb=40),
    Flavor(id=FlavorId("4"), name="m1.large", vcpus=4, memory_mb=8192, root_gb=80),
    Flavor(id=FlavorId("5"), name="m1.xlarge", vcpus=8, memory_mb=16384, root_gb=160),
)


async def seed_defaults(db: Database) -> int:
    """Create any default flavor that is missing; return how many were created."""
    created = 0
    for flavor in DEFAULT_FLAVORS:
        try:
            await db.flavors.create(flavor)
            created += 1
        except Conflict:
            pass
    return created


async def seed_admin(db: Database, password: str | None = None, *,
                     reset: bool = False) -> tuple[User, Project]:
    """The admin user and its project in the default domain, created when missing; the
    user holds every default role on the project. ``password``, when given, becomes the
    user's password if it has none yet (it was just created), as ``keystone-manage
    bootstrap`` leaves an existing admin's password alone: a password changed through
    the Identity API survives a restart. ``reset`` sets it anyway (an operator's
    explicit ``strato bootstrap --reset-admin-password``)."""
    await db.identity.ensure_domain(DEFAULT_DOMAIN_ID, "Default")
    project = await db.identity.ensure_project(ADMIN_NAME, "Administrators of this cloud")
    user = await db.identity.ensure_user(ADMIN_NAME, project.id)
    for name in DEFAULT_ROLES:
        role = await db.identity.ensure_role(name)
        await db.identity.assign_role(user.id, project.id, role.id)
    if password is not None and (reset or await db.identity.password_hash(user.id) is None):
        await _set_password(db, user, password)
    return user, project


async def _set_password(db: Database, user: User, password: str) -> None:
    # Hashing is deliberately slow: skip it when the stored hash already matches.
    if not verify_password(password, await db.identity.password_hash(user.id)):
        await db.identity.set_password_hash(user.id, hash_password(password))
