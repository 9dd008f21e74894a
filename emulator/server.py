"""HTTP front end: the DataSync JSON 1.1 protocol plus the /_emulator/ control API."""

from __future__ import annotations

import json
import math
import random
import sys
import threading
import traceback
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import handlers, model, s3api
from .filters import EXECUTION_FILTERS
from .resources import ApiError, Fault, State

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


CONFIG_SETTINGS: dict[str, Callable[[Any], object]] = {
    "phase_delay": float, "offline_error_delay": float, "task_create_delay": float,
    "item_quota": int, "echo_execution_filters": bool, "empty_filter_list_clears": bool,
    "launch_delay": seconds, "file_delay": seconds, "execution_filters": execution_filters}
"""What POST /_emulator/config may change, and how each value is read (ValueError: refused)."""
TARGET_PREFIX = "FmrsService."
FAULT_KINDS = ("500", "drop", "denied")
FAULT_WHEN = ("after", "before", "late")


def fault_spec(body) -> tuple[str, Fault | None]:
    """A ``POST /_emulator/faults`` body read: the operation and its fault (None: clear it).
    ValueError: refused, so a typo cannot set a fault that never fires."""
    if not isinstance(body, dict):
        raise ValueError("want a JSON object")
    unknown = sorted(set(body) - {"operation", "fault", "times", "when", "delay"})
    if unknown:
        raise ValueError(f"unknown keys {unknown}")
    op = body.get("operation")
    if not isinstance(op, str) or op not in _model_ops():
        raise ValueError(f"operation {op!r} is not in DataSync's model")
    if op not in handlers.OPERATIONS:
        raise ValueError(f"operation {op!r} is not implemented by the emulator")
    kind, when, times = body.get("fault", "500"), body.get("when", "after"), body.get("times", 1)
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault must be one of {', '.join(FAULT_KINDS)}, not {kind!r}")
    if when not in FAULT_WHEN:
        raise ValueError(f"when must be one of {', '.join(FAULT_WHEN)}, not {when!r}")
    if type(times) is not int or times < -1:
        raise ValueError(f"times must be a whole number >= -1 (-1: until cleared, 0: clear), not {times!r}")
    delay = body.get("delay", 0.0)
    if type(delay) not in (int, float) or not 0 <= delay <= 60 or (delay and when != "late"):
        raise ValueError(f"delay must be seconds from 0 to 60, and only with when 'late', not {delay!r}")
    if kind == "denied" and when != "before":
        raise ValueError("a 'denied' call is refused, so it is never carried out: use it with when 'before'")
    return op, Fault(kind, times, when, float(delay)) if times else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "DataSyncEmulator/1.0"
    disable_nagle_algorithm = True
    """Headers and body go out in two writes: with Nagle's algorithm the body waited for the
    client's delayed ACK, 40 ms on every call."""
    state: State  # set by make_server's subclass
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
    # /_emulator/... is the control API; a POST to / (or with an X-Amz-Target) is DataSync's
    # JSON protocol; every other request is S3's REST API, path-style (``s3api``; no bucket
    # is named "_emulator": S3 bucket names hold no underscore).
    def do_GET(self):
        if not self.path.startswith("/_emulator/"):
            return self._s3()
        self._body()
        return self._control("GET", {})

    def do_POST(self):
        if not self.path.startswith("/_emulator/") and "X-Amz-Target" not in self.headers \
                and self.path.split("?", 1)[0] != "/":
            return self._s3()
        raw = self._body()
        if self.path.startswith("/_emulator/"):
            try:
                body = json.loads(raw.decode() or "{}")
            except ValueError:
                return self._send(400, {"error": "invalid JSON"}, "application/json")
            return self._control("POST", body)
        return self._aws(raw)

    def do_HEAD(self):
        self._s3()

    def do_PUT(self):
        self._s3()

    def do_DELETE(self):
        self._s3()

    # ------------------------------------------------------------------ S3
    def _s3(self) -> None:
        """Answer an S3 request (``s3api``); a HEAD gets the headers alone."""
        self._skip_body()
        resp = s3api.handle(self.state, self.command, self.path, self.headers)
        self.send_response(resp.status)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if resp.body is None:
            return
        with resp.body:
            left = resp.length if self.command != "HEAD" else 0
            while left > 0:
                chunk = resp.body.read(min(left, 1 << 16))
                if not chunk:  # the file shrank while it was sent: the client sees a short body
                    self.close_connection = True
                    return
                self.wfile.write(chunk)
                left -= len(chunk)

    def _skip_body(self) -> None:
        """Read past a request's body (no S3 operation served takes one), so the connection can
        carry the next request; a chunked body is not read, and the connection is closed after."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            return
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                return
            left -= len(chunk)

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
        fault = self._take_fault(op)
        if fault is not None and fault.when != "after":
            return self._lose_before(fault, op, handler, params)
        status = 200
        try:
            out = handler(st, params)
        except ApiError as exc:
            status, out = exc.status, {"__type": exc.code, "message": exc.message}
        except Exception as exc:  # pragma: no cover
            traceback.print_exc()
            status, out = 500, {"__type": "InternalException", "message": f"{type(exc).__name__}: {exc}"}
        if fault is not None:
            return self._lose_answer(fault, op)
        self._send(status, out)

    def _take_fault(self, op: str) -> Fault | None:
        """The fault this call of `op` gets, if one is set; counts it and uses up one of its times."""
        st = self.state
        with st.lock:
            fault = st.faults.get(op)
            if fault is None:
                return None
            st.faulted[op] += 1
            if fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    del st.faults[op]
            return fault

    def _lose_before(self, fault: Fault, op: str, handler, params: dict):
        """Lose the answer without carrying the call out now: not at all ("before"), or
        ``fault.delay`` seconds later ("late"), on a timer thread of its own."""
        if fault.when == "late":
            threading.Timer(fault.delay, handler, (self.state, params)).start()
        return self._lose_answer(fault, op)

    def _lose_answer(self, fault: Fault, op: str):
        """Answer as a lost answer looks to the caller: DataSync's HTTP 500, or no answer at all
        (or, for "denied", a refusal as a missing permission gives).
        For "drop" nothing is written: once this request returns, the server shuts the socket
        down (``close_connection`` ends the keep-alive loop), so the client reads end of stream."""
        if fault.fault == "drop":
            self.close_connection = True
            return
        if fault.fault == "denied":  # a refusal botocore does not retry, as a missing IAM permission gives
            return self._error(400, "AccessDeniedException", f"injected fault: not authorized to perform {op}")
        if fault.when == "after":
            return self._error(500, "InternalException", f"injected fault: {op} was carried out, its answer lost")
        if fault.when == "late":
            return self._error(500, "InternalException", f"injected fault: {op} is carried out later, its answer lost")
        return self._error(500, "InternalException", f"injected fault: {op} was not carried out")

    # --------------------------------------------------------- control API
    def _control(self, method: str, body: Any) -> None:
        """Answer a /_emulator/ call from :data:`CONTROL_ROUTES`, else from :data:`CONTROL_PREFIX_ROUTES`
        (the rest of the path passed on); a bad value in the body is a 400, no route a 404."""
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            route = CONTROL_ROUTES.get((method, path))
            if route is not None:
                return route(self, body)
            for (route_method, prefix), prefix_route in CONTROL_PREFIX_ROUTES.items():
                if method == route_method and path.startswith(prefix):
                    return prefix_route(self, body, path[len(prefix):])
        except (ValueError, TypeError) as exc:
            return self._send(400, {"error": str(exc)}, "application/json")
        return self._send(404, {"error": f"no control endpoint {method} {path}"},
                          "application/json")

    def _get_state(self, body: Any) -> None:
        self._send(200, self.state.dump(), "application/json")

    def _get_calls(self, body: Any) -> None:
        st = self.state
        with st.lock:
            out = {"calls": dict(st.calls), "throttled": dict(st.throttled),
                   "faulted": dict(st.faulted), "total": sum(st.calls.values()),
                   "total_throttled": sum(st.throttled.values()),
                   "total_faulted": sum(st.faulted.values())}
        self._send(200, out, "application/json")

    def _reset_calls(self, body: Any) -> None:
        st = self.state
        with st.lock:
            st.calls.clear()
            st.throttled.clear()
            st.faulted.clear()
        self._send(200, {"ok": True}, "application/json")

    def _get_faults(self, body: Any) -> None:
        with self.state.lock:
            out = {"faults": self.state.fault_list()}
        self._send(200, out, "application/json")

    def _set_fault(self, body: Any) -> None:
        """Answers the faults still set, read under the same lock as the change."""
        st = self.state
        op, fault = fault_spec(body)
        with st.lock:
            if fault is None:
                st.faults.pop(op, None)
            else:
                st.faults[op] = fault
            out = {"faults": st.fault_list()}
        self._send(200, out, "application/json")

    def _set_agent(self, body: Any, ref: str) -> None:
        st = self.state
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
        self._send(200, out, "application/json")

    def _set_throttle(self, body: Any) -> None:
        st = self.state
        frac = float(body.get("fraction", 0.0))
        if not 0.0 <= frac <= 1.0:
            raise ValueError("fraction must be within [0, 1]")
        with st.lock:
            st.throttle_fraction = frac
            st.throttle_rng = random.Random(body.get("seed", 1))
        self._send(200, {"fraction": frac, "seed": body.get("seed", 1)}, "application/json")

    def _set_config(self, body: Any) -> None:
        st = self.state
        changes = {key: kind(body[key]) for key, kind in CONFIG_SETTINGS.items() if key in body}
        with st.cond:  # all or nothing: a bad value above changed nothing
            for key, value in changes.items():
                setattr(st, key, value)
            st.cond.notify_all()
            out = {key: getattr(st, key) for key in CONFIG_SETTINGS}
        self._send(200, out, "application/json")


CONTROL_ROUTES: dict[tuple[str, str], Callable[[Handler, Any], None]] = {
    ("GET", "/_emulator/state"): Handler._get_state,
    ("GET", "/_emulator/calls"): Handler._get_calls,
    ("POST", "/_emulator/calls/reset"): Handler._reset_calls,
    ("GET", "/_emulator/faults"): Handler._get_faults,
    ("POST", "/_emulator/faults"): Handler._set_fault,
    ("POST", "/_emulator/throttle"): Handler._set_throttle,
    ("POST", "/_emulator/config"): Handler._set_config,
}
"""The control API: (method, path without query or trailing slash) -> what answers it, given the JSON body."""
CONTROL_PREFIX_ROUTES: dict[tuple[str, str], Callable[[Handler, Any, str], None]] = {
    ("POST", "/_emulator/agents/"): Handler._set_agent,
}
"""Control paths that name a thing after the prefix: (method, prefix) -> what answers, given the body and the rest."""

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
