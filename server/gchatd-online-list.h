/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Who is online, kept as the `users` messages that tell it, so that a log-in costs a copy of
 * them and not an encoding of every name. */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Names per `users` message. A page whose names change is encoded again, so this is what one
 * log-in or log-out costs to encode, at most twice; smaller pages mean more frames per list. */
#define GCHATD_ONLINE_LIST_PAGE_SIZE 256

typedef struct _GchatdOnlineList GchatdOnlineList;

GchatdOnlineList *gchatd_online_list_new      (void);
void              gchatd_online_list_free     (GchatdOnlineList *self);

/* @user as it is shown; names compare without regard to ASCII case, as sessions do. Adding a
 * name that is there, or removing one that is not, changes nothing. */
void              gchatd_online_list_add      (GchatdOnlineList *self,
                                               const char       *user);
void              gchatd_online_list_remove   (GchatdOnlineList *self,
                                               const char       *user);
guint             gchatd_online_list_get_size (GchatdOnlineList *self);

/* The whole list as encoded `users` messages (GBytes, JSON), every one but the last with
 * `more`; empty when nobody is online. Pages changed since the last call are encoded now. */
GPtrArray        *gchatd_online_list_encode   (GchatdOnlineList *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatdOnlineList, gchatd_online_list_free)

G_END_DECLS
