/* The direct text path's hit in C (issue 9: text no slower than binary).
 *
 * aiofastread/_bridge/direct.py serves `seek(int)` + `read(n)` of a text file
 * from the state a TextIOWrapper would have after those calls (DirectText),
 * for the chunks that decode to one character a byte with a fresh decoder:
 * every chunk of latin-1 with no newline decoder; chunks of pure ASCII of
 * the other ASCII-compatible codecs (UTF-8: `open(p, "r")`); with a newline
 * decoder (newline None or ""), chunks with no b"\r". In Python a cached 16 KiB read was two
 * coroutines, the binary reader's pread, a decode and a slice: ~4.4 us
 * against ~2.5 us for binary (docs/benchmarks.md). Here:
 *
 * - TextCore, DirectText's C base: the state's fields (start, text, used,
 *   short, known, dirty, enabled, the chunk size, the binary core, the raw,
 *   the file lock), and `gen`, moved by every change of the state (the
 *   setters of text/known/dirty/enabled, which every change in direct.py
 *   sets, and the C calls here);
 * - TextFileCore, the text file object's C base (DirectTextIOWrapper,
 *   threadpool/text.py), with `read` and `seek` methods: they do what
 *   AsyncTextIOWrapper.read/seek + DirectText.read/seek do in the common
 *   case (the chunk asked for whole, from the page cache: the binary hit
 *   path's rule, afr_rule_allows, and bookkeeping, afr_count_hit), check
 *   it (memchr for b"\r" and b"\n" under a newline decoder: `lf` records
 *   a b"\n" for `newlines`), decode with PyUnicode_DecodeLatin1 /
 *   PyUnicode_DecodeASCII (the limited API has no way to build a str
 *   without that copy; the ASCII decode is the ASCII check) and return a
 *   Ready (afr_ready.c). Anything else (several chunks, a miss, a short
 *   read, a chunk not for this path, b2cratio not known to be <= 1 for a
 *   large want, the `async for` batch armed, the C path standing aside)
 *   calls the Python
 *   method `_read_general(size[, attempt, gen])` / `_seek_general(...)` and
 *   returns its coroutine; a NOWAIT read already made is handed on, never
 *   repeated, as afr_hit.c does;
 * - a Ready dropped or thrown into before it delivered puts the state it
 *   replaced back (invariant 4), unless the state moved since (`gen`): the
 *   flags lf, reset and ratio_ok too (AfrReady.saved_bits).
 *
 * Included after afr_ready.c and afr_hit.c (their statics are used). */
#ifndef PYPY_VERSION

/* Py_XSETREF is not in the limited API of 3.10. */
#define AFR_XSETREF(field, value)   \
    do {                            \
        PyObject *old_ = (field);   \
        (field) = (value);          \
        Py_XDECREF(old_);           \
    } while (0)

typedef struct {
    PyObject_HEAD
    long long start, chunk_size, gen;
    Py_ssize_t used;
    PyObject *text; /* a str */
    AfrReader *core;
    PyObject *raw, *lock;
    char short_, known, dirty, enabled, ascii_only;
    /* The ASCII-compatible codecs (direct.py): no_cr, a newline decoder is
     * there (newline None or ""): a chunk with b"\r" is not served here;
     * lf, a chunk served since the TextIOWrapper was brought up to date held
     * b"\n" (its `newlines` must learn it); reset, a seek to 0 since then
     * (its `newlines` start again); ratio_ok, TextIOWrapper's b2cratio is
     * known to be <= 1 (the last chunk decoded was served here or at open);
     * lines_armed, the `async for` batch is armed (_bridge/lines.py: the
     * Python path disarms it first). ratio_room: the largest wanted
     * character count whose chunk is _CHUNK_SIZE whatever b2cratio is. */
    char no_cr, lf, reset, ratio_ok, lines_armed;
    long long ratio_room;
} AfrText;

/* The flags a dropped Ready puts back, packed in its saved_bits. */
#define AFR_TEXT_BITS(t) ((char)((t)->lf | (t)->reset << 1 | (t)->ratio_ok << 2))

typedef struct {
    PyObject_HEAD
    AfrText *direct;
} AfrTextFile;

static PyTypeObject *afr_text_type, *afr_text_file_type;
static PyObject *afr_str_text_read_general, *afr_str_text_read_any, *afr_str_text_seek_general, *afr_str_busy,
    *afr_str_closed, *afr_str_chunk_ok, *afr_empty_str;
static unsigned long long afr_text_reads = 0; /* reads served here (tests count them) */

/* A scratch buffer for the chunk's bytes (the GIL is held from the read to
 * the decode); kept up to this size, larger chunks get their own. */
#define AFR_TEXT_KEEP (256 * 1024)
static char *afr_text_buf = NULL;
static size_t afr_text_cap = 0;

/* -- TextCore: the state ----------------------------------------------------- */

static int afr_text_traverse(PyObject *self, visitproc visit, void *arg)
{
    AfrText *t = (AfrText *)self;
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(t->text);
    Py_VISIT(t->core);
    Py_VISIT(t->raw);
    Py_VISIT(t->lock);
    return 0;
}

static int afr_text_clear(PyObject *self)
{
    AfrText *t = (AfrText *)self;
    Py_CLEAR(t->text);
    Py_CLEAR(t->core);
    Py_CLEAR(t->raw);
    Py_CLEAR(t->lock);
    return 0;
}

static void afr_text_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    afr_text_clear(self);
    afr_plain_dealloc(self);
}

static PyObject *afr_text_get_text(PyObject *self, void *c)
{
    AfrText *t = (AfrText *)self;
    return afr_get_field(t->text != NULL ? t->text : afr_empty_str, "text");
}

static int afr_text_set_text(PyObject *self, PyObject *value, void *c)
{
    AfrText *t = (AfrText *)self;
    if (value != NULL && !PyUnicode_CheckExact(value)) {
        PyErr_SetString(PyExc_TypeError, "text: a str");
        return -1;
    }
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete text");
        return -1;
    }
    Py_INCREF(value);
    AFR_XSETREF(t->text, value);
    t->gen++;
    return 0;
}

/* The flags: a change moves gen. */
static PyObject *afr_text_get_flag(PyObject *self, void *which)
{
    AfrText *t = (AfrText *)self;
    switch ((char)(Py_ssize_t)which) {
    case 'k':
        return PyBool_FromLong(t->known);
    case 'd':
        return PyBool_FromLong(t->dirty);
    default:
        return PyBool_FromLong(t->enabled);
    }
}

static int afr_text_set_flag(PyObject *self, PyObject *value, void *which)
{
    AfrText *t = (AfrText *)self;
    int v;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete a flag");
        return -1;
    }
    v = PyObject_IsTrue(value);
    if (v < 0)
        return -1;
    switch ((char)(Py_ssize_t)which) {
    case 'k':
        t->known = (char)v;
        break;
    case 'd':
        t->dirty = (char)v;
        break;
    default:
        t->enabled = (char)v;
    }
    t->gen++;
    return 0;
}

static PyObject *afr_text_get_core(PyObject *self, void *c)
{
    return afr_get_field((PyObject *)((AfrText *)self)->core, "_core");
}
static int afr_text_set_core(PyObject *self, PyObject *value, void *c)
{
    return afr_set_typed((PyObject **)&((AfrText *)self)->core, value, afr_reader_type, "_core");
}

/* raw / lock: any object (read through their `closed` / `busy`). */
static PyObject *afr_text_get_obj(PyObject *self, void *which)
{
    AfrText *t = (AfrText *)self;
    return afr_get_field((char)(Py_ssize_t)which == 'r' ? t->raw : t->lock,
                         (char)(Py_ssize_t)which == 'r' ? "raw" : "lock");
}
static int afr_text_set_obj(PyObject *self, PyObject *value, void *which)
{
    AfrText *t = (AfrText *)self;
    PyObject **field = (char)(Py_ssize_t)which == 'r' ? &t->raw : &t->lock;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete it");
        return -1;
    }
    Py_INCREF(value);
    AFR_XSETREF(*field, value);
    return 0;
}

static PyMemberDef afr_text_members[] = {
    {"start", T_LONGLONG, offsetof(AfrText, start), 0, NULL},
    {"used", T_PYSSIZET, offsetof(AfrText, used), 0, NULL},
    {"short", T_BOOL, offsetof(AfrText, short_), 0, NULL},
    {"_chunk_size", T_LONGLONG, offsetof(AfrText, chunk_size), 0, NULL},
    {"_ascii_only", T_BOOL, offsetof(AfrText, ascii_only), 0, NULL},
    {"_no_cr", T_BOOL, offsetof(AfrText, no_cr), 0, NULL},
    {"_ratio_room", T_LONGLONG, offsetof(AfrText, ratio_room), 0, NULL},
    {"lf", T_BOOL, offsetof(AfrText, lf), 0, NULL},
    {"reset", T_BOOL, offsetof(AfrText, reset), 0, NULL},
    {"ratio_ok", T_BOOL, offsetof(AfrText, ratio_ok), 0, NULL},
    {"lines_armed", T_BOOL, offsetof(AfrText, lines_armed), 0, NULL},
    {"gen", T_LONGLONG, offsetof(AfrText, gen), READONLY, "moves with every change"},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef afr_text_getset[] = {
    {"text", afr_text_get_text, afr_text_set_text, NULL, NULL},
    {"known", afr_text_get_flag, afr_text_set_flag, NULL, (void *)'k'},
    {"dirty", afr_text_get_flag, afr_text_set_flag, NULL, (void *)'d'},
    {"enabled", afr_text_get_flag, afr_text_set_flag, NULL, (void *)'e'},
    {"_core", afr_text_get_core, afr_text_set_core, NULL, NULL},
    {"raw", afr_text_get_obj, afr_text_set_obj, NULL, (void *)'r'},
    {"lock", afr_text_get_obj, afr_text_set_obj, NULL, (void *)'l'},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot afr_text_slots[] = {
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)afr_text_dealloc},
    {Py_tp_traverse, (void *)afr_text_traverse},
    {Py_tp_clear, (void *)afr_text_clear},
    {Py_tp_members, afr_text_members},
    {Py_tp_getset, afr_text_getset},
    {Py_tp_doc, (void *)"TextCore"},
    {0, NULL},
};

/* A dropped Ready's undo (afr_ready.c): the state it replaced, back. */
static void afr_text_undo(PyObject *state, PyObject *saved_text, long long saved_start,
                          Py_ssize_t saved_used, char saved_short, char saved_dirty,
                          char saved_known, char saved_bits, long long done_gen)
{
    AfrText *t = (AfrText *)state;
    if (t->gen != done_gen)
        return; /* something changed it since: that is the state now */
    Py_INCREF(saved_text);
    AFR_XSETREF(t->text, saved_text);
    t->start = saved_start;
    t->used = saved_used;
    t->short_ = saved_short;
    t->dirty = saved_dirty;
    t->known = saved_known;
    t->lf = saved_bits & 1;
    t->reset = (saved_bits >> 1) & 1;
    t->ratio_ok = (saved_bits >> 2) & 1;
    t->gen++;
}

/* A Ready of `value` (stolen) after a change of `t` whose old state is
 * given; the change counted in gen. */
static PyObject *afr_text_ready(PyObject *value, AfrText *t, PyObject *old_text,
                                long long old_start, Py_ssize_t old_used, char old_short,
                                char old_dirty, char old_known, char old_bits)
{
    AfrReady *r = (AfrReady *)afr_ready_new(value, NULL, 0, 0);
    if (r == NULL)
        return NULL;
    Py_INCREF(t);
    r->reader = (PyObject *)t;
    r->done_pos = t->gen;
    Py_INCREF(old_text);
    r->saved_text = old_text;
    r->saved_start = old_start;
    r->saved_used = old_used;
    r->saved_short = old_short;
    r->saved_dirty = old_dirty;
    r->saved_known = old_known;
    r->saved_bits = old_bits;
    return (PyObject *)r;
}

/* -- TextFileCore: the file object's read and seek --------------------------- */

static int afr_text_file_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(((AfrTextFile *)self)->direct);
    return 0;
}

static int afr_text_file_clear(PyObject *self)
{
    Py_CLEAR(((AfrTextFile *)self)->direct);
    return 0;
}

static void afr_text_file_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    afr_text_file_clear(self);
    afr_plain_dealloc(self);
}

static PyObject *afr_text_file_get_direct(PyObject *self, void *c)
{
    return afr_get_field((PyObject *)((AfrTextFile *)self)->direct, "_direct");
}
static int afr_text_file_set_direct(PyObject *self, PyObject *value, void *c)
{
    return afr_set_typed((PyObject **)&((AfrTextFile *)self)->direct, value, afr_text_type,
                         "_direct");
}

/* The Python method `name` with the call's arguments as given. */
static PyObject *afr_text_call_py(PyObject *self, PyObject *name, PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *fn, *tuple, *kwargs = NULL, *result = NULL;
    Py_ssize_t i, nkw = kwnames ? PyTuple_Size(kwnames) : 0;
    fn = PyObject_GetAttr(self, name);
    if (fn == NULL)
        return NULL;
    tuple = PyTuple_New(nargs);
    if (tuple == NULL)
        goto done;
    for (i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SetItem(tuple, i, args[i]);
    }
    if (nkw) {
        kwargs = PyDict_New();
        if (kwargs == NULL)
            goto done;
        for (i = 0; i < nkw; i++)
            if (PyDict_SetItem(kwargs, PyTuple_GetItem(kwnames, i), args[nargs + i]) < 0)
                goto done;
    }
    result = PyObject_Call(fn, tuple, kwargs);
done:
    Py_DECREF(fn);
    Py_XDECREF(tuple);
    Py_XDECREF(kwargs);
    return result;
}

/* Whether no other operation runs on the file and its raw is open (what
 * AsyncTextIOWrapper.read checks before the direct path); -1: an error. */
static int afr_text_free(AfrText *t)
{
    PyObject *v;
    int busy, closed;
    if (t->lock == NULL || t->raw == NULL || t->core == NULL || t->core->h == NULL)
        return 0;
    v = PyObject_GetAttr(t->lock, afr_str_busy);
    if (v == NULL)
        return -1;
    busy = PyObject_IsTrue(v);
    Py_DECREF(v);
    if (busy)
        return busy < 0 ? -1 : 0;
    v = PyObject_GetAttr(t->raw, afr_str_closed);
    if (v == NULL)
        return -1;
    closed = PyObject_IsTrue(v);
    Py_DECREF(v);
    return closed < 0 ? -1 : !closed;
}

/* The chunk's characters from its bytes; NULL without an error set when
 * they are not for this path (direct.py, DirectText._read_chunks): not ASCII
 * for a codec other than latin-1, or a b"\r" under a newline decoder (it
 * translates it, and may hold it for the next chunk). Pure ASCII with no
 * b"\r" decodes to the same characters under every codec, error handler
 * and newline setting taken, leaving the decoder fresh. *lf: they hold
 * b"\n" (looked for only under a newline decoder, while not known yet). */
static PyObject *afr_text_decode(AfrText *t, const char *buf, Py_ssize_t n, char *lf)
{
    PyObject *s;
    if (t->no_cr && memchr(buf, '\r', (size_t)n) != NULL)
        return NULL;
    if (!t->ascii_only) {
        s = PyUnicode_DecodeLatin1(buf, n, NULL);
    }
    else {
        s = PyUnicode_DecodeASCII(buf, n, "strict");
        if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
            PyErr_Clear();
    }
    if (s != NULL && t->no_cr && !t->lf)
        *lf = memchr(buf, '\n', (size_t)n) != NULL;
    return s;
}

/* read(size=-1) */
static PyObject *afr_text_file_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames)
{
    AfrText *t = ((AfrTextFile *)self)->direct;
    PyObject *old_text, *text, *piece, *result, *attempt, *gen_obj;
    long long size, remaining, end, chunk;
    Py_ssize_t len, avail;
    char *buf, lf = 0;
    long n;
    int free_;
    if (nargs != 1 || kwnames != NULL) /* AsyncTextIOWrapper.read: its defaults, its errors */
        return afr_text_call_py(self, afr_str_text_read_any, args, nargs, kwnames);
    if (t == NULL || !afr_c_on())
        return PyObject_CallMethodObjArgs(self, afr_str_text_read_general, args[0], NULL);
    if (!afr_int_in(args[0], 1, AFR_INLINE_MAX, &size) || !t->known || !t->enabled ||
        t->lines_armed)
        return PyObject_CallMethodObjArgs(self, afr_str_text_read_general, args[0], NULL);
    free_ = afr_text_free(t);
    if (free_ <= 0)
        return free_ < 0 ? NULL
                         : PyObject_CallMethodObjArgs(self, afr_str_text_read_general, args[0],
                                                      NULL);
    old_text = t->text != NULL ? t->text : afr_empty_str;
    len = PyUnicode_GetLength(old_text);
    avail = len - t->used;
    if (size <= avail) { /* from the chunk already decoded */
        Py_ssize_t used = t->used;
        char dirty = t->dirty;
        piece = PyUnicode_Substring(old_text, used, used + (Py_ssize_t)size);
        if (piece == NULL)
            return NULL;
        t->used = used + (Py_ssize_t)size;
        t->dirty = 1;
        t->gen++;
        afr_text_reads++;
        return afr_text_ready(piece, t, old_text, t->start, used, t->short_, dirty, 1,
                              AFR_TEXT_BITS(t));
    }
    /* textiowrapper_read_chunk: the next chunk, of max(_CHUNK_SIZE, wanted). */
    remaining = size - avail;
    end = t->start + len;
    chunk = remaining < t->chunk_size ? t->chunk_size : remaining;
    /* That is the chunk only while b2cratio <= 1, or small enough a want
     * (DirectText.read). */
    if ((!t->ratio_ok && remaining > t->ratio_room) || chunk > AFR_INLINE_MAX || end > LLONG_MAX - AFR_INLINE_MAX ||
        !afr_rule_allows(t->core->h, chunk, end))
        return PyObject_CallMethodObjArgs(self, afr_str_text_read_general, args[0], NULL);
    if ((size_t)chunk <= afr_text_cap) {
        buf = afr_text_buf;
    }
    else if (chunk <= AFR_TEXT_KEEP) {
        buf = PyMem_Realloc(afr_text_buf, (size_t)chunk);
        if (buf == NULL)
            return PyErr_NoMemory();
        afr_text_buf = buf;
        afr_text_cap = (size_t)chunk;
    }
    else {
        buf = PyMem_Malloc((size_t)chunk);
        if (buf == NULL)
            return PyErr_NoMemory();
    }
    afr_hit_syscalls++;
    n = afr_pread_flags(t->core->h->fd, buf, (size_t)chunk, end, RWF_NOWAIT);
    text = n == chunk ? afr_text_decode(t, buf, (Py_ssize_t)chunk, &lf) : NULL;
    if (text == NULL && PyErr_Occurred()) {
        if (buf != afr_text_buf)
            PyMem_Free(buf);
        return NULL;
    }
    if (text != NULL) {
        char old_bits = AFR_TEXT_BITS(t);
        if (buf != afr_text_buf)
            PyMem_Free(buf);
        if (afr_count_hit(t->core->h, end + chunk, chunk) < 0) {
            Py_DECREF(text);
            return NULL;
        }
        /* text[:remaining], joined to what was left of the last chunk. */
        piece = remaining == chunk ? (Py_INCREF(text), text)
                                   : PyUnicode_Substring(text, 0, (Py_ssize_t)remaining);
        if (piece != NULL && avail > 0) {
            PyObject *head = PyUnicode_Substring(old_text, t->used, len);
            result = head == NULL ? NULL : PyUnicode_Concat(head, piece);
            Py_XDECREF(head);
            Py_DECREF(piece);
            piece = result;
        }
        if (piece == NULL) {
            Py_DECREF(text);
            return NULL;
        }
        result = afr_text_ready(piece, t, old_text, t->start, t->used, t->short_, t->dirty, 1,
                                old_bits);
        if (result == NULL) {
            Py_DECREF(text);
            return NULL;
        }
        AFR_XSETREF(t->text, text);
        t->start = end;
        t->used = (Py_ssize_t)remaining;
        t->short_ = 0;
        t->dirty = 1;
        t->ratio_ok = 1; /* an ASCII chunk: b2cratio 1 */
        if (lf)
            t->lf = 1;
        t->gen++;
        ((AfrReady *)result)->done_pos = t->gen;
        afr_text_reads++;
        return result;
    }
    /* A miss, a short read, or bytes not for this path: the general path
     * goes on from this answer (-errno, or the bytes read), without a
     * second NOWAIT try. */
    attempt = n < 0 ? PyLong_FromLong(n) : PyBytes_FromStringAndSize(buf, n);
    if (buf != afr_text_buf)
        PyMem_Free(buf);
    gen_obj = attempt == NULL ? NULL : PyLong_FromLongLong(t->gen);
    if (gen_obj == NULL) {
        Py_XDECREF(attempt);
        return NULL;
    }
    result = PyObject_CallMethodObjArgs(self, afr_str_text_read_general, args[0], attempt, gen_obj,
                                        NULL);
    Py_DECREF(attempt);
    Py_DECREF(gen_obj);
    return result;
}

/* seek(cookie, whence=SEEK_SET): an int cookie in [0, TRUSTED_SEEK_MAX] is
 * the byte offset (direct.takes_seek), taken at once. */
static PyObject *afr_text_file_seek(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames)
{
    AfrText *t = ((AfrTextFile *)self)->direct;
    PyObject *old_text, *result, *v;
    long long cookie, whence = 0;
    int free_, ratio_ok;
    if (nargs < 1 || nargs > 2 || kwnames != NULL || t == NULL || !t->enabled || t->lines_armed ||
        !afr_int_in(args[0], 0, AFR_TRUSTED_SEEK_MAX, &cookie) ||
        (nargs == 2 && !afr_int_in(args[1], 0, 0, &whence)))
        return afr_text_call_py(self, afr_str_text_seek_general, args, nargs, kwnames);
    free_ = afr_text_free(t);
    if (free_ <= 0)
        return free_ < 0 ? NULL
                         : afr_text_call_py(self, afr_str_text_seek_general, args, nargs, kwnames);
    ratio_ok = t->ratio_ok;
    if (!t->known) { /* DirectText.seek: b2cratio as the raw saw the last chunk */
        v = PyObject_GetAttr(t->raw, afr_str_chunk_ok);
        if (v == NULL)
            return NULL;
        ratio_ok = PyObject_IsTrue(v);
        Py_DECREF(v);
        if (ratio_ok < 0)
            return NULL;
    }
    old_text = t->text != NULL ? t->text : afr_empty_str;
    Py_INCREF(args[0]);
    result = afr_text_ready(args[0], t, old_text, t->start, t->used, t->short_, t->dirty,
                            t->known, AFR_TEXT_BITS(t));
    if (result == NULL)
        return NULL;
    /* DirectText.seek: known, and the TextIOWrapper behind. (Undone, known
     * goes back too: after another operation the TextIOWrapper's state is
     * its own, and the old fields do not describe it.) */
    Py_INCREF(afr_empty_str);
    AFR_XSETREF(t->text, afr_empty_str);
    t->start = cookie;
    t->used = 0;
    t->short_ = 0;
    t->known = t->dirty = 1;
    t->ratio_ok = (char)ratio_ok;
    if (cookie == 0) { /* the newline decoder's reset (DirectText.seek) */
        t->reset = 1;
        t->lf = 0;
    }
    t->gen++;
    ((AfrReady *)result)->done_pos = t->gen;
    return result;
}

static PyMethodDef afr_text_file_methods[] = {
    {"read", (PyCFunction)(void (*)(void))afr_text_file_read, AFR_FASTCALL,
     "read(size=-1): up to size characters."},
    {"seek", (PyCFunction)(void (*)(void))afr_text_file_seek, AFR_FASTCALL,
     "seek(cookie, whence=SEEK_SET): move to a tell() cookie; the new one."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef afr_text_file_getset[] = {
    {"_direct", afr_text_file_get_direct, afr_text_file_set_direct, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot afr_text_file_slots[] = {
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)afr_text_file_dealloc},
    {Py_tp_traverse, (void *)afr_text_file_traverse},
    {Py_tp_clear, (void *)afr_text_file_clear},
    {Py_tp_methods, afr_text_file_methods},
    {Py_tp_getset, afr_text_file_getset},
    {Py_tp_doc, (void *)"DirectTextIOWrapper"},
    {0, NULL},
};

/* text_reads(): reads served here (tests count them). */
static PyObject *afr_text_reads_count(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return PyLong_FromUnsignedLongLong(afr_text_reads);
}

static PyMethodDef afr_text_read_count_def = {"text_reads", afr_text_reads_count, METH_NOARGS,
                                              "Text reads served by the C direct path."};

AFR_SPEC(afr_text_spec, "TextCore", AfrText, afr_text_slots);
AFR_SPEC(afr_text_file_spec, "TextFileCore", AfrTextFile, afr_text_file_slots);

/* Add TextCore, TextFileCore and text_reads to the hit path's dict. */
static int afr_text_add(PyObject *d)
{
#define AFR_TEXT_STR(field, text) \
    if ((field = PyUnicode_InternFromString(text)) == NULL) return -1
    AFR_TEXT_STR(afr_str_text_read_general, "_read_general");
    AFR_TEXT_STR(afr_str_text_seek_general, "_seek_general");
    AFR_TEXT_STR(afr_str_text_read_any, "_read_any");
    AFR_TEXT_STR(afr_str_busy, "busy");
    AFR_TEXT_STR(afr_str_closed, "closed");
    AFR_TEXT_STR(afr_str_chunk_ok, "chunk_ok");
    AFR_TEXT_STR(afr_empty_str, "");
    if (afr_hit_add_type(d, "TextCore", &afr_text_type, &afr_text_spec) < 0 ||
        afr_hit_add_type(d, "TextFileCore", &afr_text_file_type, &afr_text_file_spec) < 0)
        return -1;
    return afr_hit_add(d, "text_reads", PyCFunction_NewEx(&afr_text_read_count_def, NULL, NULL));
}

#endif /* PYPY_VERSION */
