/* Consul's ?filter= expression language (hashicorp/go-bexpr), parsed once
 * and evaluated against the JSON objects an endpoint returns.
 *
 * Pure: no I/O. Grammar (keywords are case-sensitive, as in bexpr):
 *   expr      := or
 *   or        := and ( "or" and )*
 *   and       := unary ( "and" unary )*
 *   unary     := "not" unary | "(" expr ")" | match
 *   match     := selector ( "==" | "!=" ) value
 *              | selector [ "not" ] ( "contains" | "matches" ) value
 *              | selector "is" [ "not" ] "empty"
 *              | value [ "not" ] "in" selector
 *   selector  := name ( "." name | "[" string "]" )*     e.g. Service.Meta.env
 *   value     := "quoted" | `raw` | a bare word (letters, digits, _ - . : /)
 *
 * Evaluation: a selector walks objects by key; through an array it takes
 * every element (so Checks.Status == critical holds when any check is
 * critical). == compares strings exactly and numbers and booleans by
 * value; contains / in look for an element of an array, a substring of a
 * string or a key of an object; is empty holds for a missing field, null,
 * "", [] and {}; matches is a POSIX extended regular expression (Go's RE2
 * syntax agrees for the common cases). A selector naming a field that does
 * not exist selects nothing; endpoints that know their type's fields
 * reject unknown selectors first (filter_check_selectors), as Consul does.
 *
 * Bounded: expressions longer than FILTER_MAX_LEN or nested deeper than
 * FILTER_MAX_DEPTH are rejected, so hostile input cannot exhaust the
 * stack. */
#ifndef CAIRN_APID_FILTER_H
#define CAIRN_APID_FILTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define FILTER_MAX_LEN 4096
#define FILTER_MAX_DEPTH 64

struct filter;

/* Parses expr. Returns 0 and a filter the caller frees with filter_free,
 * or -EINVAL with a reason in err ("Failed to create boolean expression
 * evaluator: ..."), or -ENOMEM. */
int filter_parse(const char *expr, struct filter **out, char *err, size_t errlen);

/* True when v (borrowed) satisfies the filter. */
bool filter_match(const struct filter *f, const json_t *v);

/* Keeps only the elements of array arr that match (in place). */
void filter_array(const struct filter *f, json_t *arr);
/* Keeps only the members of object obj whose values match (in place). */
void filter_object(const struct filter *f, json_t *obj);

void filter_free(struct filter *f);

/* Checks every selector of f against schema, the fields of the type the
 * endpoint filters (Consul validates selectors against its Go structs and
 * answers 400 for an unknown one). schema: fields separated by spaces,
 * matched ignoring case; "Name" a scalar, "Name[]" a list of scalars,
 * "Name{}" a map or an opaque object (any key below), "Name(...)" a
 * struct and "Name[](...)" a list of structs whose fields follow in the
 * parentheses. Returns 0, or -EINVAL with Consul's reason in err
 * ("Selector \"Foo\" is not valid"). */
int filter_check_selectors(const struct filter *f, const char *schema, char *err, size_t errlen);

#endif
