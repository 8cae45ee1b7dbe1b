/* main() for fuzz targets built without libFuzzer: runs every file named on
 * the command line, or found in a directory named there, through
 * LLVMFuzzerTestOneInput once. A crash or failed invariant aborts, which
 * CTest reports as a failure. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    perror(path);
    return -1;
  }
  size_t cap = 4096, len = 0;
  uint8_t *data = malloc(cap);
  size_t n;
  while (data != NULL && (n = fread(data + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) {
      uint8_t *p = realloc(data, cap * 2);
      if (p == NULL) {
        free(data);
        data = NULL;
        break;
      }
      data = p;
      cap *= 2;
    }
  }
  int err = ferror(f);
  fclose(f);
  if (data == NULL || err) {
    fprintf(stderr, "%s: read failed\n", path);
    free(data);
    return -1;
  }
  /* Exactly len bytes, so sanitizers catch reads past the input. */
  uint8_t *exact = malloc(len ? len : 1);
  if (exact == NULL) {
    free(data);
    return -1;
  }
  if (len) memcpy(exact, data, len);
  free(data);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 0;
}

static int run_path(const char *path, int *count) {
  struct stat st;
  if (stat(path, &st) != 0) {
    perror(path);
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    if (run_file(path) != 0) return -1;
    (*count)++;
    return 0;
  }
  DIR *dir = opendir(path);
  if (dir == NULL) {
    perror(path);
    return -1;
  }
  int rc = 0;
  struct dirent *de;
  while ((de = readdir(dir)) != NULL) {
    if (de->d_name[0] == '.') continue;
    size_t n = strlen(path) + strlen(de->d_name) + 2;
    char *full = malloc(n);
    if (full == NULL) {
      rc = -1;
      break;
    }
    snprintf(full, n, "%s/%s", path, de->d_name);
    if (run_path(full, count) != 0) rc = -1;
    free(full);
  }
  closedir(dir);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
    return 2;
  }
  int count = 0, rc = 0;
  for (int i = 1; i < argc; i++) {
    if (run_path(argv[i], &count) != 0) rc = 1;
  }
  printf("%d inputs replayed%s\n", count, rc ? ", with errors" : "");
  if (count == 0) return 1;
  return rc;
}
