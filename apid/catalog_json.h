/* A direct JSON writer for the hot catalog views: the same bytes jansson's
 * compact dump of catalog_api.c's objects gives, without building a tree
 * of allocations per field.
 *
 * Pure. Used for /v1/catalog/nodes, /v1/catalog/service/<s> and
 * /v1/health/{node,checks,service,state} when the answer is neither
 * ?pretty nor ?filter= (those go through jansson). tests/unit/apid checks
 * byte equality with the jansson rendering. */
#ifndef CAIRN_APID_CATALOG_JSON_H
#define CAIRN_APID_CATALOG_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "proto.h"

struct arena;

/* Renders view (catalog.h numbering) of r into a NUL-terminated arena
 * buffer. Returns 0, -ENOTSUP for a view it does not write (use jansson),
 * or -ENOMEM. */
int catalog_json_render(struct arena *a, unsigned view, const struct proto_catalog_query_reply *r,
			char **out, size_t *out_len);

#endif
