"""``strato demo`` started before the API listens (the first ``make run`` on a fresh
machine: ``strato up`` is still starting) waits for it, then logs in and boots."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from strato.testing.cluster import Cluster, free_port

ADMIN_PASSWORD = "demo-test-admin-password"


def test_demo_started_before_the_api_waits_for_it(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATO_")}
    env.update({"STRATO_DATA_DIR": str(tmp_path), "STRATO_API__LISTEN": f"127.0.0.1:{port}",
                "STRATO_IDENTITY__ADMIN_PASSWORD": ADMIN_PASSWORD,
                "STRATO_LOG_LEVEL": "WARNING", "STRATO_COMPUTE__HOST": "demo-test",
                "STRATO_COMPUTE__DRIVER": "fake", "PYTHONUNBUFFERED": "1"})
    demo = subprocess.Popen([sys.executable, "-m", "strato", "demo", "--url", url,
                             "--timeout", "120"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    cluster = Cluster(env=env, data_dir=tmp_path, api_url=url)
    try:
        # Nothing listens yet: the demo must still be waiting when the API starts.
        time.sleep(2)
        assert demo.poll() is None, demo.communicate()[0]
        cluster.start("up", "up")
        out, _ = demo.communicate(timeout=180)
        assert demo.returncode == 0, out + cluster.log("up")[-3000:]
        assert "is ACTIVE" in out, out
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        cluster.stop()
