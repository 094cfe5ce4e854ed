/* gRPC server reflection (grpc.reflection.v1alpha and v1, which share
 * their wire format; see internal.h): answers list_services,
 * file_by_filename and file_containing_symbol from the descriptor sets
 * embedded at build time (the gateway's API and the standard health and
 * reflection protos), each file with its dependencies, so that a client
 * without .proto files (grpcurl, buf curl) can call every method. Each
 * FileDescriptorProto is kept serialized with its dependencies and the fully
 * qualified symbols it defines; the index is immutable once built, so any
 * thread may use it. */
#include "server/grpc/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/slice.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"

extern const unsigned char wagw_gateway_descriptor[];
extern const size_t wagw_gateway_descriptor_len;
extern const unsigned char wagw_grpc_std_descriptor[];
extern const size_t wagw_grpc_std_descriptor_len;

typedef struct {
    char *name;
    uint8_t *bytes;
    size_t len;
    char **deps;
    size_t ndeps;
    char **symbols;
    size_t nsymbols;
} file_t;

struct grpc_srv_refl {
    file_t *files;
    size_t nfiles;
    char **services;
    size_t nservices;
};

static int push(char ***arr, size_t *n, const char *s)
{
    char **a = realloc(*arr, (*n + 1) * sizeof(*a));
    if (!a)
        return -1;
    *arr = a;
    a[*n] = strdup(s);
    if (!a[*n])
        return -1;
    (*n)++;
    return 0;
}

static void add_message_symbols(file_t *f, const char *prefix,
                                Google__Protobuf__DescriptorProto *const *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char full[512];
        snprintf(full, sizeof(full), "%s%s%s", prefix, *prefix ? "." : "", msgs[i]->name);
        push(&f->symbols, &f->nsymbols, full);
        add_message_symbols(f, full, msgs[i]->nested_type, msgs[i]->n_nested_type);
        for (size_t e = 0; e < msgs[i]->n_enum_type; e++) {
            char en[600];
            snprintf(en, sizeof(en), "%s.%s", full, msgs[i]->enum_type[e]->name);
            push(&f->symbols, &f->nsymbols, en);
        }
    }
}

static int add_set(grpc_srv_refl_t *r, const uint8_t *data, size_t len)
{
    Google__Protobuf__FileDescriptorSet *set =
        google__protobuf__file_descriptor_set__unpack(NULL, len, data);
    if (!set)
        return -1;
    for (size_t i = 0; i < set->n_file; i++) {
        Google__Protobuf__FileDescriptorProto *fd = set->file[i];
        int dup = 0;
        for (size_t k = 0; k < r->nfiles; k++)
            dup |= !strcmp(r->files[k].name, fd->name);
        if (dup)
            continue;
        file_t *files = realloc(r->files, (r->nfiles + 1) * sizeof(*files));
        if (!files)
            break;
        r->files = files;
        file_t *f = &r->files[r->nfiles++];
        memset(f, 0, sizeof(*f));
        f->name = strdup(fd->name);
        f->len = google__protobuf__file_descriptor_proto__get_packed_size(fd);
        f->bytes = malloc(f->len ? f->len : 1);
        if (f->bytes)
            google__protobuf__file_descriptor_proto__pack(fd, f->bytes);
        else
            f->len = 0;
        for (size_t d = 0; d < fd->n_dependency; d++)
            push(&f->deps, &f->ndeps, fd->dependency[d]);
        const char *pkg = fd->package ? fd->package : "";
        add_message_symbols(f, pkg, fd->message_type, fd->n_message_type);
        for (size_t e = 0; e < fd->n_enum_type; e++) {
            char full[512];
            snprintf(full, sizeof(full), "%s%s%s", pkg, *pkg ? "." : "", fd->enum_type[e]->name);
            push(&f->symbols, &f->nsymbols, full);
        }
        for (size_t s = 0; s < fd->n_service; s++) {
            char full[512];
            snprintf(full, sizeof(full), "%s%s%s", pkg, *pkg ? "." : "", fd->service[s]->name);
            push(&f->symbols, &f->nsymbols, full);
            push(&r->services, &r->nservices, full);
            for (size_t m = 0; m < fd->service[s]->n_method; m++) {
                char meth[600];
                snprintf(meth, sizeof(meth), "%s.%s", full, fd->service[s]->method[m]->name);
                push(&f->symbols, &f->nsymbols, meth);
            }
        }
    }
    google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
    return 0;
}

int grpc_srv_refl_new(grpc_srv_refl_t **out, char *err, size_t errlen)
{
    grpc_srv_refl_t *r = calloc(1, sizeof(*r));
    if (!r || add_set(r, wagw_gateway_descriptor, wagw_gateway_descriptor_len) ||
        add_set(r, wagw_grpc_std_descriptor, wagw_grpc_std_descriptor_len)) {
        snprintf(err, errlen, "cannot load the gRPC descriptor sets");
        grpc_srv_refl_free(r);
        return -1;
    }
    *out = r;
    return 0;
}

static void free_strs(char **a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(a[i]);
    free(a);
}

void grpc_srv_refl_free(grpc_srv_refl_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nfiles; i++) {
        free(r->files[i].name);
        free(r->files[i].bytes);
        free_strs(r->files[i].deps, r->files[i].ndeps);
        free_strs(r->files[i].symbols, r->files[i].nsymbols);
    }
    free(r->files);
    free_strs(r->services, r->nservices);
    free(r);
}

static const file_t *find_file(const grpc_srv_refl_t *r, const char *name)
{
    for (size_t i = 0; i < r->nfiles; i++)
        if (!strcmp(r->files[i].name, name))
            return &r->files[i];
    return NULL;
}

static const file_t *find_symbol(const grpc_srv_refl_t *r, const char *sym)
{
    for (size_t i = 0; i < r->nfiles; i++)
        for (size_t k = 0; k < r->files[i].nsymbols; k++)
            if (!strcmp(r->files[i].symbols[k], sym))
                return &r->files[i];
    return NULL;
}

/* Collects f and its transitive dependencies (each once) into list. */
static void collect(const grpc_srv_refl_t *r, const file_t *f, const file_t **list, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        if (list[i] == f)
            return;
    if (*n >= r->nfiles)
        return;
    list[(*n)++] = f;
    for (size_t d = 0; d < f->ndeps; d++) {
        const file_t *dep = find_file(r, f->deps[d]);
        if (dep)
            collect(r, dep, list, n);
    }
}

int grpc_srv_refl_answer(const grpc_srv_refl_t *r, const ProtobufCMessage *req,
                         grpc_byte_buffer **out)
{
    Grpc__Reflection__V1alpha__ServerReflectionRequest *q =
        (Grpc__Reflection__V1alpha__ServerReflectionRequest *)req;
    Grpc__Reflection__V1alpha__ServerReflectionResponse resp =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__INIT;
    Grpc__Reflection__V1alpha__FileDescriptorResponse fdr =
        GRPC__REFLECTION__V1ALPHA__FILE_DESCRIPTOR_RESPONSE__INIT;
    Grpc__Reflection__V1alpha__ListServiceResponse lsr =
        GRPC__REFLECTION__V1ALPHA__LIST_SERVICE_RESPONSE__INIT;
    Grpc__Reflection__V1alpha__ErrorResponse er = GRPC__REFLECTION__V1ALPHA__ERROR_RESPONSE__INIT;
    resp.valid_host = q->host;
    resp.original_request = q;
    const file_t **list = calloc(r->nfiles ? r->nfiles : 1, sizeof(*list));
    ProtobufCBinaryData *blobs = calloc(r->nfiles ? r->nfiles : 1, sizeof(*blobs));
    Grpc__Reflection__V1alpha__ServiceResponse *svcs =
        calloc(r->nservices ? r->nservices : 1, sizeof(*svcs));
    Grpc__Reflection__V1alpha__ServiceResponse **svcp =
        calloc(r->nservices ? r->nservices : 1, sizeof(*svcp));
    if (!list || !blobs || !svcs || !svcp) {
        free(list);
        free(blobs);
        free(svcs);
        free(svcp);
        return -1;
    }
    size_t n = 0;
    const file_t *f = NULL;
    char msg[300];
    switch (q->message_request_case) {
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        for (size_t i = 0; i < r->nservices; i++) {
            grpc__reflection__v1alpha__service_response__init(&svcs[i]);
            svcs[i].name = r->services[i];
            svcp[i] = &svcs[i];
        }
        lsr.n_service = r->nservices;
        lsr.service = svcp;
        resp.message_response_case =
            GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
        resp.list_services_response = &lsr;
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        f = find_file(r, q->file_by_filename);
        snprintf(msg, sizeof(msg), "file not found: %s", q->file_by_filename);
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        f = find_symbol(r, q->file_containing_symbol);
        snprintf(msg, sizeof(msg), "symbol not found: %s", q->file_containing_symbol);
        break;
    default:
        snprintf(msg, sizeof(msg), "extensions are not supported");
        break;
    }
    if (f) {
        collect(r, f, list, &n);
        for (size_t i = 0; i < n; i++) {
            blobs[i].data = list[i]->bytes;
            blobs[i].len = list[i]->len;
        }
        fdr.n_file_descriptor_proto = n;
        fdr.file_descriptor_proto = blobs;
        resp.message_response_case =
            GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
        resp.file_descriptor_response = &fdr;
    } else if (!resp.list_services_response) {
        er.error_code = 5; /* NOT_FOUND */
        er.error_message = msg;
        resp.message_response_case =
            GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
        resp.error_response = &er;
    }
    size_t plen = grpc__reflection__v1alpha__server_reflection_response__get_packed_size(&resp);
    uint8_t *buf = malloc(plen ? plen : 1);
    int rc = -1;
    if (buf) {
        grpc__reflection__v1alpha__server_reflection_response__pack(&resp, buf);
        grpc_slice sl = grpc_slice_from_copied_buffer((const char *)buf, plen);
        *out = grpc_raw_byte_buffer_create(&sl, 1);
        grpc_slice_unref(sl);
        rc = 0;
    }
    free(buf);
    free(list);
    free(blobs);
    free(svcs);
    free(svcp);
    return rc;
}
