/* Placeholder: filled in by the mutex work. */
#include "modules.h"

void ipcl_open_mutex(lua_State *L) { (void)L; }
