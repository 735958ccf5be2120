/* Placeholder: filled in by the pidfile work. */
#include "modules.h"

void ipcl_open_pidfile(lua_State *L) { (void)L; }
