#!/usr/bin/env python3
"""A transactional producer for HalfMsgBroker in Python's standard library only.

It runs the same flow as examples/OrderService, without any SDK:

  1. send a half (prepared) message            POST /v1/topics/orders/half-messages
  2. run the local transaction in SQLite: insert the order and a row in a transaction log
     keyed by the transactionId, in one SQLite transaction
  3. commit (or roll back) the half message     POST /v1/transactions/{id}/commit|rollback

and it serves the check-back endpoint (http.server) the broker calls when step 3 never
happened (the process died, the commit call failed). The checker answers from the
transaction log. When it finds no row it first inserts a "rolledBack" marker under the same
primary key, so a local transaction that is still in flight fails on its insert instead of
committing after the broker rolled the message back (the DTM "barrier" idea).

Usage:
  python3 producer.py demo     [--broker URL] [--secret S]   # three orders: commit, rollback, crash
  python3 producer.py place    --sku SKU --qty N [--fault none|rollback|crash]
  python3 producer.py serve                                   # only the check endpoint

Environment: HALFMSG_BROKER (default http://127.0.0.1:8080), HALFMSG_API_KEY (a producer key with
"producerGroups": ["python-orders"] and the topic in "topics"; absent: no Authorization header, which a
broker on loopback without an admin key accepts), HALFMSG_SECRET (signing secret; absent: signatures
are not checked), HALFMSG_CHECK_LISTEN (host:port, default 127.0.0.1:0).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.server
import json
import os
import sqlite3
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

TAG = "created"
PRODUCER_GROUP = "python-orders"
SIGNATURE_TOLERANCE_SECONDS = 300


# --------------------------------------------------------------------------- broker client
class BrokerError(Exception):
    def __init__(self, status: int, problem: dict):
        super().__init__(f"{status} {problem.get('code')}: {problem.get('detail')}")
        self.status = status
        self.problem = problem


class Broker:
    """The few calls of the HTTP contract this producer needs (urllib only)."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or None
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if method != "GET":
            # Even a commit without a body: the broker refuses a state-changing call that is not JSON (415).
            request.add_header("Content-Type", "application/json")
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
                return json.loads(raw) if raw else {}
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                problem = json.loads(raw)
            except ValueError:
                problem = {"detail": raw.decode("utf-8", "replace")}
            raise BrokerError(error.code, problem) from None

    def register_producer_group(self, group: str, check_url: str) -> dict:
        return self.call("PUT", f"/v1/producer-groups/{group}", {"checkUrl": check_url, "checkTimeoutMs": 3000})

    def send_half(self, topic: str, transaction_id: str, body: dict, tag: str, keys: list[str]) -> dict:
        return self.call("POST", f"/v1/topics/{topic}/half-messages", {
            "producerGroup": PRODUCER_GROUP, "transactionId": transaction_id,
            "body": body, "tag": tag, "keys": keys,
        })

    def commit(self, transaction_id: str) -> dict:
        return self.call("POST", f"/v1/transactions/{transaction_id}/commit")

    def rollback(self, transaction_id: str) -> dict:
        return self.call("POST", f"/v1/transactions/{transaction_id}/rollback")

    def transaction(self, transaction_id: str) -> dict:
        return self.call("GET", f"/v1/transactions/{transaction_id}")


# --------------------------------------------------------------------------- local database
class OrderStore:
    """Orders and the transaction log, in one SQLite file (one connection per call)."""

    def __init__(self, path: str):
        self.path = path
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("""CREATE TABLE IF NOT EXISTS orders (
                id TEXT PRIMARY KEY, sku TEXT NOT NULL, quantity INTEGER NOT NULL,
                created_at TEXT NOT NULL)""")
            db.execute("""CREATE TABLE IF NOT EXISTS halfmsg_txlog (
                transaction_id TEXT PRIMARY KEY,
                state TEXT NOT NULL CHECK (state IN ('committed', 'rolledBack')),
                recorded_at TEXT NOT NULL)""")

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
        return sqlite3.connect(self.path, timeout=10, isolation_level=None)

    def place_order(self, order_id: str, transaction_id: str, sku: str, quantity: int, fail: bool) -> bool:
        """The local transaction. Returns False when it rolled back."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO orders (id, sku, quantity, created_at) VALUES (?, ?, ?, datetime('now'))",
                       (order_id, sku, quantity))
            if fail:
                raise ValueError("simulated business failure in the local transaction")
            # Same transaction: the record the checker looks for. A "rolledBack" marker the
            # checker inserted first makes this insert fail, and the order is not placed.
            db.execute("INSERT INTO halfmsg_txlog (transaction_id, state, recorded_at) "
                       "VALUES (?, 'committed', datetime('now'))", (transaction_id,))
            db.execute("COMMIT")
            return True
        except (ValueError, sqlite3.IntegrityError) as error:
            db.execute("ROLLBACK")
            print(f"  local transaction rolled back: {error}")
            return False
        finally:
            db.close()

    def resolve(self, transaction_id: str) -> str:
        """The checker: 'commit' or 'rollback', inserting a rollback marker when nothing is recorded."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")  # waits for an in-flight local transaction to finish
            row = db.execute("SELECT state FROM halfmsg_txlog WHERE transaction_id = ?", (transaction_id,)).fetchone()
            if row is None:
                db.execute("INSERT INTO halfmsg_txlog (transaction_id, state, recorded_at) "
                           "VALUES (?, 'rolledBack', datetime('now'))", (transaction_id,))
                state = "rolledBack"
            else:
                state = row[0]
            db.execute("COMMIT")
            return "commit" if state == "committed" else "rollback"
        finally:
            db.close()

    def count_orders(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]


# --------------------------------------------------------------------------- check endpoint
def signature_ok(secret: str | None, headers, raw: bytes) -> bool:
    if not secret:
        return True
    timestamp = headers.get("HalfMsg-Timestamp", "")
    signature = headers.get("HalfMsg-Signature", "")
    try:
        if abs(time.time() - int(timestamp)) > SIGNATURE_TOLERANCE_SECONDS:
            return False
    except ValueError:
        return False
    expected = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + raw, hashlib.sha256).hexdigest()
    given = [part.strip()[3:] for part in signature.split(",") if part.strip().startswith("v1=")]
    return any(hmac.compare_digest(expected, value) for value in given)


def make_check_server(listen: str, store: OrderStore, secret: str | None) -> http.server.ThreadingHTTPServer:
    host, _, port = listen.rpartition(":")

    class CheckHandler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server naming)
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/halfmsg/check":
                return self._answer(404, {"detail": "not found"})
            if not signature_ok(secret, self.headers, raw):
                return self._answer(401, {"detail": "bad or stale signature"})
            request = json.loads(raw)
            state = store.resolve(request["transactionId"])
            print(f"  check-back #{request.get('checkTimes')} for {request['transactionId']} -> {state}")
            return self._answer(200, {"state": state})

        def _answer(self, status: int, body: dict):
            payload = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format, *args):  # noqa: A002 (keep the console quiet)
            pass

    return http.server.ThreadingHTTPServer((host or "127.0.0.1", int(port or 0)), CheckHandler)


# --------------------------------------------------------------------------- producer flow
def place_order(broker: Broker, store: OrderStore, topic: str, sku: str, quantity: int, fault: str) -> str:
    order_id = uuid.uuid4().hex[:12]
    transaction_id = f"py-order-{order_id}"
    body = {"orderId": order_id, "sku": sku, "quantity": quantity}
    half = broker.send_half(topic, transaction_id, body, TAG, [f"order-{order_id}"])
    print(f"order {order_id}: half message {half['messageId']} is {half['state']}")
    if fault == "crash":
        store.place_order(order_id, transaction_id, sku, quantity, fail=False)
        print(f"order {order_id}: local transaction committed; 'crashing' before the commit call"
              " (the check-back will decide)")
        return transaction_id
    if store.place_order(order_id, transaction_id, sku, quantity, fail=(fault == "rollback")):
        print(f"order {order_id}: committed -> {broker.commit(transaction_id)['state']}")
    else:
        print(f"order {order_id}: rolled back -> {broker.rollback(transaction_id)['state']}")
    return transaction_id


def wait_resolved(broker: Broker, transaction_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        tx = broker.transaction(transaction_id)
        if tx["state"] != "prepared" or time.monotonic() > deadline:
            return tx
        time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["demo", "place", "serve"], nargs="?", default="demo")
    parser.add_argument("--broker", default=os.environ.get("HALFMSG_BROKER", "http://127.0.0.1:8080"))
    parser.add_argument("--secret", default=os.environ.get("HALFMSG_SECRET"))
    parser.add_argument("--listen", default=os.environ.get("HALFMSG_CHECK_LISTEN", "127.0.0.1:0"),
                        help="host:port of the check endpoint (port 0: any free port)")
    parser.add_argument("--public-url", help="check URL given to the broker (default: http://<listen>/halfmsg/check)")
    parser.add_argument("--db", default="python-orders.db")
    parser.add_argument("--topic", default="orders")
    parser.add_argument("--sku", default="apple")
    parser.add_argument("--qty", type=int, default=1)
    parser.add_argument("--fault", choices=["none", "rollback", "crash"], default="none")
    parser.add_argument("--wait", type=float, default=90.0, help="seconds to wait for the check-back (demo)")
    args = parser.parse_args()

    # The key comes from the environment only: a command-line argument would show in a process list.
    broker = Broker(args.broker, os.environ.get("HALFMSG_API_KEY"))
    store = OrderStore(args.db)
    server = make_check_server(args.listen, store, args.secret)
    host, port = server.server_address[:2]
    check_url = args.public_url or f"http://{host}:{port}/halfmsg/check"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    broker.register_producer_group(PRODUCER_GROUP, check_url)
    print(f"producer group {PRODUCER_GROUP!r} registered, check endpoint {check_url}")

    try:
        if args.command == "place":
            place_order(broker, store, args.topic, args.sku, args.qty, args.fault)
            if args.fault == "crash":
                os._exit(137)  # a real crash: no cleanup, no commit
            return 0
        if args.command == "serve":
            print("serving check-backs; Ctrl-C to stop", flush=True)
            try:
                threading.Event().wait()  # the server thread answers; this one only waits
            except KeyboardInterrupt:
                pass
            return 0

        committed = place_order(broker, store, args.topic, "apple", 1, "none")
        rolled_back = place_order(broker, store, args.topic, "apple", 1, "rollback")
        crashed = place_order(broker, store, args.topic, "apple", 2, "crash")
        print(f"waiting for the broker's check-back on {crashed} ...")
        outcome = {tx: wait_resolved(broker, tx, args.wait) for tx in (committed, rolled_back, crashed)}
        for tx, state in outcome.items():
            print(f"  {tx}: {state['state']} (resolvedBy={state.get('resolvedBy')}, checks={state.get('checkCount')})")
        ok = (outcome[committed]["state"] == "committed"
              and outcome[rolled_back]["state"] == "rolledBack"
              and outcome[crashed]["state"] == "committed" and outcome[crashed].get("resolvedBy") == "check")
        print("python producer demo:", "OK" if ok else "FAILED")
        return 0 if ok else 1
    except BrokerError as error:
        print(f"broker error: {error}", file=sys.stderr)
        return 2
    finally:
        if args.command == "demo":
            server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
