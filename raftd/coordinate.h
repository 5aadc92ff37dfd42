/* Network coordinates in the replicated state (Consul's coordinates
 * table), and the ?near= sort of catalog and health answers.
 *
 * Command (log payload, applied by fsm_apply; never change the layout):
 *   [16, [[node, segment, coord] ...]]                 coordinate update
 * coord is gossipd/vivaldi.h's wire form. As Consul's
 * CoordinateBatchUpdate, coordinates of nodes the catalog does not hold
 * are skipped, and deleting a node deletes its coordinate
 * (coordinate_node_deleted, called by catalog.c).
 *
 * Storage: STORE_INDEX keys "coord:<lower-cased node>" -> [node, segment,
 * coord] (the index table is a plain key space; nothing scans it, so the
 * prefix keeps the rows apart without a table of their own), and
 * STORE_INDEX "coordinates", the table's index. Changes are reported in
 * FSM_SPACE_CATALOG under the key "coordinates" only: the catalog's own
 * indexes do not move when a coordinate does, as in Consul. */
#ifndef CAIRN_RAFTD_COORDINATE_H
#define CAIRN_RAFTD_COORDINATE_H

#include <stddef.h>
#include <stdint.h>

#include "fsm.h"
#include "proto.h"

struct arena;
struct catalog_answer;
struct mp_reader;
struct mp_writer;
struct store_txn;
struct vivaldi_coord;

#define COORDINATE_OP_UPDATE 16	       /* the command's op number (fsm.h) */
#define COORDINATE_WATCH_KEY "coordinates" /* FSM_SPACE_CATALOG key */
#define COORDINATE_BATCH_MAX 128	   /* Consul's coordinate_update_batch_size */

/* Encodes an update of v[0..n) into w (reset first). Strings borrowed.
 * Returns 0, or -EINVAL when n is 0 or above COORDINATE_BATCH_MAX, a node
 * name is missing or a coordinate is not a valid wire form (with a reason
 * for a 400 in *out_why). */
int coordinate_cmd_update(struct mp_writer *w, const struct proto_coord *v, size_t n,
			  const char **out_why);

/* Applies an update (n = 2 items) whose op number was already read from
 * r. Returns 0 or a store error; a malformed command sets out->code. */
int coordinate_apply_update(struct store_txn *txn, uint64_t index, struct mp_reader *r,
			    struct fsm_result *out, fsm_change_fn change, void *ctx);

/* Drops the coordinate of a deleted node (key: fsm_node_key's lower-cased
 * name). Returns 0 or a store error. */
int coordinate_node_deleted(struct store_txn *txn, uint64_t index, const char *key, size_t klen,
			    fsm_change_fn change, void *ctx);

/* The stored coordinates, node order (node NULL or "": all; else that
 * node's, none when unknown), records and strings in a, and the table's
 * index. Returns 0, -ENOMEM or a store error. */
int coordinate_list(struct store_txn *txn, struct arena *a, const char *node,
		    struct proto_coord **out_v, size_t *out_n, uint64_t *out_index);

/* node's coordinate (any case). Returns 0, -ENOENT or a store error. */
int coordinate_get(struct store_txn *txn, const char *node, struct vivaldi_coord *out);

/* Estimated RTT in seconds from the ?near= node to node, or INFINITY
 * when either has no coordinate. */
typedef double (*coordinate_dist_fn)(void *ctx, const char *node);

/* Consul's sortNodesByDistanceFrom, pure: reorders ans by the estimated
 * RTT from the near node (a stable sort; nodes without a coordinate last)
 * for the views that list nodes or instances: nodes, service, health
 * service (each instance keeps its group of checks), health checks and
 * health state. Other views are left alone. Scratch memory from a.
 * Returns 0 or -ENOMEM (ans unchanged then). */
int coordinate_sort_answer(struct arena *a, unsigned view, struct catalog_answer *ans,
			   coordinate_dist_fn dist, void *ctx);

#endif
