/* Unit tests of the gRPC protobuf views (api/pb.h): the linked account and
 * the linking secrets only for callers with a key, ListSessions' state
 * filter, the list view, the replies' messages from api/ results and the
 * error details. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "api/pb.h"

typedef struct {
    uv_loop_t loop;
    sess_registry_t *reg;
    sess_t *s;
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    uv_loop_init(&fx->loop);
    fx->reg = sess_registry_new(&fx->loop, NULL);
    fx->s = sess_registry_add(fx->reg, "sales");
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    sess_registry_close(fx->reg);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    sess_registry_free(fx->reg);
    uv_loop_close(&fx->loop);
    free(fx);
    return 0;
}

/* Publishes a linked, connected state with a pairing code still valid. */
static sess_snapshot_t *linked(fx_t *fx)
{
    sess_account_t acc = {.jid = "15551234567:3@s.whatsapp.net", .phone = "15551234567"};
    sess_change_t ch = {.state = SESS_QR_READY,
                        .account = &acc,
                        .link_code = "ABCD-EFGH",
                        .link_code_expires_at_ms = sess_now_ms() + 60000};
    assert_int_equal(sess_publish(fx->s, &ch), 0);
    return sess_current(fx->s);
}

static void test_account_by_scope(void **state)
{
    fx_t *fx = *state;
    sess_snapshot_t *snap = linked(fx);
    api_pb_status_t v;
    api_pb_status(&v, snap, API_SCOPE_NONE, sess_now_ms());
    assert_string_equal(v.st.session, "sales");
    assert_int_equal(v.st.state, WAGATEWAY__V1__STATE__QR_READY);
    assert_null(v.st.account);
    assert_string_equal(v.st.link_code, "");
    assert_int_equal(v.st.link_code_expires_in, 0);
    for (api_scope_t sc = API_SCOPE_SESSION; sc <= API_SCOPE_ADMIN; sc++) {
        api_pb_status(&v, snap, sc, sess_now_ms());
        assert_non_null(v.st.account);
        assert_string_equal(v.st.account->phone, "15551234567");
        assert_string_equal(v.st.link_code, "ABCD-EFGH");
        assert_true(v.st.link_code_expires_in > 0 && v.st.link_code_expires_in <= 60);
    }
    assert_false(api_pb_sees_account(API_SCOPE_NONE));
    assert_true(api_pb_sees_account(API_SCOPE_SESSION));
    sess_snapshot_unref(snap);
}

static void test_state_filter(void **state)
{
    (void)state;
    const char *name = "x";
    assert_int_equal(api_pb_state_filter(WAGATEWAY__V1__STATE__STATE_UNSPECIFIED, &name), 0);
    assert_null(name);
    assert_int_equal(api_pb_state_filter(WAGATEWAY__V1__STATE__QR_READY, &name), 0);
    assert_string_equal(name, "QR_READY");
    assert_int_equal(api_pb_state_filter(WAGATEWAY__V1__STATE__CONNECTED, &name), 0);
    assert_string_equal(name, "CONNECTED");
    assert_int_equal(api_pb_state_filter(5, &name), -1);
    assert_int_equal(api_pb_state_filter(-1, &name), -1);
}

static void test_sessions_view(void **state)
{
    fx_t *fx = *state;
    sess_snapshot_unref(linked(fx));
    assert_non_null(sess_registry_add(fx->reg, "support"));
    size_t n = 0;
    sess_snapshot_t **v = sess_registry_snapshots(fx->reg, &n);
    assert_int_equal(n, 2);
    api_pb_sessions_t rep;
    assert_int_equal(api_pb_sessions(&rep, v, n, API_SCOPE_ADMIN, sess_now_ms()), 0);
    assert_int_equal(rep.rep.n_sessions, 2);
    assert_string_equal(rep.rep.sessions[0]->session, "sales");
    assert_non_null(rep.rep.sessions[0]->account);
    assert_string_equal(rep.rep.sessions[1]->session, "support");
    assert_null(rep.rep.sessions[1]->account);
    /* it packs and unpacks */
    size_t len = protobuf_c_message_get_packed_size(&rep.rep.base);
    uint8_t *buf = malloc(len);
    protobuf_c_message_pack(&rep.rep.base, buf);
    Wagateway__V1__ListSessionsReply *back =
        wagateway__v1__list_sessions_reply__unpack(NULL, len, buf);
    assert_non_null(back);
    assert_int_equal(back->n_sessions, 2);
    assert_string_equal(back->sessions[1]->session, "support");
    wagateway__v1__list_sessions_reply__free_unpacked(back, NULL);
    free(buf);
    api_pb_sessions_clear(&rep);
    assert_int_equal(api_pb_sessions(&rep, v, 0, API_SCOPE_ADMIN, sess_now_ms()), 0);
    assert_int_equal(rep.rep.n_sessions, 0);
    api_pb_sessions_clear(&rep);
    sess_snapshots_free(v, n);
}

static void test_messages_and_errors(void **state)
{
    fx_t *fx = *state;
    sess_snapshot_t *snap = sess_current(fx->s);
    char buf[256];
    /* the message of api/'s result wins; defaults otherwise */
    api_result_t r = {API_OK, "Logged out (api)", snap};
    api_pb_logout_t lo;
    api_pb_logout(&lo, &r, sess_now_ms());
    assert_string_equal(lo.rep.message, "Logged out (api)");
    r.message = NULL;
    api_pb_logout(&lo, &r, sess_now_ms());
    assert_string_equal(lo.rep.message, "Logged out");
    api_pb_create_session_t cr;
    r.message = "Session created: keep its key";
    api_pb_create_session(&cr, &r, "the-key", sess_now_ms());
    assert_string_equal(cr.rep.key, "the-key");
    assert_string_equal(cr.rep.message, "Session created: keep its key");
    assert_string_equal(cr.rep.status->session, "sales");
    /* error details */
    api_result_t e = {API_ERR_NO_QR, NULL, snap};
    assert_string_equal(api_pb_error(&e, buf, sizeof(buf)), "no QR code in state DISCONNECTED");
    e.message = "No QR code: disconnected";
    assert_string_equal(api_pb_error(&e, buf, sizeof(buf)), "No QR code: disconnected");
    api_result_t nf = {API_ERR_NOT_FOUND, NULL, NULL};
    assert_string_equal(api_pb_error(&nf, buf, sizeof(buf)), api_code_message(API_ERR_NOT_FOUND));
    sess_change_t ch = {.state = SESS_DISCONNECTED, .detail = "unreachable"};
    assert_int_equal(sess_publish(fx->s, &ch), 0);
    sess_snapshot_t *down = sess_current(fx->s);
    api_result_t un = {API_ERR_UNREACHABLE, NULL, down};
    snprintf(buf, sizeof(buf), "x");
    char want[160];
    snprintf(want, sizeof(want), "%s: unreachable", api_code_message(API_ERR_UNREACHABLE));
    assert_string_equal(api_pb_error(&un, buf, sizeof(buf)), want);
    /* a tiny buffer is cut, never overrun */
    char small[8];
    assert_int_equal(strlen(api_pb_error(&un, small, sizeof(small))), sizeof(small) - 1);
    sess_snapshot_unref(down);
    sess_snapshot_unref(snap);
}

static void test_stream_end(void **state)
{
    fx_t *fx = *state;
    api_t *api = api_new(fx->reg, NULL);
    assert_non_null(api);
    api_result_t r = api_pb_stream_end(api, "sales");
    assert_int_equal(r.code, API_ERR_SHUTTING_DOWN);
    assert_null(r.snap);
    r = api_pb_stream_end(api, NULL);
    assert_int_equal(r.code, API_ERR_SHUTTING_DOWN);
    r = api_pb_stream_end(api, "gone");
    assert_int_equal(r.code, API_ERR_NOT_FOUND);
    assert_string_equal(r.message, "The session was deleted");
    api_free(api);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_account_by_scope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_view, setup, teardown),
        cmocka_unit_test_setup_teardown(test_messages_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_end, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
