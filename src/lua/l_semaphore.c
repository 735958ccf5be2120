/* Placeholder: filled in by the semaphore work. */
#include "modules.h"

void ipcl_open_semaphore(lua_State *L) { (void)L; }
