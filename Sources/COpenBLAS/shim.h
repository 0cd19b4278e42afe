// cblas.h is found through pkg-config's include path, so no architecture-specific path is named here.
#include <cblas.h>

// openblas_get_config/num_threads are OpenBLAS extensions declared in its cblas.h; re-declared
// here so the module does not depend on which cblas.h variant pkg-config points at.
char *openblas_get_config(void);
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
