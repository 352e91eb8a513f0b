/* A C peer of a packaged app, compiled against the shm.h the package ships. */
#include <shm/shm.h>

int main(void)
{
    struct shm_semaphore s;
    memset(&s, 0, sizeof s);
    return shm_is_ready(&s.header, SHM_SEMAPHORE) ? 1 : 0;
}
