/* The store the tests open: SQLite in the test's directory, or, when
 * STORE_TEST_URL is set (tests/pg/pgtmp.sh run CMD), that PostgreSQL
 * database. Each test starts from an empty database: testdb_reset drops
 * the schema public with everything in it and creates it again (called by
 * the tests' setup, with no store open). */
#ifndef WG_TESTS_STORE_TESTDB_H
#define WG_TESTS_STORE_TESTDB_H

#include <stddef.h>

#include "session/store/store.h"

/* STORE_TEST_URL, or NULL when the tests run on SQLite. */
const char *testdb_url(void);

/* 1 when the tests run on PostgreSQL. */
int testdb_is_pg(void);

/* Empties the PostgreSQL database (no-op on SQLite). 0 or -1. */
int testdb_reset(void);

/* store_open_url(STORE_TEST_URL, dir, ...). */
int testdb_open(const char *dir, store_t **out, char *err, size_t errlen);

/* Runs SQL (one or several statements) on the PostgreSQL database through
 * its own connection; *val (when not NULL) gets the first column of the
 * last result's first row (0 when none). 0 or -1 (the error on stderr). */
int testdb_pg_exec(const char *sql, long long *val);

#endif
