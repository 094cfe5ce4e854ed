/* The fake server's side of the WhatsApp Web version (protocol doc 10.1,
 * 11.2): GET /sw.js on the HTTP port with a configurable client_revision in
 * the escaped-JSON form web.whatsapp.com serves, or a failure (404, 500, no
 * answer); registration and login payloads announcing a version older than
 * the minimum refused with <failure reason="405"/>; the control endpoint
 * POST /control/version (body: space- or &-separated revision=N,
 * min=2.3000.N|0, sw=ok|404|500|hang); counters for /control/state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fakewa/whatsapp_internal.h"

static const char *const sw_modes[] = {"ok", "404", "500", "hang"};

int fakewa_sw_mode_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof(sw_modes) / sizeof(sw_modes[0])); i++)
        if (!strcmp(name, sw_modes[i]))
            return i;
    return -1;
}

int fakewa_version_init(fakewa_wa_t *w, const fakewa_wa_opts_t *o)
{
    wa_version_t def;
    wa_version_parse(WA_PAYLOAD_DEFAULT_VERSION, &def);
    w->sw_revision = o->client_revision ? o->client_revision : def.tertiary;
    w->sw_mode = o->sw_mode;
    memset(&w->min_version, 0, sizeof(w->min_version));
    if (o->min_version && wa_version_parse(o->min_version, &w->min_version) != 0)
        return -1;
    return 0;
}

int fakewa_version_refuses(fakewa_wa_t *w, const Wa__ClientPayload *pl)
{
    const Wa__ClientPayload__UserAgent__AppVersion *av =
        pl->useragent ? pl->useragent->appversion : NULL;
    wa_version_t v = {0, 0, 0};
    if (av)
        v = (wa_version_t){av->primary, av->secondary, av->tertiary};
    wa_version_format(&v, w->last_version, sizeof(w->last_version));
    if (wa_version_cmp(&v, &w->min_version) >= 0)
        return 0;
    w->stats.refused_405++;
    return 1;
}

/* The document web.whatsapp.com/sw.js serves, shortened: the revision sits
 * in an escaped JSON string passed to JSON.parse. */
static char *sw_document(uint32_t rev)
{
    char *s = malloc(512);
    if (s)
        snprintf(s, 512,
                 "__DEV__=0;/*FB_PKG_DELIM*/\n"
                 "self.__swData=JSON.parse(/*BTDS*/\"{\\\"dynamic_data\\\":{\\\"SiteData\\\":"
                 "{\\\"server_revision\\\":%u,\\\"client_revision\\\":%u,\\\"push_phase\\\":"
                 "\\\"C3\\\"}}}\");\n"
                 "importScripts(\"https:\\/\\/static.whatsapp.net\\/rsrc.php\\/v4\\/fake.js\");\n",
                 rev, rev);
    return s;
}

/* Applies one key=value of the control body. Returns 0 or -1. */
static int apply(fakewa_wa_t *w, const char *kv, size_t len)
{
    char buf[96];
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, kv, len);
    buf[len] = 0;
    char *eq = strchr(buf, '=');
    if (!eq)
        return -1;
    *eq = 0;
    const char *k = buf, *v = eq + 1;
    if (!strcmp(k, "revision")) {
        char *end;
        unsigned long r = strtoul(v, &end, 10);
        if (!*v || *end || r == 0 || r > UINT32_MAX)
            return -1;
        w->sw_revision = (uint32_t)r;
    } else if (!strcmp(k, "min")) {
        wa_version_t m = {0, 0, 0};
        if (strcmp(v, "0") && wa_version_parse(v, &m) != 0)
            return -1;
        w->min_version = m;
    } else if (!strcmp(k, "sw")) {
        int mode = fakewa_sw_mode_parse(v);
        if (mode < 0)
            return -1;
        w->sw_mode = mode;
    } else {
        return -1;
    }
    return 0;
}

static char *settings_json(const fakewa_wa_t *w, int ok)
{
    char min[WA_VERSION_STRLEN], *out = malloc(256);
    wa_version_format(&w->min_version, min, sizeof(min));
    if (out)
        snprintf(out, 256, "{\"ok\":%s,\"swRevision\":%u,\"minVersion\":\"%s\",\"sw\":\"%s\"}",
                 ok ? "true" : "false", w->sw_revision, min, sw_modes[w->sw_mode]);
    return out;
}

int fakewa_version_http(fakewa_wa_t *w, int post, const char *path, const char *body, char **resp,
                        int *status)
{
    if (!post && !strcmp(path, "/sw.js")) {
        w->stats.sw_fetches++;
        switch (w->sw_mode) {
        case FAKEWA_SW_404:
            *resp = strdup("not found");
            *status = 404;
            break;
        case FAKEWA_SW_500:
            *resp = strdup("internal error");
            *status = 500;
            break;
        case FAKEWA_SW_HANG:
            *resp = NULL;
            *status = 0;
            break;
        default:
            *resp = sw_document(w->sw_revision);
            *status = 200;
        }
        return 1;
    }
    if (post && !strcmp(path, "/control/version")) {
        int ok = 1;
        const char *p = body;
        while (ok && *p) {
            size_t sep = strspn(p, " \t\r\n&");
            p += sep;
            size_t n = strcspn(p, " \t\r\n&");
            if (n)
                ok = apply(w, p, n) == 0;
            p += n;
        }
        *resp = settings_json(w, ok);
        *status = ok ? 200 : 400;
        return 1;
    }
    return 0;
}

int fakewa_version_json(const fakewa_wa_t *w, char *out, size_t cap)
{
    char min[WA_VERSION_STRLEN];
    wa_version_format(&w->min_version, min, sizeof(min));
    return snprintf(out, cap,
                    "\"lastVersion\":\"%s\",\"swRevision\":%u,\"minVersion\":\"%s\","
                    "\"sw\":\"%s\",",
                    w->last_version, w->sw_revision, min, sw_modes[w->sw_mode]);
}
