/* Service configuration: defaults, then environment variables, then
 * command-line flags (flags win). One table describes every option, so
 * `--help`, parsing and validation cannot drift apart. */
#ifndef WG_SERVER_CONFIG_H
#define WG_SERVER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

/* The default WhatsApp endpoint and root key (protocol doc 1.1 and 2.4). */
#define CFG_DEFAULT_WA_URL "wss://web.whatsapp.com/ws/chat"
#define CFG_DEFAULT_WA_ROOT_KEY "142375574d0a587166aae71ebe516437c4a28b73e3695c6ce1f7f9545da8ee6b"

typedef struct {
    char *host;        /* HTTP listen address (HOST) */
    int port;          /* HTTP port (PORT) */
    int grpc_port;     /* gRPC port (GRPC_PORT) */
    char *api_key;     /* X-API-Key secret, NULL when none (API_KEY) */
    char *data_dir;    /* directory of the store (DATA_DIR) */
    char *store_url;   /* STORE_URL: NULL, "" or "sqlite:" = SQLite in data_dir; postgres:// */
    char *wa_url;      /* WhatsApp endpoint (WA_URL) */
    char *wa_root_key; /* trusted root key, 64 hex chars (WA_ROOT_KEY) */
    uint8_t wa_root_key_bin[32];
    log_level_t log_level;          /* LOG_LEVEL */
    int allow_insecure_remote;      /* listen on a non-loopback HOST without API_KEY */
    char *cors_origins;             /* CORS_ORIGINS: comma-separated, "*" = any */
    char *allowed_hosts;            /* ALLOWED_HOSTS: extra Host names answered, "*" = any */
    char *wa_version;               /* WA_VERSION: version announced as is; NULL = discover */
    char *wa_version_url;           /* WA_VERSION_URL: sw.js URL override; NULL = derived */
    char *wa_ca_file;               /* WA_CA_FILE: extra CAs for wss:// (tests) */
    int qr_first_ms;                /* QR_FIRST_MS: lifetime of the first QR */
    int qr_next_ms;                 /* QR_NEXT_MS: lifetime of each later QR */
    int keepalive_ms;               /* KEEPALIVE_MS: ping interval */
    int keepalive_timeout_ms;       /* KEEPALIVE_TIMEOUT_MS: time for a ping's answer */
    int keepalive_misses;           /* KEEPALIVE_MISSES: missed pings that end a connection */
    int login_timeout_ms;           /* LOGIN_TIMEOUT_MS: silence allowed after the handshake */
    int max_sessions;               /* MAX_SESSIONS: sessions the service holds at most */
    int connect_rate;               /* CONNECT_RATE: new WhatsApp connections per second */
    uint64_t event_retention_count; /* EVENT_RETENTION: events kept per session */
    int64_t event_retention_age_ms; /* EVENT_RETENTION: their age limit (-1: none) */
    char *device_name;              /* DEVICE_NAME: shown on the phone under Linked devices */
    int reconnect_wait_ms;          /* RECONNECT_WAIT_MS: how long POST reconnect waits for a QR */
    int heartbeat_ms;               /* HEARTBEAT_MS: SSE comment / WebSocket ping interval */
    int max_connections;            /* MAX_CONNECTIONS: HTTP connections open at once */
    int stall_timeout_ms;        /* STALL_TIMEOUT_MS: close a connection not taking its response */
    int grpc_max_streams;        /* GRPC_MAX_STREAMS: gRPC calls open at once */
    int grpc_max_unauth_streams; /* GRPC_MAX_UNAUTH_STREAMS: of them without the key */
    int page;                    /* PAGE: serve the link page at / */
    int qr_terminal;             /* QR_TERMINAL: print each new QR on the terminal */
    int allow_core_dumps;        /* ALLOW_CORE_DUMPS: keep the process dumpable */
    char *demo_control;          /* DEMO_CONTROL_URL: the fake server control API (demo) */
    char *tls_cert;              /* TLS_CERT: PEM certificate chain (HTTP and gRPC) */
    char *tls_key;               /* TLS_KEY: PEM private key */
    char *webhook_url;           /* WEBHOOK_URL: the global webhook target */
    char *webhook_secret;        /* WEBHOOK_SECRET: its whsec_ secret (wiped on free) */
    int webhook_allow_private;   /* WEBHOOK_ALLOW_PRIVATE */
    int max_webhooks;            /* MAX_WEBHOOKS */
    int webhook_max_attempts;    /* WEBHOOK_MAX_ATTEMPTS */
    int webhook_max_age_s;       /* WEBHOOK_MAX_AGE (seconds) */
    int webhook_backoff_ms;      /* WEBHOOK_BACKOFF_MS */
    int webhook_backoff_max_ms;  /* WEBHOOK_BACKOFF_MAX_MS */
    int webhook_timeout_ms;      /* WEBHOOK_TIMEOUT_MS */
    char *webhook_ca_file;       /* WEBHOOK_CA_FILE */
    char *node_id;               /* NODE_ID: cluster node id (NULL: hostname:PORT) */
    char *advertise_url;         /* ADVERTISE_URL: this node's HTTP API for the others */
    char *cluster_secret;        /* CLUSTER_SECRET: forwarded commands (wiped on free) */
    int lease_ms;                /* LEASE_MS: lease length (cluster) */
    int renew_ms;                /* RENEW_MS: renewal interval (cluster) */
    int drain_timeout_ms;        /* DRAIN_TIMEOUT_MS: SIGTERM's hand-over budget (cluster) */
    int help;                    /* --help was given */
    int check_store;             /* --check-store: verify the store and exit */
} cfg_t;

/* Fills `cfg` from defaults, the environment (read through `getenv_fn`, which
 * may be NULL for the process environment) and argv[1..argc-1].
 * On success returns 0; `cfg` then owns heap strings released by cfg_free.
 * On error returns -1 and writes a one-line message (no trailing newline)
 * into `err` (size `errlen`); `cfg` is left freed. */
int cfg_load(cfg_t *cfg, int argc, char **argv, const char *(*getenv_fn)(const char *), char *err,
             size_t errlen);

/* Checks the loaded values against the machine: creates DATA_DIR (mode 0700)
 * when missing, requires it to be a writable directory, and refuses a
 * non-loopback HOST without API_KEY unless allowed. Returns 0, or -1 with a
 * one-line message in `err`. */
int cfg_validate(cfg_t *cfg, char *err, size_t errlen);

/* The advisories about a valid but weak configuration (e.g. an API key
 * shorter than CFG_MIN_KEY_BYTES): up to `max` static one-line messages in
 * out[]; returns how many. main logs them at start as warnings. */
size_t cfg_warnings(const cfg_t *cfg, const char **out, size_t max);

/* Keys shorter than this draw a start-up warning: guessing is bounded only
 * by the key's entropy (see docs/security.md). */
#define CFG_MIN_KEY_BYTES 16

/* Writes the --help text (every option, its variable and default) to `out`. */
void cfg_print_help(void *out, const char *argv0);

/* Releases the strings owned by `cfg`; safe on a zeroed or freed cfg. */
void cfg_free(cfg_t *cfg);

/* Returns 1 when `host` is a loopback address or "localhost", else 0. */
int cfg_host_is_loopback(const char *host);

#endif
