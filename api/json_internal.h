/* The JSON building blocks the handler layer's files share (yajl): not part
 * of api.h. Only api/ includes it. */
#ifndef WG_API_JSON_INTERNAL_H
#define WG_API_JSON_INTERNAL_H

#include <stddef.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

/* A generator that validates UTF-8; NULL when out of memory. */
yajl_gen api_jgen_new(void);

/* "k": "v" (null when v is NULL), "k": v, "k": true/false. */
void api_jput_str(yajl_gen g, const char *k, const char *v);
void api_jput_int(yajl_gen g, const char *k, long long v);
void api_jput_bool(yajl_gen g, const char *k, int v);

/* The generated text, malloc'd and NUL-terminated (NULL on error); frees
 * the generator either way. */
char *api_jfinish(yajl_gen g);

/* Parses a request body that must be a JSON object (no NUL inside). The
 * copy made for the parser is wiped (bodies may carry secrets). Returns the
 * tree (caller frees with yajl_tree_free), or NULL with *why set to
 * `malformed` (or "Out of memory"). */
yajl_val api_jparse_object(const char *body, size_t len, const char *malformed, const char **why);

#endif
