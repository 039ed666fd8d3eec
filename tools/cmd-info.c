/* placeholder: being written */
#include <stdio.h>
#include "mone-commands.h"
int mone_cmd_info (int argc, char **argv) { fprintf (stderr, "mone info: not built yet\n"); return 1; }
