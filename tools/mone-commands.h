/* Subcommands of the `mone` tool; each returns a process exit status. */
#ifndef MONE_TOOL_COMMANDS_H
#define MONE_TOOL_COMMANDS_H

int mone_cmd_info (int argc, char **argv);
int mone_cmd_init (int argc, char **argv);
int mone_cmd_bench (int argc, char **argv);
int mone_cmd_run (int argc, char **argv);
int mone_cmd_train (int argc, char **argv);
int mone_cmd_eval (int argc, char **argv);

#endif
