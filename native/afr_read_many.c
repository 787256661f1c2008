/* read_ranges_nowait: read_many's inline pass over a WARM file, in C.
 *
 * The Python loop cost ~0.5 us of bookkeeping per range on top of the
 * compiled read_nowait (64 cached 16 KiB ranges: 1.35-1.45x 64 os.pread,
 * docs/performance.md); here a range costs what os.pread costs plus a list
 * append. It reads ranges from `start` for as long as each one is a full
 * NOWAIT hit that the inline rule lets through, and stops at the first
 * range that is not (too big, a stream step past the look-ahead mark, a
 * miss, a short read), so that Python judges that one with the general
 * path and the policy sees the same sequence as one read at a time
 * (_vectored._inline_pass, _read_ranges.py holds the Python twin).
 *
 *   read_ranges_nowait(fd, ranges, start, results, inline_max, seq_end,
 *                      ahead_ok_to) -> (stop, hits, nbytes, seq_end, got)
 *
 * ranges: list of (offset, size) int pairs (checked by _vectored);
 * results: list the hits' bytes (and b"" for empty ranges) are appended to;
 * stop: index of the first range not served (len(ranges) when all were);
 * got: what read_nowait answered for that range (short bytes or -errno),
 * or None when it was not read at all. Keeps the GIL throughout (a NOWAIT
 * read never waits for the device). Limited API only (abi3). */
#ifndef PYPY_VERSION
/* An int's value if it fits a long long: 1; else 0, an error set only if
 * it is not an int at all. */
static int afr_as_long_long(PyObject *number, long long *value)
{
    int overflow = 0;
    if (number == NULL)
        return 0;
    *value = PyLong_AsLongLongAndOverflow(number, &overflow);
    if (overflow)
        return 0;
    return !(*value == -1 && PyErr_Occurred());
}

/* plain_ranges(ranges) -> bool: every item an exact (int, int) tuple of
 * non-negative values: _vectored.check_ranges's common case, checked here
 * in one pass (in Python the same test cost ~0.4 us a range, a third of a
 * cached 16 KiB read). False sends the ranges to the Python checks, which
 * raise CPython's errors (or accept ints too large for C here). */
static PyObject *afr_plain_ranges_impl(PyObject *self, PyObject *ranges)
{
    Py_ssize_t i, count;
    (void)self;
    if (!PyList_CheckExact(ranges))
        Py_RETURN_FALSE;
    count = PyList_Size(ranges);
    for (i = 0; i < count; i++) {
        PyObject *item = PyList_GetItem(ranges, i), *offset, *size;
        long long value;
        if (item == NULL || !PyTuple_CheckExact(item) || PyTuple_Size(item) != 2)
            Py_RETURN_FALSE;
        offset = PyTuple_GetItem(item, 0);
        size = PyTuple_GetItem(item, 1);
        if (!PyLong_CheckExact(offset) || !PyLong_CheckExact(size))
            Py_RETURN_FALSE;
        if (!afr_as_long_long(offset, &value) || value < 0
            || !afr_as_long_long(size, &value) || value < 0) {
            PyErr_Clear();
            Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

static PyMethodDef afr_plain_ranges_def = {
    "plain_ranges",
    (PyCFunction)(void (*)(void))afr_plain_ranges_impl,
    METH_O,
    "plain_ranges(ranges) -> True if ranges is a list of (int, int) tuples >= 0",
};

/* The function object of `def`, made once into *slot and held forever (one
 * reference): what the afr_*_function getters hand to Python. cffi calls C
 * with the GIL released; the C API needs it. */
static void *afr_function_once(PyObject **slot, PyMethodDef *def)
{
    PyGILState_STATE gil = PyGILState_Ensure();
    if (*slot == NULL)
        *slot = PyCFunction_NewEx(def, NULL, NULL);
    PyGILState_Release(gil);
    return *slot;
}

static PyObject *afr_plain_ranges_object = NULL;

static void *afr_plain_ranges_function(void)
{
    return afr_function_once(&afr_plain_ranges_object, &afr_plain_ranges_def);
}

static PyObject *afr_read_ranges_impl(PyObject *self, PyObject *args)
{
    PyObject *ranges, *results, *got = NULL, *answer;
    long fd;
    Py_ssize_t start, i, count, hits = 0;
    long long inline_max, seq_end, ahead_ok_to, nbytes = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "lO!nO!LLL:read_ranges_nowait", &fd, &PyList_Type, &ranges,
                          &start, &PyList_Type, &results, &inline_max, &seq_end, &ahead_ok_to))
        return NULL;
    count = PyList_Size(ranges);
    for (i = start < 0 ? 0 : start; i < count; i++) {
        PyObject *item = PyList_GetItem(ranges, i); /* borrowed */
        long long offset, size;
        PyObject *data;
        long n;
        if (item == NULL)
            return NULL;
        if (!PyTuple_Check(item) || PyTuple_Size(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "read_ranges_nowait: ranges must be (offset, size)");
            return NULL;
        }
        /* Past a C long long: not ours to judge (the general path is). */
        if (!afr_as_long_long(PyTuple_GetItem(item, 0), &offset)
            || !afr_as_long_long(PyTuple_GetItem(item, 1), &size)) {
            if (PyErr_Occurred())
                return NULL;
            break;
        }
        if (size == 0) {
            data = PyBytes_FromStringAndSize(NULL, 0);
            if (data == NULL || PyList_Append(results, data) < 0) {
                Py_XDECREF(data);
                return NULL;
            }
            Py_DECREF(data);
            continue;
        }
        /* The inline rule of _vectored's fast pass: small enough, and not
         * a stream step past the look-ahead mark (that one is judged). */
        if (offset < 0 || size < 0 || size > inline_max
            || (offset == seq_end && offset + size > ahead_ok_to))
            break;
        data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
        if (data == NULL)
            return NULL;
        n = afr_pread_flags((int)fd, PyBytes_AsString(data), (size_t)size, offset, RWF_NOWAIT);
        if (n == size) {
            if (PyList_Append(results, data) < 0) {
                Py_DECREF(data);
                return NULL;
            }
            Py_DECREF(data);
            hits++;
            nbytes += size;
            seq_end = offset + size;
            continue;
        }
        /* A miss or a short read: hand the answer over, read no further. */
        if (n < 0)
            got = PyLong_FromLong(n);
        else
            got = PyBytes_FromStringAndSize(PyBytes_AsString(data), n);
        Py_DECREF(data);
        if (got == NULL)
            return NULL;
        break;
    }
    if (got == NULL) {
        got = Py_None;
        Py_INCREF(got);
    }
    answer = Py_BuildValue("(nnLLN)", i, hits, nbytes, seq_end, got);
    return answer; /* N: the tuple took got's reference (or released it) */
}

static PyMethodDef afr_read_ranges_def = {
    "read_ranges_nowait",
    (PyCFunction)(void (*)(void))afr_read_ranges_impl,
    METH_VARARGS,
    "read_ranges_nowait(fd, ranges, start, results, inline_max, seq_end, ahead_ok_to) "
    "-> (stop, hits, nbytes, seq_end, got): read_many's inline pass over full hits",
};

static PyObject *afr_read_ranges_object = NULL;

static void *afr_read_ranges_function(void)
{
    return afr_function_once(&afr_read_ranges_object, &afr_read_ranges_def);
}
#else
static void *afr_read_ranges_function(void) { return NULL; }
static void *afr_plain_ranges_function(void) { return NULL; }
#endif
