/* SPDX-License-Identifier: MIT */
/*
 * datacrumbs.ebpf._ringwalk: how far a BPF ring buffer's records are committed, in C.
 *
 * Why compiled: the consumer walks every record's 8-byte header from consumer_pos to
 * producer_pos and stops at the first one still being written (BUSY bit). In Python that walk
 * cost ~100 ns per record on the poller thread, which must never fall behind; here it is a
 * few ns, without the GIL. The header is read with one 4-byte load: the kernel's commit
 * clears BUSY with one store (xchg) too.
 */
#define PY_SSIZE_T_CLEAN
#define Py_LIMITED_API 0x030B0000 /* the stable ABI: one build for Python 3.11 and later */
#include <Python.h>
#include <stdint.h>

#define BUSY_BIT (1U << 31)
#define DISCARD_BIT (1U << 30)
#define HEADER_SIZE 8

/* committed_end(data, consumer, producer, mask) -> the position up to which every record from
 * consumer on is committed (== consumer: none). data: the data area mapped twice in a row. */
static PyObject *committed_end(PyObject *self, PyObject *args)
{
	Py_buffer data;
	unsigned long long consumer, producer, mask, pos;

	(void)self;
	if (!PyArg_ParseTuple(args, "y*KKK", &data, &consumer, &producer, &mask))
		return NULL;
	if ((unsigned long long)data.len < 2 * (mask + 1)) {
		PyBuffer_Release(&data);
		PyErr_SetString(PyExc_ValueError, "the data area must be mapped twice");
		return NULL;
	}
	pos = consumer;
	Py_BEGIN_ALLOW_THREADS
	while (pos < producer) {
		const volatile uint32_t *header =
			(const volatile uint32_t *)((const char *)data.buf + (pos & mask));
		uint32_t len = *header;

		if (len & BUSY_BIT)
			break;
		pos += ((len & ~(BUSY_BIT | DISCARD_BIT)) + HEADER_SIZE + 7) & ~7ULL;
	}
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&data);
	return PyLong_FromUnsignedLongLong(pos);
}

static PyMethodDef methods[] = {
	{"committed_end", committed_end, METH_VARARGS,
	 "committed_end(data, consumer, producer, mask) -> how far the records are committed"},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "datacrumbs.ebpf._ringwalk",
	.m_doc = "The ring buffer's committed span, found in C (see ringbuf.py).",
	.m_size = -1,
	.m_methods = methods,
};

PyMODINIT_FUNC PyInit__ringwalk(void)
{
	return PyModule_Create(&module);
}
