"""Docker figures: SIG image builds, SIG create -> READY on the compose stack, image sizes. Prints:

  * images: `deploy/images/build.sh` re-run with nothing changed (the content-hash skip)
  * SIG image build, cold: a new build key (its own LABEL, so no layer cache), pip in docker build
  * SIG image build, warm: the same key again (what the builder does: the tag exists, no build)
    and the same Dockerfile through docker build again (layer cache)
  * SIG create -> READY through the compose stack's API: with a build (new packages) and with a
    cached image (same spec as an earlier SIG)
  * sizes of the base, Spark, services, datastores and SIG images (and the SIG's own layer)

Usage: python bench/docker.py [--spark 3.5.9] [--keep]
Starts its own compose stack (project `spaasbench`) and removes it afterwards.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

# This file is named like the `docker` package: take its own directory off the path first.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from services.builder.dockerimage import DockerImageBuilder  # noqa: E402
from services.builder.planner import plan  # noqa: E402
from spaas.runtimes.docker import connect  # noqa: E402
from tests.docker.conftest import Compose, sh  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def size_mb(ref: str) -> float:
    return int(json.loads(sh("docker", "image", "inspect", ref))[0]["Size"]) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spark", default="3.5.9")
    ap.add_argument("--keep", action="store_true", help="leave the compose stack running")
    args = ap.parse_args()

    t0 = time.monotonic()
    sh(str(ROOT / "deploy/images/build.sh"), args.spark, timeout=3600)
    t1 = time.monotonic()
    sh(str(ROOT / "deploy/images/build.sh"), args.spark, timeout=600)
    images_warm = time.monotonic() - t1
    print(f"images: build.sh {t1 - t0:.1f}s (first call of this run), re-run with nothing changed {images_warm:.1f}s")

    builder = DockerImageBuilder(connect(timeout_s=600))
    nonce = uuid.uuid4().hex[:8]
    the_plan = plan({"spark_version": args.spark, "python_packages": ["toolz==0.12.1"]},
                    base=builder.base_for(args.spark) + "-bench-" + nonce, runtime="docker")
    lines: list[str] = []
    t = time.monotonic()
    ref = builder.build(the_plan, lines.append)
    cold = time.monotonic() - t
    t = time.monotonic()
    assert builder.existing(the_plan) == ref
    warm_hit = time.monotonic() - t
    t = time.monotonic()
    builder.build(the_plan, lines.append)
    warm_cache = time.monotonic() - t
    print(f"SIG image build (toolz==0.12.1): cold {cold:.1f}s; warm: tag exists {warm_hit * 1000:.0f}ms, "
          f"docker build layer cache {warm_cache:.1f}s")
    spark_mb, sig_mb = size_mb(f"spaas-spark:{args.spark}"), size_mb(ref)
    sh("docker", "rmi", ref)

    stack = Compose("spaasbench")
    keys: set[str] = set()
    try:
        stack.env["SPAAS_SPARK_VERSIONS"] = args.spark
        t = time.monotonic()
        stack.start()
        print(f"compose stack up and healthy from nothing: {time.monotonic() - t:.1f}s")
        api = stack.api
        api.ok("POST", "/tenants", 201, json={"name": "bench"})
        small = {"cpu": 1, "memory_mb": 1024, "max_cpu": 2, "max_memory_mb": 2048}
        for name, packages in (("cold", ["toolz==0.12.0"]), ("warm", ["toolz==0.12.0"])):
            t = time.monotonic()
            api.ok("POST", "/tenants/bench/sigs", 202, json={
                "name": name, "spark_version": args.spark, "python_packages": packages, "resources": small,
                "scaling": {"min_workers": 1, "max_workers": 1}})
            view = api.wait_phase("bench", name, "READY", timeout_s=900)
            build = view["status"]["build"]
            what = "cache hit" if build.get("cache_hit") else "built"
            keys.add(build["key"])
            print(f"SIG create -> READY on Docker ({name}, image {what}): {time.monotonic() - t:.1f}s")
    finally:
        if not args.keep:
            stack.cleanup()
            for key in keys:  # so the next run's "cold" is cold again
                sh("docker", "rmi", f"spaas-sig:{key}", check=False)
    print("image sizes:")
    for ref_ in ("spaas-base:latest", f"spaas-spark:{args.spark}", "spaas-services:latest", "spaas-datastores:latest"):
        print(f"  {ref_:<28} {size_mb(ref_):8.1f} MiB")
    print(f"  {'SIG image (toolz)':<28} {sig_mb:8.1f} MiB  (its own layer: {sig_mb - spark_mb:.1f} MiB)")


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as exc:
        sys.exit(f"failed: {exc}")
