/* The fake server's side of linking by pairing code (protocol doc 5.7,
 * 11.5), and the phone's: companion_hello is checked as WhatsApp checks it
 * (the number is the phone's, the noise key the connection's, the display
 * "Browser (OS)"; else 400) and answered with a pairing ref; the phone
 * "types" a code (fakewa_wa_pair_code, POST /control/pair-code): it unwraps
 * the companion's ephemeral key with it, wraps its own, sends primary_hello,
 * and on companion_finish opens the key bundle. A wrong code makes the bundle
 * unopenable: counted as refused, nothing more is sent, as a real phone
 * does. A bundle that opens yields the same adv secret on both sides; a
 * companion_reg_refresh (which must not rotate that secret any more) and
 * pair-success keyed by it follow. 3 tries per code, 180 s. Tests only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session/wa/crypto.h"
#include "session/wa/pair.h"
#include "session/wa/paircode.h"
#include "tests/fakewa/whatsapp_internal.h"

/* Per registration connection: the code the companion announced. */
typedef struct {
    uint8_t wrapped[WA_PAIRCODE_WRAPPED_LEN]; /* the companion's wrapped ephemeral key */
    char ref[40];
    int64_t hello_ms;
    int tries;
    int waiting;        /* a primary_hello was sent; its companion_finish is due */
    uint8_t shared[32]; /* X25519(phone ephemeral, what the typed code unwrapped) */
    int shared_ok;
} fpc_t;

void fakewa_pc_conn_free(conn_state_t *cs)
{
    if (cs->ext_paircode) {
        explicit_bzero(cs->ext_paircode, sizeof(fpc_t));
        free(cs->ext_paircode);
        cs->ext_paircode = NULL;
    }
}

/* The content of child `tag` when it has exactly `len` bytes (any length
 * when len is 0, then *out_len gets it). */
static const uint8_t *bytes_of(const wa_node_t *n, const char *tag, size_t len, size_t *out_len)
{
    const wa_node_t *c = wa_node_child(n, tag);
    size_t l = 0;
    const uint8_t *b = c ? wa_node_content(c, &l) : NULL;
    if (!b || (len && l != len))
        return NULL;
    if (out_len)
        *out_len = l;
    return b;
}

/* WhatsApp's check of companion_platform_display: "Browser (OS)", both
 * parts letters, digits, spaces, dots or dashes. */
static int display_valid(const uint8_t *b, size_t n)
{
    size_t open = 0;
    while (open < n && b[open] != '(')
        open++;
    if (open < 2 || open >= n || b[open - 1] != ' ' || b[n - 1] != ')' || n - open < 3)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (i == open || i == n - 1 || i == open - 1)
            continue;
        uint8_t ch = b[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == ' ' || ch == '.' || ch == '-'))
            return 0;
    }
    return b[0] != ' ' && b[open + 1] != ' ';
}

static void refuse(conn_state_t *cs, const wa_node_t *iq, const char *why)
{
    wa_node_t *e = wa_node_new("error");
    wa_node_set_attr(e, "code", "400");
    wa_node_set_attr(e, "text", "bad-request");
    cs->w->stats.paircode_bad_hellos++;
    fprintf(stderr, "fakewa: pairing-code request refused: %s\n", why);
    fakewa_wa_reply(cs, iq, "error", e);
}

static void companion_hello(conn_state_t *cs, const wa_node_t *iq, const wa_node_t *reg)
{
    fakewa_wa_t *w = cs->w;
    char want_jid[64];
    snprintf(want_jid, sizeof(want_jid), "%s@s.whatsapp.net", w->phone);
    const char *jid = wa_node_attr(reg, "jid");
    size_t dl = 0, pl = 0;
    const uint8_t *wrapped = bytes_of(reg, "link_code_pairing_wrapped_companion_ephemeral_pub",
                                      WA_PAIRCODE_WRAPPED_LEN, NULL);
    const uint8_t *noise = bytes_of(reg, "companion_server_auth_key_pub", 32, NULL);
    const uint8_t *pid = bytes_of(reg, "companion_platform_id", 0, &pl);
    const uint8_t *disp = bytes_of(reg, "companion_platform_display", 0, &dl);
    const char *why = NULL;
    if (!cs->registration)
        why = "not a registration connection";
    else if (!jid || strcmp(jid, want_jid))
        why = "not the phone's number";
    else if (!wrapped || !noise || !pid || pl < 1 || pl > 2 || !disp ||
             !bytes_of(reg, "link_code_pairing_nonce", 0, NULL) ||
             !wa_node_attr(reg, "should_show_push_notification"))
        why = "malformed companion_hello";
    else if (memcmp(noise, cs->noise_pub, 32))
        why = "companion_server_auth_key_pub is not the connection's noise key";
    else if (!display_valid(disp, dl))
        why = "companion_platform_display is not \"Browser (OS)\"";
    if (why) {
        refuse(cs, iq, why);
        return;
    }
    fpc_t *p = cs->ext_paircode;
    if (!p && !(p = cs->ext_paircode = calloc(1, sizeof(*p)))) {
        refuse(cs, iq, "out of memory");
        return;
    }
    memset(p, 0, sizeof(*p)); /* a new code replaces the previous one */
    memcpy(p->wrapped, wrapped, sizeof(p->wrapped));
    uint8_t rnd[18];
    wa_crypto_random(rnd, sizeof(rnd));
    char *b = wa_pair_b64(rnd, sizeof(rnd));
    snprintf(p->ref, sizeof(p->ref), "2@%s", b ? b : "x");
    free(b);
    p->hello_ms = fakewa_wa_now_ms();
    w->stats.paircode_hellos++;
    wa_node_t *r = wa_node_new("link_code_companion_reg");
    wa_node_set_bytes(wa_node_add(r, "link_code_pairing_ref"), p->ref, strlen(p->ref));
    fakewa_wa_reply(cs, iq, "result", r);
}

/* The phone reads the key bundle. */
static void companion_finish(conn_state_t *cs, const wa_node_t *iq, const wa_node_t *reg)
{
    fakewa_wa_t *w = cs->w;
    fpc_t *p = cs->ext_paircode;
    size_t rl = 0, bl = 0;
    const uint8_t *ref = bytes_of(reg, "link_code_pairing_ref", 0, &rl);
    const uint8_t *bundle = bytes_of(reg, "link_code_pairing_wrapped_key_bundle", 0, &bl);
    const uint8_t *ident = bytes_of(reg, "companion_identity_public", 32, NULL);
    if (!p || !p->waiting || !ref || rl != strlen(p->ref) || memcmp(ref, p->ref, rl) || !bundle ||
        !ident) {
        wa_node_t *e = wa_node_new("error");
        wa_node_set_attr(e, "code", "400");
        wa_node_set_attr(e, "text", "bad-request");
        fakewa_wa_reply(cs, iq, "error", e);
        w->stats.paircode_bad_finishes++;
        return;
    }
    fakewa_wa_reply(cs, iq, "result", NULL); /* the server relays; the phone decides */
    p->waiting = 0;
    uint8_t plain[WA_PAIRCODE_BUNDLE_PLAIN_LEN], ident_shared[32], adv[32];
    int ok = p->shared_ok && wa_paircode_bundle_open(p->shared, bundle, bl, plain) == 0 &&
             !memcmp(plain, ident, 32) && !memcmp(plain + 32, w->phone_ident.pub, 32) &&
             wa_crypto_x25519(w->phone_ident.priv, ident, ident_shared) == 0 &&
             wa_paircode_adv_secret(p->shared, ident_shared, plain + 64, adv) == 0;
    if (!ok) {
        w->stats.paircode_refused++; /* the phone: "wrong code" */
        return;
    }
    w->stats.paircode_accepted++;
    /* WhatsApp's secret refresh lands in this window too (protocol doc
     * 11.1): a companion that rotated now would fail its own HMAC check */
    wa_node_t *r = fakewa_wa_stanza(w, "notification", "s.whatsapp.net", "companion_reg_refresh");
    wa_node_add(r, "companion_reg_refresh");
    w->stats.refreshes++;
    fakewa_wa_send_expecting_ack(cs, r);
    fakewa_wa_send_pair_success(cs, ident, adv);
    explicit_bzero(adv, sizeof(adv));
}

void fakewa_pc_iq(conn_state_t *cs, const wa_node_t *iq)
{
    const wa_node_t *reg = wa_node_child(iq, "link_code_companion_reg");
    const char *stage = wa_node_attr(reg, "stage");
    const char *type = wa_node_attr(iq, "type");
    if (type && !strcmp(type, "set") && stage && !strcmp(stage, "companion_hello"))
        companion_hello(cs, iq, reg);
    else if (type && !strcmp(type, "set") && stage && !strcmp(stage, "companion_finish"))
        companion_finish(cs, iq, reg);
    else
        refuse(cs, iq, "unknown link_code_companion_reg stage");
}

int fakewa_wa_pair_code(fakewa_wa_t *w, const char *typed, char *why, size_t whylen)
{
    char code[WA_PAIRCODE_CHARS + 1];
    if (wa_paircode_normalize(typed, code) != 0) {
        snprintf(why, whylen, "not a pairing code");
        return -1;
    }
    conn_state_t *cs = NULL;
    for (conn_state_t *c = w->conns; c; c = c->next) {
        fpc_t *p = c->ext_paircode;
        if (p && (!cs || p->hello_ms > ((fpc_t *)cs->ext_paircode)->hello_ms))
            cs = c;
    }
    if (!cs) {
        snprintf(why, whylen, "no pairing code was requested for this number");
        return -1;
    }
    fpc_t *p = cs->ext_paircode;
    if (fakewa_wa_now_ms() - p->hello_ms > WA_PAIRCODE_VALID_MS) {
        snprintf(why, whylen, "the code expired");
        return -1;
    }
    if (p->tries >= WA_PAIRCODE_MAX_HELLOS) {
        w->stats.paircode_too_many++;
        snprintf(why, whylen, "too many tries for this code");
        return -1;
    }
    p->tries++;
    /* what the typed code makes of the companion's key, and the phone's own */
    uint8_t comp_eph[32], salt[32], iv[16], wrapped[WA_PAIRCODE_WRAPPED_LEN];
    wa_keypair_t eph;
    if (wa_paircode_unwrap(code, p->wrapped, comp_eph) || wa_crypto_keypair_generate(&eph) ||
        wa_crypto_random(salt, 32) || wa_crypto_random(iv, 16) ||
        wa_paircode_wrap(code, salt, iv, eph.pub, wrapped)) {
        snprintf(why, whylen, "crypto failure");
        return -1;
    }
    p->shared_ok = wa_crypto_x25519(eph.priv, comp_eph, p->shared) == 0;
    p->waiting = 1;
    explicit_bzero(&eph, sizeof(eph));
    wa_node_t *n = fakewa_wa_stanza(w, "notification", "s.whatsapp.net", "link_code_companion_reg");
    wa_node_t *r = wa_node_add(n, "link_code_companion_reg");
    wa_node_set_attr(r, "stage", "primary_hello");
    wa_node_set_bytes(wa_node_add(r, "link_code_pairing_ref"), p->ref, strlen(p->ref));
    wa_node_set_bytes(wa_node_add(r, "link_code_pairing_wrapped_primary_ephemeral_pub"), wrapped,
                      sizeof(wrapped));
    wa_node_set_bytes(wa_node_add(r, "primary_identity_pub"), w->phone_ident.pub, 32);
    w->stats.paircode_entries++;
    fakewa_wa_send_expecting_ack(cs, n);
    return 0;
}
