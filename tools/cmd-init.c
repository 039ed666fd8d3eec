/* placeholder: being written */
#include <stdio.h>
#include "mone-commands.h"
int mone_cmd_init (int argc, char **argv) { fprintf (stderr, "mone init: not built yet\n"); return 1; }
