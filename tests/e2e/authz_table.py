"""Who may call what: every route and method against four callers, as one
table shared by the transports' authorization tests (authz_test.py runs the
"http" rows; gRPC rows go in the same table, run by their own runner).

Callers, in the order of each row's expectations:
  admin  API_KEY
  own    the key of the session the row acts on ("default" on the seed
         routes; on admin routes, any session's key)
  other  the key of another session
  none   no key at all
The gateway runs with an API key; every session is unlinked and shows a QR
(the fake server's QR lives long), so each answer is deterministic. Rows
whose call would change what later rows see send a body that is refused
after authorization (400), or act on a session made for that one call
(FRESH).

A row: Row(transport, method, target, body, (admin, own, other, none),
flags). For "http", `target` is the path, where {s} stands for the row's
session; each expectation is an HTTP status, or a tuple of the statuses
accepted. For "grpc", `method` is the RPC name (e.g. "GetQR"), `target` the
request's fields as a dict ({"session": "{s}"}), expectations status-code
names ("OK", "PERMISSION_DENIED", "UNAUTHENTICATED")."""
import collections

Row = collections.namedtuple("Row", "transport method target body expect flags")
Row.__new__.__defaults__ = (None, (), ())

STREAM = "stream"    # an event stream: only the status of the response is read
FRESH = "fresh"      # acts on a session created for this one call
SEED = "seed"        # a seed route: acts on "default"
CHANGES = "changes"  # changes its session: the runner waits for its QR again
WEBHOOK = "webhook"  # acts on a webhook target of the row's session made for that one call ({w})

OK4 = (200, 200, 200, 200)
KEY = lambda ok: (ok, ok, 403, 401)          # a route of the row's session
ADMIN = lambda ok: (ok, 403, 403, 401)       # an admin route
# The webhooks API: any key; a session key only sees its own session's
# targets (another session's target is "not found").
WH_ANY = lambda ok: (ok, ok, ok, 401)
WH_OWN = lambda ok: (ok, ok, 404, 401)

# The routes of one session, below each prefix that names it.
SESSION_ROUTES = [
    # (method, route, body, expect, flags)
    ("GET", "/status", None, OK4, ()),
    ("HEAD", "/status", None, OK4, ()),
    ("GET", "/qr", None, KEY(200), ()),
    ("HEAD", "/qr", None, KEY(200), ()),
    ("POST", "/reconnect", b'{"waitMs":0}', KEY(400), ()),
    ("POST", "/pairing-code", b"{}", KEY(400), ()),
    ("GET", "/events", None, KEY(200), (STREAM,)),
    ("GET", "/ws", None, KEY(400), ()),   # not an upgrade: 400 once authorized
    ("GET", "/passkey", None, KEY(409), ()),
    ("POST", "/passkey", b"{}", KEY((400, 409)), ()),
]
# Routes that change the session: on a session of their own per call, or
# (the seed's, which act on "default") with a wait for its QR again.
SESSION_CHANGING = [
    ("POST", "/logout", None, KEY(200)),
]

ROWS = []
for prefix, flags in (("/api/whatsapp", (SEED,)), ("/whatsapp", (SEED,)), ("/api/sessions/{s}", ())):
    for m, route, body, expect, f in SESSION_ROUTES:
        ROWS.append(Row("http", m, prefix + route, body, expect, flags + f))
for m, route, body, expect in SESSION_CHANGING:
    ROWS.append(Row("http", m, "/api/sessions/{s}" + route, body, expect, (FRESH,)))
    for prefix in ("/api/whatsapp", "/whatsapp"):
        ROWS.append(Row("http", m, prefix + route, body, expect, (SEED, CHANGES)))

ROWS += [
    Row("http", "GET", "/api/sessions/{s}", None, OK4),
    Row("http", "HEAD", "/api/sessions/{s}", None, OK4),
    Row("http", "DELETE", "/api/sessions/{s}", None, ADMIN(200), (FRESH,)),
    Row("http", "POST", "/api/sessions/{s}/key", None, KEY(200), (FRESH,)),
    Row("http", "GET", "/api/sessions", None, ADMIN(200)),
    Row("http", "HEAD", "/api/sessions", None, ADMIN(200)),
    Row("http", "POST", "/api/sessions", b'{"name":"Not A Name"}', ADMIN(400)),
    Row("http", "GET", "/api/events", None, ADMIN(200), (STREAM,)),
    Row("http", "GET", "/api/webhooks", None, WH_ANY(200)),
    Row("http", "HEAD", "/api/webhooks", None, WH_ANY(200)),
    Row("http", "POST", "/api/webhooks", b'{"url":"ftp://x"}', WH_ANY(400)),
    Row("http", "DELETE", "/api/webhooks/{w}", None, WH_OWN(200), (WEBHOOK,)),
    Row("http", "POST", "/api/webhooks/{w}/test", None, WH_OWN(200), (WEBHOOK,)),
    Row("http", "POST", "/api/webhooks/{w}/replay", None, WH_OWN(200), (WEBHOOK,)),
    Row("http", "GET", "/api/cluster", None, ADMIN(200)),
    Row("http", "POST", "/api/cluster/rebalance", None, ADMIN(409)),
    Row("http", "GET", "/healthz", None, OK4),
    Row("http", "GET", "/readyz", None, OK4),
    Row("http", "GET", "/metrics", None, OK4),
    Row("http", "GET", "/openapi.json", None, OK4),
    Row("http", "GET", "/", None, OK4),
    Row("http", "GET", "/index.html", None, OK4),
    Row("http", "GET", "/demo/config", None, (404, 404, 404, 404)),
]

# --- gRPC rows (run by authz_grpc_test.py) ---------------------------------
# Expectations are status-code names; `target` the request's fields, "{s}"
# the row's session (SEED rows send an empty session name: "default").
G_OK4 = ("OK",) * 4
G_KEY = lambda ok: (ok, ok, "PERMISSION_DENIED", "UNAUTHENTICATED")    # a session's method
G_ADMIN = lambda ok: (ok, "PERMISSION_DENIED", "PERMISSION_DENIED", "UNAUTHENTICATED")  # admin only

# The methods acting on one session: (method, request fields, expect, flags)
GRPC_SESSION_METHODS = [
    ("GetStatus", {}, G_OK4, ()),
    ("GetQR", {}, G_KEY("OK"), ()),
    ("Reconnect", {"wait_ms": 400000}, G_KEY("INVALID_ARGUMENT"), ()),
    ("RequestPairingCode", {"phone_number": "12"}, G_KEY("INVALID_ARGUMENT"), ()),
    ("WatchStatus", {}, G_KEY("OK"), (STREAM,)),
    ("GetPasskeyOptions", {}, G_KEY("FAILED_PRECONDITION"), ()),
    ("SendPasskeyAssertion", {"assertion_json": "{}"},
     G_KEY(("INVALID_ARGUMENT", "FAILED_PRECONDITION")), ()),
]
# Methods that change the session: each call on a session of its own.
GRPC_SESSION_CHANGING = [
    ("Logout", {}, G_KEY("OK"), (FRESH,)),
    ("RotateSessionKey", {}, G_KEY("OK"), (FRESH,)),
]

for m, fields, expect, f in GRPC_SESSION_METHODS:
    ROWS.append(Row("grpc", m, dict(fields, session="{s}"), None, expect, f))
    ROWS.append(Row("grpc", m, dict(fields, session=""), None, expect, f + (SEED,)))
for m, fields, expect, f in GRPC_SESSION_CHANGING:
    ROWS.append(Row("grpc", m, dict(fields, session="{s}"), None, expect, f))
ROWS += [
    Row("grpc", "CreateSession", {"name": "Not A Name"}, None, G_ADMIN("INVALID_ARGUMENT")),
    Row("grpc", "ListSessions", {}, None, G_ADMIN("OK")),
    Row("grpc", "DeleteSession", {"name": "{s}"}, None, G_ADMIN("OK"), (FRESH,)),
    Row("grpc", "WatchSessions", {}, None, G_ADMIN("OK"), (STREAM,)),
    Row("grpc", "ListWebhooks", {}, None, ("OK", "OK", "OK", "UNAUTHENTICATED")),
    Row("grpc", "CreateWebhook", {"url": "ftp://x"}, None, ("INVALID_ARGUMENT",) * 3 + ("UNAUTHENTICATED",)),
    Row("grpc", "DeleteWebhook", {"id": "{w}"}, None, ("OK", "OK", "NOT_FOUND", "UNAUTHENTICATED"), (WEBHOOK,)),
    Row("grpc", "TestWebhook", {"id": "{w}", "wait_ms": 5000}, None, ("OK", "OK", "NOT_FOUND", "UNAUTHENTICATED"),
        (WEBHOOK,)),
    Row("grpc", "ReplayWebhook", {"id": "{w}"}, None, ("OK", "OK", "NOT_FOUND", "UNAUTHENTICATED"), (WEBHOOK,)),
    Row("grpc", "grpc.health.v1.Health/Check", {}, None, G_OK4),
    Row("grpc", "grpc.health.v1.Health/Watch", {}, None, G_OK4, (STREAM,)),
    Row("grpc", "grpc.reflection.v1.ServerReflection/ServerReflectionInfo", {"list_services": ""}, None,
        G_OK4, (STREAM,)),
    Row("grpc", "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", {"list_services": ""},
        None, G_OK4, (STREAM,)),
]
