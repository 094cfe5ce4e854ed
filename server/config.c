/* Configuration loading for the wa-gateway binary. The option table below is
 * the single source for defaults, environment names, flags and --help. */
#include "server/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session/journal.h"
#include "session/version.h"

typedef enum {
    OPT_STRING,
    OPT_PORT,
    OPT_LEVEL,
    OPT_BOOL,
    OPT_HEXKEY,
    OPT_URL,
    OPT_MS,
    OPT_COUNT,
    OPT_VERSION,
    OPT_HTTPURL,
    OPT_LIMIT,
    OPT_RETENTION,
    OPT_STOREURL
} opt_kind_t;

typedef struct {
    const char *flag; /* without the leading "--" */
    const char *env;  /* NULL when there is no variable */
    opt_kind_t kind;
    size_t offset;
    const char *def; /* default as text; NULL = unset */
    const char *help;
} opt_t;

#define OFF(f) offsetof(cfg_t, f)

static const opt_t options[] = {
    {"host", "HOST", OPT_STRING, OFF(host), "127.0.0.1", "HTTP listen address"},
    {"port", "PORT", OPT_PORT, OFF(port), "3000", "HTTP port"},
    {"grpc-port", "GRPC_PORT", OPT_PORT, OFF(grpc_port), "50051", "gRPC port"},
    {"api-key", "API_KEY", OPT_STRING, OFF(api_key), NULL,
     "secret expected in X-API-Key / x-api-key (unset: no key)"},
    {"data-dir", "DATA_DIR", OPT_STRING, OFF(data_dir), "./data",
     "directory of the credential store (created 0700)"},
    {"store-url", "STORE_URL", OPT_STOREURL, OFF(store_url), NULL,
     "where the store lives: unset, empty or sqlite: for the SQLite file in DATA_DIR; "
     "postgres://USER:PASSWORD@HOST:PORT/DB (or postgresql://) for PostgreSQL, shared by several "
     "nodes (prefer the variable to the flag: a flag is visible to other users)"},
    {"wa-url", "WA_URL", OPT_URL, OFF(wa_url), CFG_DEFAULT_WA_URL,
     "WhatsApp WebSocket endpoint (ws:// only for tests)"},
    {"wa-root-key", "WA_ROOT_KEY", OPT_HEXKEY, OFF(wa_root_key), CFG_DEFAULT_WA_ROOT_KEY,
     "trusted WhatsApp root public key, 64 hex digits"},
    {"wa-version", "WA_VERSION", OPT_VERSION, OFF(wa_version), NULL,
     "WhatsApp Web version to announce as is, no discovery (unset: discovered from sw.js; "
     "built-in " WA_PAYLOAD_DEFAULT_VERSION ")"},
    {"wa-version-url", "WA_VERSION_URL", OPT_HTTPURL, OFF(wa_version_url), NULL,
     "where to discover the WhatsApp Web version (unset: sw.js on WA_URL's host)"},
    {"wa-ca-file", "WA_CA_FILE", OPT_STRING, OFF(wa_ca_file), NULL,
     "PEM CA bundle trusted for wss:// (unset: the system's)"},
    {"qr-first-ms", "QR_FIRST_MS", OPT_MS, OFF(qr_first_ms), "60000",
     "lifetime of the first QR code, ms"},
    {"qr-next-ms", "QR_NEXT_MS", OPT_MS, OFF(qr_next_ms), "20000",
     "lifetime of each following QR code, ms"},
    {"keepalive-ms", "KEEPALIVE_MS", OPT_MS, OFF(keepalive_ms), "20000",
     "keepalive ping interval (+-10% jitter), from the handshake on, ms"},
    {"keepalive-timeout-ms", "KEEPALIVE_TIMEOUT_MS", OPT_MS, OFF(keepalive_timeout_ms), "10000",
     "how long a ping may wait for its answer before it counts as missed, ms"},
    {"keepalive-misses", "KEEPALIVE_MISSES", OPT_COUNT, OFF(keepalive_misses), "2",
     "missed pings in a row that end the connection (1 to 100)"},
    {"login-timeout-ms", "LOGIN_TIMEOUT_MS", OPT_MS, OFF(login_timeout_ms), "30000",
     "how long WhatsApp may stay silent after the handshake before we retry, ms"},
    {"max-sessions", "MAX_SESSIONS", OPT_LIMIT, OFF(max_sessions), "1000",
     "most WhatsApp sessions (accounts) the service holds; more are refused with 507"},
    {"connect-rate", "CONNECT_RATE", OPT_LIMIT, OFF(connect_rate), "25",
     "new WhatsApp connections per second, over all sessions (a restart never floods WhatsApp)"},
    {"node-id", "NODE_ID", OPT_STRING, OFF(node_id), NULL,
     "cluster (STORE_URL=postgres://): this node's id, unique per process (unset: "
     "hostname:PORT)"},
    {"advertise-url", "ADVERTISE_URL", OPT_HTTPURL, OFF(advertise_url), NULL,
     "cluster: how the other nodes reach this node's HTTP API (unset: http://HOST:PORT)"},
    {"cluster-secret", "CLUSTER_SECRET", OPT_STRING, OFF(cluster_secret), NULL,
     "cluster: the secret the nodes share (32+ characters); a command sent to a node that "
     "does not run its session is forwarded to the one that does (unset: answered 409)"},
    {"lease-ms", "LEASE_MS", OPT_MS, OFF(lease_ms), "10000",
     "cluster: how long a node's hold on a session lasts without renewal, ms (database clock)"},
    {"renew-ms", "RENEW_MS", OPT_MS, OFF(renew_ms), "3000",
     "cluster: how often a node renews its leases and claims its share, ms (below LEASE_MS/2)"},
    {"drain-timeout-ms", "DRAIN_TIMEOUT_MS", OPT_MS, OFF(drain_timeout_ms), "20000",
     "cluster: how long SIGTERM waits for the node's sessions to be handed over, ms"},
    {"event-retention", "EVENT_RETENTION", OPT_RETENTION, OFF(event_retention_count), "10000,7d",
     "events kept per session for resuming streams: COUNT or COUNT,AGE (s, m, h, d; 0 = no "
     "age limit); a session's newest event and undelivered webhooks are always kept"},
    {"device-name", "DEVICE_NAME", OPT_STRING, OFF(device_name), "wa-gateway",
     "what the phone shows under Linked devices (per session: deviceName at creation)"},
    {"reconnect-wait-ms", "RECONNECT_WAIT_MS", OPT_MS, OFF(reconnect_wait_ms), "30000",
     "how long POST reconnect waits for the new QR, ms"},
    {"heartbeat-ms", "HEARTBEAT_MS", OPT_MS, OFF(heartbeat_ms), "15000",
     "heartbeat interval on SSE and WebSocket event streams, ms"},
    {"max-connections", "MAX_CONNECTIONS", OPT_LIMIT, OFF(max_connections), "4096",
     "most HTTP connections open at once; more are closed at once"},
    {"stall-timeout-ms", "STALL_TIMEOUT_MS", OPT_MS, OFF(stall_timeout_ms), "30000",
     "a connection that does not take its response for this long is closed, ms"},
    {"grpc-max-streams", "GRPC_MAX_STREAMS", OPT_LIMIT, OFF(grpc_max_streams), "1000",
     "most gRPC calls open at once"},
    {"grpc-max-unauth-streams", "GRPC_MAX_UNAUTH_STREAMS", OPT_LIMIT, OFF(grpc_max_unauth_streams),
     "100", "most gRPC calls open at once without the key (and health Watch streams)"},
    {"log-level", "LOG_LEVEL", OPT_LEVEL, OFF(log_level), "info",
     "debug, info, warn, error or off"},
    {"cors-origins", "CORS_ORIGINS", OPT_STRING, OFF(cors_origins), NULL,
     "origins allowed by CORS, comma-separated, * for any (unset: none)"},
    {"allowed-hosts", "ALLOWED_HOSTS", OPT_STRING, OFF(allowed_hosts), NULL,
     "Host names answered besides loopback names and HOST, comma-separated (DNS rebinding "
     "guard; * = any)"},
    {"tls-cert", "TLS_CERT", OPT_STRING, OFF(tls_cert), NULL,
     "PEM certificate chain: serve HTTPS and gRPC over TLS"},
    {"tls-key", "TLS_KEY", OPT_STRING, OFF(tls_key), NULL, "PEM private key for TLS_CERT"},
    {"page", "PAGE", OPT_BOOL, OFF(page), "1", "serve the link page at / (PAGE=0 turns it off)"},
    {"qr-terminal", "QR_TERMINAL", OPT_BOOL, OFF(qr_terminal), "0",
     "print each new QR code (as Unicode half-blocks) and pairing code on the controlling "
     "terminal, never in the log"},
    {"allow-core-dumps", "ALLOW_CORE_DUMPS", OPT_BOOL, OFF(allow_core_dumps), "0",
     "keep core dumps and same-user debuggers possible (off: the keys stay out of them)"},
    {"demo-control-url", "DEMO_CONTROL_URL", OPT_STRING, OFF(demo_control), NULL,
     "demo only: the fake WhatsApp server's control URL (adds \"simulate phone scan\")"},
    {"webhook-url", "WEBHOOK_URL", OPT_HTTPURL, OFF(webhook_url), NULL,
     "the global webhook: every event of every session is POSTed there (unset: none, and a "
     "global webhook stored before is removed with its queue)"},
    {"webhook-secret", "WEBHOOK_SECRET", OPT_STRING, OFF(webhook_secret), NULL,
     "the global webhook's signing secret, whsec_ + base64 of 16 to 64 random bytes (required "
     "with WEBHOOK_URL)"},
    {"webhook-allow-private", "WEBHOOK_ALLOW_PRIVATE", OPT_BOOL, OFF(webhook_allow_private), "0",
     "allow webhook targets on loopback, private, link-local and metadata addresses"},
    {"max-webhooks", "MAX_WEBHOOKS", OPT_LIMIT, OFF(max_webhooks), "100",
     "most webhook targets (the global one included); more are refused with 507"},
    {"webhook-max-attempts", "WEBHOOK_MAX_ATTEMPTS", OPT_LIMIT, OFF(webhook_max_attempts), "50",
     "attempts of one delivery before it becomes a dead letter"},
    {"webhook-max-age", "WEBHOOK_MAX_AGE", OPT_LIMIT, OFF(webhook_max_age_s), "259200",
     "seconds after its event a delivery still pending becomes a dead letter"},
    {"webhook-backoff-ms", "WEBHOOK_BACKOFF_MS", OPT_MS, OFF(webhook_backoff_ms), "1000",
     "delay before the first retry of a delivery (doubling, with jitter), ms"},
    {"webhook-backoff-max-ms", "WEBHOOK_BACKOFF_MAX_MS", OPT_MS, OFF(webhook_backoff_max_ms),
     "600000", "longest delay between two attempts of a delivery, ms"},
    {"webhook-timeout-ms", "WEBHOOK_TIMEOUT_MS", OPT_MS, OFF(webhook_timeout_ms), "10000",
     "time allowed for one webhook request (connect: half of it, at most 5 s), ms"},
    {"webhook-ca-file", "WEBHOOK_CA_FILE", OPT_STRING, OFF(webhook_ca_file), NULL,
     "PEM CA bundle trusted for https:// webhooks instead of the system's"},
    {"check-store", NULL, OPT_BOOL, OFF(check_store), "0",
     "check the credential store's consistency, print the result and exit"},
    {"allow-insecure-remote", "ALLOW_INSECURE_REMOTE", OPT_BOOL, OFF(allow_insecure_remote), "0",
     "allow a non-loopback HOST without API_KEY"},
};

#define NOPTIONS (sizeof(options) / sizeof(options[0]))

static int fail(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    snprintf(err, errlen, fmt, a, b);
    return -1;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int parse_bool(const char *v, int *out)
{
    if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
        *out = 1;
    else if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
             !strcasecmp(v, "off") || !*v)
        *out = 0;
    else
        return -1;
    return 0;
}

/* Stores the text value `v` for option `o`; `src` names where it came from. */
static int set_option(cfg_t *cfg, const opt_t *o, const char *v, const char *src, char *err,
                      size_t errlen)
{
    char *base = (char *)cfg + o->offset;
    char what[96];
    snprintf(what, sizeof(what), "%s%s", src, src[0] == '-' ? o->flag : (o->env ? o->env : ""));
    switch (o->kind) {
    case OPT_MS: {
        char *end;
        errno = 0;
        long ms = strtol(v, &end, 10);
        if (!*v || *end || errno || ms < 10 || ms > 3600000)
            return fail(err, errlen, "invalid %s: '%s' (milliseconds, 10 to 3600000)", what, v);
        *(int *)base = (int)ms;
        return 0;
    }
    case OPT_COUNT: {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (!*v || *end || errno || n < 1 || n > 100)
            return fail(err, errlen, "invalid %s: '%s' (a count, 1 to 100)", what, v);
        *(int *)base = (int)n;
        return 0;
    }
    case OPT_STOREURL:
        /* the value is never shown: it may hold a password */
        if (*v && strcasecmp(v, "sqlite:") != 0 && strncasecmp(v, "postgres://", 11) != 0 &&
            strncasecmp(v, "postgresql://", 13) != 0)
            return fail(err, errlen,
                        "invalid %s: expected empty, sqlite:, postgres://... or "
                        "postgresql://...%s",
                        what, "");
        /* fall through */
    case OPT_STRING:
    case OPT_URL:
    case OPT_VERSION:
    case OPT_HTTPURL:
    case OPT_HEXKEY: {
        if (o->kind == OPT_VERSION && !sess_version_valid(v))
            return fail(err, errlen,
                        "invalid %s: '%s' (expected like " WA_PAYLOAD_DEFAULT_VERSION ")", what, v);
        if (o->kind == OPT_HTTPURL && strncasecmp(v, "http://", 7) != 0 &&
            strncasecmp(v, "https://", 8) != 0)
            return fail(err, errlen, "invalid %s: '%s' is not an http:// or https:// URL", what, v);
        if (o->kind == OPT_URL && strncmp(v, "ws://", 5) != 0 && strncmp(v, "wss://", 6) != 0)
            return fail(err, errlen, "invalid %s: '%s' is not a ws:// or wss:// URL", what, v);
        if (o->kind == OPT_HEXKEY) {
            if (strlen(v) != 64)
                return fail(err, errlen, "invalid %s: expected 64 hex digits%s", what, "");
            for (int i = 0; i < 32; i++) {
                int hi = hexval((unsigned char)v[2 * i]), lo = hexval((unsigned char)v[2 * i + 1]);
                if (hi < 0 || lo < 0)
                    return fail(err, errlen, "invalid %s: expected 64 hex digits%s", what, "");
                cfg->wa_root_key_bin[i] = (uint8_t)(hi << 4 | lo);
            }
        }
        char **slot = (char **)base;
        char *copy = strdup(v);
        if (!copy)
            return fail(err, errlen, "out of memory%s%s", "", "");
        free(*slot);
        *slot = copy;
        return 0;
    }
    case OPT_LIMIT: {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (!*v || *end || errno || n < 1 || n > 1000000)
            return fail(err, errlen, "invalid %s: '%s' (a count, 1 to 1000000)", what, v);
        *(int *)base = (int)n;
        return 0;
    }
    case OPT_PORT: {
        char *end;
        errno = 0;
        long p = strtol(v, &end, 10);
        if (!*v || *end || errno || p < 1 || p > 65535)
            return fail(err, errlen, "invalid %s: '%s' is not a port number (1-65535)", what, v);
        *(int *)base = (int)p;
        return 0;
    }
    case OPT_LEVEL:
        if (log_level_parse(v, (log_level_t *)base) != 0)
            return fail(err, errlen, "invalid %s: '%s' (use debug, info, warn, error or off)", what,
                        v);
        return 0;
    case OPT_RETENTION:
        if (sess_jstore_parse_retention(v, &cfg->event_retention_count,
                                        &cfg->event_retention_age_ms) != 0)
            return fail(err, errlen,
                        "invalid %s: '%s' (COUNT or COUNT,AGE such as 10000,7d; AGE in s, m, h "
                        "or d, 0 for none)",
                        what, v);
        return 0;
    case OPT_BOOL:
        if (parse_bool(v, (int *)base) != 0)
            return fail(err, errlen, "invalid %s: '%s' is not a boolean", what, v);
        return 0;
    }
    return -1;
}

void cfg_free(cfg_t *cfg)
{
    for (size_t i = 0; i < NOPTIONS; i++) {
        opt_kind_t k = options[i].kind;
        if (k == OPT_STRING || k == OPT_URL || k == OPT_HEXKEY || k == OPT_VERSION ||
            k == OPT_HTTPURL || k == OPT_STOREURL) {
            char **slot = (char **)((char *)cfg + options[i].offset);
            if (*slot && (slot == &cfg->api_key || slot == &cfg->webhook_secret ||
                          slot == &cfg->cluster_secret || slot == &cfg->store_url))
                explicit_bzero(*slot, strlen(*slot));
            free(*slot);
            *slot = NULL;
        }
    }
}

int cfg_load(cfg_t *cfg, int argc, char **argv, const char *(*getenv_fn)(const char *), char *err,
             size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NOPTIONS; i++)
        if (options[i].def && set_option(cfg, &options[i], options[i].def, "default ", err, errlen))
            goto error;
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (!options[i].env)
            continue;
        const char *v = getenv_fn ? getenv_fn(options[i].env) : getenv(options[i].env);
        if (v && *v && set_option(cfg, &options[i], v, "", err, errlen))
            goto error;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            cfg->help = 1;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fail(err, errlen, "unexpected argument '%s' (see --help)%s", arg, "");
            goto error;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const opt_t *o = NULL;
        for (size_t i = 0; i < NOPTIONS; i++)
            if (strlen(options[i].flag) == nlen && !strncmp(options[i].flag, name, nlen))
                o = &options[i];
        if (!o) {
            fail(err, errlen, "unknown option '%s' (see --help)%s", arg, "");
            goto error;
        }
        const char *v;
        if (eq)
            v = eq + 1;
        else if (o->kind == OPT_BOOL)
            v = "1";
        else if (a + 1 < argc)
            v = argv[++a];
        else {
            fail(err, errlen, "option '%s' needs a value%s", arg, "");
            goto error;
        }
        if (set_option(cfg, o, v, "--", err, errlen))
            goto error;
    }
    if (cfg->api_key && !*cfg->api_key) {
        free(cfg->api_key);
        cfg->api_key = NULL;
    }
    return 0;
error:
    cfg_free(cfg);
    return -1;
}

int cfg_host_is_loopback(const char *host)
{
    if (!strcmp(host, "localhost") || !strcmp(host, "::1") || !strcmp(host, "[::1]"))
        return 1;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return 0;
}

int cfg_validate(cfg_t *cfg, char *err, size_t errlen)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(cfg->host, "localhost") && inet_pton(AF_INET, cfg->host, &a4) != 1 &&
        inet_pton(AF_INET6, cfg->host, &a6) != 1)
        return fail(err, errlen, "invalid HOST '%s': not an IPv4/IPv6 address or localhost%s",
                    cfg->host, "");
    if (!cfg->tls_cert != !cfg->tls_key)
        return fail(err, errlen, "TLS_CERT and TLS_KEY must be set together%s%s", "", "");
    if (cfg->port == cfg->grpc_port)
        return fail(err, errlen, "PORT and GRPC_PORT must differ%s%s", "", "");
    if (!cfg_host_is_loopback(cfg->host) && !cfg->api_key && !cfg->allow_insecure_remote)
        return fail(err, errlen,
                    "refusing to listen on non-loopback HOST '%s' without API_KEY "
                    "(set API_KEY, or --allow-insecure-remote to accept the risk)%s",
                    cfg->host, "");
    struct stat st;
    if (stat(cfg->data_dir, &st) != 0) {
        if (errno != ENOENT || mkdir(cfg->data_dir, 0700) != 0 || stat(cfg->data_dir, &st) != 0)
            return fail(err, errlen, "DATA_DIR '%s' cannot be created: %s", cfg->data_dir,
                        strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return fail(err, errlen, "DATA_DIR '%s' is not a directory%s", cfg->data_dir, "");
    if (access(cfg->data_dir, R_OK | W_OK | X_OK) != 0)
        return fail(err, errlen, "DATA_DIR '%s' is not readable and writable: %s", cfg->data_dir,
                    strerror(errno));
    return 0;
}

size_t cfg_warnings(const cfg_t *cfg, const char **out, size_t max)
{
    size_t n = 0;
    if (n < max && cfg->api_key && strlen(cfg->api_key) < CFG_MIN_KEY_BYTES)
        out[n++] = "API_KEY is shorter than 16 bytes: a short key can be guessed; use at least "
                   "16 random bytes (e.g. openssl rand -hex 16)";
    return n;
}

void cfg_print_help(void *out, const char *argv0)
{
    FILE *f = out;
    fprintf(f,
            "Usage: %s [options]\n\n"
            "wa-gateway: links a WhatsApp account as a companion device and serves it over\n"
            "HTTP/JSON and gRPC. Each option can also be set by its environment variable;\n"
            "a flag overrides the variable.\n\n",
            argv0);
    for (size_t i = 0; i < NOPTIONS; i++) {
        const opt_t *o = &options[i];
        char left[64];
        snprintf(left, sizeof(left), "--%s%s", o->flag, o->kind == OPT_BOOL ? "" : "=VALUE");
        fprintf(f, "  %-30s %-22s %s", left, o->env ? o->env : "", o->help);
        if (o->def && (o->kind != OPT_BOOL || strcmp(o->def, "0")))
            fprintf(f, " (default: %s)", o->kind == OPT_BOOL ? "on" : o->def);
        fputc('\n', f);
    }
    fprintf(f, "  %-30s %-22s %s\n", "--help", "", "print this help and exit");
}
