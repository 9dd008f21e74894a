"""HTTP front end: the DataSync JSON 1.1 protocol plus the /_emulator/ control API."""

from __future__ import annotations

import json
import math
import random
import sys
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import handlers, model
from .filters import EXECUTION_FILTERS
from .resources import ApiError, State

JSON_CT = "application/x-amz-json-1.1"


def seconds(value) -> float:
    """A duration the emulator waits: a finite number, not negative."""
    out = float(value)
    if not (math.isfinite(out) and out >= 0):
        raise ValueError(f"{value!r} is not a number of seconds >= 0")
    return out


def execution_filters(value) -> str:
    """How an execution's filters combine with its task's: one of :data:`EXECUTION_FILTERS`."""
    if value not in EXECUTION_FILTERS:
        raise ValueError(f"execution_filters must be one of {', '.join(EXECUTION_FILTERS)}, not {value!r}")
    return value


CONFIG_SETTINGS = {"phase_delay": float, "offline_error_delay": float, "task_create_delay": float,
                   "item_quota": int, "echo_execution_filters": bool, "empty_filter_list_clears": bool,
                   "launch_delay": seconds, "file_delay": seconds, "execution_filters": execution_filters}
"""What POST /_emulator/config may change, and how each value is read (ValueError: refused)."""
TARGET_PREFIX = "FmrsService."


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "DataSyncEmulator/1.0"
    disable_nagle_algorithm = True
    """Headers and body go out in two writes: with Nagle's algorithm the body waited for the
    client's delayed ACK, 40 ms on every call."""
    state: State = None  # set by make_server
    verbose = False

    def log_message(self, fmt, *args):  # quiet unless --verbose
        if self.verbose:
            sys.stderr.write(f"{self.address_string()} - {fmt % args}\n")

    # ------------------------------------------------------------ plumbing
    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status: int, payload, content_type=JSON_CT):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str):
        self._send(status, {"__type": code, "message": message})

    # ---------------------------------------------------------------- verbs
    def do_GET(self):
        self._body()
        if self.path.startswith("/_emulator/"):
            return self._control("GET", {})
        self._send(404, {"message": "not found"}, "application/json")

    def do_POST(self):
        raw = self._body()
        if self.path.startswith("/_emulator/"):
            try:
                body = json.loads(raw.decode() or "{}")
            except ValueError:
                return self._send(400, {"error": "invalid JSON"}, "application/json")
            return self._control("POST", body)
        return self._aws(raw)

    # ------------------------------------------------------------- AWS API
    def _aws(self, raw: bytes):
        st = self.state
        target = self.headers.get("X-Amz-Target", "")
        op = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else ""
        label = op or f"<{target or 'no target'}>"
        with st.lock:
            st.calls[label] += 1
            throttled = st.throttle_fraction > 0 and st.throttle_rng.random() < st.throttle_fraction
            if throttled:
                st.throttled[label] += 1
        if throttled:
            return self._error(400, "ThrottlingException", "Rate exceeded")
        handler = handlers.OPERATIONS.get(op)
        if handler is None:
            return self._error(400, "UnknownOperationException",
                               f"Unknown operation {target!r}" if op not in _model_ops()
                               else f"Operation {op} is not implemented by the emulator")
        try:
            params = json.loads(raw.decode() or "{}")
        except ValueError as exc:
            return self._error(400, "SerializationException", f"Invalid JSON body: {exc}")
        report = model.validate(params, model.service_model().operation_model(op).input_shape)
        if report:
            return self._error(400, "InvalidRequestException", report)
        try:
            out = handler(st, params)
        except ApiError as exc:
            return self._error(exc.status, exc.code, exc.message)
        except Exception as exc:  # pragma: no cover
            traceback.print_exc()
            return self._error(500, "InternalException", f"{type(exc).__name__}: {exc}")
        self._send(200, out)

    # --------------------------------------------------------- control API
    def _control(self, method: str, body):
        st = self.state
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            if method == "GET" and path == "/_emulator/state":
                return self._send(200, st.dump(), "application/json")
            if method == "GET" and path == "/_emulator/calls":
                with st.lock:
                    out = {"calls": dict(st.calls), "throttled": dict(st.throttled),
                           "total": sum(st.calls.values()),
                           "total_throttled": sum(st.throttled.values())}
                return self._send(200, out, "application/json")
            if method == "POST" and path == "/_emulator/calls/reset":
                with st.lock:
                    st.calls.clear()
                    st.throttled.clear()
                return self._send(200, {"ok": True}, "application/json")
            if method == "POST" and path.startswith("/_emulator/agents/"):
                ref = path[len("/_emulator/agents/"):]
                try:
                    agent = st.agent_by_ref(ref)
                except KeyError:
                    return self._send(404, {"error": f"no agent {ref!r}"}, "application/json")
                kw = {}
                if "status" in body:
                    kw["status"] = body["status"]
                if "bytes_per_second" in body:
                    kw["bytes_per_second"] = body["bytes_per_second"]
                if "last_contact_ago" in body:
                    kw["last_contact_ago"] = body["last_contact_ago"]
                handlers.set_agent(st, agent, **kw)
                with st.lock:
                    out = {"arn": agent.arn, "id": agent.id, "name": agent.name, "mode": agent.mode,
                           "status": agent.status, "bytes_per_second": agent.bytes_per_second,
                           "last_connection": agent.last_connection}
                return self._send(200, out, "application/json")
            if method == "POST" and path == "/_emulator/throttle":
                frac = float(body.get("fraction", 0.0))
                if not 0.0 <= frac <= 1.0:
                    raise ValueError("fraction must be within [0, 1]")
                with st.lock:
                    st.throttle_fraction = frac
                    st.throttle_rng = random.Random(body.get("seed", 1))
                return self._send(200, {"fraction": frac, "seed": body.get("seed", 1)},
                                  "application/json")
            if method == "POST" and path == "/_emulator/config":
                changes = {key: kind(body[key]) for key, kind in CONFIG_SETTINGS.items() if key in body}
                with st.cond:  # all or nothing: a bad value above changed nothing
                    for key, value in changes.items():
                        setattr(st, key, value)
                    st.cond.notify_all()
                    out = {key: getattr(st, key) for key in CONFIG_SETTINGS}
                return self._send(200, out, "application/json")
        except (ValueError, TypeError) as exc:
            return self._send(400, {"error": str(exc)}, "application/json")
        return self._send(404, {"error": f"no control endpoint {method} {path}"},
                          "application/json")


_OPS = None


def _model_ops():
    global _OPS
    if _OPS is None:
        _OPS = set(model.service_model().operation_names)
    return _OPS


def make_server(state: State, host="127.0.0.1", port=0, verbose=False) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"state": state, "verbose": verbose})
    srv = ThreadingHTTPServer((host, port), handler)
    srv.daemon_threads = True
    return srv
