/* The fake WhatsApp server's protocol behaviour on top of fakewa.c: answers
 * a registration with pair-device refs, lets a simulated phone scan a QR
 * (refusing expired refs) or type a pairing code (paircode.c), sends a
 * correctly signed pair-success and checks
 * the companion's device signature, asks for the 515 restart, checks logins
 * against the devices it paired, answers pings, pre-key count and upload,
 * logout, plays the passkey step of linking (passkey.c), and injects every
 * fault of the protocol doc on demand.
 * Loop-thread only. */
#ifndef WG_TESTS_FAKEWA_WHATSAPP_H
#define WG_TESTS_FAKEWA_WHATSAPP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tests/fakewa/fakewa.h"

typedef struct fakewa_wa fakewa_wa_t;

typedef struct {
    fakewa_opts_t transport; /* host, port, TLS files, root key */
    int refs;                /* refs per pair-device; 0 = 6 */
    unsigned qr_first_ms;    /* must match the client's; 0 = 60000 */
    unsigned qr_next_ms;     /* 0 = 20000 */
    const char *phone;       /* the phone's number; NULL = "15551234567" */
    unsigned server_ping_ms; /* > 0: the server pings clients this often */
    int prekey_count;        /* pre-keys each new device starts with (the count query) */
    /* WhatsApp Web version (version.c): the client_revision /sw.js
     * announces (0 = the built-in version's), the oldest version accepted
     * (NULL = any; older registration and login payloads get
     * <failure reason="405"/>), and how /sw.js answers. */
    uint32_t client_revision;
    const char *min_version;
    int sw_mode; /* fakewa_sw_mode_t */
    /* 1: every scan without a phone number links a new account (its own
     * number, counting up from 15550000001, identity key and LID), so that
     * many sessions are as many phones. 0: such scans link `phone`. */
    int account_per_scan;
} fakewa_wa_opts_t;

/* How GET /sw.js answers. */
typedef enum {
    FAKEWA_SW_OK = 0,   /* 200 with the escaped-JSON document WhatsApp serves */
    FAKEWA_SW_404 = 1,  /* 404 */
    FAKEWA_SW_500 = 2,  /* 500 */
    FAKEWA_SW_HANG = 3, /* no answer at all */
} fakewa_sw_mode_t;

/* Parses "ok", "404", "500" or "hang". Returns the mode or -1. */
int fakewa_sw_mode_parse(const char *name);

/* Faults, injected at once on every live connection (or armed for the next
 * connection/login where that is how the real server behaves). */
typedef enum {
    FAKEWA_DROP,          /* close the socket without a word */
    FAKEWA_STALL,         /* stop answering anything (pings included) */
    FAKEWA_GARBAGE,       /* send a frame that does not decrypt */
    FAKEWA_RESTART,       /* <stream:error code="515"/> */
    FAKEWA_LOGGED_OUT,    /* <stream:error code="401"><conflict type="device_removed"/>; forget the
                             device */
    FAKEWA_REPLACED,      /* <stream:error><conflict type="replaced"/> */
    FAKEWA_SERVER_ERROR,  /* <stream:error code="503"/> */
    FAKEWA_OUTDATED,      /* the next login gets <failure reason="405"/> */
    FAKEWA_BANNED,        /* the next login gets <failure reason="403"/>; forget the device */
    FAKEWA_BAD_HMAC,      /* the next scan sends a pair-success with a wrong HMAC */
    FAKEWA_BAD_SIGNATURE, /* the next scan sends a wrongly signed account identity */
    FAKEWA_DROP_PING,     /* the next client ping gets no answer (one lost ping) */
    FAKEWA_SILENT,        /* the next connection hears nothing after the handshake */
    FAKEWA_BAD_NODE,      /* send a stanza that decrypts but does not decode */
    FAKEWA_STANZAS,       /* send every stanza class that needs an <ack> */
    FAKEWA_EARLY_SUCCESS, /* the next registration gets <success> before pair-device */
    FAKEWA_BARE_401,      /* <stream:error code="401"/> without device_removed (device kept) */
    FAKEWA_HOSTED,        /* the next scan links a hosted account ([6,5] HMAC and account key) */
    FAKEWA_REFRESH,       /* send companion_reg_refresh to every registration connection */
    FAKEWA_REFRESH_ON_SCAN, /* the next scan gets companion_reg_refresh instead of pair-success,
                               and its secret is refused from then on */
    FAKEWA_ROUTING,         /* send <ib><edge_routing> now and after every later login */
    FAKEWA_OFFLINE,         /* close every connection and refuse new ones */
    FAKEWA_ONLINE,          /* accept connections again */
    FAKEWA_FAULT_COUNT
} fakewa_fault_t;

/* Parses a fault name (the enum names above in lower case without the
 * prefix: "drop", "stall", ..., "refresh_on_scan", "online"). Returns the
 * fault or -1. */
int fakewa_wa_fault_parse(const char *name);

/* What happened so far, for tests. */
typedef struct {
    int connections;   /* handshakes completed */
    int registrations; /* registration payloads seen */
    int logins_ok;     /* logins accepted */
    int logins_refused;
    int paired;           /* devices paired (device signature verified) */
    int bad_device_sigs;  /* pair-device-sign replies that did not verify */
    int pair_errors;      /* error replies to pair-success */
    int prekeys_uploaded; /* total pre-keys received */
    int pings;            /* client pings answered */
    int logouts;          /* remove-companion-device requests */
    int live;             /* connections open now */
    int pings_unpaired;   /* client pings on registration connections */
    int pings_dropped;    /* pings left unanswered on purpose */
    int acks_ok;          /* acks that matched a stanza we sent */
    int acks_bad;         /* acks with a wrong class, to or type */
    int unacked;          /* stanzas sent that still wait for their ack */
    int refreshes;        /* companion_reg_refresh notifications sent */
    int scans_refused;    /* scans refused (retired secret, expired or unknown ref) */
    int routing_sent;     /* edge_routing infos sent */
    int routed;           /* connections whose intro carried our routing info */
    int bad_nodes_sent;   /* undecodable stanzas sent */
    int double_live;      /* logins of a device that had a live connection already
                             (the older one is sent conflict "replaced", as WhatsApp does) */
    /* linking by pairing code */
    int paircode_hellos;       /* companion_hello requests answered with a ref */
    int paircode_bad_hellos;   /* companion_hello (or unknown stages) refused with 400 */
    int paircode_entries;      /* codes typed on the phone (primary_hello sent) */
    int paircode_accepted;     /* key bundles that opened: pair-success sent */
    int paircode_refused;      /* key bundles that did not open: wrong code */
    int paircode_too_many;     /* tries refused after 3 for one code */
    int paircode_bad_finishes; /* companion_finish without a matching primary_hello */
    int sw_fetches;            /* GET /sw.js requests */
    int refused_405;           /* payloads refused with <failure reason="405"/> */
    /* scale */
    int opens;    /* WebSocket connections opened (before any handshake) */
    int accounts; /* accounts other than the default one */
} fakewa_wa_stats_t;

/* Starts the server. Returns NULL with a message in err. */
fakewa_wa_t *fakewa_wa_new(uv_loop_t *loop, const fakewa_wa_opts_t *opts, char *err, size_t errlen);

/* Stop (then run the loop until idle) and free, as fakewa_stop/free. */
void fakewa_wa_stop(fakewa_wa_t *w);
void fakewa_wa_free(fakewa_wa_t *w);

/* The underlying transport server (port, root key, transport faults). */
fakewa_t *fakewa_wa_transport(fakewa_wa_t *w);

/* The phone scans `qr`. Returns 0 when a pair-success was sent, 1 when the
 * server answered the scan with companion_reg_refresh (refresh_on_scan), 2
 * when it asked for a passkey first (fakewa_wa_passkey_on_scan), or -1 with a reason in why
 * (unknown ref, expired ref, retired secret, no such connection, malformed). */
int fakewa_wa_scan(fakewa_wa_t *w, const char *qr, char *why, size_t whylen);

/* The same, scanned by the phone of account `phone` (6 to 15 digits; the
 * account is made on first use with its own identity key and LID; NULL =
 * the default account, or a new one with account_per_scan). Refused
 * (-1) for a malformed number. */
int fakewa_wa_scan_as(fakewa_wa_t *w, const char *qr, const char *phone, char *why, size_t whylen);

/* The phone's user types `typed` (a pairing code, "ABCD-EFGH" or
 * "abcdefgh") under Linked devices > Link with phone number: the phone
 * answers the newest companion_hello with primary_hello. Whether the code
 * was right shows when companion_finish arrives (paircode_accepted: a
 * pair-success follows; paircode_refused). Returns 0 when primary_hello was
 * sent, -1 with a reason in why (malformed code, no code requested, expired,
 * more than 3 tries). */
int fakewa_wa_pair_code(fakewa_wa_t *w, const char *typed, char *why, size_t whylen);

/* Injects or arms a fault. */
void fakewa_wa_fault(fakewa_wa_t *w, fakewa_fault_t f);

/* Injects a fault on the connections logged in as `target` only (a device
 * JID, or an account's phone number; NULL or "" = every connection, as
 * fakewa_wa_fault). Faults that are armed for the next connection, login or
 * scan ignore the target; "stall" on a target silences those connections
 * (they answer nothing, pings included). */
void fakewa_wa_fault_at(fakewa_wa_t *w, fakewa_fault_t f, const char *target);

/* Counters. */
const fakewa_wa_stats_t *fakewa_wa_stats(const fakewa_wa_t *w);

/* Renders the stats and the paired devices as JSON (malloc'd). */
char *fakewa_wa_state_json(const fakewa_wa_t *w);

/* --- the passkey step of linking (tests/fakewa/passkey.c) --- */

typedef struct {
    int requests;             /* passkey_prologue_request notifications sent */
    int refs;                 /* refs handed out */
    int assertions_ok;        /* prologues whose assertion verified */
    int assertions_bad;       /* prologues refused (assertion, credential, payload) */
    int handoff_ok;           /* handoff proofs verified against the scanned secret */
    int handoff_bad;          /* wrong handoff proofs (refused) */
    int handoff_unverified;   /* proofs sent without a scan to check them against */
    int handoff_absent;       /* prologues without a proof */
    int commitments_ok;       /* companion nonces matching the commitment */
    int commitments_bad;      /* ... not matching (refused) */
    int pairing_requests_ok;  /* encrypted pairing requests that opened */
    int pairing_requests_bad; /* ... that did not (refused) */
} fakewa_passkey_stats_t;

/* Registers the account's passkey: credential id, P-256 public key (SPKI
 * DER in standard base64, or PEM), the rpId its assertions are for, the
 * origin clientDataJSON must name, and the userVerification to ask for
 * (NULL = "preferred"; "required" also demands the UV flag). Replaces any
 * earlier one. Returns 0, or -1 with a reason in why. */
int fakewa_wa_passkey_credential(fakewa_wa_t *w, const uint8_t *cred_id, size_t cred_len,
                                 const char *public_key, const char *rp_id, const char *origin,
                                 const char *user_verification, char *why, size_t whylen);

/* Sends passkey_prologue_request (with fresh options, or without them when
 * with_options is 0, so the client must ask) on the newest registration
 * connection. Returns 0, or -1 with a reason in why. */
int fakewa_wa_passkey_request(fakewa_wa_t *w, int with_options, char *why, size_t whylen);

/* Arms the passkey step for the next scan: it sends the request instead of
 * pair-success (as WhatsApp does for accounts that require a passkey), and
 * the scanned secret checks the handoff proof. */
void fakewa_wa_passkey_on_scan(fakewa_wa_t *w);

/* Counters (never NULL). */
const fakewa_passkey_stats_t *fakewa_wa_passkey_stats(fakewa_wa_t *w);

/* The confirmation code the phone shows for the last step ("XXXX-XXXX"),
 * or "" before the companion revealed its nonce. */
const char *fakewa_wa_passkey_code(fakewa_wa_t *w);

/* Why the last passkey message was refused ("" when it was not). */
const char *fakewa_wa_passkey_last_error(fakewa_wa_t *w);

#endif
