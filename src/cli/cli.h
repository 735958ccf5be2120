/* Pieces of the ipcsh runner that are not the Lua-compatible option
 * handling itself: running a child command, reading REPL lines. */
#ifndef IPCSH_CLI_H
#define IPCSH_CLI_H

#include <lua.h>

/* Fork, exec argv (PATH search) and wait.  While the child runs, SIGINT,
 * SIGTERM and SIGHUP sent to us are forwarded to it.  Returns its exit
 * status, 128+N when it died by signal N, 127 when it could not be
 * executed (a message is printed on stderr), -1 when fork failed. */
int ipcsh_run_command(char *const argv[]);

/* Push the table of native helpers handed to interprocess.cli's main():
 * { run = function(argv_table) -> status }. */
void ipcsh_push_native(lua_State *L);

/* Read one line for the REPL, prompting with prompt.  Returns a malloc'd
 * line without its newline, or NULL at end of input.  Uses libreadline
 * (loaded at run time, when present) for a terminal; otherwise prints the
 * prompt and, when stdin is not a terminal, echoes the line the way
 * readline does, so piped sessions look the same as with stock lua. */
char *ipcsh_read_line(const char *prompt);
void ipcsh_add_history(const char *line);
void ipcsh_free_line(char *line);

#endif
