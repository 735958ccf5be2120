/* Placeholder: filled in by the event work. */
#include "modules.h"

void ipcl_open_event(lua_State *L) { (void)L; }
