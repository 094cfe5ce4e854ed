/* The tests' store on SQLite or PostgreSQL (see testdb.h). */
#include "tests/store/testdb.h"

#include <stdio.h>
#include <stdlib.h>

#include <postgresql/libpq-fe.h>

const char *testdb_url(void)
{
    const char *u = getenv("STORE_TEST_URL");
    return u && *u ? u : NULL;
}

int testdb_is_pg(void)
{
    return testdb_url() != NULL;
}

int testdb_pg_exec(const char *sql, long long *val)
{
    if (val)
        *val = 0;
    PGconn *c = PQconnectdb(testdb_url());
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "testdb: cannot connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    int rc = 0;
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        fprintf(stderr, "testdb: %s: %s", sql, PQresultErrorMessage(r));
        rc = -1;
    } else if (val && s == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
        *val = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

int testdb_reset(void)
{
    if (!testdb_is_pg())
        return 0;
    return testdb_pg_exec("DROP SCHEMA public CASCADE; CREATE SCHEMA public;", NULL);
}

int testdb_open(const char *dir, store_t **out, char *err, size_t errlen)
{
    return store_open_url(testdb_url(), dir, out, err, errlen);
}
