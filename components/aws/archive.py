"""Reproducible code archives: the same files give the same bytes, so an S3 key derived from
their sha256 changes only when the code does (training, evaluation and drift code share it);
and their upload, KMS-encrypted, where a SageMaker step reads them."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from collections.abc import Iterable

import pulumi
import pulumi_aws as aws


def reproducible_targz(files: Iterable[tuple[str, bytes]]) -> tuple[bytes, str]:
    """A tar.gz of (name, content) with fixed mtimes, modes and owners, and its sha256."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT, compresslevel=9) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    # gzip stamps the time into its header: zero it so the same code gives the same bytes.
    raw = raw[:4] + b"\x00\x00\x00\x00" + raw[8:]
    return raw, hashlib.sha256(raw).hexdigest()


def upload_archive(
    name: str,
    bucket: pulumi.Input[str],
    key_arn: pulumi.Input[str],
    object_key: str,
    archive: bytes,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.s3.BucketObjectv2:
    """A gzip archive a SageMaker step runs (training, evaluation or drift code), KMS-encrypted."""
    return aws.s3.BucketObjectv2(
        name,
        bucket=bucket,
        key=object_key,
        content_base64=base64.b64encode(archive).decode(),
        content_type="application/gzip",
        server_side_encryption="aws:kms",
        kms_key_id=key_arn,
        tags=tags,
        opts=opts,
    )
