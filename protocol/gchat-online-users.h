/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The users online, as a sorted GListModel that follows presence in batches. */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* One entry: a user who is online. */
#define GCHAT_TYPE_ONLINE_USER (gchat_online_user_get_type ())

G_DECLARE_FINAL_TYPE (GchatOnlineUser, gchat_online_user, GCHAT, ONLINE_USER, GObject)

/* The name as the server spells it. */
const char *gchat_online_user_get_name (GchatOnlineUser *self);

#define GCHAT_TYPE_ONLINE_USERS (gchat_online_users_get_type ())

G_DECLARE_FINAL_TYPE (GchatOnlineUsers, gchat_online_users, GCHAT, ONLINE_USERS, GObject)

/* Sorted by name, ignoring ASCII case (under which user names are unique). */
GchatOnlineUsers *gchat_online_users_new      (void);
/* Replaces the whole list. */
void              gchat_online_users_set_all  (GchatOnlineUsers   *self,
                                               const char * const *names);
/* Applies one presence batch; either list may be NULL. */
void              gchat_online_users_update   (GchatOnlineUsers   *self,
                                               const char * const *joined,
                                               const char * const *left);
gboolean          gchat_online_users_contains (GchatOnlineUsers   *self,
                                               const char         *name);
/* The spelling the server uses for @name, or NULL when not online. */
const char       *gchat_online_users_lookup   (GchatOnlineUsers   *self,
                                               const char         *name);
void              gchat_online_users_clear    (GchatOnlineUsers   *self);

G_END_DECLS
