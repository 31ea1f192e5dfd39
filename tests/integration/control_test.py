#!/usr/bin/env python3
"""Control-plane checks against a running turnpiked (started by control_test.sh, which exports
the ports, token and paths). Python stdlib plus python3-yaml for docs/openapi.yaml. Every check
raises on failure; the process exits non-zero with the reason."""

import base64
import concurrent.futures
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from turn_client import TurnClient, TurnError  # noqa: E402

ENV = os.environ
CTL = int(ENV["TP_CTL_PORT"])
TOKEN = ENV.get("TP_TOKEN", "")
TURN_PORT = int(ENV["TP_PORT"])
BUILD = ENV["TP_BUILD_DIR"]
TMP = ENV["TP_TMP"]

RECORDED = []  # (method, path, status, json body or None) for the OpenAPI check


def log(*a):
    print("[control_test]", *a, flush=True)


def fail(msg):
    raise AssertionError(msg)


def expect(cond, msg):
    if not cond:
        fail(msg)


def call(method, path, body=None, token=TOKEN, headers=None, raw=None, timeout=10):
    """One request on a fresh connection; returns (status, parsed JSON or text, headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", CTL, timeout=timeout)
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    parsed = text
    if r.getheader("Content-Type", "").startswith("application/json"):
        parsed = json.loads(text)
    RECORDED.append((method, path.split("?")[0], r.status,
                     parsed if isinstance(parsed, (dict, list)) else None))
    return r.status, parsed, r


def expect_error(status, body, want, what):
    expect(status == want, "%s: status %s, want %s (%s)" % (what, status, want, body))
    expect(isinstance(body, dict) and isinstance(body.get("error"), dict) and
           isinstance(body["error"].get("code"), str) and
           isinstance(body["error"].get("message"), str) and body["error"]["message"],
           "%s: not a JSON error envelope: %r" % (what, body))


def rest_creds(user, ttl=3600):
    username = "%d:%s" % (int(time.time()) + ttl, user)
    pw = base64.b64encode(hmac.new(ENV["TP_SECRET"].encode(), username.encode(),
                                   hashlib.sha1).digest()).decode()
    return username, pw


def wait_for(cond, what, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)  # poll interval
    fail("timed out waiting for " + what)


def metric(text, name, labels=""):
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


def scrape():
    s, text, _ = call("GET", "/metrics", token="")
    expect(s == 200, "/metrics status %s" % s)
    return text


def promtool(text, what):
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True)
    out = (p.stdout + p.stderr).decode().strip()
    expect(p.returncode == 0 and out == "",
           "%s: promtool check metrics complained (rc %d): %s" % (what, p.returncode, out))


# ----------------------------------------------------------------------------------------------
# OpenAPI: every documented operation is served, and every response we saw matches its document.

def load_openapi():
    import yaml  # python3-yaml
    with open(os.path.join(ENV["TP_REPO_DIR"], "docs", "openapi.yaml")) as f:
        return yaml.safe_load(f)


def resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        expect(ref.startswith("#/"), "only local $refs: " + ref)
        cur = doc
        for part in ref[2:].split("/"):
            cur = cur[part]
        node = cur
    return node


def validate(doc, schema, value, where):
    schema = resolve(doc, schema)
    t = schema.get("type")
    if schema.get("nullable") and value is None:
        return
    types = {"object": dict, "array": list, "string": str, "boolean": bool,
             "integer": int, "number": (int, float)}
    if t:
        ok = isinstance(value, types[t]) and not (t in ("integer", "number") and
                                                   isinstance(value, bool))
        expect(ok, "%s: %r is not of type %s" % (where, value, t))
    if t == "object":
        for req in schema.get("required", []):
            expect(req in value, "%s: required field '%s' missing in %r" % (where, req, value))
        for k, sub in schema.get("properties", {}).items():
            if k in value:
                validate(doc, sub, value[k], where + "." + k)
    if t == "array" and "items" in schema:
        for i, item in enumerate(value):
            validate(doc, schema["items"], item, "%s[%d]" % (where, i))
    if "enum" in schema:
        expect(value in schema["enum"], "%s: %r not in %r" % (where, value, schema["enum"]))


def template_of(doc, path):
    for tpl in doc["paths"]:
        rx = "^" + re.sub(r"\{[^}]+\}", "[^/]+", tpl) + "$"
        if re.match(rx, path):
            return tpl
    return None


def check_openapi():
    doc = load_openapi()
    expect(str(doc.get("openapi", "")).startswith("3."), "docs/openapi.yaml is not OpenAPI 3")
    seen_ops = set()
    for method, path, status, body in RECORDED:
        tpl = template_of(doc, path)
        if tpl is None:
            expect(status == 404, "undocumented path %s answered %s" % (path, status))
            continue
        op = doc["paths"][tpl].get(method.lower())
        if op is None:
            expect(status == 405, "%s %s is undocumented but answered %s" % (method, tpl, status))
            continue
        seen_ops.add((method.lower(), tpl))
        responses = op["responses"]
        expect(str(status) in responses,
               "%s %s answered %s, which docs/openapi.yaml does not list (%s)"
               % (method, tpl, status, sorted(responses)))
        resp = resolve(doc, responses[str(status)])
        content = resp.get("content", {})
        if "application/json" in content and body is not None:
            validate(doc, content["application/json"]["schema"], body,
                     "%s %s %s" % (method, tpl, status))
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops
                  if m in ("get", "post", "delete", "put", "patch")}
    missing = documented - seen_ops
    expect(not missing, "documented operations never exercised: %s" % sorted(missing))
    log("OpenAPI: %d responses checked against %d documented operations"
        % (len(RECORDED), len(documented)))


# ----------------------------------------------------------------------------------------------

class EventReader(threading.Thread):
    """Follows GET /v1/events and collects (event, data) pairs."""

    def __init__(self):
        super().__init__(daemon=True)
        self.events = []
        self.lock = threading.Lock()
        self.conn = http.client.HTTPConnection("127.0.0.1", CTL, timeout=30)
        self.conn.request("GET", "/v1/events", headers={"Authorization": "Bearer " + TOKEN})
        self.resp = self.conn.getresponse()
        RECORDED.append(("GET", "/v1/events", self.resp.status, None))
        expect(self.resp.status == 200, "/v1/events status %s" % self.resp.status)
        expect(self.resp.getheader("Content-Type", "").startswith("text/event-stream"),
               "/v1/events content type %s" % self.resp.getheader("Content-Type"))

    def run(self):
        event, data = None, None
        try:
            while True:
                line = self.resp.fp.readline()
                if not line:
                    return
                line = line.decode().rstrip("\r\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                elif line == "" and event:
                    with self.lock:
                        self.events.append((event, data))
                    event, data = None, None
        except Exception:  # connection closed at the end of the test
            return

    def find(self, pred):
        with self.lock:
            return [e for e in self.events if pred(e)]


def mode_api():
    # Probes are open; the API is not.
    s, b, _ = call("GET", "/ping", token="")
    expect(s == 200 and b == {"state": "up", "version": b.get("version"), "path": "blue"}
           and b["version"], "/ping: %s %s" % (s, b))
    s, b, _ = call("GET", "/healthz", token="")
    expect(s == 200 and b["status"] == "ok", "/healthz: %s %s" % (s, b))
    s, b, _ = call("GET", "/readyz", token="")
    expect(s == 200 and b["ready"] is True, "/readyz: %s %s" % (s, b))
    promtool(scrape(), "idle scrape")

    for path in ("/v1/node", "/v1/allocations", "/v1/drain", "/v1/events"):
        s, b, r = call("GET", path, token="")
        expect_error(s, b, 401, "GET %s without token" % path)
        expect(r.getheader("WWW-Authenticate", "").startswith("Bearer"), "no WWW-Authenticate")
        s, b, _ = call("GET", path, token="wrong-" + TOKEN)
        expect_error(s, b, 401, "GET %s with a wrong token" % path)
    s, b, _ = call("GET", "/v1/node", token="", headers={"Authorization": "Basic eDp5"})
    expect_error(s, b, 401, "Basic auth instead of Bearer")
    for method, path in (("POST", "/v1/drain"), ("DELETE", "/v1/drain"),
                         ("POST", "/v1/config/reload"), ("POST", "/v1/credentials"),
                         ("DELETE", "/v1/allocations/0000000000000001")):
        s, b, _ = call(method, path, token="", body={"user": "x"} if "cred" in path else None)
        expect_error(s, b, 401, "%s %s without token" % (method, path))
    s, b, _ = call("GET", "/v1/drain")
    expect(s == 200 and b["draining"] is False, "unauthenticated POST /v1/drain had an effect")

    s, b, _ = call("GET", "/v1/node")
    expect(s == 200, "/v1/node: %s" % s)
    expect(b["color"] == "blue" and b["backend"] == "uring" and b["workers"] >= 1 and
           b["capacity"]["relays"][0]["total_ports"] ==
           int(ENV["TP_MAX_PORT"]) - int(ENV["TP_MIN_PORT"]) + 1, "/v1/node content: %s" % b)
    free_before = b["capacity"]["relays"][0]["free_ports"]

    s, b, _ = call("GET", "/no/such/thing")
    expect_error(s, b, 404, "unknown path")
    s, b, r = call("PUT", "/v1/drain")
    expect_error(s, b, 405, "PUT /v1/drain")
    expect("POST" in r.getheader("Allow", ""), "405 without Allow")

    events = EventReader()
    events.start()

    # Credentials: bad input first.
    bad_bodies = [
        (b"{not json", "malformed JSON"),
        (b"[1,2,3]", "an array"),
        (b"", "an empty body"),
        (json.dumps({"user": 5}).encode(), "user as a number"),
        (json.dumps({"ttl": 60}).encode(), "no user"),
        (json.dumps({"user": "a", "ttl": "60"}).encode(), "ttl as a string"),
        (json.dumps({"user": "a", "ttl": 1.5}).encode(), "ttl as a fraction"),
        (json.dumps({"user": "a", "ttl": 0}).encode(), "ttl 0"),
        (json.dumps({"user": "a", "ttl": 10 ** 12}).encode(), "ttl too large"),
        (json.dumps({"user": ""}).encode(), "empty user"),
        (json.dumps({"user": "a\nb"}).encode(), "user with a newline"),
        (json.dumps({"user": "x" * 300}).encode(), "user too long"),
    ]
    for raw, what in bad_bodies:
        s, b, _ = call("POST", "/v1/credentials", raw=raw,
                       headers={"Content-Type": "application/json"})
        expect_error(s, b, 400, "credentials with " + what)
    s, b, _ = call("POST", "/v1/credentials", raw=b'{"user":"a"}',
                   headers={"Content-Type": "text/plain"})
    expect_error(s, b, 400, "credentials as text/plain")
    s, b, _ = call("POST", "/v1/credentials", raw=b'{"user":"' + b"a" * 200000 + b'"}',
                   headers={"Content-Type": "application/json"})
    expect_error(s, b, 413, "oversized body")

    s, cred, _ = call("POST", "/v1/credentials", body={"user": "alice", "ttl": 600})
    expect(s == 200, "credentials: %s %s" % (s, cred))
    expect(cred["ttl"] == 600 and cred["username"].endswith(":alice") and
           abs(int(cred["username"].split(":")[0]) - (time.time() + 600)) < 5,
           "credentials content: %s" % cred)
    expect("turn:127.0.0.1:%d?transport=udp" % TURN_PORT in cred["uris"],
           "credentials uris: %s" % cred["uris"])
    want = base64.b64encode(hmac.new(ENV["TP_SECRET"].encode(), cred["username"].encode(),
                                     hashlib.sha1).digest()).decode()
    expect(cred["password"] == want, "password is not the TURN REST HMAC of the username")
    s, b, _ = call("POST", "/v1/credentials", body={"user": "bob"})
    expect(s == 200 and b["ttl"] == 86400, "default ttl: %s" % b)

    # Allocations made with the minted credentials.
    a = TurnClient(TURN_PORT, cred["username"], cred["password"])
    relayed_a = a.allocate()
    ub, pb = rest_creds("bob")
    clients = [TurnClient(TURN_PORT, ub, pb) for _ in range(3)]
    for c in clients:
        c.allocate()
    s, lst, _ = call("GET", "/v1/allocations")
    expect(s == 200 and lst["total"] == 4 and lst["count"] == 4 and lst["next_cursor"] is None,
           "list: %s" % lst)
    mine = [x for x in lst["allocations"] if x["username"] == cred["username"]]
    expect(len(mine) == 1, "alice's allocation not listed: %s" % lst)
    alloc = mine[0]
    expect(alloc["relayed_address"] == relayed_a and
           alloc["client"]["address"] == a.local_address() and
           alloc["client"]["transport"] == "udp" and 0 < alloc["lifetime_left_s"] <= 600,
           "allocation fields: %s (relayed %s, client %s)" % (alloc, relayed_a,
                                                               a.local_address()))
    s, lst, _ = call("GET", "/v1/allocations?user=" + ub.replace(":", "%3A"))
    expect(s == 200 and lst["total"] == 3 and all(x["username"] == ub for x in lst["allocations"]),
           "filter by user: %s" % lst)
    s, lst, _ = call("GET", "/v1/allocations?user=nobody")
    expect(s == 200 and lst["total"] == 0 and lst["allocations"] == [], "filter nobody: %s" % lst)
    s, p1, _ = call("GET", "/v1/allocations?limit=3")
    expect(s == 200 and p1["count"] == 3 and p1["next_cursor"], "page 1: %s" % p1)
    s, p2, _ = call("GET", "/v1/allocations?limit=3&cursor=" + p1["next_cursor"])
    expect(s == 200 and p2["count"] == 1 and p2["next_cursor"] is None, "page 2: %s" % p2)
    ids = [x["id"] for x in p1["allocations"] + p2["allocations"]]
    expect(len(set(ids)) == 4, "paging repeated or lost ids: %s" % ids)
    for q in ("limit=0", "limit=abc", "limit=100000", "cursor=zz", "cursor=" + "1" * 17):
        s, b, _ = call("GET", "/v1/allocations?" + q)
        expect_error(s, b, 400, "list with " + q)

    s, one, _ = call("GET", "/v1/allocations/" + alloc["id"])
    expect(s == 200 and one["id"] == alloc["id"] and one["relayed_address"] == relayed_a,
           "show: %s" % one)
    s, one_upper, _ = call("GET", "/v1/allocations/" + alloc["id"].upper())
    expect(s == 200 and one_upper["id"] == alloc["id"], "ids are case-insensitive")
    for bad in ("xyz", "1" * 17, "-1"):
        s, b, _ = call("GET", "/v1/allocations/" + bad)
        expect_error(s, b, 400, "show " + bad)
    for unknown in ("00ff000000000001", format(int(alloc["id"], 16) ^ (1 << 30), "016x")):
        s, b, _ = call("GET", "/v1/allocations/" + unknown)
        expect_error(s, b, 404, "show unknown " + unknown)
        s, b, _ = call("DELETE", "/v1/allocations/" + unknown)
        expect_error(s, b, 404, "kill unknown " + unknown)

    # Nothing so far touched the relay: all four allocations still refresh.
    expect(a.refresh(600) == 600, "alice's refresh")
    for c in clients:
        c.refresh(600)

    s, b, _ = call("DELETE", "/v1/allocations/" + alloc["id"])
    expect(s == 204, "kill: %s %s" % (s, b))
    s, b, _ = call("GET", "/v1/allocations/" + alloc["id"])
    expect_error(s, b, 404, "show after kill")
    s, b, _ = call("DELETE", "/v1/allocations/" + alloc["id"])
    expect_error(s, b, 404, "kill twice")
    try:
        a.refresh(600)
        fail("a killed allocation still refreshes")
    except TurnError as e:
        expect(e.code == 437, "refresh after kill: %d, want 437" % e.code)
    s, lst, _ = call("GET", "/v1/allocations")
    expect(lst["total"] == 3, "after kill: %s" % lst["total"])

    # Drain: new Allocates get 403, existing allocations refresh, probes report it.
    s, b, _ = call("POST", "/v1/drain")
    expect(s == 200 and b["draining"] is True, "drain on: %s" % b)
    s, b, _ = call("GET", "/readyz", token="")
    expect_error(s, b, 503, "/readyz while draining")
    s, b, _ = call("GET", "/ping", token="")
    expect(b["state"] == "draining", "/ping while draining: %s" % b)
    expect(metric(scrape(), "turnpike_draining") == 1, "turnpike_draining while draining")
    late = TurnClient(TURN_PORT, *rest_creds("late"))
    try:
        late.allocate()
        fail("Allocate succeeded while draining")
    except TurnError as e:
        expect(e.code == 403, "Allocate while draining: %d, want 403" % e.code)
    for c in clients:
        expect(c.refresh(600) == 600, "refresh while draining")
    s, b, _ = call("DELETE", "/v1/drain")
    expect(s == 200 and b["draining"] is False, "drain off: %s" % b)
    s, b, _ = call("GET", "/readyz", token="")
    expect(s == 200, "/readyz after drain off")
    late.allocate()
    clients.append(late)

    # Reload: a changed colour and quota apply, a changed port is reported as ignored, an
    # invalid file is refused with the reason and changes nothing.
    conf = ENV["TP_CONF"]
    with open(conf, "w") as f:
        f.write("deployment-color=green\nuser-quota=2\nmax-allocations=1000\n")
    s, b, _ = call("POST", "/v1/config/reload")
    expect(s == 200 and "deployment-color" in b["applied"] and "user-quota" in b["applied"] and
           b["ignored"] == ["max-allocations"], "reload: %s %s" % (s, b))
    s, b, _ = call("GET", "/ping", token="")
    expect(b["path"] == "green", "colour after reload: %s" % b)
    try:  # bob has 3 allocations and the new user-quota is 2 (his own username: a fresh
        # rest_creds("bob") one second later would be another user, "<expiry>:bob")
        TurnClient(TURN_PORT, ub, pb).allocate()
        fail("user-quota=2 from the reload was not applied")
    except TurnError as e:
        expect(e.code == 486, "Allocate over the reloaded quota: %d, want 486" % e.code)
    s, b, _ = call("POST", "/v1/config/reload", raw=b"{oops",
                   headers={"Content-Type": "application/json"})
    expect_error(s, b, 400, "reload with a malformed body")
    with open(conf, "w") as f:
        f.write("deployment-color=red\nmin-port=banana\n")
    s, b, _ = call("POST", "/v1/config/reload")
    expect_error(s, b, 400, "reload of an invalid file")
    expect("min-port" in b["error"]["message"], "reason not given: %s" % b)
    s, b, _ = call("GET", "/ping", token="")
    expect(b["path"] == "green", "an invalid reload changed the colour: %s" % b)
    with open(conf, "w") as f:
        f.write("deployment-color=purple\n")
    os.kill(int(ENV["TP_SERVER_PID"]), signal.SIGHUP)
    wait_for(lambda: call("GET", "/ping", token="")[1]["path"] == "purple", "SIGHUP reload")
    for c in clients:
        c.refresh(600)  # sessions survived every reload

    # Events seen by the stream opened above.
    wait_for(lambda: events.find(lambda e: e[0] == "drain" and e[1]["draining"] is False),
             "drain-off event")
    expect(events.find(lambda e: e[0] == "drain" and e[1]["draining"] is True),
           "no drain-on event")
    wait_for(lambda: events.find(lambda e: e[0] == "config_reloaded" and
                                 e[1]["source"] == "SIGHUP"), "reload event")
    wait_for(lambda: events.find(lambda e: e[0] == "allocation_created" and
                                 e[1]["id"] == alloc["id"] and
                                 e[1]["relay"] == relayed_a), "allocation_created event")
    wait_for(lambda: events.find(lambda e: e[0] == "allocation_deleted" and
                                 e[1]["id"] == alloc["id"] and
                                 e[1]["reason"] == "killed"), "allocation_deleted event")

    s, b, _ = call("GET", "/v1/node")
    expect(b["capacity"]["allocations"] == 4 and
           b["capacity"]["relays"][0]["free_ports"] == free_before - 4, "node after: %s" % b)
    promtool(scrape(), "scrape after the API tests")

    turnpikectl_checks(cred)
    gone = 0
    for c in clients:
        try:
            c.refresh(0)
        except TurnError as e:  # the one turnpikectl killed
            expect(e.code == 437, "refresh(0): %d" % e.code)
            gone += 1
    expect(gone == 1, "turnpikectl kill ended %d allocations, want 1" % gone)
    wait_for(lambda: call("GET", "/v1/allocations")[1]["total"] == 0, "allocations to end")
    check_openapi()


def ctl(*args, token=TOKEN, expect_rc=0):
    cmd = [os.path.join(BUILD, "turnpikectl"), "--url=http://127.0.0.1:%d" % CTL]
    if token:
        cmd.append("--token=" + token)
    p = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=30)
    expect(p.returncode == expect_rc, "turnpikectl %s: rc %d (want %d): %s %s"
           % (" ".join(args), p.returncode, expect_rc, p.stdout, p.stderr))
    return p.stdout + p.stderr


def turnpikectl_checks(cred):
    out = ctl("status")
    expect("WORKER" in out and "RELAY IP" in out and "purple" in out, "status: " + out)
    node = json.loads(ctl("status", "--json"))
    expect(node["node"]["backend"] == "uring" and node["healthy"] is True, "status --json")
    out = ctl("allocations", "list")
    expect("ID" in out and "4 of 4" in out, "allocations list: " + out)
    lst = json.loads(ctl("allocations", "list", "--json", "--limit=2"))
    expect(lst["count"] == 2 and lst["next_cursor"], "allocations list --json --limit=2")
    first = lst["allocations"][0]["id"]
    out = ctl("allocations", "show", first)
    expect(first in out and "relay" in out, "allocations show: " + out)
    ctl("allocations", "show", "00ff000000000001", expect_rc=1)
    out = ctl("credentials", "carol", "--ttl=60", "--json")
    c = json.loads(out)
    expect(c["username"].endswith(":carol") and c["ttl"] == 60, "credentials: " + out)
    out = ctl("drain", "on")
    expect("draining: yes" in out, "drain on: " + out)
    out = ctl("drain", "off")
    expect("draining: no" in out, "drain off: " + out)
    out = ctl("reload")
    expect("reloaded" in out, "reload: " + out)
    out = ctl("status", token="nope", expect_rc=1)
    expect("401" in out, "bad token: " + out)
    ctl("frobnicate", expect_rc=2)
    # kill the first listed allocation through the CLI
    ctl("allocations", "kill", first)
    ctl("allocations", "show", first, expect_rc=1)
    log("turnpikectl: status, allocations list/show/kill, credentials, drain, reload ok")


def mode_notoken():
    for method, path in (("GET", "/v1/node"), ("POST", "/v1/drain"), ("GET", "/v1/allocations")):
        for token in ("", "anything"):
            s, b, _ = call(method, path, token=token)
            expect_error(s, b, 401, "%s %s without a configured token" % (method, path))
            expect("no control token" in b["error"]["message"], "message: %s" % b)
    s, b, _ = call("GET", "/ping", token="")
    expect(s == 200 and b["state"] == "up", "/ping without a token configured")
    s, b, _ = call("GET", "/readyz", token="")
    expect(s == 200, "/readyz without a token configured")
    expect(metric(scrape(), "turnpike_draining") == 0, "a refused drain had an effect")
    log("no token configured: /v1 refused, probes open")


def loadgen(rate, duration, allocations, extra=()):
    cmd = [os.path.join(BUILD, "turnpike-loadgen"), "--server=127.0.0.1:%d" % TURN_PORT,
           "--secret=" + ENV["TP_SECRET"], "--rate=%d" % rate, "--duration=%d" % duration,
           "--allocations=%d" % allocations, "--warmup=1", "--drain=1", "--json=1"] + list(extra)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def loadgen_result(p, what):
    out, _ = p.communicate(timeout=120)
    m = re.search(r"^RESULT .*loss_pct=([0-9.]+)", out, re.M)
    expect(p.returncode == 0 and m, "%s: loadgen failed (rc %s): %s" % (what, p.returncode, out))
    res = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
    log("%s: %s" % (what, [l for l in out.splitlines() if l.startswith("RESULT")][-1]))
    return res


def mode_metrics():
    p = loadgen(2000, 5, 20)
    before = None
    checked = 0
    deadline = time.time() + 20
    while p.poll() is None and time.time() < deadline:
        text = scrape()
        promtool(text, "live scrape")
        checked += 1
        relayed = metric(text, "turnpike_relayed_packets_total", '{direction="to_peer"}')
        allocs = metric(text, "turnpike_allocations", '{transport="udp",family="ipv4"}')
        if before is None and relayed and allocs and allocs >= 20:
            before = (relayed, text)
        time.sleep(0.5)  # scrape interval while traffic flows
    res = loadgen_result(p, "metrics")
    expect(before is not None, "never saw 20 allocations and relayed packets in a scrape")
    text = scrape()
    after = metric(text, "turnpike_relayed_packets_total", '{direction="to_peer"}')
    expect(after > before[0], "relayed counter did not grow (%s -> %s)" % (before[0], after))
    for name in ("turnpike_build_info", "turnpike_permissions", "turnpike_channels",
                 "turnpike_relayed_bytes_total", "turnpike_dropped_packets_total",
                 "turnpike_auth_failures_total", "turnpike_allocation_requests_total",
                 "turnpike_quota_rejections_total", "turnpike_worker_busy_ratio"):
        expect(re.search(r"^# TYPE %s " % name, text, re.M), "metric %s missing" % name)
    expect(metric(text, "turnpike_allocation_requests_total", '{result="success"}') >= 20,
           "allocation successes not counted")
    expect(res["loss_pct"] == 0, "loss during the scrapes: %s" % res)
    log("metrics: %d live scrapes passed promtool; relayed %d -> %d" % (checked, before[0], after))


def uclient(user, pw, messages, clients, out_path, extra=()):
    cmd = ["turnutils_uclient", "-v", "-u", user, "-w", pw, "-e", "127.0.0.1",
           "-r", ENV["TP_PEER_PORT"], "-p", str(TURN_PORT), "-m", str(clients),
           "-n", str(messages), "-l", "170"] + list(extra) + ["127.0.0.1"]
    return subprocess.Popen(cmd, stdout=open(out_path, "w"), stderr=subprocess.STDOUT)


def uclient_check(p, out_path, clients, messages, what):
    rc = p.wait(timeout=180)
    out = open(out_path).read()
    expect(rc == 0, "%s: uclient exit %d: %s" % (what, rc, out[-2000:]))
    lost = re.findall(r"Total lost packets (\d+)", out)
    totals = re.findall(r"tot_send_msgs=(\d+).*tot_recv_msgs=(\d+)", out)
    expect(lost and totals, "%s: no uclient summary" % what)
    sent, recv = map(int, totals[-1])
    expect(int(lost[-1]) == 0 and sent == recv and sent >= clients * messages,
           "%s: sent %d received %d lost %s" % (what, sent, recv, lost[-1]))
    log("%s: uclient sent %d, received %d, lost 0" % (what, sent, recv))


def mode_uclient():
    s, cred, _ = call("POST", "/v1/credentials", body={"user": "webrtc-user", "ttl": 300})
    expect(s == 200, "credentials: %s" % cred)
    out = os.path.join(TMP, "uclient-rest.log")
    p = uclient(cred["username"], cred["password"], 50, 5, out)
    uclient_check(p, out, 5, 50, "uclient with minted credentials")
    # A password for another username must be refused (the check can fail).
    bad = os.path.join(TMP, "uclient-bad.log")
    p = uclient(cred["username"], cred["password"][:-4] + "AAA=", 5, 1, bad)
    rc = p.wait(timeout=60)
    expect(rc != 0 and "Cannot complete Allocation" in open(bad).read(),
           "a wrong password was accepted")


def mode_drain():
    messages, clients = 600, 2
    out = os.path.join(TMP, "uclient-drain.log")
    user, pw = rest_creds("drain")
    p = uclient(user, pw, messages, clients, out)
    wait_for(lambda: call("GET", "/v1/allocations")[1]["total"] >= clients,
             "uclient's allocations", timeout=20)
    os.kill(int(ENV["TP_SERVER_PID"]), signal.SIGTERM)
    wait_for(lambda: call("GET", "/readyz", token="")[0] == 503, "/readyz 503 after SIGTERM")
    s, b, _ = call("GET", "/ping", token="")
    expect(b["state"] == "draining", "/ping during drain: %s" % b)
    try:
        TurnClient(TURN_PORT, *rest_creds("newcomer")).allocate()
        fail("Allocate succeeded during the SIGTERM drain")
    except TurnError as e:
        expect(e.code == 403, "Allocate during drain: %d, want 403" % e.code)
    s, b, _ = call("DELETE", "/v1/drain")
    expect_error(s, b, 409, "drain off during shutdown")
    expect(p.poll() is None, "uclient finished before the drain was checked; make it longer")
    uclient_check(p, out, clients, messages, "uclient across the drain")
    pid = int(ENV["TP_SERVER_PID"])
    # The daemon stops by itself when drain-timeout (30 s, control_test.sh) is up, or earlier
    # once no allocation is left (uclient leaves its allocations to expire).
    deadline = time.time() + 40
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        try:
            if open("/proc/%d/stat" % pid).read().split()[2] == "Z":
                break
        except FileNotFoundError:
            break  # exited and reaped between the two checks
        time.sleep(0.1)  # poll interval
    else:
        fail("turnpiked did not exit after the drain")
    log("drain: readyz 503, Allocate 403, session finished with zero loss, daemon exited")


def mode_storm():
    rate, seconds = 4000, 6
    p = loadgen(rate, seconds, 40)
    wait_for(lambda: (metric(scrape(), "turnpike_allocations",
                             '{transport="udp",family="ipv4"}') or 0) >= 40,
             "loadgen allocations", timeout=20)
    statuses = {}
    lock = threading.Lock()

    def one():
        try:
            conn = http.client.HTTPConnection("127.0.0.1", CTL, timeout=10)
            conn.request("GET", "/metrics")
            r = conn.getresponse()
            body = r.read()
            conn.close()
            key = r.status if b"turnpike_build_info" in body else "bad body"
        except Exception as e:  # counted, judged below
            key = type(e).__name__
        with lock:
            statuses[key] = statuses.get(key, 0) + 1

    sent = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=200) as pool:
        start = time.time()
        second = 0
        while p.poll() is None and second < seconds - 1:
            for _ in range(200):
                pool.submit(one)
            sent += 200
            second += 1
            time.sleep(max(0.0, start + second - time.time()))  # 200 requests per second
    res = loadgen_result(p, "storm")
    log("storm: %d scrapes, results %s" % (sent, statuses))
    expect(statuses.get(200, 0) == sent, "not every scrape answered 200: %s" % statuses)
    expect(sent >= 800, "storm too short (%d scrapes)" % sent)
    expect(res["loss_pct"] == 0, "packets lost during the scrape storm: %s" % res)


def main():
    mode = sys.argv[1]
    {"api": mode_api, "notoken": mode_notoken, "metrics": mode_metrics,
     "uclient": mode_uclient, "drain": mode_drain, "storm": mode_storm}[mode]()
    log("PASS " + mode)


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAIL: %s" % e, file=sys.stderr)
        sys.exit(1)
