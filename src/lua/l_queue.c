/* Placeholder: filled in by the queue work. */
#include "modules.h"

void ipcl_open_queue(lua_State *L) { (void)L; }
