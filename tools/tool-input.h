/* What the `mone` tool's commands share for reading input they do not trust: the model a command
 * works on, files of a known size, numbers written on the command line, and text from model files
 * printed to a terminal. */
#ifndef MONE_TOOL_INPUT_H
#define MONE_TOOL_INPUT_H

#include <glib.h>

#include "mone/mone.h"

/* The model of a command that takes "MODEL | --config NAME [key=value...]": a random model of the
 * named config with the key=value overrides when config_name is set, else the one MODEL file in
 * argv[1] (argv[0] is the command). On failure prints "mone COMMAND: cause" and returns NULL with
 * *status 2 for a usage error, 1 for a model that cannot be made or loaded. */
MoneModel *mone_tool_model_from_args (const char *command, const char *config_name, int argc, char **argv, int *status);

/* Reads exactly `size` bytes from path into a new buffer (g_free it; malloc-aligned). A regular
 * file must have exactly that size; anything else that can be read (a pipe, a device) is read
 * for at most size + 1 bytes, so /dev/zero or an endless FIFO is refused instead of read forever.
 * A directory, a missing file or a short or long input is refused with a message naming path and
 * `what` describes the expected content for that message ("float32 1 x 1 x 28 x 28"). */
gboolean mone_tool_read_exact (const char *path, gsize size, const char *what, char **contents, GError **error);

/* Parses a plain decimal number: optional sign, digits with at most one '.', optional exponent.
 * Refuses what strtod would also take: hexadecimal, "inf", "nan", leading or trailing spaces,
 * and values that overflow to infinity. */
gboolean mone_tool_parse_decimal (const char *text, double *value);

/* Checks the values of the named options (long names without "--", given as "--name value" or
 * "--name=value") in argv before GOption parses them: GOption's doubles take hexadecimal, inf and
 * nan. Prints "TOOL: --NAME 'VALUE' is not a decimal number" and returns FALSE on the first bad one. */
gboolean mone_tool_check_decimal_options (int argc, char **argv, const char *const *names, const char *tool);

/* A copy of text safe to print on a terminal: control characters (ESC, CR, ...), DEL and invalid
 * UTF-8 become \xNN escapes, backslashes are doubled; printable UTF-8 stays as it is. */
char *mone_tool_escape_text (const char *text);

#endif /* MONE_TOOL_INPUT_H */
