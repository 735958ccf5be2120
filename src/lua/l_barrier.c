/* Placeholder: filled in by the barrier work. */
#include "modules.h"

void ipcl_open_barrier(lua_State *L) { (void)L; }
