/* Consul's filter expressions (see filter.h). */
#include "filter.h"

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum fop {
	OP_EQ,
	OP_NE,
	OP_CONTAINS,
	OP_NOT_CONTAINS,
	OP_MATCHES,
	OP_NOT_MATCHES,
	OP_EMPTY,
	OP_NOT_EMPTY,
};

enum fkind { N_AND, N_OR, N_NOT, N_MATCH };

struct fnode {
	enum fkind kind;
	struct fnode *l, *r; /* AND/OR: both; NOT: l */
	enum fop op;
	char **path; /* selector parts */
	size_t npath;
	char *value;
	regex_t re;
	bool has_re;
};

struct filter {
	struct fnode *root;
};

/* ---- tokens ----------------------------------------------------------- */

enum tok { T_END, T_WORD, T_STRING, T_EQ, T_NE, T_LP, T_RP, T_DOT, T_LB, T_RB, T_BAD };

struct lexer {
	const char *p;
	enum tok t; /* current token */
	char *text; /* its text (WORD, STRING), malloc'd */
	bool oom;
	char err[160];
	int depth;
};

static bool word_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == ':' || c == '/' || c == '+';
}

static void fail(struct lexer *lx, const char *msg)
{
	if (!lx->err[0])
		snprintf(lx->err, sizeof(lx->err), "%s", msg);
}

/* Reads the next token into lx->t / lx->text. Dots inside bare words are
 * tokens of their own so selectors split; a value like 1.5 is glued back
 * by the value parser. */
static void next(struct lexer *lx)
{
	const char *p = lx->p;

	free(lx->text);
	lx->text = NULL;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (!*p) {
		lx->t = T_END;
	} else if (p[0] == '=' && p[1] == '=') {
		lx->t = T_EQ;
		p += 2;
	} else if (p[0] == '!' && p[1] == '=') {
		lx->t = T_NE;
		p += 2;
	} else if (*p == '(' || *p == ')' || *p == '.' || *p == '[' || *p == ']') {
		lx->t = *p == '('   ? T_LP
			: *p == ')' ? T_RP
			: *p == '.' ? T_DOT
			: *p == '[' ? T_LB
				    : T_RB;
		p++;
	} else if (*p == '"' || *p == '`') {
		char q = *p++, *o;
		size_t n = 0;

		lx->text = malloc(strlen(p) + 1);
		if (!lx->text) {
			lx->oom = true;
			lx->t = T_BAD;
			return;
		}
		o = lx->text;
		while (*p && *p != q) {
			if (q == '"' && *p == '\\' && p[1]) {
				p++;
				switch (*p) {
				case 'n':
					o[n++] = '\n';
					break;
				case 't':
					o[n++] = '\t';
					break;
				default:
					o[n++] = *p;
				}
				p++;
				continue;
			}
			o[n++] = *p++;
		}
		o[n] = 0;
		if (*p != q) {
			fail(lx, "unterminated string");
			lx->t = T_BAD;
		} else {
			p++;
			lx->t = T_STRING;
		}
	} else if (word_char(*p)) {
		const char *s = p;

		while (word_char(*p))
			p++;
		lx->text = strndup(s, (size_t)(p - s));
		if (!lx->text)
			lx->oom = true;
		lx->t = lx->text ? T_WORD : T_BAD;
	} else {
		fail(lx, "unexpected character");
		lx->t = T_BAD;
	}
	lx->p = p;
}

static bool is_kw(const struct lexer *lx, const char *kw)
{
	return lx->t == T_WORD && !strcmp(lx->text, kw);
}

/* ---- parser ----------------------------------------------------------- */

static void node_free(struct fnode *n)
{
	if (!n)
		return;
	node_free(n->l);
	node_free(n->r);
	for (size_t i = 0; i < n->npath; i++)
		free(n->path[i]);
	free(n->path);
	free(n->value);
	if (n->has_re)
		regfree(&n->re);
	free(n);
}

static struct fnode *parse_or(struct lexer *lx);

/* Parses a selector starting at the current WORD. */
static bool parse_selector(struct lexer *lx, struct fnode *n)
{
	for (;;) {
		char *part;
		char **np;

		if (lx->t != T_WORD && lx->t != T_STRING) {
			fail(lx, "expected a selector");
			return false;
		}
		part = lx->text;
		lx->text = NULL;
		np = realloc(n->path, (n->npath + 1) * sizeof(*np));
		if (!np) {
			free(part);
			lx->oom = true;
			return false;
		}
		n->path = np;
		n->path[n->npath++] = part;
		next(lx);
		if (lx->t == T_DOT) {
			next(lx);
			continue;
		}
		if (lx->t == T_LB) {
			next(lx);
			if (lx->t != T_STRING) {
				fail(lx, "expected a quoted key in []");
				return false;
			}
			/* loop adds it; then expect ] */
			part = lx->text;
			lx->text = NULL;
			np = realloc(n->path, (n->npath + 1) * sizeof(*np));
			if (!np) {
				free(part);
				lx->oom = true;
				return false;
			}
			n->path = np;
			n->path[n->npath++] = part;
			next(lx);
			if (lx->t != T_RB) {
				fail(lx, "expected ]");
				return false;
			}
			next(lx);
			if (lx->t == T_DOT) {
				next(lx);
				continue;
			}
		}
		return true;
	}
}

/* A value: quoted, or bare words joined by dots (1.5, a.b). */
static char *parse_value(struct lexer *lx)
{
	char *v;

	if (lx->t == T_STRING) {
		v = lx->text;
		lx->text = NULL;
		next(lx);
		return v;
	}
	if (lx->t != T_WORD) {
		fail(lx, "expected a value");
		return NULL;
	}
	v = lx->text;
	lx->text = NULL;
	next(lx);
	while (lx->t == T_DOT) {
		char *joined;

		next(lx);
		if (lx->t != T_WORD) {
			free(v);
			fail(lx, "expected a value after .");
			return NULL;
		}
		joined = malloc(strlen(v) + strlen(lx->text) + 2);
		if (!joined) {
			free(v);
			lx->oom = true;
			return NULL;
		}
		sprintf(joined, "%s.%s", v, lx->text);
		free(v);
		v = joined;
		next(lx);
	}
	return v;
}

static struct fnode *new_node(struct lexer *lx, enum fkind k)
{
	struct fnode *n = calloc(1, sizeof(*n));

	if (!n)
		lx->oom = true;
	else
		n->kind = k;
	return n;
}

/* True when the operand at the current token is followed by "in" or
 * "not in" (so it is a value, and a selector follows). */
static bool value_comes_first(struct lexer *lx)
{
	struct lexer p = *lx;
	bool r = false;

	p.text = NULL;
	p.err[0] = 0;
	next(&p); /* the token after the current one */
	while (p.t == T_DOT) {
		next(&p);
		if (p.t == T_WORD)
			next(&p);
	}
	if (p.t == T_WORD && !strcmp(p.text, "in")) {
		r = true;
	} else if (p.t == T_WORD && !strcmp(p.text, "not")) {
		next(&p);
		r = p.t == T_WORD && !strcmp(p.text, "in");
	}
	if (p.oom)
		lx->oom = true;
	free(p.text);
	return r;
}

static struct fnode *parse_match(struct lexer *lx)
{
	struct fnode *n = new_node(lx, N_MATCH);
	bool neg = false;

	if (!n)
		return NULL;
	/* "value [not] in selector": look ahead past the first operand */
	if ((lx->t == T_STRING || lx->t == T_WORD) && value_comes_first(lx)) {
		n->value = parse_value(lx);
		if (!n->value)
			goto bad;
		if (is_kw(lx, "not")) {
			neg = true;
			next(lx);
		}
		next(lx); /* "in" */
		if (!parse_selector(lx, n))
			goto bad;
		n->op = neg ? OP_NOT_CONTAINS : OP_CONTAINS;
		return n;
	}
	if (lx->t != T_WORD && lx->t != T_STRING) {
		fail(lx, "expected a selector");
		goto bad;
	}
	if (!parse_selector(lx, n))
		goto bad;
	if (lx->t == T_EQ || lx->t == T_NE) {
		n->op = lx->t == T_EQ ? OP_EQ : OP_NE;
		next(lx);
	} else if (is_kw(lx, "is")) {
		next(lx);
		if (is_kw(lx, "not")) {
			neg = true;
			next(lx);
		}
		if (!is_kw(lx, "empty")) {
			fail(lx, "expected empty after is");
			goto bad;
		}
		next(lx);
		n->op = neg ? OP_NOT_EMPTY : OP_EMPTY;
		return n;
	} else {
		if (is_kw(lx, "not")) {
			neg = true;
			next(lx);
		}
		if (is_kw(lx, "contains"))
			n->op = neg ? OP_NOT_CONTAINS : OP_CONTAINS;
		else if (is_kw(lx, "matches"))
			n->op = neg ? OP_NOT_MATCHES : OP_MATCHES;
		else {
			fail(lx, "expected an operator (==, !=, contains, matches, is, in)");
			goto bad;
		}
		next(lx);
	}
	n->value = parse_value(lx);
	if (!n->value)
		goto bad;
	if (n->op == OP_MATCHES || n->op == OP_NOT_MATCHES) {
		if (regcomp(&n->re, n->value, REG_EXTENDED | REG_NOSUB) != 0) {
			fail(lx, "invalid regular expression");
			goto bad;
		}
		n->has_re = true;
	}
	return n;
bad:
	node_free(n);
	return NULL;
}

static struct fnode *parse_unary(struct lexer *lx)
{
	struct fnode *n;

	if (++lx->depth > FILTER_MAX_DEPTH) {
		fail(lx, "expression nested too deeply");
		return NULL;
	}
	if (is_kw(lx, "not")) {
		next(lx);
		n = new_node(lx, N_NOT);
		if (n && !(n->l = parse_unary(lx))) {
			node_free(n);
			n = NULL;
		}
	} else if (lx->t == T_LP) {
		next(lx);
		n = parse_or(lx);
		if (n && lx->t != T_RP) {
			fail(lx, "expected )");
			node_free(n);
			n = NULL;
		} else if (n) {
			next(lx);
		}
	} else {
		n = parse_match(lx);
	}
	lx->depth--;
	return n;
}

static struct fnode *parse_bin(struct lexer *lx, const char *kw, enum fkind k,
			       struct fnode *(*sub)(struct lexer *))
{
	struct fnode *l = sub(lx);

	while (l && is_kw(lx, kw)) {
		struct fnode *n = new_node(lx, k);

		next(lx);
		if (!n) {
			node_free(l);
			return NULL;
		}
		n->l = l;
		n->r = sub(lx);
		if (!n->r) {
			node_free(n);
			return NULL;
		}
		l = n;
	}
	return l;
}

static struct fnode *parse_and(struct lexer *lx)
{
	return parse_bin(lx, "and", N_AND, parse_unary);
}

static struct fnode *parse_or(struct lexer *lx)
{
	if (++lx->depth > FILTER_MAX_DEPTH) {
		fail(lx, "expression nested too deeply");
		return NULL;
	}
	struct fnode *n = parse_bin(lx, "or", N_OR, parse_and);
	lx->depth--;
	return n;
}

int filter_parse(const char *expr, struct filter **out, char *err, size_t errlen)
{
	struct lexer lx = {.p = expr};
	struct filter *f;
	struct fnode *root;

	*out = NULL;
	if (strlen(expr) > FILTER_MAX_LEN) {
		snprintf(err, errlen,
			 "Failed to create boolean expression evaluator: expression "
			 "too long");
		return -EINVAL;
	}
	next(&lx);
	root = lx.t == T_END ? NULL : parse_or(&lx);
	if (root && lx.t != T_END) {
		fail(&lx, "unexpected text after the expression");
		node_free(root);
		root = NULL;
	}
	free(lx.text);
	if (lx.oom) {
		node_free(root);
		return -ENOMEM;
	}
	if (!root) {
		snprintf(err, errlen,
			 "Failed to create boolean expression evaluator: %s at offset %zu",
			 lx.err[0] ? lx.err : "empty expression", (size_t)(lx.p - expr));
		return -EINVAL;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		node_free(root);
		return -ENOMEM;
	}
	f->root = root;
	*out = f;
	return 0;
}

void filter_free(struct filter *f)
{
	if (!f)
		return;
	node_free(f->root);
	free(f);
}

/* ---- selector validation ---------------------------------------------- */

/* Finds field name (len n) at the top level of schema[0..slen): sets its
 * kind ('s' scalar, 'l' list, 'm' map/opaque, 'S' struct, 'L' list of
 * structs) and, for structs, the fields inside. False when absent. */
static bool schema_find(const char *schema, size_t slen, const char *name, char *kind,
			const char **sub, size_t *sublen)
{
	size_t i = 0, n = strlen(name);

	while (i < slen) {
		size_t start, end, depth;

		while (i < slen && schema[i] == ' ')
			i++;
		start = i;
		while (i < slen && schema[i] != ' ' && schema[i] != '(' && schema[i] != '[' &&
		       schema[i] != '{')
			i++;
		end = i;
		*kind = 's';
		if (i + 1 < slen && schema[i] == '[' && schema[i + 1] == ']') {
			*kind = 'l';
			i += 2;
		} else if (i + 1 < slen && schema[i] == '{' && schema[i + 1] == '}') {
			*kind = 'm';
			i += 2;
		}
		*sub = NULL;
		*sublen = 0;
		if (i < slen && schema[i] == '(') {
			*kind = *kind == 'l' ? 'L' : 'S';
			*sub = schema + i + 1;
			for (depth = 1, i++; i < slen && depth; i++)
				depth += schema[i] == '(' ? 1 : schema[i] == ')' ? -1 : 0;
			*sublen = (size_t)(schema + i - 1 - *sub);
		}
		if (end - start == n && n && strncasecmp(schema + start, name, n) == 0)
			return true;
	}
	return false;
}

static bool selector_valid(const struct fnode *n, const char *schema)
{
	const char *cur = schema, *sub;
	size_t len = strlen(schema), sublen;
	char kind;

	for (size_t i = 0; i < n->npath; i++) {
		if (!schema_find(cur, len, n->path[i], &kind, &sub, &sublen))
			return false;
		if (kind == 'm')
			return true; /* any key below */
		if (kind == 's' || kind == 'l')
			return i + 1 == n->npath;
		cur = sub;
		len = sublen;
	}
	return true; /* a struct itself: is empty / is not empty are fine */
}

static const struct fnode *first_invalid(const struct fnode *n, const char *schema)
{
	const struct fnode *bad;

	if (!n)
		return NULL;
	if (n->kind == N_MATCH)
		return selector_valid(n, schema) ? NULL : n;
	bad = first_invalid(n->l, schema);
	return bad ? bad : first_invalid(n->r, schema);
}

int filter_check_selectors(const struct filter *f, const char *schema, char *err, size_t errlen)
{
	const struct fnode *bad = first_invalid(f->root, schema);
	size_t off;

	if (!bad)
		return 0;
	off = (size_t)snprintf(err, errlen,
			       "Failed to create boolean expression evaluator: Selector \"");
	for (size_t i = 0; i < bad->npath && off < errlen; i++)
		off += (size_t)snprintf(err + off, errlen - off, "%s%s", i ? "." : "",
					bad->path[i]);
	if (off < errlen)
		snprintf(err + off, errlen - off, "\" is not valid");
	return -EINVAL;
}

/* ---- evaluation ------------------------------------------------------- */

static bool scalar_eq(const json_t *v, const char *s)
{
	char *end;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return !strcmp(json_string_value(v), s);
	case JSON_INTEGER: {
		long long x = strtoll(s, &end, 10);

		return *s && !*end && x == json_integer_value(v);
	}
	case JSON_REAL: {
		double x = strtod(s, &end);

		return *s && !*end && x == json_real_value(v);
	}
	case JSON_TRUE:
		return !strcmp(s, "true");
	case JSON_FALSE:
		return !strcmp(s, "false");
	default:
		return false;
	}
}

static bool is_empty(const json_t *v)
{
	return !v || json_is_null(v) || (json_is_string(v) && !*json_string_value(v)) ||
	       (json_is_array(v) && !json_array_size(v)) ||
	       (json_is_object(v) && !json_object_size(v));
}

static bool has(const json_t *v, const char *s)
{
	if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++)
			if (scalar_eq(json_array_get(v, i), s))
				return true;
		return false;
	}
	if (json_is_string(v))
		return strstr(json_string_value(v), s) != NULL;
	if (json_is_object(v))
		return json_object_get(v, s) != NULL;
	return scalar_eq(v, s);
}

/* Calls test on every value the selector reaches; true when any does. */
struct sel_ctx {
	const struct fnode *n;
	bool any_value;
};

static bool test_one(struct sel_ctx *c, const json_t *v)
{
	const struct fnode *n = c->n;

	c->any_value = true;
	switch (n->op) {
	case OP_EQ:
		return scalar_eq(v, n->value);
	case OP_CONTAINS:
		return has(v, n->value);
	case OP_MATCHES:
		return json_is_string(v) && regexec(&n->re, json_string_value(v), 0, NULL, 0) == 0;
	case OP_NOT_EMPTY:
		return !is_empty(v);
	default:
		return false;
	}
}

static bool walk(struct sel_ctx *c, const json_t *v, size_t i)
{
	const struct fnode *n = c->n;

	if (!v)
		return false;
	if (i == n->npath)
		return test_one(c, v);
	if (json_is_array(v)) {
		for (size_t k = 0; k < json_array_size(v); k++)
			if (walk(c, json_array_get(v, k), i))
				return true;
		return false;
	}
	if (!json_is_object(v))
		return false;
	return walk(c, json_object_get(v, n->path[i]), i + 1);
}

static bool eval(const struct fnode *n, const json_t *v)
{
	struct sel_ctx c = {n, false};

	switch (n->kind) {
	case N_AND:
		return eval(n->l, v) && eval(n->r, v);
	case N_OR:
		return eval(n->l, v) || eval(n->r, v);
	case N_NOT:
		return !eval(n->l, v);
	case N_MATCH:
		break;
	}
	/* negated operators are "no selected value satisfies the positive" */
	switch (n->op) {
	case OP_NE: {
		struct fnode pos = *n;

		pos.op = OP_EQ;
		c.n = &pos;
		return !walk(&c, v, 0);
	}
	case OP_NOT_CONTAINS: {
		struct fnode pos = *n;

		pos.op = OP_CONTAINS;
		c.n = &pos;
		return !walk(&c, v, 0);
	}
	case OP_NOT_MATCHES: {
		struct fnode pos = *n;

		pos.op = OP_MATCHES;
		c.n = &pos;
		return !walk(&c, v, 0);
	}
	case OP_EMPTY: {
		struct fnode pos = *n;

		pos.op = OP_NOT_EMPTY;
		c.n = &pos;
		return !walk(&c, v, 0);
	}
	default:
		return walk(&c, v, 0);
	}
}

bool filter_match(const struct filter *f, const json_t *v) { return eval(f->root, v); }

void filter_array(const struct filter *f, json_t *arr)
{
	size_t i = 0;

	while (i < json_array_size(arr)) {
		if (filter_match(f, json_array_get(arr, i)))
			i++;
		else
			json_array_remove(arr, i);
	}
}

void filter_object(const struct filter *f, json_t *obj)
{
	const char *k;
	json_t *v;
	void *tmp;

	json_object_foreach_safe(obj, tmp, k, v)
	{
		if (!filter_match(f, v))
			json_object_del(obj, k);
	}
}
