/* Prints docs/protocol.md from the descriptors generated out of
 * messages.def, so the protocol document cannot drift from the code. */
#include <stdio.h>

#include "proto.h"

static const char *type_name(enum proto_ftype t)
{
	switch (t) {
	case PROTO_T_U64:
		return "uint64";
	case PROTO_T_I64:
		return "int64";
	case PROTO_T_BOOL:
		return "bool";
	case PROTO_T_STR:
		return "string";
	case PROTO_T_BIN:
		return "bytes";
	case PROTO_T_STRS:
		return "[string]";
	case PROTO_T_MAP:
		return "{string: string}";
	case PROTO_T_LIST:
		return "list";
	}
	return "?";
}

static void print_fields(const struct proto_record_desc *r)
{
	printf("| # | field | type | meaning |\n| --- | --- | --- | --- |\n");
	for (size_t i = 0; i < r->n_fields; i++) {
		const struct proto_field_desc *f = &r->fields[i];

		if (f->type == PROTO_T_LIST)
			printf("| %zu | `%s` | [%s](#record-%s) list | %s |\n", i, f->name, f->rec,
			       f->rec, f->doc);
		else
			printf("| %zu | `%s` | %s | %s |\n", i, f->name, type_name(f->type), f->doc);
	}
	printf("\n");
}

int main(void)
{
	static const char *const kinds[] = {"request", "reply", "event"};
	const struct proto_msg_desc *msgs;
	const struct proto_record_desc *const *recs;
	size_t n_msgs, n_recs;

	msgs = proto_msg_descs(&n_msgs);
	recs = proto_record_descs(&n_recs);
	printf("# Cairn inter-daemon protocol (version %d)\n\n", PROTO_VERSION);
	printf("<!-- Generated from proto/messages.def by proto/gen_protodoc.c; do not edit. -->\n\n");
	printf("Daemons talk over ZeroMQ: requests from a DEALER to a ROUTER (replies may come\n"
	       "in any order and are matched by id), events on PUB/SUB. Every frame is one\n"
	       "msgpack value, the envelope `[version, type, id, body]`:\n\n"
	       "- `version`: unsigned, currently %d; another version is answered with ERROR.\n"
	       "- `type`: the message number below.\n"
	       "- `id`: the request id chosen by the caller, echoed in the reply (0 on events).\n"
	       "- `body`: an array of the message's fields, in the order listed.\n\n"
	       "A string field may be nil (absent); `bytes` accepts msgpack bin or str. A\n"
	       "request that cannot be decoded gets an ERROR reply (with its id when the\n"
	       "envelope was readable); an undecodable event is dropped.\n\n",
	       PROTO_VERSION);
	printf("## Messages\n\n| number | name | kind | purpose |\n| --- | --- | --- | --- |\n");
	for (size_t i = 0; i < n_msgs; i++)
		printf("| %d | [%s](#%d-%s) | %s | %s |\n", (int)msgs[i].type, msgs[i].upper,
		       (int)msgs[i].type, msgs[i].body->name, kinds[msgs[i].kind],
		       msgs[i].body->doc);
	printf("\n");
	for (size_t i = 0; i < n_msgs; i++) {
		printf("### %d %s\n\n<a id=\"%d-%s\"></a>%s (%s).\n\n", (int)msgs[i].type,
		       msgs[i].upper, (int)msgs[i].type, msgs[i].body->name, msgs[i].body->doc,
		       kinds[msgs[i].kind]);
		print_fields(msgs[i].body);
	}
	printf("## Records\n\n");
	for (size_t i = 0; i < n_recs; i++) {
		printf("### record %s\n\n<a id=\"record-%s\"></a>%s.\n\n", recs[i]->name,
		       recs[i]->name, recs[i]->doc);
		print_fields(recs[i]);
	}
	return 0;
}
