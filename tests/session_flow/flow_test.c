/* Integration tests of the session life cycle: registry + driver + store +
 * protocol client against the fake WhatsApp server (tests/fakewa) on
 * loopback, asserting the sequence of states subscribers see: pairing by QR
 * and by pairing code (wrong codes refused, tries, the QR usable meanwhile),
 * login after a restart, QR rotation and expiry, rejected pairings, every
 * server verdict and fault, and logout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "session/driver.h"
#include "session/session.h"
#include "session/store/store.h"
#include "session/wa/pair.h"
#include "tests/fakewa/whatsapp.h"
#include "tests/session_flow/flowlib.h"

typedef flow_t fx_t;

static int setup_with(void **state, unsigned first, unsigned next, int refs)
{
    fakewa_wa_opts_t wo = {
        .refs = refs, .qr_first_ms = first, .qr_next_ms = next, .server_ping_ms = 150};
    *state = flow_new("flow", &wo);
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 4000, 2000, 6);
}

static int setup_short_qr(void **state)
{
    return setup_with(state, 400, 250, 3);
}

static int teardown(void **state)
{
    flow_free(*state);
    return 0;
}

/* The pre-keys are on the server and it has seen a keepalive ping. */
static int prekeys_and_ping(flow_t *fx)
{
    const fakewa_wa_stats_t *st = fakewa_wa_stats(fx->srv);
    return st->prekeys_uploaded >= 812 && st->pings >= 1;
}

static void test_pair_then_restart_logs_in(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    int c = flow_pair(fx);
    /* the sequence: DISCONNECTED (initial), CONNECTING, QR_READY, CONNECTING
     * (paired), CONNECTING (logging in after 515), CONNECTED */
    assert_int_equal(fx->seen[0], SESS_DISCONNECTED);
    assert_int_equal(fx->seen[1], SESS_CONNECTING);
    assert_string_equal(fx->detail[1], "registering");
    assert_int_equal(fx->seen[2], SESS_QR_READY);
    assert_non_null(strstr(fx->qr[2], "https://wa.me/settings/linked_devices#2@"));
    flow_must(fx, flow_wait_for(fx, 2, SESS_CONNECTING, "paired", 1), "CONNECTING/paired");
    flow_must(fx, flow_wait_for(fx, 2, SESS_CONNECTING, "logging_in", 1), "CONNECTING/logging_in");
    const fakewa_wa_stats_t *st = fakewa_wa_stats(fx->srv);
    assert_int_equal(st->paired, 1);
    assert_int_equal(st->logins_ok, 1);
    /* pre-key upload and keepalive pings (bounded, not timed: a loaded
     * machine may take longer than the ping period) */
    assert_true(flow_run_until(fx, prekeys_and_ping, 10000));
    assert_int_equal(st->prekeys_uploaded, 812);
    assert_true(st->pings >= 1);
    sess_snapshot_t *snap = sess_current(fx->s);
    assert_true(snap->linked);
    assert_non_null(strstr(snap->account.jid, "15551234567:"));
    assert_string_equal(snap->account.phone, "15551234567");
    sess_snapshot_unref(snap);
    assert_int_equal(fx->seen[fx->nseen - 1], SESS_CONNECTED);
    (void)c;
    /* the service restarted on the same data dir: CONNECTED, no QR */
    flow_stop(fx);
    flow_start(fx);
    int c2 = flow_wait_for(fx, 0, SESS_CONNECTED, NULL, 5000);
    flow_must(fx, c2, "CONNECTED after restart");
    for (int i = 0; i < fx->nseen; i++)
        assert_int_not_equal(fx->seen[i], SESS_QR_READY);
    assert_int_equal(st->paired, 1);
    assert_int_equal(st->logins_ok, 2);
}

/* Frames from the server split one byte per WebSocket message, or several
 * merged in one message, through a whole pairing and login, with server
 * pings every 150 ms; 1,000 subscribers all see the same ordered states. */
static void split_or_merged(fx_t *fx, int split, int merge)
{
    fakewa_faults(fakewa_wa_transport(fx->srv))->split = (size_t)split;
    fakewa_faults(fakewa_wa_transport(fx->srv))->merge = merge;
    flow_start(fx);
    enum { N = 1000 };
    sess_sub_t **subs = calloc(N, sizeof(*subs));
    sess_sub_opts_t so = {.max_queue = 64};
    for (int i = 0; i < N; i++)
        subs[i] = sess_subscribe(fx->s, &so);
    int c = flow_pair(fx);
    /* pings and pre-keys through the same faults */
    assert_true(flow_run_until(fx, prekeys_and_ping, 10000));
    assert_true(fakewa_wa_stats(fx->srv)->pings >= 1);
    assert_int_equal(fakewa_wa_stats(fx->srv)->prekeys_uploaded, 812);
    sess_snapshot_t *cur = sess_current(fx->s);
    assert_int_equal(cur->state, SESS_CONNECTED);
    uint64_t last = cur->seq;
    sess_snapshot_unref(cur);
    for (int i = 0; i < N; i++) {
        sess_snapshot_t *snap;
        uint64_t prev = 0;
        int k = 0, saw_qr = 0;
        while (sess_sub_next(subs[i], &snap) == SESS_SUB_OK) {
            if (prev)
                assert_int_equal(snap->seq, prev + 1); /* none lost, in order */
            prev = snap->seq;
            saw_qr |= snap->state == SESS_QR_READY;
            k++;
            sess_snapshot_unref(snap);
        }
        assert_int_equal(prev, last);
        assert_true(saw_qr && k >= 4);
        assert_int_equal(sess_sub_dropped(subs[i]), 0);
        sess_unsubscribe(subs[i]);
    }
    free(subs);
    (void)c;
}

static void test_split_frames_through_pairing(void **state)
{
    split_or_merged(*state, 1, 0);
}

static void test_merged_frames_through_pairing(void **state)
{
    split_or_merged(*state, 0, 2);
}

static void test_qr_rotation_and_timeout(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    int d = flow_wait_for(fx, 0, SESS_DISCONNECTED, "qr_timeout", 5000);
    flow_must(fx, d, "DISCONNECTED/qr_timeout");
    int qrs = 0;
    for (int i = 0; i < d; i++)
        if (fx->seen[i] == SESS_QR_READY) {
            for (int j = 0; j < i; j++)
                if (fx->seen[j] == SESS_QR_READY)
                    assert_string_not_equal(fx->qr[i], fx->qr[j]); /* a new ref each time */
            qrs++;
        }
    assert_int_equal(qrs, 3);
    /* no new connection until asked */
    int conns = fakewa_wa_stats(fx->srv)->connections;
    flow_run_for(fx, 800);
    assert_int_equal(fakewa_wa_stats(fx->srv)->connections, conns);
    assert_int_equal(fx->seen[fx->nseen - 1], SESS_DISCONNECTED);
    /* an expired ref is refused by the phone */
    char why[128];
    assert_int_equal(fakewa_wa_scan(fx->srv, fx->qr[2], why, sizeof(why)), -1);
    /* a reconnect gives a QR again */
    int from = fx->nseen;
    assert_int_equal(sess_reconnect(fx->s, 0), 0);
    flow_must(fx, flow_wait_for(fx, from, SESS_QR_READY, NULL, 3000), "QR_READY after reconnect");
}

static void test_expired_ref_refused(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    int q1 = flow_wait_for(fx, 0, SESS_QR_READY, NULL, 3000);
    flow_must(fx, q1, "first QR");
    int q2 = flow_wait_for(fx, q1 + 1, SESS_QR_READY, NULL, 3000);
    flow_must(fx, q2, "second QR");
    flow_run_for(fx, 150); /* well past the first ref's lifetime and its slack */
    char why[128];
    /* the first ref's lifetime is over */
    assert_int_equal(fakewa_wa_scan(fx->srv, fx->qr[q1], why, sizeof(why)), -1);
    assert_non_null(strstr(why, "expired"));
    assert_int_equal(fakewa_wa_scan(fx->srv, fx->qr[q2], why, sizeof(why)), 0);
    flow_must(fx, flow_wait_for(fx, q2, SESS_CONNECTED, NULL, 3000),
              "CONNECTED with the current ref");
}

static void bad_pairing(fx_t *fx, fakewa_fault_t f)
{
    flow_start(fx);
    int q = flow_wait_for(fx, 0, SESS_QR_READY, NULL, 3000);
    flow_must(fx, q, "QR_READY");
    fakewa_wa_fault(fx->srv, f);
    char why[128];
    assert_int_equal(fakewa_wa_scan(fx->srv, fx->qr[q], why, sizeof(why)), 0);
    flow_must(fx, flow_wait_for(fx, q, SESS_DISCONNECTED, "pairing_failed", 3000),
              "pairing_failed");
    flow_run_for(fx, 300); /* the error reply reaches the server */
    assert_int_equal(fakewa_wa_stats(fx->srv)->paired, 0);
    assert_int_equal(fakewa_wa_stats(fx->srv)->pair_errors, 1);
    /* nothing was persisted: no account in the store */
    store_creds_t c;
    flow_settle(fx);
    int rc = store_load(fx->store, "default", &c);
    if (rc == 0) {
        assert_null(c.jid);
        assert_null(c.account);
        store_creds_free(&c);
    }
}

static void test_bad_hmac_rejected(void **state)
{
    bad_pairing(*state, FAKEWA_BAD_HMAC);
}

static void test_bad_signature_rejected(void **state)
{
    bad_pairing(*state, FAKEWA_BAD_SIGNATURE);
}

/* Pairs, injects a fault, checks the state it leads to. */
static void fault_case(fx_t *fx, fakewa_fault_t f, const char *detail, int reconnects, int wiped)
{
    flow_start(fx);
    int c = flow_pair(fx);
    flow_run_for(fx, 100);
    fakewa_wa_fault(fx->srv, f);
    int d = flow_wait_for(fx, c + 1, SESS_DISCONNECTED, detail, 4000);
    flow_must(fx, d, detail);
    if (reconnects) {
        flow_must(fx, flow_wait_for(fx, d, SESS_CONNECTED, NULL, 4000), "CONNECTED again");
    } else {
        int conns = fakewa_wa_stats(fx->srv)->connections;
        flow_run_for(fx, 700);
        assert_int_equal(fakewa_wa_stats(fx->srv)->connections, conns); /* no loop */
        assert_int_equal(fx->seen[fx->nseen - 1], SESS_DISCONNECTED);
    }
    store_creds_t cr;
    flow_settle(fx);
    int rc = store_load(fx->store, "default", &cr);
    if (wiped) {
        assert_int_equal(rc, STORE_ENOTFOUND);
        sess_snapshot_t *s = sess_current(fx->s);
        assert_false(s->linked);
        sess_snapshot_unref(s);
    } else {
        assert_int_equal(rc, 0);
        assert_non_null(cr.jid);
        store_creds_free(&cr);
    }
}

static void test_fault_logged_out(void **state)
{
    fault_case(*state, FAKEWA_LOGGED_OUT, "logged_out", 0, 1);
}

static void test_fault_replaced(void **state)
{
    fault_case(*state, FAKEWA_REPLACED, "replaced", 0, 0);
}

static void test_fault_server_error(void **state)
{
    fault_case(*state, FAKEWA_SERVER_ERROR, "service_unavailable", 1, 0);
}

static void test_fault_drop(void **state)
{
    fault_case(*state, FAKEWA_DROP, NULL, 1, 0);
}

static void test_fault_garbage(void **state)
{
    fault_case(*state, FAKEWA_GARBAGE, "connection_lost", 1, 0);
}

static void test_fault_stall(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    int c = flow_pair(fx);
    fakewa_wa_fault(fx->srv, FAKEWA_STALL);
    int d = flow_wait_for(fx, c + 1, SESS_DISCONNECTED, "keepalive_timeout", 4000);
    flow_must(fx, d, "keepalive_timeout");
    fakewa_wa_fault(fx->srv, FAKEWA_DROP); /* un-stalls */
    flow_must(fx, flow_wait_for(fx, d, SESS_CONNECTED, NULL, 4000), "CONNECTED after the stall");
}

static void test_fault_restart(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    int c = flow_pair(fx);
    fakewa_wa_fault(fx->srv, FAKEWA_RESTART);
    int r = flow_wait_for(fx, c + 1, SESS_CONNECTING, "logging_in", 3000);
    flow_must(fx, r, "CONNECTING after 515");
    flow_must(fx, flow_wait_for(fx, r, SESS_CONNECTED, NULL, 3000), "CONNECTED after 515");
    for (int i = c + 1; i < r; i++)
        assert_int_not_equal(fx->seen[i], SESS_DISCONNECTED); /* reconnect at once */
}

static void test_fault_outdated_and_banned(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    int c = flow_pair(fx);
    fakewa_wa_fault(fx->srv, FAKEWA_OUTDATED);
    fakewa_wa_fault(fx->srv, FAKEWA_DROP);
    int d = flow_wait_for(fx, c + 1, SESS_DISCONNECTED, "client_outdated", 4000);
    flow_must(fx, d, "client_outdated");
    int conns = fakewa_wa_stats(fx->srv)->connections;
    flow_run_for(fx, 500);
    assert_int_equal(fakewa_wa_stats(fx->srv)->connections, conns);
    fakewa_wa_fault(fx->srv, FAKEWA_BANNED);
    assert_int_equal(sess_reconnect(fx->s, 1), 0);
    flow_must(fx, flow_wait_for(fx, d + 1, SESS_DISCONNECTED, "account_locked", 4000),
              "account_locked");
    store_creds_t cr;
    flow_settle(fx);
    assert_int_equal(store_load(fx->store, "default", &cr), STORE_ENOTFOUND);
}

static void test_logout_wipes(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    int c = flow_pair(fx);
    assert_int_equal(sess_logout(fx->s), 0);
    int d = flow_wait_for(fx, c + 1, SESS_DISCONNECTED, "logged_out", 4000);
    flow_must(fx, d, "logged_out");
    assert_int_equal(fakewa_wa_stats(fx->srv)->logouts, 1);
    store_creds_t cr;
    flow_settle(fx);
    assert_int_equal(store_load(fx->store, "default", &cr), STORE_ENOTFOUND);
    /* the next start shows a QR */
    flow_stop(fx);
    flow_start(fx);
    flow_must(fx, flow_wait_for(fx, 0, SESS_QR_READY, NULL, 3000), "QR after logout and restart");
}

/* --- linking by pairing code --- */

typedef struct {
    int called, rc;
    char code[16];
    int64_t expires_at_ms;
} code_answer_t;

static void on_code(void *arg, int rc, const char *code, int64_t expires_at_ms)
{
    code_answer_t *a = arg;
    a->called++;
    a->rc = rc;
    snprintf(a->code, sizeof(a->code), "%s", code ? code : "");
    a->expires_at_ms = expires_at_ms;
}

/* Asks for a code for the fake phone's number and runs the loop until the
 * answer; returns it. */
static code_answer_t request_code(fx_t *fx)
{
    code_answer_t a = {0};
    int rc = sess_pairing_code(fx->s, "15551234567", on_code, &a);
    assert_int_equal(rc, 0);
    flow_guard(fx, 10000);
    while (!a.called && !fx->timed_out)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->guard);
    flow_drain(fx);
    assert_int_equal(a.called, 1);
    return a;
}

/* Runs the loop until `*counter` reaches `want` (bounded). */
static void wait_count(fx_t *fx, const int *counter, int want, const char *what)
{
    flow_guard(fx, 5000);
    while (*counter < want && !fx->timed_out)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->guard);
    flow_drain(fx);
    if (*counter < want)
        fail_msg("timed out waiting for %s", what);
}

/* The code in the snapshot, shown while the state stays QR_READY with its QR. */
static void assert_code_published(fx_t *fx, const code_answer_t *a)
{
    sess_snapshot_t *snap = sess_current(fx->s);
    assert_int_equal(snap->state, SESS_QR_READY);
    assert_non_null(snap->qr);
    assert_non_null(snap->link_code);
    assert_string_equal(snap->link_code, a->code);
    assert_int_equal(snap->link_code_expires_at_ms, a->expires_at_ms);
    sess_snapshot_unref(snap);
}

static void test_paircode_links(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    flow_must(fx, flow_wait_for(fx, 0, SESS_QR_READY, NULL, 5000), "QR_READY");
    int64_t t0 = sess_now_ms();
    code_answer_t a = request_code(fx);
    assert_int_equal(a.rc, 0);
    assert_int_equal(strlen(a.code), 9);
    assert_int_equal(a.code[4], '-');
    /* 180 s, or less when the connection's QR codes run out first */
    assert_true(a.expires_at_ms > t0 && a.expires_at_ms <= t0 + 180000);
    assert_true(a.expires_at_ms <= t0 + 4000 + 5 * 2000 + 500);
    assert_code_published(fx, &a);
    const fakewa_wa_stats_t *st = fakewa_wa_stats(fx->srv);
    assert_int_equal(st->paircode_hellos, 1);
    assert_int_equal(st->paircode_bad_hellos, 0);
    /* the phone's user types it */
    int from = fx->nseen;
    char why[128];
    assert_int_equal(fakewa_wa_pair_code(fx->srv, a.code, why, sizeof(why)), 0);
    int c = flow_wait_for(fx, from, SESS_CONNECTED, NULL, 5000);
    flow_must(fx, c, "CONNECTED after the code");
    flow_must(fx, flow_wait_for(fx, from, SESS_CONNECTING, "paired", 1), "CONNECTING/paired");
    assert_int_equal(st->paircode_entries, 1);
    assert_int_equal(st->paircode_accepted, 1);
    assert_int_equal(st->paircode_refused, 0);
    assert_int_equal(st->paired, 1);
    assert_int_equal(st->pair_errors, 0);
    flow_run_for(fx, 200);
    assert_int_equal(st->unacked, 0); /* primary_hello was acked */
    sess_snapshot_t *snap = sess_current(fx->s);
    assert_int_equal(snap->state, SESS_CONNECTED);
    assert_null(snap->link_code); /* gone once linked */
    assert_true(snap->linked);
    sess_snapshot_unref(snap);
    /* linked now: no code */
    code_answer_t b = {0};
    assert_int_equal(sess_pairing_code(fx->s, "15551234567", on_code, &b), SESS_ELINKED);
    assert_int_equal(b.called, 0);
}

static void test_paircode_wrong_code_then_right(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    flow_must(fx, flow_wait_for(fx, 0, SESS_QR_READY, NULL, 5000), "QR_READY");
    code_answer_t a = request_code(fx);
    assert_int_equal(a.rc, 0);
    const fakewa_wa_stats_t *st = fakewa_wa_stats(fx->srv);
    /* one character off: the phone cannot open the key bundle */
    char wrong[16];
    snprintf(wrong, sizeof(wrong), "%s", a.code);
    wrong[0] = wrong[0] == 'Z' ? 'Y' : 'Z';
    char why[128];
    assert_int_equal(fakewa_wa_pair_code(fx->srv, wrong, why, sizeof(why)), 0);
    wait_count(fx, &st->paircode_refused, 1, "the wrong code refused");
    assert_int_equal(st->paircode_accepted, 0);
    assert_int_equal(st->paired, 0);
    /* WhatsApp refreshes the QR secret meanwhile: the code flow keeps it */
    int refreshes = st->refreshes;
    fakewa_wa_fault(fx->srv, FAKEWA_REFRESH);
    wait_count(fx, &st->refreshes, refreshes + 1, "companion_reg_refresh");
    flow_run_for(fx, 100);
    sess_snapshot_t *snap = sess_current(fx->s);
    assert_int_equal(snap->state, SESS_QR_READY); /* still waiting, QR and code shown */
    assert_non_null(snap->link_code);
    sess_snapshot_unref(snap);
    /* the right code on the second try links */
    int from = fx->nseen;
    assert_int_equal(fakewa_wa_pair_code(fx->srv, a.code, why, sizeof(why)), 0);
    flow_must(fx, flow_wait_for(fx, from, SESS_CONNECTED, NULL, 5000),
              "CONNECTED with the right code");
    assert_int_equal(st->paircode_refused, 1);
    assert_int_equal(st->paircode_accepted, 1);
    assert_int_equal(st->paired, 1);
    assert_int_equal(st->pair_errors, 0);
    for (int i = 0; i < fx->nseen; i++)
        assert_string_not_equal(fx->detail[i], "pairing_failed");
}

static void test_paircode_tries_and_rate(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    flow_must(fx, flow_wait_for(fx, 0, SESS_QR_READY, NULL, 5000), "QR_READY");
    code_answer_t a = request_code(fx);
    assert_int_equal(a.rc, 0);
    /* a second request within 10 s is refused without reaching WhatsApp */
    code_answer_t b = {0};
    assert_int_equal(sess_pairing_code(fx->s, "15551234567", on_code, &b), SESS_EBUSY);
    assert_int_equal(sess_pairing_code(fx->s, "+15551234567", on_code, &b), SESS_EINVAL);
    assert_int_equal(sess_pairing_code(fx->s, "", on_code, &b), SESS_EINVAL);
    assert_int_equal(b.called, 0);
    const fakewa_wa_stats_t *st = fakewa_wa_stats(fx->srv);
    assert_int_equal(st->paircode_hellos, 1);
    /* three wrong codes, then the phone gives up on this code */
    char why[128], wrong[16];
    snprintf(wrong, sizeof(wrong), "%s", a.code);
    for (int i = 0; i < 3; i++) {
        /* a different character each time, never the code's own (which
         * would make the "wrong" code right) */
        const char *alt = "ZYXW";
        size_t k = (size_t)i;
        while (alt[k] == a.code[8])
            k++;
        wrong[8] = alt[k];
        assert_int_equal(fakewa_wa_pair_code(fx->srv, wrong, why, sizeof(why)), 0);
        wait_count(fx, &st->paircode_refused, i + 1, "a wrong code refused");
    }
    assert_int_equal(fakewa_wa_pair_code(fx->srv, a.code, why, sizeof(why)), -1);
    assert_int_equal(st->paircode_too_many, 1);
    /* the QR stays usable meanwhile: a scan links */
    sess_snapshot_t *snap = sess_current(fx->s);
    char qr[400];
    snprintf(qr, sizeof(qr), "%s", snap->qr->text);
    sess_snapshot_unref(snap);
    int from = fx->nseen;
    assert_int_equal(fakewa_wa_scan(fx->srv, qr, why, sizeof(why)), 0);
    flow_must(fx, flow_wait_for(fx, from, SESS_CONNECTED, NULL, 5000), "CONNECTED by a scan");
    assert_int_equal(st->paircode_accepted, 0);
}

/* WhatsApp refuses companion_hello (here: not the phone's number): the
 * request fails with SESS_EREFUSED, the QR stays. */
static void test_paircode_refused(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    flow_must(fx, flow_wait_for(fx, 0, SESS_QR_READY, NULL, 5000), "QR_READY");
    code_answer_t a = {0};
    assert_int_equal(sess_pairing_code(fx->s, "15550000000", on_code, &a), 0);
    flow_guard(fx, 10000);
    while (!a.called && !fx->timed_out)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->guard);
    assert_int_equal(a.called, 1);
    assert_int_equal(a.rc, SESS_EREFUSED);
    assert_string_equal(a.code, "");
    assert_int_equal(fakewa_wa_stats(fx->srv)->paircode_bad_hellos, 1);
    sess_snapshot_t *snap = sess_current(fx->s);
    assert_int_equal(snap->state, SESS_QR_READY);
    assert_null(snap->link_code);
    sess_snapshot_unref(snap);
    char why[128];
    assert_int_equal(fakewa_wa_pair_code(fx->srv, "ABCD-EFGH", why, sizeof(why)), -1);
}

/* Behind the connection gate (CONNECT_RATE): the request waits with the
 * connection for its turn, then gets its code; one still waiting when the
 * session stops ends with SESS_ESTOPPED. */
static void test_paircode_behind_gate(void **state)
{
    fx_t *fx = *state;
    fx->gate = sess_gate_new(&fx->loop, 1);
    for (int round = 0; round < 2; round++) {
        flow_start(fx); /* the first round takes the gate's only token */
        flow_must(fx, flow_wait_for(fx, 0, SESS_QR_READY, NULL, 5000), "QR_READY");
        assert_int_equal(sess_logout(fx->s), 0);
        int d = flow_wait_for(fx, 0, SESS_DISCONNECTED, "logged_out", 3000);
        flow_must(fx, d, "DISCONNECTED");
        if (round == 0) {
            code_answer_t w = {0};
            assert_int_equal(sess_pairing_code(fx->s, "15551234567", on_code, &w), 0);
            assert_int_equal(w.called, 0);
            flow_must(fx, flow_wait_for(fx, d, SESS_CONNECTING, "queued", 1), "CONNECTING/queued");
            flow_stop(fx);
            assert_int_equal(w.called, 1);
            assert_int_equal(w.rc, SESS_ESTOPPED);
            continue;
        }
        code_answer_t a = request_code(fx);
        assert_int_equal(a.rc, 0);
        flow_must(fx, flow_wait_for(fx, d, SESS_CONNECTING, "queued", 1), "CONNECTING/queued");
        assert_code_published(fx, &a);
        char why[128];
        assert_int_equal(fakewa_wa_pair_code(fx->srv, a.code, why, sizeof(why)), 0);
        flow_must(fx, flow_wait_for(fx, d, SESS_CONNECTED, NULL, 5000), "CONNECTED");
    }
    flow_stop(fx);
    sess_gate_close(fx->gate);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    sess_gate_free(fx->gate);
    fx->gate = NULL;
}

/* From DISCONNECTED (logged out): the request starts a registration. */
static void test_paircode_starts_registration(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    flow_must(fx, flow_wait_for(fx, 0, SESS_QR_READY, NULL, 5000), "QR_READY");
    assert_int_equal(sess_logout(fx->s), 0);
    int d = flow_wait_for(fx, 0, SESS_DISCONNECTED, "logged_out", 3000);
    flow_must(fx, d, "DISCONNECTED");
    int regs = fakewa_wa_stats(fx->srv)->registrations;
    code_answer_t a = request_code(fx);
    assert_int_equal(a.rc, 0);
    assert_int_equal(fakewa_wa_stats(fx->srv)->registrations, regs + 1);
    flow_must(fx, flow_wait_for(fx, d, SESS_CONNECTING, "registering", 1),
              "CONNECTING/registering");
    flow_must(fx, flow_wait_for(fx, d, SESS_QR_READY, NULL, 1), "QR_READY before the code");
    assert_code_published(fx, &a);
    char why[128];
    assert_int_equal(fakewa_wa_pair_code(fx->srv, a.code, why, sizeof(why)), 0);
    flow_must(fx, flow_wait_for(fx, d, SESS_CONNECTED, NULL, 5000), "CONNECTED");
}

static void test_backoff_grows_and_caps(void **state)
{
    (void)state;
    unsigned prev = 0;
    for (unsigned a = 0; a < 12; a++) {
        unsigned lo = sess_driver_backoff_ms(1000, 60000, a, 0);
        unsigned hi = sess_driver_backoff_ms(1000, 60000, a, 40);
        assert_true(lo <= hi);
        assert_true(hi <= 72000);                        /* cap + 20% */
        assert_true(lo >= (a < 6 ? 800u << a : 48000u)); /* grows until the cap */
        assert_true(lo >= prev * 8 / 10 || lo >= 48000);
        prev = lo;
    }
}

/* --- the client as WhatsApp expects it in 2026 (protocol doc 11) --- */

/* Pings start with the handshake: a QR on screen is no reason to be
 * silent (11.3). */
static void test_pings_while_qr_shown(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    flow_must(fx, flow_wait_for(fx, 0, SESS_QR_READY, NULL, 3000), "QR_READY");
    flow_run_for(fx, 900);
    assert_true(fakewa_wa_stats(fx->srv)->pings_unpaired >= 2);
    assert_int_equal(fakewa_wa_stats(fx->srv)->logins_ok, 0);
}

/* One ping without an answer is forgiven; the link stays up. */
static void test_one_lost_ping_forgiven(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    int c = flow_pair(fx);
    int conns = fakewa_wa_stats(fx->srv)->connections;
    fakewa_wa_fault(fx->srv, FAKEWA_DROP_PING);
    flow_run_for(fx, 2500); /* several ping periods and timeouts */
    assert_int_equal(fakewa_wa_stats(fx->srv)->pings_dropped, 1);
    assert_int_equal(fakewa_wa_stats(fx->srv)->connections, conns);
    for (int i = c + 1; i < fx->nseen; i++)
        assert_int_not_equal(fx->seen[i], SESS_DISCONNECTED);
    sess_snapshot_t *s = sess_current(fx->s);
    assert_int_equal(s->state, SESS_CONNECTED);
    sess_snapshot_unref(s);
}

/* A server that completes the handshake and then says nothing: the login
 * watchdog ends the connection with "timeout" and the session retries. */
static void test_silent_server_times_out_and_retries(void **state)
{
    fx_t *fx = *state;
    fx->login_timeout_ms = 700;
    fakewa_wa_fault(fx->srv, FAKEWA_SILENT);
    flow_start(fx);
    int d = flow_wait_for(fx, 0, SESS_DISCONNECTED, "timeout", 3000);
    flow_must(fx, d, "DISCONNECTED/timeout");
    flow_must(fx, flow_wait_for(fx, d, SESS_QR_READY, NULL, 3000), "QR_READY on the retry");
    assert_int_equal(fakewa_wa_stats(fx->srv)->connections, 2);
}

/* A stanza that decrypts but does not decode is dropped; the connection
 * stays (11.4). */
static void test_garbage_stanza_keeps_connection(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    int c = flow_pair(fx);
    int conns = fakewa_wa_stats(fx->srv)->connections;
    int pings = fakewa_wa_stats(fx->srv)->pings;
    fakewa_wa_fault(fx->srv, FAKEWA_BAD_NODE);
    flow_run_for(fx, 800);
    assert_int_equal(fakewa_wa_stats(fx->srv)->bad_nodes_sent, 1);
    assert_int_equal(fakewa_wa_stats(fx->srv)->connections, conns);
    assert_true(fakewa_wa_stats(fx->srv)->pings > pings); /* still talking */
    for (int i = c + 1; i < fx->nseen; i++)
        assert_int_not_equal(fx->seen[i], SESS_DISCONNECTED);
}

/* Every stanza class WhatsApp expects acknowledged is acked, with the
 * attributes whatsmeow puts in the ack (6.6). */
static void test_every_stanza_acked(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    flow_pair(fx);
    fakewa_wa_fault(fx->srv, FAKEWA_STANZAS);
    flow_run_for(fx, 800);
    const fakewa_wa_stats_t *st = fakewa_wa_stats(fx->srv);
    assert_int_equal(st->acks_bad, 0);
    assert_int_equal(st->unacked, 0);
    assert_int_equal(st->acks_ok, 15); /* every stanza fakewa sent */
}

/* <success> on a connection that is not paired is ignored (11.4). */
static void test_success_before_pairing_ignored(void **state)
{
    fx_t *fx = *state;
    fakewa_wa_fault(fx->srv, FAKEWA_EARLY_SUCCESS);
    flow_start(fx);
    int q = flow_wait_for(fx, 0, SESS_QR_READY, NULL, 3000);
    flow_must(fx, q, "QR_READY");
    for (int i = 0; i < q; i++)
        assert_int_not_equal(fx->seen[i], SESS_CONNECTED);
    char why[128];
    assert_int_equal(fakewa_wa_scan(fx->srv, fx->qr[q], why, sizeof(why)), 0);
    flow_must(fx, flow_wait_for(fx, q, SESS_CONNECTED, NULL, 3000), "CONNECTED after the scan");
}

/* A bare stream:error 401 without device_removed keeps the credentials and
 * is retried, as whatsmeow does; the login then succeeds (11.4). */
static void test_bare_401_keeps_credentials(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    int c = flow_pair(fx);
    fakewa_wa_fault(fx->srv, FAKEWA_BARE_401);
    int d = flow_wait_for(fx, c + 1, SESS_DISCONNECTED, "stream_error", 3000);
    flow_must(fx, d, "DISCONNECTED/stream_error");
    flow_must(fx, flow_wait_for(fx, d, SESS_CONNECTED, NULL, 4000), "CONNECTED again");
    for (int i = c; i < fx->nseen; i++)
        assert_int_not_equal(fx->seen[i], SESS_QR_READY);
    assert_int_equal(fakewa_wa_stats(fx->srv)->logins_ok, 2);
    assert_int_equal(fakewa_wa_stats(fx->srv)->paired, 1);
}

/* A hosted account: HMAC and account signature with the hosted prefixes,
 * our device signature still with [6,1] (11.4). */
static void test_hosted_account_links(void **state)
{
    fx_t *fx = *state;
    fakewa_wa_fault(fx->srv, FAKEWA_HOSTED);
    flow_start(fx);
    flow_pair(fx);
    assert_int_equal(fakewa_wa_stats(fx->srv)->bad_device_sigs, 0);
    assert_int_equal(fakewa_wa_stats(fx->srv)->paired, 1);
}

/* The QR text's adv secret field (the fourth comma-separated one). */
static void qr_secret(const char *qr, char *out, size_t len)
{
    const char *p = qr;
    for (int i = 0; i < 3 && p; i++)
        p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
    assert_non_null(p);
    snprintf(out, len, "%.*s", (int)strcspn(p, ","), p);
}

/* companion_reg_refresh right after the phone scanned (as WhatsApp does
 * since mid 2026): the QR is redrawn with a new secret (same ref, same
 * expiry), the new secret is persisted, the refresh is acked, a scan of the
 * old QR is refused and a scan of the new one links (11.1). */
static void test_refresh_redraws_qr(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    int q1 = flow_wait_for(fx, 0, SESS_QR_READY, NULL, 3000);
    flow_must(fx, q1, "QR_READY");
    sess_snapshot_t *s1 = sess_current(fx->s);
    int64_t exp1 = s1->qr->expires_at_ms;
    sess_snapshot_unref(s1);
    fakewa_wa_fault(fx->srv, FAKEWA_REFRESH_ON_SCAN);
    char why[128];
    assert_int_equal(fakewa_wa_scan(fx->srv, fx->qr[q1], why, sizeof(why)), 1);
    int q2 = flow_wait_for(fx, q1 + 1, SESS_QR_READY, NULL, 2000);
    flow_must(fx, q2, "the redrawn QR");
    sess_snapshot_t *s2 = sess_current(fx->s);
    assert_int_equal(s2->qr->expires_at_ms, exp1); /* same remaining lifetime */
    sess_snapshot_unref(s2);
    char a[64], b[64];
    qr_secret(fx->qr[q1], a, sizeof(a));
    qr_secret(fx->qr[q2], b, sizeof(b));
    assert_string_not_equal(a, b);
    /* same ref: the text up to the first comma */
    assert_int_equal(strcspn(fx->qr[q1], ","), strcspn(fx->qr[q2], ","));
    assert_memory_equal(fx->qr[q1], fx->qr[q2], strcspn(fx->qr[q1], ","));
    /* persisted before anyone can scan it */
    store_creds_t cr;
    flow_settle(fx);
    assert_int_equal(store_load(fx->store, "default", &cr), 0);
    char *stored = wa_pair_b64(cr.adv_secret, 32);
    assert_string_equal(stored, b);
    free(stored);
    store_creds_free(&cr);
    flow_run_for(fx, 200);
    assert_int_equal(fakewa_wa_stats(fx->srv)->unacked, 0); /* the refresh was acked */
    assert_int_equal(fakewa_wa_scan(fx->srv, fx->qr[q1], why, sizeof(why)), -1);
    assert_non_null(strstr(why, "retired"));
    assert_int_equal(fakewa_wa_scan(fx->srv, fx->qr[q2], why, sizeof(why)), 0);
    flow_must(fx, flow_wait_for(fx, q2, SESS_CONNECTED, NULL, 3000), "CONNECTED with the new QR");
}

/* Edge routing info from the server is sent as the "ED" intro prefix on
 * the next connections, also after a restart of the service (1.2). */
static void test_edge_routing_prefix(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    int c = flow_pair(fx);
    assert_int_equal(fakewa_wa_stats(fx->srv)->routed, 0);
    fakewa_wa_fault(fx->srv, FAKEWA_ROUTING);
    flow_run_for(fx, 200);
    assert_int_equal(fakewa_wa_stats(fx->srv)->routing_sent, 1);
    fakewa_wa_fault(fx->srv, FAKEWA_RESTART);
    flow_must(fx, flow_wait_for(fx, c + 1, SESS_CONNECTED, NULL, 3000), "CONNECTED after 515");
    assert_int_equal(fakewa_wa_stats(fx->srv)->routed, 1);
    flow_stop(fx);
    flow_start(fx);
    flow_must(fx, flow_wait_for(fx, 0, SESS_CONNECTED, NULL, 3000), "CONNECTED after a restart");
    assert_int_equal(fakewa_wa_stats(fx->srv)->routed, 2);
}

/* Logout while WhatsApp cannot be reached: DISCONNECTED/logged_out at once,
 * the identity gone, and the removal request sent on the next connection
 * WhatsApp accepts; then nothing is left. */
static void test_logout_while_offline(void **state)
{
    fx_t *fx = *state;
    flow_start(fx);
    int c = flow_pair(fx);
    fakewa_wa_fault(fx->srv, FAKEWA_OFFLINE);
    int d = flow_wait_for(fx, c + 1, SESS_DISCONNECTED, NULL, 3000);
    flow_must(fx, d, "DISCONNECTED when the server went away");
    assert_int_equal(sess_logout(fx->s), 0);
    sess_snapshot_t *s = sess_current(fx->s);
    assert_int_equal(s->state, SESS_DISCONNECTED);
    assert_string_equal(s->detail, "logged_out");
    assert_false(s->linked);
    sess_snapshot_unref(s);
    store_creds_t cr;
    flow_settle(fx);
    assert_int_equal(store_load(fx->store, "default", &cr), STORE_ENOTFOUND);
    store_removal_t rm[4];
    size_t n = 0;
    assert_int_equal(store_removals_list(fx->store, rm, 4, &n), 0);
    assert_int_equal(n, 1);
    flow_run_for(fx, 600); /* offline: retries fail */
    assert_int_equal(fakewa_wa_stats(fx->srv)->logouts, 0);
    fakewa_wa_fault(fx->srv, FAKEWA_ONLINE);
    flow_guard(fx, 6000);
    while (!fx->timed_out && fakewa_wa_stats(fx->srv)->logouts == 0)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->guard);
    assert_int_equal(fakewa_wa_stats(fx->srv)->logouts, 1);
    flow_run_for(fx, 300);
    char *js = fakewa_wa_state_json(fx->srv);
    assert_non_null(strstr(js, "\"devices\":[]"));
    free(js);
    flow_settle(fx);
    assert_int_equal(store_removals_list(fx->store, rm, 4, &n), 0);
    assert_int_equal(n, 0);
    s = sess_current(fx->s);
    assert_int_equal(s->state, SESS_DISCONNECTED);
    assert_string_equal(s->detail, "logged_out");
    sess_snapshot_unref(s);
}

/* At the product's defaults (ping every 20 s +-10%, 10 s to answer, two
 * misses) a server that stops answering is noticed within 60 s. */
static void test_stall_detected_within_60s_at_defaults(void **state)
{
    fx_t *fx = *state;
    fx->ka_defaults = 1;
    flow_start(fx);
    int c = flow_pair(fx);
    int64_t t0 = sess_now_ms();
    fakewa_wa_fault(fx->srv, FAKEWA_STALL);
    int d = flow_wait_for(fx, c + 1, SESS_DISCONNECTED, "keepalive_timeout", 62000);
    flow_must(fx, d, "keepalive_timeout");
    int64_t took = sess_now_ms() - t0;
    fprintf(stderr, "stall noticed after %lld ms\n", (long long)took);
    assert_true(took <= 60000);
    assert_true(took >= 20000); /* not before two pings could fail */
}

/* Stopped and freed while its first store jobs (the load of the identity)
 * are still queued: their callbacks end without the driver; the next
 * start loads what is stored and links as usual. Then a logout while
 * offline, stopped before its write has been made: the write is made
 * anyway (the stop waits for it). */
static void test_stop_with_jobs_pending(void **state)
{
    fx_t *fx = *state;
    flow_start(fx); /* nothing run: the load's callback is pending */
    flow_stop(fx);
    flow_start(fx);
    int c = flow_pair(fx);
    fakewa_wa_fault(fx->srv, FAKEWA_OFFLINE);
    flow_must(fx, flow_wait_for(fx, c + 1, SESS_DISCONNECTED, NULL, 3000), "DISCONNECTED");
    assert_int_equal(sess_logout(fx->s), 0);
    flow_stop(fx); /* at once */
    char err[256];
    store_t *st;
    assert_int_equal(store_open(fx->dir, &st, err, sizeof(err)), 0);
    store_creds_t cr;
    assert_int_equal(store_load(st, "default", &cr), STORE_ENOTFOUND);
    store_removal_t rm[4];
    size_t n = 0;
    assert_int_equal(store_removals_list(st, rm, 4, &n), 0);
    assert_int_equal(n, 1);
    store_close(st);
    fakewa_wa_fault(fx->srv, FAKEWA_ONLINE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pair_then_restart_logs_in, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_frames_through_pairing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merged_frames_through_pairing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qr_rotation_and_timeout, setup_short_qr, teardown),
        cmocka_unit_test_setup_teardown(test_expired_ref_refused, setup_short_qr, teardown),
        cmocka_unit_test_setup_teardown(test_bad_hmac_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_signature_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_logged_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_server_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_stall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_outdated_and_banned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logout_wipes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paircode_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paircode_wrong_code_then_right, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paircode_tries_and_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paircode_starts_registration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paircode_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paircode_behind_gate, setup, teardown),
        cmocka_unit_test(test_backoff_grows_and_caps),
        cmocka_unit_test_setup_teardown(test_pings_while_qr_shown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_lost_ping_forgiven, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_server_times_out_and_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_stanza_keeps_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_stanza_acked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_success_before_pairing_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bare_401_keeps_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hosted_account_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_redraws_qr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edge_routing_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logout_while_offline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_jobs_pending, setup, teardown),
    };
    /* the slow one runs as its own target (flow_keepalive_test) */
    const struct CMUnitTest slow[] = {
        cmocka_unit_test_setup_teardown(test_stall_detected_within_60s_at_defaults, setup,
                                        teardown),
    };
    if (getenv("WA_TEST_FILTER"))
        cmocka_set_test_filter(getenv("WA_TEST_FILTER"));
#ifdef FLOW_SLOW
    (void)tests;
    return cmocka_run_group_tests(slow, NULL, NULL);
#else
    (void)slow;
    return cmocka_run_group_tests(tests, NULL, NULL);
#endif
}
