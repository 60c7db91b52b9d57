"""The moto S3 server fixture the object-storage tests share (import ``s3`` into a test module)."""

from __future__ import annotations

import json
import logging
import os
import socket
import urllib.request

import pytest


def free_port() -> int:
    """A port nothing listens on (once the probe socket is closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on 127.0.0.1 with bucket `emo`; AWS_* env points every client at it."""
    moto_server = pytest.importorskip("moto.server")
    s3fs = pytest.importorskip("s3fs")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # a request the server never answers fails within a minute or two (botocore's default: 60 s
    # read timeout x 5 attempts, each retried again by s3fs: tens of minutes at 0 CPU) - in this
    # process and in the worker processes, which read FSSPEC_S3 when they import fsspec
    bounded = {"config_kwargs": {"connect_timeout": 10, "read_timeout": 30, "retries": {"max_attempts": 2}}}
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "FSSPEC_S3": json.dumps(bounded)}
    import fsspec.config

    saved_conf = fsspec.config.conf.get("s3")
    fsspec.config.conf["s3"] = bounded
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    s3fs.S3FileSystem.clear_instance_cache()
    # moto keeps its buckets in process-wide state, which a second server in this process shares: reset it
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST"),
                           timeout=30).close()
    fs = s3fs.S3FileSystem()
    fs.mkdir("emo")
    yield fs
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    if saved_conf is None:
        fsspec.config.conf.pop("s3", None)
    else:
        fsspec.config.conf["s3"] = saved_conf
    s3fs.S3FileSystem.clear_instance_cache()
    server.stop()
