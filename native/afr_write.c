/* WriterCore: the base of AsyncBufferedWriter ("wb"/"ab"/"xb") holding its
 * buffer state in C fields, with `write` as a C method.
 *
 * `await f.write(b)` of 100 bytes that fit the buffer is the hot call of a
 * writer: in Python (a method frame, the checks, `buf += data`, a lookup of
 * the completed awaitable) it costs ~2x an `await` of a coroutine that only
 * returns (bench/writes.py). Here CPython 3.11 calls a METH_O method without
 * a frame or an argument tuple and the body is a type check, a compare, a
 * resize + memcpy and a dict lookup. Anything else (not exact bytes, does
 * not fit, nobody may write now: _limit is -1, the awaitable not made yet)
 * calls the Python method `_write_slow(data)`, which has the Python
 * version's exact behaviour (_writer_core.PythonWriterCore.write).
 *
 * Fields, as Python attributes (members): _buf (bytearray), _limit (how
 * full a write may make the buffer; -1: no fast path), _done (dict: length
 * -> completed awaitable, _writer_ready.Done). The Python subclass sets them
 * in __init__ and changes them as before; this type only reads _limit.
 *
 * Built with the limited API of cffi's default (no PyType_GetSlot): the
 * instance is freed according to its type's GC flag (a Python subclass has
 * GC, this base does not). The fields are not traversed by the GC: _buf
 * holds bytes only and _done futures that reference their loop only. */
#ifndef PYPY_VERSION
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *buf;     /* bytearray */
    PyObject *done;    /* dict: int -> awaitable */
    Py_ssize_t limit;
} AfrWriterCore;

static PyObject *afr_str_write_slow = NULL;

static PyObject *afr_writer_write(PyObject *self, PyObject *data)
{
    AfrWriterCore *w = (AfrWriterCore *)self;
    if (PyBytes_CheckExact(data) && w->buf != NULL && w->done != NULL
        && PyByteArray_CheckExact(w->buf) && PyDict_CheckExact(w->done)) {
        Py_ssize_t n = PyBytes_Size(data);
        Py_ssize_t have = PyByteArray_Size(w->buf);
        if (n <= w->limit - have) {
            PyObject *key = PyLong_FromSsize_t(n), *ready;
            if (key == NULL)
                return NULL;
            ready = PyDict_GetItem(w->done, key); /* borrowed; no error raised */
            Py_DECREF(key);
            if (ready != NULL) {
                /* Resize fails (BufferError) while the buffer is exported,
                 * as `buf += data` does. */
                if (PyByteArray_Resize(w->buf, have + n) < 0)
                    return NULL;
                memcpy(PyByteArray_AsString(w->buf) + have, PyBytes_AsString(data), (size_t)n);
                Py_INCREF(ready);
                return ready;
            }
        }
    }
    return PyObject_CallMethodObjArgs(self, afr_str_write_slow, data, NULL);
}

static void afr_writer_dealloc(PyObject *self)
{
    AfrWriterCore *w = (AfrWriterCore *)self;
    PyTypeObject *tp = Py_TYPE(self);
    Py_CLEAR(w->buf);
    Py_CLEAR(w->done);
    if (PyType_GetFlags(tp) & Py_TPFLAGS_HAVE_GC)
        PyObject_GC_Del(self);
    else
        PyObject_Free(self);
    /* The base is a heap type: subtype_dealloc leaves this decref to it. */
    Py_DECREF(tp);
}

static PyMethodDef afr_writer_methods[] = {
    {"write", (PyCFunction)afr_writer_write, METH_O,
     "write(data) -> awaitable of len(data): buffered at the call when it fits "
     "(a completed awaitable), else the coroutine _write_slow(data) returns"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef afr_writer_members[] = {
    {"_buf", T_OBJECT_EX, offsetof(AfrWriterCore, buf), 0, "the buffer (bytearray)"},
    {"_done", T_OBJECT_EX, offsetof(AfrWriterCore, done), 0,
     "completed awaitables by write length"},
    {"_limit", T_PYSSIZET, offsetof(AfrWriterCore, limit), 0,
     "how full a fast-path write may make the buffer; -1: none may"},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot afr_writer_slots[] = {
    {Py_tp_doc, (void *)"C fields and write() of AsyncBufferedWriter (native/afr_write.c)"},
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)afr_writer_dealloc},
    {Py_tp_methods, (void *)afr_writer_methods},
    {Py_tp_members, (void *)afr_writer_members},
    {0, NULL},
};

static PyType_Spec afr_writer_spec = {
    "aiofastread._native_cffi.WriterCore",
    sizeof(AfrWriterCore),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    afr_writer_slots,
};

static PyObject *afr_writer_type = NULL;

static void *afr_writer_core_type(void)
{
    /* cffi calls C with the GIL released; the C API needs it. */
    PyGILState_STATE gil = PyGILState_Ensure();
    if (afr_writer_type == NULL) {
        afr_str_write_slow = PyUnicode_InternFromString("_write_slow");
        if (afr_str_write_slow != NULL)
            afr_writer_type = PyType_FromSpec(&afr_writer_spec);
        if (afr_writer_type == NULL)
            PyErr_Clear(); /* no type: Python's WriterCore is used */
    }
    PyGILState_Release(gil);
    return afr_writer_type; /* one reference, held forever */
}
#else
static void *afr_writer_core_type(void) { return NULL; }
#endif
