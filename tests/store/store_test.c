/* Tests of the credential store: round trips, file modes, wipe scope,
 * pre-keys, refusal of newer and corrupt files (left byte-for-byte as they
 * were), and crash consistency under SIGKILL at random moments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "session/store/store.h"

static char dir[512];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "%s/storeXXXXXX",
             getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

static void fill(store_creds_t *c, uint8_t v)
{
    memset(c, 0, sizeof(*c));
    memset(c->noise_priv, v, 32);
    memset(c->noise_pub, v + 1, 32);
    memset(c->ident_priv, v + 2, 32);
    memset(c->ident_pub, v + 3, 32);
    memset(c->spk_priv, v + 4, 32);
    memset(c->spk_pub, v + 5, 32);
    memset(c->spk_sig, v + 6, 64);
    memset(c->adv_secret, v + 7, 32);
    c->spk_id = 1;
    c->reg_id = 1234u + v;
    c->next_prekey_id = 1;
}

static store_t *open_ok(void)
{
    store_t *st;
    char err[512];
    int rc = store_open(dir, &st, err, sizeof(err));
    if (rc)
        fail_msg("store_open: %s", err);
    return st;
}

static void test_round_trip_and_modes(void **state)
{
    (void)state;
    store_t *st = open_ok();
    store_creds_t c, back;
    assert_int_equal(store_load(st, "default", &back), STORE_ENOTFOUND);
    fill(&c, 10);
    assert_int_equal(store_save(st, "default", &c), 0);
    assert_int_equal(store_load(st, "default", &back), 0);
    assert_memory_equal(back.noise_priv, c.noise_priv, 32);
    assert_memory_equal(back.spk_sig, c.spk_sig, 64);
    assert_int_equal(back.reg_id, 1244);
    assert_null(back.jid);
    store_creds_free(&back);
    static const uint8_t account[] = {1, 2, 3, 4};
    assert_int_equal(store_save_pairing(st, "default", account, 4, "1555:7@s.whatsapp.net",
                                        "99:7@lid", "android", NULL, "Ann"),
                     0);
    assert_int_equal(store_save_pairing(st, "nobody", account, 4, "x@s", NULL, NULL, NULL, NULL),
                     STORE_ENOTFOUND);
    store_close(st);
    st = open_ok(); /* survives a reopen */
    assert_int_equal(store_load(st, "default", &back), 0);
    assert_string_equal(back.jid, "1555:7@s.whatsapp.net");
    assert_string_equal(back.lid, "99:7@lid");
    assert_string_equal(back.platform, "android");
    assert_string_equal(back.push_name, "Ann");
    assert_null(back.business_name);
    assert_int_equal(back.account_len, 4);
    assert_memory_equal(back.account, account, 4);
    store_creds_free(&back);
    char err[256];
    assert_int_equal(store_check(st, err, sizeof(err)), 0);
    /* a half pairing is refused by the API */
    fill(&c, 1);
    c.jid = "x@s.whatsapp.net";
    assert_int_equal(store_save(st, "other", &c), STORE_EINVAL);
    /* file modes: the db and its WAL companions are 0600 */
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[700];
        snprintf(p, sizeof(p), "%s/%s%s", dir, STORE_FILE_NAME, suffixes[i]);
        struct stat sb;
        assert_int_equal(stat(p, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0600);
    }
    store_close(st);
}

static void test_wipe_and_prekeys(void **state)
{
    (void)state;
    store_t *st = open_ok();
    store_creds_t c;
    fill(&c, 1);
    assert_int_equal(store_save(st, "a", &c), 0);
    assert_int_equal(store_save(st, "b", &c), 0);
    store_prekey_t keys[10];
    for (int i = 0; i < 10; i++) {
        keys[i].id = (uint32_t)i + 1;
        memset(keys[i].priv, i, 32);
        memset(keys[i].pub, i + 100, 32);
    }
    assert_int_equal(store_prekeys_add(st, "a", keys, 10), 0);
    assert_int_equal(store_prekeys_add(st, "b", keys, 3), 0);
    assert_int_not_equal(store_prekeys_add(st, "nobody", keys, 1), 0);
    store_prekey_t got[10];
    size_t n;
    assert_int_equal(store_prekeys_pending(st, "a", got, 4, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(got[0].id, 1);
    assert_memory_equal(got[3].pub, keys[3].pub, 32);
    assert_int_equal(store_prekeys_mark_uploaded(st, "a", 4), 0);
    assert_int_equal(store_prekeys_pending(st, "a", got, 10, &n), 0);
    assert_int_equal(n, 6);
    assert_int_equal(got[0].id, 5);
    store_creds_t back;
    assert_int_equal(store_load(st, "a", &back), 0);
    assert_int_equal(back.next_prekey_id, 11);
    store_creds_free(&back);
    assert_int_equal(store_wipe(st, "a"), 0);
    assert_int_equal(store_load(st, "a", &back), STORE_ENOTFOUND);
    assert_int_equal(store_prekeys_count(st, "a", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_prekeys_count(st, "b", &n), 0);
    assert_int_equal(n, 3); /* the other session is untouched */
    assert_int_equal(store_load(st, "b", &back), 0);
    store_creds_free(&back);
    char err[256];
    assert_int_equal(store_check(st, err, sizeof(err)), 0);
    store_close(st);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len + 1);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void expect_refused(int want)
{
    char p[700], err[512];
    snprintf(p, sizeof(p), "%s/%s", dir, STORE_FILE_NAME);
    size_t l1, l2;
    uint8_t *before = slurp(p, &l1);
    store_t *st;
    int rc = store_open(dir, &st, err, sizeof(err));
    assert_int_equal(rc, want);
    assert_non_null(strstr(err, "refusing") ? strstr(err, "refusing") : strstr(err, "not"));
    assert_null(strchr(err, '\n'));
    uint8_t *after = slurp(p, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(before, after, l1);
    free(before);
    free(after);
}

static void test_newer_and_corrupt(void **state)
{
    (void)state;
    store_t *st = open_ok();
    store_creds_t c;
    fill(&c, 3);
    assert_int_equal(store_save(st, "default", &c), 0);
    store_close(st);
    char cmd[900];
    /* a newer schema version: refused, untouched */
    snprintf(cmd, sizeof(cmd), "cd '%s' && rm -f %s-wal %s-shm", dir, STORE_FILE_NAME,
             STORE_FILE_NAME);
    assert_int_equal(system(cmd), 0);
    char p[700];
    snprintf(p, sizeof(p), "%s/%s", dir, STORE_FILE_NAME);
    FILE *f = fopen(p, "r+b");
    /* user_version lives at offset 60, big-endian */
    fseek(f, 60, SEEK_SET);
    const uint8_t v[4] = {0, 0, 0, 99};
    fwrite(v, 1, 4, f);
    fclose(f);
    expect_refused(STORE_ENEWER);
    /* random bytes: refused, untouched */
    f = fopen(p, "wb");
    for (int i = 0; i < 4096; i++)
        fputc(rand() & 0xff, f);
    fclose(f);
    expect_refused(STORE_ECORRUPT);
    /* a real database with a damaged page: refused, untouched */
    unlink(p);
    st = open_ok();
    for (int i = 0; i < 50; i++) {
        char name[32];
        snprintf(name, sizeof(name), "s%d", i);
        fill(&c, (uint8_t)i);
        assert_int_equal(store_save(st, name, &c), 0);
    }
    store_close(st);
    snprintf(cmd, sizeof(cmd), "cd '%s' && rm -f %s-wal %s-shm", dir, STORE_FILE_NAME,
             STORE_FILE_NAME);
    assert_int_equal(system(cmd), 0);
    f = fopen(p, "r+b");
    fseek(f, 4096 + 10, SEEK_SET); /* inside the second page */
    for (int i = 0; i < 200; i++)
        fputc(0xA5, f);
    fclose(f);
    expect_refused(STORE_ECORRUPT);
}

/* A file written by schema version 1 is migrated, its records kept and
 * their pairings counted as confirmed. */
static void test_migration_from_v1(void **state)
{
    (void)state;
    char p[700];
    snprintf(p, sizeof(p), "%s/%s", dir, STORE_FILE_NAME);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    const char *v1 =
        "CREATE TABLE creds (session TEXT PRIMARY KEY, noise_priv BLOB NOT NULL,"
        " noise_pub BLOB NOT NULL, ident_priv BLOB NOT NULL, ident_pub BLOB NOT NULL,"
        " spk_id INTEGER NOT NULL, spk_priv BLOB NOT NULL, spk_pub BLOB NOT NULL,"
        " spk_sig BLOB NOT NULL, reg_id INTEGER NOT NULL, adv_secret BLOB NOT NULL,"
        " next_prekey_id INTEGER NOT NULL DEFAULT 1, account BLOB, jid TEXT, lid TEXT,"
        " push_name TEXT, platform TEXT, business_name TEXT,"
        " updated_at INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE prekeys (session TEXT NOT NULL REFERENCES creds(session) ON DELETE CASCADE,"
        " id INTEGER NOT NULL, priv BLOB NOT NULL, pub BLOB NOT NULL,"
        " uploaded INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (session, id));"
        "INSERT INTO creds VALUES ('default', zeroblob(32), zeroblob(32), zeroblob(32),"
        " zeroblob(32), 1, zeroblob(32), zeroblob(32), zeroblob(64), 77, zeroblob(32), 1,"
        " x'0102', '1555:3@s.whatsapp.net', NULL, NULL, 'android', NULL, 0);"
        "PRAGMA user_version=1;";
    assert_int_equal(sqlite3_exec(db, v1, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    store_t *st = open_ok();
    store_creds_t c;
    assert_int_equal(store_load(st, "default", &c), 0);
    assert_int_equal(c.reg_id, 77);
    assert_string_equal(c.jid, "1555:3@s.whatsapp.net");
    assert_int_equal(c.confirmed, 1);
    store_creds_free(&c);
    static const uint8_t acc[] = {9};
    assert_int_equal(
        store_save_pairing(st, "default", acc, 1, "1555:4@s.whatsapp.net", NULL, NULL, NULL, NULL),
        0);
    assert_int_equal(store_load(st, "default", &c), 0);
    assert_int_equal(c.confirmed, 0); /* a new pairing waits for the server */
    store_creds_free(&c);
    assert_int_equal(store_confirm_pairing(st, "default"), 0);
    assert_int_equal(store_load(st, "default", &c), 0);
    assert_int_equal(c.confirmed, 1);
    store_creds_free(&c);
    /* the session with credentials became a session row */
    store_session_t ss;
    assert_int_equal(store_session_get(st, "default", &ss), 0);
    assert_false(ss.has_key);
    store_close(st);
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    sqlite3_stmt *s;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), STORE_SCHEMA_VERSION);
    sqlite3_finalize(s);
    sqlite3_close(db);
}

/* Sessions: add (no duplicates), keys, list, delete with everything of the
 * session; meta values; retiring a linked session keeps only what the
 * removal request needs, until it is done. */
static void test_sessions_meta_removals(void **state)
{
    (void)state;
    store_t *st = open_ok();
    uint8_t h[32];
    memset(h, 7, 32);
    assert_int_equal(store_session_add(st, "sales", h, "Sales desk"), 0);
    assert_int_equal(store_session_add(st, "sales", NULL, NULL), STORE_EEXISTS);
    assert_int_equal(store_session_add(st, "support", NULL, NULL), 0);
    store_session_t *all;
    size_t n;
    assert_int_equal(store_sessions_list(st, &all, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(all[0].name, "sales");
    assert_true(all[0].has_key);
    assert_memory_equal(all[0].key_hash, h, 32);
    assert_string_equal(all[0].device_name, "Sales desk");
    assert_false(all[1].has_key);
    free(all);
    memset(h, 9, 32);
    assert_int_equal(store_session_set_key(st, "support", h), 0);
    assert_int_equal(store_session_set_key(st, "nobody", h), STORE_ENOTFOUND);
    store_session_t one;
    assert_int_equal(store_session_get(st, "support", &one), 0);
    assert_true(one.has_key);
    assert_memory_equal(one.key_hash, h, 32);
    assert_int_equal(store_session_get(st, "nobody", &one), STORE_ENOTFOUND);

    /* meta */
    uint8_t *v;
    size_t len;
    assert_int_equal(store_meta_get(st, "sales", "routing_info", &v, &len), STORE_ENOTFOUND);
    assert_int_equal(store_meta_set(st, "sales", "routing_info", "\x01\x02\x03", 3), 0);
    assert_int_equal(store_meta_set(st, "", "wa_version", "2.3000.1", 8), 0);
    assert_int_equal(store_meta_get(st, "sales", "routing_info", &v, &len), 0);
    assert_int_equal(len, 3);
    assert_int_equal(v[2], 3);
    free(v);

    /* a linked session logged out offline: only jid + noise key remain */
    store_creds_t c;
    fill(&c, 3);
    assert_int_equal(store_save(st, "sales", &c), 0);
    static const uint8_t acc[] = {1, 2};
    assert_int_equal(
        store_save_pairing(st, "sales", acc, 2, "1555:7@s.whatsapp.net", NULL, NULL, NULL, NULL),
        0);
    assert_int_equal(store_retire(st, "sales"), 0);
    assert_int_equal(store_load(st, "sales", &c), STORE_ENOTFOUND);
    store_removal_t rm[4];
    assert_int_equal(store_removals_list(st, rm, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rm[0].session, "sales");
    assert_string_equal(rm[0].jid, "1555:7@s.whatsapp.net");
    uint8_t expect[32];
    memset(expect, 3, 32);
    assert_memory_equal(rm[0].noise_priv, expect, 32);
    /* an unlinked identity leaves nothing to remove */
    fill(&c, 5);
    assert_int_equal(store_save(st, "support", &c), 0);
    assert_int_equal(store_retire(st, "support"), 0);
    assert_int_equal(store_removals_list(st, rm, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(store_removal_done(st, rm[0].id), 0);
    assert_int_equal(store_removals_list(st, rm, 4, &n), 0);
    assert_int_equal(n, 0);

    /* deleting a session takes its credentials and values with it */
    fill(&c, 4);
    assert_int_equal(store_save(st, "sales", &c), 0);
    assert_int_equal(store_session_delete(st, "sales"), 0);
    assert_int_equal(store_load(st, "sales", &c), STORE_ENOTFOUND);
    assert_int_equal(store_meta_get(st, "sales", "routing_info", &v, &len), STORE_ENOTFOUND);
    assert_int_equal(store_session_get(st, "sales", &one), STORE_ENOTFOUND);
    assert_int_equal(store_meta_get(st, "", "wa_version", &v, &len), 0);
    free(v);
    char err[256];
    assert_int_equal(store_check(st, err, sizeof(err)), 0);
    store_close(st);
}

/* A child rewrites records and wipes in a loop; it is killed at a random
 * moment; the parent must then find a consistent store. */
static void test_sigkill_consistency(void **state)
{
    (void)state;
    srand((unsigned)time(NULL));
    for (int round = 0; round < 30; round++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            store_t *st;
            char err[256];
            if (store_open(dir, &st, err, sizeof(err)))
                _exit(3);
            for (uint8_t i = 0;; i++) {
                store_creds_t c;
                fill(&c, i);
                store_save(st, "default", &c);
                static const uint8_t acc[64] = {7};
                store_save_pairing(st, "default", acc, sizeof(acc), "1555:1@s.whatsapp.net",
                                   "9:1@lid", "android", NULL, NULL);
                store_prekey_t k = {.id = (uint32_t)i + 1};
                store_prekeys_add(st, "default", &k, 1);
                if (i % 3 == 0)
                    store_wipe(st, "default");
            }
        }
        struct timespec ts = {0, (long)(rand() % 20) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        store_t *st = open_ok();
        char err[256];
        int rc = store_check(st, err, sizeof(err));
        if (rc)
            fail_msg("round %d: inconsistent store: %s", round, err);
        store_creds_t back;
        rc = store_load(st, "default", &back);
        assert_true(rc == 0 || rc == STORE_ENOTFOUND);
        if (rc == 0) {
            /* every key of the record comes from the same write */
            uint8_t v = back.noise_priv[0];
            assert_int_equal(back.noise_pub[0], (uint8_t)(v + 1));
            assert_int_equal(back.adv_secret[31], (uint8_t)(v + 7));
            assert_true(!back.jid == !back.account);
            store_creds_free(&back);
        }
        store_close(st);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_and_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wipe_and_prekeys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_and_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigkill_consistency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_meta_removals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
