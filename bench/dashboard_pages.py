"""Dashboard page loads with 1,000 instances, over loopback HTTP, on the fake driver.

    python bench/dashboard_pages.py
    python bench/dashboard_pages.py --instances 1000 --repeat 30 --hosts 10

``strato up --hosts H`` (one process, SQLite, fake driver; H hosts with room for 256
m1.tiny servers each, reporting every ``--report-interval`` s, strato's default 10)
serves the API and the dashboard with uvicorn on a loopback port.
As admin, the benchmark lifts the admin project's quotas (``PUT /os-quota-sets/{id}``),
creates the servers through the public API (``POST /v2.1/servers`` with
``min_count = max_count``, ``--batch`` at a time) and waits until none is BUILD. It then
logs in to the dashboard (the login form, its CSRF cookie, the session cookie) and asks
for every page in turn over a keep-alive connection: 3 requests to warm up, then
``--repeat`` sequential ones, each timed from sending the request to the last byte of
the answer. Every answer must be 200 (a redirect to the login page is a failure). In the
same run, the API call the instances page rests on, ``GET /v2.1/servers/detail?limit=50``
with ``X-Auth-Token``, is measured the same way as a baseline.

With Chromium at /usr/bin/chromium, playwright then loads the instances page and one
detail page ``--browser-repeat`` (10) times each, after 3 navigations to warm up (the
first fills the cache of static files), with the session cookie in the browser context,
and reads navigation start to the end of the ``load`` event from the Navigation Timing
entry. With 10 navigations, p95 is the slowest of them.

Prints one JSON line per page (bench, page, path, instances, n, p50_ms, p95_ms, max_ms,
bytes, status, date, machine), one per browser page (p50_ms, p95_ms, max_ms of
``loadEventEnd``; response_end_p50_ms and _p95_ms: the HTML's last byte), then a summary
line: the setup figures and whether every page's p95 (HTTP and browser) is under
``--budget-ms`` (200).
``--profile`` adds one line per API call behind each page, timed directly against the
API with the same token (the calls the dashboard's pages made when this was written).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench.create_servers import ADMIN_PASSWORD, percentile, wait_for_hosts  # noqa: E402
from strato.client import CloudClient  # noqa: E402
from strato.client.auth import password_token  # noqa: E402
from strato.testing.cluster import Cluster, free_port  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
PREFIX = "/dashboard"
WARMUP = 3
# A fake host's vCPUs bound it: 16 x the allocation ratio 16 = 256 m1.tiny servers. The
# memory is raised so that it does not bind first (32 GiB x 1.5 would hold 96).
FAKE_MEMORY_MB = 131072
PER_HOST = 256
ROW = re.compile(r'<tr id="row-([0-9a-f-]{36})"')
NEXT = re.compile(r'<a href="([^"]+)" rel="next">')


def machine() -> str:
    try:
        debian = Path("/etc/debian_version").read_text().strip()
    except OSError:
        debian = platform.platform()
    return (f"Debian {debian}, {os.cpu_count()} CPU, {platform.machine()}, "
            f"Python {platform.python_version()}")


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


@contextlib.contextmanager
def cloud(data_dir: Path, hosts: int, report_interval: float) -> Iterator[Cluster]:
    """``strato up --hosts`` as its own process, as bench/create_servers.py starts it, with
    bigger fake hosts; stopped by its PID on the way out."""
    port = free_port()
    cluster = Cluster(env={
        **{k: v for k, v in os.environ.items() if not k.startswith("STRATO_")},
        "STRATO_DATA_DIR": str(data_dir), "STRATO_API__LISTEN": f"127.0.0.1:{port}",
        "STRATO_COMPUTE__REPORT_INTERVAL": str(report_interval), "STRATO_LOG_LEVEL": "WARNING",
        "STRATO_COMPUTE__HOST": "bench", "STRATO_COMPUTE__DRIVER": "fake",
        "STRATO_COMPUTE__FAKE__MEMORY_MB": str(FAKE_MEMORY_MB)}, data_dir=data_dir,
        api_url=f"http://127.0.0.1:{port}")
    try:
        cluster.start("up", "up", "--hosts", str(hosts))
        cluster.wait_for_api()
        yield cluster
    except BaseException:
        with contextlib.suppress(OSError):
            tail = cluster.log("up")[-3000:]
            print(f"--- the last of up.log ---\n{tail}", file=sys.stderr)
        raise
    finally:
        cluster.stop()


# -- setting up: 1,000 servers through the public API ---------------------------------


async def count_servers(client: CloudClient, **params: str) -> int:
    """Servers in the listing (every page of ``GET /v2.1/servers``)."""
    total, marker = 0, None
    while True:
        query: dict[str, Any] = {"limit": 1000, **params}
        if marker:
            query["marker"] = marker
        servers = (await client.request("GET", "/v2.1/servers", params=query)).json()[
            "servers"]
        total += len(servers)
        if len(servers) < 1000:
            return total
        marker = servers[-1]["id"]


async def populate(api_url: str, hosts: int, instances: int, batch: int,
                   timeout: float) -> tuple[str, dict[str, Any]]:
    """The admin's token and the setup figures, once ``instances`` servers are ACTIVE."""
    token = await password_token(api_url, user="admin", password=ADMIN_PASSWORD,
                                 project="admin")
    async with CloudClient(api_url, token, timeout=300) as client:
        await wait_for_hosts(client, hosts)
        project_id = (await client.token_info(token))["project"]["id"]
        await client.request("PUT", f"/v2.1/os-quota-sets/{project_id}", json={
            "quota_set": {"instances": instances, "cores": -1, "ram": -1}})
        image = await client.create_image("bench", b"\0" * 65536, disk_format="raw")
        flavor = next(f["id"] for f in await client.flavors() if f["name"] == "m1.tiny")
        start = time.monotonic()
        for first in range(0, instances, batch):
            count = min(batch, instances - first)
            await client.request("POST", "/v2.1/servers", json={"server": {
                "name": f"bench-{first // batch + 1:03d}", "imageRef": image,
                "flavorRef": flavor, "networks": "none", "min_count": count,
                "max_count": count}})
        posted = time.monotonic() - start
        async with asyncio.timeout(timeout):
            while await count_servers(client, status="BUILD"):
                await asyncio.sleep(1.0)
        built = time.monotonic() - start
        active = await count_servers(client, status="ACTIVE")
        total = await count_servers(client)
        if active != instances or total != instances:
            raise RuntimeError(f"{active} of {total} servers ACTIVE, wanted {instances}")
    return token, {"create_post_s": round(posted, 1), "create_active_s": round(built, 1),
                   "servers_per_s": round(instances / built, 1)}


# -- the dashboard over HTTP ------------------------------------------------------------


def cookies_of(resp: httpx.Response) -> dict[str, str]:
    """The cookies an answer sets (read from the headers: httpx keeps ``Secure`` cookies
    off plain http://)."""
    jar: SimpleCookie = SimpleCookie()
    for header in resp.headers.get_list("set-cookie"):
        jar.load(header)
    return {name: morsel.value for name, morsel in jar.items()}


def log_in(http: httpx.Client, password: str) -> dict[str, str]:
    """The dashboard's cookies after logging in as admin through the login form."""
    form = http.get(f"{PREFIX}/login")
    csrf = cookies_of(form).get("strato_csrf")
    if form.status_code != 200 or not csrf:
        raise RuntimeError(f"GET {PREFIX}/login: {form.status_code}, no CSRF cookie")
    resp = http.post(f"{PREFIX}/login", headers={"Cookie": f"strato_csrf={csrf}"}, data={
        "csrf": csrf, "username": "admin", "password": password,
        "next": f"{PREFIX}/instances"})
    session = cookies_of(resp).get("strato_session")
    if resp.status_code != 303 or not session:
        raise RuntimeError(f"POST {PREFIX}/login: {resp.status_code}, no session cookie: "
                           f"{resp.text[:300]}")
    return {"strato_csrf": csrf, "strato_session": session,
            **{k: v for k, v in cookies_of(resp).items() if k == "strato_project"}}


def get_ok(http: httpx.Client, path: str, headers: dict[str, str]) -> httpx.Response:
    resp = http.get(path, headers=headers)
    if resp.status_code != 200:
        raise RuntimeError(f"GET {path}: {resp.status_code} "
                           f"{resp.headers.get('location', '')} {resp.text[:300]!r}")
    return resp


def measure(http: httpx.Client, path: str, headers: dict[str, str],
            repeat: int) -> dict[str, Any]:
    for _ in range(WARMUP):
        get_ok(http, path, headers)
    times: list[float] = []
    size = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        resp = get_ok(http, path, headers)
        times.append((time.perf_counter() - t0) * 1000)
        size = len(resp.content)
    return {"n": repeat, "p50_ms": round(percentile(times, 0.5), 1),
            "p95_ms": round(percentile(times, 0.95), 1), "max_ms": round(max(times), 1),
            "bytes": size, "status": 200}


def rows(body: str) -> list[str]:
    return ROW.findall(body)


def page_n(http: httpx.Client, headers: dict[str, str], n: int) -> tuple[str, int]:
    """The instances page's path after following "Next page" n - 1 times (fewer when the
    listing ends sooner), and the page's number."""
    path, number = f"{PREFIX}/instances", 1
    while number < n:
        found = NEXT.search(get_ok(http, path, headers).text)
        if not found:
            break
        path, number = html.unescape(found.group(1)), number + 1
    return path, number


def dashboard_pages(http: httpx.Client, headers: dict[str, str],
                    instances: int) -> list[tuple[str, str]]:
    """(name, path) of every page measured; checks the instance pages show 50 rows."""
    first = rows(get_ok(http, f"{PREFIX}/instances", headers).text)
    if len(first) != min(50, instances):
        raise RuntimeError(f"the instances page shows {len(first)} rows")
    tenth, number = page_n(http, headers, 10)
    if instances >= 500 and (number != 10 or len(rows(get_ok(http, tenth, headers).text))
                             != 50):
        raise RuntimeError(f"page {number} ({tenth}) is not a tenth page of 50 rows")
    server = first[0]
    return [
        ("instances", f"{PREFIX}/instances"),
        ("instances_page_10", tenth),
        ("instances_active", f"{PREFIX}/instances?status=ACTIVE"),
        ("instance_detail", f"{PREFIX}/instances/{server}"),
        ("instance_console", f"{PREFIX}/instances/{server}/console"),
        ("launch_step_1", f"{PREFIX}/launch"),
        ("images", f"{PREFIX}/images"),
        ("flavors", f"{PREFIX}/flavors"),
        ("networks", f"{PREFIX}/networks"),
        ("keypairs", f"{PREFIX}/keypairs"),
        ("admin_hypervisors", f"{PREFIX}/admin/hypervisors"),
        ("admin_services", f"{PREFIX}/admin/services"),
    ]


def profile_calls(server: str, marker: str) -> dict[str, list[tuple[str, str, Any]]]:
    """The API calls behind each page (strato/dashboard/ when this was written); every
    page also reads its token and the user's projects first ("every_page")."""
    names: list[tuple[str, str, Any]] = [("GET", "/v2.1/flavors/detail", None),
                                         ("GET", "/image/v2/images?limit=500", None)]
    servers = "/v2.1/servers/detail?limit=50"
    return {
        "every_page": [("GET", "/identity/v3/auth/tokens?nocatalog=1", "subject"),
                       ("GET", "/identity/v3/auth/projects", None)],
        "instances": [("GET", servers, None), *names],
        "instances_page_10": [("GET", f"{servers}&marker={marker}", None)],
        "instances_active": [("GET", f"{servers}&status=ACTIVE", None)],
        "instance_detail": [("GET", f"/v2.1/servers/{server}", None),
                            ("GET", f"/v2.1/servers/{server}/os-instance-actions", None),
                            ("GET", f"/v2.1/servers/{server}/os-instance-actions/{{req}}",
                             None)],
        "instance_console": [("GET", f"/v2.1/servers/{server}", None),
                             ("POST", f"/v2.1/servers/{server}/action",
                              {"os-getConsoleOutput": {"length": 200}})],
        "launch_step_1": [("GET", "/v2.1/os-availability-zone", None)],
        "flavors": [("GET", "/v2.1/limits", None)],
        "networks": [("GET", "/networking/v2.0/networks", None),
                     ("GET", "/networking/v2.0/subnets", None)],
        "keypairs": [("GET", "/v2.1/os-keypairs", None)],
        "admin_hypervisors": [("GET", "/v2.1/os-hypervisors/detail", None)],
        "admin_services": [("GET", "/v2.1/os-services", None)],
    }


def profile(http: httpx.Client, token: str, pages: list[tuple[str, str]], repeat: int,
            common: dict[str, Any]) -> None:
    """One line per API call behind the pages, measured like the pages (a call that
    several pages make is listed once: the instance pages' flavors and images stand for
    the images and flavors pages' own)."""
    paths = dict(pages)
    server = paths["instance_detail"].rsplit("/", 1)[-1]
    marker = paths["instances_page_10"].split("marker=", 1)[-1]
    auth = {"X-Auth-Token": token}
    actions = http.get(f"/v2.1/servers/{server}/os-instance-actions", headers=auth).json()
    request_id = next(a["request_id"] for a in actions["instanceActions"]
                      if a["action"] == "create")
    for page, calls in profile_calls(server, marker).items():
        for method, path, body in calls:
            path = path.replace("{req}", request_id)
            headers = {**auth, "X-Subject-Token": token} if body == "subject" else auth
            times: list[float] = []
            for i in range(WARMUP + repeat):
                t0 = time.perf_counter()
                if method == "POST":
                    resp = http.post(path, headers=headers, json=body)
                else:
                    resp = http.get(path, headers=headers)
                if resp.status_code != 200:
                    raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:200]}")
                if i >= WARMUP:
                    times.append((time.perf_counter() - t0) * 1000)
            emit({"bench": "dashboard_pages", "profile": page, "call": f"{method} {path}",
                  "p50_ms": round(percentile(times, 0.5), 1),
                  "p95_ms": round(percentile(times, 0.95), 1), "bytes": len(resp.content),
                  **common})


# -- the same pages in Chromium -----------------------------------------------------------


def browser_figures(api_url: str, cookies: dict[str, str], pages: list[tuple[str, str]],
                    repeat: int) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    found: list[dict[str, Any]] = []
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM))
        try:
            context = chromium.new_context()
            context.add_cookies([{"name": name, "value": value, "domain": "127.0.0.1",
                                  "path": PREFIX, "secure": True, "httpOnly": True,
                                  "sameSite": "Lax"} for name, value in cookies.items()])
            page = context.new_page()
            for name, path in pages:
                loads: list[float] = []
                responses: list[float] = []
                for i in range(WARMUP + repeat):  # the first fills the static files' cache
                    resp = page.goto(api_url + path, wait_until="load")
                    if resp is None or resp.status != 200 or page.url != api_url + path:
                        raise RuntimeError(f"browser: {path} answered "
                                           f"{resp.status if resp else None} at {page.url}")
                    page.wait_for_function(
                        "performance.getEntriesByType('navigation')[0].loadEventEnd > 0")
                    timing = page.evaluate(
                        "(() => { const t = performance.getEntriesByType('navigation')[0];"
                        " return [t.loadEventEnd - t.startTime, t.responseEnd - t.startTime];"
                        " })()")
                    if i >= WARMUP:
                        loads.append(float(timing[0]))
                        responses.append(float(timing[1]))
                found.append({"page": f"browser_{name}", "path": path, "n": repeat,
                              "p50_ms": round(percentile(loads, 0.5), 1),
                              "p95_ms": round(percentile(loads, 0.95), 1),
                              "max_ms": round(max(loads), 1),
                              "response_end_p50_ms": round(percentile(responses, 0.5), 1),
                              "response_end_p95_ms": round(percentile(responses, 0.95), 1)})
            context.close()
        finally:
            chromium.close()
    return found


def run(args: argparse.Namespace, data_dir: Path) -> None:
    common = {"instances": args.instances, "date": datetime.now(UTC).date().isoformat(),
              "machine": args.machine or machine()}
    with cloud(data_dir, args.hosts, args.report_interval) as cluster:
        token, setup = asyncio.run(populate(cluster.api_url, args.hosts, args.instances,
                                            args.batch, args.timeout))
        p95s: dict[str, float] = {}
        with httpx.Client(base_url=cluster.api_url, timeout=60,
                          follow_redirects=False) as http:
            cookies = log_in(http, ADMIN_PASSWORD)
            headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
            pages = dashboard_pages(http, headers, args.instances)
            for name, path in pages:
                figures = measure(http, path, headers, args.repeat)
                p95s[name] = figures["p95_ms"]
                emit({"bench": "dashboard_pages", "page": name, "path": path,
                      **common, **figures})
            api = "/v2.1/servers/detail?limit=50"
            figures = measure(http, api, {"X-Auth-Token": token}, args.repeat)
            emit({"bench": "dashboard_pages", "page": "api_servers_detail_50", "path": api,
                  **common, **figures})
            if args.profile:
                profile(http, token, pages, args.repeat, common)
            cluster.check_alive()
        if CHROMIUM.exists() and not args.no_browser:
            chosen = [p for p in pages if p[0] in ("instances", "instance_detail")]
            for line in browser_figures(cluster.api_url, cookies, chosen,
                                        args.browser_repeat):
                p95s[line["page"]] = line["p95_ms"]
                emit({"bench": "dashboard_pages", **line, **common})
        else:
            print(f"no browser figures ({CHROMIUM} missing or --no-browser)",
                  file=sys.stderr)
    over = sorted(name for name, p95 in p95s.items() if p95 >= args.budget_ms)
    emit({"bench": "dashboard_pages", "summary": True, "hosts": args.hosts, **setup,
          "pages": len(p95s), "budget_ms": args.budget_ms, "all_p95_under_budget": not over,
          "over_budget": over, "slowest_p95_ms": max(p95s.values()), **common})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=10,
                        help=f"fake compute hosts ({PER_HOST} m1.tiny servers each)")
    parser.add_argument("--report-interval", type=float, default=10.0,
                        help="seconds between a compute's capacity reports (strato's default)")
    parser.add_argument("--batch", type=int, default=100,
                        help="servers per POST (min_count = max_count)")
    parser.add_argument("--repeat", type=int, default=30,
                        help="timed requests per page, after 3 to warm up")
    parser.add_argument("--browser-repeat", type=int, default=10,
                        help="timed navigations per page in Chromium")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--budget-ms", type=float, default=200.0,
                        help="the p95 every page should stay under")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds the servers may take to leave BUILD")
    parser.add_argument("--profile", action="store_true",
                        help="also time each API call behind each page")
    parser.add_argument("--machine", default=None,
                        help="the machine's name in the lines (default: OS, CPUs, Python)")
    args = parser.parse_args()
    if args.instances > args.hosts * PER_HOST:
        parser.error(f"{args.hosts} hosts hold at most {args.hosts * PER_HOST} servers")
    with tempfile.TemporaryDirectory(prefix="strato-bench-") as tmp:
        run(args, Path(tmp))


if __name__ == "__main__":
    main()
