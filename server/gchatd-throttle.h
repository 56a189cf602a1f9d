/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Slows failed log-ins down per user name and per source address, with exponential backoff. */

#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

/* The rules, per user name and per source address alike: the first FREE_FAILURES failures
 * cost nothing; each further failure locks further attempts out for a delay that starts at
 * INITIAL_DELAY and doubles with every failure, up to MAX_DELAY. A record is forgotten after
 * DECAY without a failure. A successful log-in clears the record of its name, but not that of
 * its address, so an attacker cannot reset the address count by logging in to an account of
 * their own between guesses. */

/* Failures per user name before any lock-out: room for a few typos. */
#define GCHATD_THROTTLE_NAME_FREE_FAILURES 3
/* Failures per address before any lock-out: higher, since a NAT may hide many users. */
#define GCHATD_THROTTLE_ADDRESS_FREE_FAILURES 10
/* The first lock-out, in seconds; each further failure doubles it. */
#define GCHATD_THROTTLE_INITIAL_DELAY_S 1
/* The longest lock-out of a user name (15 min), reached after 3 + 11 failures. */
#define GCHATD_THROTTLE_NAME_MAX_DELAY_S (15 * 60)
/* The longest lock-out of an address (5 min), reached after 10 + 10 failures. */
#define GCHATD_THROTTLE_ADDRESS_MAX_DELAY_S (5 * 60)
/* A record with no failure for this long (1 h) is forgotten, with all its failures. */
#define GCHATD_THROTTLE_DECAY_S (60 * 60)

/* Memory bounds: at most this many names and this many addresses are tracked. Past that, a new
 * record replaces the one with the oldest last failure among those still within their free
 * failures, and only when there is none, the one with the oldest last failure of all; so a
 * flood of single failures cannot wash out a lock-out in progress. */
#define GCHATD_THROTTLE_MAX_NAMES     100000
#define GCHATD_THROTTLE_MAX_ADDRESSES 100000
/* Names and addresses longer than this many bytes are tracked by their first this-many bytes
 * (a valid user name of 32 characters takes at most 128 bytes of UTF-8). */
#define GCHATD_THROTTLE_MAX_KEY_SIZE 128

/* How keys are formed:
 * - names compare without regard to case: NFKC-normalised and case-folded when valid UTF-8,
 *   ASCII-lower-cased otherwise;
 * - an IPv4 address (also written IPv4-mapped, ::ffff:192.0.2.1) is one address;
 * - IPv6 addresses count per /64 prefix, since one subscriber usually holds a whole /64 and
 *   can pick a new address in it for every attempt;
 * - any other string (a Unix socket, say) is used as it is. Pass the address without a port. */

#define GCHATD_TYPE_THROTTLE (gchatd_throttle_get_type ())
G_DECLARE_FINAL_TYPE (GchatdThrottle, gchatd_throttle, GCHATD, THROTTLE, GObject)

GchatdThrottle *gchatd_throttle_new           (void);

/* Times are monotonic microseconds (g_get_monotonic_time()), passed in so that tests need no
 * sleeping and a wall clock that jumps has no effect. Should @now_us ever go backwards, each
 * record's remaining delay is kept, measured from the new now, so nobody is locked out longer
 * than the maximum delay. Either @name or @address may be NULL when unknown. */

/* TRUE when an attempt may proceed now. Otherwise FALSE, and @retry_after_s (if not NULL) is
 * set to the whole seconds until it may; it is 0 whenever TRUE is returned. */
gboolean        gchatd_throttle_check         (GchatdThrottle *self,
                                               const char     *name,
                                               const char     *address,
                                               gint64          now_us,
                                               guint          *retry_after_s);
void            gchatd_throttle_failure       (GchatdThrottle *self,
                                               const char     *name,
                                               const char     *address,
                                               gint64          now_us);
/* Clears @name's record; @address's record stays (see above). */
void            gchatd_throttle_success       (GchatdThrottle *self,
                                               const char     *name,
                                               const char     *address,
                                               gint64          now_us);
/* Forgets the records older than GCHATD_THROTTLE_DECAY_S; call it now and then (every minute,
 * say). Records are also treated as forgotten when looked up, so this only frees memory.
 * Returns how many records were dropped. */
guint           gchatd_throttle_expire        (GchatdThrottle *self,
                                               gint64          now_us);

guint           gchatd_throttle_get_n_names     (GchatdThrottle *self);
guint           gchatd_throttle_get_n_addresses (GchatdThrottle *self);

G_END_DECLS
