/* The inside of the fake WhatsApp server's protocol layer, shared by its
 * files: whatsapp.c (connections, logins, pairing by QR, faults, control),
 * and the files of later linking flows (paircode.c), which hook in through
 * the `ext` pointers. Tests only. */
#ifndef WG_TESTS_FAKEWA_WHATSAPP_INTERNAL_H
#define WG_TESTS_FAKEWA_WHATSAPP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "proto/wa/client_payload.pb-c.h"
#include "session/wa/version.h"
#include "tests/fakewa/map.h"
#include "tests/fakewa/whatsapp.h"

#define MAX_DEVICES 100000
#define MAX_ACCOUNTS 100000
#define MAX_REFS 16
#define MAX_EXPECT 256
#define MAX_RETIRED 8
/* Connection opens remembered for /control/connects (a ring). */
#define OPEN_LOG 65536

struct conn_state;

/* A WhatsApp account (a phone): its number, identity key and LID user.
 * Kept for the server's life, as accounts outlive their devices. */
typedef struct account {
    char phone[32];
    char lid_user[24];
    wa_keypair_t ident;
    int next_device;      /* the last device number given (1..255) */
    struct account *next; /* in fakewa_wa_t's list of accounts */
} account_t;

/* A linked companion device, indexed by JID and by noise key. */
typedef struct device {
    char jid[64];
    char lid[64];
    uint8_t noise_pub[32];
    uint8_t ident_pub[32];
    struct conn_state *live; /* the connection logged in as this device, or NULL */
    int prekeys;             /* one-time pre-keys the server holds for it */
    struct device *prev, *next;
} device_t;

typedef struct conn_state {
    fakewa_wa_t *w;
    fakewa_conn_t *c;
    int registration, logged_in;
    char jid[64]; /* the device logged in on this connection */
    uint8_t noise_pub[32];
    char refs[MAX_REFS][40];
    int nrefs;
    int64_t refs_at_ms;
    /* a pair-success waiting for its pair-device-sign */
    char pending_id[32];
    uint8_t pending_details[256];
    size_t pending_details_len;
    uint8_t pending_ident[32];
    char pending_jid[64];
    account_t *pending_acct;          /* the account pairing now (NULL = the default one) */
    unsigned pending_device;          /* its device number */
    int silent;                       /* say nothing after the handshake */
    int routed;                       /* the intro carried our routing info */
    uint8_t retired[MAX_RETIRED][32]; /* adv secrets retired by a refresh */
    int nretired;
    void *ext_paircode; /* per-connection state of the pairing-code flow */
    void *ext_passkey;  /* per-connection state of the passkey flow */
    struct conn_state *prev, *next;
} conn_state_t;

/* A stanza we sent that WhatsApp expects acknowledged. */
typedef struct {
    char id[32];
    char cls[16];
    char type[32]; /* "" when the ack carries no type (messages) */
    char to[64];   /* the stanza's from */
} expect_t;

struct fakewa_wa {
    fakewa_t *f;
    fakewa_wa_opts_t o;
    char phone[32]; /* the default account (scans without a phone, pairing codes) */
    wa_keypair_t phone_ident;
    device_t *devices, *devices_tail; /* in pairing order */
    int ndevices;
    int next_device;                         /* of the default account */
    fakewa_map_t *dev_by_jid, *dev_by_noise; /* -> device_t */
    fakewa_map_t *accounts;                  /* phone -> account_t */
    account_t *account_list;
    unsigned long long next_phone; /* --account-per-scan: the next number */
    fakewa_map_t *refs;            /* pairing ref -> conn_state_t */
    int64_t opens[OPEN_LOG];       /* times (ms) of the latest connection opens */
    unsigned long long nopens;
    conn_state_t *conns; /* newest first */
    int stall, outdated, banned, bad_hmac, bad_sig;
    int drop_ping, silent_next, early_success, hosted_next, refresh_on_scan, send_routing;
    uint8_t routing[24]; /* the edge routing info this server hands out */
    expect_t expects[MAX_EXPECT];
    int nexpects;
    int prekey_count;
    uint32_t id_counter;
    uv_timer_t ping_timer;
    fakewa_wa_stats_t stats;
    void *ext_paircode; /* server-wide state of the pairing-code flow */
    void *ext_passkey;  /* server-wide state of the passkey flow */
    /* version discovery and refusal (version.c) */
    uint32_t sw_revision;                 /* client_revision served by /sw.js */
    wa_version_t min_version;             /* older payloads get 405; 0.0.0 = any */
    int sw_mode;                          /* fakewa_sw_mode_t */
    char last_version[WA_VERSION_STRLEN]; /* of the last ClientPayload */
};

/* version.c: sets the version options from `o`. Returns 0 or -1 (bad
 * min_version). */
int fakewa_version_init(fakewa_wa_t *w, const fakewa_wa_opts_t *o);

/* version.c: notes the payload's version and decides whether it is refused
 * (older than min_version). Returns 1 when the caller must answer
 * <failure reason="405"/> (counted), else 0. */
int fakewa_version_refuses(fakewa_wa_t *w, const Wa__ClientPayload *pl);

/* version.c: GET /sw.js and POST /control/version. Returns 1 when it
 * handled the request (status in *status, 0 = leave it unanswered), else 0. */
int fakewa_version_http(fakewa_wa_t *w, int post, const char *path, const char *body, char **resp,
                        int *status);

/* version.c: writes its settings as state JSON fields, each followed by a
 * comma ("\"lastVersion\":\"2.3000.N\",..."); returns the snprintf count. */
int fakewa_version_json(const fakewa_wa_t *w, char *out, size_t cap);

/* Wall clock in ms. */
int64_t fakewa_wa_now_ms(void);

/* Sends `n` to the connection and frees it (NULL ignored). */
void fakewa_wa_send(conn_state_t *cs, wa_node_t *n);

/* Answers the client's iq `req` with <iq type=... id=...> holding `child`
 * (taken, may be NULL). */
void fakewa_wa_reply(conn_state_t *cs, const wa_node_t *req, const char *type, wa_node_t *child);

/* Sends `n` (freed) and records that the client must ack it. */
void fakewa_wa_send_expecting_ack(conn_state_t *cs, wa_node_t *n);

/* A new stanza <tag id=... from=... [type=...] t=...>. */
wa_node_t *fakewa_wa_stanza(fakewa_wa_t *w, const char *tag, const char *from, const char *type);

/* The phone's side of a successful link (protocol doc 5.5): issues a device
 * identity for the companion identity key `ident_pub`, signs it with the
 * phone's key, wraps it in an HMAC keyed by `adv_secret` (the secret the
 * phone holds: scanned from the QR, or derived by a code/passkey flow) and
 * sends pair-success; the pair-device-sign answer is then checked. Honours
 * the bad_hmac, bad_signature and hosted faults. Returns 0 or -1. */
int fakewa_wa_send_pair_success(conn_state_t *cs, const uint8_t ident_pub[32],
                                const uint8_t adv_secret[32]);

/* --- passkey.c: the passkey step of linking (protocol doc 11.6) --- */

/* Handles the client's iq `n` when it belongs to the passkey step (<ref/>,
 * <passkey_request_options/>, <passkey_prologue>, <companion_nonce>,
 * <encrypted_pairing_request>). Returns 1 when handled (answered), else 0. */
int fakewa_passkey_iq(conn_state_t *cs, const wa_node_t *n);

/* The phone scanned the QR of `cs` carrying `adv_secret`: when a passkey
 * step is armed for the next scan, sends the passkey request instead of
 * pair-success and returns 1; else returns 0. */
int fakewa_passkey_scanned(conn_state_t *cs, const uint8_t adv_secret[32]);

/* POST /control/passkey/...: returns the HTTP status with a malloc'd body
 * in *resp, or 0 when `path` is not one of its paths. */
int fakewa_passkey_http(fakewa_wa_t *w, int post, const char *path, const char *body, size_t len,
                        char **resp);

/* The "passkey" object of /control/state (malloc'd, NULL when out of
 * memory). */
char *fakewa_passkey_state_json(const fakewa_wa_t *w);

/* Frees the per-connection and the server-wide state. */
void fakewa_passkey_conn_free(conn_state_t *cs);
void fakewa_passkey_free(fakewa_wa_t *w);
/* --- paircode.c: linking by pairing code (server and phone) --- */

/* <iq xmlns="md"><link_code_companion_reg stage=...>: companion_hello is
 * checked and answered with a pairing ref (or 400), companion_finish opens
 * the phone's key bundle and links (or counts a refused code). */
void fakewa_pc_iq(conn_state_t *cs, const wa_node_t *iq);

/* Frees a connection's pairing-code state (on close). */
void fakewa_pc_conn_free(conn_state_t *cs);

#endif
