/* The native pricing core: billing.pricing's engine, for the tariffs and sessions most CDRs
 * have, in C. It is not a second definition of the rules: billing/pricing.py is, and
 * `price_session_cdr` there hands a session to this core only when its tariff and readings
 * are in scope; a property test holds the two to the same output, byte for byte
 * (billing/tests/test_pricing_native.py). docs/billing.md §8 gives the design.
 *
 * Scope (decided in Python, `_native_tariff`): restrictions on time of day, date, weekday and
 * reservation only; prices, VAT rates and bounds whose exact ratios fit in 64 bits; whole-Wh
 * readings. Arithmetic: exact rationals, 128-bit numerator and denominator, every operation
 * overflow-checked. An overflow returns None and the session is priced in Python instead.
 *
 * Time zones stay in Python: it passes, for the session's UTC days, the epoch microseconds
 * where local time reaches a tariff time or the offset changes, and the UTC offsets between
 * the offset changes. Time of day, date and weekday follow from those by arithmetic.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stdint.h>
#include <string.h>

typedef __int128 i128;
typedef unsigned __int128 u128;

#define US_PER_DAY 86400000000LL
#define US_PER_HOUR 3600000000LL
#define NDIM 3 /* ENERGY, TIME, PARKING_TIME: priced per segment; FLAT once per session */
#define FLAT 3

/* --- exact rationals ---------------------------------------------------------------------- */

typedef struct {
    i128 n, d; /* d > 0, gcd(n, d) == 1 */
} Q;

static int overflow; /* set by any operation that does not fit; the GIL is held throughout */

static inline i128 mul(i128 a, i128 b) {
    i128 r;
    if (__builtin_mul_overflow(a, b, &r)) {
        overflow = 1;
        return 0;
    }
    return r;
}

static inline i128 add(i128 a, i128 b) {
    i128 r;
    if (__builtin_add_overflow(a, b, &r)) {
        overflow = 1;
        return 0;
    }
    return r;
}

static inline uint64_t gcd64(uint64_t a, uint64_t b) {
    if (!a) return b;
    if (!b) return a;
    int shift = __builtin_ctzll(a | b);
    a >>= __builtin_ctzll(a);
    do {
        b >>= __builtin_ctzll(b);
        if (a > b) {
            uint64_t t = b;
            b = a;
            a = t;
        }
        b -= a;
    } while (b);
    return a << shift;
}

static u128 ugcd(u128 a, u128 b) {
    while (b) {
        if ((a >> 64) == 0 && (b >> 64) == 0) return gcd64((uint64_t)a, (uint64_t)b);
        u128 t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static inline u128 uabs(i128 v) { return v < 0 ? (u128)0 - (u128)v : (u128)v; }

/* Most values fit in 64 bits: divide there (a 128-bit division is a library call). */
static inline void udivmod(u128 x, u128 d, u128 *q, u128 *r) {
    if ((x >> 64) == 0 && (d >> 64) == 0) {
        uint64_t a = (uint64_t)x, b = (uint64_t)d;
        *q = a / b;
        *r = a % b;
    } else {
        *q = x / d;
        *r = x % d;
    }
}

static inline i128 sdiv_exact(i128 n, i128 g) { /* n / g, g > 0 divides n */
    u128 q, r;
    udivmod(uabs(n), (u128)g, &q, &r);
    return n < 0 ? -(i128)q : (i128)q;
}

static inline i128 gcd(i128 a, i128 b) { return (i128)ugcd(uabs(a), uabs(b)); }

static Q q_make(i128 n, i128 d) {
    if (d == 0) { /* only after an overflow: keep every later step free of a division by zero */
        overflow = 1;
        return (Q){0, 1};
    }
    if (d < 0) {
        n = -n;
        d = -d;
    }
    if (n == 0) return (Q){0, 1};
    if (d != 1) {
        i128 g = gcd(n, d);
        if (g > 1) {
            n = sdiv_exact(n, g);
            d = sdiv_exact(d, g);
        }
    }
    return (Q){n, d};
}

static inline Q q_int(i128 n) { return (Q){n, 1}; }

static Q q_add(Q a, Q b) {
    if (b.n == 0) return a;
    if (a.n == 0) return b;
    if (a.d == b.d) return q_make(add(a.n, b.n), a.d);
    i128 g = gcd(a.d, b.d);
    i128 ad = sdiv_exact(a.d, g), bd = sdiv_exact(b.d, g);
    return q_make(add(mul(a.n, bd), mul(b.n, ad)), mul(a.d, bd));
}

static Q q_sub(Q a, Q b) {
    b.n = -b.n;
    return q_add(a, b);
}

static Q q_mul(Q a, Q b) {
    if (a.n == 0 || b.n == 0) return (Q){0, 1};
    i128 g1 = gcd(a.n, b.d), g2 = gcd(b.n, a.d);
    Q r = {mul(sdiv_exact(a.n, g1), sdiv_exact(b.n, g2)), mul(sdiv_exact(a.d, g2), sdiv_exact(b.d, g1))};
    return overflow ? (Q){0, 1} : r;
}

static inline Q q_ratio(i128 n, i128 d) { return q_make(n, d); }

static int q_cmp(Q a, Q b) {
    i128 l = mul(a.n, b.d), r = mul(b.n, a.d);
    return (l > r) - (l < r);
}

/* --- text --------------------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
} Buf;

static int buf_grow(Buf *b, size_t more) {
    if (b->len + more <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more) cap *= 2;
    char *p = PyMem_Realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int put(Buf *b, const char *s, size_t n) {
    if (buf_grow(b, n)) return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

#define PUTS(b, s) put((b), (s), sizeof(s) - 1)

static int put_u128(Buf *b, u128 v) {
    char tmp[48];
    int i = 48;
    while (v >> 64) {
        tmp[--i] = (char)('0' + (int)(v % 10));
        v /= 10;
    }
    uint64_t w = (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + (int)(w % 10));
        w /= 10;
    } while (w);
    return put(b, tmp + i, 48 - i);
}

/* value / per with six decimals, ties to even, trailing zeros dropped (pricing._display) */
static int put_display(Buf *b, Q v, i128 per) {
    i128 den = mul(v.d, per);
    u128 x = (u128)mul((i128)uabs(v.n), 1000000);
    if (overflow) return 0;
    u128 d = (u128)den, q, r;
    udivmod(x, d, &q, &r);
    if (2 * r > d || (2 * r == d && (q & 1))) q++;
    if (v.n < 0 && q) PUTS(b, "-");
    u128 whole = q / 1000000;
    unsigned frac = (unsigned)(q % 1000000);
    if (put_u128(b, whole)) return -1;
    if (frac) {
        char tmp[8];
        int n = 6;
        while (frac % 10 == 0) {
            frac /= 10;
            n--;
        }
        tmp[0] = '.';
        for (int i = n; i >= 1; i--) {
            tmp[i] = (char)('0' + frac % 10);
            frac /= 10;
        }
        if (put(b, tmp, n + 1)) return -1;
    }
    return 0;
}

static i128 ten_to(int places) {
    i128 p = 1;
    for (int i = 0; i < places; i++) p *= 10;
    return p;
}

/* an amount of `places` decimals held as an integer, as str(Decimal) writes it */
static int put_fixed(Buf *b, i128 units, int places) {
    if (units < 0) {
        if (PUTS(b, "-")) return -1;
        units = -units;
    }
    u128 whole, rest;
    udivmod((u128)units, (u128)ten_to(places), &whole, &rest);
    if (put_u128(b, whole)) return -1;
    if (places) {
        char tmp[24];
        uint64_t frac = (uint64_t)rest; /* below 10^places */
        tmp[0] = '.';
        for (int i = places; i >= 1; i--) {
            tmp[i] = (char)('0' + (int)(frac % 10));
            frac /= 10;
        }
        if (put(b, tmp, places + 1)) return -1;
    }
    return 0;
}

/* v to `places` decimals as an integer: half-up (ties away from zero) or half-even */
static i128 round_units(Q v, int places, int half_even) {
    u128 x = (u128)mul((i128)uabs(v.n), ten_to(places));
    if (overflow) return 0;
    u128 d = (u128)v.d, q, r;
    udivmod(x, d, &q, &r);
    if (half_even ? (2 * r > d || (2 * r == d && (q & 1))) : 2 * r >= d) q++;
    return v.n < 0 ? -(i128)q : (i128)q;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t year = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(year + (*m <= 2));
}

static inline int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* an epoch instant as pricing._iso writes it (suffix "Z": 2026-10-01T06:00:00Z, .ffffff when
 * not whole), or as datetime.isoformat() writes a UTC time (suffix "+00:00") */
static int put_iso(Buf *b, int64_t epoch_us, const char *suffix) {
    int64_t day = floor_div(epoch_us, US_PER_DAY);
    int64_t in_day = epoch_us - day * US_PER_DAY;
    int y;
    unsigned m, d;
    civil_from_days(day, &y, &m, &d);
    int64_t secs = in_day / 1000000;
    int us = (int)(in_day % 1000000);
    if (y < 1 || y > 9999) { /* outside datetime's range: Python never gets here */
        overflow = 1;
        return 0;
    }
    char tmp[32];
    int fields[6] = {y, (int)m, (int)d, (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60)};
    static const char seps[] = "--T::";
    int n = 0;
    tmp[n++] = (char)('0' + y / 1000);
    tmp[n++] = (char)('0' + y / 100 % 10);
    tmp[n++] = (char)('0' + y / 10 % 10);
    tmp[n++] = (char)('0' + y % 10);
    for (int i = 1; i < 6; i++) {
        tmp[n++] = seps[i - 1];
        tmp[n++] = (char)('0' + fields[i] / 10);
        tmp[n++] = (char)('0' + fields[i] % 10);
    }
    if (us) {
        tmp[n++] = '.';
        for (int i = 5; i >= 0; i--) {
            tmp[n + i] = (char)('0' + us % 10);
            us /= 10;
        }
        n += 6;
    }
    for (const char *c = suffix; *c; c++) tmp[n++] = *c;
    return put(b, tmp, (size_t)n);
}

/* --- the compiled tariff ------------------------------------------------------------------ */

typedef struct {
    int has_time;
    int64_t start_tod, end_tod; /* µs of the local day */
    int has_start_date, has_end_date;
    int64_t start_day, end_day; /* local days since 1970-01-01 */
    int dow_mask;               /* bit 0 = Monday; 0 = any day */
    int reservation;
} Restr;

typedef struct {
    int element, restr; /* restr: index into restrictions, -1 for none */
    Q price;
    int rate;
    int64_t step;
    const char *json; /* component JSON up to its volume (FLAT: all of it) */
    Py_ssize_t json_len;
} Cand;

typedef struct {
    PyObject *spec; /* owns the strings the pointers below point into */
    int places, needs_local;
    const char *head;
    Py_ssize_t head_len;
    Restr *restr;
    Py_ssize_t nrestr;
    Cand *cands[4];
    Py_ssize_t ncands[4];
    Q *rates;
    const char **rate_text;
    Py_ssize_t *rate_len, nrates;
    int first_rate;
    int has_min, has_max;
    Q min_price, max_price;
    i128 min_units, max_units;
} Tariff;

static void tariff_free(PyObject *capsule) {
    Tariff *t = PyCapsule_GetPointer(capsule, "evcharge.pricing_core.Tariff");
    if (!t) return;
    for (int i = 0; i < 4; i++) PyMem_Free(t->cands[i]);
    PyMem_Free(t->restr);
    PyMem_Free(t->rates);
    PyMem_Free(t->rate_text);
    PyMem_Free(t->rate_len);
    Py_XDECREF(t->spec);
    PyMem_Free(t);
}

static int as_i64(PyObject *o, int64_t *out) {
    int over = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &over);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (over) return 1;
    *out = v;
    return 0;
}

static int as_q(PyObject *num, PyObject *den, Q *out) {
    int64_t n, d;
    int r = as_i64(num, &n);
    if (r) return r;
    if ((r = as_i64(den, &d))) return r;
    if (d == 0) {
        PyErr_SetString(PyExc_ValueError, "zero denominator");
        return -1;
    }
    *out = q_make(n, d);
    return 0;
}

/* compile_tariff(places, needs_local, head, restrictions, candidates, rates, first_rate,
 *                min, max) -> capsule, or None when a number does not fit in 64 bits.
 * restrictions: [(has_time, start_tod, end_tod, has_sd, sd, has_ed, ed, dow_mask, reservation)]
 * candidates: 4 lists (ENERGY, TIME, PARKING_TIME, FLAT) of
 *             (element, restriction or -1, price num, price den, rate, step, json bytes)
 * rates: [(num, den, text bytes)]; min / max: None or (num, den, rounded minor units) */
static PyObject *compile_tariff(PyObject *self, PyObject *args) {
    int places, needs_local, first_rate;
    PyObject *head, *restrs, *cands, *rates, *minp, *maxp;
    if (!PyArg_ParseTuple(args, "iiSO!O!O!iOO", &places, &needs_local, &head, &PyTuple_Type, &restrs,
                          &PyTuple_Type, &cands, &PyTuple_Type, &rates, &first_rate, &minp, &maxp))
        return NULL;
    if (PyTuple_GET_SIZE(cands) != 4) {
        PyErr_SetString(PyExc_ValueError, "candidates: four tuples");
        return NULL;
    }
    if (places < 0 || places > 17) { /* VAT bases have places + 2 decimals: 10^19 < 2^64 */
        PyErr_SetString(PyExc_ValueError, "places out of range");
        return NULL;
    }
    Tariff *t = PyMem_Calloc(1, sizeof(Tariff));
    if (!t) return PyErr_NoMemory();
    PyObject *capsule = PyCapsule_New(t, "evcharge.pricing_core.Tariff", tariff_free);
    if (!capsule) {
        PyMem_Free(t);
        return NULL;
    }
    t->spec = args;
    Py_INCREF(args);
    t->places = places;
    t->needs_local = needs_local;
    t->first_rate = first_rate;
    t->head = PyBytes_AS_STRING(head);
    t->head_len = PyBytes_GET_SIZE(head);
    int r = 0;

    t->nrestr = PyTuple_GET_SIZE(restrs);
    t->restr = PyMem_Calloc(t->nrestr + 1, sizeof(Restr));
    if (!t->restr) goto nomem;
    for (Py_ssize_t i = 0; i < t->nrestr; i++) {
        Restr *x = &t->restr[i];
        long long v[9];
        PyObject *item = PyTuple_GET_ITEM(restrs, i);
        if (!PyTuple_Check(item) ||
            !PyArg_ParseTuple(item, "LLLLLLLLL", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8]))
            goto fail;
        x->has_time = (int)v[0];
        x->start_tod = v[1];
        x->end_tod = v[2];
        x->has_start_date = (int)v[3];
        x->start_day = v[4];
        x->has_end_date = (int)v[5];
        x->end_day = v[6];
        x->dow_mask = (int)v[7];
        x->reservation = (int)v[8];
    }
    for (int k = 0; k < 4; k++) {
        PyObject *list = PyTuple_GET_ITEM(cands, k);
        if (!PyTuple_Check(list)) {
            PyErr_SetString(PyExc_TypeError, "candidates: tuples");
            goto fail;
        }
        t->ncands[k] = PyTuple_GET_SIZE(list);
        t->cands[k] = PyMem_Calloc(t->ncands[k] + 1, sizeof(Cand));
        if (!t->cands[k]) goto nomem;
        for (Py_ssize_t i = 0; i < t->ncands[k]; i++) {
            Cand *c = &t->cands[k][i];
            PyObject *num, *den, *json;
            long long step;
            PyObject *item = PyTuple_GET_ITEM(list, i);
            if (!PyTuple_Check(item) ||
                !PyArg_ParseTuple(item, "iiOOiLS", &c->element, &c->restr, &num, &den, &c->rate, &step, &json))
                goto fail;
            if ((r = as_q(num, den, &c->price))) goto out_of_range;
            c->step = step;
            c->json = PyBytes_AS_STRING(json);
            c->json_len = PyBytes_GET_SIZE(json);
            if (c->restr < -1 || c->restr >= t->nrestr || c->rate < 0 || c->rate >= PyTuple_GET_SIZE(rates) ||
                c->step < 1) {
                PyErr_SetString(PyExc_ValueError, "candidate out of range");
                goto fail;
            }
        }
    }
    t->nrates = PyTuple_GET_SIZE(rates);
    t->rates = PyMem_Calloc(t->nrates + 1, sizeof(Q));
    t->rate_text = PyMem_Calloc(t->nrates + 1, sizeof(char *));
    t->rate_len = PyMem_Calloc(t->nrates + 1, sizeof(Py_ssize_t));
    if (!t->rates || !t->rate_text || !t->rate_len) goto nomem;
    for (Py_ssize_t i = 0; i < t->nrates; i++) {
        PyObject *num, *den, *text;
        PyObject *item = PyTuple_GET_ITEM(rates, i);
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "OOS", &num, &den, &text)) goto fail;
        if ((r = as_q(num, den, &t->rates[i]))) goto out_of_range;
        t->rate_text[i] = PyBytes_AS_STRING(text);
        t->rate_len[i] = PyBytes_GET_SIZE(text);
    }
    if (first_rate < 0 || first_rate >= t->nrates) {
        PyErr_SetString(PyExc_ValueError, "first_rate out of range");
        goto fail;
    }
    PyObject *bounds[2] = {minp, maxp};
    for (int k = 0; k < 2; k++) {
        if (bounds[k] == Py_None) continue;
        PyObject *num, *den, *units;
        if (!PyTuple_Check(bounds[k]) || !PyArg_ParseTuple(bounds[k], "OOO", &num, &den, &units)) goto fail;
        Q *q = k ? &t->max_price : &t->min_price;
        int64_t u;
        if ((r = as_q(num, den, q)) || (r = as_i64(units, &u))) goto out_of_range;
        if (k) {
            t->has_max = 1;
            t->max_units = u;
        } else {
            t->has_min = 1;
            t->min_units = u;
        }
    }
    return capsule;
out_of_range:
    if (r < 0) goto fail;
    Py_DECREF(capsule);
    Py_RETURN_NONE;
nomem:
    PyErr_NoMemory();
fail:
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "compile_tariff: each part a tuple (see the source)");
    Py_DECREF(capsule);
    return NULL;
}

/* --- pricing ------------------------------------------------------------------------------ */

typedef struct {
    int64_t tod, day;
    int weekday; /* 0 = Monday */
} Local;

typedef struct {
    const int64_t *changes, *offsets;
    Py_ssize_t nchanges;
} Zone;

static Local local_at(const Zone *z, int64_t epoch_us) {
    /* the offset after the last change at or before the instant (bisect_right) */
    Py_ssize_t lo = 0, hi = z->nchanges;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (z->changes[mid] <= epoch_us)
            lo = mid + 1;
        else
            hi = mid;
    }
    int64_t local = epoch_us + z->offsets[lo];
    Local l;
    l.day = floor_div(local, US_PER_DAY);
    l.tod = local - l.day * US_PER_DAY;
    l.weekday = (int)(((l.day + 3) % 7 + 7) % 7);
    return l;
}

static int holds(const Restr *r, const Local *l) {
    if (r->reservation) return 0; /* reservation pricing never applies to a charging session */
    if (r->has_time) {
        if (r->start_tod < r->end_tod) {
            if (!(r->start_tod <= l->tod && l->tod < r->end_tod)) return 0;
        } else if (r->start_tod > r->end_tod && !(l->tod >= r->start_tod || l->tod < r->end_tod))
            return 0;
    }
    if (r->has_start_date && l->day < r->start_day) return 0;
    if (r->has_end_date && l->day >= r->end_day) return 0;
    if (r->dow_mask && !(r->dow_mask & (1 << l->weekday))) return 0;
    return 1;
}

typedef struct {
    int dim, cand;
} Choice;

typedef struct {
    int open, charging, n;
    int64_t a, b;
    Q energy;
    Choice choice[NDIM];
    Q volume[NDIM];
} Period;

typedef struct {
    const Tariff *t;
    Buf json;
    int64_t start_us;
    int nperiods;
    Q cost_exact;
    Q *by_rate;
} Run;

static int cmp_i64(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

typedef struct {
    int64_t t, e;
} Point;

static int cmp_point(const void *x, const void *y) {
    const Point *a = x, *b = y;
    if (a->t != b->t) return (a->t > b->t) - (a->t < b->t);
    return (a->e > b->e) - (a->e < b->e);
}

/* a priced component: its JSON, and its cost added to the totals */
static int put_component(Run *run, const Cand *c, Q volume) {
    Q cost = q_mul(volume, c->price);
    run->cost_exact = q_add(run->cost_exact, cost);
    run->by_rate[c->rate] = q_add(run->by_rate[c->rate], cost);
    Buf *b = &run->json;
    if (put(b, c->json, c->json_len) || put_display(b, volume, 1) || PUTS(b, "\",\"cost\":\"") ||
        put_display(b, cost, 1) || PUTS(b, "\"}"))
        return -1;
    return 0;
}

static int flush(Run *run, Period *p) {
    if (!p->open) return 0;
    Buf *b = &run->json;
    if (run->nperiods++ && PUTS(b, ",")) return -1;
    if (PUTS(b, "{\"start_date_time\":\"") || put_iso(b, run->start_us + p->a, "Z") ||
        PUTS(b, "\",\"end_date_time\":\"") || put_iso(b, run->start_us + p->b, "Z") ||
        PUTS(b, "\",\"dimensions\":[{\"type\":\"ENERGY\",\"volume\":\"") || put_display(b, p->energy, 1000) ||
        (p->charging ? PUTS(b, "\"},{\"type\":\"TIME\",\"volume\":\"")
                     : PUTS(b, "\"},{\"type\":\"PARKING_TIME\",\"volume\":\"")) ||
        put_display(b, q_int(p->b - p->a), US_PER_HOUR) || PUTS(b, "\"}],\"components\":["))
        return -1;
    for (int i = 0; i < p->n; i++) {
        if (i && PUTS(b, ",")) return -1;
        if (put_component(run, &run->t->cands[p->choice[i].dim][p->choice[i].cand], p->volume[i])) return -1;
    }
    p->open = 0;
    return PUTS(b, "]}");
}

/* energy (Wh since start) at instant t, in reading interval j (pricing.energy_at) */
static Q energy_at(const Point *pts, int64_t t, Py_ssize_t j) {
    const Point *p0 = &pts[j], *p1 = &pts[j + 1];
    if (t >= p1->t) return q_int(p1->e);
    return q_add(q_int(p0->e), q_ratio(mul(p1->e - p0->e, t - p0->t), p1->t - p0->t));
}

static PyObject *text(Buf *b) { return PyUnicode_DecodeASCII(b->p ? b->p : "", (Py_ssize_t)b->len, NULL); }

/* One session priced: `pts` holds its n readings (µs since start, clamped to the session; Wh
 * since meter start) with room for 3 more, and is freed here. zone: None, or (instants, changes,
 * offsets) as bytes of int64 (see pricing._native_zone). A tuple, or None when out of range. */
static PyObject *price_run(const Tariff *t, int64_t start_us, int64_t duration_us, Point *pts, Py_ssize_t n,
                           PyObject *zone_obj) {
    Zone zone = {NULL, NULL, 0};
    const int64_t *instants = NULL;
    Py_ssize_t ninstants = 0;
    if (t->needs_local) {
        PyObject *ins, *chg, *off;
        if (!PyTuple_Check(zone_obj) || !PyArg_ParseTuple(zone_obj, "SSS", &ins, &chg, &off)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "zone: a tuple of three bytes");
            PyMem_Free(pts);
            return NULL;
        }
        instants = (const int64_t *)PyBytes_AS_STRING(ins);
        ninstants = PyBytes_GET_SIZE(ins) / 8;
        zone.changes = (const int64_t *)PyBytes_AS_STRING(chg);
        zone.nchanges = PyBytes_GET_SIZE(chg) / 8;
        zone.offsets = (const int64_t *)PyBytes_AS_STRING(off);
        if (PyBytes_GET_SIZE(off) / 8 != zone.nchanges + 1) {
            PyErr_SetString(PyExc_ValueError, "zone: one offset more than changes");
            PyMem_Free(pts);
            return NULL;
        }
    }
    overflow = 0;
    PyObject *result = NULL;
    int64_t *cuts = PyMem_Malloc((n + ninstants + 4) * sizeof(int64_t));
    Q *by_rate = PyMem_Calloc(t->nrates + 1, sizeof(Q));
    Run run = {t, {NULL, 0, 0}, start_us, 0, {0, 1}, by_rate};
    if (!cuts || !by_rate) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < t->nrates; i++) by_rate[i] = (Q){0, 1};

    /* the energy curve (pricing._curve): the highest reading per instant, never going back */
    pts[n++] = (Point){0, INT64_MIN}; /* setdefault(0, 0): only if no reading at 0 (see below) */
    qsort(pts, n, sizeof(Point), cmp_point);
    Py_ssize_t m = 0;
    int64_t highest = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + 1 < n && pts[i + 1].t == pts[i].t) continue; /* the highest of an instant is last */
        int64_t e = pts[i].e == INT64_MIN ? 0 : pts[i].e;
        if (e > highest) highest = e;
        pts[m++] = (Point){pts[i].t, highest};
    }
    if (pts[m - 1].t < duration_us) pts[m++] = (Point){duration_us, highest};
    if (duration_us == 0) {
        pts[0] = (Point){0, 0};
        pts[1] = (Point){0, highest};
        m = 2;
    }
    Py_ssize_t npts = m, last_interval = npts - 2;

    /* the cuts (pricing._breakpoints): start, stop, where charging starts or stops, and the
     * tariff's local times strictly inside the session */
    Py_ssize_t ncuts = 0;
    cuts[ncuts++] = 0;
    cuts[ncuts++] = duration_us;
    cuts[ncuts++] = pts[0].t;
    cuts[ncuts++] = pts[npts - 1].t;
    for (Py_ssize_t i = 0; i + 2 < npts; i++)
        if ((pts[i + 1].e > pts[i].e) != (pts[i + 2].e > pts[i + 1].e)) cuts[ncuts++] = pts[i + 1].t;
    int64_t stop_us = start_us + duration_us;
    for (Py_ssize_t i = 0; i < ninstants; i++)
        if (instants[i] > start_us && instants[i] < stop_us) cuts[ncuts++] = instants[i] - start_us;
    qsort(cuts, ncuts, sizeof(int64_t), cmp_i64);
    Py_ssize_t u = 0;
    for (Py_ssize_t i = 0; i < ncuts; i++)
        if ((i == 0 || cuts[i] != cuts[i - 1]) && cuts[i] >= 0 && cuts[i] <= duration_us) cuts[u++] = cuts[i];
    ncuts = u;
    if (ncuts == 1) cuts[ncuts++] = cuts[0];

    if (put(&run.json, t->head, t->head_len)) goto nomem;
    Q volumes[NDIM] = {{0, 1}, {0, 1}, {0, 1}};
    int last_cand[NDIM] = {-1, -1, -1}, last_order[NDIM], nlast = 0;
    Q energy_total = {0, 1};
    int64_t charging_us = 0, parking_us = 0;
    Period pending = {0};
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i + 1 < ncuts; i++) {
        int64_t a = cuts[i], b = cuts[i + 1];
        while (k < last_interval && pts[k + 1].t <= a) k++;
        const Point *p0 = &pts[k], *p1 = &pts[k + 1];
        Q energy;
        if (b > a) {
            Py_ssize_t j = k;
            while (j < last_interval && pts[j + 1].t < b) j++;
            energy = q_sub(energy_at(pts, b, j), energy_at(pts, a, k));
        } else
            energy = q_int(p1->e - p0->e);
        int charging = p1->e > p0->e;
        Local local = {0, 0, 0};
        if (t->needs_local) local = local_at(&zone, start_us + ((a + b) >> 1));
        int64_t span = b - a;
        Q hours = q_ratio(span, US_PER_HOUR);
        energy_total = q_add(energy_total, energy);
        Q vols[NDIM];
        vols[0] = q_mul(energy, (Q){1, 1000});
        if (charging) {
            charging_us += span;
            vols[1] = hours;
            vols[2] = q_int(0);
        } else {
            parking_us += span;
            vols[1] = q_int(0);
            vols[2] = hours;
        }
        Choice choice[NDIM];
        int nchoice = 0;
        for (int dim = 0; dim < NDIM; dim++) {
            if (vols[dim].n == 0) continue; /* nothing of this dimension here */
            for (Py_ssize_t c = 0; c < t->ncands[dim]; c++) {
                const Cand *cand = &t->cands[dim][c];
                if (cand->restr < 0 || holds(&t->restr[cand->restr], &local)) {
                    choice[nchoice++] = (Choice){dim, (int)c};
                    volumes[dim] = q_add(volumes[dim], vols[dim]);
                    if (last_cand[dim] < 0) last_order[nlast++] = dim;
                    last_cand[dim] = (int)c;
                    break;
                }
            }
        }
        int same = pending.open && pending.charging == charging && pending.n == nchoice;
        for (int c = 0; same && c < nchoice; c++)
            same = pending.choice[c].dim == choice[c].dim &&
                   t->cands[choice[c].dim][pending.choice[c].cand].element ==
                       t->cands[choice[c].dim][choice[c].cand].element;
        if (same) {
            pending.b = b;
            pending.energy = q_add(pending.energy, energy);
            for (int c = 0; c < nchoice; c++)
                pending.volume[c] = q_add(pending.volume[c], vols[choice[c].dim]);
        } else {
            if (flush(&run, &pending)) goto nomem;
            pending.open = 1;
            pending.charging = charging;
            pending.n = nchoice;
            pending.a = a;
            pending.b = b;
            pending.energy = energy;
            for (int c = 0; c < nchoice; c++) {
                pending.choice[c] = choice[c];
                pending.volume[c] = vols[choice[c].dim];
            }
        }
        if (overflow) goto done;
    }
    if (flush(&run, &pending)) goto nomem;

    /* flat, priced at the session start */
    Buf *js = &run.json;
    const Cand *flat = NULL;
    if (t->ncands[FLAT]) {
        Local start_local = {0, 0, 0};
        if (t->needs_local) start_local = local_at(&zone, start_us);
        for (Py_ssize_t c = 0; c < t->ncands[FLAT]; c++) {
            const Cand *cand = &t->cands[FLAT][c];
            if (cand->restr < 0 || holds(&t->restr[cand->restr], &start_local)) {
                flat = cand;
                break;
            }
        }
    }
    if (PUTS(js, "],\"flat\":")) goto nomem;
    if (flat) {
        if (put(js, flat->json, flat->json_len)) goto nomem;
    } else if (PUTS(js, "null"))
        goto nomem;

    /* step sizes: each dimension's total rounded up, priced at its last component */
    if (PUTS(js, ",\"step_extras\":[")) goto nomem;
    int nextras = 0;
    for (int o = 0; o < nlast; o++) {
        int dim = last_order[o];
        const Cand *cand = &t->cands[dim][last_cand[dim]];
        i128 per = dim == 0 ? 1000 : 3600;
        Q base_units = q_mul(volumes[dim], q_int(per));
        /* ceil(base / step) * step, base >= 0 */
        i128 steps_den = mul(base_units.d, cand->step);
        if (overflow) goto done;
        i128 steps = add(base_units.n, steps_den - 1) / steps_den;
        Q stepped = q_int(mul(steps, cand->step));
        if (overflow) goto done;
        if (q_cmp(stepped, base_units) > 0) {
            Q extra = q_mul(q_sub(stepped, base_units), (Q){1, per});
            if (nextras++ && PUTS(js, ",")) goto nomem;
            if (put_component(&run, cand, extra)) goto nomem;
        }
    }
    if (flat) { /* after the extras, as pricing adds it */
        run.cost_exact = q_add(run.cost_exact, flat->price);
        by_rate[flat->rate] = q_add(by_rate[flat->rate], flat->price);
    }

    /* totals: one rounding half-up to the minor unit, then min/max, then VAT per rate */
    int places = t->places;
    i128 scale = ten_to(places);
    i128 total = round_units(run.cost_exact, places, 0);
    const char *applied = NULL;
    Q total_q = q_ratio(total, scale);
    if (t->has_min && q_cmp(total_q, t->min_price) < 0) {
        total = t->min_units;
        applied = "min_price";
    } else if (t->has_max && q_cmp(total_q, t->max_price) > 0) {
        total = t->max_units;
        applied = "max_price";
    }
    total_q = q_ratio(total, scale);
    if (overflow) goto done;

    Buf vat = {NULL, 0, 0};
    Q bases[64];
    int rate_of[64], nbases = 0;
    if (t->nrates > 64) {
        overflow = 1;
        goto done;
    }
    if (run.cost_exact.n != 0) {
        for (Py_ssize_t r = 0; r < t->nrates; r++) /* every rate a component had, even at no cost */
            rate_of[nbases] = (int)r, bases[nbases++] = q_mul(q_mul(by_rate[r], total_q),
                                                               (Q){run.cost_exact.d, run.cost_exact.n});
    } else if (total != 0) {
        rate_of[nbases] = t->first_rate;
        bases[nbases++] = total_q;
    }
    /* by rate, ascending (few rates: insertion sort) */
    for (int i = 1; i < nbases; i++)
        for (int j = i; j > 0 && q_cmp(t->rates[rate_of[j - 1]], t->rates[rate_of[j]]) > 0; j--) {
            Q tq = bases[j];
            bases[j] = bases[j - 1];
            bases[j - 1] = tq;
            int tr = rate_of[j];
            rate_of[j] = rate_of[j - 1];
            rate_of[j - 1] = tr;
        }
    i128 total_vat = 0;
    int nlines = 0;
    const char *single_rate = NULL;
    Py_ssize_t single_len = 0;
    if (PUTS(&vat, "[")) goto nomem_vat;
    for (int i = 0; i < nbases; i++) {
        if (bases[i].n == 0) continue;
        const Q *rate = &t->rates[rate_of[i]];
        i128 amount = round_units(q_mul(bases[i], q_make(rate->n, mul(rate->d, 100))), places, 0);
        i128 base = round_units(bases[i], places + 2, 1);
        total_vat = add(total_vat, amount);
        if (nlines++ && PUTS(&vat, ",")) goto nomem_vat;
        single_rate = t->rate_text[rate_of[i]];
        single_len = t->rate_len[rate_of[i]];
        if (PUTS(&vat, "{\"rate\":\"") || put(&vat, single_rate, single_len) || PUTS(&vat, "\",\"base\":\"") ||
            put_fixed(&vat, base, places + 2) || PUTS(&vat, "\",\"amount\":\"") || put_fixed(&vat, amount, places) ||
            PUTS(&vat, "\"}"))
            goto nomem_vat;
    }
    if (PUTS(&vat, "]")) goto nomem_vat;
    if (overflow) goto done_vat;

    Buf small[3] = {{NULL, 0, 0}, {NULL, 0, 0}, {NULL, 0, 0}};
    Buf *kwh = &small[0], *th = &small[1], *ph = &small[2];
    if (put_display(kwh, energy_total, 1000) || put_display(th, q_int(charging_us), US_PER_HOUR) ||
        put_display(ph, q_int(parking_us), US_PER_HOUR))
        goto nomem_small;
    if (PUTS(js, "],\"total_energy_kwh\":\"") || put(js, kwh->p, kwh->len) ||
        PUTS(js, "\",\"total_time_hours\":\"") || put(js, th->p, th->len) ||
        PUTS(js, "\",\"total_parking_time_hours\":\"") || put(js, ph->p, ph->len) ||
        PUTS(js, "\",\"total_cost_exact\":\"") || put_display(js, run.cost_exact, 1) ||
        PUTS(js, "\",\"min_max_applied\":") ||
        (applied ? (PUTS(js, "\"") || put(js, applied, strlen(applied)) || PUTS(js, "\""))
                 : PUTS(js, "null")) ||
        PUTS(js, ",\"vat\":") || put(js, vat.p, vat.len) || PUTS(js, ",\"total_excl_vat\":\"") ||
        put_fixed(js, total, places) || PUTS(js, "\",\"total_vat\":\"") || put_fixed(js, total_vat, places) ||
        PUTS(js, "\",\"total_incl_vat\":\"") || put_fixed(js, add(total, total_vat), places) || PUTS(js, "\"}"))
        goto nomem_small;
    if (!overflow) {
        /* Wh, half-up: floor((2 e + 1) / 2) */
        i128 num = add(mul(energy_total.n, 2), energy_total.d), den = mul(energy_total.d, 2);
        i128 wh = overflow ? 0 : num / den - (num % den != 0 && num < 0); /* floor, as Python's // */
        if (wh > INT64_MAX || wh < INT64_MIN) overflow = 1;
        Buf totals[3] = {{NULL, 0, 0}, {NULL, 0, 0}, {NULL, 0, 0}};
        if (put_fixed(&totals[0], total, places) || put_fixed(&totals[1], total_vat, places) ||
            put_fixed(&totals[2], add(total, total_vat), places)) {
            PyErr_NoMemory();
        } else if (!overflow) {
            result = Py_BuildValue("(NLNNNNNNNN)", text(js), (long long)wh, text(kwh), text(th), text(ph),
                                   text(&totals[0]), text(&totals[1]), text(&totals[2]), text(&vat),
                                   nlines == 1 ? PyUnicode_DecodeASCII(single_rate, single_len, NULL)
                                               : (Py_INCREF(Py_None), Py_None));
        }
        for (int i = 0; i < 3; i++) PyMem_Free(totals[i].p);
    }
    goto done_small;
nomem_small:
    PyErr_NoMemory();
done_small:
    for (int i = 0; i < 3; i++) PyMem_Free(small[i].p);
    goto done_vat;
nomem_vat:
    PyErr_NoMemory();
done_vat:
    PyMem_Free(vat.p);
    goto done;
nomem:
    PyErr_NoMemory();
done:
    PyMem_Free(pts);
    PyMem_Free(cuts);
    PyMem_Free(by_rate);
    PyMem_Free(run.json.p);
    if (!result && !PyErr_Occurred()) Py_RETURN_NONE; /* out of range: price it in Python */
    return result;
}

/* --- the session from Python's objects ------------------------------------------------------ */

static PyObject *str_timestamp, *str_wh, *str_as_integer_ratio, *str_utcoffset;

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* Epoch µs of a datetime with a fixed UTC offset (a datetime.timezone, as the database gives).
 * 0: done; 1: not in scope (a naive time, a ZoneInfo: the engine subtracts two times of one
 * ZoneInfo as wall clocks); -1: an error. */
static int epoch_us_of(PyObject *moment, int64_t *out) {
    if (!PyDateTime_CheckExact(moment)) return 1;
    PyObject *tz = PyDateTime_DATE_GET_TZINFO(moment);
    if (tz == Py_None || Py_TYPE(tz) != Py_TYPE(PyDateTime_TimeZone_UTC)) return 1;
    int64_t offset = 0;
    if (tz != PyDateTime_TimeZone_UTC) {
        PyObject *delta = PyObject_CallMethodObjArgs(tz, str_utcoffset, Py_None, NULL);
        if (!delta) return -1;
        if (!PyDelta_Check(delta)) {
            Py_DECREF(delta);
            return 1;
        }
        offset = ((int64_t)PyDateTime_DELTA_GET_DAYS(delta) * 86400 + PyDateTime_DELTA_GET_SECONDS(delta)) * 1000000 +
                 PyDateTime_DELTA_GET_MICROSECONDS(delta);
        Py_DECREF(delta);
    }
    int64_t day =
        days_from_civil(PyDateTime_GET_YEAR(moment), PyDateTime_GET_MONTH(moment), PyDateTime_GET_DAY(moment));
    int64_t tod = (int64_t)PyDateTime_DATE_GET_HOUR(moment) * 3600 + PyDateTime_DATE_GET_MINUTE(moment) * 60 +
                  PyDateTime_DATE_GET_SECOND(moment);
    *out = day * US_PER_DAY + tod * 1000000 + PyDateTime_DATE_GET_MICROSECOND(moment) - offset;
    return 0;
}

/* A whole number of Wh as int64: an int, or a number (a Decimal from the meter values) whose
 * as_integer_ratio() has denominator 1. 0: done; 1: not whole, or beyond 64 bits; -1: error. */
static int whole_of(PyObject *value, int64_t *out) {
    int r;
    if (PyLong_CheckExact(value)) return (r = as_i64(value, out)) < 0 ? -1 : r;
    PyObject *ratio = PyObject_CallMethodNoArgs(value, str_as_integer_ratio);
    if (!ratio) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError) || PyErr_ExceptionMatches(PyExc_ValueError) ||
            PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear(); /* Infinity, NaN, no ratio at all: not whole */
            return 1;
        }
        return -1;
    }
    int64_t den;
    if (!PyTuple_CheckExact(ratio) || PyTuple_GET_SIZE(ratio) != 2 || !PyLong_CheckExact(PyTuple_GET_ITEM(ratio, 0)) ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(ratio, 1)))
        r = 1;
    else if ((r = as_i64(PyTuple_GET_ITEM(ratio, 1), &den)) == 0 && den != 1)
        r = 1;
    else if (r == 0)
        r = as_i64(PyTuple_GET_ITEM(ratio, 0), out);
    Py_DECREF(ratio);
    return r < 0 ? -1 : r;
}

/* price_session(tariff, started_at, stopped_at, meter_start_wh, readings, zone_fn, zone, times)
 *   -> tuple, or None when the session is not in the core's scope or range (the engine prices
 *   it then, or gives its error). readings: pricing.Reading objects (timestamp, wh). When the
 *   tariff looks at local time: zone_fn(zone, first UTC day, last UTC day, times) gives the
 *   zone's tables (pricing._native_zone). */
static PyObject *price_session(PyObject *self, PyObject *args) {
    PyObject *capsule, *started, *stopped, *meter, *readings, *zone_fn, *zone, *times;
    if (!PyArg_ParseTuple(args, "OOOOOOOO", &capsule, &started, &stopped, &meter, &readings, &zone_fn, &zone, &times))
        return NULL;
    const Tariff *t = PyCapsule_GetPointer(capsule, "evcharge.pricing_core.Tariff");
    if (!t) return NULL;
    int64_t start_us, stop_us, meter_start;
    int r;
    if ((r = epoch_us_of(started, &start_us)) || (r = epoch_us_of(stopped, &stop_us)) ||
        (r = whole_of(meter, &meter_start)))
        goto declined;
    if (stop_us < start_us) Py_RETURN_NONE; /* the engine refuses it */
    int64_t duration_us = stop_us - start_us;
    PyObject *seq = PySequence_Fast(readings, "readings: a sequence");
    if (!seq) return NULL;
    Py_ssize_t nread = PySequence_Fast_GET_SIZE(seq);
    Point *pts = PyMem_Malloc((nread + 3) * sizeof(Point));
    if (!pts) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < nread && i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        Py_INCREF(item);
        PyObject *ts = PyObject_GetAttr(item, str_timestamp);
        PyObject *wh = ts ? PyObject_GetAttr(item, str_wh) : NULL;
        Py_DECREF(item);
        int64_t at, energy, since;
        r = !wh ? -1 : epoch_us_of(ts, &at);
        if (r == 0) r = whole_of(wh, &energy);
        if (r == 0 && __builtin_sub_overflow(energy, meter_start, &since)) r = 1;
        Py_XDECREF(ts);
        Py_XDECREF(wh);
        if (r) {
            PyMem_Free(pts);
            Py_DECREF(seq);
            goto declined;
        }
        int64_t offset = at - start_us; /* both within datetime's range: no overflow */
        pts[n++] = (Point){offset < 0 ? 0 : offset > duration_us ? duration_us : offset, since};
    }
    Py_DECREF(seq);
    PyObject *zone_obj = Py_None;
    Py_INCREF(zone_obj);
    if (t->needs_local) {
        Py_DECREF(zone_obj);
        zone_obj = PyObject_CallFunction(zone_fn, "OLLO", zone, (long long)floor_div(start_us, US_PER_DAY),
                                         (long long)floor_div(stop_us, US_PER_DAY), times);
        if (!zone_obj) {
            PyMem_Free(pts);
            return NULL;
        }
    }
    PyObject *result = price_run(t, start_us, duration_us, pts, n, zone_obj);
    Py_DECREF(zone_obj);
    if (!result || result == Py_None) return result;
    /* and the start and stop as the CDR row's text: UTC, as datetime.isoformat() writes it */
    PyObject *full = NULL;
    Buf when[2] = {{NULL, 0, 0}, {NULL, 0, 0}};
    overflow = 0;
    if (put_iso(&when[0], start_us, "+00:00") || put_iso(&when[1], stop_us, "+00:00")) {
        PyErr_NoMemory();
    } else if (overflow) { /* a year beyond 1-9999 in UTC: the engine decides */
        Py_INCREF(Py_None);
        full = Py_None;
    } else if ((full = PyTuple_New(PyTuple_GET_SIZE(result) + 2))) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(result); i++) {
            PyObject *item = PyTuple_GET_ITEM(result, i);
            Py_INCREF(item);
            PyTuple_SET_ITEM(full, i, item);
        }
        for (int i = 0; i < 2; i++) {
            PyObject *item = text(&when[i]);
            if (!item) {
                Py_CLEAR(full);
                break;
            }
            PyTuple_SET_ITEM(full, PyTuple_GET_SIZE(result) + i, item);
        }
    }
    PyMem_Free(when[0].p);
    PyMem_Free(when[1].p);
    Py_DECREF(result);
    return full;
declined:
    if (r < 0) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"compile_tariff", compile_tariff, METH_VARARGS, "A tariff in the core's form (see the source)."},
    {"price_session", price_session, METH_VARARGS, "Price one session; None when out of the core's scope."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pricing_core",
                                    "The native pricing core (see billing/native/pricing_core.c).", -1, methods};

PyMODINIT_FUNC PyInit__pricing_core(void) {
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI) return NULL;
    if (!(str_timestamp = PyUnicode_InternFromString("timestamp")) || !(str_wh = PyUnicode_InternFromString("wh")) ||
        !(str_as_integer_ratio = PyUnicode_InternFromString("as_integer_ratio")) ||
        !(str_utcoffset = PyUnicode_InternFromString("utcoffset")))
        return NULL;
    return PyModule_Create(&module);
}
