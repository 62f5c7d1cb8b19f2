"""devstore at scale: generate a big shop, bulk-export its orders (with refunds), report speed and memory.

    .venv/bin/python bench/devstore_scale.py --orders 1000000 --customers 250000

Prints one JSON line:
- generate_s;
- export_orders_per_s: root objects per second while devstore writes the JSONL (export_write_s);
- export_e2e_orders_per_s: from bulkOperationRunQuery to COMPLETED as the polling client sees it;
- export_cpu_s, export_orders_per_cpu_s: CPU the export used, worker process included (the rate
  on an otherwise idle machine);
- export_objects, export_bytes, download_s (the signed URL streamed back);
- peak_rss_mb (this process), peak_rss_children_mb (the export worker);
- load_avg_1m, cpus: how busy the machine was;
- path: "http" through devstore's own server with a token from token exchange, else "direct"
  through ShopStore.handle_graphql.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

from devstore.store import ShopStore  # noqa: E402

BULK_QUERY = """
{ orders {
    edges { node {
      id legacyResourceId name createdAt processedAt updatedAt cancelledAt test displayFinancialStatus
      currencyCode presentmentCurrencyCode tags customer { id }
      subtotalPriceSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
      currentSubtotalPriceSet { shopMoney { amount currencyCode } }
      totalPriceSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
      currentTotalPriceSet { shopMoney { amount currencyCode } }
      totalRefundedSet { shopMoney { amount currencyCode } }
      refunds { id createdAt totalRefundedSet { shopMoney { amount currencyCode } } }
    } }
} }
"""

SCOPES = frozenset({"read_orders", "read_all_orders", "read_customers"})


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    """User+system CPU of this process and its finished children (the export's worker process)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def graphql_direct(store: ShopStore, query: str, variables: dict | None = None) -> dict:
    status, _, body = store.handle_graphql(SCOPES, orjson.dumps({"query": query, "variables": variables or {}}))
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
    return orjson.loads(body)


def run(orders: int, customers: int, months: int, seed: int, use_http: bool) -> dict:
    t0 = time.perf_counter()
    store = ShopStore.generate(name="scale", seed=seed, customers=customers, orders=orders, months=months)
    generate_s = time.perf_counter() - t0
    store.faults["throttle_bucket_size"] = 10**9

    server = None
    path = "direct"
    graphql = lambda q, v=None: graphql_direct(store, q, v)  # noqa: E731
    download = None
    if use_http:
        try:
            server, graphql, download = http_path(store)
            path = "http"
        except Exception as exc:  # noqa: BLE001 - fall back to the direct path and say so
            print(f"# http path unavailable ({exc.__class__.__name__}: {exc}); using direct", file=sys.stderr)

    load_before = os.getloadavg()[0]
    cpu_before = _cpu_seconds()
    t1 = time.perf_counter()
    run_resp = graphql(
        "mutation($q: String!) { bulkOperationRunQuery(query: $q) {"
        " bulkOperation { id status } userErrors { message } } }",
        {"q": BULK_QUERY},
    )
    payload = run_resp["data"]["bulkOperationRunQuery"]
    if payload["userErrors"]:
        raise RuntimeError(payload["userErrors"])
    op_id = payload["bulkOperation"]["id"]
    while True:
        op = graphql("query($id: ID!) { bulkOperation(id: $id) { status objectCount rootObjectCount fileSize url } }",
                     {"id": op_id})["data"]["bulkOperation"]
        if op["status"] not in ("CREATED", "RUNNING"):
            break
        time.sleep(0.25)
    export_s = time.perf_counter() - t1
    from devstore import bulk

    write_s = bulk.bulk_wait(store, op_id).write_seconds or export_s
    export_cpu_s = _cpu_seconds() - cpu_before
    if op["status"] != "COMPLETED":
        raise RuntimeError(f"bulk operation ended {op['status']}")

    t2 = time.perf_counter()
    lines = 0
    size = 0
    if download is not None:
        lines, size = download(op["url"])
    else:
        from urllib.parse import parse_qs, urlparse

        url = urlparse(op["url"])
        qs = parse_qs(url.query)
        status, _, chunks = store.bulk_result(url.path.rsplit("/", 1)[-1].removesuffix(".jsonl"),
                                              expires=qs["expires"][0], signature=qs["signature"][0])
        for chunk in chunks:
            size += len(chunk)
            lines += chunk.count(b"\n")
    download_s = time.perf_counter() - t2
    n_orders, n_customers = store.order_count(), store.customer_count()
    if server is not None:
        server()  # closes the store too
    roots = int(op["rootObjectCount"])
    return {
        "bench": "devstore_scale",
        "path": path,
        "orders": n_orders,
        "customers": n_customers,
        "generate_s": round(generate_s, 2),
        "export_write_s": round(write_s, 2),
        "export_orders_per_s": round(roots / write_s),
        "export_cpu_s": round(export_cpu_s, 2),
        "export_orders_per_cpu_s": round(roots / export_cpu_s) if export_cpu_s else None,
        "export_e2e_s": round(export_s, 2),
        "export_e2e_orders_per_s": round(roots / export_s),
        "export_objects": int(op["objectCount"]),
        "export_bytes": int(op["fileSize"]),
        "download_s": round(download_s, 2),
        "download_lines": lines,
        "download_bytes": size,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_rss_children_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "load_avg_1m": round(load_before, 2),
        "cpus": os.cpu_count(),
    }


def http_path(store: ShopStore):  # type: ignore[no-untyped-def]
    """Serve the store through devstore's own HTTP server; token exchange and httpx, as the app does."""
    import httpx

    from devstore.testing import DevStore  # the platform helper's in-process server

    api_key, api_secret = "bench-key", "bench-secret-" + "0" * 24
    ds = DevStore([], api_key=api_key, api_secret=api_secret, app_url="http://127.0.0.1:9", toml_path=None)
    ds.__enter__()
    ds.platform.shop_add(store, scopes=",".join(sorted(SCOPES)))
    ds.shops.append(store.domain)
    ds.install(store.domain, scopes=",".join(sorted(SCOPES)))
    client = httpx.Client(base_url=ds.base_url, headers={"Host": store.domain}, timeout=60)
    resp = client.post("/admin/oauth/access_token", json={
        "client_id": api_key, "client_secret": api_secret,
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": ds.session_token(store.domain),
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
        "requested_token_type": "urn:shopify:params:oauth:token-type:offline-access-token",
    })
    resp.raise_for_status()
    client.headers["X-Shopify-Access-Token"] = resp.json()["access_token"]

    def graphql(query: str, variables: dict | None = None) -> dict:
        resp = client.post("/admin/api/2026-10/graphql.json", json={"query": query, "variables": variables or {}})
        resp.raise_for_status()
        return resp.json()

    def download(url: str) -> tuple[int, int]:
        lines = size = 0
        with httpx.stream("GET", url, timeout=120) as resp:
            resp.raise_for_status()
            for chunk in resp.iter_bytes():
                size += len(chunk)
                lines += chunk.count(b"\n")
        return lines, size

    def stop() -> None:
        client.close()
        ds.__exit__(None, None, None)

    return stop, graphql, download


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=250_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--direct", action="store_true", help="skip the HTTP server even if it is available")
    args = parser.parse_args()
    result = run(args.orders, args.customers, args.months, args.seed, use_http=not args.direct)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
