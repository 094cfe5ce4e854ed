/* Tests of the credential store: round trips, file modes, wipe scope,
 * pre-keys, refusal of newer and corrupt files (left byte-for-byte as they
 * were), and crash consistency under SIGKILL at random moments. Issue 13
 * point 5 (secrets at rest): saving credentials keeps the pre-keys (an
 * INSERT OR REPLACE deleted them through ON DELETE CASCADE); a wipe leaves
 * no key byte in the database or its WAL (the WAL kept them); a refused
 * store with a live WAL is left byte for byte (it was opened for writing,
 * and closing it checkpointed the WAL into the file); DATA_DIR and the file
 * must be private and no symbolic link is followed (they were not
 * checked). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <postgresql/libpq-fe.h>
#include <sqlite3.h>

#include "session/store/store.h"
#include "tests/store/testdb.h"

static char dir[512];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "%s/storeXXXXXX",
             getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(dir));
    return testdb_reset();
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
    int rc = testdb_open(dir, &st, err, sizeof(err));
    if (rc)
        fail_msg("store_open_url: %s", err);
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
    for (int i = 0; !testdb_is_pg() && i < 3; i++) {
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

static void test_save_keeps_prekeys(void **state)
{
    (void)state;
    store_t *st = open_ok();
    store_creds_t c;
    fill(&c, 5);
    assert_int_equal(store_save(st, "default", &c), 0);
    store_prekey_t keys[5];
    for (int i = 0; i < 5; i++) {
        keys[i].id = (uint32_t)i + 1;
        memset(keys[i].priv, i + 1, 32);
        memset(keys[i].pub, i + 50, 32);
    }
    assert_int_equal(store_prekeys_add(st, "default", keys, 5), 0);
    static const char *meta = "one";
    assert_int_equal(store_meta_set(st, "default", "k", meta, 3), 0);
    /* the client saves the whole record again (e.g. a new signed pre-key) */
    store_creds_t back;
    assert_int_equal(store_load(st, "default", &back), 0);
    memset(back.spk_priv, 0x77, 32);
    back.spk_id = 2;
    assert_int_equal(store_save(st, "default", &back), 0);
    store_creds_free(&back);
    size_t n;
    assert_int_equal(store_prekeys_count(st, "default", &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(store_load(st, "default", &back), 0);
    assert_int_equal(back.spk_id, 2);
    assert_int_equal(back.next_prekey_id, 6);
    store_creds_free(&back);
    assert_int_equal(store_meta_set(st, "default", "k", "two", 3), 0);
    uint8_t *v;
    assert_int_equal(store_meta_get(st, "default", "k", &v, &n), 0);
    assert_memory_equal(v, "two", 3);
    free(v);
    char err[256];
    assert_int_equal(store_check(st, err, sizeof(err)), 0);
    store_close(st);
}

/* 1 when the file at dir/name contains `needle` (a missing file: 0). */
static int file_has(const char *name, const uint8_t *needle, size_t n)
{
    char p[700];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f)
        return 0;
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(len + 1);
    size_t got = fread(b, 1, len, f);
    fclose(f);
    int found = 0;
    for (size_t i = 0; !found && got >= n && i <= got - n; i++)
        found = !memcmp(b + i, needle, n);
    free(b);
    return found;
}

static void random_bytes(uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(rand() & 0xff);
}

static void test_wipe_leaves_no_key_bytes(void **state)
{
    (void)state;
    srand((unsigned)time(NULL));
    store_t *st = open_ok();
    store_creds_t c;
    fill(&c, 1);
    random_bytes(c.noise_priv, 32);
    random_bytes(c.ident_priv, 32);
    random_bytes(c.spk_priv, 32);
    random_bytes(c.adv_secret, 32);
    assert_int_equal(store_save(st, "default", &c), 0);
    static const uint8_t acc[] = {1};
    assert_int_equal(
        store_save_pairing(st, "default", acc, 1, "1555:2@s.whatsapp.net", NULL, NULL, NULL, NULL),
        0);
    store_prekey_t keys[20];
    for (int i = 0; i < 20; i++) {
        keys[i].id = (uint32_t)i + 1;
        random_bytes(keys[i].priv, 32);
        random_bytes(keys[i].pub, 32);
    }
    assert_int_equal(store_prekeys_add(st, "default", keys, 20), 0);
    const char *files[] = {STORE_FILE_NAME, STORE_FILE_NAME "-wal"};
    /* the keys are on disk now (in the WAL at least) */
    assert_true(file_has(files[0], c.noise_priv, 32) || file_has(files[1], c.noise_priv, 32));
    /* retire: the noise key pair moves to the pending removals, the rest goes */
    assert_int_equal(store_retire(st, "default"), 0);
    const uint8_t *gone[] = {c.ident_priv, c.spk_priv, c.adv_secret, keys[0].priv, keys[19].priv};
    for (int f = 0; f < 2; f++)
        for (size_t k = 0; k < sizeof(gone) / sizeof(gone[0]); k++)
            if (file_has(files[f], gone[k], 32))
                fail_msg("key %zu still in %s after a wipe", k, files[f]);
    store_removal_t r[2];
    size_t n;
    assert_int_equal(store_removals_list(st, r, 2, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(store_removal_done(st, r[0].id), 0);
    for (int f = 0; f < 2; f++)
        if (file_has(files[f], c.noise_priv, 32))
            fail_msg("the noise key still in %s after its removal was done", files[f]);
    /* and a plain wipe */
    fill(&c, 2);
    random_bytes(c.ident_priv, 32);
    assert_int_equal(store_save(st, "other", &c), 0);
    assert_int_equal(store_wipe(st, "other"), 0);
    for (int f = 0; f < 2; f++)
        if (file_has(files[f], c.ident_priv, 32))
            fail_msg("identity key still in %s after store_wipe", files[f]);
    store_close(st);
    explicit_bzero(&c, sizeof(c));
}

/* A child writes a store of a newer schema and is killed before closing
 * it, so that its last changes live only in the WAL. */
static void make_newer_with_wal(void)
{
    char p[700];
    snprintf(p, sizeof(p), "%s/%s", dir, STORE_FILE_NAME);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sqlite3 *db;
        if (sqlite3_open(p, &db) != SQLITE_OK)
            _exit(1);
        sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;"
                     "CREATE TABLE future (x BLOB); INSERT INTO future VALUES (randomblob(5000));"
                     "PRAGMA user_version=99; INSERT INTO future VALUES (randomblob(5000));",
                     NULL, NULL, NULL);
        kill(getpid(), SIGKILL);
    }
    int status;
    waitpid(pid, &status, 0);
}

static void test_refused_store_untouched(void **state)
{
    (void)state;
    chmod(dir, 0700);
    make_newer_with_wal();
    char p[700], w[700], err[512];
    snprintf(p, sizeof(p), "%s/%s", dir, STORE_FILE_NAME);
    snprintf(w, sizeof(w), "%s/%s-wal", dir, STORE_FILE_NAME);
    size_t l1, l2, w1, w2;
    uint8_t *db1 = slurp(p, &l1), *wal1 = slurp(w, &w1);
    assert_true(w1 > 0); /* the newest changes are in the WAL */
    store_t *st;
    assert_int_equal(store_open(dir, &st, err, sizeof(err)), STORE_ENEWER);
    uint8_t *db2 = slurp(p, &l2), *wal2 = slurp(w, &w2);
    assert_int_equal(l1, l2);
    assert_memory_equal(db1, db2, l1);
    assert_int_equal(w1, w2);
    assert_memory_equal(wal1, wal2, w1);
    free(db1);
    free(db2);
    free(wal1);
    free(wal2);
}

static void expect_perm(const char *what)
{
    store_t *st;
    char err[512];
    int rc = store_open(dir, &st, err, sizeof(err));
    if (rc != STORE_EPERM)
        fail_msg("%s: store_open gave %d (%s)", what, rc, rc ? err : "opened");
    assert_null(strchr(err, '\n'));
}

static void test_private_and_no_links(void **state)
{
    (void)state;
    char p[700], target[700];
    snprintf(p, sizeof(p), "%s/%s", dir, STORE_FILE_NAME);
    struct stat sb;
    /* a directory others may write to is refused */
    assert_int_equal(chmod(dir, 0777), 0);
    expect_perm("DATA_DIR 0777");
    assert_int_equal(chmod(dir, 0730), 0);
    expect_perm("DATA_DIR 0730");
    /* one they may only read is closed */
    assert_int_equal(chmod(dir, 0755), 0);
    store_t *st = open_ok();
    store_close(st);
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    /* a store file readable by others is closed */
    assert_int_equal(chmod(p, 0644), 0);
    st = open_ok();
    store_close(st);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* symbolic links are not followed: the store file... */
    snprintf(target, sizeof(target), "%s.elsewhere", dir);
    assert_int_equal(rename(p, target), 0);
    assert_int_equal(symlink(target, p), 0);
    expect_perm("a symlinked store file");
    assert_int_equal(unlink(p), 0);
    assert_int_equal(rename(target, p), 0);
    /* ...nor its WAL */
    char w[700];
    snprintf(w, sizeof(w), "%s/%s-wal", dir, STORE_FILE_NAME);
    unlink(w);
    assert_int_equal(symlink(target, w), 0);
    expect_perm("a symlinked -wal");
    assert_int_equal(stat(target, &sb), -1); /* nothing was created through it */
    assert_int_equal(unlink(w), 0);
    st = open_ok();
    store_close(st);
    /* a directory or a file of another user */
    if (chown(p, 65534, 65534) == 0) {
        expect_perm("a store file of another user");
        assert_int_equal(chown(p, geteuid(), getegid()), 0);
    }
    if (chown(dir, 65534, 65534) == 0) {
        expect_perm("a DATA_DIR of another user");
        assert_int_equal(chown(dir, geteuid(), getegid()), 0);
    }
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

static int count_rows(const char *sql)
{
    if (testdb_is_pg()) {
        long long v = 0;
        assert_int_equal(testdb_pg_exec(sql, &v), 0);
        return (int)v;
    }
    char path[600];
    snprintf(path, sizeof(path), "%s/" STORE_FILE_NAME, dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int n = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

static void exec_sql(const char *sql)
{
    if (testdb_is_pg()) {
        assert_int_equal(testdb_pg_exec(sql, NULL), 0);
        return;
    }
    char path[600];
    snprintf(path, sizeof(path), "%s/" STORE_FILE_NAME, dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* The event log: seqs only go up, reads page in order, every appended
 * event gets one delivery per matching webhook target in the same
 * transaction, and retention keeps the newest and what a delivery waits
 * for. */
static void test_events_and_outbox(void **state)
{
    (void)state;
    store_t *st = open_ok();
    /* (a key written as a string: a blob literal in both dialects) */
    exec_sql("INSERT INTO webhook_targets (id, url, secret) VALUES ('all', 'https://a', 'k');"
             "INSERT INTO webhook_targets (id, url, secret, session) VALUES"
             " ('other', 'https://b', 'k', 'other');"
             "INSERT INTO webhook_targets (id, url, secret, events) VALUES"
             " ('typed', 'https://c', 'k', ' message.received ');");
    uint64_t seq = 9, max_id = 9;
    assert_int_equal(store_events_last_seq(st, "default", &seq), 0);
    assert_int_equal(seq, 0);
    assert_int_equal(store_events_max_id(st, &max_id), 0);
    assert_int_equal(max_id, 0);
    store_event_t ev[10];
    for (int i = 0; i < 10; i++)
        ev[i] = (store_event_t){.session = "default",
                                .seq = (uint64_t)i + 1,
                                .ts_ms = 1000 + i,
                                .type = "session.status",
                                .body = "{}",
                                .body_len = 2};
    assert_int_equal(store_events_append(st, ev, 10), 0);
    for (int i = 1; i < 10; i++)
        assert_true(ev[i].id > ev[i - 1].id);
    assert_int_equal(store_events_max_id(st, &max_id), 0);
    assert_int_equal(max_id, ev[9].id);
    assert_int_equal(store_events_last_seq(st, "default", &seq), 0);
    assert_int_equal(seq, 10);
    /* only the target of every session with no filter wants them */
    assert_int_equal(count_rows("SELECT count(*) FROM webhook_deliveries WHERE target = 'all'"),
                     10);
    assert_int_equal(count_rows("SELECT count(*) FROM webhook_deliveries"), 10);
    /* a seq already given is refused, and nothing of the batch stays */
    store_event_t again[2] = {
        {.session = "default", .seq = 11, .ts_ms = 1, .type = "t", .body = "{}", .body_len = 2},
        {.session = "default", .seq = 5, .ts_ms = 1, .type = "t", .body = "{}", .body_len = 2}};
    assert_true(store_events_append(st, again, 2) < 0);
    assert_int_equal(store_events_last_seq(st, "default", &seq), 0);
    assert_int_equal(seq, 10);
    store_event_t out[4];
    size_t n;
    uint64_t pruned;
    assert_int_equal(store_events_read(st, "default", 3, 4, out, &n, &pruned), 0);
    assert_int_equal(n, 4);
    assert_int_equal(out[0].seq, 4);
    assert_int_equal(out[3].seq, 7);
    assert_string_equal(out[0].body, "{}");
    assert_int_equal(pruned, 0);
    store_events_free(out, n);
    /* retention: pending deliveries keep every event */
    size_t deleted;
    assert_int_equal(store_events_prune(st, 3, 0, 5000, 100, &deleted), 0);
    assert_int_equal(deleted, 0);
    /* delivered (rows gone) or dead: they may go, except the newest three */
    exec_sql("DELETE FROM webhook_deliveries WHERE event_id % 2 = 0;"
             "UPDATE webhook_deliveries SET state = 2;");
    assert_int_equal(store_events_prune(st, 3, 0, 5000, 100, &deleted), 0);
    assert_int_equal(deleted, 7);
    assert_int_equal(count_rows("SELECT count(*) FROM webhook_deliveries"), 1);
    assert_int_equal(store_events_read(st, "default", 0, 4, out, &n, &pruned), 0);
    assert_int_equal(n, 3);
    assert_int_equal(out[0].seq, 8);
    assert_int_equal(pruned, 7);
    store_events_free(out, n);
    assert_int_equal(store_events_read(st, NULL, 0, 4, out, &n, &pruned), 0);
    assert_int_equal(pruned, ev[6].id);
    store_events_free(out, n);
    store_event_t one;
    assert_int_equal(store_event_get(st, ev[9].id, &one), 0);
    assert_int_equal(one.seq, 10);
    store_events_free(&one, 1);
    assert_int_equal(store_event_get(st, ev[0].id, &one), STORE_ENOTFOUND);
    store_close(st);
    /* the heads survive the session's deletion and a reopening */
    st = open_ok();
    assert_int_equal(store_session_add(st, "default", NULL, NULL), 0);
    assert_int_equal(store_session_delete(st, "default"), 0);
    assert_int_equal(store_events_last_seq(st, "default", &seq), 0);
    assert_int_equal(seq, 10);
    store_close(st);
}

/* Migration 4 -> 5 (SQLite): a store of schema 4 gets the cluster tables
 * and a lease row (no owner, epoch 0) for each of its sessions. */
static void test_migration_4_to_5(void **state)
{
    (void)state;
    store_t *st = open_ok();
    assert_int_equal(store_session_add(st, "a", NULL, NULL), 0);
    assert_int_equal(store_session_add(st, "b", NULL, NULL), 0);
    store_close(st);
    exec_sql("DROP TABLE leases; DROP TABLE nodes; PRAGMA user_version=4;");
    assert_int_equal(count_rows("PRAGMA user_version"), 4);
    st = open_ok();
    assert_int_equal(count_rows("PRAGMA user_version"), 5);
    assert_int_equal(count_rows("SELECT count(*) FROM leases WHERE owner IS NULL AND epoch = 0"
                                " AND session IN ('a', 'b')"),
                     2);
    assert_int_equal(count_rows("SELECT count(*) FROM nodes"), 0);
    /* from now on a session comes and goes with its lease row */
    assert_int_equal(store_session_add(st, "c", NULL, NULL), 0);
    assert_int_equal(count_rows("SELECT count(*) FROM leases"), 3);
    assert_int_equal(store_session_delete(st, "a"), 0);
    assert_int_equal(count_rows("SELECT count(*) FROM leases WHERE session = 'a'"), 0);
    char err[256];
    assert_int_equal(store_check(st, err, sizeof(err)), 0);
    store_close(st);
}

/* A session's lease row comes and goes with it (both backends). */
static void test_session_lease_rows(void **state)
{
    (void)state;
    store_t *st = open_ok();
    assert_int_equal(store_session_add(st, "x", NULL, NULL), 0);
    assert_int_equal(
        count_rows(
            "SELECT count(*) FROM leases WHERE session = 'x' AND owner IS NULL AND epoch = 0"),
        1);
    assert_int_equal(store_session_add(st, "x", NULL, NULL), STORE_EEXISTS);
    assert_int_equal(count_rows("SELECT count(*) FROM leases"), 1);
    assert_int_equal(store_session_delete(st, "x"), 0);
    assert_int_equal(count_rows("SELECT count(*) FROM leases"), 0);
    store_close(st);
}

/* SQLite ignores the cluster settings: writes are never fenced. */
static void test_sqlite_not_fenced(void **state)
{
    (void)state;
    store_t *st = open_ok();
    assert_false(store_is_pg(st));
    assert_int_equal(store_set_node(st, "n1"), 0);
    store_fence_set(st, "s", 0);
    store_creds_t c;
    fill(&c, 1);
    assert_int_equal(store_save(st, "s", &c), 0);
    assert_int_equal(store_meta_set(st, "s", "k", "v", 1), 0);
    store_close(st);
}

/* No password in an error message nor in store_path, wherever it is in
 * the URL; schemes other than sqlite: and postgres(ql):// are refused. */
static void test_password_redacted(void **state)
{
    (void)state;
    static const char *const urls[] = {
        "postgres://wagw:s3cretPW@127.0.0.1:1/wagw?connect_timeout=3",
        "postgresql://wagw@127.0.0.1:1/wagw?password=s3cretPW&connect_timeout=3",
        "postgres://wagw:s3cret%50W@127.0.0.1:1/wagw?connect_timeout=3",
        "postgres://wagw:s3cretPW@127.0.0.1:1/wagw?connect_timeout=nonsense",
        "mysql://wagw:s3cretPW@127.0.0.1/wagw",
        "sqlite:s3cretPW",
        "postgres://wagw:*@127.0.0.1:1/wagw?connect_timeout=3", /* scrubbing ends */
    };
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        store_t *st = NULL;
        char err[512] = "";
        int rc = store_open_url(urls[i], dir, &st, err, sizeof(err));
        assert_true(rc < 0);
        assert_null(st);
        assert_true(err[0]);
        if (strstr(err, "s3cret"))
            fail_msg("URL %zu: the password is in the message: %s", i, err);
        assert_null(strchr(err, '\n'));
        if (i < 3)
            assert_non_null(strstr(err, "***"));
    }
    if (!testdb_is_pg())
        return;
    /* the right server with a wrong password */
    char url[600];
    snprintf(url, sizeof(url), "%s", testdb_url());
    char *at = strrchr(url, '@'), *colon = strchr(strstr(url, "://") + 3, ':');
    assert_non_null(at);
    assert_non_null(colon);
    char wrong[700];
    snprintf(wrong, sizeof(wrong), "%.*s:Wr0ngS3cret%s", (int)(colon - url), url, at);
    store_t *st = NULL;
    char err[512];
    assert_int_equal(store_open_url(wrong, dir, &st, err, sizeof(err)), STORE_EIO);
    assert_null(strstr(err, "Wr0ngS3cret"));
    assert_non_null(strstr(err, "password"));
    /* and the right one: not in store_path either */
    st = open_ok();
    assert_true(store_is_pg(st));
    *at = 0;
    assert_null(strstr(store_path(st), colon + 1));
    assert_non_null(strstr(store_path(st), "***"));
    store_close(st);
}

/* --- PostgreSQL only --- */

static void test_pg_newer_refused(void **state)
{
    (void)state;
    store_t *st = open_ok();
    store_close(st);
    assert_int_equal(count_rows("SELECT version FROM schema_version"), STORE_SCHEMA_VERSION);
    exec_sql("UPDATE schema_version SET version = 99");
    char err[512];
    assert_int_equal(testdb_open(dir, &st, err, sizeof(err)), STORE_ENEWER);
    assert_non_null(strstr(err, "newer"));
    assert_int_equal(count_rows("SELECT version FROM schema_version"), 99);
}

typedef struct {
    int rc;
    char err[256];
    store_t *st;
} opener_t;

static void *open_thread(void *arg)
{
    opener_t *o = arg;
    o->rc = testdb_open(dir, &o->st, o->err, sizeof(o->err));
    return NULL;
}

/* Several nodes start at once on an empty database: one migrates, the
 * others wait for it (advisory lock) and find the schema done. */
static void test_pg_concurrent_migration(void **state)
{
    (void)state;
    enum { N = 4 };
    opener_t o[N];
    pthread_t t[N];
    memset(o, 0, sizeof(o));
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&t[i], NULL, open_thread, &o[i]), 0);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++)
        if (o[i].rc)
            fail_msg("opener %d: %d %s", i, o[i].rc, o[i].err);
    assert_int_equal(count_rows("SELECT count(*) FROM schema_version"), 1);
    assert_int_equal(count_rows("SELECT version FROM schema_version"), STORE_SCHEMA_VERSION);
    /* every handle works on the one schema */
    assert_int_equal(store_session_add(o[0].st, "s", NULL, NULL), 0);
    store_session_t ss;
    assert_int_equal(store_session_get(o[N - 1].st, "s", &ss), 0);
    for (int i = 0; i < N; i++)
        store_close(o[i].st);
}

typedef struct {
    int calls;
    char last[72];
} fenced_log_t;

static void on_fenced(void *arg, const char *session)
{
    fenced_log_t *l = arg;
    l->calls++;
    snprintf(l->last, sizeof(l->last), "%s", session);
}

/* Gives the lease of `session` to `owner` with `epoch`, valid for a minute
 * by the database clock. */
static void grant(const char *session, const char *owner, int epoch)
{
    char sql[300];
    snprintf(sql, sizeof(sql),
             "UPDATE leases SET owner = '%s', epoch = %d, expires_at = now() + interval '1 min',"
             " acquired_at = now() WHERE session = '%s'",
             owner, epoch, session);
    exec_sql(sql);
}

/* Expects every fenced write of `session` to be refused with nothing
 * written and the callback called each time. */
static void expect_all_fenced(store_t *st, const char *session, fenced_log_t *log)
{
    int before = log->calls;
    uint64_t refused = store_fenced_writes(st);
    store_creds_t c;
    fill(&c, 99);
    static const uint8_t acc[] = {5};
    store_prekey_t k = {.id = 50};
    store_event_t e = {.session = (char *)session,
                       .seq = 1000,
                       .ts_ms = 1,
                       .type = "t",
                       .body = "{}",
                       .body_len = 2};
    assert_int_equal(store_save(st, session, &c), STORE_EFENCED);
    assert_int_equal(store_save_pairing(st, session, acc, 1, "9@s", NULL, NULL, NULL, NULL),
                     STORE_EFENCED);
    assert_int_equal(store_confirm_pairing(st, session), STORE_EFENCED);
    assert_int_equal(store_prekeys_add(st, session, &k, 1), STORE_EFENCED);
    assert_int_equal(store_prekeys_mark_uploaded(st, session, 100), STORE_EFENCED);
    assert_int_equal(store_meta_set(st, session, "k", "new", 3), STORE_EFENCED);
    assert_int_equal(store_events_append(st, &e, 1), STORE_EFENCED);
    assert_int_equal(e.id, 0);
    assert_int_equal(store_wipe(st, session), STORE_EFENCED);
    assert_int_equal(store_retire(st, session), STORE_EFENCED);
    assert_int_equal(log->calls, before + 9);
    assert_int_equal(store_fenced_writes(st), refused + 9); /* counted for the metrics */
    assert_string_equal(log->last, session);
    /* nothing was written */
    store_creds_t back;
    assert_int_equal(store_load(st, session, &back), 0);
    assert_int_equal(back.noise_priv[0], 1);
    assert_null(back.jid);
    store_creds_free(&back);
    size_t n;
    assert_int_equal(store_prekeys_count(st, session, &n), 0);
    assert_int_equal(n, 1);
    store_prekey_t pk[4];
    assert_int_equal(store_prekeys_pending(st, session, pk, 4, &n), 0);
    assert_int_equal(n, 1);
    uint8_t *v;
    assert_int_equal(store_meta_get(st, session, "k", &v, &n), 0);
    assert_memory_equal(v, "old", 3);
    free(v);
    uint64_t seq;
    assert_int_equal(store_events_last_seq(st, session, &seq), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(count_rows("SELECT count(*) FROM removals"), 0);
}

/* Cluster mode: a write goes through only while this node holds the
 * session's lease with the epoch it was given and before its expiry by
 * the database clock. */
static void test_pg_fencing(void **state)
{
    (void)state;
    store_t *st = open_ok();
    fenced_log_t log = {0};
    store_on_fenced(st, on_fenced, &log);
    assert_int_equal(store_session_add(st, "s", NULL, NULL), 0);
    /* before a node id is set nothing is fenced */
    store_creds_t c;
    fill(&c, 1);
    assert_int_equal(store_save(st, "s", &c), 0);
    store_prekey_t k = {.id = 1};
    assert_int_equal(store_prekeys_add(st, "s", &k, 1), 0);
    assert_int_equal(store_meta_set(st, "s", "k", "old", 3), 0);
    store_event_t e = {
        .session = "s", .seq = 1, .ts_ms = 1, .type = "t", .body = "{}", .body_len = 2};
    assert_int_equal(store_events_append(st, &e, 1), 0);
    assert_int_equal(store_set_node(st, "n1"), 0);
    /* holding none (epoch 0) */
    expect_all_fenced(st, "s", &log);
    /* the lease is n1's with epoch 3; this node believes 2 */
    grant("s", "n1", 3);
    store_fence_set(st, "s", 2);
    expect_all_fenced(st, "s", &log);
    /* the right epoch: writes go through */
    store_fence_set(st, "s", 3);
    fill(&c, 2);
    assert_int_equal(store_save(st, "s", &c), 0);
    assert_int_equal(store_meta_set(st, "s", "k", "old", 3), 0);
    assert_int_equal(store_prekeys_mark_uploaded(st, "s", 0), 0);
    fill(&c, 1);
    assert_int_equal(store_save(st, "s", &c), 0);
    /* the service-wide values are not a session's */
    assert_int_equal(store_meta_set(st, "", "wa_version", "2.3", 3), 0);
    int calls = log.calls;
    /* expired by the database clock */
    exec_sql("UPDATE leases SET expires_at = now() - interval '1 s' WHERE session = 's'");
    expect_all_fenced(st, "s", &log);
    /* taken over by another node (a higher epoch) */
    grant("s", "n2", 4);
    store_fence_set(st, "s", 4);
    expect_all_fenced(st, "s", &log);
    assert_true(log.calls > calls);
    /* not fenced: session create and delete, webhooks */
    uint8_t key[16] = {1};
    store_webhook_t t = {.url = "https://x.example/", .secret = key, .secret_len = 16};
    snprintf(t.id, sizeof(t.id), "w");
    assert_int_equal(store_webhook_put(st, &t), 0);
    assert_int_equal(store_session_add(st, "other", NULL, NULL), 0);
    assert_int_equal(store_session_delete(st, "other"), 0);
    /* back to this node */
    grant("s", "n1", 5);
    store_fence_set(st, "s", 5);
    assert_int_equal(store_wipe(st, "s"), 0);
    store_close(st);
}

/* store_events_append with two sessions, one fenced: the other's events
 * are committed, the fenced one's are not (id 0), STORE_EFENCED, one
 * callback for the fenced session. */
static void test_pg_append_partly_fenced(void **state)
{
    (void)state;
    store_t *st = open_ok();
    fenced_log_t log = {0};
    store_on_fenced(st, on_fenced, &log);
    assert_int_equal(store_session_add(st, "mine", NULL, NULL), 0);
    assert_int_equal(store_session_add(st, "lost", NULL, NULL), 0);
    assert_int_equal(store_set_node(st, "n1"), 0);
    grant("mine", "n1", 7);
    grant("lost", "n2", 8);
    store_fence_set(st, "mine", 7);
    store_fence_set(st, "lost", 7);
    store_event_t ev[5] = {
        {.session = "mine", .seq = 1, .ts_ms = 1, .type = "t", .body = "{}", .body_len = 2},
        {.session = "lost", .seq = 1, .ts_ms = 1, .type = "t", .body = "{}", .body_len = 2},
        {.session = "mine", .seq = 2, .ts_ms = 1, .type = "t", .body = "{}", .body_len = 2},
        {.session = "lost", .seq = 2, .ts_ms = 1, .type = "t", .body = "{}", .body_len = 2},
        {.session = NULL, .seq = 0, .ts_ms = 1, .type = "svc", .body = "{}", .body_len = 2},
    };
    assert_int_equal(store_events_append(st, ev, 5), STORE_EFENCED);
    assert_true(ev[0].id > 0);
    assert_true(ev[2].id > ev[0].id);
    assert_true(ev[4].id > 0);
    assert_int_equal(ev[1].id, 0);
    assert_int_equal(ev[3].id, 0);
    assert_int_equal(log.calls, 1);
    assert_int_equal(store_fenced_writes(st), 2); /* an event each */
    assert_string_equal(log.last, "lost");
    assert_int_equal(count_rows("SELECT count(*) FROM events WHERE session = 'mine'"), 2);
    assert_int_equal(count_rows("SELECT count(*) FROM events WHERE session = 'lost'"), 0);
    uint64_t seq;
    assert_int_equal(store_events_last_seq(st, "lost", &seq), 0);
    assert_int_equal(seq, 0);
    store_close(st);
}

/* Events made under an older epoch than the lease this node holds now are
 * refused without calling the fenced callback (the node holds the session:
 * only those events are stale), whatever the lease row says; events made
 * under the epoch held are stored; epoch 0 means the one store_fence_set
 * gave. */
static void test_pg_stale_epoch_refused(void **state)
{
    (void)state;
    store_t *st = open_ok();
    fenced_log_t log = {0};
    store_on_fenced(st, on_fenced, &log);
    assert_int_equal(store_session_add(st, "s", NULL, NULL), 0);
    assert_int_equal(store_set_node(st, "n1"), 0);
    grant("s", "n1", 6);
    store_fence_set(st, "s", 6);
    store_event_t ev[3] = {
        {.session = "s", .seq = 1, .ts_ms = 1, .type = "t", .body = "{}", .body_len = 2},
        {.session = "s",
         .seq = 2,
         .ts_ms = 1,
         .type = "t",
         .body = "{}",
         .body_len = 2,
         .epoch = 5},
        {.session = "s",
         .seq = 3,
         .ts_ms = 1,
         .type = "t",
         .body = "{}",
         .body_len = 2,
         .epoch = 6},
    };
    assert_int_equal(store_events_append(st, ev, 3), STORE_EFENCED);
    assert_true(ev[0].id > 0);
    assert_int_equal(ev[1].id, 0);
    assert_true(ev[2].id > ev[0].id);
    assert_int_equal(log.calls, 0);
    assert_int_equal(store_fenced_writes(st), 1); /* counted, no callback */
    /* the lease went (another node, epoch 7): the held epoch's events are
     * refused and the callback says so */
    grant("s", "n2", 7);
    store_event_t e = {
        .session = "s", .seq = 4, .ts_ms = 1, .type = "t", .body = "{}", .body_len = 2, .epoch = 6};
    assert_int_equal(store_events_append(st, &e, 1), STORE_EFENCED);
    assert_int_equal(e.id, 0);
    assert_int_equal(log.calls, 1);
    assert_int_equal(store_fenced_writes(st), 2);
    assert_int_equal(count_rows("SELECT count(*) FROM events WHERE session = 's'"), 2);
    assert_int_equal(store_events_retries(st), 0);
    store_close(st);
}

/* What the lock-order test's other transaction did. */
typedef struct {
    store_t *st;
    store_event_t ev[2];
    int rc;
} order_append_t;

static void *order_append(void *arg)
{
    order_append_t *a = arg;
    a->rc = store_events_append(a->st, a->ev, 2);
    return NULL;
}

/* The lease rows an append locks FOR SHARE are locked in the order the
 * cluster's renewal locks them (by name): a transaction holding "a" and
 * then updating "b" (as a renewal does) while an append of "b" then "a"
 * waits never deadlocks; both complete, nothing retried. */
static void test_pg_append_locks_in_order(void **state)
{
    (void)state;
    store_t *st = open_ok();
    assert_int_equal(store_session_add(st, "a", NULL, NULL), 0);
    assert_int_equal(store_session_add(st, "b", NULL, NULL), 0);
    assert_int_equal(store_set_node(st, "n1"), 0);
    grant("a", "n1", 1);
    grant("b", "n1", 1);
    store_fence_set(st, "a", 1);
    store_fence_set(st, "b", 1);
    PGconn *x = PQconnectdb(testdb_url());
    assert_int_equal(PQstatus(x), CONNECTION_OK);
    PGresult *r = PQexec(x, "BEGIN; UPDATE leases SET expires_at = expires_at WHERE session = 'a'");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    order_append_t a = {
        .st = st,
        .ev = {{.session = "b", .seq = 1, .ts_ms = 1, .type = "t", .body = "{}", .body_len = 2},
               {.session = "a", .seq = 1, .ts_ms = 1, .type = "t", .body = "{}", .body_len = 2}}};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, order_append, &a), 0);
    /* until the append waits for "a" */
    long long waiting = 0;
    for (int i = 0; i < 500 && !waiting; i++) {
        usleep(10000);
        assert_int_equal(testdb_pg_exec("SELECT count(*) FROM pg_stat_activity"
                                        " WHERE wait_event_type = 'Lock'",
                                        &waiting),
                         0);
    }
    assert_true(waiting > 0);
    r = PQexec(x, "UPDATE leases SET expires_at = expires_at WHERE session = 'b'");
    ExecStatusType upd = PQresultStatus(r);
    if (upd != PGRES_COMMAND_OK)
        fprintf(stderr, "the renewal's update: %s", PQresultErrorMessage(r));
    PQclear(r);
    PQclear(PQexec(x, upd == PGRES_COMMAND_OK ? "COMMIT" : "ROLLBACK"));
    assert_int_equal(pthread_join(t, NULL), 0);
    PQfinish(x);
    assert_int_equal(upd, PGRES_COMMAND_OK);
    assert_int_equal(a.rc, 0);
    assert_true(a.ev[0].id > 0 && a.ev[1].id > 0);
    assert_int_equal(store_events_retries(st), 0);
    store_close(st);
}

/* Waits up to 5 s for a notification on c; 1 with its channel and payload
 * copied, else 0. */
static int next_notify(PGconn *c, char *channel, char *payload)
{
    for (int i = 0; i < 100; i++) {
        PQconsumeInput(c);
        PGnotify *n = PQnotifies(c);
        if (n) {
            snprintf(channel, 64, "%s", n->relname);
            snprintf(payload, 128, "%s", n->extra);
            PQfreemem(n);
            return 1;
        }
        struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
        poll(&pfd, 1, 50);
    }
    return 0;
}

/* Listeners on other connections (other nodes) wake after the commit of
 * an append (one notification per session) and of a session's creation
 * and deletion. */
static void test_pg_notify(void **state)
{
    (void)state;
    store_t *st = open_ok();
    PGconn *l = PQconnectdb(testdb_url());
    assert_int_equal(PQstatus(l), CONNECTION_OK);
    PGresult *r = PQexec(l, "LISTEN wagw_events; LISTEN wagw_sessions");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    char ch[64], pl[128];
    assert_int_equal(store_session_add(st, "alpha", NULL, NULL), 0);
    assert_true(next_notify(l, ch, pl));
    assert_string_equal(ch, "wagw_sessions");
    assert_string_equal(pl, "alpha");
    store_event_t ev[3] = {
        {.session = "alpha", .seq = 1, .ts_ms = 1, .type = "t", .body = "{}", .body_len = 2},
        {.session = "alpha", .seq = 2, .ts_ms = 1, .type = "t", .body = "{}", .body_len = 2},
        {.session = "beta", .seq = 1, .ts_ms = 1, .type = "t", .body = "{}", .body_len = 2},
    };
    assert_int_equal(store_events_append(st, ev, 3), 0);
    int alpha = 0, beta = 0;
    while (next_notify(l, ch, pl)) {
        assert_string_equal(ch, "wagw_events");
        alpha += !strcmp(pl, "alpha");
        beta += !strcmp(pl, "beta");
        if (alpha + beta == 2)
            break;
    }
    assert_int_equal(alpha, 1);
    assert_int_equal(beta, 1);
    assert_int_equal(store_session_delete(st, "alpha"), 0);
    assert_true(next_notify(l, ch, pl));
    assert_string_equal(ch, "wagw_sessions");
    assert_string_equal(pl, "alpha");
    /* a refused append notifies nothing */
    store_event_t bad = {
        .session = "alpha", .seq = 1, .ts_ms = 1, .type = "t", .body = "{}", .body_len = 2};
    assert_true(store_events_append(st, &bad, 1) < 0);
    PQconsumeInput(l);
    PGnotify *n = PQnotifies(l);
    assert_null(n);
    PQfinish(l);
    store_close(st);
}

/* The server drops the store's connections (a restart, a failover): the
 * next call reconnects once and goes through, on the writer and on the
 * readers' connection. */
static void test_pg_reconnect(void **state)
{
    (void)state;
    store_t *st = open_ok();
    assert_int_equal(store_session_add(st, "s", NULL, NULL), 0);
    store_event_t e = {
        .session = "s", .seq = 1, .ts_ms = 1, .type = "t", .body = "{}", .body_len = 2};
    assert_int_equal(store_events_append(st, &e, 1), 0);
    for (int round = 0; round < 2; round++) {
        long long killed = 0;
        assert_int_equal(
            testdb_pg_exec("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                           " WHERE application_name = 'wa-gateway'",
                           &killed),
            0);
        assert_int_equal(killed, 2);
        store_session_t ss;
        assert_int_equal(store_session_get(st, "s", &ss), 0);
        store_event_t out[2];
        size_t n;
        uint64_t pruned;
        assert_int_equal(store_events_read(st, "s", 0, 2, out, &n, &pruned), 0);
        assert_int_equal(n, 1);
        store_events_free(out, n);
    }
    store_close(st);
}

/* A server that does not answer gives STORE_EIO in bounded time, never a
 * hang: a lock held elsewhere (the server's statement_timeout), then the
 * store's server processes stopped (the client-side bound); once they run
 * again the next call reconnects. */
static void test_pg_hung_server(void **state)
{
    (void)state;
    store_t *st = open_ok();
    assert_int_equal(store_session_add(st, "s", NULL, NULL), 0);
    PGconn *l = PQconnectdb(testdb_url());
    assert_int_equal(PQstatus(l), CONNECTION_OK);
    PGresult *r = PQexec(l, "BEGIN; LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    store_session_t ss;
    assert_int_equal(store_session_get(st, "s", &ss), STORE_EIO);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000L + (t1.tv_nsec - t0.tv_nsec) / 1000000L;
    assert_true(ms >= STORE_PG_TIMEOUT_MS - 500 && ms < STORE_PG_TIMEOUT_MS + 3000);
    PQfinish(l); /* the lock goes */
    assert_int_equal(store_session_get(st, "s", &ss), 0);
    /* the store's server processes stop answering */
    r = PQexec(l = PQconnectdb(testdb_url()),
               "SELECT pid FROM pg_stat_activity WHERE application_name = 'wa-gateway'");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 2);
    pid_t pids[2] = {(pid_t)atoi(PQgetvalue(r, 0, 0)), (pid_t)atoi(PQgetvalue(r, 1, 0))};
    PQclear(r);
    PQfinish(l);
    for (int i = 0; i < 2; i++)
        assert_int_equal(kill(pids[i], SIGSTOP), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(store_session_get(st, "s", &ss), STORE_EIO);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (t1.tv_sec - t0.tv_sec) * 1000L + (t1.tv_nsec - t0.tv_nsec) / 1000000L;
    assert_true(ms >= STORE_PG_TIMEOUT_MS && ms < 3 * STORE_PG_TIMEOUT_MS);
    for (int i = 0; i < 2; i++)
        assert_int_equal(kill(pids[i], SIGCONT), 0);
    assert_int_equal(store_session_get(st, "s", &ss), 0);
    store_close(st);
}

/* Every session's last seq in one query: none at first, then each
 * session's highest, unchanged by a refused append. */
static void test_events_last_seqs(void **state)
{
    (void)state;
    store_t *st = open_ok();
    store_seq_t *v = NULL;
    size_t n = 9;
    assert_int_equal(store_events_last_seqs(st, &v, &n), 0);
    assert_int_equal(n, 0);
    store_seqs_free(v, n);
    store_event_t ev[5];
    for (int i = 0; i < 5; i++)
        ev[i] = (store_event_t){.session = i < 2 ? "alpha" : "beta",
                                .seq = i < 2 ? (uint64_t)i + 1 : (uint64_t)i + 5,
                                .ts_ms = 1000 + i,
                                .type = "session.status",
                                .body = "{}",
                                .body_len = 2};
    assert_int_equal(store_events_append(st, ev, 5), 0);
    store_event_t old = {
        .session = "alpha", .seq = 1, .ts_ms = 1, .type = "t", .body = "{}", .body_len = 2};
    assert_true(store_events_append(st, &old, 1) < 0);
    assert_int_equal(store_events_last_seqs(st, &v, &n), 0);
    assert_int_equal(n, 2);
    uint64_t alpha = 0, beta = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(v[i].session, "alpha"))
            alpha = v[i].seq;
        else if (!strcmp(v[i].session, "beta"))
            beta = v[i].seq;
    }
    assert_int_equal(alpha, 2);
    assert_int_equal(beta, 9);
    store_seqs_free(v, n);
    store_close(st);
}

int main(void)
{
    /* on PostgreSQL (STORE_TEST_URL set), only the tests not about SQLite
     * files, and those of what is PostgreSQL's alone */
    const struct CMUnitTest both[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_and_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wipe_and_prekeys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_keeps_prekeys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_meta_removals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_and_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_last_seqs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_lease_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_redacted, setup, teardown),
    };
    const struct CMUnitTest sqlite_only[] = {
        cmocka_unit_test_setup_teardown(test_newer_and_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wipe_leaves_no_key_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_store_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_and_no_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_4_to_5, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigkill_consistency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_not_fenced, setup, teardown),
    };
    const struct CMUnitTest pg_only[] = {
        cmocka_unit_test_setup_teardown(test_pg_newer_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_concurrent_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_fencing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_append_partly_fenced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_stale_epoch_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_append_locks_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_notify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_hung_server, setup, teardown),
    };
    int failed = cmocka_run_group_tests_name("both backends", both, NULL, NULL);
    if (testdb_is_pg())
        failed += cmocka_run_group_tests_name("postgresql", pg_only, NULL, NULL);
    else
        failed += cmocka_run_group_tests_name("sqlite", sqlite_only, NULL, NULL);
    return failed;
}
