/* The reader's hit path in C (issue 11 items 1-3).
 *
 * A cached 4 KiB os.pread costs ~1-1.5 us here, so the whole Python-level
 * overhead of `await f.read(n)` must stay near 0.3 us: no `async def`
 * (~0.19 us an await), no Python `def` wrapper (+0.15-0.5 us, measured in
 * /work/notes/proto), no attribute lookups (~30 ns each). So:
 *
 * - the state the rule reads lives in C fields of small base types the
 *   Python classes derive from (members and getsets, so Python code reading
 *   and writing `h.seq_end` or `inode.state` is unchanged):
 *     HandleCore  (FileHandle)     fd, closing, direct_io, seq_end,
 *                                  ahead_ok_to, size_hint, inode
 *     InodeCore   (InodeState)     state (+ a "warm" flag kept by its setter),
 *                                  counters
 *     CountersCore (Counters)      the nine counters
 *     WindowCore  (Window)         data (+ its length), start
 *     LockCore    (the file lock)  _locked, which asyncio.Lock's own code sets
 *     PolicyCore  (Policy)         enabled
 *     BudgetCore  (Budget)         spent, next, limit, ok, yields
 *     ReaderCore  (AsyncBufferedReader) _pos, _h, _lock, _win and the methods
 *                                  read, seek, tell, pread, readinto, pread_into
 * - the methods do the rule's checks (_file.fast_path_takes /
 *   pread_fast_path_takes) on those fields, one preadv2(RWF_NOWAIT), the HIT
 *   bookkeeping (_file._count_hit), and return a Ready (afr_ready.c);
 * - anything else calls the Python general path and returns its coroutine
 *   (`_read_general(size[, attempt, pos])` & co, _file.py), passing on the
 *   answer of a NOWAIT read already made, never repeating it;
 * - the rare parts stay Python: every 16th hit `_read.yield_to_pool`, and
 *   `_budget.crossed` when the budget passes a threshold;
 * - while the backend in use is not the one the C path was bound to (the
 *   python backend, or a test's fake read_nowait: `_native.backend` is not
 *   that object), every method calls the Python hit path instead
 *   (`_PythonReader.read` & co), which honours the backend. `_native`
 *   tells the C path every rebinding of `backend` (backend_is, from its
 *   module class's __setattr__), so the check a call makes is one flag;
 * - AsyncBufferedReader holds these methods as its own (adopt): CPython
 *   specialises a call of a C method only on an object of exactly the
 *   method's type, and the generic call cost 160 instructions a call more.
 *
 * Limited API 3.10 (abi3): PyType_FromSpec, METH_FASTCALL|METH_KEYWORDS,
 * PyMemberDef. Arguments are checked by type (exact int, exact bytearray):
 * anything else goes to Python, which raises today's exceptions. */
#ifndef PYPY_VERSION
#include <structmember.h>
#include <limits.h>

/* _policy.INLINE_MAX, _checks.TRUSTED_SEEK_MAX, _budget.COST_PER_OP and
 * _read.YIELD_EVERY_MASK (tests/test_c_hit_path.py checks they agree: the
 * dict afr_hit_objects() hands out carries them). */
#define AFR_INLINE_MAX (1LL << 20)
#define AFR_TRUSTED_SEEK_MAX (1LL << 40)
#define AFR_COST_PER_OP 4000
#define AFR_YIELD_EVERY_MASK 15

/* -- the state types ------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    long long inline_hits, inline_misses, short_reads, skipped_cold, unsupported,
        residency_checks, pool_reads, bytes_inline, bytes_pooled;
} AfrCounters;

typedef struct {
    PyObject_HEAD
    PyObject *state;
    AfrCounters *counters;
    char warm; /* state is FileState.WARM (kept by the state setter) */
} AfrInode;

typedef struct {
    PyObject_HEAD
    long long seq_end, ahead_ok_to, size_hint;
    AfrInode *inode;
    int fd;
    char closing, direct_io;
} AfrHandle;

typedef struct {
    PyObject_HEAD
    PyObject *data;
    long long start;
    Py_ssize_t len; /* len(data), kept by the data setter */
} AfrWindow;

typedef struct {
    PyObject_HEAD
    char locked;
} AfrLock;

typedef struct {
    PyObject_HEAD
    char enabled;
} AfrPolicy;

/* The cooperative budget (_budget): limit and yields are the process's;
 * spent, next and ok are each thread's (one event loop per thread, the
 * contract in /work/notes/BUDGET.md): thread-local C, ~1 ns a look, where
 * threading.local cost ~300 ns. A thread's first state is zeros: nothing
 * spent, ok (stored as "over", 0), and next 0, so that its first charge
 * arms the reset as _budget.crossed does at a quarter of the limit. */
typedef struct {
    PyObject_HEAD
    long long limit, yields;
    long long epoch; /* set_limit moves it: every thread starts again */
} AfrBudget;

typedef struct {
    long long spent, next, epoch;
    char over;
} AfrBudgetHere;

/* The default TLS model of a shared object (global-dynamic): each read is a
 * call of __tls_get_addr, 54 instructions a cached 4 KiB pread (callgrind,
 * docs/performance.md 2026-12-06 21:35). initial-exec would save them, but
 * a module loaded by dlopen gets static TLS only from glibc's small surplus
 * (glibc.rtld.optional_static_tls, shared by every such module): were it
 * used up, this module's import would fail ("cannot allocate memory in
 * static TLS block") and aiofastread would quietly run on the python
 * backend, many times slower. ~1% of a hit is not worth that risk. */
static __thread AfrBudgetHere afr_budget_here;

/* This thread's budget state, started again if the limit changed since. */
static AfrBudgetHere *afr_here(AfrBudget *b)
{
    AfrBudgetHere *t = &afr_budget_here;
    if (t->epoch != b->epoch) {
        t->spent = t->next = 0;
        t->over = 0;
        t->epoch = b->epoch;
    }
    return t;
}

typedef struct {
    PyObject_HEAD
    long long pos;
    AfrHandle *h;
    AfrLock *lock;
    AfrWindow *win;
} AfrReader;

static PyTypeObject *afr_counters_type, *afr_inode_type, *afr_handle_type, *afr_window_type,
    *afr_lock_type, *afr_policy_type, *afr_budget_type, *afr_reader_type;

/* What bind() gave (held for the life of the process). */
static AfrPolicy *afr_policy = NULL;
static AfrBudget *afr_budget = NULL;
static PyObject *afr_warm = NULL;          /* FileState.WARM */
static PyObject *afr_crossed = NULL;       /* _budget.crossed */
static PyObject *afr_yield_to_pool = NULL; /* _read.yield_to_pool */
static PyObject *afr_expected = NULL;      /* the Backend the C path stands for */
static PyObject *afr_current = NULL;       /* _native.backend, as backend_is told */
static int afr_on = 0;                     /* afr_c_on's answer, kept by afr_update_on */
enum { AFR_READ, AFR_SEEK, AFR_TELL, AFR_PREAD, AFR_READINTO, AFR_PREAD_INTO, AFR_NPY };
static PyObject *afr_py[AFR_NPY];          /* _PythonReader.read & co */
static PyObject *afr_str_read_general, *afr_str_seek_general,
    *afr_str_tell_general, *afr_str_pread_general, *afr_str_readinto_general,
    *afr_str_pread_into_general, *afr_str_drop;
static PyObject *afr_minus_one;
static unsigned long long afr_hit_syscalls = 0; /* NOWAIT reads the C path made */

static long long *afr_reader_pos_field(PyObject *reader) { return &((AfrReader *)reader)->pos; }

/* -- generic parts of the state types ------------------------------------- */

static int afr_traverse_none(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static void afr_plain_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
    PyObject_GC_UnTrack(self);
    tp_free(self);
    Py_DECREF(tp);
}

/* An object field's setter: `value` must be of `type` (deleting refused). */
static int afr_set_typed(PyObject **field, PyObject *value, PyTypeObject *type, const char *what)
{
    PyObject *old = *field;
    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "cannot delete %s", what);
        return -1;
    }
    if (!PyObject_TypeCheck(value, type)) {
        PyErr_Format(PyExc_TypeError, "%s: not the type the C hit path reads", what);
        return -1;
    }
    Py_INCREF(value);
    *field = value;
    Py_XDECREF(old);
    return 0;
}

static PyObject *afr_get_field(PyObject *field, const char *name)
{
    if (field == NULL) {
        PyErr_Format(PyExc_AttributeError, "%s is not set", name);
        return NULL;
    }
    Py_INCREF(field);
    return field;
}

/* -- Counters -------------------------------------------------------------- */

#define AFR_COUNTER(name) {#name, T_LONGLONG, offsetof(AfrCounters, name), 0, NULL}
static PyMemberDef afr_counters_members[] = {
    AFR_COUNTER(inline_hits),  AFR_COUNTER(inline_misses),    AFR_COUNTER(short_reads),
    AFR_COUNTER(skipped_cold), AFR_COUNTER(unsupported),      AFR_COUNTER(residency_checks),
    AFR_COUNTER(pool_reads),   AFR_COUNTER(bytes_inline),     AFR_COUNTER(bytes_pooled),
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot afr_counters_slots[] = {
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)afr_plain_dealloc},
    {Py_tp_traverse, (void *)afr_traverse_none},
    {Py_tp_members, afr_counters_members},
    {Py_tp_doc, (void *)"Counters"},
    {0, NULL},
};

/* -- InodeState -------------------------------------------------------------- */

static int afr_inode_traverse(PyObject *self, visitproc visit, void *arg)
{
    AfrInode *in = (AfrInode *)self;
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(in->state);
    Py_VISIT(in->counters);
    return 0;
}

static int afr_inode_clear(PyObject *self)
{
    AfrInode *in = (AfrInode *)self;
    Py_CLEAR(in->state);
    Py_CLEAR(in->counters);
    in->warm = 0;
    return 0;
}

static void afr_inode_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    afr_inode_clear(self);
    afr_plain_dealloc(self);
}

static PyObject *afr_inode_get_state(PyObject *self, void *c)
{
    return afr_get_field(((AfrInode *)self)->state, "state");
}

static int afr_inode_set_state(PyObject *self, PyObject *value, void *c)
{
    AfrInode *in = (AfrInode *)self;
    PyObject *old = in->state;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete state");
        return -1;
    }
    Py_INCREF(value);
    in->state = value;
    in->warm = afr_warm != NULL && value == afr_warm;
    Py_XDECREF(old);
    return 0;
}

static PyObject *afr_inode_get_counters(PyObject *self, void *c)
{
    return afr_get_field((PyObject *)((AfrInode *)self)->counters, "counters");
}

static int afr_inode_set_counters(PyObject *self, PyObject *value, void *c)
{
    return afr_set_typed((PyObject **)&((AfrInode *)self)->counters, value, afr_counters_type,
                         "counters");
}

static PyGetSetDef afr_inode_getset[] = {
    {"state", afr_inode_get_state, afr_inode_set_state, NULL, NULL},
    {"counters", afr_inode_get_counters, afr_inode_set_counters, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot afr_inode_slots[] = {
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)afr_inode_dealloc},
    {Py_tp_traverse, (void *)afr_inode_traverse},
    {Py_tp_clear, (void *)afr_inode_clear},
    {Py_tp_getset, afr_inode_getset},
    {Py_tp_doc, (void *)"InodeState"},
    {0, NULL},
};

/* -- FileHandle ------------------------------------------------------------- */

static int afr_handle_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(((AfrHandle *)self)->inode);
    return 0;
}

static int afr_handle_clear(PyObject *self)
{
    Py_CLEAR(((AfrHandle *)self)->inode);
    return 0;
}

static void afr_handle_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    afr_handle_clear(self);
    afr_plain_dealloc(self);
}

static PyObject *afr_handle_get_inode(PyObject *self, void *c)
{
    return afr_get_field((PyObject *)((AfrHandle *)self)->inode, "inode");
}

static int afr_handle_set_inode(PyObject *self, PyObject *value, void *c)
{
    return afr_set_typed((PyObject **)&((AfrHandle *)self)->inode, value, afr_inode_type, "inode");
}

static PyMemberDef afr_handle_members[] = {
    {"fd", T_INT, offsetof(AfrHandle, fd), 0, NULL},
    {"closing", T_BOOL, offsetof(AfrHandle, closing), 0, NULL},
    {"direct_io", T_BOOL, offsetof(AfrHandle, direct_io), 0, NULL},
    {"seq_end", T_LONGLONG, offsetof(AfrHandle, seq_end), 0, NULL},
    {"ahead_ok_to", T_LONGLONG, offsetof(AfrHandle, ahead_ok_to), 0, NULL},
    {"size_hint", T_LONGLONG, offsetof(AfrHandle, size_hint), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef afr_handle_getset[] = {
    {"inode", afr_handle_get_inode, afr_handle_set_inode, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot afr_handle_slots[] = {
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)afr_handle_dealloc},
    {Py_tp_traverse, (void *)afr_handle_traverse},
    {Py_tp_clear, (void *)afr_handle_clear},
    {Py_tp_members, afr_handle_members},
    {Py_tp_getset, afr_handle_getset},
    {Py_tp_doc, (void *)"FileHandle"},
    {0, NULL},
};

/* -- Window ----------------------------------------------------------------- */

static int afr_window_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(((AfrWindow *)self)->data);
    return 0;
}

static int afr_window_clear(PyObject *self)
{
    Py_CLEAR(((AfrWindow *)self)->data);
    ((AfrWindow *)self)->len = 0;
    return 0;
}

static void afr_window_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    afr_window_clear(self);
    afr_plain_dealloc(self);
}

static PyObject *afr_window_get_data(PyObject *self, void *c)
{
    return afr_get_field(((AfrWindow *)self)->data, "data");
}

static int afr_window_set_data(PyObject *self, PyObject *value, void *c)
{
    AfrWindow *w = (AfrWindow *)self;
    PyObject *old = w->data;
    Py_ssize_t len;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete data");
        return -1;
    }
    len = PyObject_Size(value);
    if (len < 0)
        return -1;
    Py_INCREF(value);
    w->data = value;
    w->len = len;
    Py_XDECREF(old);
    return 0;
}

static PyMemberDef afr_window_members[] = {
    {"start", T_LONGLONG, offsetof(AfrWindow, start), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef afr_window_getset[] = {
    {"data", afr_window_get_data, afr_window_set_data, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot afr_window_slots[] = {
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)afr_window_dealloc},
    {Py_tp_traverse, (void *)afr_window_traverse},
    {Py_tp_clear, (void *)afr_window_clear},
    {Py_tp_members, afr_window_members},
    {Py_tp_getset, afr_window_getset},
    {Py_tp_doc, (void *)"Window"},
    {0, NULL},
};

/* -- the file lock, Policy, Budget: flags only ------------------------------- */

static PyMemberDef afr_lock_members[] = {
    {"_locked", T_BOOL, offsetof(AfrLock, locked), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot afr_lock_slots[] = {
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)afr_plain_dealloc},
    {Py_tp_traverse, (void *)afr_traverse_none},
    {Py_tp_members, afr_lock_members},
    {Py_tp_doc, (void *)"file lock"},
    {0, NULL},
};

static PyMemberDef afr_policy_members[] = {
    {"enabled", T_BOOL, offsetof(AfrPolicy, enabled), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot afr_policy_slots[] = {
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)afr_plain_dealloc},
    {Py_tp_traverse, (void *)afr_traverse_none},
    {Py_tp_members, afr_policy_members},
    {Py_tp_doc, (void *)"Policy"},
    {0, NULL},
};

static PyMemberDef afr_budget_members[] = {
    {"limit", T_LONGLONG, offsetof(AfrBudget, limit), 0, NULL},
    {"yields", T_LONGLONG, offsetof(AfrBudget, yields), 0, NULL},
    {"epoch", T_LONGLONG, offsetof(AfrBudget, epoch), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

/* spent / next / ok: this thread's (getsets over afr_budget_here). */
static PyObject *afr_budget_get(PyObject *self, void *which)
{
    AfrBudgetHere *t = afr_here((AfrBudget *)self);
    switch ((char)(Py_ssize_t)which) {
    case 's':
        return PyLong_FromLongLong(t->spent);
    case 'n':
        return PyLong_FromLongLong(t->next);
    default:
        return PyBool_FromLong(!t->over);
    }
}

static int afr_budget_set(PyObject *self, PyObject *value, void *which)
{
    AfrBudgetHere *t = afr_here((AfrBudget *)self);
    long long v;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete a budget field");
        return -1;
    }
    if ((char)(Py_ssize_t)which == 'o') {
        int ok = PyObject_IsTrue(value);
        if (ok < 0)
            return -1;
        t->over = !ok;
        return 0;
    }
    v = PyLong_AsLongLong(value);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if ((char)(Py_ssize_t)which == 's')
        t->spent = v;
    else
        t->next = v;
    return 0;
}

static PyGetSetDef afr_budget_getset[] = {
    {"spent", afr_budget_get, afr_budget_set, "this thread's work since its reset", (void *)'s'},
    {"next", afr_budget_get, afr_budget_set, "this thread's next threshold", (void *)'n'},
    {"ok", afr_budget_get, afr_budget_set, "this thread's budget is not spent", (void *)'o'},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot afr_budget_slots[] = {
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)afr_plain_dealloc},
    {Py_tp_traverse, (void *)afr_traverse_none},
    {Py_tp_members, afr_budget_members},
    {Py_tp_getset, afr_budget_getset},
    {Py_tp_doc, (void *)"Budget"},
    {0, NULL},
};

/* -- the hit path ------------------------------------------------------------ */

/* Whether the C path stands for the backend in use (else: Python's): the
 * flag expect_backend, backend_is and bind keep (no dict lookup a call). */
static int afr_c_on(void)
{
    return afr_on;
}

/* The rule's clauses a positional read checks (_file.pread_fast_path_takes,
 * past its argument checks). */
static int afr_rule_allows(AfrHandle *h, long long size, long long offset)
{
    AfrInode *in = h->inode;
    return in != NULL && in->warm && in->counters != NULL && !h->closing &&
           afr_policy->enabled && !h->direct_io &&
           (offset != h->seq_end || offset + size <= h->ahead_ok_to) && !afr_here(afr_budget)->over;
}

/* read()'s extra clauses: no window, no other operation on the file. */
static int afr_positioned_allows(AfrReader *self)
{
    return self->h != NULL && self->win != NULL && self->lock != NULL && self->win->len == 0 &&
           !self->lock->locked;
}

/* The HIT bookkeeping (_file._count_hit): Policy.record(HIT), where the
 * stream ends, _read.yield_to_pool every 16th hit, the budget's charge. */
static int afr_count_hit(AfrHandle *h, long long end, long long size)
{
    AfrCounters *c = h->inode->counters;
    AfrBudgetHere *b = afr_here(afr_budget);
    long long hits = ++c->inline_hits;
    c->bytes_inline += size;
    h->seq_end = end;
    if (!(hits & AFR_YIELD_EVERY_MASK)) {
        PyObject *r = PyObject_CallFunction(afr_yield_to_pool, "OL", (PyObject *)h, hits);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    b->spent += size + AFR_COST_PER_OP;
    if (b->spent > b->next) {
        PyObject *r = PyObject_CallObject(afr_crossed, NULL);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return 0;
}

/* An exact int in [lo, hi] (no exception either way). */
static int afr_int_in(PyObject *obj, long long lo, long long hi, long long *out)
{
    int overflow;
    long long v;
    if (!PyLong_CheckExact(obj))
        return 0;
    v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

/* One NOWAIT read of `size` bytes at `offset` into a new bytes (NULL: no
 * memory); *n = what the read answered (the count, or -errno). */
static PyObject *afr_read_bytes(int fd, long long size, long long offset, long *n)
{
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (out == NULL)
        return NULL;
    afr_hit_syscalls++;
    *n = afr_pread_flags(fd, PyBytes_AsString(out), (size_t)size, offset, RWF_NOWAIT);
    return out;
}

/* What a NOWAIT read that did not bring all answered, as read_nowait
 * answers it (the general path's `attempt`): -errno, or the cached prefix
 * (a short read) copied out of `out`, which is released. */
static PyObject *afr_attempt(PyObject *out, long n)
{
    PyObject *attempt =
        n < 0 ? PyLong_FromLong(n) : PyBytes_FromStringAndSize(PyBytes_AsString(out), n);
    Py_DECREF(out);
    return attempt;
}

/* The Python hit path with the call's arguments as given. */
static PyObject *afr_call_py(int which, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    PyObject *tuple, *kwargs = NULL, *result;
    Py_ssize_t i, nkw = kwnames ? PyTuple_Size(kwnames) : 0;
    if (afr_py[which] == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "aiofastread: the C hit path is not bound");
        return NULL;
    }
    tuple = PyTuple_New(nargs + 1);
    if (tuple == NULL)
        return NULL;
    Py_INCREF(self);
    PyTuple_SetItem(tuple, 0, self);
    for (i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SetItem(tuple, i + 1, args[i]);
    }
    if (nkw) {
        kwargs = PyDict_New();
        if (kwargs == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
        for (i = 0; i < nkw; i++) {
            if (PyDict_SetItem(kwargs, PyTuple_GetItem(kwnames, i), args[nargs + i]) < 0) {
                Py_DECREF(tuple);
                Py_DECREF(kwargs);
                return NULL;
            }
        }
    }
    result = PyObject_Call(afr_py[which], tuple, kwargs);
    Py_DECREF(tuple);
    Py_XDECREF(kwargs);
    return result;
}

/* The C path runs only for the calls it knows (positional, counted), while
 * the backend is the one it stands for; the rest take the Python hit path. */
#define AFR_TAKE_PY_UNLESS(which, cond)                                  \
    do {                                                                 \
        if (!(cond) || kwnames != NULL || !afr_c_on())                   \
            return afr_call_py(which, self, args, nargs, kwnames);       \
    } while (0)

/* read(size=-1) */
static PyObject *afr_reader_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames)
{
    AfrReader *r = (AfrReader *)self;
    PyObject *out, *attempt, *pos_obj, *result;
    long long size, pos;
    long n;
    AFR_TAKE_PY_UNLESS(AFR_READ, nargs <= 1);
    if (nargs == 0)
        return PyObject_CallMethodObjArgs(self, afr_str_read_general, afr_minus_one, NULL);
    if (!afr_int_in(args[0], 1, AFR_INLINE_MAX, &size) || !afr_positioned_allows(r) ||
        !afr_rule_allows(r->h, size, r->pos))
        return PyObject_CallMethodObjArgs(self, afr_str_read_general, args[0], NULL);
    pos = r->pos;
    out = afr_read_bytes(r->h->fd, size, pos, &n);
    if (out == NULL)
        return NULL;
    if (n == size) {
        r->pos = pos + size;
        if (afr_count_hit(r->h, pos + size, size) < 0) {
            r->pos = pos; /* the bytes are lost with the error: as if not read */
            Py_DECREF(out);
            return NULL;
        }
        return afr_ready_new(out, self, pos, pos + size);
    }
    /* A miss or a short read: the general path finishes, without trying
     * inline again (on this kernel a second NOWAIT miss starts readahead
     * again). */
    attempt = afr_attempt(out, n);
    if (attempt == NULL)
        return NULL;
    pos_obj = PyLong_FromLongLong(pos);
    if (pos_obj == NULL) {
        Py_DECREF(attempt);
        return NULL;
    }
    result = PyObject_CallMethodObjArgs(self, afr_str_read_general, args[0], attempt, pos_obj,
                                        NULL);
    Py_DECREF(attempt);
    Py_DECREF(pos_obj);
    return result;
}

/* pread(size, offset) */
static PyObject *afr_reader_pread(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames)
{
    AfrReader *r = (AfrReader *)self;
    PyObject *out, *attempt, *result;
    long long size, offset;
    long n;
    AFR_TAKE_PY_UNLESS(AFR_PREAD, nargs == 2);
    if (!afr_int_in(args[0], 1, AFR_INLINE_MAX, &size) ||
        !afr_int_in(args[1], 0, LLONG_MAX - AFR_INLINE_MAX, &offset) || r->h == NULL ||
        !afr_rule_allows(r->h, size, offset))
        return PyObject_CallMethodObjArgs(self, afr_str_pread_general, args[0], args[1], NULL);
    out = afr_read_bytes(r->h->fd, size, offset, &n);
    if (out == NULL)
        return NULL;
    if (n == size) {
        if (afr_count_hit(r->h, offset + size, size) < 0) {
            Py_DECREF(out);
            return NULL;
        }
        return afr_ready_new(out, NULL, 0, 0);
    }
    attempt = afr_attempt(out, n);
    if (attempt == NULL)
        return NULL;
    result = PyObject_CallMethodObjArgs(self, afr_str_pread_general, args[0], args[1], attempt,
                                        NULL);
    Py_DECREF(attempt);
    return result;
}

/* One NOWAIT read into a bytearray's bytes: its count or -errno. */
static long afr_read_into(AfrHandle *h, PyObject *buffer, long long size, long long offset)
{
    afr_hit_syscalls++;
    return afr_pread_flags(h->fd, PyByteArray_AsString(buffer), (size_t)size, offset, RWF_NOWAIT);
}

/* readinto(buffer): a bytearray in C; any other buffer in Python. */
static PyObject *afr_reader_readinto(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                     PyObject *kwnames)
{
    AfrReader *r = (AfrReader *)self;
    PyObject *attempt, *pos_obj, *result;
    long long size, pos;
    long n;
    AFR_TAKE_PY_UNLESS(AFR_READINTO, nargs == 1);
    if (!PyByteArray_CheckExact(args[0]) || !afr_positioned_allows(r))
        return PyObject_CallMethodObjArgs(self, afr_str_readinto_general, args[0], NULL);
    size = PyByteArray_Size(args[0]);
    pos = r->pos;
    if (size <= 0 || size > AFR_INLINE_MAX || !afr_rule_allows(r->h, size, pos))
        return PyObject_CallMethodObjArgs(self, afr_str_readinto_general, args[0], NULL);
    n = afr_read_into(r->h, args[0], size, pos);
    if (n == size) {
        r->pos = pos + size;
        if (afr_count_hit(r->h, pos + size, size) < 0) {
            r->pos = pos;
            return NULL;
        }
        return afr_ready_new(PyLong_FromLongLong(size), self, pos, pos + size);
    }
    attempt = PyLong_FromLong(n);
    pos_obj = PyLong_FromLongLong(pos);
    if (attempt == NULL || pos_obj == NULL) {
        Py_XDECREF(attempt);
        Py_XDECREF(pos_obj);
        return NULL;
    }
    result = PyObject_CallMethodObjArgs(self, afr_str_readinto_general, args[0], attempt, pos_obj,
                                        NULL);
    Py_DECREF(attempt);
    Py_DECREF(pos_obj);
    return result;
}

/* pread_into(buffer, offset): a bytearray in C; any other buffer in Python. */
static PyObject *afr_reader_pread_into(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                       PyObject *kwnames)
{
    AfrReader *r = (AfrReader *)self;
    PyObject *attempt, *result;
    long long size, offset;
    long n;
    AFR_TAKE_PY_UNLESS(AFR_PREAD_INTO, nargs == 2);
    if (!PyByteArray_CheckExact(args[0]) || r->h == NULL ||
        !afr_int_in(args[1], 0, LLONG_MAX - AFR_INLINE_MAX, &offset))
        return PyObject_CallMethodObjArgs(self, afr_str_pread_into_general, args[0], args[1],
                                          NULL);
    size = PyByteArray_Size(args[0]);
    if (size <= 0 || size > AFR_INLINE_MAX || !afr_rule_allows(r->h, size, offset))
        return PyObject_CallMethodObjArgs(self, afr_str_pread_into_general, args[0], args[1],
                                          NULL);
    n = afr_read_into(r->h, args[0], size, offset);
    if (n == size) {
        if (afr_count_hit(r->h, offset + size, size) < 0)
            return NULL;
        return afr_ready_new(PyLong_FromLongLong(size), NULL, 0, 0);
    }
    attempt = PyLong_FromLong(n);
    if (attempt == NULL)
        return NULL;
    result = PyObject_CallMethodObjArgs(self, afr_str_pread_into_general, args[0], args[1],
                                        attempt, NULL);
    Py_DECREF(attempt);
    return result;
}

/* seek(offset, whence=SEEK_SET): a trusted absolute target at once. */
static PyObject *afr_reader_seek(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames)
{
    AfrReader *r = (AfrReader *)self;
    long long offset, whence = 0, old;
    AFR_TAKE_PY_UNLESS(AFR_SEEK, nargs >= 1 && nargs <= 2);
    if (!afr_int_in(args[0], 0, AFR_TRUSTED_SEEK_MAX, &offset) ||
        (nargs == 2 && (!afr_int_in(args[1], 0, 0, &whence))) || r->h == NULL ||
        r->lock == NULL || r->win == NULL || r->lock->locked || r->h->closing) {
        if (nargs == 2)
            return PyObject_CallMethodObjArgs(self, afr_str_seek_general, args[0], args[1], NULL);
        return PyObject_CallMethodObjArgs(self, afr_str_seek_general, args[0], NULL);
    }
    if (r->win->len && !(r->win->start <= offset && offset <= r->win->start + r->win->len)) {
        PyObject *dropped = PyObject_CallMethodObjArgs((PyObject *)r->win, afr_str_drop, NULL);
        if (dropped == NULL)
            return NULL;
        Py_DECREF(dropped);
    }
    old = r->pos;
    r->pos = offset;
    Py_INCREF(args[0]);
    return afr_ready_new(args[0], self, old, offset);
}

/* tell() */
static PyObject *afr_reader_tell(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames)
{
    AfrReader *r = (AfrReader *)self;
    AFR_TAKE_PY_UNLESS(AFR_TELL, nargs == 0);
    if (r->h == NULL || r->h->closing)
        return PyObject_CallMethodObjArgs(self, afr_str_tell_general, NULL);
    return afr_ready_new(PyLong_FromLongLong(r->pos), NULL, 0, 0);
}

#define AFR_FASTCALL (METH_FASTCALL | METH_KEYWORDS)
static PyMethodDef afr_reader_methods[] = {
    {"read", (PyCFunction)(void (*)(void))afr_reader_read, AFR_FASTCALL,
     "read(size=-1): up to size bytes from the position (all to EOF if negative)."},
    {"seek", (PyCFunction)(void (*)(void))afr_reader_seek, AFR_FASTCALL,
     "seek(offset, whence=SEEK_SET): move the position; the new one."},
    {"tell", (PyCFunction)(void (*)(void))afr_reader_tell, AFR_FASTCALL, "tell(): the position."},
    {"pread", (PyCFunction)(void (*)(void))afr_reader_pread, AFR_FASTCALL,
     "pread(size, offset): size bytes at offset, without moving the position."},
    {"readinto", (PyCFunction)(void (*)(void))afr_reader_readinto, AFR_FASTCALL,
     "readinto(buffer): fill buffer from the position; the count."},
    {"pread_into", (PyCFunction)(void (*)(void))afr_reader_pread_into, AFR_FASTCALL,
     "pread_into(buffer, offset): fill buffer from offset; the count."},
    {NULL, NULL, 0, NULL},
};

static int afr_reader_traverse(PyObject *self, visitproc visit, void *arg)
{
    AfrReader *r = (AfrReader *)self;
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(r->h);
    Py_VISIT(r->lock);
    Py_VISIT(r->win);
    return 0;
}

static int afr_reader_clear(PyObject *self)
{
    AfrReader *r = (AfrReader *)self;
    Py_CLEAR(r->h);
    Py_CLEAR(r->lock);
    Py_CLEAR(r->win);
    return 0;
}

static void afr_reader_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    afr_reader_clear(self);
    afr_plain_dealloc(self);
}

static PyObject *afr_reader_get_h(PyObject *self, void *c)
{
    return afr_get_field((PyObject *)((AfrReader *)self)->h, "_h");
}
static int afr_reader_set_h(PyObject *self, PyObject *value, void *c)
{
    return afr_set_typed((PyObject **)&((AfrReader *)self)->h, value, afr_handle_type, "_h");
}
static PyObject *afr_reader_get_lock(PyObject *self, void *c)
{
    return afr_get_field((PyObject *)((AfrReader *)self)->lock, "_lock");
}
static int afr_reader_set_lock(PyObject *self, PyObject *value, void *c)
{
    return afr_set_typed((PyObject **)&((AfrReader *)self)->lock, value, afr_lock_type, "_lock");
}
static PyObject *afr_reader_get_win(PyObject *self, void *c)
{
    return afr_get_field((PyObject *)((AfrReader *)self)->win, "_win");
}
static int afr_reader_set_win(PyObject *self, PyObject *value, void *c)
{
    return afr_set_typed((PyObject **)&((AfrReader *)self)->win, value, afr_window_type, "_win");
}

static PyMemberDef afr_reader_members[] = {
    {"_pos", T_LONGLONG, offsetof(AfrReader, pos), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef afr_reader_getset[] = {
    {"_h", afr_reader_get_h, afr_reader_set_h, NULL, NULL},
    {"_lock", afr_reader_get_lock, afr_reader_set_lock, NULL, NULL},
    {"_win", afr_reader_get_win, afr_reader_set_win, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot afr_reader_slots[] = {
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)afr_reader_dealloc},
    {Py_tp_traverse, (void *)afr_reader_traverse},
    {Py_tp_clear, (void *)afr_reader_clear},
    {Py_tp_methods, afr_reader_methods},
    {Py_tp_members, afr_reader_members},
    {Py_tp_getset, afr_reader_getset},
    {Py_tp_doc, (void *)"AsyncBufferedReader"},
    {0, NULL},
};

/* -- binding ----------------------------------------------------------------- */

#define AFR_HOLD(field, value)          \
    do {                                \
        PyObject *old_ = (PyObject *)field; \
        Py_INCREF(value);               \
        field = value;                  \
        Py_XDECREF(old_);               \
    } while (0)

/* afr_c_on's flag, after any of the three objects it compares changed. */
static void afr_update_on(void)
{
    afr_on = afr_expected != NULL && afr_policy != NULL && afr_current == afr_expected;
}

/* bind(policy, budget, warm, crossed, yield_to_pool, py_paths):
 * the objects the hit path reads, once (_file.py at import). py_paths: the
 * Python hit path's (read, seek, tell, pread, readinto, pread_into). */
static PyObject *afr_bind(PyObject *mod, PyObject *args)
{
    PyObject *policy, *budget, *warm, *crossed, *yield_fn, *paths;
    int i;
    (void)mod;
    if (!PyArg_UnpackTuple(args, "bind", 6, 6, &policy, &budget, &warm, &crossed, &yield_fn,
                           &paths))
        return NULL;
    if (!PyObject_TypeCheck(policy, afr_policy_type) ||
        !PyObject_TypeCheck(budget, afr_budget_type) || !PyTuple_Check(paths) ||
        PyTuple_Size(paths) != AFR_NPY) {
        PyErr_SetString(PyExc_TypeError, "bind: a PolicyCore, a BudgetCore and 6 functions");
        return NULL;
    }
    AFR_HOLD(afr_policy, (AfrPolicy *)policy);
    AFR_HOLD(afr_budget, (AfrBudget *)budget);
    AFR_HOLD(afr_warm, warm);
    AFR_HOLD(afr_crossed, crossed);
    AFR_HOLD(afr_yield_to_pool, yield_fn);
    for (i = 0; i < AFR_NPY; i++)
        AFR_HOLD(afr_py[i], PyTuple_GetItem(paths, i));
    afr_update_on();
    Py_RETURN_NONE;
}

/* expect_backend(backend or None): the Backend the C path stands for. */
static PyObject *afr_expect_backend(PyObject *mod, PyObject *backend)
{
    (void)mod;
    if (backend == Py_None) {
        Py_CLEAR(afr_expected);
    }
    else {
        AFR_HOLD(afr_expected, backend);
    }
    afr_update_on();
    Py_RETURN_NONE;
}

/* backend_is(backend): _native.backend now (every rebinding tells it:
 * _native's module class). Held, so that its address cannot be reused by
 * a later Backend while it is compared. */
static PyObject *afr_backend_is(PyObject *mod, PyObject *backend)
{
    (void)mod;
    AFR_HOLD(afr_current, backend);
    afr_update_on();
    Py_RETURN_NONE;
}

/* TextFileCore (afr_text.c, later in this unit): adopt takes its methods too. */
static PyTypeObject *afr_text_file_type;

/* adopt(cls): the C methods of cls's C base (ReaderCore, or TextFileCore)
 * again as cls's own. CPython (3.11-3.13) specialises a call of a C method
 * only when the object's type is exactly the method's: inherited from
 * ReaderCore, every `f.read(n)` of an AsyncBufferedReader took the
 * generic call (PyObject_Vectorcall, the descriptor's type check). */
static PyObject *afr_adopt(PyObject *mod, PyObject *cls)
{
    PyMethodDef *def;
    PyTypeObject *base = NULL;
    (void)mod;
    if (PyType_Check(cls) && PyType_IsSubtype((PyTypeObject *)cls, afr_reader_type))
        base = afr_reader_type;
    else if (PyType_Check(cls) && afr_text_file_type != NULL &&
             PyType_IsSubtype((PyTypeObject *)cls, afr_text_file_type))
        base = afr_text_file_type;
    if (base == NULL) {
        PyErr_SetString(PyExc_TypeError, "adopt: a subclass of ReaderCore or TextFileCore");
        return NULL;
    }
    def = (PyMethodDef *)PyType_GetSlot(base, Py_tp_methods);
    for (; def != NULL && def->ml_name != NULL; def++) {
        PyObject *descr = PyDescr_NewMethod((PyTypeObject *)cls, def);
        if (descr == NULL || PyObject_SetAttrString(cls, def->ml_name, descr) < 0) {
            Py_XDECREF(descr);
            return NULL;
        }
        Py_DECREF(descr);
    }
    Py_RETURN_NONE;
}

/* sum_counters(states, total): add each InodeState's counters into
 * `total` (Policy.totals: statistics() on a full table of 4096 inodes took
 * 3.8 ms on the loop with getattr/setattr per counter; this, ~0.03 ms). */
static PyObject *afr_sum_counters(PyObject *mod, PyObject *args)
{
    PyObject *states, *total_obj, *it, *item;
    AfrCounters *total;
    (void)mod;
    if (!PyArg_ParseTuple(args, "OO", &states, &total_obj))
        return NULL;
    if (!PyObject_TypeCheck(total_obj, afr_counters_type)) {
        PyErr_SetString(PyExc_TypeError, "sum_counters: total must be a Counters");
        return NULL;
    }
    total = (AfrCounters *)total_obj;
    it = PyObject_GetIter(states);
    if (it == NULL)
        return NULL;
    while ((item = PyIter_Next(it)) != NULL) {
        AfrCounters *c;
        if (!PyObject_TypeCheck(item, afr_inode_type)) {
            Py_DECREF(item);
            Py_DECREF(it);
            PyErr_SetString(PyExc_TypeError, "sum_counters: states must be InodeStates");
            return NULL;
        }
        c = ((AfrInode *)item)->counters;
        if (c != NULL) {
            total->inline_hits += c->inline_hits;
            total->inline_misses += c->inline_misses;
            total->short_reads += c->short_reads;
            total->skipped_cold += c->skipped_cold;
            total->unsupported += c->unsupported;
            total->residency_checks += c->residency_checks;
            total->pool_reads += c->pool_reads;
            total->bytes_inline += c->bytes_inline;
            total->bytes_pooled += c->bytes_pooled;
        }
        Py_DECREF(item);
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

/* hit_syscalls(): NOWAIT reads the C path made (tests count them). */
static PyObject *afr_hit_syscalls_count(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return PyLong_FromUnsignedLongLong(afr_hit_syscalls);
}

static PyMethodDef afr_hit_functions[] = {
    {"bind", afr_bind, METH_VARARGS, "Bind the objects the C hit path reads."},
    {"expect_backend", afr_expect_backend, METH_O, "The backend the C hit path stands for."},
    {"backend_is", afr_backend_is, METH_O, "The backend in use now (_native.backend)."},
    {"adopt", afr_adopt, METH_O, "A C base's methods as a subclass's own."},
    {"hit_syscalls", afr_hit_syscalls_count, METH_NOARGS, "NOWAIT reads made by the C path."},
    {"sum_counters", afr_sum_counters, METH_VARARGS, "Add InodeStates' counters into one."},
    {NULL, NULL, 0, NULL},
};

#define AFR_SPEC(name, text, type, slots) \
    static PyType_Spec name = {"aiofastread." text, sizeof(type), 0, AFR_BASE, slots}
#define AFR_BASE (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC)
AFR_SPEC(afr_counters_spec, "CountersCore", AfrCounters, afr_counters_slots);
AFR_SPEC(afr_inode_spec, "InodeCore", AfrInode, afr_inode_slots);
AFR_SPEC(afr_handle_spec, "HandleCore", AfrHandle, afr_handle_slots);
AFR_SPEC(afr_window_spec, "WindowCore", AfrWindow, afr_window_slots);
AFR_SPEC(afr_lock_spec, "LockCore", AfrLock, afr_lock_slots);
AFR_SPEC(afr_policy_spec, "PolicyCore", AfrPolicy, afr_policy_slots);
AFR_SPEC(afr_budget_spec, "BudgetCore", AfrBudget, afr_budget_slots);
AFR_SPEC(afr_reader_spec, "ReaderCore", AfrReader, afr_reader_slots);

static PyObject *afr_hit_dict = NULL;
static int afr_text_add(PyObject *d); /* afr_text.c: the direct text path's types */

static int afr_hit_add(PyObject *dict, const char *name, PyObject *obj)
{
    int rc;
    if (obj == NULL)
        return -1;
    rc = PyDict_SetItemString(dict, name, obj);
    Py_DECREF(obj);
    return rc;
}

static int afr_hit_add_type(PyObject *dict, const char *name, PyTypeObject **slot,
                            PyType_Spec *spec)
{
    *slot = (PyTypeObject *)PyType_FromSpec(spec);
    if (*slot == NULL)
        return -1;
    Py_INCREF(*slot); /* one for the static, one for the dict */
    return afr_hit_add(dict, name, (PyObject *)*slot);
}

static PyObject *afr_hit_build(void)
{
    PyObject *d = PyDict_New();
    PyMethodDef *def;
    if (d == NULL)
        return NULL;
#define AFR_STR(field, text) \
    if ((field = PyUnicode_InternFromString(text)) == NULL) goto fail
    AFR_STR(afr_str_read_general, "_read_general");
    AFR_STR(afr_str_seek_general, "_seek_general");
    AFR_STR(afr_str_tell_general, "_tell_general");
    AFR_STR(afr_str_pread_general, "_pread_general");
    AFR_STR(afr_str_readinto_general, "_readinto_general");
    AFR_STR(afr_str_pread_into_general, "_pread_into_general");
    AFR_STR(afr_str_drop, "drop");
    if ((afr_minus_one = PyLong_FromLong(-1)) == NULL)
        goto fail;
    if (afr_ready_init_type() < 0 ||
        PyDict_SetItemString(d, "Ready", (PyObject *)afr_ready_type) < 0 ||
        afr_lines_init_type() < 0 ||
        PyDict_SetItemString(d, "LinesCore", (PyObject *)afr_lines_type) < 0 ||
        afr_hit_add_type(d, "CountersCore", &afr_counters_type, &afr_counters_spec) < 0 ||
        afr_hit_add_type(d, "InodeCore", &afr_inode_type, &afr_inode_spec) < 0 ||
        afr_hit_add_type(d, "HandleCore", &afr_handle_type, &afr_handle_spec) < 0 ||
        afr_hit_add_type(d, "WindowCore", &afr_window_type, &afr_window_spec) < 0 ||
        afr_hit_add_type(d, "LockCore", &afr_lock_type, &afr_lock_spec) < 0 ||
        afr_hit_add_type(d, "PolicyCore", &afr_policy_type, &afr_policy_spec) < 0 ||
        afr_hit_add_type(d, "BudgetCore", &afr_budget_type, &afr_budget_spec) < 0 ||
        afr_hit_add_type(d, "ReaderCore", &afr_reader_type, &afr_reader_spec) < 0 ||
        afr_text_add(d) < 0)
        goto fail;
    if (afr_hit_add(d, "INLINE_MAX", PyLong_FromLongLong(AFR_INLINE_MAX)) < 0 ||
        afr_hit_add(d, "TRUSTED_SEEK_MAX", PyLong_FromLongLong(AFR_TRUSTED_SEEK_MAX)) < 0 ||
        afr_hit_add(d, "COST_PER_OP", PyLong_FromLong(AFR_COST_PER_OP)) < 0 ||
        afr_hit_add(d, "YIELD_EVERY_MASK", PyLong_FromLong(AFR_YIELD_EVERY_MASK)) < 0)
        goto fail;
    for (def = afr_hit_functions; def->ml_name != NULL; def++)
        if (afr_hit_add(d, def->ml_name, PyCFunction_NewEx(def, NULL, NULL)) < 0)
            goto fail;
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

/* The types and functions above, as a dict (one reference, held forever);
 * NULL if building them failed (the error is printed). */
static void *afr_hit_objects(void)
{
    PyGILState_STATE gil = PyGILState_Ensure();
    if (afr_hit_dict == NULL) {
        afr_hit_dict = afr_hit_build();
        if (afr_hit_dict == NULL)
            PyErr_Print();
    }
    PyGILState_Release(gil);
    return afr_hit_dict;
}
#define AFR_HAS_HIT_PATH 1
#else
static void *afr_hit_objects(void) { return NULL; }
#define AFR_HAS_HIT_PATH 0
#endif
