/* Ready: an awaitable that is already done (issue 11 item 1).
 *
 * The reader's C hit path (afr_hit.c) has its answer before anyone awaits:
 * it returns a Ready holding it. `await ready` calls am_await (self), then
 * am_send (CPython 3.10/3.11) or tp_iternext (3.12+), which return the value
 * at once: no frame, no coroutine (an `async def` costs ~0.19 us an await,
 * /work/notes/proto). send/throw/close and __await__ make it a
 * collections.abc.Coroutine, so asyncio.create_task, ensure_future and
 * wait_for take it as they take a coroutine.
 *
 * A Ready of read/readinto/seek moved the reader's position when it was made;
 * if it is thrown into, closed or dropped before it delivered its value (a
 * task cancelled before its first step, a call never awaited), the position
 * goes back, as if the call never ran (invariant 4), unless something moved
 * it meanwhile. Counters, like a cancelled read's in the pool, stay counted.
 *
 * Limited API 3.10: PyType_FromSpec with Py_am_await/Py_am_send slots. */
#ifndef PYPY_VERSION
#include <stdlib.h>

typedef struct {
    PyObject_HEAD
    PyObject *value;    /* what the await returns */
    PyObject *reader;   /* NULL, or the reader whose position undo_pos restores */
    long long undo_pos; /* the reader's position before the call */
    long long done_pos; /* its position after the call (a text state: its gen) */
    int delivered;
    /* A direct text read/seek (afr_text.c): the state it replaced, put back
     * by afr_text_undo; saved_text NULL for the binary reader's Readys. */
    PyObject *saved_text;
    long long saved_start;
    Py_ssize_t saved_used;
    char saved_short, saved_dirty, saved_known;
    char saved_bits; /* the text state's newline and ratio flags (AFR_TEXT_BITS) */
} AfrReady;

static PyTypeObject *afr_ready_type = NULL;

/* Readys freed, kept for the next hits: a hit's Ready is usually freed
 * right after its await, so a loop of `await f.pread(n, off)` takes the same
 * one again without PyObject_Malloc/PyObject_Free (~2% of a cached 4 KiB
 * hit, perf). Only deallocated Readys are kept (refcount 0, nothing held,
 * no type reference), so no two live awaitables ever share one; a reused
 * one gets every field afresh. PyObject_Init is what PyObject_New does
 * after its malloc (type, heap type reference, refcount 1): the stable ABI
 * has it. The GIL guards the list (a limited-API module cannot be loaded by
 * a free-threaded build). */
#define AFR_READY_FREE_MAX 8
static AfrReady *afr_ready_free[AFR_READY_FREE_MAX];
static int afr_ready_nfree = 0;

/* Forward: the reader's position field (afr_hit.c); a text state's undo
 * (afr_text.c). */
static long long *afr_reader_pos_field(PyObject *reader);
static void afr_text_undo(PyObject *state, PyObject *saved_text, long long saved_start,
                          Py_ssize_t saved_used, char saved_short, char saved_dirty,
                          char saved_known, char saved_bits, long long done_gen);

/* A Ready for `value` (a reference stolen; NULL: an error is set, passed on). */
static PyObject *afr_ready_new(PyObject *value, PyObject *reader, long long undo_pos,
                               long long done_pos)
{
    AfrReady *r;
    if (value == NULL)
        return NULL;
    if (afr_ready_nfree > 0) {
        r = afr_ready_free[--afr_ready_nfree];
        PyObject_Init((PyObject *)r, afr_ready_type);
    }
    else {
        r = PyObject_New(AfrReady, afr_ready_type);
    }
    if (r == NULL) {
        Py_DECREF(value);
        return NULL;
    }
    r->value = value;
    Py_XINCREF(reader);
    r->reader = reader;
    r->undo_pos = undo_pos;
    r->done_pos = done_pos;
    r->delivered = 0;
    r->saved_text = NULL;
    return (PyObject *)r;
}

/* Not delivered: give the reader its position back (if still ours). */
static void afr_ready_undo(AfrReady *r)
{
    if (!r->delivered && r->saved_text != NULL) {
        afr_text_undo(r->reader, r->saved_text, r->saved_start, r->saved_used, r->saved_short,
                      r->saved_dirty, r->saved_known, r->saved_bits, r->done_pos);
    }
    else if (!r->delivered && r->reader != NULL) {
        long long *pos = afr_reader_pos_field(r->reader);
        if (*pos == r->done_pos)
            *pos = r->undo_pos;
    }
    r->delivered = 1;
}

static void afr_ready_dealloc(PyObject *self)
{
    AfrReady *r = (AfrReady *)self;
    PyTypeObject *tp = Py_TYPE(self);
    afr_ready_undo(r);
    Py_XDECREF(r->value);
    Py_XDECREF(r->reader);
    Py_XDECREF(r->saved_text);
    /* Kept only after the releases above: code they ran (a reader's last
     * reference) may have made and dropped Readys meanwhile. */
    if (afr_ready_nfree < AFR_READY_FREE_MAX)
        afr_ready_free[afr_ready_nfree++] = r;
    else
        PyObject_Free(self);
    Py_DECREF(tp); /* a heap type: each instance holds a reference to it */
}

static PyObject *afr_ready_await(PyObject *self)
{
    Py_INCREF(self);
    return self;
}

static PyObject *afr_ready_value(AfrReady *r)
{
    r->delivered = 1;
    return r->value;
}

static PySendResult afr_ready_send(PyObject *self, PyObject *arg, PyObject **result)
{
    (void)arg;
    *result = afr_ready_value((AfrReady *)self);
    Py_INCREF(*result);
    return PYGEN_RETURN;
}

/* CPython 3.12+ awaits through tp_iternext, not am_send: the value leaves
 * in a StopIteration, which 3.12 creates at once (an await cost ~0.37 us
 * more than through am_send on 3.11, measured here; a generator returned by
 * __await__ to run inline cost more still). There one StopIteration is
 * reused: its value replaced, its traceback and context cleared, then
 * raised; the interpreter takes the value out at once (~0.16 us). Only code
 * that drives `__await__()` by hand and keeps the exception sees its value
 * change at the next await. NULL before 3.12. */
static PyObject *afr_stop_reused = NULL;
static PyObject *afr_str_value = NULL;

static int afr_ready_init_stop(void)
{
    const char *version = Py_GetVersion(); /* "3.12.1 (main, ..." */
    int minor = version[0] == '3' && version[1] == '.' ? atoi(version + 2) : 0;
    if (minor < 12)
        return 0;
    afr_str_value = PyUnicode_InternFromString("value");
    if (afr_str_value == NULL)
        return -1;
    afr_stop_reused = PyObject_CallFunctionObjArgs(PyExc_StopIteration, NULL);
    return afr_stop_reused == NULL ? -1 : 0;
}

/* StopIteration(value): a tuple or an exception as the value would be taken
 * as the exception's arguments, so those are wrapped (ours are bytes/int). */
static PyObject *afr_ready_stop(PyObject *self)
{
    PyObject *value = afr_ready_value((AfrReady *)self);
    if (afr_stop_reused != NULL) {
        if (PyObject_SetAttr(afr_stop_reused, afr_str_value, value) < 0)
            return NULL;
        PyException_SetTraceback(afr_stop_reused, Py_None);
        PyException_SetContext(afr_stop_reused, NULL);
        PyErr_SetObject(PyExc_StopIteration, afr_stop_reused);
        return NULL;
    }
    if (PyTuple_Check(value) || PyExceptionInstance_Check(value)) {
        PyObject *exc = PyObject_CallFunctionObjArgs(PyExc_StopIteration, value, NULL);
        if (exc == NULL)
            return NULL;
        PyErr_SetObject(PyExc_StopIteration, exc);
        Py_DECREF(exc);
    }
    else {
        PyErr_SetObject(PyExc_StopIteration, value);
    }
    return NULL;
}

static PyObject *afr_ready_iternext(PyObject *self) { return afr_ready_stop(self); }

static PyObject *afr_ready_send_method(PyObject *self, PyObject *arg)
{
    (void)arg;
    return afr_ready_stop(self);
}

/* throw(exc) / throw(type[, value[, tb]]): raise it here, as a coroutine
 * that has not started does; the call it stands for is undone. */
static PyObject *afr_ready_throw(PyObject *self, PyObject *args)
{
    PyObject *typ, *val = NULL, *tb = NULL;
    if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb))
        return NULL;
    afr_ready_undo((AfrReady *)self);
    if (PyExceptionInstance_Check(typ)) {
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    }
    else if (PyExceptionClass_Check(typ)) {
        PyErr_SetObject(typ, val != NULL ? val : Py_None);
    }
    else {
        PyErr_SetString(PyExc_TypeError,
                        "exceptions must be classes or instances deriving from BaseException");
    }
    return NULL;
}

static PyObject *afr_ready_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    afr_ready_undo((AfrReady *)self);
    Py_RETURN_NONE;
}

static PyMethodDef afr_ready_methods[] = {
    {"send", (PyCFunction)afr_ready_send_method, METH_O, "Return the value (StopIteration)."},
    {"throw", (PyCFunction)afr_ready_throw, METH_VARARGS, "Raise the exception here."},
    {"close", (PyCFunction)afr_ready_close, METH_NOARGS, "Drop the value."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot afr_ready_slots[] = {
    {Py_tp_dealloc, (void *)afr_ready_dealloc},
    {Py_am_await, (void *)afr_ready_await},
    {Py_am_send, (void *)afr_ready_send},
    {Py_tp_iter, (void *)afr_ready_await},
    {Py_tp_iternext, (void *)afr_ready_iternext},
    {Py_tp_methods, (void *)afr_ready_methods},
    {Py_tp_doc, (void *)"The result of a read served at once: awaiting it returns it."},
    {0, NULL},
};

static PyType_Spec afr_ready_spec = {
    "aiofastread.Ready", sizeof(AfrReady), 0, Py_TPFLAGS_DEFAULT, afr_ready_slots,
};

static int afr_ready_init_type(void)
{
    if (afr_ready_type != NULL)
        return 0;
    if (afr_ready_init_stop() < 0)
        return -1;
    afr_ready_type = (PyTypeObject *)PyType_FromSpec(&afr_ready_spec);
    return afr_ready_type == NULL ? -1 : 0;
}

#endif /* PYPY_VERSION */
