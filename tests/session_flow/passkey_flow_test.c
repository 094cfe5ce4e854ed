/* Integration tests of the passkey step of linking (protocol doc 11.6):
 * registry + driver + store + protocol client against the fake WhatsApp
 * server, which verifies each WebAuthn assertion as a relying party would.
 * The assertions are made here in software from a test P-256 key (OpenSSL),
 * exactly as an authenticator makes them. Asserted: the states a subscriber
 * sees (QR_READY, CONNECTING/passkey_required with the options,
 * passkey_accepted, passkey_confirm with the phone's code, paired,
 * CONNECTED), the handoff proof checked against the scanned secret, a
 * refused signature, origin and credential, an assertion for another
 * challenge, a request without options, and no step pending. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/base64.h"
#include "session/driver.h"
#include "session/session.h"
#include "session/store/store.h"
#include "session/wa/crypto.h"
#include "tests/fakewa/whatsapp.h"
#include "tests/session_flow/flowlib.h"

#define RP_ID "web.whatsapp.com"
#define ORIGIN "https://web.whatsapp.com"

typedef flow_t fx_t;

/* What this test keeps beside the harness (fx->user). */
typedef struct {
    EVP_PKEY *key; /* the account's passkey */
    uint8_t cred_id[16];
    /* the passkey_response completion */
    int done_calls, done_rc;
} pk_t;

#define PK(fx) ((pk_t *)(fx)->user)

/* Runs the loop until the passkey_response completed (or ms pass). */
static void wait_done(fx_t *fx, unsigned ms)
{
    flow_guard(fx, ms);
    while (!PK(fx)->done_calls && !fx->timed_out)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->guard);
    flow_drain(fx);
}

static void must(fx_t *fx, int idx, const char *what)
{
    if (idx < 0)
        fprintf(stderr, "  fake: %s\n", fakewa_wa_passkey_last_error(fx->srv));
    flow_must(fx, idx, what);
}

/* Registers a fresh P-256 passkey for the fake account. */
static void register_passkey(fx_t *fx, const char *user_verification)
{
    PK(fx)->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(PK(fx)->key);
    uint8_t *der = NULL;
    int dl = i2d_PUBKEY(PK(fx)->key, &der);
    assert_true(dl > 0);
    char *b64 = b64_encode(der, (size_t)dl);
    OPENSSL_free(der);
    wa_crypto_random(PK(fx)->cred_id, sizeof(PK(fx)->cred_id));
    char why[160];
    assert_int_equal(fakewa_wa_passkey_credential(fx->srv, PK(fx)->cred_id, sizeof(PK(fx)->cred_id),
                                                  b64, RP_ID, ORIGIN, user_verification, why,
                                                  sizeof(why)),
                     0);
    free(b64);
}

static int setup(void **state)
{
    fakewa_wa_opts_t wo = {.refs = 6, .qr_first_ms = 4000, .qr_next_ms = 2000};
    fx_t *fx = flow_new("pkflow", &wo);
    fx->user = calloc(1, sizeof(pk_t));
    assert_non_null(fx->user);
    register_passkey(fx, NULL);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    pk_t *pk = PK(fx);
    flow_free(fx);
    EVP_PKEY_free(pk->key);
    free(pk);
    return 0;
}

/* --- a software authenticator --- */

typedef struct {
    const char *type;   /* clientDataJSON type */
    const char *origin; /* clientDataJSON origin */
    const char *rp_id;  /* hashed into authenticatorData */
    uint8_t flags;
    int bad_signature;    /* flip a bit of the signature */
    int other_credential; /* claim another credential id */
    int other_key;        /* sign with a key the account does not have */
} authn_t;

static const authn_t good = {"webauthn.get", ORIGIN, RP_ID, 0x05, 0, 0, 0};

/* The challenge (base64url) of the current snapshot's passkey options. */
static void challenge_of(fx_t *fx, char *out, size_t cap)
{
    sess_snapshot_t *snap = sess_current(fx->s);
    assert_non_null(snap->passkey_options);
    const char *p = strstr(snap->passkey_options, "\"challenge\":\"");
    assert_non_null(p);
    p += 13;
    size_t n = strcspn(p, "\"");
    assert_true(n < cap);
    memcpy(out, p, n);
    out[n] = 0;
    sess_snapshot_unref(snap);
}

static char *b64u(const uint8_t *d, size_t n)
{
    char *s = b64url_encode(d, n);
    assert_non_null(s);
    return s;
}

/* navigator.credentials.get() for `challenge`, as toJSON() shows it. */
static char *make_assertion(fx_t *fx, const char *challenge, const authn_t *a)
{
    char cdj[512];
    int cl = snprintf(cdj, sizeof(cdj),
                      "{\"type\":\"%s\",\"challenge\":\"%s\",\"origin\":\"%s\","
                      "\"crossOrigin\":false}",
                      a->type, challenge, a->origin);
    uint8_t ad[37];
    const uint8_t *parts[1] = {(const uint8_t *)a->rp_id};
    size_t lens[1] = {strlen(a->rp_id)};
    wa_crypto_sha256(parts, lens, 1, ad);
    ad[32] = a->flags;
    memcpy(ad + 33, "\x00\x00\x00\x07", 4); /* signature counter */
    uint8_t msg[37 + 32];
    memcpy(msg, ad, 37);
    parts[0] = (const uint8_t *)cdj;
    lens[0] = (size_t)cl;
    wa_crypto_sha256(parts, lens, 1, msg + 37);
    EVP_PKEY *key = a->other_key ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256") : PK(fx)->key;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t sig[128];
    size_t sl = sizeof(sig);
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &sl, msg, sizeof(msg)), 1);
    EVP_MD_CTX_free(md);
    if (a->other_key)
        EVP_PKEY_free(key);
    if (a->bad_signature)
        sig[sl - 3] ^= 0x10;
    uint8_t cred[16];
    memcpy(cred, PK(fx)->cred_id, 16);
    if (a->other_credential)
        cred[0] ^= 1;
    char *id = b64u(cred, 16), *c = b64u((const uint8_t *)cdj, (size_t)cl), *d = b64u(ad, 37),
         *s = b64u(sig, sl), *u = b64u((const uint8_t *)"user-1", 6);
    char *json = malloc(2048);
    snprintf(json, 2048,
             "{\"id\":\"%s\",\"rawId\":\"%s\",\"type\":\"public-key\","
             "\"authenticatorAttachment\":\"platform\",\"clientExtensionResults\":{},"
             "\"response\":{\"clientDataJSON\":\"%s\",\"authenticatorData\":\"%s\","
             "\"signature\":\"%s\",\"userHandle\":\"%s\"}}",
             id, id, c, d, s, u);
    free(id);
    free(c);
    free(d);
    free(s);
    free(u);
    return json;
}

static void on_done(void *arg, int rc)
{
    fx_t *fx = arg;
    PK(fx)->done_calls++;
    PK(fx)->done_rc = rc;
}

/* Posts an assertion made by `a`; returns the operation's result (the
 * synchronous refusal, or the completion's). */
static int respond(fx_t *fx, const authn_t *a)
{
    char ch[128];
    challenge_of(fx, ch, sizeof(ch));
    char *json = make_assertion(fx, ch, a);
    PK(fx)->done_calls = 0;
    int rc = sess_passkey_response(fx->s, json, strlen(json), on_done, fx);
    free(json);
    if (rc != 0) {
        assert_int_equal(PK(fx)->done_calls, 0);
        return rc;
    }
    wait_done(fx, 5000);
    assert_int_equal(PK(fx)->done_calls, 1);
    return PK(fx)->done_rc;
}

/* QR_READY, then a scan that WhatsApp answers with a passkey request. */
static int scan_for_passkey(fx_t *fx)
{
    int q = flow_wait_for(fx, 0, SESS_QR_READY, NULL, 5000);
    must(fx, q, "QR_READY");
    fakewa_wa_passkey_on_scan(fx->srv);
    char why[128];
    assert_int_equal(fakewa_wa_scan(fx->srv, fx->qr[q], why, sizeof(why)), 2);
    int r = flow_wait_for(fx, q, SESS_CONNECTING, "passkey_required", 5000);
    must(fx, r, "CONNECTING/passkey_required");
    assert_true(fx->has_options[r]);
    return r;
}

/* After an accepted assertion: the code, then CONNECTED. */
static void finish_link(fx_t *fx, int from)
{
    int a = flow_wait_for(fx, from, SESS_CONNECTING, "passkey_accepted", 5000);
    int k = flow_wait_for(fx, from, SESS_CONNECTING, "passkey_confirm", 5000);
    must(fx, k, "CONNECTING/passkey_confirm");
    assert_true(a < 0 || a < k);
    /* the code the gateway shows is the one the phone shows */
    assert_int_equal(strlen(fx->code[k]), 9);
    assert_string_equal(fx->code[k], fakewa_wa_passkey_code(fx->srv));
    assert_false(fx->has_options[k]);
    must(fx, flow_wait_for(fx, k, SESS_CONNECTING, "paired", 5000), "CONNECTING/paired");
    int c = flow_wait_for(fx, k, SESS_CONNECTED, NULL, 5000);
    must(fx, c, "CONNECTED");
    assert_string_equal(fx->code[c], "");
    assert_false(fx->has_options[c]);
    for (int i = from; i < fx->nseen; i++)
        assert_int_not_equal(fx->seen[i], SESS_QR_READY); /* no QR once the passkey step began */
    const fakewa_wa_stats_t *st = fakewa_wa_stats(fx->srv);
    assert_int_equal(st->paired, 1);
    assert_int_equal(st->logins_ok, 1);
}

static void test_passkey_links(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    int r = scan_for_passkey(fx);
    sess_snapshot_t *snap = sess_current(fx->s);
    assert_non_null(strstr(snap->passkey_options, "\"rpId\":\"" RP_ID "\""));
    assert_null(snap->link_code);
    assert_null(snap->qr);
    sess_snapshot_unref(snap);
    assert_int_equal(respond(fx, &good), 0);
    finish_link(fx, r);
    const fakewa_passkey_stats_t *ps = fakewa_wa_passkey_stats(fx->srv);
    assert_int_equal(ps->requests, 1);
    assert_int_equal(ps->refs, 1);
    assert_int_equal(ps->assertions_ok, 1);
    assert_int_equal(ps->assertions_bad, 0);
    /* the proof is keyed by the secret of the QR the phone scanned */
    assert_int_equal(ps->handoff_ok, 1);
    assert_int_equal(ps->handoff_bad, 0);
    assert_int_equal(ps->commitments_ok, 1);
    assert_int_equal(ps->pairing_requests_ok, 1);
    assert_int_equal(fakewa_wa_stats(fx->srv)->unacked, 0); /* both notifications acked */
    /* nothing to answer any more */
    char *json = make_assertion(fx, "AQID", &good);
    assert_int_equal(sess_passkey_response(fx->s, json, strlen(json), on_done, fx), SESS_ESTATE);
    free(json);
    /* and the link survives a restart */
    flow_stop(fx);
    flow_start(fx);
    must(fx, flow_wait_for(fx, 0, SESS_CONNECTED, NULL, 5000), "CONNECTED after restart");
}

static void test_passkey_refusals(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    int r = scan_for_passkey(fx);
    const fakewa_passkey_stats_t *ps = fakewa_wa_passkey_stats(fx->srv);
    /* WhatsApp (the fake) refuses what a relying party refuses */
    authn_t a = good;
    a.bad_signature = 1;
    assert_int_equal(respond(fx, &a), SESS_EREFUSED);
    assert_non_null(strstr(fakewa_wa_passkey_last_error(fx->srv), "signature"));
    a = good;
    a.other_key = 1;
    assert_int_equal(respond(fx, &a), SESS_EREFUSED);
    a = good;
    a.origin = "https://evil.example";
    assert_int_equal(respond(fx, &a), SESS_EREFUSED);
    assert_non_null(strstr(fakewa_wa_passkey_last_error(fx->srv), "origin"));
    a = good;
    a.rp_id = "example.com";
    assert_int_equal(respond(fx, &a), SESS_EREFUSED);
    a = good;
    a.flags = 0x04; /* no user presence */
    assert_int_equal(respond(fx, &a), SESS_EREFUSED);
    a = good;
    a.other_credential = 1;
    assert_int_equal(respond(fx, &a), SESS_EREFUSED);
    assert_int_equal(ps->assertions_bad, 6);
    assert_int_equal(ps->assertions_ok, 0);
    /* the gateway refuses what is malformed or for another challenge */
    a = good;
    a.type = "webauthn.create";
    assert_int_equal(respond(fx, &a), SESS_EINVAL);
    char *json = make_assertion(fx, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &good);
    assert_int_equal(sess_passkey_response(fx->s, json, strlen(json), on_done, fx), SESS_EINVAL);
    free(json);
    assert_int_equal(sess_passkey_response(fx->s, "{", 1, on_done, fx), SESS_EINVAL);
    assert_int_equal(ps->assertions_bad, 6); /* none of these reached WhatsApp */
    /* still waiting for a passkey; a good one links */
    sess_snapshot_t *snap = sess_current(fx->s);
    assert_string_equal(snap->detail, "passkey_required");
    assert_non_null(snap->passkey_options);
    sess_snapshot_unref(snap);
    assert_int_equal(respond(fx, &good), 0);
    finish_link(fx, r);
    assert_int_equal(ps->assertions_ok, 1);
}

/* A request without options (the client asks for them), sent without a
 * scan: the fake cannot check the handoff proof then. */
static void test_passkey_request_without_options(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    int q = flow_wait_for(fx, 0, SESS_QR_READY, NULL, 5000);
    must(fx, q, "QR_READY");
    /* no passkey step yet */
    char ch[] = "AQID";
    char *json = make_assertion(fx, ch, &good);
    assert_int_equal(sess_passkey_response(fx->s, json, strlen(json), on_done, fx), SESS_ESTATE);
    free(json);
    char why[128];
    assert_int_equal(fakewa_wa_passkey_request(fx->srv, 0, why, sizeof(why)), 0);
    int r = flow_wait_for(fx, q, SESS_CONNECTING, "passkey_required", 5000);
    must(fx, r, "CONNECTING/passkey_required");
    assert_int_equal(respond(fx, &good), 0);
    finish_link(fx, r);
    const fakewa_passkey_stats_t *ps = fakewa_wa_passkey_stats(fx->srv);
    assert_int_equal(ps->handoff_unverified, 1);
    assert_int_equal(ps->pairing_requests_ok, 1);
}

/* The connection ends during the step: DISCONNECTED, nothing pending. */
static void test_passkey_connection_lost(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    int r = scan_for_passkey(fx);
    fakewa_wa_fault(fx->srv, FAKEWA_DROP);
    int d = flow_wait_for(fx, r, SESS_DISCONNECTED, NULL, 5000);
    must(fx, d, "DISCONNECTED after the drop");
    assert_false(fx->has_options[d]);
    char *json = make_assertion(fx, "AQID", &good);
    int rc = sess_passkey_response(fx->s, json, strlen(json), on_done, fx);
    free(json);
    assert_int_equal(rc, SESS_ESTATE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_passkey_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passkey_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passkey_request_without_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passkey_connection_lost, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
