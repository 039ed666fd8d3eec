/* placeholder: being written */
#include <stdio.h>
#include "mone-commands.h"
int mone_cmd_bench (int argc, char **argv) { fprintf (stderr, "mone bench: not built yet\n"); return 1; }
