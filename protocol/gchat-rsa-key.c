/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The server's RSA key on libgcrypt: generation, OpenSSL-compatible PEM files, RSA-OAEP wraps. */

#include "gchat-rsa-key.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gcrypt.h>
#include <gio/gio.h>
#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>

#include "gchat-file.h"

/* We never generate larger keys; bounding what we accept keeps a hostile public key from making
 * every wrap (and every DER number we read) arbitrarily expensive. */
#define RSA_MAX_BITS         16384
/* A DER INTEGER below 2^RSA_MAX_BITS, with the zero byte that keeps it positive. */
#define RSA_MAX_INTEGER_SIZE (RSA_MAX_BITS / 8 + 1)
/* What OAEP with SHA-256 takes from the modulus for its own padding (RFC 8017, 7.1.1). */
#define OAEP_OVERHEAD        (2 * GCHAT_SHA256_SIZE + 2)

#define DER_INTEGER    0x02
#define DER_BIT_STRING 0x03
#define DER_NULL       0x05
#define DER_OID        0x06
#define DER_SEQUENCE   0x30

#define PEM_PUBLIC_LABEL  "PUBLIC KEY"
#define PEM_PRIVATE_LABEL "RSA PRIVATE KEY"
/* OpenSSL's base64 lines are 64 characters long, that is 48 bytes of DER. */
#define PEM_LINE_BYTES    48

/* 1.2.840.113549.1.1.1, rsaEncryption (RFC 8017, appendix C). */
static const guint8 rsa_encryption_oid[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };

struct _GchatRsaKey
{
  GObject parent_instance;

  /* All of this is set once at construction and never changed: that is what makes wrap and
   * unwrap safe to call from several threads at once. */
  gcry_sexp_t public_key;  /* (public-key (rsa (n) (e))) */
  gcry_sexp_t private_key; /* (private-key (rsa (n) (e) (d) (p) (q) (u))), or NULL */
  gcry_mpi_t  n;
  GBytes     *public_der; /* SubjectPublicKeyInfo */
  guint8      fingerprint[GCHAT_SHA256_SIZE];
  guint       bits;
};

G_DEFINE_FINAL_TYPE (GchatRsaKey, gchat_rsa_key, G_TYPE_OBJECT)

G_DEFINE_QUARK (gchat-rsa-key-error-quark, gchat_rsa_key_error)

typedef struct gcry_sexp RsaSexp;
typedef struct gcry_mpi  RsaMpi;
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsaSexp, gcry_sexp_release)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RsaMpi, gcry_mpi_release)

/* The numbers of a key in libgcrypt's convention: p < q and u = p⁻¹ mod q. A public key has
 * only n and e. */
typedef struct
{
  gcry_mpi_t n, e, d, p, q, u;
} RsaParams;

static void
rsa_params_clear (RsaParams *params)
{
  g_clear_pointer (&params->n, gcry_mpi_release);
  g_clear_pointer (&params->e, gcry_mpi_release);
  g_clear_pointer (&params->d, gcry_mpi_release);
  g_clear_pointer (&params->p, gcry_mpi_release);
  g_clear_pointer (&params->q, gcry_mpi_release);
  g_clear_pointer (&params->u, gcry_mpi_release);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (RsaParams, rsa_params_clear)

/* The numbers of a PKCS#1 RSAPrivateKey (RFC 8017, appendix A.1.2), in the file's order. */
enum
{
  PKCS1_N,
  PKCS1_E,
  PKCS1_D,
  PKCS1_PRIME1,
  PKCS1_PRIME2,
  PKCS1_EXPONENT1,
  PKCS1_EXPONENT2,
  PKCS1_COEFFICIENT,
  PKCS1_N_VALUES
};

typedef struct
{
  gcry_mpi_t values[PKCS1_N_VALUES];
} Pkcs1Key;

static void
pkcs1_key_clear (Pkcs1Key *pkcs1)
{
  for (guint i = 0; i < PKCS1_N_VALUES; i++)
    g_clear_pointer (&pkcs1->values[i], gcry_mpi_release);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Pkcs1Key, pkcs1_key_clear)

static gboolean
set_error (GError **error, GchatRsaKeyError code, const char *message)
{
  g_set_error_literal (error, GCHAT_RSA_KEY_ERROR, code, message);
  return FALSE;
}

static gboolean set_errno_error (GError **error, int errsv, const char *format, ...)
  G_GNUC_PRINTF (3, 4);

/* Sets a G_IO_ERROR from @errsv, with the formatted message followed by the system's reason. */
static gboolean
set_errno_error (GError **error, int errsv, const char *format, ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv), "%s: %s", message,
               g_strerror (errsv));
  return FALSE;
}

static void
wipe_free (gpointer mem, gsize len)
{
  if (mem == NULL)
    return;
  gchat_memzero (mem, len);
  g_free (mem);
}

/* DER writing. Every length is computed first, so each buffer is allocated once at its exact
 * size and no copy of a secret is left behind by a reallocation. */

typedef struct
{
  guint8 *data;
  gsize   size;
  gsize   pos;
} DerWriter;

static gsize
der_length_size (gsize len)
{
  gsize size = 1;

  /* From 128 on, a length-of-length byte precedes the big-endian length. */
  if (len >= 0x80)
    for (; len > 0; len >>= 8)
      size++;
  return size;
}

static gsize
der_tlv_size (gsize content_len)
{
  return 1 + der_length_size (content_len) + content_len;
}

static gsize
der_integer_content_size (gcry_mpi_t value)
{
  /* One byte more than the bits fill, rounded down: room for the zero byte DER puts in front of
   * a positive number whose top bit is set, and a single zero byte for 0. */
  return gcry_mpi_get_nbits (value) / 8 + 1;
}

static gsize
der_integer_size (gcry_mpi_t value)
{
  return der_tlv_size (der_integer_content_size (value));
}

static void
der_put_header (DerWriter *writer, guint8 tag, gsize len)
{
  gsize len_size = der_length_size (len);

  g_assert (writer->pos + 1 + len_size <= writer->size);
  writer->data[writer->pos++] = tag;
  if (len_size == 1)
    {
      writer->data[writer->pos++] = (guint8) len;
      return;
    }
  writer->data[writer->pos++] = (guint8) (0x80 | (len_size - 1));
  for (gsize i = len_size - 1; i > 0; i--)
    writer->data[writer->pos++] = (guint8) (len >> (8 * (i - 1)));
}

static void
der_put_bytes (DerWriter *writer, const guint8 *bytes, gsize len)
{
  g_assert (writer->pos + len <= writer->size);
  memcpy (writer->data + writer->pos, bytes, len);
  writer->pos += len;
}

static void
der_put_integer (DerWriter *writer, gcry_mpi_t value)
{
  gsize content_size = der_integer_content_size (value);
  gsize value_size = (gcry_mpi_get_nbits (value) + 7) / 8;
  gsize padding = content_size - value_size;
  size_t written = 0;

  der_put_header (writer, DER_INTEGER, content_size);
  g_assert (writer->pos + content_size <= writer->size);
  memset (writer->data + writer->pos, 0, padding);
  writer->pos += padding;
  if (value_size > 0)
    gcry_mpi_print (GCRYMPI_FMT_USG, writer->data + writer->pos, value_size, &written, value);
  g_assert (written == value_size);
  writer->pos += value_size;
}

/* SubjectPublicKeyInfo (RFC 5280, 4.1) holding an RSAPublicKey (RFC 8017, A.1.1). */
static GBytes *
encode_public_der (gcry_mpi_t n, gcry_mpi_t e)
{
  gsize rsa_len = der_integer_size (n) + der_integer_size (e);
  gsize bits_len = 1 + der_tlv_size (rsa_len);
  gsize algorithm_len = der_tlv_size (sizeof rsa_encryption_oid) + der_tlv_size (0);
  gsize spki_len = der_tlv_size (algorithm_len) + der_tlv_size (bits_len);
  DerWriter writer = { NULL, der_tlv_size (spki_len), 0 };
  static const guint8 no_unused_bits = 0;

  writer.data = g_malloc (writer.size);
  der_put_header (&writer, DER_SEQUENCE, spki_len);
  der_put_header (&writer, DER_SEQUENCE, algorithm_len);
  der_put_header (&writer, DER_OID, sizeof rsa_encryption_oid);
  der_put_bytes (&writer, rsa_encryption_oid, sizeof rsa_encryption_oid);
  der_put_header (&writer, DER_NULL, 0);
  der_put_header (&writer, DER_BIT_STRING, bits_len);
  der_put_bytes (&writer, &no_unused_bits, 1);
  der_put_header (&writer, DER_SEQUENCE, rsa_len);
  der_put_integer (&writer, n);
  der_put_integer (&writer, e);
  g_assert (writer.pos == writer.size);
  return g_bytes_new_take (writer.data, writer.size);
}

/* PKCS#1 RSAPrivateKey, version 0 (two primes). The result holds secrets: wipe_free() it. */
static guint8 *
encode_private_der (const Pkcs1Key *pkcs1, gsize *der_len)
{
  static const guint8 version[] = { DER_INTEGER, 1, 0 };
  gsize content_len = sizeof version;
  DerWriter writer = { NULL, 0, 0 };

  for (guint i = 0; i < PKCS1_N_VALUES; i++)
    content_len += der_integer_size (pkcs1->values[i]);
  writer.size = der_tlv_size (content_len);
  writer.data = g_malloc (writer.size);
  der_put_header (&writer, DER_SEQUENCE, content_len);
  der_put_bytes (&writer, version, sizeof version);
  for (guint i = 0; i < PKCS1_N_VALUES; i++)
    der_put_integer (&writer, pkcs1->values[i]);
  g_assert (writer.pos == writer.size);
  *der_len = writer.size;
  return writer.data;
}

/* DER reading. The input is hostile: every length is checked against what is left before it
 * is used, only DER's definite minimal lengths are accepted, and the structure must match
 * exactly, with nothing after it. Messages are clauses; the callers say what was being read. */

typedef struct
{
  const guint8 *data;
  gsize         len;
} DerReader;

static gboolean
der_read_length (DerReader *reader, gsize *header_len, gsize *len, GError **error)
{
  gsize len_size;

  *len = reader->data[1];
  *header_len = 2;
  if (*len < 0x80)
    return TRUE;

  /* 0x80 is BER's indefinite length; more than four bytes would describe more than we read. */
  len_size = *len & 0x7f;
  if (len_size == 0 || len_size > 4)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("a DER length is invalid"));
  if (reader->len - 2 < len_size)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the DER data ends too early"));
  *len = 0;
  for (gsize i = 0; i < len_size; i++)
    *len = (*len << 8) | reader->data[2 + i];
  /* DER allows exactly one encoding of each length: the shortest. */
  if (reader->data[2] == 0 || *len < 0x80)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("a DER length is not minimal"));
  *header_len += len_size;
  return TRUE;
}

/* Reads one element with the expected tag into @content and moves @reader past it. */
static gboolean
der_read (DerReader *reader, guint8 tag, DerReader *content, GError **error)
{
  gsize header_len;
  gsize len;

  if (reader->len < 2)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the DER data ends too early"));
  if (reader->data[0] != tag)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the DER structure is not an RSA key"));
  if (!der_read_length (reader, &header_len, &len, error))
    return FALSE;
  if (len > reader->len - header_len)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the DER data ends too early"));

  content->data = reader->data + header_len;
  content->len = len;
  reader->data += header_len + len;
  reader->len -= header_len + len;
  return TRUE;
}

static gboolean
der_expect_end (const DerReader *reader, GError **error)
{
  if (reader->len != 0)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("unexpected data follows the key"));
  return TRUE;
}

/* Reads a positive INTEGER. Secret numbers are moved to libgcrypt's secure memory. */
static gboolean
der_read_integer (DerReader *reader, gboolean secret, gcry_mpi_t *value, GError **error)
{
  DerReader content;

  if (!der_read (reader, DER_INTEGER, &content, error))
    return FALSE;
  if (content.len == 0 || (content.data[0] & 0x80) != 0
      || (content.len == 1 && content.data[0] == 0))
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("a key number is not positive"));
  if (content.len > 1 && content.data[0] == 0 && (content.data[1] & 0x80) == 0)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("a key number is not minimal DER"));
  if (content.len > RSA_MAX_INTEGER_SIZE)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("a key number is too large"));
  if (gcry_mpi_scan (value, GCRYMPI_FMT_USG, content.data, content.len, NULL) != 0)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FAILED, _("libgcrypt could not read a number"));
  if (secret)
    gcry_mpi_set_flag (*value, GCRYMPI_FLAG_SECURE);
  return TRUE;
}

static gboolean
der_read_algorithm (DerReader *spki, GError **error)
{
  DerReader algorithm, oid, parameters;

  if (!der_read (spki, DER_SEQUENCE, &algorithm, error)
      || !der_read (&algorithm, DER_OID, &oid, error))
    return FALSE;
  if (oid.len != sizeof rsa_encryption_oid
      || memcmp (oid.data, rsa_encryption_oid, sizeof rsa_encryption_oid) != 0)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the key is not an RSA key"));
  /* RFC 3279 requires NULL parameters for rsaEncryption. */
  if (!der_read (&algorithm, DER_NULL, &parameters, error))
    return FALSE;
  if (parameters.len != 0)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the RSA algorithm has parameters"));
  return der_expect_end (&algorithm, error);
}

static gboolean
decode_public_der (const guint8 *data, gsize len, RsaParams *params, GError **error)
{
  DerReader input = { data, len };
  DerReader spki, bits, rsa_input, rsa;

  if (!der_read (&input, DER_SEQUENCE, &spki, error) || !der_expect_end (&input, error)
      || !der_read_algorithm (&spki, error)
      || !der_read (&spki, DER_BIT_STRING, &bits, error) || !der_expect_end (&spki, error))
    return FALSE;
  if (bits.len == 0 || bits.data[0] != 0)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the key bit string is invalid"));

  rsa_input.data = bits.data + 1;
  rsa_input.len = bits.len - 1;
  return der_read (&rsa_input, DER_SEQUENCE, &rsa, error) && der_expect_end (&rsa_input, error)
         && der_read_integer (&rsa, FALSE, &params->n, error)
         && der_read_integer (&rsa, FALSE, &params->e, error) && der_expect_end (&rsa, error);
}

static gboolean
decode_private_der (const guint8 *data, gsize len, Pkcs1Key *pkcs1, GError **error)
{
  DerReader input = { data, len };
  DerReader sequence, version;

  if (!der_read (&input, DER_SEQUENCE, &sequence, error) || !der_expect_end (&input, error)
      || !der_read (&sequence, DER_INTEGER, &version, error))
    return FALSE;
  /* Version 1 means more than two primes, which libgcrypt cannot use. */
  if (version.len != 1 || version.data[0] != 0)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT,
                      _("only two-prime keys (version 0) are supported"));
  for (guint i = 0; i < PKCS1_N_VALUES; i++)
    if (!der_read_integer (&sequence, i != PKCS1_N && i != PKCS1_E, &pkcs1->values[i], error))
      return FALSE;
  return der_expect_end (&sequence, error);
}

/* PEM (RFC 7468). OpenSSL writes nothing around the block but a final newline, so we accept
 * nothing around it but whitespace. */

static gboolean
is_pem_space (char c)
{
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static gboolean
is_base64_char (char c)
{
  return g_ascii_isalnum (c) || c == '+' || c == '/';
}

/* Explains a BEGIN line with another label, such as OpenSSL 3's default PKCS#8 key files. */
static gboolean
set_wrong_label_error (const char *text, gsize len, const char *label, GError **error)
{
  const gsize prefix_len = strlen ("-----BEGIN ");
  gsize end = prefix_len;

  if (len < prefix_len || memcmp (text, "-----BEGIN ", prefix_len) != 0)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the file has no PEM BEGIN line"));
  /* The label comes from the file: only quote it when it is short, plain ASCII. */
  while (end < len && end - prefix_len < 40 && (g_ascii_isupper (text[end]) || text[end] == ' '
                                                || g_ascii_isdigit (text[end])))
    end++;
  if (len - end < 5 || memcmp (text + end, "-----", 5) != 0)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the PEM BEGIN line is invalid"));

  if (strcmp (label, PEM_PRIVATE_LABEL) == 0 && end - prefix_len == strlen ("PRIVATE KEY")
      && memcmp (text + prefix_len, "PRIVATE KEY", end - prefix_len) == 0)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT,
                      _("it is a PKCS#8 “PRIVATE KEY”; convert it to an “RSA PRIVATE KEY” with "
                        "“openssl rsa -in FILE -traditional -out NEWFILE”"));
  g_set_error (error, GCHAT_RSA_KEY_ERROR, GCHAT_RSA_KEY_ERROR_FORMAT,
               _("the file holds a “%.*s” block, not “%s”"), (int) (end - prefix_len),
               text + prefix_len, label);
  return FALSE;
}

/* Finds the text between the BEGIN and END lines of the one PEM block with @label. */
static gboolean
pem_find_body (const char *text, gsize len, const char *label, const char **body,
               gsize *body_len, GError **error)
{
  g_autofree char *begin = g_strdup_printf ("-----BEGIN %s-----", label);
  g_autofree char *end = g_strdup_printf ("-----END %s-----", label);
  gsize begin_len = strlen (begin);
  gsize end_len = strlen (end);

  while (len > 0 && is_pem_space (text[0]))
    text++, len--;
  while (len > 0 && is_pem_space (text[len - 1]))
    len--;
  if (len == 0)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the file is empty"));
  if (len < begin_len || memcmp (text, begin, begin_len) != 0)
    return set_wrong_label_error (text, len, label, error);
  if (len < begin_len + end_len || memcmp (text + len - end_len, end, end_len) != 0)
    {
      g_set_error (error, GCHAT_RSA_KEY_ERROR, GCHAT_RSA_KEY_ERROR_FORMAT,
                   _("the file does not end with “%s”"), end);
      return FALSE;
    }

  *body = text + begin_len;
  *body_len = len - begin_len - end_len;
  /* The BEGIN and END lines must be lines of their own. */
  if (*body_len == 0 || (**body != '\n' && **body != '\r') || (*body)[*body_len - 1] != '\n')
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the PEM armour lines are invalid"));
  return TRUE;
}

/* Copies the base64 characters of @body to @clean, checking the alphabet and the padding
 * (g_base64_decode_step() silently skips anything it does not know). */
static gboolean
pem_collect_base64 (const char *body, gsize body_len, char *clean, gsize *clean_len,
                    GError **error)
{
  gsize count = 0;
  gsize padding = 0;

  for (gsize i = 0; i < body_len; i++)
    {
      char c = body[i];

      if (is_pem_space (c))
        continue;
      if (c == ':')
        return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT,
                          _("the PEM block has headers; encrypted keys are not supported"));
      /* Padding comes only at the end, and there are at most two padding characters. */
      if (c == '=')
        padding++;
      else if (padding > 0 || !is_base64_char (c))
        return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the base64 text is invalid"));
      if (padding > 2)
        return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the base64 text is invalid"));
      clean[count++] = c;
    }
  if (count == 0 || count % 4 != 0)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the base64 text is invalid"));
  *clean_len = count;
  return TRUE;
}

/* Returns the DER inside the PEM block with @label. It may hold secrets: wipe_free() it. */
static guint8 *
pem_decode (const char *text, gsize len, const char *label, gsize *der_len, GError **error)
{
  const char *body;
  gsize body_len;
  gsize clean_len = 0;
  char *clean;
  guint8 *der = NULL;
  gint state = 0;
  guint save = 0;

  if (!pem_find_body (text, len, label, &body, &body_len, error))
    return NULL;
  clean = g_malloc (body_len);
  if (pem_collect_base64 (body, body_len, clean, &clean_len, error))
    {
      /* The decoder wants room for three more bytes than the data decodes to. */
      der = g_malloc (clean_len / 4 * 3 + 3);
      *der_len = g_base64_decode_step (clean, clean_len, der, &state, &save);
    }
  wipe_free (clean, body_len);
  return der;
}

/* Writes @der as PEM with 64-character lines, as OpenSSL does. Wipe_free() the result. */
static char *
pem_encode (const guint8 *der, gsize der_len, const char *label, gsize *pem_len)
{
  g_autofree char *begin = g_strdup_printf ("-----BEGIN %s-----\n", label);
  g_autofree char *end = g_strdup_printf ("-----END %s-----\n", label);
  gsize lines = (der_len + PEM_LINE_BYTES - 1) / PEM_LINE_BYTES;
  /* 65 bytes a line, and slack for g_base64_encode_step()'s documented worst case. */
  gsize size = strlen (begin) + lines * 65 + strlen (end) + 8;
  char *pem = g_malloc (size);
  gsize pos = 0;

  memcpy (pem, begin, strlen (begin));
  pos += strlen (begin);
  for (gsize offset = 0; offset < der_len; offset += PEM_LINE_BYTES)
    {
      gsize chunk = MIN (PEM_LINE_BYTES, der_len - offset);
      gint state = 0;
      gint save = 0;

      pos += g_base64_encode_step (der + offset, chunk, FALSE, pem + pos, &state, &save);
      pos += g_base64_encode_close (FALSE, pem + pos, &state, &save);
      pem[pos++] = '\n';
    }
  memcpy (pem + pos, end, strlen (end));
  pos += strlen (end);
  g_assert (pos <= size);
  *pem_len = pos;
  return pem;
}

/* Files. */

/* Reads at most GCHAT_RSA_KEY_MAX_FILE bytes, so a file that grows while we read cannot make
 * us read more. The buffer may hold secrets: wipe_free() it with GCHAT_RSA_KEY_MAX_FILE + 1. */
static char *
read_key_fd (int fd, const char *path, gsize *len, GError **error)
{
  char *data = g_malloc (GCHAT_RSA_KEY_MAX_FILE + 1);
  gsize total = 0;

  while (total <= GCHAT_RSA_KEY_MAX_FILE)
    {
      gssize got = read (fd, data + total, GCHAT_RSA_KEY_MAX_FILE + 1 - total);

      if (got < 0 && errno == EINTR)
        continue;
      if (got < 0)
        {
          set_errno_error (error, errno, _("Could not read “%s”"), path);
          wipe_free (data, GCHAT_RSA_KEY_MAX_FILE + 1);
          return NULL;
        }
      if (got == 0)
        break;
      total += got;
    }
  if (total > GCHAT_RSA_KEY_MAX_FILE)
    {
      set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the file is too large for a key"));
      wipe_free (data, GCHAT_RSA_KEY_MAX_FILE + 1);
      return NULL;
    }
  *len = total;
  return data;
}

static gboolean
check_key_file (int fd, const char *path, gboolean is_private, GError **error)
{
  struct stat st;

  if (fstat (fd, &st) != 0)
    return set_errno_error (error, errno, _("Could not read “%s”"), path);
  if (!S_ISREG (st.st_mode))
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("it is not a regular file"));
  if (is_private && (st.st_mode & 077) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                   _("The private key “%s” can be read or changed by other users. Make it "
                     "private to its owner with “chmod 600 %s” and try again."),
                   path, path);
      return FALSE;
    }
  /* Refused before reading, so a huge file costs nothing. */
  if (st.st_size > GCHAT_RSA_KEY_MAX_FILE)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the file is too large for a key"));
  return TRUE;
}

/* O_NONBLOCK keeps a FIFO in place of the key from blocking the open; it is refused after. */
static char *
read_key_file (const char *path, gboolean is_private, gsize *len, GError **error)
{
  int fd = g_open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0);
  char *data = NULL;

  if (fd < 0)
    {
      set_errno_error (error, errno, _("Could not open “%s”"), path);
      return NULL;
    }
  if (check_key_file (fd, path, is_private, error))
    data = read_key_fd (fd, path, len, error);
  close (fd);
  return data;
}

/* A crash leaves either the old file or the complete new one, never a half-written key. */
static gboolean
write_key_file (const char *path, const char *data, gsize len, int mode, GError **error)
{
  g_autoptr(GError) local_error = NULL;

  if (gchat_file_replace (path, data, len, mode, &local_error))
    return TRUE;
  g_set_error (error, G_IO_ERROR, local_error->code, _("Could not write “%s”: %s"), path,
               local_error->message);
  return FALSE;
}

/* Keys. */

static gboolean
check_public_params (const RsaParams *params, GError **error)
{
  guint bits = gcry_mpi_get_nbits (params->n);

  if (bits < GCHAT_RSA_KEY_MIN_BITS)
    {
      g_set_error (error, GCHAT_RSA_KEY_ERROR, GCHAT_RSA_KEY_ERROR_TOO_WEAK,
                   _("the key has only %u bits; at least %u are needed"), bits,
                   GCHAT_RSA_KEY_MIN_BITS);
      return FALSE;
    }
  if (bits > RSA_MAX_BITS)
    {
      g_set_error (error, GCHAT_RSA_KEY_ERROR, GCHAT_RSA_KEY_ERROR_FORMAT,
                   _("the key has %u bits; at most %u are supported"), bits, RSA_MAX_BITS);
      return FALSE;
    }
  /* An even modulus or exponent cannot belong to a working key, and e = 1 encrypts nothing. */
  if (!gcry_mpi_test_bit (params->n, 0) || !gcry_mpi_test_bit (params->e, 0)
      || gcry_mpi_cmp_ui (params->e, 1) <= 0 || gcry_mpi_cmp (params->e, params->n) >= 0)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the key’s numbers are invalid"));
  return TRUE;
}

/* Whether e·d ≡ 1 (mod prime − 1), which makes decryption undo encryption modulo @prime. */
static gboolean
exponents_match (gcry_mpi_t e, gcry_mpi_t d, gcry_mpi_t prime)
{
  g_autoptr(RsaMpi) modulus = gcry_mpi_snew (0);
  g_autoptr(RsaMpi) product = gcry_mpi_snew (0);

  gcry_mpi_sub_ui (modulus, prime, 1);
  gcry_mpi_mulm (product, e, d, modulus);
  return gcry_mpi_cmp_ui (product, 1) == 0;
}

/* gcry_pk_testkey() only checks n = p·q, so the exponents are checked here too. Puts the
 * primes in libgcrypt's order (p < q) and computes u = p⁻¹ mod q. */
static gboolean
normalize_private_params (RsaParams *params, GError **error)
{
  g_autoptr(RsaMpi) product = gcry_mpi_snew (0);

  if (gcry_mpi_cmp (params->p, params->q) > 0)
    {
      gcry_mpi_t swap = params->p;

      params->p = params->q;
      params->q = swap;
    }
  /* Guards the divisions below: p − 1 and q − 1 must not be 0. */
  if (gcry_mpi_cmp_ui (params->p, 2) <= 0 || gcry_mpi_cmp (params->d, params->n) >= 0)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the private key is inconsistent"));
  gcry_mpi_mul (product, params->p, params->q);
  if (gcry_mpi_cmp (product, params->n) != 0
      || !exponents_match (params->e, params->d, params->p)
      || !exponents_match (params->e, params->d, params->q))
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the private key is inconsistent"));

  g_clear_pointer (&params->u, gcry_mpi_release);
  params->u = gcry_mpi_snew (0);
  if (!gcry_mpi_invm (params->u, params->p, params->q))
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the private key is inconsistent"));
  gcry_mpi_set_flag (params->d, GCRYMPI_FLAG_SECURE);
  gcry_mpi_set_flag (params->p, GCRYMPI_FLAG_SECURE);
  gcry_mpi_set_flag (params->q, GCRYMPI_FLAG_SECURE);
  return TRUE;
}

static gboolean
build_private_sexp (GchatRsaKey *self, RsaParams *params, GError **error)
{
  gcry_error_t err;

  if (!normalize_private_params (params, error))
    return FALSE;
  err = gcry_sexp_build (&self->private_key, NULL,
                         "(private-key (rsa (n %m) (e %m) (d %m) (p %m) (q %m) (u %m)))",
                         params->n, params->e, params->d, params->p, params->q, params->u);
  if (err != 0)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FAILED, gcry_strerror (err));
  if (gcry_pk_testkey (self->private_key) != 0)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the private key is inconsistent"));
  return TRUE;
}

/* The one way keys are made: checks the numbers, then builds the S-expressions, the DER and
 * the fingerprint. @params has only n and e for a public key. */
static GchatRsaKey *
rsa_key_new_from_params (RsaParams *params, GError **error)
{
  g_autoptr(GchatRsaKey) self = NULL;
  gcry_error_t err;

  if (!check_public_params (params, error))
    return NULL;
  self = g_object_new (GCHAT_TYPE_RSA_KEY, NULL);
  if (params->d != NULL && !build_private_sexp (self, params, error))
    return NULL;
  err = gcry_sexp_build (&self->public_key, NULL, "(public-key (rsa (n %m) (e %m)))", params->n,
                         params->e);
  if (err != 0)
    {
      set_error (error, GCHAT_RSA_KEY_ERROR_FAILED, gcry_strerror (err));
      return NULL;
    }
  self->n = gcry_mpi_copy (params->n);
  self->bits = gcry_pk_get_nbits (self->public_key);
  self->public_der = encode_public_der (params->n, params->e);
  gchat_sha256 (g_bytes_get_data (self->public_der, NULL), g_bytes_get_size (self->public_der),
                self->fingerprint);
  return g_steal_pointer (&self);
}

/* Checks that the file's CRT numbers are the ones its primes give, as `openssl rsa -check`
 * does: libgcrypt recomputes them, so a damaged file would otherwise go unnoticed. */
static gboolean
check_pkcs1_crt (Pkcs1Key *pkcs1, GError **error)
{
  gcry_mpi_t *values = pkcs1->values;
  g_autoptr(RsaMpi) modulus = gcry_mpi_snew (0);
  g_autoptr(RsaMpi) expected = gcry_mpi_snew (0);
  gboolean ok;

  /* Both primes are over 2: normalize_private_params() checked that. */
  gcry_mpi_sub_ui (modulus, values[PKCS1_PRIME1], 1);
  gcry_mpi_mod (expected, values[PKCS1_D], modulus);
  ok = gcry_mpi_cmp (expected, values[PKCS1_EXPONENT1]) == 0;
  gcry_mpi_sub_ui (modulus, values[PKCS1_PRIME2], 1);
  gcry_mpi_mod (expected, values[PKCS1_D], modulus);
  ok = ok && gcry_mpi_cmp (expected, values[PKCS1_EXPONENT2]) == 0;
  ok = ok && gcry_mpi_invm (expected, values[PKCS1_PRIME2], values[PKCS1_PRIME1])
       && gcry_mpi_cmp (expected, values[PKCS1_COEFFICIENT]) == 0;
  if (!ok)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FORMAT, _("the private key is inconsistent"));
  return TRUE;
}

static GchatRsaKey *
rsa_key_new_from_pkcs1 (Pkcs1Key *pkcs1, GError **error)
{
  g_auto(RsaParams) params = { NULL };
  gcry_mpi_t *values = pkcs1->values;
  GchatRsaKey *key;

  params.n = gcry_mpi_copy (values[PKCS1_N]);
  params.e = gcry_mpi_copy (values[PKCS1_E]);
  params.d = gcry_mpi_copy (values[PKCS1_D]);
  params.p = gcry_mpi_copy (values[PKCS1_PRIME1]);
  params.q = gcry_mpi_copy (values[PKCS1_PRIME2]);
  /* The key's own checks come first: they make sure the primes are over 2 for
   * check_pkcs1_crt(). */
  key = rsa_key_new_from_params (&params, error);
  if (key != NULL && !check_pkcs1_crt (pkcs1, error))
    g_clear_object (&key);
  return key;
}

/* libgcrypt keeps u = p⁻¹ mod q with p < q; PKCS#1 keeps qInv = q⁻¹ mod p. So PKCS#1's first
 * prime is our q, its second our p, and its coefficient our u. */
static gboolean
pkcs1_from_private_key (GchatRsaKey *self, Pkcs1Key *pkcs1, GError **error)
{
  g_auto(RsaParams) params = { NULL };
  gcry_mpi_t *values = pkcs1->values;
  g_autoptr(RsaMpi) modulus = gcry_mpi_snew (0);
  gcry_error_t err;

  err = gcry_sexp_extract_param (self->private_key, NULL, "nedpqu", &params.n, &params.e,
                                 &params.d, &params.p, &params.q, &params.u, NULL);
  if (err != 0)
    return set_error (error, GCHAT_RSA_KEY_ERROR_FAILED, gcry_strerror (err));

  values[PKCS1_N] = g_steal_pointer (&params.n);
  values[PKCS1_E] = g_steal_pointer (&params.e);
  values[PKCS1_D] = g_steal_pointer (&params.d);
  values[PKCS1_PRIME1] = g_steal_pointer (&params.q);
  values[PKCS1_PRIME2] = g_steal_pointer (&params.p);
  values[PKCS1_COEFFICIENT] = g_steal_pointer (&params.u);
  values[PKCS1_EXPONENT1] = gcry_mpi_snew (0);
  values[PKCS1_EXPONENT2] = gcry_mpi_snew (0);
  gcry_mpi_sub_ui (modulus, values[PKCS1_PRIME1], 1);
  gcry_mpi_mod (values[PKCS1_EXPONENT1], values[PKCS1_D], modulus);
  gcry_mpi_sub_ui (modulus, values[PKCS1_PRIME2], 1);
  gcry_mpi_mod (values[PKCS1_EXPONENT2], values[PKCS1_D], modulus);
  return TRUE;
}

static GchatRsaKey *
rsa_key_new_from_public_der (const guint8 *der, gsize len, GError **error)
{
  g_auto(RsaParams) params = { NULL };

  if (!decode_public_der (der, len, &params, error))
    return NULL;
  return rsa_key_new_from_params (&params, error);
}

static GchatRsaKey *
rsa_key_new_from_private_der (const guint8 *der, gsize len, GError **error)
{
  g_auto(Pkcs1Key) pkcs1 = { { NULL } };

  if (!decode_private_der (der, len, &pkcs1, error))
    return NULL;
  return rsa_key_new_from_pkcs1 (&pkcs1, error);
}

/* Says which file was refused and why, keeping the code. */
static void
prefix_file_error (GError **error, const char *path, gboolean is_private)
{
  if ((*error)->domain != GCHAT_RSA_KEY_ERROR)
    return;
  if ((*error)->code != GCHAT_RSA_KEY_ERROR_FORMAT)
    g_prefix_error (error, _("Cannot use “%s”: "), path);
  else if (is_private)
    g_prefix_error (error, _("“%s” is not a PEM RSA private key: "), path);
  else
    g_prefix_error (error, _("“%s” is not a PEM RSA public key: "), path);
}

static GchatRsaKey *
load_key_file (const char *path, gboolean is_private, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  GchatRsaKey *key = NULL;
  guint8 *der = NULL;
  gsize der_len = 0;
  gsize len = 0;
  char *text;

  if (!gchat_crypto_init (error))
    return NULL;
  text = read_key_file (path, is_private, &len, &local_error);
  if (text != NULL)
    der = pem_decode (text, len, is_private ? PEM_PRIVATE_LABEL : PEM_PUBLIC_LABEL, &der_len,
                      &local_error);
  if (der != NULL && is_private)
    key = rsa_key_new_from_private_der (der, der_len, &local_error);
  else if (der != NULL)
    key = rsa_key_new_from_public_der (der, der_len, &local_error);
  wipe_free (der, der_len);
  wipe_free (text, GCHAT_RSA_KEY_MAX_FILE + 1);

  if (key == NULL)
    {
      prefix_file_error (&local_error, path, is_private);
      g_propagate_error (error, g_steal_pointer (&local_error));
    }
  return key;
}

static void
gchat_rsa_key_finalize (GObject *object)
{
  GchatRsaKey *self = GCHAT_RSA_KEY (object);

  g_clear_pointer (&self->public_key, gcry_sexp_release);
  g_clear_pointer (&self->private_key, gcry_sexp_release);
  g_clear_pointer (&self->n, gcry_mpi_release);
  g_clear_pointer (&self->public_der, g_bytes_unref);

  G_OBJECT_CLASS (gchat_rsa_key_parent_class)->finalize (object);
}

static void
gchat_rsa_key_class_init (GchatRsaKeyClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = gchat_rsa_key_finalize;
}

static void
gchat_rsa_key_init (GchatRsaKey *self)
{
}

GchatRsaKey *
gchat_rsa_key_generate (guint bits, GError **error)
{
  g_autoptr(RsaSexp) parameters = NULL;
  g_autoptr(RsaSexp) key = NULL;
  g_auto(RsaParams) params = { NULL };
  gcry_error_t err;

  if (!gchat_crypto_init (error))
    return NULL;
  if (bits < GCHAT_RSA_KEY_MIN_BITS || bits > RSA_MAX_BITS)
    {
      g_set_error (error, GCHAT_RSA_KEY_ERROR,
                   bits < GCHAT_RSA_KEY_MIN_BITS ? GCHAT_RSA_KEY_ERROR_TOO_WEAK
                                                 : GCHAT_RSA_KEY_ERROR_FAILED,
                   _("Cannot make a %u-bit RSA key: the size must be from %u to %u bits."), bits,
                   GCHAT_RSA_KEY_MIN_BITS, RSA_MAX_BITS);
      return NULL;
    }

  err = gcry_sexp_build (&parameters, NULL, "(genkey (rsa (nbits %u)))", bits);
  if (err == 0)
    err = gcry_pk_genkey (&key, parameters);
  if (err == 0)
    err = gcry_sexp_extract_param (key, "private-key", "nedpqu", &params.n, &params.e,
                                   &params.d, &params.p, &params.q, &params.u, NULL);
  if (err != 0)
    {
      g_set_error (error, GCHAT_RSA_KEY_ERROR, GCHAT_RSA_KEY_ERROR_FAILED,
                   _("Could not generate an RSA key: %s"), gcry_strerror (err));
      return NULL;
    }
  return rsa_key_new_from_params (&params, error);
}

GchatRsaKey *
gchat_rsa_key_load_private (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return load_key_file (path, TRUE, error);
}

GchatRsaKey *
gchat_rsa_key_load_public (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return load_key_file (path, FALSE, error);
}

GchatRsaKey *
gchat_rsa_key_new_from_public_der (GBytes *der, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  GchatRsaKey *key;
  gsize len;
  const guint8 *data;

  g_return_val_if_fail (der != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!gchat_crypto_init (error))
    return NULL;
  data = g_bytes_get_data (der, &len);
  key = rsa_key_new_from_public_der (data, len, &local_error);
  if (key == NULL)
    {
      if (g_error_matches (local_error, GCHAT_RSA_KEY_ERROR, GCHAT_RSA_KEY_ERROR_FORMAT))
        g_prefix_error (&local_error, _("Not a DER RSA public key: "));
      else
        g_prefix_error (&local_error, _("Cannot use the RSA public key: "));
      g_propagate_error (error, g_steal_pointer (&local_error));
    }
  return key;
}

gboolean
gchat_rsa_key_save_private (GchatRsaKey *self, const char *path, GError **error)
{
  g_auto(Pkcs1Key) pkcs1 = { { NULL } };
  guint8 *der;
  gsize der_len;
  char *pem;
  gsize pem_len;
  gboolean ok;

  g_return_val_if_fail (GCHAT_IS_RSA_KEY (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);

  if (self->private_key == NULL)
    return set_error (error, GCHAT_RSA_KEY_ERROR_NO_PRIVATE,
                      _("Cannot save the private key: only the public key is loaded."));
  if (!pkcs1_from_private_key (self, &pkcs1, error))
    return FALSE;
  der = encode_private_der (&pkcs1, &der_len);
  pem = pem_encode (der, der_len, PEM_PRIVATE_LABEL, &pem_len);
  wipe_free (der, der_len);
  ok = write_key_file (path, pem, pem_len, 0600, error);
  wipe_free (pem, pem_len);
  return ok;
}

gboolean
gchat_rsa_key_save_public (GchatRsaKey *self, const char *path, GError **error)
{
  g_autofree char *pem = NULL;
  gsize pem_len;

  g_return_val_if_fail (GCHAT_IS_RSA_KEY (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);

  pem = pem_encode (g_bytes_get_data (self->public_der, NULL),
                    g_bytes_get_size (self->public_der), PEM_PUBLIC_LABEL, &pem_len);
  return write_key_file (path, pem, pem_len, 0644, error);
}

gboolean
gchat_rsa_key_has_private (GchatRsaKey *self)
{
  g_return_val_if_fail (GCHAT_IS_RSA_KEY (self), FALSE);

  return self->private_key != NULL;
}

guint
gchat_rsa_key_get_bits (GchatRsaKey *self)
{
  g_return_val_if_fail (GCHAT_IS_RSA_KEY (self), 0);

  return self->bits;
}

GBytes *
gchat_rsa_key_get_public_der (GchatRsaKey *self)
{
  g_return_val_if_fail (GCHAT_IS_RSA_KEY (self), NULL);

  return g_bytes_ref (self->public_der);
}

void
gchat_rsa_key_get_fingerprint_digest (GchatRsaKey *self, guint8 digest[GCHAT_SHA256_SIZE])
{
  g_return_if_fail (GCHAT_IS_RSA_KEY (self));
  g_return_if_fail (digest != NULL);

  memcpy (digest, self->fingerprint, GCHAT_SHA256_SIZE);
}

char *
gchat_rsa_key_get_fingerprint (GchatRsaKey *self)
{
  g_return_val_if_fail (GCHAT_IS_RSA_KEY (self), NULL);

  return gchat_fingerprint_format (self->fingerprint);
}

gsize
gchat_rsa_key_get_wrapped_size (GchatRsaKey *self)
{
  g_return_val_if_fail (GCHAT_IS_RSA_KEY (self), 0);

  return (self->bits + 7) / 8;
}

/* The secret is copied to secure memory first: libgcrypt then keeps its own copy there too, and
 * wipes it on release. An empty label is left out, as OAEP's default label is the empty string. */
static gcry_error_t
build_oaep_data (gcry_sexp_t *data, const char *label, const guint8 *plain, gsize len)
{
  guint8 *secret = gcry_malloc_secure (len);
  gcry_error_t err;

  if (secret == NULL)
    return gcry_error_from_errno (ENOMEM);
  memcpy (secret, plain, len);
  if (label != NULL && *label != '\0')
    err = gcry_sexp_build (data, NULL,
                           "(data (flags oaep) (hash-algo sha256) (label %b) (value %b))",
                           (int) strlen (label), label, (int) len, secret);
  else
    err = gcry_sexp_build (data, NULL, "(data (flags oaep) (hash-algo sha256) (value %b))",
                           (int) len, secret);
  gchat_memzero (secret, len);
  gcry_free (secret);
  return err;
}

/* libgcrypt drops leading zero bytes of the ciphertext; put them back. */
static GBytes *
ciphertext_to_bytes (gcry_sexp_t ciphertext, gsize size, GError **error)
{
  g_autoptr(RsaSexp) a = gcry_sexp_find_token (ciphertext, "a", 0);
  g_autoptr(RsaMpi) value = NULL;
  gsize value_size;
  size_t written = 0;
  guint8 *out;

  if (a != NULL)
    value = gcry_sexp_nth_mpi (a, 1, GCRYMPI_FMT_USG);
  if (value == NULL || gcry_mpi_get_nbits (value) > 8 * size)
    {
      set_error (error, GCHAT_RSA_KEY_ERROR_FAILED, _("libgcrypt returned no usable ciphertext"));
      return NULL;
    }
  value_size = (gcry_mpi_get_nbits (value) + 7) / 8;
  out = g_malloc0 (size);
  if (value_size > 0)
    gcry_mpi_print (GCRYMPI_FMT_USG, out + size - value_size, value_size, &written, value);
  return g_bytes_new_take (out, size);
}

GBytes *
gchat_rsa_key_wrap (GchatRsaKey *self, const guint8 *data, gsize len, const char *label,
                    GError **error)
{
  g_autoptr(RsaSexp) plain = NULL;
  g_autoptr(RsaSexp) ciphertext = NULL;
  gsize size;
  gcry_error_t err;

  g_return_val_if_fail (GCHAT_IS_RSA_KEY (self), NULL);
  g_return_val_if_fail (data != NULL || len == 0, NULL);
  g_return_val_if_fail (label == NULL || strlen (label) <= G_MAXINT, NULL);

  size = gchat_rsa_key_get_wrapped_size (self);
  if (len == 0 || len > size - OAEP_OVERHEAD)
    {
      g_set_error (error, GCHAT_RSA_KEY_ERROR, GCHAT_RSA_KEY_ERROR_FAILED,
                   _("Cannot wrap %zu bytes with a %u-bit RSA key: it takes "
                     "from 1 to %zu bytes."),
                   len, self->bits, size - OAEP_OVERHEAD);
      return NULL;
    }
  err = build_oaep_data (&plain, label, data, len);
  if (err == 0)
    err = gcry_pk_encrypt (&ciphertext, plain, self->public_key);
  if (err != 0)
    {
      g_set_error (error, GCHAT_RSA_KEY_ERROR, GCHAT_RSA_KEY_ERROR_FAILED,
                   _("Could not wrap a key with RSA-OAEP: %s"), gcry_strerror (err));
      return NULL;
    }
  return ciphertext_to_bytes (ciphertext, size, error);
}

/* RFC 8017 (7.1.2) wants ciphertexts below n; libgcrypt would reduce larger ones instead. */
static gboolean
build_oaep_enc_val (gcry_sexp_t *enc_val, GchatRsaKey *self, const guint8 *wrapped, gsize len,
                    const char *label)
{
  g_autoptr(RsaMpi) value = NULL;

  if (gcry_mpi_scan (&value, GCRYMPI_FMT_USG, wrapped, len, NULL) != 0
      || gcry_mpi_cmp (value, self->n) >= 0)
    return FALSE;
  if (label != NULL && *label != '\0')
    return gcry_sexp_build (enc_val, NULL,
                            "(enc-val (flags oaep) (hash-algo sha256) (label %b) (rsa (a %m)))",
                            (int) strlen (label), label, value)
           == 0;
  return gcry_sexp_build (enc_val, NULL, "(enc-val (flags oaep) (hash-algo sha256) (rsa (a %m)))",
                          value)
         == 0;
}

/* Points at the plaintext inside libgcrypt's "(value …)" result, without copying it out of
 * secure memory. */
static const char *
plaintext_value (gcry_sexp_t plain, size_t *len)
{
  size_t token_len = 0;
  const char *token = gcry_sexp_nth_data (plain, 0, &token_len);

  if (token == NULL || token_len != 5 || memcmp (token, "value", 5) != 0)
    return NULL;
  return gcry_sexp_nth_data (plain, 1, len);
}

gboolean
gchat_rsa_key_unwrap (GchatRsaKey *self, const guint8 *wrapped, gsize wrapped_len,
                      const char *label, guint8 *out, gsize out_len, GError **error)
{
  g_autoptr(RsaSexp) enc_val = NULL;
  g_autoptr(RsaSexp) plain = NULL;
  const char *value = NULL;
  size_t value_len = 0;

  g_return_val_if_fail (GCHAT_IS_RSA_KEY (self), FALSE);
  g_return_val_if_fail (wrapped != NULL || wrapped_len == 0, FALSE);
  g_return_val_if_fail (out != NULL || out_len == 0, FALSE);
  g_return_val_if_fail (label == NULL || strlen (label) <= G_MAXINT, FALSE);

  if (self->private_key == NULL)
    return set_error (error, GCHAT_RSA_KEY_ERROR_NO_PRIVATE,
                      _("Cannot unwrap a key: only the public RSA key is loaded."));
  /* Every failure gets the same message, so that it tells nothing about which check failed. */
  if (wrapped_len == gchat_rsa_key_get_wrapped_size (self)
      && build_oaep_enc_val (&enc_val, self, wrapped, wrapped_len, label)
      && gcry_pk_decrypt (&plain, enc_val, self->private_key) == 0)
    value = plaintext_value (plain, &value_len);
  if (value == NULL || value_len != out_len)
    return set_error (error, GCHAT_RSA_KEY_ERROR_UNWRAP,
                      _("The wrapped key is damaged or was not made for this RSA key."));
  memcpy (out, value, out_len);
  return TRUE;
}
