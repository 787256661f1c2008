/* read_nowait(fd, size, offset) -> bytes | int, as a CPython function.
 *
 * The cffi call to afr_pread_flags (afr_syscalls.c) needs a buffer of ours
 * and then a second copy into the bytes object the caller gets (ffi.unpack):
 * 0.65 us of a 16 KiB hit, plus cffi's argument conversion. This function reads straight into a new
 * bytes object, as os.pread does, so an inline hit costs one copy
 * (docs/performance.md, "Where the time goes": 1.9x -> 1.4x of os.pread).
 * It keeps the GIL: a NOWAIT read never waits for the device.
 *
 * cffi cannot return a PyObject*, so Python fetches the function object
 * once, at import, through afr_read_nowait_function() (see _native.py).
 * PyPy has no CPython C API: there the cffi path is used. */
#ifndef PYPY_VERSION
static PyObject *afr_read_nowait_impl(PyObject *self, PyObject *argtuple)
{
    /* METH_VARARGS: cffi builds against the limited API of an old Python,
     * which has no METH_FASTCALL. */
    PyObject *const *args;
    Py_ssize_t nargs = PyTuple_Size(argtuple);
    PyObject *items[3];
    long fd;
    Py_ssize_t size;
    long long offset;
    long n;
    PyObject *out, *shorter;
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "read_nowait(fd, size, offset) takes 3 arguments");
        return NULL;
    }
    items[0] = PyTuple_GetItem(argtuple, 0);
    items[1] = PyTuple_GetItem(argtuple, 1);
    items[2] = PyTuple_GetItem(argtuple, 2);
    args = items;
    fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    size = PyLong_AsSsize_t(args[1]);
    if (size == -1 && PyErr_Occurred())
        return NULL;
    offset = PyLong_AsLongLong(args[2]);
    if (offset == -1 && PyErr_Occurred())
        return NULL;
    if (size < 0 || offset < 0) {
        PyErr_SetString(PyExc_ValueError, "read_nowait: size and offset must be >= 0");
        return NULL;
    }
    out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL)
        return NULL;
    n = afr_pread_flags((int)fd, PyBytes_AsString(out), (size_t)size, offset, RWF_NOWAIT);
    if (n == size)
        return out;
    if (n < 0) {
        Py_DECREF(out);
        return PyLong_FromLong(n);
    }
    /* Short (a cached prefix, or EOF): rare, so a copy is fine here. */
    shorter = PyBytes_FromStringAndSize(PyBytes_AsString(out), n);
    Py_DECREF(out);
    return shorter;
}

static PyMethodDef afr_read_nowait_def = {
    "read_nowait",
    (PyCFunction)(void (*)(void))afr_read_nowait_impl,
    METH_VARARGS,
    "read_nowait(fd, size, offset) -> bytes (complete, or short at a cached "
    "prefix or EOF) or a negative errno (-EAGAIN: not cached)",
};

/* read_nowait_into(fd, buffer, size, offset) -> int: NOWAIT read of size
 * bytes into a bytearray (the limited API of 3.10 reaches a bytearray's
 * bytes, not a general buffer's: PyObject_GetBuffer is 3.11), n or -errno.
 * Any other buffer goes to _native._cffi_read_nowait_into (ffi.from_buffer),
 * looked up once. The kernel's copy is the only one (issue 11 item 3). */
static PyObject *afr_into_fallback = NULL;

static PyObject *afr_read_nowait_into_impl(PyObject *self, PyObject *argtuple)
{
    PyObject *buffer;
    long fd;
    Py_ssize_t size;
    long long offset;
    long n;
    (void)self;
    if (PyTuple_Size(argtuple) != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "read_nowait_into(fd, buffer, size, offset) takes 4 arguments");
        return NULL;
    }
    buffer = PyTuple_GetItem(argtuple, 1);
    if (!PyByteArray_Check(buffer)) {
        if (afr_into_fallback == NULL) {
            PyObject *mod = PyImport_ImportModule("aiofastread._native");
            if (mod == NULL)
                return NULL;
            afr_into_fallback = PyObject_GetAttrString(mod, "_cffi_read_nowait_into");
            Py_DECREF(mod);
            if (afr_into_fallback == NULL)
                return NULL;
        }
        return PyObject_CallObject(afr_into_fallback, argtuple);
    }
    fd = PyLong_AsLong(PyTuple_GetItem(argtuple, 0));
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    size = PyLong_AsSsize_t(PyTuple_GetItem(argtuple, 2));
    if (size == -1 && PyErr_Occurred())
        return NULL;
    offset = PyLong_AsLongLong(PyTuple_GetItem(argtuple, 3));
    if (offset == -1 && PyErr_Occurred())
        return NULL;
    if (size < 0 || offset < 0 || size > PyByteArray_Size(buffer)) {
        PyErr_SetString(PyExc_ValueError,
                        "read_nowait_into: size must fit the buffer, offset must be >= 0");
        return NULL;
    }
    n = afr_pread_flags((int)fd, PyByteArray_AsString(buffer), (size_t)size, offset, RWF_NOWAIT);
    return PyLong_FromLong(n);
}

static PyMethodDef afr_read_nowait_into_def = {
    "read_nowait_into",
    (PyCFunction)(void (*)(void))afr_read_nowait_into_impl,
    METH_VARARGS,
    "read_nowait_into(fd, buffer, size, offset) -> bytes read into buffer[:size] "
    "or a negative errno (-EAGAIN: not cached)",
};

static PyObject *afr_read_nowait_into_object = NULL;

static void *afr_read_nowait_into_function(void)
{
    PyGILState_STATE gil = PyGILState_Ensure();
    if (afr_read_nowait_into_object == NULL)
        afr_read_nowait_into_object = PyCFunction_NewEx(&afr_read_nowait_into_def, NULL, NULL);
    PyGILState_Release(gil);
    return afr_read_nowait_into_object; /* one reference, held forever */
}

static PyObject *afr_read_nowait_object = NULL;

static void *afr_read_nowait_function(void)
{
    /* cffi calls C with the GIL released; the C API needs it. */
    PyGILState_STATE gil = PyGILState_Ensure();
    if (afr_read_nowait_object == NULL)
        afr_read_nowait_object = PyCFunction_NewEx(&afr_read_nowait_def, NULL, NULL);
    PyGILState_Release(gil);
    return afr_read_nowait_object; /* one reference, held forever */
}
#define AFR_HAS_CAPI_READ 1
#else
static void *afr_read_nowait_function(void) { return NULL; }
static void *afr_read_nowait_into_function(void) { return NULL; }
#define AFR_HAS_CAPI_READ 0
#endif
