/* The fake WhatsApp server's protocol behaviour on top of fakewa.c: answers
 * a registration with pair-device refs, lets a simulated phone scan a QR
 * (refusing expired refs), sends a correctly signed pair-success and checks
 * the companion's device signature, asks for the 515 restart, checks logins
 * against the devices it paired, answers pings, pre-key count and upload,
 * logout, and injects every fault of the protocol doc on demand.
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
    int prekey_count;        /* what the count query answers at first */
} fakewa_wa_opts_t;

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
    FAKEWA_FAULT_COUNT
} fakewa_fault_t;

/* Parses a fault name ("drop", "stall", "garbage", "restart", "logged_out",
 * "replaced", "server_error", "outdated", "banned", "bad_hmac",
 * "bad_signature"). Returns the fault or -1. */
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
} fakewa_wa_stats_t;

/* Starts the server. Returns NULL with a message in err. */
fakewa_wa_t *fakewa_wa_new(uv_loop_t *loop, const fakewa_wa_opts_t *opts, char *err, size_t errlen);

/* Stop (then run the loop until idle) and free, as fakewa_stop/free. */
void fakewa_wa_stop(fakewa_wa_t *w);
void fakewa_wa_free(fakewa_wa_t *w);

/* The underlying transport server (port, root key, transport faults). */
fakewa_t *fakewa_wa_transport(fakewa_wa_t *w);

/* The phone scans `qr`. Returns 0 when a pair-success was sent, or -1 with a
 * reason in why (unknown ref, expired ref, no such connection, malformed). */
int fakewa_wa_scan(fakewa_wa_t *w, const char *qr, char *why, size_t whylen);

/* Injects or arms a fault. */
void fakewa_wa_fault(fakewa_wa_t *w, fakewa_fault_t f);

/* Counters. */
const fakewa_wa_stats_t *fakewa_wa_stats(const fakewa_wa_t *w);

/* Renders the stats and the paired devices as JSON (malloc'd). */
char *fakewa_wa_state_json(const fakewa_wa_t *w);

#endif
