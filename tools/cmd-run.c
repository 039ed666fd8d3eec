/* placeholder: being written */
#include <stdio.h>
#include "mone-commands.h"
int mone_cmd_run (int argc, char **argv) { fprintf (stderr, "mone run: not built yet\n"); return 1; }
