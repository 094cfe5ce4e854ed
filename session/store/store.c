/* SQLite implementation of the credential store (see store.h). Before
 * anything is written, DATA_DIR and the file are checked (ours, not open to
 * others, no symbolic links) and an existing file is validated through a
 * read-only connection (SQLite header, schema version, integrity check), so
 * that a refused file is left exactly as it was; only then is it opened for
 * writing and WAL mode and migrations applied. Deleted key material is
 * zeroed (secure_delete) and the WAL, which still holds the old pages, is
 * checkpointed and truncated after every wipe. */
#include "session/store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/log.h"
#include "session/store/store_internal.h"

/* Migrations, in order: migrations[i] takes the schema from i to i + 1. */
static const char *const migrations[] = {
    "CREATE TABLE creds ("
    " session TEXT PRIMARY KEY,"
    " noise_priv BLOB NOT NULL, noise_pub BLOB NOT NULL,"
    " ident_priv BLOB NOT NULL, ident_pub BLOB NOT NULL,"
    " spk_id INTEGER NOT NULL, spk_priv BLOB NOT NULL, spk_pub BLOB NOT NULL,"
    " spk_sig BLOB NOT NULL, reg_id INTEGER NOT NULL, adv_secret BLOB NOT NULL,"
    " next_prekey_id INTEGER NOT NULL DEFAULT 1,"
    " account BLOB, jid TEXT, lid TEXT, push_name TEXT, platform TEXT, business_name TEXT,"
    " updated_at INTEGER NOT NULL DEFAULT (strftime('%s','now')));"
    "CREATE TABLE prekeys ("
    " session TEXT NOT NULL REFERENCES creds(session) ON DELETE CASCADE,"
    " id INTEGER NOT NULL, priv BLOB NOT NULL, pub BLOB NOT NULL,"
    " uploaded INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (session, id));",
    /* 1 -> 2: a pairing is confirmed once the server asked for the restart
     * or accepted a login; pairings from version 1 were complete. */
    "ALTER TABLE creds ADD COLUMN confirmed INTEGER NOT NULL DEFAULT 1;",
    /* 2 -> 3: the sessions themselves (several accounts: name, the hash of
     * the session's own API key, the device name the phone shows), small
     * values per session (edge routing info, the discovered WhatsApp Web
     * version), and devices logged out while offline whose removal request
     * still has to reach WhatsApp. Sessions that had credentials exist. */
    "CREATE TABLE sessions ("
    " name TEXT PRIMARY KEY, key_hash BLOB, device_name TEXT,"
    " created_at INTEGER NOT NULL DEFAULT (strftime('%s','now')));"
    "INSERT INTO sessions (name) SELECT session FROM creds;"
    "CREATE TABLE meta ("
    " session TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY (session, key));"
    "CREATE TABLE removals ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, session TEXT NOT NULL, jid TEXT NOT NULL,"
    " noise_priv BLOB NOT NULL, noise_pub BLOB NOT NULL,"
    " created_at INTEGER NOT NULL DEFAULT (strftime('%s','now')));",
    /* 3 -> 4: the event log (resumable streams) and the webhook outbox.
     * event_heads keeps each name's last seq and what retention deleted,
     * beyond the session's life. A webhook target's `events` is the filter
     * as " type1 type2 " ("" = every type); `session` NULL = every session.
     * A delivery row exists while it is pending (state 0) or dead (2); a
     * delivered one is deleted. */
    "CREATE TABLE events ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, session TEXT, seq INTEGER NOT NULL,"
    " ts INTEGER NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL);"
    "CREATE UNIQUE INDEX events_by_session ON events (session, seq);"
    "CREATE INDEX events_by_ts ON events (ts);"
    "CREATE TABLE event_heads ("
    " session TEXT PRIMARY KEY, last_seq INTEGER NOT NULL DEFAULT 0,"
    " pruned_seq INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE webhook_targets ("
    " id TEXT PRIMARY KEY, url TEXT NOT NULL, secret BLOB NOT NULL, session TEXT,"
    " events TEXT NOT NULL DEFAULT '', deleting INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL DEFAULT (strftime('%s','now')));"
    "CREATE TABLE webhook_deliveries ("
    " target TEXT NOT NULL REFERENCES webhook_targets(id) ON DELETE CASCADE,"
    " event_id INTEGER NOT NULL, state INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT, PRIMARY KEY (target, event_id)) WITHOUT ROWID;"
    "CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_id);"
    /* a target's next pending delivery in O(log n), whatever its dead
     * backlog (session/webhook reads only the head of each target) */
    "CREATE INDEX webhook_deliveries_next ON webhook_deliveries (target, state, event_id);",
    /* 4 -> 5: several nodes on one PostgreSQL database (design.md, "Several
     * nodes"): the nodes and each session's lease (owner, epoch, expiry).
     * Unused by SQLite, created so that both backends have one schema; times
     * are milliseconds since the epoch. Every session has its lease row. */
    "CREATE TABLE nodes ("
    " id TEXT PRIMARY KEY, advertise_url TEXT, started_at INTEGER, heartbeat_at INTEGER,"
    " draining INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE leases ("
    " session TEXT PRIMARY KEY, owner TEXT, epoch INTEGER NOT NULL DEFAULT 0,"
    " expires_at INTEGER, acquired_at INTEGER);"
    "CREATE INDEX leases_by_owner ON leases (owner);"
    "INSERT INTO leases (session) SELECT name FROM sessions;",
};

#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

sqlite3_stmt *store_stmt(store_t *st, int which, const char *sql)
{
    sqlite3_stmt **slot = &st->stmt[which];
    if (*slot) {
        sqlite3_reset(*slot);
        sqlite3_clear_bindings(*slot);
        return *slot;
    }
    if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) != SQLITE_OK) {
        sqlite3_finalize(*slot);
        *slot = NULL;
    }
    return *slot;
}

int store_exec(store_t *st, const char *sql)
{
    return sqlite3_exec(st->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : STORE_EIO;
}

static int pragma_int(sqlite3 *db, const char *sql, int *out)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        sqlite3_finalize(s);
        return -1;
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* DATA_DIR must belong to this service's user and be closed to others. A
 * directory others may write to is refused (they could have replaced the
 * store or planted links); one they may only read is closed (mode 0700).
 * Returns 0 or a negative code with a message in err. */
static int check_dir(int dfd, const char *dir, char *err, size_t errlen)
{
    struct stat sb;
    if (fstat(dfd, &sb) != 0) {
        snprintf(err, errlen, "cannot stat DATA_DIR '%s': %s", dir, strerror(errno));
        return STORE_EIO;
    }
    if (sb.st_uid != geteuid()) {
        snprintf(err, errlen,
                 "DATA_DIR '%s' belongs to uid %u, not to this service's user (uid %u); "
                 "refusing to use it",
                 dir, (unsigned)sb.st_uid, (unsigned)geteuid());
        return STORE_EPERM;
    }
    if (sb.st_mode & 022) {
        snprintf(err, errlen,
                 "DATA_DIR '%s' is writable by other users (mode %03o); refusing to use it "
                 "(chmod 700 it after checking its contents)",
                 dir, (unsigned)(sb.st_mode & 0777));
        return STORE_EPERM;
    }
    if (sb.st_mode & 077) {
        if (fchmod(dfd, 0700) != 0) {
            snprintf(err, errlen, "cannot make DATA_DIR '%s' private (chmod 700): %s", dir,
                     strerror(errno));
            return STORE_EIO;
        }
        LOG_WARN("store", "DATA_DIR %s was open to other users (mode %03o); now 0700", dir,
                 (unsigned)(sb.st_mode & 0777));
    }
    return 0;
}

/* The store file and its WAL companions, when they exist, must be regular
 * files of ours, not symbolic links (which could point anywhere). */
static int check_file(int dfd, const char *dir, const char *name, char *err, size_t errlen)
{
    struct stat sb;
    if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 : STORE_EIO;
    if (S_ISLNK(sb.st_mode) || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s/%s is %s; refusing to touch it", dir, name,
                 S_ISLNK(sb.st_mode) ? "a symbolic link" : "not a regular file");
        return STORE_EPERM;
    }
    if (sb.st_uid != geteuid()) {
        snprintf(err, errlen,
                 "%s/%s belongs to uid %u, not to this service's user (uid %u); refusing to "
                 "touch it",
                 dir, name, (unsigned)sb.st_uid, (unsigned)geteuid());
        return STORE_EPERM;
    }
    return 0;
}

/* Validates an existing, non-empty store through a read-only connection:
 * nothing is written to the file or its WAL, so a refused store is left
 * byte for byte as it was. */
/* Runs SQLite's crash recovery on the file (rolls back a hot journal,
 * rebuilds the WAL index) through a writable connection that neither
 * checkpoints nor deletes the WAL when it closes. 0 or -1. */
static int recover(const char *path)
{
    sqlite3 *db = NULL;
    int version = 0, rc = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL) ==
        SQLITE_OK) {
        sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        sqlite3_busy_timeout(db, 5000);
        rc = pragma_int(db, "PRAGMA user_version", &version);
    }
    sqlite3_close_v2(db);
    return rc;
}

static int validate_ro_once(const char *path, int fd, char *err, size_t errlen, int recovered);

/* 1 when `path` + suffix is a non-empty regular file. */
static int companion_nonempty(const char *path, const char *suffix)
{
    char p[4096];
    struct stat sb;
    snprintf(p, sizeof(p), "%s%s", path, suffix);
    return lstat(p, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0;
}

/* Runs the crash recovery, then validates again; the error when it fails. */
static int recover_and_validate(const char *path, int fd, char *err, size_t errlen)
{
    if (recover(path) != 0) {
        snprintf(err, errlen, "%s needs crash recovery and it failed; refusing to touch it", path);
        return STORE_ECORRUPT;
    }
    return validate_ro_once(path, fd, err, errlen, 1);
}

static int validate_ro(const char *path, int fd, char *err, size_t errlen)
{
    /* killed while creating the file: its first pages may be half written,
     * with the hot journal that undoes them beside it */
    if (companion_nonempty(path, "-journal"))
        return recover_and_validate(path, fd, err, errlen);
    return validate_ro_once(path, fd, err, errlen, 0);
}

static int validate_ro_once(const char *path, int fd, char *err, size_t errlen, int recovered)
{
    char hdr[16];
    ssize_t n = pread(fd, hdr, sizeof(hdr), 0);
    if (n == 0 && recovered)
        return 0; /* the recovery undid the creation: an empty file, as new */
    if (n != 16 || memcmp(hdr, "SQLite format 3", 16) != 0) {
        /* killed in a checkpoint that had sized the file but not written
         * its first page yet: the pages are still in the WAL */
        if (!recovered && companion_nonempty(path, "-wal"))
            return recover_and_validate(path, fd, err, errlen);
        snprintf(err, errlen, "%s is not a SQLite database; refusing to touch it", path);
        return STORE_ECORRUPT;
    }
    sqlite3 *db = NULL;
    int rc = 0, version = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path,
                 db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close_v2(db);
        return STORE_EIO;
    }
    int prc = pragma_int(db, "PRAGMA user_version", &version);
    if (prc != 0 && (sqlite3_extended_errcode(db) & 0xff) == SQLITE_READONLY && !recovered) {
        /* a writer was killed mid-transaction (a hot journal, or a WAL
         * index to rebuild): a read-only connection cannot recover that.
         * Let SQLite do its crash recovery, then validate again. */
        sqlite3_close_v2(db);
        return recover_and_validate(path, fd, err, errlen);
    }
    if (prc != 0) {
        snprintf(err, errlen, "%s is not a readable SQLite database: %s", path, sqlite3_errmsg(db));
        rc = STORE_ECORRUPT;
    } else if (version > STORE_SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "%s has schema version %d, newer than this wa-gateway (%d); refusing to touch it",
                 path, version, STORE_SCHEMA_VERSION);
        rc = STORE_ENEWER;
    } else {
        sqlite3_stmt *s = NULL;
        if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &s, NULL) != SQLITE_OK ||
            sqlite3_step(s) != SQLITE_ROW ||
            strcmp((const char *)sqlite3_column_text(s, 0), "ok") != 0) {
            snprintf(err, errlen, "%s failed its integrity check; refusing to touch it", path);
            rc = STORE_ECORRUPT;
        }
        sqlite3_finalize(s);
    }
    sqlite3_close_v2(db);
    return rc;
}

/* Opens (or creates, 0600) the store file without following links, checks
 * who owns it, validates an existing one read-only, and closes it to
 * others (0600) once it passed. */
static int prepare_file(int dfd, const char *dir, const char *path, char *err, size_t errlen)
{
    int fd = openat(dfd, STORE_FILE_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        fd = openat(dfd, STORE_FILE_NAME, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == ELOOP) {
            snprintf(err, errlen, "%s is a symbolic link; refusing to follow it", path);
            return STORE_EPERM;
        }
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return STORE_EIO;
    }
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb) != 0) {
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        rc = STORE_EIO;
    } else if (!S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file; refusing to touch it", path);
        rc = STORE_EPERM;
    } else if (sb.st_uid != geteuid()) {
        snprintf(err, errlen,
                 "%s belongs to uid %u, not to this service's user (uid %u); refusing to touch it",
                 path, (unsigned)sb.st_uid, (unsigned)geteuid());
        rc = STORE_EPERM;
    } else if (sb.st_size > 0) {
        rc = validate_ro(path, fd, err, errlen);
    }
    (void)dir;
    if (rc == 0 && (sb.st_mode & 0777) != 0600) {
        if (fchmod(fd, 0600) != 0) {
            snprintf(err, errlen, "cannot make %s private (chmod 600): %s", path, strerror(errno));
            rc = STORE_EIO;
        } else if (sb.st_mode & 077) {
            LOG_WARN("store", "%s was open to other users (mode %03o); now 0600", path,
                     (unsigned)(sb.st_mode & 0777));
        }
    }
    close(fd);
    return rc;
}

int store_open(const char *dir, store_t **out, char *err, size_t errlen)
{
    *out = NULL;
    store_t *st = calloc(1, sizeof(*st));
    size_t plen = strlen(dir) + sizeof(STORE_FILE_NAME) + 2;
    if (!st || !(st->path = malloc(plen))) {
        free(st);
        snprintf(err, errlen, "out of memory");
        return STORE_ENOMEM;
    }
    snprintf(st->path, plen, "%s/%s", dir, STORE_FILE_NAME);
    st->be = &store_sqlite_backend;
    if (errlen)
        err[0] = 0;
    int rc = 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        snprintf(err, errlen, "cannot open DATA_DIR '%s': %s", dir, strerror(errno));
        rc = STORE_EIO;
        goto fail;
    }
    static const char *const companions[] = {STORE_FILE_NAME "-wal", STORE_FILE_NAME "-shm",
                                             STORE_FILE_NAME "-journal"};
    if (!(rc = check_dir(dfd, dir, err, errlen)) &&
        !(rc = check_file(dfd, dir, STORE_FILE_NAME, err, errlen)))
        for (size_t i = 0; !rc && i < sizeof(companions) / sizeof(companions[0]); i++)
            rc = check_file(dfd, dir, companions[i], err, errlen);
    if (!rc)
        rc = prepare_file(dfd, dir, st->path, err, errlen);
    close(dfd);
    if (rc) {
        if (rc == STORE_EIO && !err[0])
            snprintf(err, errlen, "cannot read %s: %s", st->path, strerror(errno));
        goto fail;
    }
    /* SQLite gives -wal and -shm the mode of the database file: 0600 */
    if (sqlite3_open_v2(st->path, &st->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", st->path,
                 st->db ? sqlite3_errmsg(st->db) : "out of memory");
        rc = STORE_EIO;
        goto fail;
    }
    sqlite3_busy_timeout(st->db, 5000);
    int version = 0;
    if (pragma_int(st->db, "PRAGMA user_version", &version) != 0 ||
        version > STORE_SCHEMA_VERSION) {
        /* changed since it was validated: another process at work */
        snprintf(err, errlen, "%s changed while it was being opened; refusing to touch it",
                 st->path);
        rc = STORE_ECORRUPT;
        goto fail;
    }
    if (store_exec(st, "PRAGMA journal_mode=WAL") || store_exec(st, "PRAGMA synchronous=FULL") ||
        store_exec(st, "PRAGMA foreign_keys=ON") || store_exec(st, "PRAGMA secure_delete=ON")) {
        snprintf(err, errlen, "cannot configure %s: %s", st->path, sqlite3_errmsg(st->db));
        rc = STORE_EIO;
        goto fail;
    }
    for (int v = version; v < STORE_SCHEMA_VERSION; v++) {
        char setv[64];
        snprintf(setv, sizeof(setv), "PRAGMA user_version=%d", v + 1);
        if (store_exec(st, "BEGIN IMMEDIATE") || store_exec(st, migrations[v]) ||
            store_exec(st, setv) || store_exec(st, "COMMIT")) {
            snprintf(err, errlen, "cannot migrate %s to schema %d: %s", st->path, v + 1,
                     sqlite3_errmsg(st->db));
            store_exec(st, "ROLLBACK");
            rc = STORE_EIO;
            goto fail;
        }
    }
    if (sqlite3_open_v2(st->path, &st->rd,
                        SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s for reading: %s", st->path,
                 st->rd ? sqlite3_errmsg(st->rd) : "out of memory");
        rc = STORE_EIO;
        goto fail;
    }
    sqlite3_busy_timeout(st->rd, 5000);
    pthread_mutex_init(&st->rd_mu, NULL);
    *out = st;
    return 0;
fail:
    if (st->rd)
        sqlite3_close_v2(st->rd);
    if (st->db)
        sqlite3_close_v2(st->db);
    free(st->path);
    free(st);
    return rc;
}

/* After key material was deleted: the deleted cells are zeroed in the new
 * page images (secure_delete), but the WAL still holds the old ones. Copy
 * the new pages into the database and truncate the WAL to nothing. */
static int scrub_wal(store_t *st)
{
    sqlite3_stmt *s = NULL;
    int rc = STORE_EIO;
    if (sqlite3_prepare_v2(st->db, "PRAGMA wal_checkpoint(TRUNCATE)", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 0)
        rc = 0; /* not blocked by a reader */
    sqlite3_finalize(s);
    return rc;
}

static void sq_close(store_t *st)
{
    sqlite3_close(st->rd);
    pthread_mutex_destroy(&st->rd_mu);
    for (int i = 0; i < STORE_STMT_COUNT; i++)
        sqlite3_finalize(st->stmt[i]);
    sqlite3_close(st->db);
}

static int blob(sqlite3_stmt *s, int col, uint8_t *dst, size_t len)
{
    if ((size_t)sqlite3_column_bytes(s, col) != len)
        return STORE_ECORRUPT;
    const void *p = sqlite3_column_blob(s, col);
    if (!p)
        return STORE_ECORRUPT;
    memcpy(dst, p, len);
    return 0;
}

char *store_text_dup(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    return t ? strdup((const char *)t) : NULL;
}

int sq_load(store_t *st, const char *session, store_creds_t *c)
{
    memset(c, 0, sizeof(*c));
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT noise_priv, noise_pub, ident_priv, ident_pub, spk_id, spk_priv,"
                           " spk_pub, spk_sig, reg_id, adv_secret, next_prekey_id, account, jid,"
                           " lid, push_name, platform, business_name, confirmed FROM creds"
                           " WHERE session=?",
                           -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, session, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        sqlite3_finalize(s);
        return STORE_ENOTFOUND;
    }
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(s);
        return STORE_EIO;
    }
    rc = blob(s, 0, c->noise_priv, 32) || blob(s, 1, c->noise_pub, 32) ||
                 blob(s, 2, c->ident_priv, 32) || blob(s, 3, c->ident_pub, 32) ||
                 blob(s, 5, c->spk_priv, 32) || blob(s, 6, c->spk_pub, 32) ||
                 blob(s, 7, c->spk_sig, 64) || blob(s, 9, c->adv_secret, 32)
             ? STORE_ECORRUPT
             : 0;
    c->spk_id = (uint32_t)sqlite3_column_int64(s, 4);
    c->reg_id = (uint32_t)sqlite3_column_int64(s, 8);
    c->next_prekey_id = (uint32_t)sqlite3_column_int64(s, 10);
    if (!rc && sqlite3_column_type(s, 11) == SQLITE_BLOB) {
        c->account_len = (size_t)sqlite3_column_bytes(s, 11);
        c->account = malloc(c->account_len ? c->account_len : 1);
        if (!c->account)
            rc = STORE_ENOMEM;
        else
            memcpy(c->account, sqlite3_column_blob(s, 11), c->account_len);
    }
    if (!rc) {
        c->jid = store_text_dup(s, 12);
        c->lid = store_text_dup(s, 13);
        c->push_name = store_text_dup(s, 14);
        c->platform = store_text_dup(s, 15);
        c->business_name = store_text_dup(s, 16);
        c->confirmed = sqlite3_column_int(s, 17);
        if (!c->jid != !c->account)
            rc = STORE_ECORRUPT; /* pairing data is written whole or not at all */
    }
    sqlite3_finalize(s);
    if (rc)
        store_creds_free(c);
    return rc;
}

void store_bind_opt_text(sqlite3_stmt *s, int i, const char *t)
{
    if (t)
        sqlite3_bind_text(s, i, t, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

/* Runs one prepared statement to completion inside its own transaction. */
int store_run_tx(store_t *st, sqlite3_stmt *s)
{
    if (store_exec(st, "BEGIN IMMEDIATE")) {
        sqlite3_finalize(s);
        return STORE_EIO;
    }
    int ok = sqlite3_step(s) == SQLITE_DONE;
    sqlite3_finalize(s);
    if (!ok || store_exec(st, "COMMIT")) {
        store_exec(st, "ROLLBACK");
        return STORE_EIO;
    }
    return 0;
}

int sq_save(store_t *st, const char *session, const store_creds_t *c)
{
    if (!c->jid != !c->account)
        return STORE_EINVAL;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(
            st->db,
            /* an upsert: a REPLACE would delete the row first, and with it
             * (ON DELETE CASCADE) every pre-key of the session */
            "INSERT INTO creds (session, noise_priv, noise_pub,"
            " ident_priv, ident_pub, spk_id, spk_priv, spk_pub, spk_sig, reg_id,"
            " adv_secret, next_prekey_id, account, jid, lid, push_name, platform,"
            " business_name, confirmed) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(session) DO UPDATE SET noise_priv=excluded.noise_priv,"
            " noise_pub=excluded.noise_pub, ident_priv=excluded.ident_priv,"
            " ident_pub=excluded.ident_pub, spk_id=excluded.spk_id, spk_priv=excluded.spk_priv,"
            " spk_pub=excluded.spk_pub, spk_sig=excluded.spk_sig, reg_id=excluded.reg_id,"
            " adv_secret=excluded.adv_secret,"
            /* the counter never goes back: the kept pre-keys use the ids below it */
            " next_prekey_id=max(creds.next_prekey_id, excluded.next_prekey_id),"
            " account=excluded.account, jid=excluded.jid, lid=excluded.lid,"
            " push_name=excluded.push_name, platform=excluded.platform,"
            " business_name=excluded.business_name, confirmed=excluded.confirmed,"
            " updated_at=strftime('%s','now')",
            -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, session, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(s, 2, c->noise_priv, 32, SQLITE_TRANSIENT);
    sqlite3_bind_blob(s, 3, c->noise_pub, 32, SQLITE_TRANSIENT);
    sqlite3_bind_blob(s, 4, c->ident_priv, 32, SQLITE_TRANSIENT);
    sqlite3_bind_blob(s, 5, c->ident_pub, 32, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 6, c->spk_id);
    sqlite3_bind_blob(s, 7, c->spk_priv, 32, SQLITE_TRANSIENT);
    sqlite3_bind_blob(s, 8, c->spk_pub, 32, SQLITE_TRANSIENT);
    sqlite3_bind_blob(s, 9, c->spk_sig, 64, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 10, c->reg_id);
    sqlite3_bind_blob(s, 11, c->adv_secret, 32, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 12, c->next_prekey_id ? c->next_prekey_id : 1);
    if (c->account)
        sqlite3_bind_blob(s, 13, c->account, (int)c->account_len, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, 13);
    store_bind_opt_text(s, 14, c->jid);
    store_bind_opt_text(s, 15, c->lid);
    store_bind_opt_text(s, 16, c->push_name);
    store_bind_opt_text(s, 17, c->platform);
    store_bind_opt_text(s, 18, c->business_name);
    sqlite3_bind_int(s, 19, c->confirmed);
    return store_run_tx(st, s);
}

int sq_save_pairing(store_t *st, const char *session, const uint8_t *account, size_t account_len,
                    const char *jid, const char *lid, const char *platform,
                    const char *business_name, const char *push_name)
{
    if (!account || !jid)
        return STORE_EINVAL;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db,
                           "UPDATE creds SET account=?, jid=?, lid=?, platform=?, business_name=?,"
                           " push_name=?, confirmed=0, updated_at=strftime('%s','now')"
                           " WHERE session=?",
                           -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_blob(s, 1, account, (int)account_len, SQLITE_TRANSIENT);
    store_bind_opt_text(s, 2, jid);
    store_bind_opt_text(s, 3, lid);
    store_bind_opt_text(s, 4, platform);
    store_bind_opt_text(s, 5, business_name);
    store_bind_opt_text(s, 6, push_name);
    sqlite3_bind_text(s, 7, session, -1, SQLITE_TRANSIENT);
    int rc = store_run_tx(st, s);
    if (rc == 0 && sqlite3_changes(st->db) != 1)
        return STORE_ENOTFOUND;
    return rc;
}

int sq_confirm_pairing(store_t *st, const char *session)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, "UPDATE creds SET confirmed=1 WHERE session=? AND confirmed=0",
                           -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, session, -1, SQLITE_TRANSIENT);
    return store_run_tx(st, s);
}

int sq_wipe(store_t *st, const char *session)
{
    sqlite3_stmt *a = NULL, *b = NULL;
    if (store_exec(st, "BEGIN IMMEDIATE"))
        return STORE_EIO;
    int ok = sqlite3_prepare_v2(st->db, "DELETE FROM prekeys WHERE session=?", -1, &a, NULL) ==
             SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(a, 1, session, -1, SQLITE_TRANSIENT);
        ok = sqlite3_step(a) == SQLITE_DONE;
        sqlite3_finalize(a);
    }
    if (ok && (ok = sqlite3_prepare_v2(st->db, "DELETE FROM creds WHERE session=?", -1, &b, NULL) ==
                    SQLITE_OK)) {
        sqlite3_bind_text(b, 1, session, -1, SQLITE_TRANSIENT);
        ok = sqlite3_step(b) == SQLITE_DONE;
        sqlite3_finalize(b);
    }
    if (!ok || store_exec(st, "COMMIT")) {
        store_exec(st, "ROLLBACK");
        return STORE_EIO;
    }
    return scrub_wal(st);
}

/* Runs `sql` with `session` bound to its first parameter, inside the
 * current transaction. */
static int exec_session(store_t *st, const char *sql, const char *session)
{
    sqlite3_stmt *a = NULL;
    int ok = sqlite3_prepare_v2(st->db, sql, -1, &a, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(a, 1, session, -1, SQLITE_TRANSIENT);
        ok = sqlite3_step(a) == SQLITE_DONE;
    }
    sqlite3_finalize(a);
    return ok ? 0 : STORE_EIO;
}

int sq_session_add(store_t *st, const char *name, const uint8_t key_hash[32],
                   const char *device_name)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db,
                           "INSERT INTO sessions (name, key_hash, device_name) VALUES (?,?,?)"
                           " ON CONFLICT(name) DO NOTHING",
                           -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
    if (key_hash)
        sqlite3_bind_blob(s, 2, key_hash, 32, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, 2);
    store_bind_opt_text(s, 3, device_name);
    if (store_exec(st, "BEGIN IMMEDIATE")) {
        sqlite3_finalize(s);
        return STORE_EIO;
    }
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : STORE_EIO;
    sqlite3_finalize(s);
    if (!rc && sqlite3_changes(st->db) != 1)
        rc = STORE_EEXISTS;
    /* its lease row (schema 5), in the same transaction */
    if (!rc)
        rc = exec_session(st, "INSERT INTO leases (session) VALUES (?) ON CONFLICT DO NOTHING",
                          name);
    if (rc || store_exec(st, "COMMIT")) {
        store_exec(st, "ROLLBACK");
        return rc ? rc : STORE_EIO;
    }
    return 0;
}

int sq_session_set_key(store_t *st, const char *name, const uint8_t key_hash[32])
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, "UPDATE sessions SET key_hash=? WHERE name=?", -1, &s, NULL) !=
        SQLITE_OK)
        return STORE_EIO;
    if (key_hash)
        sqlite3_bind_blob(s, 1, key_hash, 32, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, 1);
    sqlite3_bind_text(s, 2, name, -1, SQLITE_TRANSIENT);
    int rc = store_run_tx(st, s);
    if (rc == 0 && sqlite3_changes(st->db) != 1)
        return STORE_ENOTFOUND;
    return rc;
}

static void session_row(sqlite3_stmt *s, store_session_t *r)
{
    memset(r, 0, sizeof(*r));
    const unsigned char *name = sqlite3_column_text(s, 0), *dev = sqlite3_column_text(s, 2);
    snprintf(r->name, sizeof(r->name), "%s", name ? (const char *)name : "");
    if (sqlite3_column_type(s, 1) == SQLITE_BLOB && sqlite3_column_bytes(s, 1) == 32) {
        memcpy(r->key_hash, sqlite3_column_blob(s, 1), 32);
        r->has_key = 1;
    }
    snprintf(r->device_name, sizeof(r->device_name), "%s", dev ? (const char *)dev : "");
    r->created_at = sqlite3_column_int64(s, 3);
}

int sq_session_get(store_t *st, const char *name, store_session_t *out)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT name, key_hash, device_name, created_at FROM sessions"
                           " WHERE name=?",
                           -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        session_row(s, out);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
}

int sq_sessions_list(store_t *st, store_session_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT name, key_hash, device_name, created_at FROM sessions"
                           " ORDER BY created_at, name",
                           -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    size_t cap = 0;
    store_session_t *v = NULL;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            store_session_t *nv = realloc(v, nc * sizeof(*nv));
            if (!nv) {
                free(v);
                sqlite3_finalize(s);
                *n = 0;
                return STORE_ENOMEM;
            }
            v = nv;
            cap = nc;
        }
        session_row(s, &v[(*n)++]);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        free(v);
        *n = 0;
        return STORE_EIO;
    }
    *out = v;
    return 0;
}

int sq_session_delete(store_t *st, const char *name)
{
    if (store_exec(st, "BEGIN IMMEDIATE"))
        return STORE_EIO;
    int rc = exec_session(st, "DELETE FROM prekeys WHERE session=?", name);
    if (!rc)
        rc = exec_session(st, "DELETE FROM creds WHERE session=?", name);
    if (!rc)
        rc = exec_session(st, "DELETE FROM meta WHERE session=?", name);
    if (!rc)
        rc = exec_session(st, "DELETE FROM leases WHERE session=?", name);
    if (!rc)
        rc = exec_session(st, "DELETE FROM sessions WHERE name=?", name);
    if (rc || store_exec(st, "COMMIT")) {
        store_exec(st, "ROLLBACK");
        return STORE_EIO;
    }
    return scrub_wal(st); /* its keys are gone from the WAL too */
}

int sq_retire(store_t *st, const char *session)
{
    if (store_exec(st, "BEGIN IMMEDIATE"))
        return STORE_EIO;
    int rc = exec_session(st,
                          "INSERT INTO removals (session, jid, noise_priv, noise_pub)"
                          " SELECT session, jid, noise_priv, noise_pub FROM creds"
                          " WHERE session=? AND jid IS NOT NULL",
                          session);
    if (!rc)
        rc = exec_session(st, "DELETE FROM prekeys WHERE session=?", session);
    if (!rc)
        rc = exec_session(st, "DELETE FROM creds WHERE session=?", session);
    if (rc || store_exec(st, "COMMIT")) {
        store_exec(st, "ROLLBACK");
        return STORE_EIO;
    }
    return scrub_wal(st); /* what stays is in removals, until store_removal_done */
}

int sq_removals_list(store_t *st, store_removal_t *out, size_t max, size_t *n)
{
    *n = 0;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT id, session, jid, noise_priv, noise_pub FROM removals"
                           " ORDER BY id LIMIT ?",
                           -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)max);
    int rc = 0;
    while (*n < max && sqlite3_step(s) == SQLITE_ROW) {
        store_removal_t *r = &out[*n];
        memset(r, 0, sizeof(*r));
        r->id = sqlite3_column_int64(s, 0);
        const unsigned char *sess = sqlite3_column_text(s, 1), *jid = sqlite3_column_text(s, 2);
        snprintf(r->session, sizeof(r->session), "%s", sess ? (const char *)sess : "");
        snprintf(r->jid, sizeof(r->jid), "%s", jid ? (const char *)jid : "");
        if (blob(s, 3, r->noise_priv, 32) || blob(s, 4, r->noise_pub, 32)) {
            rc = STORE_ECORRUPT;
            break;
        }
        (*n)++;
    }
    sqlite3_finalize(s);
    return rc;
}

int sq_removal_done(store_t *st, int64_t id)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, "DELETE FROM removals WHERE id=?", -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_int64(s, 1, id);
    int rc = store_run_tx(st, s);
    return rc ? rc : scrub_wal(st);
}

int sq_meta_set(store_t *st, const char *session, const char *key, const void *value, size_t len)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db,
                           "INSERT INTO meta (session, key, value) VALUES (?,?,?)"
                           " ON CONFLICT(session, key) DO UPDATE SET value=excluded.value",
                           -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, session, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(s, 3, len ? value : "", (int)len, SQLITE_TRANSIENT);
    return store_run_tx(st, s);
}

int sq_meta_get(store_t *st, const char *session, const char *key, uint8_t **value, size_t *len)
{
    *value = NULL;
    *len = 0;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE session=? AND key=?", -1, &s,
                           NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, session, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, key, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(s);
        return rc == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
    }
    size_t n = (size_t)sqlite3_column_bytes(s, 0);
    uint8_t *v = malloc(n + 1);
    if (!v) {
        sqlite3_finalize(s);
        return STORE_ENOMEM;
    }
    if (n)
        memcpy(v, sqlite3_column_blob(s, 0), n);
    v[n] = 0;
    sqlite3_finalize(s);
    *value = v;
    *len = n;
    return 0;
}

int sq_prekeys_add(store_t *st, const char *session, const store_prekey_t *keys, size_t n)
{
    if (store_exec(st, "BEGIN IMMEDIATE"))
        return STORE_EIO;
    sqlite3_stmt *s = NULL;
    int ok =
        sqlite3_prepare_v2(st->db, "INSERT INTO prekeys (session, id, priv, pub) VALUES (?,?,?,?)",
                           -1, &s, NULL) == SQLITE_OK;
    uint32_t max = 0;
    for (size_t i = 0; ok && i < n; i++) {
        sqlite3_reset(s);
        sqlite3_bind_text(s, 1, session, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 2, keys[i].id);
        sqlite3_bind_blob(s, 3, keys[i].priv, 32, SQLITE_TRANSIENT);
        sqlite3_bind_blob(s, 4, keys[i].pub, 32, SQLITE_TRANSIENT);
        ok = sqlite3_step(s) == SQLITE_DONE;
        if (keys[i].id > max)
            max = keys[i].id;
    }
    sqlite3_finalize(s);
    sqlite3_stmt *u;
    if (ok && (ok = sqlite3_prepare_v2(st->db,
                                       "UPDATE creds SET next_prekey_id=max(next_prekey_id, ?)"
                                       " WHERE session=?",
                                       -1, &u, NULL) == SQLITE_OK)) {
        sqlite3_bind_int64(u, 1, (sqlite3_int64)max + 1);
        sqlite3_bind_text(u, 2, session, -1, SQLITE_TRANSIENT);
        ok = sqlite3_step(u) == SQLITE_DONE && sqlite3_changes(st->db) == 1;
        sqlite3_finalize(u);
    }
    if (!ok || store_exec(st, "COMMIT")) {
        store_exec(st, "ROLLBACK");
        return STORE_EIO;
    }
    return 0;
}

int sq_prekeys_pending(store_t *st, const char *session, store_prekey_t *out, size_t max, size_t *n)
{
    *n = 0;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT id, priv, pub FROM prekeys WHERE session=? AND uploaded=0"
                           " ORDER BY id LIMIT ?",
                           -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, session, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
    int rc = 0;
    while (*n < max && sqlite3_step(s) == SQLITE_ROW) {
        out[*n].id = (uint32_t)sqlite3_column_int64(s, 0);
        if (blob(s, 1, out[*n].priv, 32) || blob(s, 2, out[*n].pub, 32)) {
            rc = STORE_ECORRUPT;
            break;
        }
        (*n)++;
    }
    sqlite3_finalize(s);
    return rc;
}

int sq_prekeys_mark_uploaded(store_t *st, const char *session, uint32_t max_id)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, "UPDATE prekeys SET uploaded=1 WHERE session=? AND id<=?", -1,
                           &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, session, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, max_id);
    return store_run_tx(st, s);
}

int sq_prekeys_count(store_t *st, const char *session, size_t *n)
{
    sqlite3_stmt *s;
    *n = 0;
    if (sqlite3_prepare_v2(st->db, "SELECT count(*) FROM prekeys WHERE session=?", -1, &s, NULL) !=
        SQLITE_OK)
        return STORE_EIO;
    sqlite3_bind_text(s, 1, session, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(s) == SQLITE_ROW)
        *n = (size_t)sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return 0;
}

int sq_check(store_t *st, char *err, size_t errlen)
{
    sqlite3_stmt *s;
    int bad = 0;
    if (sqlite3_prepare_v2(st->db, "PRAGMA integrity_check", -1, &s, NULL) != SQLITE_OK)
        return STORE_EIO;
    if (sqlite3_step(s) != SQLITE_ROW || strcmp((const char *)sqlite3_column_text(s, 0), "ok")) {
        snprintf(err, errlen, "integrity check failed");
        bad = 1;
    }
    sqlite3_finalize(s);
    for (size_t i = 0; !bad && i < store_nchecks; i++) {
        int n = 0;
        if (pragma_int(st->db, store_checks[i][0], &n) != 0 || n != 0) {
            snprintf(err, errlen, "%s", store_checks[i][1]);
            bad = 1;
        }
    }
    return bad ? STORE_ECORRUPT : 0;
}

const store_backend_t store_sqlite_backend = {
#define STORE_OP_ENTRY(name, params, args) .name = sq_##name,
    STORE_WRITER_OPS(STORE_OP_ENTRY) STORE_READER_OPS(STORE_OP_ENTRY)
#undef STORE_OP_ENTRY
        .close = sq_close,
};
