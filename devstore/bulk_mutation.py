"""Bulk mutation operations: staged uploads of JSONL variables, the upload endpoint, and
``bulkOperationRunMutation``, as a live store answers them.

The flow (https://shopify.dev/docs/api/usage/bulk-operations/imports): ``stagedUploadsCreate``
with resource ``BULK_MUTATION_VARIABLES`` returns a target; the app uploads its JSONL there
(a multipart POST with the target's form fields, or a PUT to a signed URL, the schema's
default); ``bulkOperationRunMutation(mutation, stagedUploadPath: <the key>)`` runs the mutation
once per line and writes one result line per input line.

What follows the recordings in ``reference/captures/2026-04`` (bulk-operations and media):

- the targets' URLs and parameters: POST gets the storage form fields (``Content-Type``,
  ``success_action_status`` 201, ``acl``, ``key``, ``x-goog-*``, ``policy`` with a
  content-length-range of 1 to 104,857,600 bytes) and answers 201 with a ``PostResponse``;
  PUT gets a signed URL (``X-Goog-*`` query, valid 7 days) and ``content_type``/``acl``, and
  answers 200 with an empty body. devstore's targets live on its own base
  (``/staged-uploads/``) and are signed with the shop's URL secret (HMAC, not RSA);
- the refusals, in this order: the mutation's own (``bulk_rules.bulk_mutation_errors``), a path
  nothing was uploaded to (``NO_SUCH_FILE``, even with five operations running), an empty file
  and one over 100 MB (``INVALID_STAGED_UPLOAD_FILE``), then a sixth running mutation
  operation (``OPERATION_IN_PROGRESS``, naming the five);
- the operation: ``CREATED`` with ``type: MUTATION``, then ``RUNNING`` and ``COMPLETED``; each
  result line is ``{"data": ..., "__lineNumber": n}`` in Shopify's escaped bytes.

A line runs through devstore's own executor on the real schema, so only the mutations devstore
serves take effect. Any other root (productCreate, metafieldsSet, ...) is accepted as Shopify
accepts it, and each of its lines answers with the ``ACCESS_DENIED`` error devstore gives for
fields it does not serve (``extensions.devstoreUnserved``): nothing is applied silently.
``stagedUploadsCreate`` answers the recorded validations of media resources, and refuses to
stage media (devstore keeps no files for products).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from io import BufferedIOBase
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson
from graphql import GraphQLError, execute_sync, parse

from devstore import bulk
from devstore.bulk_rules import bulk_mutation_errors
from devstore.graphql_api import Ctx

if TYPE_CHECKING:
    from devstore.store import ShopStore

MAX_FILE_BYTES = 100 * 1024 * 1024  # "100 MB": the recorded message and the POST policy's range
URL_TTL_S = 7 * 86_400  # X-Goog-Expires=604800, as recorded
POLICY_TTL_S = 86_400  # the recorded POST policy expires a day after it is issued
BUCKET = "shopify-staged-uploads"
CREDENTIAL_ACCOUNT = "merchant-assets@devstore.invalid"
UPLOAD_PATH = "/staged-uploads/"
NO_SUCH_FILE = (
    "The JSONL file could not be found. Try uploading the file again, and check that you've "
    "entered the URL correctly for the stagedUploadPath mutation argument."
)

_keys: weakref.WeakValueDictionary[str, ShopStore] = weakref.WeakValueDictionary()


@dataclass
class StagedFile:
    key: str
    method: str
    content_type: str
    expires: int
    path: str | None = None  # set once something was uploaded
    size: int = 0


def _staged(store: ShopStore) -> dict[str, StagedFile]:
    with store._lock:
        files = store._api_state.get("staged")
        if files is None:
            files = store._api_state["staged"] = {}
        return files  # type: ignore[no-any-return]


def store_for_key(key: str) -> ShopStore | None:
    """The shop a staged-upload key was issued by (the upload request names no shop)."""
    return _keys.get(key)


def _sign(store: ShopStore, message: str) -> str:
    return hmac.new(store.url_secret, message.encode(), hashlib.sha256).hexdigest()


def _goog_date(ts: int) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))


# ---------------------------------------------------------------------------------------------
# stagedUploadsCreate

_EMPTY_TARGET: dict[str, Any] = {"url": None, "resourceUrl": None, "parameters": []}


def _media_error(index: int, item: dict[str, Any]) -> dict[str, Any] | None:
    """The recorded validations of media resources (media-staged-uploads-create-validation.json)."""
    resource, mime = item["resource"], item["mimeType"]
    if resource == "VIDEO" and item.get("fileSize") is None:
        return {"field": ["input", str(index), "fileSize"], "message": "file size is required for video resources"}
    if resource == "MODEL_3D" and item.get("fileSize") is None:
        return {"field": ["input", str(index), "fileSize"], "message": "file size is required for 3D model resources"}
    if resource in ("IMAGE", "PRODUCT_IMAGE", "COLLECTION_IMAGE", "SHOP_IMAGE") and not mime.startswith("image/"):
        return {
            "field": ["input", str(index), "mimeType"],
            "message": f"{item['filename']}: ({mime}) is not a recognized format",
        }
    return None


def staged_uploads_create(*, ctx: Ctx, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    store = ctx.store
    targets: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(inputs):
        if item["resource"] != "BULK_MUTATION_VARIABLES":
            error = _media_error(index, item)
            if error is None:
                raise GraphQLError(
                    f"devstore stages only BULK_MUTATION_VARIABLES uploads, not {item['resource']}.",
                    extensions={"code": "ACCESS_DENIED", "devstoreUnserved": f"stagedUploadsCreate {item['resource']}"},
                )
            errors.append(error)
            targets.append(dict(_EMPTY_TARGET))
            continue
        targets.append(_bulk_target(store, item))
    return {"stagedTargets": targets, "userErrors": errors}


def _bulk_target(store: ShopStore, item: dict[str, Any]) -> dict[str, Any]:
    now = int(store.now())
    key = f"tmp/{store.shop_id}/bulk/{uuid.uuid4()}/{item['filename']}"
    method = item.get("httpMethod") or "PUT"
    mime = item["mimeType"]
    date = _goog_date(now)
    credential = f"{CREDENTIAL_ACCOUNT}/{date[:8]}/auto/storage/goog4_request"
    base = store.base_url.rstrip("/") + UPLOAD_PATH
    if method == "POST":
        expires = now + POLICY_TTL_S
        policy = base64.b64encode(
            orjson.dumps({
                "conditions": [
                    {"Content-Type": mime},
                    {"success_action_status": "201"},
                    {"acl": "private"},
                    ["content-length-range", 1, MAX_FILE_BYTES],
                    {"bucket": BUCKET},
                    {"key": key},
                    {"x-goog-date": date},
                    {"x-goog-credential": credential},
                    {"x-goog-algorithm": "GOOG4-RSA-SHA256"},
                ],
                "expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
            })
        ).decode()
        target = {
            "url": base,
            "resourceUrl": base,
            "parameters": [
                {"name": "Content-Type", "value": mime},
                {"name": "success_action_status", "value": "201"},
                {"name": "acl", "value": "private"},
                {"name": "key", "value": key},
                {"name": "x-goog-date", "value": date},
                {"name": "x-goog-credential", "value": credential},
                {"name": "x-goog-algorithm", "value": "GOOG4-RSA-SHA256"},
                {"name": "x-goog-signature", "value": _sign(store, policy)},
                {"name": "policy", "value": policy},
            ],
        }
    else:
        expires = now + URL_TTL_S
        query = (
            f"X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential={quote(credential, safe='')}"
            f"&X-Goog-Date={date}&X-Goog-Expires={URL_TTL_S}&X-Goog-SignedHeaders=host"
            f"&X-Goog-Signature={_sign(store, f'PUT:{key}:{date}')}"
        )
        url = f"{base}{quote(key)}?{query}"
        target = {
            "url": url,
            "resourceUrl": url,
            "parameters": [{"name": "content_type", "value": mime}, {"name": "acl", "value": "private"}],
        }
    _staged(store)[key] = StagedFile(key=key, method=method, content_type=mime, expires=expires)
    _keys[key] = store
    return target


# ---------------------------------------------------------------------------------------------
# The upload endpoint (Google Cloud Storage's answers, as recorded and documented)

def _xml_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return status, {"Content-Type": "application/xml; charset=UTF-8"}, body.encode()


def _file_path(store: ShopStore, key: str) -> str:
    return os.path.join(store.tmp_dir, "staged-" + hashlib.sha256(key.encode()).hexdigest() + ".jsonl")


def staged_upload_post(*, content_type: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """POST /staged-uploads/: a multipart form with the target's parameters and a ``file`` part."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    if not message.is_multipart():
        return _xml_error(400, "InvalidArgument", "POST requires a multipart/form-data body.")
    fields: dict[str, str] = {}
    data: bytes | None = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        decoded = part.get_payload(decode=True)
        payload = decoded if isinstance(decoded, bytes) else b""
        if name == "file":
            data = payload
        elif isinstance(name, str):
            fields[name] = payload.decode()
    key = fields.get("key", "")
    store = store_for_key(key)
    staged = _staged(store).get(key) if store is not None else None
    if store is None or staged is None or staged.method != "POST":
        return _xml_error(403, "AccessDenied", "Invalid according to Policy: Policy Condition failed: key")
    if not hmac.compare_digest(_sign(store, fields.get("policy", "")), fields.get("x-goog-signature", "")):
        return _xml_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")
    if store.now() >= staged.expires:
        return _xml_error(400, "InvalidPolicyDocument", "Invalid according to Policy: Policy expired.")
    if data is None:
        return _xml_error(400, "InvalidArgument", "No file was found in the form.")
    if not 1 <= len(data) <= MAX_FILE_BYTES:
        code = "EntityTooSmall" if not data else "EntityTooLarge"
        return _xml_error(400, code, "Your proposed upload is outside the size range of your Policy Document.")
    path = _file_path(store, key)
    with open(path, "wb") as fh:
        fh.write(data)
    staged.path, staged.size = path, len(data)
    etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
    location = store.base_url.rstrip("/") + UPLOAD_PATH + quote(key)
    xml = (
        f"<?xml version='1.0' encoding='UTF-8'?><PostResponse><Location>{location}</Location>"
        f"<Bucket>{BUCKET}</Bucket><Key>{key}</Key><ETag>\"{etag}\"</ETag></PostResponse>"
    )
    return 201, {"Content-Type": "application/xml; charset=UTF-8", "ETag": f'"{etag}"'}, xml.encode()


def staged_upload_put(
    *, key: str, query: dict[str, str], length: int, stream: BufferedIOBase
) -> tuple[int, dict[str, str], bytes]:
    """PUT /staged-uploads/<key>?X-Goog-...: the body, streamed to disk (it may be 100 MB or more)."""
    store = store_for_key(key)
    staged = _staged(store).get(key) if store is not None else None
    if store is None or staged is None or staged.method != "PUT":
        return _xml_error(403, "AccessDenied", "Access denied.")
    expected = _sign(store, f"PUT:{key}:{query.get('X-Goog-Date', '')}")
    if not hmac.compare_digest(expected, query.get("X-Goog-Signature", "")):
        return _xml_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")
    if store.now() >= staged.expires:
        return _xml_error(400, "ExpiredToken", "The provided token has expired.")
    path = _file_path(store, key)
    digest = hashlib.md5(usedforsecurity=False)
    remaining = length
    with open(path, "wb") as fh:
        while remaining > 0:
            block = stream.read(min(remaining, 1 << 20))
            if not block:
                break
            fh.write(block)
            digest.update(block)
            remaining -= len(block)
    staged.path, staged.size = path, length - remaining
    return 200, {"ETag": f'"{digest.hexdigest()}"'}, b""


# ---------------------------------------------------------------------------------------------
# bulkOperationRunMutation

def _refusal(message: str, code: str) -> dict[str, Any]:
    return {"bulkOperation": None, "userErrors": [{"field": None, "message": message, "code": code}]}


def bulk_operation_run_mutation(*, ctx: Ctx, mutation: str, path: str) -> dict[str, Any]:
    errors = bulk_mutation_errors(mutation)
    if errors:
        return {"bulkOperation": None, "userErrors": errors}
    store = ctx.store
    staged = _staged(store).get(path)
    if staged is None or staged.path is None:
        return _refusal(NO_SUCH_FILE, "NO_SUCH_FILE")
    if staged.size == 0:
        return _refusal("The input file is empty.", "INVALID_STAGED_UPLOAD_FILE")
    if staged.size > MAX_FILE_BYTES:
        return _refusal("The input file size exceeds the maximum allowed size of 100 MB.", "INVALID_STAGED_UPLOAD_FILE")
    reg = bulk._registry(store)
    with reg.lock:
        refused = bulk.in_progress_error(reg, ctx.app_id, "MUTATION")
        if refused is not None:
            return refused
        op = bulk.new_operation(store, reg, app_id=ctx.app_id, query=mutation, op_type="MUTATION")
    created = bulk.BulkOperationObj(store, op)
    thread = threading.Thread(
        target=_run, args=(store, op, staged.path, ctx), name=f"bulk-mutation-{op.id}", daemon=True
    )
    thread.start()
    return {"bulkOperation": created, "userErrors": []}


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as fh:
        for number, line in enumerate(fh):
            if line.strip():
                yield number, line


def _run(store: ShopStore, op: bulk.BulkOp, source: str, ctx: Ctx) -> None:
    from devstore.conformance import real_schema
    from devstore.graphql_api import MutationRoot, _execution_error, _field_resolver, _resolve_type

    try:
        if not bulk.wait_to_run(store, op):
            return
        document = parse(op.query)
        schema = real_schema()
        op.path = os.path.join(store.tmp_dir, f"bulk-{op.id}.jsonl")
        op.parts = [op.path]
        written = 0
        with open(op.path, "wb") as out:
            for number, raw in _lines(source):
                if op.cancel.is_set():
                    break
                try:
                    variables = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    variables = None
                line: dict[str, Any]
                if not isinstance(variables, dict):
                    line = {"errors": [{"message": "Invalid JSON on this line of the input file."}]}
                else:
                    line_ctx = Ctx(store=store, scopes=ctx.scopes, app_id=ctx.app_id, now=int(store.clock()))
                    result = execute_sync(
                        schema, document, root_value=MutationRoot(line_ctx), context_value=line_ctx,
                        variable_values=variables, field_resolver=_field_resolver, type_resolver=_resolve_type,
                    )
                    line = {"data": result.data}
                    if result.errors:
                        line["errors"] = [_execution_error(e) for e in result.errors]
                line["__lineNumber"] = number
                chunk = bulk.shopify_escape(orjson.dumps(line)) + b"\n"
                out.write(chunk)
                written += len(chunk)
                op.object_count += 1
                op.root_object_count += 1
        if op.cancel.is_set():
            bulk.finish(store, op, "CANCELED")
            return
        op.file_size = written
        bulk.finish(store, op, "COMPLETED")
    except Exception:  # noqa: BLE001 - a crashed operation must read FAILED, as on Shopify
        op.error_code = "INTERNAL_SERVER_ERROR"
        bulk.finish(store, op, "FAILED")
