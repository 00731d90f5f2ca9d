"""The public API client puts ids and names into its paths as single escaped segments:
an id like ``../os-services`` can never reach another route."""

from __future__ import annotations

import httpx

from strato.client import CloudClient


async def test_ids_and_names_are_one_path_segment_each() -> None:
    seen: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path)
        return httpx.Response(404, json={"itemNotFound": {"code": 404, "message": "no"}})

    async with CloudClient("http://strato", "t",
                           transport=httpx.MockTransport(answer)) as client:
        for call in (client.server("../os-hypervisors"),
                     client.delete_server("../../identity/v3/users"),
                     client.server_action("a/b", "reboot"),
                     client.instance_actions("x/../y"),
                     client.instance_action("s", "../r"),
                     client.delete_keypair("../../os-services"),
                     client.image("../images"),
                     client.delete_image("a?b#c"),
                     client.upload_image_data("../x", b"")):
            try:
                await call
            except Exception as exc:  # every answer is a 404 here
                assert getattr(exc, "status", None) == 404
    assert seen == [
        b"/v2.1/servers/..%2Fos-hypervisors",
        b"/v2.1/servers/..%2F..%2Fidentity%2Fv3%2Fusers",
        b"/v2.1/servers/a%2Fb/action",
        b"/v2.1/servers/x%2F..%2Fy/os-instance-actions",
        b"/v2.1/servers/s/os-instance-actions/..%2Fr",
        b"/v2.1/os-keypairs/..%2F..%2Fos-services",
        b"/image/v2/images/..%2Fimages",
        b"/image/v2/images/a%3Fb%23c",
        b"/image/v2/images/..%2Fx/file",
    ]
