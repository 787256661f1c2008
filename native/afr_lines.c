/* LinesCore: `async for line in f` over text lines already decoded (issue 11).
 *
 * The lines fast path (aiofastread/_bridge/lines.py) decodes whole chunks of
 * a text file ahead of its TextIOWrapper into one str, `_text`; the lines are
 * the pieces of it that end in "\n", from `_pos` on. An `async def __anext__`
 * costs ~0.19 us a line on its own (a frame and a coroutine), more than the
 * rest of the work: so the Python class derives from this base, whose
 * am_anext cuts the next line (PyUnicode_FindChar + PyUnicode_Substring) and
 * returns it in a Ready (afr_ready.c), and am_aiter returns the object
 * itself. When `_text` has no whole line left from `_pos` (or is not a
 * str), am_anext returns what the Python method `_more()` returns (a
 * coroutine: refill, sync, or the per-line path).
 *
 * Limited API 3.10: PyType_FromSpec with Py_am_aiter/Py_am_anext, PyMemberDef. */
#ifndef PYPY_VERSION
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *text; /* str (or NULL): decoded text, lines not yet handed out from pos */
    Py_ssize_t pos; /* where the next line starts in text */
    PyObject *ready; /* the last Ready handed out (NULL): reused once nobody else holds it */
} AfrLines;

static PyObject *afr_str_more = NULL;

static int afr_lines_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((AfrLines *)self)->text);
    Py_VISIT(((AfrLines *)self)->ready);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int afr_lines_clear(PyObject *self)
{
    Py_CLEAR(((AfrLines *)self)->text);
    Py_CLEAR(((AfrLines *)self)->ready);
    return 0;
}

static void afr_lines_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
    PyObject_GC_UnTrack(self);
    afr_lines_clear(self);
    tp_free(self);
    Py_DECREF(tp);
}

static PyObject *afr_lines_aiter(PyObject *self)
{
    Py_INCREF(self);
    return self;
}

/* A Ready for `line` (stolen). A Ready no one else holds any more (the
 * last line's, awaited and dropped by `async for`) is reused: its old line
 * dropped, the new one put in; else a new one, kept for next time. Saves
 * an allocation and a free a line (~20 ns here). */
static PyObject *afr_lines_ready(AfrLines *l, PyObject *line)
{
    AfrReady *r = (AfrReady *)l->ready;
    if (r != NULL && Py_REFCNT(r) == 1) {
        PyObject *old = r->value;
        r->value = line;
        r->delivered = 0;
        Py_DECREF(old);
        Py_INCREF(r);
        return (PyObject *)r;
    }
    r = (AfrReady *)afr_ready_new(line, NULL, 0, 0);
    if (r == NULL)
        return NULL;
    Py_INCREF(r);
    {
        PyObject *old = l->ready;
        l->ready = (PyObject *)r;
        Py_XDECREF(old);
    }
    return (PyObject *)r;
}

static PyObject *afr_lines_anext(PyObject *self)
{
    AfrLines *l = (AfrLines *)self;
    PyObject *text = l->text;
    if (text != NULL && PyUnicode_Check(text)) {
        Py_ssize_t n = PyUnicode_GetLength(text);
        Py_ssize_t pos = l->pos;
        if (pos >= 0 && pos < n) {
            Py_ssize_t i = PyUnicode_FindChar(text, '\n', pos, n, 1);
            if (i == -2)
                return NULL;
            if (i >= 0) {
                PyObject *line = PyUnicode_Substring(text, pos, i + 1);
                if (line == NULL)
                    return NULL;
                l->pos = i + 1;
                return afr_lines_ready(l, line);
            }
        }
    }
    return PyObject_CallMethodObjArgs(self, afr_str_more, NULL);
}

static PyMemberDef afr_lines_members[] = {
    {"_text", T_OBJECT, offsetof(AfrLines, text), 0, NULL},
    {"_pos", T_PYSSIZET, offsetof(AfrLines, pos), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot afr_lines_slots[] = {
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)afr_lines_dealloc},
    {Py_tp_traverse, (void *)afr_lines_traverse},
    {Py_tp_clear, (void *)afr_lines_clear},
    {Py_tp_members, afr_lines_members},
    {Py_am_aiter, (void *)afr_lines_aiter},
    {Py_am_anext, (void *)afr_lines_anext},
    {Py_tp_doc, (void *)"The C part of _bridge.lines.LineBatch: one line an __anext__."},
    {0, NULL},
};

static PyType_Spec afr_lines_spec = {
    "aiofastread.LinesCore", sizeof(AfrLines), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, afr_lines_slots,
};

static PyTypeObject *afr_lines_type = NULL;

static int afr_lines_init_type(void)
{
    if (afr_lines_type != NULL)
        return 0;
    if (afr_str_more == NULL && (afr_str_more = PyUnicode_InternFromString("_more")) == NULL)
        return -1;
    afr_lines_type = (PyTypeObject *)PyType_FromSpec(&afr_lines_spec);
    return afr_lines_type == NULL ? -1 : 0;
}

#endif /* PYPY_VERSION */
