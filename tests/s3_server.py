"""A real S3 protocol endpoint on loopback: moto's server, for the object-storage tests.

The code under test talks to it through s3fs/botocore exactly as to AWS:
the endpoint comes from `AWS_ENDPOINT_URL` and the keys from
`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, the usual places. Skips the
test when moto, boto3 or s3fs are not installed (the `[ray]` and `test` extras).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass
class S3:
    endpoint: str
    bucket: str

    def url(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}".rstrip("/")

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def put(self, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=self.bucket, Key=key, Body=data)

    def get(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def keys(self, prefix: str = "") -> list[str]:
        listed = self.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", [])
        return sorted(entry["Key"] for entry in listed)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    pytest.importorskip("s3fs")
    pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch, request) -> S3:
    """A fresh bucket, and the environment that points every S3 client (s3fs, boto3) at the loopback server."""
    for key, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    bucket = "photos-" + "".join(ch for ch in request.node.name.lower() if ch.isalnum())[:40]
    store = S3(s3_endpoint, bucket)
    store.client().create_bucket(Bucket=bucket)
    import fsspec

    fsspec.AbstractFileSystem.clear_instance_cache()  # s3fs caches clients made under other settings
    return store
