/* `mone`: command-line front end of libmone. Each subcommand lives in its own cmd-*.c file. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mone-commands.h"

static const struct {
  const char *name;
  int (*run) (int argc, char **argv);
  const char *summary;
} commands[] = {
  { "info", mone_cmd_info, "MODEL: config, parameters, GFLOPs per budget" },
  { "init", mone_cmd_init, "--config NAME|key=value... OUT: write a randomly initialised model" },
  { "bench", mone_cmd_bench, "MODEL: latency and GFLOP/s per budget against one-thread sgemm" },
  { "run", mone_cmd_run, "MODEL RAW --budget E: classify a float32 CHW file" },
  { "train", mone_cmd_train, "train a MoNE model on Fashion-MNIST or your own images (--images DIR)" },
  { "eval", mone_cmd_eval, "MODEL: accuracy and GFLOPs per budget, plots, routing maps" },
};

static void
usage (FILE *out)
{
  fprintf (out, "usage: mone COMMAND [ARGS...]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf (out, "  %-6s %s\n", commands[i].name, commands[i].summary);
  fprintf (out, "\n'mone COMMAND --help' describes a command; 'mone --version' prints the version.\n");
}

int
main (int argc, char **argv)
{
  if (argc < 2 || !strcmp (argv[1], "--help") || !strcmp (argv[1], "-h")) {
    usage (argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp (argv[1], "--version")) {
    printf ("mone %s\n", MONE_VERSION);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp (argv[1], commands[i].name)) {
      int status = commands[i].run (argc - 1, argv + 1);
      /* Results printed to a full disk or a closed pipe are lost: not a success (--json readers). */
      if (fflush (stdout) != 0 || ferror (stdout)) {
        fprintf (stderr, "mone %s: cannot write the output: %s\n", argv[1], strerror (errno));
        return status ? status : 1;
      }
      return status;
    }
  fprintf (stderr, "mone: unknown command '%s'\n", argv[1]);
  usage (stderr);
  return 2;
}
