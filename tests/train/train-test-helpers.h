/* Helpers shared by the trainer tests. */
#ifndef MONE_TRAIN_TEST_HELPERS_H
#define MONE_TRAIN_TEST_HELPERS_H

#include "trainer.h"

/* Options for a tiny grey model (16x16, patch 4, D 16, depth 1, E 4) with `classes` classes:
 * trains in seconds; tests set seed, length and data themselves. */
void tiny_train_options (MoneTrainOptions *o, int classes);

/* A small grey model (16x16, patch 4, D 32, depth 2, F 64, E 4, 10 classes) with `heads` heads,
 * not finalized: big enough that every path of the forward and backward pass carries signal. */
MoneConfig small_grey_config (int heads);

/* One checked row of a table: logged when it holds; when it does not, the message goes to stderr
 * and the running GTest case is marked failed and goes on, so every row is reported. */
void report_row (gboolean ok, const char *format, ...) G_GNUC_PRINTF (2, 3);

/* report_row for "WHAT" or "WHAT: DETAIL" (detail may be NULL). */
void check (gboolean ok, const char *what, const char *detail);

/* TRUE in the valgrind test setup (meson test --setup valgrind sets MONE_UNDER_VALGRIND). GStreamer's
 * decoders are not valgrind-clean everywhere (Debian 13's typefinders and ORC code read
 * uninitialised bytes), so the cases that decode pictures through GStreamer in this process run
 * in the plain and sanitizer runs only. */
gboolean under_valgrind (void);

/* Runs a command-line tool of the project (`mone`) and returns its wait status. */

/* args: NULL-terminated arguments after the program. Standard output is discarded; standard
 * error is returned in *err_out (g_free it) unless err_out is NULL. Aborts the test when the
 * program cannot be started at all. */
int run_tool (const char *tool, const char *const *args, char **err_out);

/* Runs the tool and reports (report_row) whether it failed with `needle` in its standard error. */
void expect_tool_error (const char *what, const char *tool, const char *const *args, const char *needle);

#endif
