/* Placeholder: filled in by the kv work. */
#include "modules.h"

void ipcl_open_kv(lua_State *L) { (void)L; }
