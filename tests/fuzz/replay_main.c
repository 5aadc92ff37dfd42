/* Runs a libFuzzer target over every file in the corpus directories named
 * on the command line, so that a normal build (gcc, no libFuzzer) still
 * replays every past crash and seed on each test run. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (!f)
		return -1;
	if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
		fclose(f);
		return -1;
	}
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	int files = 0, unreadable = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		struct dirent *de;
		DIR *d;

		if (stat(argv[i], &st) == 0 && !S_ISDIR(st.st_mode)) {
			unreadable += run_file(argv[i]) < 0;
			files++;
			continue;
		}
		d = opendir(argv[i]);
		if (!d) {
			fprintf(stderr, "cannot open corpus %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		while ((de = readdir(d))) {
			char path[4096];

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
			if (run_file(path) < 0) {
				fprintf(stderr, "cannot read %s\n", path);
				unreadable++;
			}
			files++;
		}
		closedir(d);
	}
	printf("replayed %d inputs, %d unreadable\n", files, unreadable);
	return files == 0 || unreadable ? 1 : 0;
}
