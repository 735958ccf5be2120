/* Placeholder: filled in by the condition work. */
#include "modules.h"

void ipcl_open_condition(lua_State *L) { (void)L; }
