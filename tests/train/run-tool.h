/* Runs a command-line tool of the project (`mone`) from a test and returns its wait status. */
#ifndef MONE_TEST_RUN_TOOL_H
#define MONE_TEST_RUN_TOOL_H

/* args: NULL-terminated arguments after the program. Standard output is discarded; standard
 * error is returned in *err_out (g_free it) unless err_out is NULL. Aborts the test when the
 * program cannot be started at all. */
int run_tool (const char *tool, const char *const *args, char **err_out);

#endif
