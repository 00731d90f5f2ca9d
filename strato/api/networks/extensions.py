"""``/networking/v2.0/extensions``: the Neutron API extensions strato implements.

Clients ask before they use an attribute an extension adds (``openstack port create``
asks for ``tag-ports-during-bulk-creation`` and takes a 404 as "no"), so the list names
only what the API does: an extension whose attributes are shown but fixed (``tags``,
``port_security_enabled``, ``router:external``, ``revision_number``) is not listed.
Each entry has Neutron's shape; names and dates are neutron-lib's.
"""

from __future__ import annotations

from typing import Any

__all__ = ["all_extensions", "find"]

# alias -> (name, description, updated)
_EXTENSIONS: dict[str, tuple[str, str, str]] = {
    "binding": ("Port Binding", "Expose port bindings of a virtual port to external "
                "application", "2014-02-03T10:00:00-00:00"),
    "empty-string-filtering": ("Empty String Filtering Extension", "Allow filtering by "
                               "attributes with empty string value",
                               "2018-05-01T10:00:00-00:00"),
    "ip-substring-filtering": ("IP address substring filtering", "Provides IP address "
                               "substring filtering when listing ports",
                               "2017-11-28T09:00:00-00:00"),
    "net-mtu": ("Network MTU", "Provides MTU attribute for a network resource.",
                "2015-03-25T10:00:00-00:00"),
    "net-mtu-writable": ("Network MTU (writable)", "Provides a writable MTU attribute "
                         "for a network resource.", "2017-07-12T00:00:00-00:00"),
    "pagination": ("Pagination support", "Extension that indicates that pagination is "
                   "enabled.", "2016-06-12T00:00:00-00:00"),
    "project-id": ("project_id field enabled", "Extension that indicates that project_id "
                   "field is enabled.", "2016-09-09T09:09:09-09:09"),
    "security-group": ("security-group", "The security groups extension.",
                       "2012-10-05T10:00:00-00:00"),
    "sorting": ("Sorting support", "Extension that indicates that sorting is enabled.",
                "2016-06-12T00:00:00-00:00"),
    "standard-attr-description": ("standard-attr-description", "Extension to add "
                                  "descriptions to standard attributes",
                                  "2016-02-10T10:00:00-00:00"),
    "standard-attr-timestamp": ("Resource timestamps", "Adds created_at and updated_at "
                                "fields to all Neutron resources that have Neutron "
                                "standard attributes.", "2016-09-12T10:00:00-00:00"),
}


def _view(alias: str) -> dict[str, Any]:
    name, description, updated = _EXTENSIONS[alias]
    return {"alias": alias, "name": name, "description": description,
            "updated": updated, "links": []}


def all_extensions() -> list[dict[str, Any]]:
    return [_view(alias) for alias in sorted(_EXTENSIONS)]


def find(alias: str) -> dict[str, Any] | None:
    return _view(alias) if alias in _EXTENSIONS else None
