#include "internal.h"

// Plain C, for any CPU (and the reference the vector paths are tested against).
#define CKV_PATH ckv_path_portable
#define CKV_PATH_NAME "portable"
#include "level.h"
