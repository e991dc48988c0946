/* The README's quick start: publish a 2x3 float32 array and read it back. */
#include <ndshm/ndshm.h>
#include <stdio.h>

int main(void)
{
    ndshm_writer *w = NULL;
    ndshm_reader *r = NULL;
    int rc;
    if ((rc = ndshm_writer_create("quickstart", NULL, &w)) != NDSHM_OK)
        goto fail;
    if ((rc = ndshm_reader_open("quickstart", NULL, &r)) != NDSHM_OK)
        goto fail;

    float frame[2][3] = {{1, 2, 3}, {4, 5, 6}};
    uint64_t shape[2] = {2, 3};
    if ((rc = ndshm_publish(w, NDSHM_FLOAT32, 2, shape, frame, NULL)) != NDSHM_OK)
        goto fail;

    float out[2][3];
    ndshm_info info;
    if ((rc = ndshm_read_latest(r, out, sizeof out, &info)) != NDSHM_OK)
        goto fail;
    printf("version %llu, %s %llux%llu, latency %llu ns, out[1][2] = %g\n",
           (unsigned long long)info.version, ndshm_dtype_str(info.dtype),
           (unsigned long long)info.shape[0], (unsigned long long)info.shape[1],
           (unsigned long long)info.latency_ns, out[1][2]);
    ndshm_reader_close(r);
    ndshm_writer_close(w);
    ndshm_unlink("quickstart");
    return 0;
fail:
    fprintf(stderr, "quickstart: %s (%s)\n", ndshm_strerror(rc), ndshm_status_name(rc));
    ndshm_reader_close(r);
    ndshm_writer_close(w);
    ndshm_unlink("quickstart");
    return 1;
}
