"""A real local S3 server for tests: moto in server mode, on 127.0.0.1, with IAM
authentication on, so a wrong secret is refused as Amazon S3 would refuse it."""

from __future__ import annotations

import atexit
import json
from dataclasses import dataclass

import boto3
import httpx
from botocore.config import Config
from moto.server import ThreadedMotoServer

from webapp.launcher import free_port

REGION = "us-east-1"
# What `fresh` does before authentication applies: two users (the app's, and the test's own to
# look inside), a policy and a key for each, and the bucket. Every later request is signed.
UNSIGNED_SETUP_ACTIONS = 7


@dataclass(frozen=True)
class Credentials:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str

    def as_body(self, **more) -> dict:
        return {
            "endpoint": self.endpoint,
            "bucket": self.bucket,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            **more,
        }


class S3Server:
    """`fresh()` empties moto (its state is per process, shared by every server in it) and
    returns a key pair for the app, allowed `actions`, with an empty bucket; the test looks
    inside with a key of its own."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self._server: ThreadedMotoServer | None = None
        self._inspector: Credentials | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop answering: connections are refused (as for a server that is down) until start."""
        if self._server is not None:
            self._server.stop()
            # ThreadedMotoServer.stop leaves the socket listening, where connections would
            # wait instead of being refused; close it so the port is free to start again.
            self._server._server.server_close()
            self._server = None

    def _admin(self, path: str, body: bytes = b"") -> None:
        httpx.post(self.endpoint + path, content=body, timeout=10).raise_for_status()

    def fresh(
        self, bucket: str = "results", actions: tuple[str, ...] = ("s3:*",), versioned=False
    ) -> Credentials:
        self._admin("/moto-api/reset")
        self._admin("/moto-api/reset-auth", str(UNSIGNED_SETUP_ACTIONS).encode())
        unsigned = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name=REGION, **unsigned)
        keys = {}
        for user, allowed in (("inspector", ["s3:*"]), ("bytestack", list(actions))):
            iam.create_user(UserName=user)
            statement = {"Effect": "Allow", "Action": allowed, "Resource": "*"}
            iam.put_user_policy(
                UserName=user,
                PolicyName="allowed",
                PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
            )
            keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
        s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, **unsigned)
        s3.create_bucket(Bucket=bucket)

        def credentials(user: str) -> Credentials:
            key = keys[user]
            return Credentials(self.endpoint, bucket, key["AccessKeyId"], key["SecretAccessKey"])

        self._inspector = credentials("inspector")
        if versioned:
            self.inspect().put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
            )
        return credentials("bytestack")

    def inspect(self):
        """A client with the test's own key (allowed everything)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self._inspector.access_key,
            aws_secret_access_key=self._inspector.secret_key,
            config=Config(s3={"addressing_style": "path"}),
        )

    def objects(self) -> dict[str, bytes]:
        """Every object in the bucket, by key, with its bytes."""
        client, bucket = self.inspect(), self._inspector.bucket
        listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {
            item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            for item in listing
        }

    def history(self) -> list[tuple[str, str]]:
        """(key, "version" or "deleted") of everything ever written to a versioned bucket."""
        answer = self.inspect().list_object_versions(Bucket=self._inspector.bucket)
        return sorted(
            [(v["Key"], "version") for v in answer.get("Versions", [])]
            + [(m["Key"], "deleted") for m in answer.get("DeleteMarkers", [])]
        )


_shared: S3Server | None = None


def shared_s3() -> S3Server:
    """One server for the whole test session (started on first use)."""
    global _shared
    if _shared is None:
        _shared = S3Server().start()
        atexit.register(_shared.stop)
    return _shared
