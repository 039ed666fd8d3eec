/* placeholder: being written */
#include <stdio.h>
#include "mone-commands.h"
int mone_cmd_train (int argc, char **argv) { fprintf (stderr, "mone train: not built yet\n"); return 1; }
