/* REPL line input: libreadline when it is installed and stdin is a
 * terminal (loaded with dlopen, so the build does not depend on it), plain
 * stdio otherwise. */
#include "cli.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef char *(*readline_fn)(const char *);
typedef void (*add_history_fn)(const char *);

static readline_fn rl_read;
static add_history_fn rl_add;

static void load_readline(void)
{
	static int tried;
	if (tried)
		return;
	tried = 1;
	if (!isatty(STDIN_FILENO) || getenv("IPCSH_NO_READLINE"))
		return;
	const char *libs[] = {"libreadline.so.8", "libreadline.so", NULL};
	for (int i = 0; libs[i]; i++) {
		void *lib = dlopen(libs[i], RTLD_NOW | RTLD_LOCAL);
		if (!lib)
			continue;
		void *r = dlsym(lib, "readline"), *a = dlsym(lib, "add_history");
		if (r && a) {
			memcpy(&rl_read, &r, sizeof r);
			memcpy(&rl_add, &a, sizeof a);
			return;
		}
		dlclose(lib);
	}
}

char *ipcsh_read_line(const char *prompt)
{
	load_readline();
	if (rl_read)
		return rl_read(prompt);
	fputs(prompt, stdout);
	fflush(stdout);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, stdin);
	if (n < 0) {
		free(line);
		return NULL;
	}
	if (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	if (!isatty(STDIN_FILENO)) {
		fwrite(line, 1, (size_t)n, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	}
	return line;
}

void ipcsh_add_history(const char *line)
{
	if (rl_add && line[0])
		rl_add(line);
}

void ipcsh_free_line(char *line)
{
	free(line);
}
