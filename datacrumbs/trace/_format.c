/* SPDX-License-Identifier: MIT */
/*
 * datacrumbs.trace._format: the call records of a ring-buffer chunk → trace lines, in C.
 *
 * Why compiled: formatting was the consumer's ceiling (about 1.9 us per event in Python, one
 * thread holding the GIL); here it is a few tens of ns and runs without the GIL. What a line
 * says is still decided in Python (format.py builds each function's template once): this
 * module only fills the templates in. A template is a list of parts, each a literal followed
 * by one value, then a tail literal; the value is one field of the record (SRC_*), printed as
 * a decimal, narrowed to the argument's C type first, or as 16 hex digits (CONV_*).
 *
 * format_calls() walks consecutive call records from a position and stops at the first record
 * of another type (file names and thread names, rare and formatted in Python) or at the end.
 */
#define PY_SSIZE_T_CLEAN
#define Py_LIMITED_API 0x030B0000 /* the stable ABI: one build for Python 3.11 and later */
#include <Python.h>
#include <linux/types.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../ebpf/bpf/dc_records.h"

#define HEADER_SIZE 8
#define LEN_MASK 0x3fffffffU
#define DISCARD_BIT (1U << 30)
/* Literals are copied 8 bytes at a time: each is allocated, and each line's room reserved,
 * with this much to spare. */
#define LIT_SLACK 8

enum src {
	SRC_ID = 0,
	SRC_PID = 1,
	SRC_TID = 2,
	SRC_TS = 3, /* microseconds since the epoch */
	SRC_DUR = 4, /* microseconds */
	SRC_RET = 5,
	SRC_ARG0 = 6, /* .. SRC_ARG0 + DC_MAX_ARGS - 1 */
	SRC_FHASH = SRC_ARG0 + DC_MAX_ARGS,
	SRC_COUNT,
};

/* How a value is printed: CONV_INT, CONV_HEX, or narrowed to an argument of 1 to 7 bytes,
 * CONV_NARROW + 2 * (bytes - 1) + signed, then printed as a decimal. */
enum conv {
	CONV_INT = 0, /* signed 64-bit decimal */
	CONV_HEX = 1, /* 16 hex digits of the unsigned 64-bit value */
	CONV_NARROW = 2,
	CONV_COUNT = CONV_NARROW + 14,
};

struct part {
	char *lit;
	Py_ssize_t lit_len;
	int src;
	int conv;
};

struct tpl {
	struct part *parts;
	int nparts;
	char *tail;
	Py_ssize_t tail_len;
	Py_ssize_t max_len; /* the literals' bytes plus 20 per value: a bound on one line */
};

struct fn {
	struct tpl without_file;
	struct tpl with_file; /* nparts < 0: the function has no file */
	int known;
};

typedef struct {
	PyObject_HEAD
	struct fn *fns; /* indexed by function id */
	Py_ssize_t nfns;
	Py_ssize_t max_line; /* the longest line any template can make */
	int64_t offset;	     /* wall clock minus CLOCK_MONOTONIC, ns */
	char *out;	     /* the lines being made, kept from call to call (no page faults) */
	Py_ssize_t out_cap;
} Formatter;

static void tpl_free(struct tpl *t)
{
	for (int i = 0; i < t->nparts; i++)
		PyMem_Free(t->parts[i].lit);
	PyMem_Free(t->parts);
	PyMem_Free(t->tail);
	t->parts = NULL;
	t->tail = NULL;
	t->nparts = 0;
}

static char *copy_bytes(PyObject *obj, Py_ssize_t *len)
{
	char *data, *out;

	if (PyBytes_AsStringAndSize(obj, &data, len) < 0)
		return NULL;
	out = PyMem_Calloc(*len + LIT_SLACK, 1); /* put_lit copies whole words */
	if (!out) {
		PyErr_NoMemory();
		return NULL;
	}
	memcpy(out, data, *len);
	return out;
}

/* A template from (((literal, src, conv), ...), tail). */
static int tpl_parse(PyObject *obj, struct tpl *t)
{
	PyObject *parts, *tail;

	memset(t, 0, sizeof(*t));
	if (!PyArg_ParseTuple(obj, "O!O!", &PyTuple_Type, &parts, &PyBytes_Type, &tail))
		return -1;
	t->nparts = (int)PyTuple_Size(parts);
	t->parts = PyMem_Calloc(t->nparts ? t->nparts : 1, sizeof(*t->parts));
	if (!t->parts) {
		t->nparts = 0;
		PyErr_NoMemory();
		return -1;
	}
	for (int i = 0; i < t->nparts; i++) {
		PyObject *lit;
		struct part *p = &t->parts[i];

		if (!PyArg_ParseTuple(PyTuple_GetItem(parts, i), "O!ii", &PyBytes_Type, &lit, &p->src,
				      &p->conv))
			goto fail;
		if (p->src < 0 || p->src >= SRC_COUNT || p->conv < 0 || p->conv >= CONV_COUNT) {
			PyErr_SetString(PyExc_ValueError, "unknown value source or conversion");
			goto fail;
		}
		p->lit = copy_bytes(lit, &p->lit_len);
		if (!p->lit)
			goto fail;
		t->max_len += p->lit_len + 20;
	}
	t->tail = copy_bytes(tail, &t->tail_len);
	if (!t->tail)
		goto fail;
	t->max_len += t->tail_len + LIT_SLACK;
	return 0;
fail:
	tpl_free(t);
	return -1;
}

static void Formatter_dealloc(Formatter *self)
{
	for (Py_ssize_t i = 0; i < self->nfns; i++) {
		if (!self->fns[i].known)
			continue;
		tpl_free(&self->fns[i].without_file);
		tpl_free(&self->fns[i].with_file);
	}
	PyMem_Free(self->fns);
	free(self->out);
	{
		PyTypeObject *type = Py_TYPE((PyObject *)self);
		freefunc tp_free = (freefunc)PyType_GetSlot(type, Py_tp_free);

		tp_free(self);
		Py_DECREF(type); /* a heap type: its instances hold a reference */
	}
}

/* Formatter({fid: (template, template_with_file or None)}, offset_ns) */
static int Formatter_init(Formatter *self, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"templates", "offset", NULL};
	PyObject *templates, *key, *value;
	long long offset;
	Py_ssize_t pos = 0, max_fid = 0;

	if (self->fns) {
		PyErr_SetString(PyExc_RuntimeError, "a Formatter is initialised once");
		return -1;
	}
	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!L", kwlist, &PyDict_Type, &templates,
					 &offset))
		return -1;
	while (PyDict_Next(templates, &pos, &key, &value)) {
		Py_ssize_t fid = PyLong_AsSsize_t(key);

		if (fid < 0 || fid > 0xffffff) {
			if (!PyErr_Occurred())
				PyErr_SetString(PyExc_ValueError, "function ids are 0 to 2**24 - 1");
			return -1;
		}
		if (fid > max_fid)
			max_fid = fid;
	}
	self->nfns = max_fid + 1;
	self->fns = PyMem_Calloc(self->nfns, sizeof(*self->fns));
	if (!self->fns) {
		self->nfns = 0;
		PyErr_NoMemory();
		return -1;
	}
	self->offset = offset;
	pos = 0;
	while (PyDict_Next(templates, &pos, &key, &value)) {
		struct fn *fn = &self->fns[PyLong_AsSsize_t(key)];
		PyObject *plain, *with_file;

		if (!PyArg_ParseTuple(value, "OO", &plain, &with_file))
			return -1;
		if (tpl_parse(plain, &fn->without_file) < 0)
			return -1;
		fn->with_file.nparts = -1;
		if (with_file != Py_None) {
			if (tpl_parse(with_file, &fn->with_file) < 0) {
				tpl_free(&fn->without_file);
				return -1;
			}
		}
		fn->known = 1;
		if (fn->without_file.max_len > self->max_line)
			self->max_line = fn->without_file.max_len;
		if (fn->with_file.max_len > self->max_line)
			self->max_line = fn->with_file.max_len;
	}
	return 0;
}

/* "00".."99": two digits per division. */
static char digit_pairs[200];
/* "00".."ff": two hex digits per byte. */
static char hex_pairs[512];

static void init_tables(void)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 100; i++) {
		digit_pairs[2 * i] = (char)('0' + i / 10);
		digit_pairs[2 * i + 1] = (char)('0' + i % 10);
	}
	for (int i = 0; i < 256; i++) {
		hex_pairs[2 * i] = hex[i >> 4];
		hex_pairs[2 * i + 1] = hex[i & 15];
	}
}

/* The decimal digits of v, right-aligned in a 20-byte field, then copied with one fixed-size
 * move (no memcpy call): the 20 - n bytes past the number are overwritten by what follows
 * (each value's room in max_len is 20 bytes). */
static inline char *put_u64(char *out, uint64_t v)
{
	char digits[40];
	int n = 20;

	while (v >= 100) {
		unsigned r = (unsigned)(v % 100);

		v /= 100;
		n -= 2;
		memcpy(digits + n, digit_pairs + 2 * r, 2);
	}
	if (v >= 10) {
		n -= 2;
		memcpy(digits + n, digit_pairs + 2 * v, 2);
	} else {
		digits[--n] = (char)('0' + v);
	}
	memcpy(out, digits + n, 20);
	return out + 20 - n;
}

static inline char *put_i64(char *out, int64_t v)
{
	if (v < 0) {
		*out++ = '-';
		return put_u64(out, (uint64_t)0 - (uint64_t)v);
	}
	return put_u64(out, (uint64_t)v);
}

static inline char *put_hex(char *out, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		memcpy(out + 2 * i, hex_pairs + 2 * (v & 0xff), 2);
		v >>= 8;
	}
	return out + 16;
}

/* A literal, in whole 8-byte words (short literals: one or two moves, no call); the bytes
 * past its end are overwritten by what follows. */
static inline char *put_lit(char *out, const char *lit, Py_ssize_t len)
{
	for (Py_ssize_t i = 0; i < len; i += 8)
		memcpy(out + i, lit + i, 8);
	return out + len;
}

static inline char *put_value(char *out, int64_t v, int conv)
{
	unsigned bits;
	uint64_t u;

	if (conv == CONV_INT)
		return put_i64(out, v);
	if (conv == CONV_HEX)
		return put_hex(out, (uint64_t)v);
	bits = 8 * ((unsigned)(conv - CONV_NARROW) / 2 + 1);
	u = (uint64_t)v & ((1ULL << bits) - 1);
	if ((conv - CONV_NARROW) & 1) { /* signed: extend the narrowed value's sign */
		uint64_t sign = 1ULL << (bits - 1);

		return put_i64(out, (int64_t)((u ^ sign) - sign));
	}
	return put_u64(out, u);
}

struct walk {
	Py_ssize_t pos, records, limit;
	uint64_t eid, events;
	char *out; /* room for max_line bytes per call record the chunk can hold */
	Py_ssize_t used;
	__u32 last_tid; /* the last call record walked: its thread and entry time (a time the */
	__u64 last_ts;	/* thread was alive: process_info.py checks a pid against it) */
};

/* The call records from w->pos on, without the GIL. */
static void walk_calls(const Formatter *self, const char *chunk, Py_ssize_t end, struct walk *w)
{
	int64_t v[SRC_COUNT];

	while (w->records < w->limit && w->pos + HEADER_SIZE + (Py_ssize_t)sizeof(__u32) <= end) {
		const char *rec = chunk + w->pos;
		__u32 len, type;
		struct dc_call c;
		const struct fn *fn;
		const struct tpl *t;
		char *o;

		memcpy(&len, rec, sizeof(len));
		memcpy(&type, rec + HEADER_SIZE, sizeof(type));
		if (len & DISCARD_BIT) {
			w->pos += HEADER_SIZE + (((len & LEN_MASK) + 7) & ~7U);
			continue;
		}
		if (type != DC_REC_CALL || w->pos + HEADER_SIZE + (Py_ssize_t)sizeof(c) > end)
			return;
		memcpy(&c, rec + HEADER_SIZE, sizeof(c));
		w->pos += HEADER_SIZE + (((len & LEN_MASK) + 7) & ~7U);
		w->records++;
		w->last_tid = c.tid;
		w->last_ts = c.ts;
		if (c.fid >= self->nfns || !self->fns[c.fid].known)
			continue;
		fn = &self->fns[c.fid];
		t = c.fhash && fn->with_file.nparts >= 0 ? &fn->with_file : &fn->without_file;
		v[SRC_ID] = (int64_t)w->eid;
		v[SRC_PID] = c.pid;
		v[SRC_TID] = c.tid;
		v[SRC_TS] = (int64_t)((c.ts + (uint64_t)self->offset) / 1000);
		v[SRC_DUR] = (int64_t)(c.dur / 1000);
		v[SRC_RET] = c.ret;
		for (int i = 0; i < DC_MAX_ARGS; i++)
			v[SRC_ARG0 + i] = (int64_t)c.args[i];
		v[SRC_FHASH] = (int64_t)c.fhash;
		o = w->out + w->used;
		for (int i = 0; i < t->nparts; i++) {
			const struct part *p = &t->parts[i];

			o = put_value(put_lit(o, p->lit, p->lit_len), v[p->src], p->conv);
		}
		o = put_lit(o, t->tail, t->tail_len);
		w->used = o - w->out;
		w->eid++;
		w->events++;
	}
}

/* format_calls(chunk, pos, eid, limit) -> (text, pos, eid, events, records, last_tid, last_ts):
 * at most limit call records; last_* of the last call record walked (0, 0: none). The lines are
 * made in the formatter's own buffer, grown to the most lines the chunk (or limit) could hold
 * and kept — limit bounds it, whatever the chunk — then copied into the bytes returned. */
static PyObject *Formatter_format_calls(Formatter *self, PyObject *args)
{
	Py_buffer chunk;
	Py_ssize_t pos, most, limit;
	unsigned long long eid;
	struct walk w = {0};

	if (!PyArg_ParseTuple(args, "y*nKn", &chunk, &pos, &eid, &limit))
		return NULL;
	if (pos < 0 || pos > chunk.len || limit < 1) {
		PyBuffer_Release(&chunk);
		PyErr_SetString(PyExc_ValueError, "position outside the chunk, or limit below 1");
		return NULL;
	}
	most = (chunk.len - pos) / (HEADER_SIZE + (Py_ssize_t)sizeof(struct dc_call));
	if (most > limit)
		most = limit;
	if (most * self->max_line + 1 > self->out_cap) {
		Py_ssize_t cap = most * self->max_line + 1;
		char *grown = realloc(self->out, cap);

		if (!grown) {
			PyBuffer_Release(&chunk);
			return PyErr_NoMemory();
		}
		self->out = grown;
		self->out_cap = cap;
	}
	w.pos = pos;
	w.limit = limit;
	w.eid = eid;
	w.out = self->out;
	Py_BEGIN_ALLOW_THREADS
	walk_calls(self, chunk.buf, chunk.len, &w);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&chunk);
	return Py_BuildValue("y#nKKnIK", w.out, w.used, w.pos, (unsigned long long)w.eid,
			     (unsigned long long)w.events, w.records, (unsigned int)w.last_tid,
			     (unsigned long long)w.last_ts);
}

static PyMethodDef Formatter_methods[] = {
	{"format_calls", (PyCFunction)Formatter_format_calls, METH_VARARGS,
	 "format_calls(chunk, pos, eid, limit) -> (text, pos, eid, events, records, last_tid, "
	 "last_ts): the call records from pos up to the first record of another type, the chunk's "
	 "end or limit records; last_tid and last_ts are the last call record's (0, 0: none)."},
	{NULL, NULL, 0, NULL},
};

static PyType_Slot Formatter_slots[] = {
	{Py_tp_doc, "Fills the functions' line templates in from call records."},
	{Py_tp_new, PyType_GenericNew},
	{Py_tp_init, (initproc)Formatter_init},
	{Py_tp_dealloc, (destructor)Formatter_dealloc},
	{Py_tp_methods, Formatter_methods},
	{0, NULL},
};

static PyType_Spec Formatter_spec = {
	.name = "datacrumbs.trace._format.Formatter",
	.basicsize = sizeof(Formatter),
	.flags = Py_TPFLAGS_DEFAULT,
	.slots = Formatter_slots,
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "datacrumbs.trace._format",
	.m_doc = "Call records to trace lines, compiled (see format.py).",
	.m_size = -1,
};

PyMODINIT_FUNC PyInit__format(void)
{
	PyObject *m, *type;

	init_tables();
	m = PyModule_Create(&module);
	if (!m)
		return NULL;
	type = PyType_FromSpec(&Formatter_spec);
	if (!type || PyModule_AddObject(m, "Formatter", type) < 0 ||
	    PyModule_AddIntConstant(m, "SRC_ID", SRC_ID) < 0 ||
	    PyModule_AddIntConstant(m, "SRC_PID", SRC_PID) < 0 ||
	    PyModule_AddIntConstant(m, "SRC_TID", SRC_TID) < 0 ||
	    PyModule_AddIntConstant(m, "SRC_TS", SRC_TS) < 0 ||
	    PyModule_AddIntConstant(m, "SRC_DUR", SRC_DUR) < 0 ||
	    PyModule_AddIntConstant(m, "SRC_RET", SRC_RET) < 0 ||
	    PyModule_AddIntConstant(m, "SRC_ARG0", SRC_ARG0) < 0 ||
	    PyModule_AddIntConstant(m, "SRC_FHASH", SRC_FHASH) < 0 ||
	    PyModule_AddIntConstant(m, "CONV_INT", CONV_INT) < 0 ||
	    PyModule_AddIntConstant(m, "CONV_HEX", CONV_HEX) < 0 ||
	    PyModule_AddIntConstant(m, "CONV_NARROW", CONV_NARROW) < 0) {
		Py_XDECREF(type);
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
