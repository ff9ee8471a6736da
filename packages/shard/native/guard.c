/*
 * Domicile statement guard: a loadable SQLite extension installed into every
 * tenant connection (better-sqlite3 exposes no authorizer, no sqlite3_limit and
 * no progress handler). See docs/statement-guard.md.
 *
 * Per connection it installs
 *   - an authorizer (ATTACH/DETACH/VACUUM INTO, PRAGMA allowlist, file-touching
 *     functions, virtual-table modules, the reserved `_domicile_` prefix,
 *     transaction control), bypassed while the connection is "trusted";
 *   - sqlite3_limit()s and defensive db_config flags;
 *   - a statement tracer (sqlite3_trace_v2) that tells the watchdog of its group
 *     when the outermost statement starts and ends;
 *   - the control function _domicile_guard(secret, op, arg).
 *
 * Threads: everything but the watchdog runs on the thread that owns the
 * connection. The watchdog reads a connection's running statement under its
 * group's mutex and calls sqlite3_interrupt() (safe from any thread). A
 * connection leaves its group in the control function's xDestroy, which SQLite
 * calls while closing the connection and before freeing it, so the watchdog
 * never touches a freed connection. Lock order: g_registry, then group->mu.
 */
#include "sqlite3ext.h"
SQLITE_EXTENSION_INIT1

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__APPLE__)
#include <sys/random.h>
#endif

/* The wrapper's only statement; its starts keep the denial it is about to read. */
#define CONTROL_SQL "SELECT _domicile_guard(?, ?, ?)"

#define RESERVED_PREFIX "_domicile_"
#define RESERVED_PREFIX_LEN 10

typedef struct Group Group;
typedef struct Conn Conn;

struct Conn {
  sqlite3 *db;
  Group *group;            /* set by the 'group' op; NULL: no watchdog */
  Conn *next;              /* group->conns list (group->mu) */

  /* Owner thread only. */
  int trusted;
  int txn;
  int claimed;
  char secret[33];
  char denial[192];        /* reason of the latest denial until read, "" if none */
  sqlite3_stmt *vacuum;    /* cur is a VACUUM whose internal statements run (see authorizer) */

  /* Written by the owner under group->mu (when in a group), read by the watchdog. */
  sqlite3_stmt *cur;       /* outermost running statement, NULL when idle */
  int64_t deadline_ns;     /* 0: no deadline for cur */
  int64_t timeout_ns;      /* applies from the next statement */
  int fired;               /* the watchdog interrupted cur */
  int timedout;            /* the watchdog interrupted a statement since the last read */
};

struct Group {
  sqlite3_int64 id;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  Conn *conns;
  int nconn;
  int stop;
  int64_t wake_at;         /* when the watchdog wakes next; 0: waiting for a statement */
  Group *next;             /* g_groups list (g_registry) */
};

static pthread_mutex_t g_registry = PTHREAD_MUTEX_INITIALIZER;
static Group *g_groups = 0;
static int g_threads = 0;  /* live watchdog threads, for tests and metrics */

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---------------------------------------------------------------- watchdog */

static void cond_wait_until(Group *g, int64_t at_ns) {
#if defined(__APPLE__)
  int64_t d = at_ns - mono_ns();
  if (d <= 0) return;
  struct timespec rel = { (time_t)(d / 1000000000LL), (long)(d % 1000000000LL) };
  pthread_cond_timedwait_relative_np(&g->cv, &g->mu, &rel);
#else
  struct timespec abs = { (time_t)(at_ns / 1000000000LL), (long)(at_ns % 1000000000LL) };
  pthread_cond_timedwait(&g->cv, &g->mu, &abs);
#endif
}

/*
 * Sleeps until the earliest deadline of a running statement (or until a
 * statement with an earlier deadline starts), never polls: with nothing
 * running it blocks on the condition variable.
 */
static void *watchdog_main(void *arg) {
  Group *g = (Group *)arg;
  pthread_mutex_lock(&g->mu);
  while (!g->stop) {
    int64_t now = mono_ns();
    int64_t next = 0;
    for (Conn *c = g->conns; c; c = c->next) {
      if (!c->cur || !c->deadline_ns || c->fired) continue;
      if (now >= c->deadline_ns) {
        c->fired = 1;
        c->timedout = 1;
        sqlite3_interrupt(c->db);
      } else if (!next || c->deadline_ns < next) {
        next = c->deadline_ns;
      }
    }
    g->wake_at = next;
    if (next) cond_wait_until(g, next);
    else pthread_cond_wait(&g->cv, &g->mu);
  }
  g->wake_at = 0;
  pthread_mutex_unlock(&g->mu);
  return 0;
}

static int group_init(Group *g) {
  pthread_condattr_t ca;
  if (pthread_mutex_init(&g->mu, 0)) return -1;
  pthread_condattr_init(&ca);
#if !defined(__APPLE__)
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
#endif
  int rc = pthread_cond_init(&g->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (rc) { pthread_mutex_destroy(&g->mu); return -1; }

  /* The watchdog must not take process signals meant for Node's threads. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t ta;
  pthread_attr_init(&ta);
  pthread_attr_setstacksize(&ta, 256 * 1024);
  rc = pthread_create(&g->thread, &ta, watchdog_main, g);
  pthread_attr_destroy(&ta);
  pthread_sigmask(SIG_SETMASK, &old, 0);
  if (rc) {
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    return -1;
  }
  return 0;
}

/* Remove c from its group; the last connection out stops and joins the thread. */
static void group_leave(Conn *c) {
  Group *g = c->group, *dead = 0;
  if (!g) return;
  pthread_mutex_lock(&g_registry);
  pthread_mutex_lock(&g->mu);
  for (Conn **pp = &g->conns; *pp; pp = &(*pp)->next) {
    if (*pp == c) { *pp = c->next; break; }
  }
  c->next = 0;
  c->group = 0;
  if (--g->nconn == 0) {
    g->stop = 1;
    pthread_cond_signal(&g->cv);
    dead = g;
  }
  pthread_mutex_unlock(&g->mu);
  if (dead) {
    for (Group **pp = &g_groups; *pp; pp = &(*pp)->next) {
      if (*pp == dead) { *pp = dead->next; break; }
    }
  }
  pthread_mutex_unlock(&g_registry);
  if (dead) {
    pthread_join(dead->thread, 0);
    pthread_cond_destroy(&dead->cv);
    pthread_mutex_destroy(&dead->mu);
    sqlite3_free(dead);
    pthread_mutex_lock(&g_registry);
    g_threads--;
    pthread_mutex_unlock(&g_registry);
  }
}

static int group_join(Conn *c, sqlite3_int64 id) {
  if (c->group && c->group->id == id) return 0;
  group_leave(c);
  pthread_mutex_lock(&g_registry);
  Group *g = g_groups;
  while (g && g->id != id) g = g->next;
  if (!g) {
    g = (Group *)sqlite3_malloc(sizeof(Group));
    if (!g) { pthread_mutex_unlock(&g_registry); return -1; }
    memset(g, 0, sizeof(*g));
    g->id = id;
    if (group_init(g)) { sqlite3_free(g); pthread_mutex_unlock(&g_registry); return -1; }
    g->next = g_groups;
    g_groups = g;
    g_threads++;
  }
  pthread_mutex_lock(&g->mu);
  c->next = g->conns;
  g->conns = c;
  g->nconn++;
  c->group = g;
  pthread_mutex_unlock(&g->mu);
  pthread_mutex_unlock(&g_registry);
  return 0;
}

/* ------------------------------------------------------------------ tracer */

/* True when s is still one of the connection's statements and is running. */
static int stmt_running(sqlite3 *db, sqlite3_stmt *s) {
  for (sqlite3_stmt *p = sqlite3_next_stmt(db, 0); p; p = sqlite3_next_stmt(db, p)) {
    if (p == s) return sqlite3_stmt_busy(s);
  }
  return 0;
}

static void statement_started(Conn *c, sqlite3_stmt *s, const char *sql) {
  Group *g = c->group;
  /* A denial that did not fail its statement must not label a later error. */
  if (!sql || strcmp(sql, CONTROL_SQL) != 0) c->denial[0] = 0;
  c->vacuum = 0;
  int64_t now = mono_ns();
  if (g) pthread_mutex_lock(&g->mu);
  c->cur = s;
  c->fired = 0;
  c->deadline_ns = c->timeout_ns ? now + c->timeout_ns : 0;
  if (g) {
    if (c->deadline_ns && (g->wake_at == 0 || c->deadline_ns < g->wake_at)) {
      g->wake_at = c->deadline_ns;
      pthread_cond_signal(&g->cv);
    }
    pthread_mutex_unlock(&g->mu);
  }
}

static void statement_ended(Conn *c) {
  Group *g = c->group;
  if (g) pthread_mutex_lock(&g->mu);
  c->cur = 0;
  c->deadline_ns = 0;
  if (g) pthread_mutex_unlock(&g->mu);
  c->vacuum = 0;
}

/*
 * TRACE_STMT fires for every statement start, including each trigger
 * sub-program (same statement pointer) and statements run from inside a
 * running one (virtual-table modules; other pointers): only the outermost
 * start counts. TRACE_PROFILE fires once per statement end (step done, reset
 * or finalize).
 */
static int trace_cb(unsigned type, void *ctx, void *p, void *x) {
  Conn *c = (Conn *)ctx;
  sqlite3_stmt *s = (sqlite3_stmt *)p;
  if (type == SQLITE_TRACE_STMT) {
    if (!c->cur) statement_started(c, s, (const char *)x);
    else if (c->cur != s && !stmt_running(c->db, c->cur)) statement_started(c, s, (const char *)x);
  } else if (type == SQLITE_TRACE_PROFILE) {
    if (c->cur == s) statement_ended(c);
  }
  return 0;
}

/* -------------------------------------------------------------- authorizer */

static const char *const PRAGMA_ALLOWED[] = {
  "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
  "foreign_key_list", "foreign_key_check", "foreign_keys", "defer_foreign_keys",
  "recursive_triggers", "user_version", "application_id", "quick_check", "integrity_check",
  "optimize", "collation_list", "function_list", "pragma_list", "module_list", "data_version",
  "freelist_count", "page_count", "case_sensitive_like", "incremental_vacuum", 0
};

/* Allowed only without a value. page_size: FTS3/4 and R-Tree read it from inside SQLite. */
static const char *const PRAGMA_READ_ONLY[] = { "schema_version", "encoding", "page_size", 0 };

static const char *const FUNCTION_DENIED[] = {
  "load_extension", "fts3_tokenizer", "readfile", "writefile", "edit", "fts5_locale", 0
};

static const char *const VTAB_MODULES_ALLOWED[] = {
  "fts3", "fts4", "fts5", "fts4aux", "fts5vocab", "rtree", "rtree_i32", "geopoly", 0
};

static int in_list(const char *const *list, const char *name) {
  if (!name) return 0;
  for (int i = 0; list[i]; i++) {
    if (sqlite3_stricmp(list[i], name) == 0) return 1;
  }
  return 0;
}

static int reserved(const char *name) {
  return name && sqlite3_strnicmp(name, RESERVED_PREFIX, RESERVED_PREFIX_LEN) == 0;
}

static int deny(Conn *c, const char *fmt, const char *arg) {
  sqlite3_snprintf((int)sizeof c->denial, c->denial, fmt, arg ? arg : "");
  return SQLITE_DENY;
}

#define DENY_RESERVED(c) deny((c), "objects named _domicile_* are reserved", 0)

static int authorizer(void *ctx, int action, const char *a1, const char *a2,
                      const char *schema, const char *trigger) {
  Conn *c = (Conn *)ctx;
  (void)schema;
  (void)trigger;
  if (c->trusted) return SQLITE_OK;
  /* VACUUM's own statements: BEGIN, and copying every table (the reserved ones
     too) into the attached vacuum_* schema. Only SQLite's code runs here. */
  if (c->vacuum && c->vacuum == c->cur) return SQLITE_OK;
  switch (action) {
    case SQLITE_ATTACH:
      /* Tenant SQL is prepared while none of its statements runs. A running
         statement that attaches is VACUUM: '' for plain VACUUM (a temporary
         database), the target file for VACUUM INTO. a1 is NULL for
         non-literal names. */
      if (a1 && a1[0] == 0 && c->cur) {
        c->vacuum = c->cur;
        return SQLITE_OK;
      }
      if (c->cur) return deny(c, "VACUUM INTO is not allowed", 0);
      return deny(c, "ATTACH is not allowed", 0);
    case SQLITE_DETACH:
      return deny(c, "DETACH is not allowed", 0);
    case SQLITE_PRAGMA:
      if (in_list(PRAGMA_ALLOWED, a1)) return SQLITE_OK;
      if (in_list(PRAGMA_READ_ONLY, a1)) {
        return a2 ? deny(c, "PRAGMA %s is read-only here", a1) : SQLITE_OK;
      }
      return deny(c, "PRAGMA %s is not allowed", a1);
    case SQLITE_FUNCTION:
      return in_list(FUNCTION_DENIED, a2) ? deny(c, "function %s() is not allowed", a2) : SQLITE_OK;
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
      return c->txn ? SQLITE_OK
                    : deny(c, "transaction control is not allowed here; a batch is the transaction", 0);
    case SQLITE_CREATE_VTABLE:
      if (reserved(a1)) return DENY_RESERVED(c);
      return in_list(VTAB_MODULES_ALLOWED, a2) ? SQLITE_OK
                                               : deny(c, "virtual table module %s is not allowed", a2);
    /* a1 = object, a2 = its table (indexes, triggers) or column (update). */
    case SQLITE_CREATE_INDEX:
    case SQLITE_CREATE_TEMP_INDEX:
    case SQLITE_CREATE_TRIGGER:
    case SQLITE_CREATE_TEMP_TRIGGER:
    case SQLITE_DROP_INDEX:
    case SQLITE_DROP_TEMP_INDEX:
    case SQLITE_DROP_TRIGGER:
    case SQLITE_DROP_TEMP_TRIGGER:
      return reserved(a1) || reserved(a2) ? DENY_RESERVED(c) : SQLITE_OK;
    case SQLITE_CREATE_TABLE:
    case SQLITE_CREATE_TEMP_TABLE:
    case SQLITE_CREATE_VIEW:
    case SQLITE_CREATE_TEMP_VIEW:
    case SQLITE_DROP_TABLE:
    case SQLITE_DROP_TEMP_TABLE:
    case SQLITE_DROP_VIEW:
    case SQLITE_DROP_TEMP_VIEW:
    case SQLITE_DROP_VTABLE:
    case SQLITE_INSERT:
    case SQLITE_UPDATE:
    case SQLITE_DELETE:
      return reserved(a1) ? DENY_RESERVED(c) : SQLITE_OK;
    case SQLITE_ALTER_TABLE: /* a1 = schema, a2 = table */
      return reserved(a2) ? DENY_RESERVED(c) : SQLITE_OK;
    default:
      return SQLITE_OK;
  }
}

/* ---------------------------------------------------------- control function */

static int secret_ok(Conn *c, const unsigned char *given) {
  if (!c->claimed || !given) return 0;
  unsigned char diff = 0;
  size_t n = strlen((const char *)given);
  if (n != 32) return 0;
  for (size_t i = 0; i < 32; i++) diff |= (unsigned char)(given[i] ^ (unsigned char)c->secret[i]);
  return diff == 0;
}

static void control(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  Conn *c = (Conn *)sqlite3_user_data(ctx);
  const char *op = (const char *)sqlite3_value_text(argv[1]);
  (void)argc;
  if (!op) op = "";
  if (strcmp(op, "secret") == 0) {
    if (c->claimed) {
      deny(c, "the guard control function is not available to tenant SQL", 0);
      sqlite3_result_error(ctx, "not authorized", -1);
      sqlite3_result_error_code(ctx, SQLITE_AUTH);
      return;
    }
    c->claimed = 1;
    sqlite3_result_text(ctx, c->secret, 32, SQLITE_TRANSIENT);
    return;
  }
  if (!secret_ok(c, sqlite3_value_text(argv[0]))) {
    deny(c, "the guard control function is not available to tenant SQL", 0);
    sqlite3_result_error(ctx, "not authorized", -1);
    sqlite3_result_error_code(ctx, SQLITE_AUTH);
    return;
  }
  sqlite3_int64 arg = sqlite3_value_int64(argv[2]);
  if (strcmp(op, "trusted") == 0) {
    sqlite3_result_int(ctx, c->trusted);
    c->trusted = arg != 0;
  } else if (strcmp(op, "txn") == 0) {
    sqlite3_result_int(ctx, c->txn);
    c->txn = arg != 0;
  } else if (strcmp(op, "timeout") == 0) {
    if (arg < 0 || arg > 86400000) { sqlite3_result_error(ctx, "timeout out of range", -1); return; }
    Group *g = c->group;
    if (g) pthread_mutex_lock(&g->mu);
    sqlite3_result_int64(ctx, c->timeout_ns / 1000000);
    c->timeout_ns = arg * 1000000LL;
    if (g) pthread_mutex_unlock(&g->mu);
  } else if (strcmp(op, "group") == 0) {
    if (group_join(c, arg)) { sqlite3_result_error(ctx, "cannot start the watchdog thread", -1); return; }
    sqlite3_result_int64(ctx, arg);
  } else if (strcmp(op, "denial") == 0) {
    if (c->denial[0]) sqlite3_result_text(ctx, c->denial, -1, SQLITE_TRANSIENT);
    else sqlite3_result_null(ctx);
    c->denial[0] = 0;
  } else if (strcmp(op, "timedout") == 0) {
    Group *g = c->group;
    if (g) pthread_mutex_lock(&g->mu);
    sqlite3_result_int(ctx, c->timedout);
    c->timedout = 0;
    if (g) pthread_mutex_unlock(&g->mu);
  } else if (strcmp(op, "no_ckpt_on_close") == 0) {
    /* Replication (DESIGN §8): closing the connection must never checkpoint the
       WAL into the database nor delete the -wal (unshipped frames live there). */
    int now = -1;
    if (sqlite3_db_config(c->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, arg != 0, &now) != SQLITE_OK) {
      sqlite3_result_error(ctx, "cannot set SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE", -1);
      return;
    }
    sqlite3_result_int(ctx, now);
  } else if (strcmp(op, "lookaside") == 0) {
    /* Lookaside slots used at most so far (0 while lookaside is off). */
    int cur = 0, hi = 0;
    sqlite3_db_status(c->db, SQLITE_DBSTATUS_LOOKASIDE_USED, &cur, &hi, 0);
    sqlite3_result_int(ctx, hi);
  } else if (strcmp(op, "threads") == 0) {
    pthread_mutex_lock(&g_registry);
    sqlite3_result_int(ctx, g_threads);
    pthread_mutex_unlock(&g_registry);
  } else {
    sqlite3_result_error(ctx, "unknown _domicile_guard op", -1);
  }
}

/* Runs while SQLite closes the connection, before the connection is freed. */
static void control_destroy(void *p) {
  Conn *c = (Conn *)p;
  group_leave(c);
  sqlite3_free(c);
}

/* ------------------------------------------------------------------- init */

static int fill_secret(char out[33]) {
  unsigned char raw[16];
  if (getentropy(raw, sizeof raw) != 0) return -1;
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 16; i++) {
    out[2 * i] = hex[raw[i] >> 4];
    out[2 * i + 1] = hex[raw[i] & 15];
  }
  out[32] = 0;
  return 0;
}

static void apply_limits(sqlite3 *db) {
  sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, 1 << 20);
  sqlite3_limit(db, SQLITE_LIMIT_VARIABLE_NUMBER, 10000);
  sqlite3_limit(db, SQLITE_LIMIT_EXPR_DEPTH, 1000);
  sqlite3_limit(db, SQLITE_LIMIT_COMPOUND_SELECT, 500);
  sqlite3_limit(db, SQLITE_LIMIT_FUNCTION_ARG, 100);
  sqlite3_limit(db, SQLITE_LIMIT_TRIGGER_DEPTH, 100);
  sqlite3_limit(db, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50000);
  sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 64 << 20);
  sqlite3_limit(db, SQLITE_LIMIT_WORKER_THREADS, 0);
  /* Defence in depth behind the authorizer; VACUUM turns both on for its own attach. */
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)0);
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_ATTACH_CREATE, 0, (int *)0);
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_ATTACH_WRITE, 0, (int *)0);
}

#ifdef _WIN32
__declspec(dllexport)
#endif
int sqlite3_domicileguard_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi) {
  SQLITE_EXTENSION_INIT2(pApi);
  /* No lookaside: SQLite's default reserves 48 KiB per connection for small
     allocations, ~90 MiB for a node's 2000 open handles. Measured on
     single-row writes across 1000 shards: no difference in speed within noise
     (docs/shards.md, "Memory per handle"). Only possible while the connection
     has no lookaside memory in use, i.e. right after it opened, as here; if
     SQLite refuses (SQLITE_BUSY), the default simply stays. */
  sqlite3_db_config(db, SQLITE_DBCONFIG_LOOKASIDE, (void *)0, 0, 0);
  Conn *c = (Conn *)sqlite3_malloc(sizeof(Conn));
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof(*c));
  c->db = db;
  if (fill_secret(c->secret)) {
    sqlite3_free(c);
    *pzErrMsg = sqlite3_mprintf("domicile guard: no OS randomness (errno %d)", errno);
    return SQLITE_ERROR;
  }
  /* On failure SQLite calls control_destroy itself, which frees c. */
  int rc = sqlite3_create_function_v2(db, "_domicile_guard", 3, SQLITE_UTF8 | SQLITE_DIRECTONLY, c,
                                      control, 0, 0, control_destroy);
  if (rc != SQLITE_OK) {
    *pzErrMsg = sqlite3_mprintf("domicile guard: cannot register the control function");
    return rc;
  }
  apply_limits(db);
  /* SQLite's temp directory is process-wide and cannot follow a tenant's region
     (DESIGN §7): sorter spills, temp tables and VACUUM's copy stay in memory. */
  rc = sqlite3_exec(db, "PRAGMA temp_store = MEMORY", 0, 0, 0);
  if (rc != SQLITE_OK) {
    *pzErrMsg = sqlite3_mprintf("domicile guard: cannot set temp_store");
    return rc;
  }
  sqlite3_set_authorizer(db, authorizer, c);
  sqlite3_trace_v2(db, SQLITE_TRACE_STMT | SQLITE_TRACE_PROFILE, trace_cb, c);
  /* Keep the library mapped: watchdog threads run its code until they are joined. */
  return SQLITE_OK_LOAD_PERMANENTLY;
}
