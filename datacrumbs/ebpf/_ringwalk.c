/* SPDX-License-Identifier: MIT */
/*
 * datacrumbs.ebpf._ringwalk: the consumer side of a BPF ring buffer, in C.
 *
 * take(consumer_page, producer_area, mask, page) takes every committed record, as libbpf's
 * ringbuf_process_ring does, with its memory ordering:
 *   - producer_pos is loaded with acquire: the records before it are visible once it is;
 *   - each record's header is loaded with acquire: the kernel's commit clears BUSY with a
 *     release (xchg), after writing the record, so a header seen without BUSY means its bytes
 *     are there; the walk stops at the first record still being written;
 *   - the committed span is copied out (the data area is mapped twice in a row: a record that
 *     wraps around the end is contiguous), then consumer_pos is stored with release: the kernel
 *     (which reads it to find room) may reuse that space only once the copy is done.
 * x86's stores and loads are ordered this way by themselves (TSO); aarch64's are not, and the
 * atomics say what is needed on both. Each position is one aligned 8-byte load or store: a
 * byte-wise store of consumer_pos once let a producer read a half-written position and drop
 * records as if the buffer were full.
 *
 * Why compiled: the walk over every record's header cost ~100 ns per record in Python, on the
 * poller thread that must never fall behind; here it is a few ns, without the GIL. The framing
 * constants are <linux/bpf.h>'s.
 */
#define PY_SSIZE_T_CLEAN
#define Py_LIMITED_API 0x030B0000 /* the stable ABI: one build for Python 3.11 and later */
#include <Python.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <string.h>

/* take(consumer_page, producer_area, mask, page) -> bytes: every record committed from
 * consumer_pos on (headers included; b"" when none), consumer_pos moved past them.
 * consumer_page: the writable page holding consumer_pos; producer_area: producer_pos's page
 * (``page`` bytes), then the data area mapped twice (mask + 1 bytes each), read-only. */
static PyObject *take(PyObject *self, PyObject *args)
{
	Py_buffer cons, prod;
	unsigned long long mask, consumer, producer, pos, page, size;
	uint64_t *consumer_pos;
	const char *data;
	PyObject *chunk = NULL;

	(void)self;
	if (!PyArg_ParseTuple(args, "w*y*KK", &cons, &prod, &mask, &page))
		return NULL;
	size = mask + 1;
	if ((size & mask) || cons.len < (Py_ssize_t)sizeof(uint64_t) ||
	    (unsigned long long)prod.len < page + 2 * size || page < sizeof(uint64_t) ||
	    ((uintptr_t)cons.buf | (uintptr_t)prod.buf) % sizeof(uint64_t)) {
		PyErr_SetString(PyExc_ValueError,
				"take() needs the consumer page and the producer page with the data "
				"area mapped twice after it");
		goto out;
	}
	consumer_pos = (uint64_t *)cons.buf;
	data = (const char *)prod.buf + page;
	consumer = __atomic_load_n(consumer_pos, __ATOMIC_RELAXED); /* only we store it */
	producer = __atomic_load_n((const uint64_t *)prod.buf, __ATOMIC_ACQUIRE);
	pos = consumer;
	Py_BEGIN_ALLOW_THREADS
	while (pos < producer) {
		uint32_t len = __atomic_load_n((const uint32_t *)(data + (pos & mask)),
					       __ATOMIC_ACQUIRE);

		if (len & BPF_RINGBUF_BUSY_BIT)
			break;
		len &= ~(uint32_t)BPF_RINGBUF_DISCARD_BIT;
		pos += (len + BPF_RINGBUF_HDR_SZ + 7) & ~7ULL;
	}
	Py_END_ALLOW_THREADS
	if (pos == consumer || pos - consumer > size) {
		/* nothing committed (a length past the ring would be the kernel's bug: not read) */
		chunk = PyBytes_FromStringAndSize(NULL, 0);
		goto out;
	}
	chunk = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(pos - consumer));
	if (chunk) {
		char *dst = PyBytes_AsString(chunk);

		Py_BEGIN_ALLOW_THREADS
		memcpy(dst, data + (consumer & mask), pos - consumer);
		__atomic_store_n(consumer_pos, pos, __ATOMIC_RELEASE);
		Py_END_ALLOW_THREADS
	}
out:
	PyBuffer_Release(&prod);
	PyBuffer_Release(&cons);
	return chunk;
}

static PyMethodDef methods[] = {
	{"take", take, METH_VARARGS,
	 "take(consumer_page, producer_area, mask, page) -> the committed records, consumed"},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "datacrumbs.ebpf._ringwalk",
	.m_doc = "The BPF ring buffer's consumer step, in C (see ringbuf.py).",
	.m_size = -1,
	.m_methods = methods,
};

PyMODINIT_FUNC PyInit__ringwalk(void)
{
	PyObject *m = PyModule_Create(&module);

	if (m && (PyModule_AddIntConstant(m, "DISCARD_BIT", BPF_RINGBUF_DISCARD_BIT) < 0 ||
		  PyModule_AddIntConstant(m, "BUSY_BIT", BPF_RINGBUF_BUSY_BIT) < 0 ||
		  PyModule_AddIntConstant(m, "HEADER_SIZE", BPF_RINGBUF_HDR_SZ) < 0)) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
