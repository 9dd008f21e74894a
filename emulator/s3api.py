"""S3's REST API over the emulator's S3 root (``s3store``): what auditing a migration's
destination with boto3's S3 client needs, on the emulator's own port.

- **Served**: ListObjectsV2 (``GET /<bucket>?list-type=2``: Prefix, StartAfter,
  ContinuationToken, MaxKeys up to 1000, ``encoding-type=url``), HeadObject
  (``HEAD /<bucket>/<key>``) and GetObject (``GET /<bucket>/<key>``, with a single byte
  Range). Both object calls honour If-Match. Requests are path-style; signatures are not checked.
- **Which operation** a request is comes from botocore's S3 model: the operations whose HTTP
  method and path (service, bucket or object) match, whose literal query keys
  (``?list-type=2``, ``?tagging``, ...) and required query and header members are all there;
  the one with most literal keys, then most of the request's query keys among its members.
- **Parameters** are read from the query string and the headers as the model places them and
  validated as DataSync's requests are (``model.validate``): a bad one is 400 InvalidArgument.
  One the emulator does not honour (a Delimiter, a VersionId, another conditional header...)
  is 501 NotImplemented, never silently ignored; ExpectedBucketOwner, RequestPayer,
  ChecksumMode and OptionalObjectAttributes are accepted and change nothing.
- **Any other operation** is 501 NotImplemented, naming it.
- **Errors** are S3's XML ``<Error>`` (``NoSuchBucket``, ``NoSuchKey``...); a HEAD's have no
  body, so boto3 reports the status code (``404``) as the error code, as on AWS.
- **Continuation tokens** are the last key returned, in URL-safe base64.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import email.utils
import errno
import functools
import io
import itertools
import os
import re
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, quote_plus, unquote_to_bytes
from xml.sax.saxutils import escape

from . import model
from .resources import State
from .s3store import FILE, Bucket, StoredObject

XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_KEYS = 1000
CONTENT_TYPE = "binary/octet-stream"
"""What S3 answers for an object stored without a Content-Type (what DataSync sets is not documented)."""
BUCKET_NAME = re.compile(r"[A-Za-z0-9._-]{1,255}")
ACCEPTED = frozenset({"ExpectedBucketOwner", "RequestPayer", "ChecksumMode", "OptionalObjectAttributes"})
"""Parameters any served operation takes and that change nothing here."""
TARGETS = {"/": "service", "/{Bucket}": "bucket", "/{Bucket}/{Key+}": "object"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class S3Error(Exception):
    """An S3 error answer: HTTP status, S3's error code, message, and extra elements (Key, BucketName...)."""

    def __init__(self, status: int, code: str, message: str, **detail: str):
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail


@dataclass
class Response:
    """What to answer: status and headers, then ``length`` bytes of ``body`` (none for a HEAD)."""

    status: int
    headers: dict[str, str]
    body: BinaryIO | None = None
    length: int = 0


@dataclass(frozen=True)
class Request:
    method: str
    bucket: str | None
    """None: the service (``GET /``)."""
    key: bytes | None
    """None: the bucket itself. Raw bytes as the path spells them (percent-decoded)."""
    query: dict[str, str]
    headers: Message


# ------------------------------------------------------------------- routing
@dataclass(frozen=True)
class _Route:
    """An operation of botocore's S3 model, as a request is matched against it."""

    name: str
    method: str
    target: str
    literals: tuple[tuple[str, str], ...]
    required: tuple[tuple[str, str], ...]
    """(location, wire name) of its required query and header members."""
    query_members: frozenset[str]

    def fits(self, req: Request) -> bool:
        for key, value in self.literals:
            given = req.query.get(key)
            if key == "x-id" and given is None:  # botocore sends it for some operations, not every client does
                continue
            if given is None or (value and given != value):
                return False
        return all((req.query.get(name) if where == "querystring" else req.headers.get(name)) is not None
                   for where, name in self.required)

    def score(self, req: Request) -> tuple[int, int]:
        return (sum(1 for key, _ in self.literals if key in req.query), len(self.query_members & req.query.keys()))


@functools.cache
def _routes() -> tuple[_Route, ...]:
    m = model.service_model("s3")
    out = []
    for name in m.operation_names:
        op = m.operation_model(name)
        path, _, literal = op.http["requestUri"].partition("?")
        members = op.input_shape.members if op.input_shape else {}
        wire = {n: (s.serialization.get("location", ""), s.serialization.get("name", n)) for n, s in members.items()}
        required = op.input_shape.required_members if op.input_shape else []
        out.append(_Route(name, op.http["method"], TARGETS.get(path, ""),
                          tuple(parse_qsl(literal, keep_blank_values=True)),
                          tuple(wire[n] for n in required if wire[n][0] in ("querystring", "header")),
                          frozenset(w for where, w in wire.values() if where == "querystring")))
    return tuple(out)


def identify(req: Request) -> list[str]:
    """The S3 operations this request can be (best match first; more than one: ambiguous)."""
    target = "service" if req.bucket is None else "bucket" if req.key is None else "object"
    best: tuple[int, int] | None = None
    names: list[str] = []
    for route in _routes():
        if route.method != req.method or route.target != target or not route.fits(req):
            continue
        score = route.score(req)
        if best is None or score > best:
            best, names = score, [route.name]
        elif score == best:
            names.append(route.name)
    return names


def parse(method: str, raw_path: str, headers: Message) -> Request:
    """A path-style request: ``/bucket/key?query``."""
    path, _, query_text = raw_path.partition("?")
    try:
        query = dict(parse_qsl(query_text, keep_blank_values=True, errors="strict"))
    except UnicodeDecodeError:
        raise S3Error(400, "InvalidArgument", "The query string is not valid UTF-8") from None
    bucket, _, key = unquote_to_bytes(path.lstrip("/")).partition(b"/")
    return Request(method, bucket.decode("utf-8", "replace") if bucket else None, key or None, query, headers)


# ---------------------------------------------------------------- parameters
HONOURED = {"ListObjectsV2": frozenset({"Bucket", "Prefix", "StartAfter", "ContinuationToken", "MaxKeys",
                                        "EncodingType"}),
            "HeadObject": frozenset({"Bucket", "Key", "IfMatch"}),
            "GetObject": frozenset({"Bucket", "Key", "IfMatch", "Range"})}


def params(op: str, req: Request) -> dict[str, Any]:
    """The operation's input as botocore would have sent it, validated against the model; 501 for
    a parameter given that the emulator does not honour (an empty or false one is not given)."""
    shape = model.service_model("s3").operation_model(op).input_shape
    out: dict[str, Any] = {}
    for name, member in shape.members.items():
        value = _wire_value(name, member.serialization, req)
        if value is not None:
            out[name] = _typed(value, member.type_name, member.serialization.get("name", name))
    report = model.validate(out, shape)
    if report:
        raise S3Error(400, "InvalidArgument", report)
    unhonoured = sorted(name for name, value in out.items()
                        if name not in HONOURED[op] | ACCEPTED and value is not False and value != "")
    if unhonoured:
        raise S3Error(501, "NotImplemented", f"{op} with {', '.join(unhonoured)} is not implemented by the emulator")
    return out


def _wire_value(name: str, where: dict, req: Request) -> str | None:
    location, wire = where.get("location"), where.get("name", name)
    if location == "uri":
        raw = {"Bucket": (req.bucket or "").encode(), "Key": req.key}.get(name)
        return None if raw is None else raw.decode("utf-8", "replace")
    if location == "querystring":
        return req.query.get(wire)
    if location == "header":
        return req.headers.get(wire)
    return None


def _typed(value: str, type_name: str, wire: str) -> Any:
    """A query or header value as the model's type has it (400 InvalidArgument if it cannot be)."""
    if type_name in ("integer", "long"):
        try:
            return int(value)
        except ValueError:
            raise S3Error(400, "InvalidArgument", f"Provided {wire} not an integer or within integer range",
                          ArgumentName=wire, ArgumentValue=value) from None
    if type_name == "boolean":
        if value.lower() not in ("true", "false"):
            raise S3Error(400, "InvalidArgument", f"Invalid {wire}: want true or false",
                          ArgumentName=wire, ArgumentValue=value)
        return value.lower() == "true"
    if type_name == "list":
        return [piece.strip() for piece in value.split(",") if piece.strip()]
    return value


# ---------------------------------------------------------------- operations
def list_objects_v2(st: State, req: Request, p: dict[str, Any]) -> Response:
    """One page of keys in UTF-8 byte order, resumed after the token's key (or StartAfter)."""
    bucket = _bucket(st, p["Bucket"])
    max_keys = p.get("MaxKeys", MAX_KEYS)
    if max_keys < 0:
        raise S3Error(400, "InvalidArgument", "max-keys cannot be negative", ArgumentName="max-keys")
    prefix, start_after = p.get("Prefix", "").encode(), p.get("StartAfter", "").encode()
    token = p.get("ContinuationToken")
    after = start_after if token is None else max(start_after, token_key(token))
    objects = bucket.objects(prefix, after)
    page = list(itertools.islice(objects, min(max_keys, MAX_KEYS)))
    truncated = bool(page) and next(objects, None) is not None
    text = _key_text(p.get("EncodingType") == "url")
    parts = [_el("Name", bucket.name), _el("Prefix", text(prefix))]
    if "StartAfter" in p:
        parts.append(_el("StartAfter", text(start_after)))
    if token is not None:
        parts.append(_el("ContinuationToken", token))
    parts += [_el("KeyCount", len(page)), _el("MaxKeys", max_keys), _el("IsTruncated", str(truncated).lower())]
    if "EncodingType" in p:
        parts.append(_el("EncodingType", p["EncodingType"]))
    if truncated:
        parts.append(_el("NextContinuationToken", continuation_token(page[-1].key)))
    parts += [f"<Contents>{_el('Key', text(obj.key))}{_el('LastModified', _iso(obj.last_modified_ns))}"
              f"{_el('ETag', obj.etag)}{_el('Size', obj.size)}{_el('StorageClass', bucket.storage_class(obj.key))}"
              f"</Contents>" for obj in page]
    return _xml(200, f'<ListBucketResult xmlns="{XMLNS}">{"".join(parts)}</ListBucketResult>')


def head_object(st: State, req: Request, p: dict[str, Any]) -> Response:
    bucket, obj = _object(st, req, p)
    return Response(200, _object_headers(bucket, obj))


def get_object(st: State, req: Request, p: dict[str, Any]) -> Response:
    """The object's body: a file's bytes (read from what was opened), a symlink's target, a
    directory's nothing; a single ``bytes=`` Range gives 206."""
    bucket, obj = _object(st, req, p)
    body, obj = _open(obj, p) if obj.kind == FILE else (io.BytesIO(obj.target or b""), obj)
    try:
        span = byte_range(p.get("Range"), obj.size)
    except S3Error:
        body.close()
        raise
    headers = _object_headers(bucket, obj)
    if span is None:
        return Response(200, headers, body, obj.size)
    first, last = span
    body.seek(first)
    headers.update({"Content-Range": f"bytes {first}-{last}/{obj.size}", "Content-Length": str(last - first + 1)})
    return Response(206, headers, body, last - first + 1)


OPERATIONS: dict[str, Callable[[State, Request, dict[str, Any]], Response]] = {
    "ListObjectsV2": list_objects_v2, "HeadObject": head_object, "GetObject": get_object}


def handle(st: State, method: str, raw_path: str, headers: Message) -> Response:
    """Answer one S3 request."""
    head = method == "HEAD"
    try:
        req = parse(method, raw_path, headers)
        names = identify(req)
        if len(names) != 1 or names[0] not in OPERATIONS:
            raise _not_implemented(req, names)
        resp = OPERATIONS[names[0]](st, req, params(names[0], req))
    except S3Error as exc:
        resp = _error(exc, head)
    except OSError as exc:  # the S3 root cannot be read as it should
        resp = _error(S3Error(500, "InternalError", f"{type(exc).__name__}: {exc}"), head)
    except Exception as exc:  # pragma: no cover - a bug of the emulator's
        traceback.print_exc()
        resp = _error(S3Error(500, "InternalError", f"{type(exc).__name__}: {exc}"), head)
    resp.headers.update({"x-amz-request-id": uuid.uuid4().hex[:16].upper(), "x-amz-id-2": uuid.uuid4().hex})
    return resp


def _not_implemented(req: Request, names: list[str]) -> S3Error:
    served = ", ".join(OPERATIONS)
    if names:
        what = f"S3 operation {' or '.join(names)}"
    else:
        what = f"{req.method} on the {'service' if req.bucket is None else 'bucket' if req.key is None else 'object'}" \
               f"{' with ' + ', '.join(sorted(req.query)) if req.query else ''}, which is no S3 operation,"
    return S3Error(501, "NotImplemented", f"{what} is not implemented by the emulator (it serves {served})")


# ------------------------------------------------------------------- helpers
def continuation_token(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode("ascii")


def token_key(token: str) -> bytes:
    """The key a continuation token resumes after (400 InvalidArgument if it is none of ours)."""
    try:
        key = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True)
        key.decode("utf-8")
    except (ValueError, binascii.Error):
        key = b""
    if not key:
        raise S3Error(400, "InvalidArgument", "The continuation token provided is incorrect",
                      ArgumentName="continuation-token")
    return key


def byte_range(spec: str | None, size: int) -> tuple[int, int] | None:
    """A single ``bytes=first-last`` (or ``first-``, or ``-suffix``) Range as (first, last),
    inclusive; None for the whole object (no Range, or one S3 ignores); 416 InvalidRange if
    it starts past the end."""
    m = _RANGE.fullmatch(spec.strip()) if spec else None
    if m is None or m.groups() == ("", ""):
        return None
    first_text, last_text = m.groups()
    if first_text:
        first, last = int(first_text), int(last_text) if last_text else size - 1
        if last_text and last < first:
            return None  # not a valid range: S3 ignores it
    else:  # the last N bytes
        first, last = max(0, size - int(last_text)), size - 1 if int(last_text) else -1
    if first >= size or last < 0:
        raise S3Error(416, "InvalidRange", "The requested range is not satisfiable",
                      RangeRequested=spec or "", ActualObjectSize=str(size))
    return first, min(last, size - 1)


def _bucket(st: State, name: str) -> Bucket:
    if not BUCKET_NAME.fullmatch(name) or name in (".", ".."):
        raise S3Error(400, "InvalidBucketName", "The specified bucket is not valid.", BucketName=name)
    with st.lock:
        locations = {sub: cls for (b, sub), cls in st.s3_locations.items() if b == name}
    bucket = Bucket(st.s3_root, name, locations)
    if not bucket.exists():
        raise S3Error(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=name)
    return bucket


def _object(st: State, req: Request, p: dict[str, Any]) -> tuple[Bucket, StoredObject]:
    bucket = _bucket(st, p["Bucket"])
    obj = bucket.head(req.key or b"")
    if obj is None:
        raise S3Error(404, "NoSuchKey", "The specified key does not exist.", Key=p["Key"])
    _check_if_match(p, obj)
    return bucket, obj


def _open(obj: StoredObject, p: dict[str, Any]) -> tuple[BinaryIO, StoredObject]:
    """A file opened for its body, and the object as what was opened is (it may have been
    replaced since it was looked up)."""
    try:
        fd = os.open(obj.path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP):
            raise S3Error(404, "NoSuchKey", "The specified key does not exist.", Key=p["Key"]) from None
        raise
    body = os.fdopen(fd, "rb")
    opened = dataclasses.replace(obj, st=os.fstat(fd))
    try:
        _check_if_match(p, opened)
    except S3Error:
        body.close()
        raise
    return body, opened


def _check_if_match(p: dict[str, Any], obj: StoredObject) -> None:
    wanted = p.get("IfMatch")
    if wanted is None:
        return
    tags = {tag.strip() for tag in wanted.split(",")}
    if not tags & {"*", obj.etag, obj.etag.strip('"')}:
        raise S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                      Condition="If-Match")


def _object_headers(bucket: Bucket, obj: StoredObject) -> dict[str, str]:
    headers = {"Content-Type": CONTENT_TYPE, "Content-Length": str(obj.size), "ETag": obj.etag,
               "Last-Modified": email.utils.formatdate(obj.last_modified_ns / 1e9, usegmt=True),
               "Accept-Ranges": "bytes"}
    storage_class = bucket.storage_class(obj.key)
    if storage_class != "STANDARD":  # S3 leaves the header out for STANDARD
        headers["x-amz-storage-class"] = storage_class
    headers.update({f"x-amz-meta-{name}": value for name, value in obj.metadata().items()})
    return headers


def _key_text(url: bool) -> Callable[[bytes], str]:
    """How keys and prefixes are written in a listing: URL-encoded as S3 does for
    ``encoding-type=url`` (boto3 asks for it and decodes), else as text."""
    if url:
        return lambda raw: quote_plus(raw, safe="/")
    return lambda raw: raw.decode("utf-8")


def _el(tag: str, value: object) -> str:
    """An XML element; control characters as character references, so that a newline or a
    carriage return in a key is not changed by the parser."""
    text = _CONTROL.sub(lambda m: f"&#{ord(m.group())};", escape(str(value)))
    return f"<{tag}>{text}</{tag}>"


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns // 10**6 % 1000:03d}Z"


def _xml(status: int, document: str) -> Response:
    data = f'<?xml version="1.0" encoding="UTF-8"?>\n{document}'.encode()
    return Response(status, {"Content-Type": "application/xml", "Content-Length": str(len(data))},
                    io.BytesIO(data), len(data))


def _error(exc: S3Error, head: bool) -> Response:
    if head:  # a HEAD answer has no body: the client sees the status alone
        return Response(exc.status, {"Content-Length": "0"})
    detail = "".join(_el(name, value) for name, value in exc.detail.items())
    return _xml(exc.status, f"<Error>{_el('Code', exc.code)}{_el('Message', exc.message)}{detail}</Error>")
