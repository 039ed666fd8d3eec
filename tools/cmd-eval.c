/* placeholder: being written */
#include <stdio.h>
#include "mone-commands.h"
int mone_cmd_eval (int argc, char **argv) { fprintf (stderr, "mone eval: not built yet\n"); return 1; }
