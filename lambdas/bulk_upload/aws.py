"""Adapters: HTTP downloads with resume and address checks, S3 multipart uploads, the jobs table."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from botocore.exceptions import ClientError

from .copier import PermanentFailure
from .webhook import BadRequest, UrlPolicy, is_internal

READ_CHUNK = 1 << 20
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class HttpDownload:
    """GETs a pre-signed URL; a stream that breaks is resumed with a Range request from the
    byte it stopped at. Every connection is checked against the URL policy, resolved addresses
    included, so a name that points inside the network is refused. URLs are never logged."""

    def __init__(
        self,
        client: httpx.Client,
        policy: UrlPolicy,
        *,
        max_attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        resolve: Callable[..., Any] = socket.getaddrinfo,
    ) -> None:
        self._client = client
        self._policy = policy
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._resolve = resolve
        self.retries = 0

    def small(self, url: str, limit: int) -> bytes:
        length, chunks = self.stream(url)
        if length is not None and length > limit:
            raise PermanentFailure(f"the metadata file is larger than {limit} bytes")
        data = b"".join(chunks)
        if len(data) > limit:
            raise PermanentFailure(f"the metadata file is larger than {limit} bytes")
        return data

    def stream(self, url: str) -> tuple[int | None, Iterator[bytes]]:
        self._check(url)
        response = self._open(url, 0)
        header = response.headers.get("content-length")
        return (int(header) if header and header.isdigit() else None), self._chunks(url, response)

    def _chunks(self, url: str, response: httpx.Response) -> Iterator[bytes]:
        received = 0
        attempt = 1
        while True:
            try:
                for chunk in response.iter_bytes(READ_CHUNK):
                    received += len(chunk)
                    yield chunk
                response.close()
                return
            except (httpx.TransportError, httpx.StreamError):
                response.close()
                attempt += 1
                if attempt > self._max_attempts:
                    raise
                self.retries += 1
                self._sleep(min(10.0, 0.5 * 2 ** (attempt - 2)))
                response = self._open(url, received)

    def _open(self, url: str, offset: int) -> httpx.Response:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = self._client.send(self._client.build_request("GET", url, headers=headers), stream=True)
            except httpx.TransportError:
                if attempt == self._max_attempts:
                    raise
                self.retries += 1
                self._sleep(min(10.0, 0.5 * 2 ** (attempt - 1)))
                continue
            if response.status_code in TRANSIENT_STATUS and attempt < self._max_attempts:
                response.close()
                self.retries += 1
                self._sleep(min(10.0, 0.5 * 2 ** (attempt - 1)))
                continue
            expected = 206 if offset else 200
            if response.status_code != expected:
                response.close()
                raise PermanentFailure(f"the download answered {response.status_code}")
            if offset and not response.headers.get("content-range", "").startswith(f"bytes {offset}-"):
                response.close()
                raise PermanentFailure("the download could not be resumed where it broke")
            return response
        raise AssertionError("unreachable")

    def _check(self, url: str) -> None:
        try:
            where = self._policy.check("url", url)
        except BadRequest as exc:
            raise PermanentFailure(f"download refused: {exc.problem}") from None
        if where in self._policy.hosts:
            return  # an exact host the configuration opted into
        parts = urlsplit(url)
        try:
            addresses = {info[4][0] for info in self._resolve(parts.hostname, parts.port or 443)}
        except OSError as exc:
            raise PermanentFailure(f"download host does not resolve ({type(exc).__name__})") from None
        if any(is_internal(address) for address in addresses):
            raise PermanentFailure("download refused: the host resolves to an internal address")


class S3Target:
    def __init__(self, s3: Any, bucket: str, *, job_id: str) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._job_id = job_id

    def start(self, key: str) -> _S3Upload:
        upload = self._s3.create_multipart_upload(
            Bucket=self._bucket, Key=key, ContentType="text/csv", Metadata={"job-id": self._job_id}
        )
        return _S3Upload(self._s3, self._bucket, key, upload["UploadId"])


class _S3Upload:
    def __init__(self, s3: Any, bucket: str, key: str, upload_id: str) -> None:
        self._s3, self._bucket, self._key, self._id = s3, bucket, key, upload_id
        self._parts: list[dict[str, Any]] = []

    def part(self, data: bytes | bytearray, number: int) -> None:
        result = self._s3.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=self._id, PartNumber=number, Body=data
        )
        self._parts.append({"PartNumber": number, "ETag": result["ETag"]})  # list.append is thread-safe

    def complete(self) -> str | None:
        parts = sorted(self._parts, key=lambda p: p["PartNumber"])
        result = self._s3.complete_multipart_upload(
            Bucket=self._bucket, Key=self._key, UploadId=self._id, MultipartUpload={"Parts": parts}
        )
        return result.get("VersionId")

    def abort(self) -> None:
        self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._id)


QUEUED, COPYING, RETRY, DONE, FAILED = "queued", "copying", "retry", "done", "failed"


class JobTable:
    """Job records: the copier claims a job with a lease, so a redelivered message copies nothing twice."""

    def __init__(self, dynamodb: Any, table: str, *, clock: Callable[[], float] = time.time) -> None:
        self._db = dynamodb
        self._table = table
        self._clock = clock

    def create(self, job_id: str, s3_key: str, parameters: dict[str, Any]) -> None:
        now = int(self._clock())
        self._db.put_item(
            TableName=self._table,
            Item={
                "job_id": {"S": job_id},
                "status": {"S": QUEUED},
                "s3_key": {"S": s3_key},
                "send_parameters": {"S": orjson.dumps(parameters).decode()},
                "created_at": {"N": str(now)},
                "updated_at": {"N": str(now)},
                "expires_at": {"N": str(now + 90 * 86400)},
            },
            ConditionExpression="attribute_not_exists(job_id)",
        )

    def get(self, job_id: str) -> dict[str, Any] | None:
        item = self._db.get_item(TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True).get("Item")
        if not item:
            return None
        return {k: (v.get("S") if "S" in v else int(v["N"]) if "N" in v else v.get("BOOL")) for k, v in item.items()}

    def claim(self, job_id: str, owner: str, lease_seconds: int) -> bool:
        now = int(self._clock())
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #s = :copying, lease_owner = :o, lease_until = :until, updated_at = :now",
                ConditionExpression="#s IN (:queued, :retry) OR (#s = :copying AND lease_until < :now)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":copying": {"S": COPYING}, ":queued": {"S": QUEUED}, ":retry": {"S": RETRY},
                    ":o": {"S": owner}, ":until": {"N": str(now + lease_seconds)}, ":now": {"N": str(now)},
                },
            )  # fmt: skip
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def finish(self, job_id: str, status: str, **fields: Any) -> None:
        names = {"#s": "status"}
        values: dict[str, Any] = {":s": {"S": status}, ":now": {"N": str(int(self._clock()))}}
        sets = ["#s = :s", "updated_at = :now"]
        for i, (name, value) in enumerate(fields.items()):
            if value is None:
                continue
            names[f"#f{i}"] = name
            values[f":f{i}"] = {"N": str(value)} if isinstance(value, int) else {"S": str(value)}
            sets.append(f"#f{i} = :f{i}")
        self._db.update_item(
            TableName=self._table,
            Key={"job_id": {"S": job_id}},
            UpdateExpression="SET " + ", ".join(sets),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
