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

#define MAX_SEEN 128
#define RP_ID "web.whatsapp.com"
#define ORIGIN "https://web.whatsapp.com"

typedef struct {
    uv_loop_t loop;
    fakewa_wa_t *srv;
    wa_fsock_ctx_t *fsock;
    store_t *store;
    sess_registry_t *reg;
    sess_t *s;
    sess_sub_t *sub;
    uv_async_t wake;
    uv_timer_t guard;
    char dir[512];
    sess_state_t seen[MAX_SEEN];
    char detail[MAX_SEEN][40];
    char qr[MAX_SEEN][400];
    char code[MAX_SEEN][16];
    int has_options[MAX_SEEN];
    int nseen;
    int timed_out;
    EVP_PKEY *key; /* the account's passkey */
    uint8_t cred_id[16];
    /* the passkey_response completion */
    int done_calls, done_rc;
} fx_t;

static void drain(fx_t *fx)
{
    sess_snapshot_t *snap;
    while (fx->sub && sess_sub_next(fx->sub, &snap) == SESS_SUB_OK) {
        if (fx->nseen < MAX_SEEN) {
            int i = fx->nseen++;
            fx->seen[i] = snap->state;
            snprintf(fx->detail[i], 40, "%s", snap->detail);
            snprintf(fx->qr[i], 400, "%s", snap->qr ? snap->qr->text : "");
            snprintf(fx->code[i], 16, "%s", snap->link_code ? snap->link_code : "");
            fx->has_options[i] = snap->passkey_options != NULL;
        }
        sess_snapshot_unref(snap);
    }
}

static void on_wake(uv_async_t *a)
{
    drain(a->data);
}

static void notify(void *arg)
{
    fx_t *fx = arg;
    uv_async_send(&fx->wake);
}

static void on_guard(uv_timer_t *t)
{
    fx_t *fx = t->data;
    fx->timed_out = 1;
}

static int wait_for(fx_t *fx, int from, sess_state_t state, const char *detail, unsigned ms)
{
    fx->timed_out = 0;
    uv_timer_start(&fx->guard, on_guard, ms, 0);
    for (;;) {
        drain(fx);
        for (int i = from; i < fx->nseen; i++)
            if (fx->seen[i] == state && (!detail || !strcmp(fx->detail[i], detail))) {
                uv_timer_stop(&fx->guard);
                return i;
            }
        if (fx->timed_out)
            return -1;
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
}

/* Runs the loop until the passkey_response completed (or ms pass). */
static void wait_done(fx_t *fx, unsigned ms)
{
    fx->timed_out = 0;
    uv_timer_start(&fx->guard, on_guard, ms, 0);
    while (!fx->done_calls && !fx->timed_out)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->guard);
    drain(fx);
}

static void must(fx_t *fx, int idx, const char *what)
{
    if (idx < 0) {
        for (int i = 0; i < fx->nseen; i++)
            fprintf(stderr, "  seen[%d] %s %s\n", i, sess_state_name(fx->seen[i]), fx->detail[i]);
        fprintf(stderr, "  fake: %s\n", fakewa_wa_passkey_last_error(fx->srv));
        fail_msg("did not see %s", what);
    }
}

static void start_gateway(fx_t *fx)
{
    char err[512];
    assert_int_equal(store_open(fx->dir, &fx->store, err, sizeof(err)), 0);
    fx->reg = sess_registry_new(&fx->loop, NULL);
    fx->s = sess_registry_add(fx->reg, "default");
    sess_driver_opts_t o = {
        .fsock = fx->fsock, .store = fx->store, .backoff_min_ms = 50, .backoff_max_ms = 400};
    char url[128];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws/chat",
             fakewa_port(fakewa_wa_transport(fx->srv)));
    o.client.url = url;
    memcpy(o.client.trust.root_pub, fakewa_root_pub(fakewa_wa_transport(fx->srv)), 32);
    wa_payload_parse_version(WA_PAYLOAD_DEFAULT_VERSION, &o.client.version);
    o.client.qr_first_ms = 4000;
    o.client.qr_next_ms = 2000;
    o.client.connect_timeout_ms = 3000;
    assert_int_equal(sess_driver_attach(fx->s, &o), 0);
    sess_sub_opts_t so = {.notify = notify, .arg = fx, .max_queue = 1024};
    fx->sub = sess_subscribe(fx->s, &so);
    fx->nseen = 0;
    assert_int_equal(sess_start(fx->s), 0);
}

static void stopped(void *arg)
{
    (void)arg;
}

static void stop_gateway(fx_t *fx)
{
    if (!fx->reg)
        return;
    sess_registry_stop(fx->reg, stopped, NULL);
    drain(fx);
    sess_unsubscribe(fx->sub);
    fx->sub = NULL;
    sess_registry_close(fx->reg);
    for (int i = 0; i < 20; i++)
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    sess_registry_free(fx->reg);
    fx->reg = NULL;
    store_close(fx->store);
    fx->store = NULL;
}

/* Registers a fresh P-256 passkey for the fake account. */
static void register_passkey(fx_t *fx, const char *user_verification)
{
    fx->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(fx->key);
    uint8_t *der = NULL;
    int dl = i2d_PUBKEY(fx->key, &der);
    assert_true(dl > 0);
    char *b64 = b64_encode(der, (size_t)dl);
    OPENSSL_free(der);
    wa_crypto_random(fx->cred_id, sizeof(fx->cred_id));
    char why[160];
    assert_int_equal(fakewa_wa_passkey_credential(fx->srv, fx->cred_id, sizeof(fx->cred_id), b64,
                                                  RP_ID, ORIGIN, user_verification, why,
                                                  sizeof(why)),
                     0);
    free(b64);
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    uv_loop_init(&fx->loop);
    uv_async_init(&fx->loop, &fx->wake, on_wake);
    fx->wake.data = fx;
    uv_timer_init(&fx->loop, &fx->guard);
    fx->guard.data = fx;
    snprintf(fx->dir, sizeof(fx->dir), "%s/pkflowXXXXXX",
             getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(fx->dir));
    char err[256];
    fakewa_wa_opts_t wo = {.refs = 6, .qr_first_ms = 4000, .qr_next_ms = 2000};
    fx->srv = fakewa_wa_new(&fx->loop, &wo, err, sizeof(err));
    assert_non_null(fx->srv);
    fx->fsock = wa_fsock_ctx_new(&fx->loop, NULL, err, sizeof(err));
    assert_non_null(fx->fsock);
    register_passkey(fx, NULL);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    stop_gateway(fx);
    fakewa_wa_stop(fx->srv);
    wa_fsock_ctx_destroy(fx->fsock);
    uv_close((uv_handle_t *)&fx->wake, NULL);
    uv_close((uv_handle_t *)&fx->guard, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    fakewa_wa_free(fx->srv);
    wa_fsock_ctx_free(fx->fsock);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    EVP_PKEY_free(fx->key);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
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
    EVP_PKEY *key = a->other_key ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256") : fx->key;
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
    memcpy(cred, fx->cred_id, 16);
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
    fx->done_calls++;
    fx->done_rc = rc;
}

/* Posts an assertion made by `a`; returns the operation's result (the
 * synchronous refusal, or the completion's). */
static int respond(fx_t *fx, const authn_t *a)
{
    char ch[128];
    challenge_of(fx, ch, sizeof(ch));
    char *json = make_assertion(fx, ch, a);
    fx->done_calls = 0;
    int rc = sess_passkey_response(fx->s, json, strlen(json), on_done, fx);
    free(json);
    if (rc != 0) {
        assert_int_equal(fx->done_calls, 0);
        return rc;
    }
    wait_done(fx, 5000);
    assert_int_equal(fx->done_calls, 1);
    return fx->done_rc;
}

/* QR_READY, then a scan that WhatsApp answers with a passkey request. */
static int scan_for_passkey(fx_t *fx)
{
    int q = wait_for(fx, 0, SESS_QR_READY, NULL, 5000);
    must(fx, q, "QR_READY");
    fakewa_wa_passkey_on_scan(fx->srv);
    char why[128];
    assert_int_equal(fakewa_wa_scan(fx->srv, fx->qr[q], why, sizeof(why)), 2);
    int r = wait_for(fx, q, SESS_CONNECTING, "passkey_required", 5000);
    must(fx, r, "CONNECTING/passkey_required");
    assert_true(fx->has_options[r]);
    return r;
}

/* After an accepted assertion: the code, then CONNECTED. */
static void finish_link(fx_t *fx, int from)
{
    int a = wait_for(fx, from, SESS_CONNECTING, "passkey_accepted", 5000);
    int k = wait_for(fx, from, SESS_CONNECTING, "passkey_confirm", 5000);
    must(fx, k, "CONNECTING/passkey_confirm");
    assert_true(a < 0 || a < k);
    /* the code the gateway shows is the one the phone shows */
    assert_int_equal(strlen(fx->code[k]), 9);
    assert_string_equal(fx->code[k], fakewa_wa_passkey_code(fx->srv));
    assert_false(fx->has_options[k]);
    must(fx, wait_for(fx, k, SESS_CONNECTING, "paired", 5000), "CONNECTING/paired");
    int c = wait_for(fx, k, SESS_CONNECTED, NULL, 5000);
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
    start_gateway(fx);
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
    stop_gateway(fx);
    start_gateway(fx);
    must(fx, wait_for(fx, 0, SESS_CONNECTED, NULL, 5000), "CONNECTED after restart");
}

static void test_passkey_refusals(void **state)
{
    fx_t *fx = *state;
    start_gateway(fx);
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
    start_gateway(fx);
    int q = wait_for(fx, 0, SESS_QR_READY, NULL, 5000);
    must(fx, q, "QR_READY");
    /* no passkey step yet */
    char ch[] = "AQID";
    char *json = make_assertion(fx, ch, &good);
    assert_int_equal(sess_passkey_response(fx->s, json, strlen(json), on_done, fx), SESS_ESTATE);
    free(json);
    char why[128];
    assert_int_equal(fakewa_wa_passkey_request(fx->srv, 0, why, sizeof(why)), 0);
    int r = wait_for(fx, q, SESS_CONNECTING, "passkey_required", 5000);
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
    start_gateway(fx);
    int r = scan_for_passkey(fx);
    fakewa_wa_fault(fx->srv, FAKEWA_DROP);
    int d = wait_for(fx, r, SESS_DISCONNECTED, NULL, 5000);
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
