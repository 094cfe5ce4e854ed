/* Browser-facing request guards of the HTTP listener. A web page open in
 * the operator's browser can send requests to the service (loopback is no
 * boundary for a browser): through DNS rebinding, with a Host name of the
 * attacker's, or cross-site, with the attacker's Origin. These pure
 * functions decide which Host names the service answers to and what a
 * request's Origin is relative to the service; server/http/ applies them
 * (403 for a foreign Host; 403 for a state-changing request or a WebSocket
 * upgrade from a foreign Origin). No I/O, no allocation. */
#ifndef WG_SERVER_GUARD_H
#define WG_SERVER_GUARD_H

#include <stddef.h>

/* The configuration the guards read; strings are borrowed and must outlive
 * every call. */
typedef struct {
    const char *bind_host;     /* HOST as configured ("127.0.0.1", "::", "localhost", ...) */
    const char *allowed_hosts; /* ALLOWED_HOSTS: comma-separated names, "*" = any; NULL = none */
    const char *cors_origins;  /* CORS_ORIGINS: comma-separated origins, "*" = any; NULL = none */
} guard_t;

/* Returns 1 when a request whose Host (or :authority) is host[0..len) may
 * be answered: a loopback name ("localhost", 127.0.0.0/8, ::1), the bind
 * address, any IP address when the bind address is a wildcard (0.0.0.0,
 * ::), or a name in ALLOWED_HOSTS (case-insensitive, any port). Else 0, also
 * for a malformed value. A DNS name of an attacker's never passes unless
 * listed, which is what defeats DNS rebinding. */
int guard_host_ok(const guard_t *g, const char *host, size_t len);

/* What a request's Origin is, relative to the service. */
typedef enum {
    GUARD_ORIGIN_NONE = 0, /* no Origin header (not a browser's cross-origin request) */
    GUARD_ORIGIN_SAME,     /* the service's own: its host[:port] equals the Host header */
    GUARD_ORIGIN_LISTED,   /* named in CORS_ORIGINS */
    GUARD_ORIGIN_ANY,      /* allowed only because CORS_ORIGINS contains "*" */
    GUARD_ORIGIN_FOREIGN,  /* anything else, "null" included */
} guard_origin_t;

/* Classifies the Origin origin[0..olen) (NULL = no header) of a request
 * whose Host is host[0..hlen). The scheme is not compared (a TLS-terminating
 * proxy in front changes it); host and port are, case-insensitively. */
guard_origin_t guard_origin(const guard_t *g, const char *origin, size_t olen, const char *host,
                            size_t hlen);

/* Returns 1 when a request of this origin class may change state (POST)
 * or open a WebSocket: no Origin, the service's own, a listed one, or "*"
 * when an API key is configured (`key_required`; the key check follows).
 * Else 0: the caller answers 403, key or no key. */
int guard_may_change_state(guard_origin_t oc, int key_required);

#endif
