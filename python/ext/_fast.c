/*
 * ndshm._fast: the hot calls of the Python binding in C (docs/python.md, "Speed").
 *
 * Reader.read/read_next (with and without out=) and Reader.view/view_next, with the same
 * results, errors and close protocol as the pure-Python ctypes path of python/ndshm/core.py,
 * which stays the fallback (NDSHM_PY_FAST=0, or this module not built). Calls libndshm through
 * its public API only. core.py hands this module, once, the Python objects it returns
 * (statuses, dtypes, flags, the Info subclass, the error factory): see setup().
 *
 * GIL: reads copy with the GIL held up to RELEASE_BYTES; larger copies release it, with the
 * reader's _calls entry that Reader.close() drains (core.py, _drain) held across the call.
 * Views never copy and keep the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "ndshm/ndshm.h"

#define RELEASE_BYTES ((size_t)64 * 1024)
#define N_STATUS      8 /* positive statuses 0..7 */
#define N_DTYPES      15

/* ----- what core.py hands over (setup) -------------------------------------------------- */
static PyObject *g_status[N_STATUS]; /* Status members by value */
static PyObject *g_status_fn;        /* core._status(rc) */
static PyObject *g_error_fn;         /* core._error(rc, what) -> exception */
static PyObject *g_dtype[N_DTYPES];  /* numpy dtype by code, NULL if none */
static PyObject *g_flags[8];         /* InfoFlags(i) for i < 8 */
static PyObject *g_flags_type;       /* InfoFlags */
static PyTypeObject *g_info_type;    /* core.Info (a subclass of _fast.Info) */
static int g_ready;

static PyObject *s_h, *s_calls, *s_name, *s_size, *s_spare; /* interned attribute names */

/* ----- Info: an ndshm_info, fields built when read ------------------------------------- */
typedef struct {
    PyObject_HEAD ndshm_info ci;
} InfoObject;

static PyObject *info_u64(PyObject *self, void *off)
{
    const char *base = (const char *)&((InfoObject *)self)->ci;
    uint64_t v;
    memcpy(&v, base + (size_t)(uintptr_t)off, sizeof v);
    return PyLong_FromUnsignedLongLong(v);
}

static PyObject *info_flags(PyObject *self, void *unused)
{
    (void)unused;
    uint32_t f = ((InfoObject *)self)->ci.flags;
    if (f < 8) {
        Py_INCREF(g_flags[f]);
        return g_flags[f];
    }
    return PyObject_CallFunction(g_flags_type, "k", (unsigned long)f);
}

static PyObject *info_dtype(PyObject *self, void *unused)
{
    (void)unused;
    int32_t d = ((InfoObject *)self)->ci.dtype;
    PyObject *o = d >= 0 && d < N_DTYPES && g_dtype[d] ? g_dtype[d] : Py_None;
    Py_INCREF(o);
    return o;
}

static PyObject *info_shape(PyObject *self, void *unused)
{
    (void)unused;
    const ndshm_info *ci = &((InfoObject *)self)->ci;
    uint32_t n = ci->ndim < NDSHM_MAX_DIMS ? ci->ndim : NDSHM_MAX_DIMS;
    PyObject *t = PyTuple_New((Py_ssize_t)n);
    if (!t)
        return NULL;
    for (uint32_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(ci->shape[i]);
        if (!v) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, v);
    }
    return t;
}

#define U64_FIELD(f, doc)                                                                          \
    {                                                                                              \
#f, info_u64, NULL, doc, (void *)(uintptr_t)offsetof(ndshm_info, f)                        \
    }
static PyGetSetDef info_getset[] = {
    U64_FIELD(version, "version number"),
    U64_FIELD(publish_ns, "writer's CLOCK_MONOTONIC at publish, ns"),
    U64_FIELD(read_ns, "reader's CLOCK_MONOTONIC when the read was complete, ns"),
    U64_FIELD(latency_ns, "read_ns - publish_ns"),
    U64_FIELD(dropped, "versions this handle did not get since its previous read"),
    U64_FIELD(nbytes, "payload bytes"),
    U64_FIELD(generation, "data segment generation"),
    {"flags", info_flags, NULL, "InfoFlags", NULL},
    {"dtype", info_dtype, NULL, "numpy dtype", NULL},
    {"shape", info_shape, NULL, "shape tuple", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject InfoType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ndshm._fast.Info",
    .tp_basicsize = sizeof(InfoObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The fields of one ndshm_info, built when read (base of ndshm.Info).",
    .tp_getset = info_getset,
};

static PyObject *new_info(const ndshm_info *ci)
{
    InfoObject *o = (InfoObject *)g_info_type->tp_alloc(g_info_type, 0);
    if (o)
        o->ci = *ci;
    return (PyObject *)o;
}

/* ----- View: owns one ndshm_view; the .base of the read-only array of a view ----------- */
typedef struct {
    PyObject_HEAD ndshm_view v;
    int live; /* v holds a view to release */
    PyObject *weakrefs;
} ViewObject;

static void view_dealloc(PyObject *self)
{
    ViewObject *o = (ViewObject *)self;
    if (o->weakrefs)
        PyObject_ClearWeakRefs(self);
    if (o->live) {
        o->live = 0;
        ndshm_view_release(&o->v);
    }
    Py_TYPE(self)->tp_free(self);
}

static PyObject *status_obj(int rc)
{
    return PyObject_CallFunction(g_status_fn, "i", rc);
}

static PyObject *view_check_m(PyObject *self, PyObject *unused)
{
    (void)unused;
    ViewObject *o = (ViewObject *)self;
    if (!o->live) {
        PyErr_SetString(PyExc_ValueError, "view released");
        return NULL;
    }
    return status_obj(ndshm_view_check(&o->v));
}

static PyMethodDef view_methods[] = {
    {"check", view_check_m, METH_NOARGS,
     "Status.OK if the viewed version is still intact, else Status.OVERWRITTEN."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ViewType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ndshm._fast.View",
    .tp_basicsize = sizeof(ViewObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Owns one ndshm_view (released when collected): the base of a view's array.",
    .tp_dealloc = view_dealloc,
    .tp_weaklistoffset = offsetof(ViewObject, weakrefs),
    .tp_methods = view_methods,
};

/* ----- helpers ------------------------------------------------------------------------- */
static int not_ready(void)
{
    if (g_ready)
        return 0;
    PyErr_SetString(PyExc_RuntimeError, "ndshm._fast: setup() not called");
    return 1;
}

/* The reader's C handle; NULL with ValueError("reader is closed") (core.Reader._unusable). */
static ndshm_reader *handle_of(PyObject *reader)
{
    PyObject *h = PyObject_GetAttr(reader, s_h);
    if (!h)
        return NULL;
    if (h == Py_None) {
        Py_DECREF(h);
        PyErr_SetString(PyExc_ValueError, "reader is closed");
        return NULL;
    }
    void *p = PyLong_AsVoidPtr(h);
    Py_DECREF(h);
    if (!p && !PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "reader is closed");
    return (ndshm_reader *)p;
}

/* Raise core._error(rc, "<verb> on <name!r>"). */
static PyObject *raise_rc(PyObject *reader, int rc, const char *verb)
{
    PyObject *name = PyObject_GetAttr(reader, s_name);
    if (!name)
        return NULL;
    PyObject *what = PyUnicode_FromFormat("%s on %R", verb, name);
    Py_DECREF(name);
    if (!what)
        return NULL;
    PyObject *exc = PyObject_CallFunction(g_error_fn, "iO", rc, what);
    Py_DECREF(what);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* (Status(rc), None, None) for a positive status (KeyError for one core.Status lacks, as
 * the fallback's _STATUS[rc]). */
static PyObject *no_array(int rc)
{
    if (rc < 0 || rc >= N_STATUS) {
        PyObject *k = PyLong_FromLong(rc);
        if (k) {
            PyErr_SetObject(PyExc_KeyError, k);
            Py_DECREF(k);
        }
        return NULL;
    }
    return PyTuple_Pack(3, g_status[rc], Py_None, Py_None);
}

static PyArray_Descr *dtype_for(int32_t code)
{
    if (code < 0 || code >= N_DTYPES || !g_dtype[code]) {
        PyObject *k = PyLong_FromLong(code);
        if (k) {
            PyErr_SetObject(PyExc_KeyError, k);
            Py_DECREF(k);
        }
        return NULL;
    }
    Py_INCREF(g_dtype[code]);
    return (PyArray_Descr *)g_dtype[code];
}

static int dims_of(const ndshm_info *ci, npy_intp *dims)
{
    if (ci->ndim > NDSHM_MAX_DIMS) {
        PyErr_SetString(PyExc_ValueError, "ndim out of range");
        return -1;
    }
    for (uint32_t i = 0; i < ci->ndim; i++) {
        if (ci->shape[i] > (uint64_t)NPY_MAX_INTP) {
            PyErr_SetString(PyExc_ValueError, "shape out of range");
            return -1;
        }
        dims[i] = (npy_intp)ci->shape[i];
    }
    return 0;
}

/* An array of the version's dtype and shape over data (writable if flags say so), kept alive
 * by base (a reference is taken). */
static PyObject *array_over(const ndshm_info *ci, void *data, int flags, PyObject *base)
{
    npy_intp dims[NDSHM_MAX_DIMS];
    static char empty;
    if (dims_of(ci, dims) < 0)
        return NULL;
    PyArray_Descr *dt = dtype_for(ci->dtype);
    if (!dt)
        return NULL;
    if (!data) /* 0 bytes: numpy would allocate for NULL */
        data = &empty;
    PyObject *arr =
        PyArray_NewFromDescr(&PyArray_Type, dt, (int)ci->ndim, dims, NULL, data, flags, NULL);
    if (!arr)
        return NULL;
    Py_INCREF(base);
    if (PyArray_SetBaseObject((PyArrayObject *)arr, base) < 0) {
        Py_DECREF(arr);
        return NULL;
    }
    return arr;
}

typedef int (*read_fn)(ndshm_reader *, void *, size_t, ndshm_info *);

/* The reader's _calls entry (core._drain): a close() from another thread waits until it is
 * removed. Returns the list (a new reference) or NULL. */
static PyObject *begin_call(PyObject *reader)
{
    PyObject *calls = PyObject_GetAttr(reader, s_calls);
    if (!calls)
        return NULL;
    if (!PyList_Check(calls) || PyList_Append(calls, Py_None) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "reader._calls is not a list");
        Py_DECREF(calls);
        return NULL;
    }
    return calls;
}

static int end_call(PyObject *calls)
{
    Py_ssize_t n = PyList_GET_SIZE(calls);
    int err = n > 0 ? PyList_SetSlice(calls, n - 1, n, NULL) : 0;
    Py_DECREF(calls);
    return err;
}

/* One read call, without the GIL above RELEASE_BYTES. The caller holds a _calls entry (held)
 * or, if not, one is taken across a call that releases the GIL. */
static int call_read(PyObject *reader, read_fn fn, ndshm_reader *h, void *buf, size_t size,
                     ndshm_info *ci, int *rc, int held)
{
    if (size <= RELEASE_BYTES) {
        *rc = fn(h, buf, size, ci);
        return 0;
    }
    PyObject *calls = NULL;
    if (!held && !(calls = begin_call(reader)))
        return -1;
    Py_BEGIN_ALLOW_THREADS *rc = fn(h, buf, size, ci);
    Py_END_ALLOW_THREADS return calls ? end_call(calls) : 0;
}

static int parse_how(PyObject *o, read_fn *fn)
{
    long how = PyLong_AsLong(o);
    if (how == -1 && PyErr_Occurred())
        return -1;
    if (how != 0 && how != 1) {
        PyErr_SetString(PyExc_ValueError, "how must be 0 (latest) or 1 (next)");
        return -1;
    }
    *fn = how ? ndshm_read_next : ndshm_read_latest;
    return 0;
}

/* ----- read(reader, how, out) ---------------------------------------------------------- */
static PyObject *read_into(PyObject *reader, read_fn fn, ndshm_reader *h, PyObject *out_o)
{
    if (!PyArray_Check(out_o)) {
        PyErr_Format(PyExc_TypeError, "out must be a numpy.ndarray, not %s",
                     Py_TYPE(out_o)->tp_name);
        return NULL;
    }
    PyArrayObject *out = (PyArrayObject *)out_o;
    if (!PyArray_IS_C_CONTIGUOUS(out) || !PyArray_ISWRITEABLE(out)) {
        PyErr_SetString(PyExc_ValueError, "out must be a writable C-contiguous array");
        return NULL;
    }
    size_t nbytes = (size_t)PyArray_NBYTES(out);
    ndshm_info ci;
    int rc;
    if (call_read(reader, fn, h, PyArray_DATA(out), nbytes, &ci, &rc, 0) < 0)
        return NULL;
    if (rc == NDSHM_E_TOO_SMALL)
        return PyErr_Format(PyExc_ValueError,
                            "out holds %zu bytes, the array needs %llu (nothing was read; "
                            "the reader did not advance)",
                            nbytes, (unsigned long long)ci.nbytes);
    if (rc < 0)
        return raise_rc(reader, rc, "read");
    if (rc > 0)
        return no_array(rc);
    PyArray_Descr *dt = dtype_for(ci.dtype);
    if (!dt)
        return NULL;
    int same = PyArray_EquivTypes(PyArray_DESCR(out), dt) &&
               (uint32_t)PyArray_NDIM(out) == ci.ndim && ci.ndim <= NDSHM_MAX_DIMS;
    Py_DECREF(dt);
    for (uint32_t i = 0; same && i < ci.ndim; i++)
        same = (uint64_t)PyArray_DIM(out, (int)i) == ci.shape[i];
    PyObject *arr;
    if (same) {
        Py_INCREF(out_o);
        arr = out_o;
    } else {
        arr = array_over(&ci, PyArray_DATA(out), NPY_ARRAY_WRITEABLE, out_o);
        if (!arr)
            return NULL;
    }
    PyObject *info = new_info(&ci);
    if (!info) {
        Py_DECREF(arr);
        return NULL;
    }
    PyObject *t = PyTuple_New(3);
    if (!t) {
        Py_DECREF(arr);
        Py_DECREF(info);
        return NULL;
    }
    Py_INCREF(g_status[0]);
    PyTuple_SET_ITEM(t, 0, g_status[0]);
    PyTuple_SET_ITEM(t, 1, arr);
    PyTuple_SET_ITEM(t, 2, info);
    return t;
}

/* Without out=: as core.Reader._read, a buffer sized from the previous read (reader._size),
 * the reader's spare buffer reused, grown on E_TOO_SMALL. */
static PyObject *read_alloc_held(PyObject *reader, read_fn fn, ndshm_reader *h)
{
    PyObject *size_o = PyObject_GetAttr(reader, s_size);
    if (!size_o)
        return NULL;
    Py_ssize_t size = PyLong_AsSsize_t(size_o);
    Py_DECREF(size_o);
    if (size < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "reader._size out of range");
        return NULL;
    }
    PyObject *spare = PyObject_GetAttr(reader, s_spare); /* swapped out with the GIL held */
    if (!spare || PyObject_SetAttr(reader, s_spare, Py_None) < 0) {
        Py_XDECREF(spare);
        return NULL;
    }
    PyArrayObject *buf = NULL;
    if (spare != Py_None && PyArray_Check(spare) && PyArray_NBYTES((PyArrayObject *)spare) >= size)
        buf = (PyArrayObject *)spare;
    else
        Py_DECREF(spare);
    ndshm_info ci;
    int rc = 0;
    for (int attempt = 0; attempt < 64; attempt++) {
        if (!buf) {
            npy_intp n = (npy_intp)size;
            buf = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_UINT8);
            if (!buf)
                return NULL;
        }
        if (call_read(reader, fn, h, PyArray_DATA(buf), (size_t)PyArray_NBYTES(buf), &ci, &rc, 1) <
            0) {
            Py_DECREF(buf);
            return NULL;
        }
        if (rc != NDSHM_E_TOO_SMALL)
            break;
        uint64_t want = attempt == 0 ? (ci.nbytes > 64 ? ci.nbytes : 64)
                                     : (ci.nbytes > 2 * (uint64_t)PyArray_NBYTES(buf)
                                            ? ci.nbytes
                                            : 2 * (uint64_t)PyArray_NBYTES(buf));
        if (want > (uint64_t)NPY_MAX_INTP) {
            Py_DECREF(buf);
            return PyErr_NoMemory();
        }
        size = (Py_ssize_t)want;
        Py_DECREF(buf);
        buf = NULL;
    }
    if (rc != 0) {
        int err = PyObject_SetAttr(reader, s_spare, (PyObject *)buf);
        Py_DECREF(buf);
        if (err < 0)
            return NULL;
        if (rc < 0)
            return raise_rc(reader, rc, "read");
        return no_array(rc);
    }
    PyObject *nsize = PyLong_FromUnsignedLongLong(ci.nbytes > 64 ? ci.nbytes : 64);
    if (!nsize || PyObject_SetAttr(reader, s_size, nsize) < 0) {
        Py_XDECREF(nsize);
        Py_DECREF(buf);
        return NULL;
    }
    Py_DECREF(nsize);
    PyObject *arr = NULL;
    if (ci.nbytes > (uint64_t)PyArray_NBYTES(buf))
        PyErr_SetString(PyExc_SystemError, "ndshm: read larger than its buffer");
    else
        arr = array_over(&ci, PyArray_DATA(buf), NPY_ARRAY_WRITEABLE, (PyObject *)buf);
    Py_DECREF(buf);
    if (!arr)
        return NULL;
    PyObject *info = new_info(&ci);
    if (!info) {
        Py_DECREF(arr);
        return NULL;
    }
    PyObject *t = PyTuple_Pack(3, g_status[0], arr, info);
    Py_DECREF(arr);
    Py_DECREF(info);
    return t;
}

/* The whole of read_alloc under one _calls entry: its retries may release the GIL more than
 * once, and the handle must stay open between them (as core.Reader._read). */
static PyObject *read_alloc(PyObject *reader, read_fn fn, ndshm_reader *h)
{
    PyObject *calls = begin_call(reader);
    if (!calls)
        return NULL;
    PyObject *res = read_alloc_held(reader, fn, h);
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    int err = end_call(calls);
    if (err < 0) {
        Py_CLEAR(res);
        Py_XDECREF(et);
        Py_XDECREF(ev);
        Py_XDECREF(tb);
        return NULL;
    }
    PyErr_Restore(et, ev, tb);
    return res;
}

static PyObject *fast_read(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    read_fn fn;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "read(reader, how, out)");
        return NULL;
    }
    if (not_ready() || parse_how(args[1], &fn) < 0)
        return NULL;
    ndshm_reader *h = handle_of(args[0]);
    if (!h)
        return NULL;
    if (args[2] == Py_None)
        return read_alloc(args[0], fn, h);
    return read_into(args[0], fn, h, args[2]);
}

/* ----- view(reader, how) --------------------------------------------------------------- */
static PyObject *fast_view(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "view(reader, how)");
        return NULL;
    }
    if (not_ready())
        return NULL;
    long how = PyLong_AsLong(args[1]);
    if (how == -1 && PyErr_Occurred())
        return NULL;
    if (how != 0 && how != 1) {
        PyErr_SetString(PyExc_ValueError, "how must be 0 (latest) or 1 (next)");
        return NULL;
    }
    ndshm_reader *h = handle_of(args[0]);
    if (!h)
        return NULL;
    ViewObject *v = PyObject_New(ViewObject, &ViewType);
    if (!v)
        return NULL;
    v->live = 0;
    v->weakrefs = NULL;
    int rc = how ? ndshm_view_next(h, &v->v) : ndshm_view_latest(h, &v->v);
    if (rc != NDSHM_OK) {
        Py_DECREF(v);
        if (rc < 0)
            return raise_rc(args[0], rc, "view");
        return no_array(rc);
    }
    v->live = 1;
    PyObject *arr = array_over(&v->v.info, (void *)(uintptr_t)v->v.data, 0, (PyObject *)v);
    if (!arr) {
        Py_DECREF(v);
        return NULL;
    }
    PyObject *info = new_info(&v->v.info);
    Py_DECREF(v); /* the array holds it */
    if (!info) {
        Py_DECREF(arr);
        return NULL;
    }
    PyObject *t = PyTuple_New(3);
    if (!t) {
        Py_DECREF(arr);
        Py_DECREF(info);
        return NULL;
    }
    Py_INCREF(g_status[0]);
    PyTuple_SET_ITEM(t, 0, g_status[0]);
    PyTuple_SET_ITEM(t, 1, arr);
    PyTuple_SET_ITEM(t, 2, info);
    return t;
}

/* ----- setup, module ------------------------------------------------------------------- */
static int take_seq(PyObject *seq, PyObject **dst, Py_ssize_t n, int allow_none, const char *what)
{
    if (!PyTuple_Check(seq) || PyTuple_GET_SIZE(seq) != n) {
        PyErr_Format(PyExc_TypeError, "setup: %s must be a tuple of %zd", what, n);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = PyTuple_GET_ITEM(seq, i);
        if (o == Py_None && allow_none)
            o = NULL;
        else if (o == Py_None) {
            PyErr_Format(PyExc_TypeError, "setup: %s[%zd] is None", what, i);
            return -1;
        }
        Py_XINCREF(o);
        Py_XSETREF(dst[i], o);
    }
    return 0;
}

static PyObject *fast_setup(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *status, *status_fn, *error_fn, *dtypes, *flags, *flags_type, *info_type;
    if (!PyArg_ParseTuple(args, "O!OOO!O!OO!:setup", &PyTuple_Type, &status, &status_fn, &error_fn,
                          &PyTuple_Type, &dtypes, &PyTuple_Type, &flags, &flags_type, &PyType_Type,
                          &info_type))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)info_type, &InfoType)) {
        PyErr_SetString(PyExc_TypeError, "setup: info_type must subclass ndshm._fast.Info");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(dtypes); i++) {
        PyObject *d = PyTuple_GET_ITEM(dtypes, i);
        if (d != Py_None && !PyArray_DescrCheck(d)) {
            PyErr_SetString(PyExc_TypeError, "setup: dtypes must be numpy dtypes or None");
            return NULL;
        }
    }
    if (!PyCallable_Check(status_fn) || !PyCallable_Check(error_fn) ||
        !PyCallable_Check(flags_type)) {
        PyErr_SetString(PyExc_TypeError, "setup: status_fn, error_fn, flags_type: callables");
        return NULL;
    }
    if (take_seq(status, g_status, N_STATUS, 0, "statuses") < 0 ||
        take_seq(dtypes, g_dtype, N_DTYPES, 1, "dtypes") < 0 ||
        take_seq(flags, g_flags, 8, 0, "flags") < 0)
        return NULL;
    Py_INCREF(status_fn);
    Py_XSETREF(g_status_fn, status_fn);
    Py_INCREF(error_fn);
    Py_XSETREF(g_error_fn, error_fn);
    Py_INCREF(flags_type);
    Py_XSETREF(g_flags_type, flags_type);
    Py_INCREF(info_type);
    Py_XSETREF(g_info_type, (PyTypeObject *)info_type);
    g_ready = 1;
    Py_RETURN_NONE;
}

static PyObject *fast_symbol(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return PyLong_FromVoidPtr((void *)(uintptr_t)&ndshm_read_latest);
}

/* ----- bench_c(writer_h, reader_h, out, n, what): the C reference of bench_py.py --------
 * n times: publish out's bytes as a uint8 array, then time one ndshm_read_latest into out
 * (what 0) or one ndshm_view_latest + ndshm_view_release (what 1) with CLOCK_MONOTONIC
 * around it; what 2 times an empty pair of clock reads. Returns the n durations (ns) as a
 * list: the C call cost in the same process and cache state as the Python calls measured
 * beside it. Not API (bench/python/bench_py.py, "per call"). */
static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static PyObject *fast_bench_c(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *wh, *rh, *out_o;
    Py_ssize_t n;
    int what;
    if (!PyArg_ParseTuple(args, "OOOni:bench_c", &wh, &rh, &out_o, &n, &what))
        return NULL;
    void *w = wh == Py_None ? NULL : PyLong_AsVoidPtr(wh);
    void *r = rh == Py_None ? NULL : PyLong_AsVoidPtr(rh);
    if (PyErr_Occurred())
        return NULL;
    if (!w || !r || n < 0 || what < 0 || what > 2) {
        PyErr_SetString(PyExc_ValueError, "bench_c: open writer and reader handles, n >= 0, "
                                          "what 0 (read), 1 (view) or 2 (clock)");
        return NULL;
    }
    if (!PyArray_Check(out_o) || !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)out_o) ||
        !PyArray_ISWRITEABLE((PyArrayObject *)out_o)) {
        PyErr_SetString(PyExc_ValueError, "bench_c: out must be a writable C-contiguous array");
        return NULL;
    }
    PyArrayObject *out = (PyArrayObject *)out_o;
    uint64_t shape[1] = {(uint64_t)PyArray_NBYTES(out)};
    PyObject *res = PyList_New(n);
    if (!res)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        int rc = ndshm_publish((ndshm_writer *)w, NDSHM_UINT8, 1, shape, PyArray_DATA(out), NULL);
        uint64_t t0 = 0, t1 = 0;
        if (rc == NDSHM_OK) {
            ndshm_info ci;
            ndshm_view v;
            t0 = mono_ns();
            if (what == 0)
                rc = ndshm_read_latest((ndshm_reader *)r, PyArray_DATA(out), (size_t)shape[0], &ci);
            else if (what == 1 && (rc = ndshm_view_latest((ndshm_reader *)r, &v)) == NDSHM_OK)
                rc = ndshm_view_release(&v);
            t1 = mono_ns();
        }
        if (rc != NDSHM_OK) {
            Py_DECREF(res);
            return PyErr_Format(PyExc_RuntimeError, "bench_c: %s (%s)", ndshm_strerror(rc),
                                ndshm_status_name(rc));
        }
        PyObject *d = PyLong_FromUnsignedLongLong(t1 - t0);
        if (!d) {
            Py_DECREF(res);
            return NULL;
        }
        PyList_SET_ITEM(res, i, d);
    }
    return res;
}

static PyMethodDef fast_methods[] = {
    {"read", (PyCFunction)(void (*)(void))fast_read, METH_FASTCALL,
     "read(reader, how, out): Reader.read (how 0) / read_next (how 1)."},
    {"view", (PyCFunction)(void (*)(void))fast_view, METH_FASTCALL,
     "view(reader, how): Reader.view (how 0) / view_next (how 1)."},
    {"setup", fast_setup, METH_VARARGS,
     "setup(statuses, status_fn, error_fn, dtypes, flags, flags_type, info_type)."},
    {"bench_c", fast_bench_c, METH_VARARGS,
     "bench_c(writer_h, reader_h, out, n, what): C call durations (bench_py.py; not API)."},
    {"read_latest_address", fast_symbol, METH_NOARGS,
     "Address of the ndshm_read_latest this module calls (must be the ctypes one)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fast_module = {
    PyModuleDef_HEAD_INIT,
    "_fast",
    "The hot calls of ndshm's Python binding, in C.",
    -1,
    fast_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__fast(void);
PyMODINIT_FUNC PyInit__fast(void)
{
    import_array();
    if (PyType_Ready(&InfoType) < 0 || PyType_Ready(&ViewType) < 0)
        return NULL;
    if (!(s_h = PyUnicode_InternFromString("_h")) ||
        !(s_calls = PyUnicode_InternFromString("_calls")) ||
        !(s_name = PyUnicode_InternFromString("name")) ||
        !(s_size = PyUnicode_InternFromString("_size")) ||
        !(s_spare = PyUnicode_InternFromString("_spare")))
        return NULL;
    PyObject *m = PyModule_Create(&fast_module);
    if (!m)
        return NULL;
    Py_INCREF(&InfoType);
    Py_INCREF(&ViewType);
    if (PyModule_AddObject(m, "Info", (PyObject *)&InfoType) < 0 ||
        PyModule_AddObject(m, "View", (PyObject *)&ViewType) < 0 ||
        PyModule_AddIntConstant(m, "RELEASE_BYTES", (long)RELEASE_BYTES) < 0 ||
        PyModule_AddIntConstant(m, "INFO_SIZE", (long)sizeof(ndshm_info)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
