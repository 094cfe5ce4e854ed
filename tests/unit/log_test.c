/* Unit tests for common/log.c: level parsing and filtering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/log.h"

static void test_parse(void **state)
{
    (void)state;
    log_level_t l;
    assert_int_equal(log_level_parse("DEBUG", &l), 0);
    assert_int_equal(l, LOG_LEVEL_DEBUG);
    assert_int_equal(log_level_parse("warning", &l), 0);
    assert_int_equal(l, LOG_LEVEL_WARN);
    assert_int_equal(log_level_parse("off", &l), 0);
    assert_int_equal(l, LOG_LEVEL_OFF);
    assert_int_equal(log_level_parse("verbose", &l), -1);
    assert_string_equal(log_level_name(LOG_LEVEL_ERROR), "error");
}

/* Captures stderr into a pipe while `fn` runs and returns what was written. */
static size_t capture(void (*fn)(void), char *buf, size_t cap)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    ssize_t n = read(fds[0], buf, cap - 1);
    close(fds[0]);
    buf[n > 0 ? n : 0] = 0;
    return n > 0 ? (size_t)n : 0;
}

static void emit(void)
{
    LOG_DEBUG("mod", "hidden %d", 1);
    LOG_WARN("mod", "shown %d", 2);
}

static void test_filter_and_format(void **state)
{
    (void)state;
    char buf[1024];
    log_set_level(LOG_LEVEL_INFO);
    capture(emit, buf, sizeof(buf));
    assert_null(strstr(buf, "hidden"));
    assert_non_null(strstr(buf, "WARN  mod: shown 2\n"));
    assert_int_equal(buf[4], '-'); /* 2026-... timestamp first */
    assert_non_null(strchr(buf, 'Z'));
    log_set_level(LOG_LEVEL_DEBUG);
    capture(emit, buf, sizeof(buf));
    assert_non_null(strstr(buf, "DEBUG mod: hidden 1"));
    log_set_level(LOG_LEVEL_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_filter_and_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
